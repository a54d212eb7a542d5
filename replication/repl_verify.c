/* Online verify: this member's data against every connected, up-to-date
 * peer's, region by region, by SHA-256 digest, while the application
 * keeps writing.
 *
 *   start        the verifier is the primary, or nobody is primary (then
 *                nothing writes); peers compared: live, holding data, up to
 *                date, not being resynced, and negotiated REPL_FEAT_VERIFY
 *   pump         up to VERIFY_DEPTH regions in flight: VERIFY_REQ to each
 *                peer + a local read; the digests are compared when all
 *                are in; differing regions are counted and the first
 *                REPL_VERIFY_LISTED listed per peer
 *   repair       (primary only) differing regions are marked in the peer's
 *                dirty bitmap and resent by a bitmap resync afterwards
 *   diskless     a diskless primary has no data of its own: the compared
 *                member with the lowest id is the reference, asked like the
 *                others, and the rest are compared with its digests (it is
 *                listed as the reference, not as compared). No repair: no
 *                side is the truth by itself
 *
 * Ordering with application writes: a region is taken only once no write
 * or resync transfer overlapping it is in flight (every replica has
 * acknowledged them, so every replica holds the same bytes there unless
 * it is broken), and while it is in flight, or waiting for its turn, an
 * overlapping write waits (repl_verify_overlaps, checked by the write
 * path). A region therefore compares equal on healthy replicas whatever
 * the application does.
 *
 * The peer's side (repl_verify_serve) reads the range and answers with
 * its digest; it counts like a replicated write against the link's
 * in-flight limit. */
#include <errno.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "log.h"
#include "repl_volume_priv.h"
#include "util.h"

#define VERIFY_DEPTH 4  /* regions in flight */

struct vreq {
	struct vol_io rd;           /* the local read */
	struct repl_vol *rv;
	uint64_t id;
	uint32_t sent;              /* peers asked */
	uint32_t wait;              /* peers whose reply is due */
	uint32_t ok;                /* peers that answered with a digest */
	uint32_t failed;            /* peers that answered with an error */
	bool local_done;
	int local_res;
	uint8_t local[REPL_DIGEST_LEN];
	uint8_t peer[REPL_MAX_NODES][REPL_DIGEST_LEN];
	struct vreq *next;
};

struct repl_verify {
	bool running, repair, was_primary, waiting;
	int ref;                    /* diskless verifier: the reference member, else -1 */
	uint32_t region;
	uint64_t rate;              /* bytes/s, 0: unlimited */
	int64_t tokens;             /* what may be read now (a token bucket) */
	uint64_t cursor, total, done, started_ns, ns;
	uint32_t peers;             /* still compared in this run */
	uint32_t included;          /* compared at the start */
	struct repl_conn *conn[REPL_MAX_NODES];
	uint64_t compared[REPL_MAX_NODES], differing[REPL_MAX_NODES];
	unsigned nlisted[REPL_MAX_NODES];
	uint64_t listed[REPL_MAX_NODES][REPL_VERIFY_LISTED];
	char note[REPL_MAX_NODES][64];
	char error[160];
	struct vreq *reqs;
	unsigned inflight;
	uint64_t next_id;
};

static void digest(const void *buf, size_t len, uint8_t out[REPL_DIGEST_LEN])
{
	SHA256(buf, len, out);
}

bool repl_verify_overlaps(struct repl_vol *rv, uint64_t off, uint64_t len)
{
	struct repl_verify *vf = rv->verify;

	if (!vf)
		return false;
	if (vf->running && vf->waiting &&
	    overlaps(off, len, vf->cursor, MIN((uint64_t)vf->region, rv->v->size - vf->cursor)))
		return true;
	for (struct vreq *q = vf->reqs; q; q = q->next)
		if (overlaps(off, len, q->rd.off, q->rd.len))
			return true;
	return false;
}

unsigned repl_verify_inflight(const struct repl_vol *rv)
{
	return rv->verify ? rv->verify->inflight : 0;
}

static void stop_run(struct repl_vol *rv, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void stop_run(struct repl_vol *rv, const char *fmt, ...)
{
	struct repl_verify *vf = rv->verify;
	va_list ap;

	if (!vf->running)
		return;
	va_start(ap, fmt);
	vsnprintf(vf->error, sizeof(vf->error), fmt, ap);
	va_end(ap);
	vf->running = false;
	vf->waiting = false;
	vf->ns = now_ns() - vf->started_ns;
	log_err("repl", "%s: verify stopped at %llu of %llu bytes: %s", vname(rv),
		(unsigned long long)vf->done, (unsigned long long)vf->total, vf->error);
	repl_vol_pump_blocked(rv);
	repl_vol_publish(rv);
}

static void finish_run(struct repl_vol *rv)
{
	struct repl_verify *vf = rv->verify;
	uint64_t differing = 0;

	vf->running = false;
	vf->ns = now_ns() - vf->started_ns;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (!(vf->included & (1u << i)))
			continue;
		differing += vf->differing[i];
		log_msg(vf->differing[i] ? LOG_LVL_WARN : LOG_LVL_INFO, "repl",
			"%s: verify against peer %u (%s): %llu bytes compared, %llu differ%s%s",
			vname(rv), i, p->m->node, (unsigned long long)vf->compared[i],
			(unsigned long long)vf->differing[i], vf->note[i][0] ? "; " : "",
			vf->note[i]);
		/* repair: the marked regions go out in a bitmap resync, which
		 * the peer takes as inconsistent until it is done */
		if (vf->repair && vf->differing[i] && (vf->peers & (1u << i)) && p->live &&
		    p->conn == vf->conn[i] && rv->role == REPL_ROLE_PRIMARY && !p->syncing) {
			p->outdated = true;
			p->bm_complete = true;
			p->bm_base = p->st.gen_current;
			repl_resync_start(rv, p, p->st.gen_current);
		}
	}
	log_info("repl", "%s: verify done: %llu bytes in %.3f s, %llu bytes differ%s",
		 vname(rv), (unsigned long long)vf->done, vf->ns / 1e9,
		 (unsigned long long)differing, vf->repair && differing ? " (repairing)" : "");
	repl_vol_pump_blocked(rv);
	repl_vol_publish(rv);
}

static void drop_peer(struct repl_vol *rv, unsigned i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void drop_peer(struct repl_vol *rv, unsigned i, const char *fmt, ...)
{
	struct repl_verify *vf = rv->verify;
	va_list ap;

	if (!(vf->peers & (1u << i)))
		return;
	vf->peers &= ~(1u << i);
	va_start(ap, fmt);
	vsnprintf(vf->note[i], sizeof(vf->note[i]), fmt, ap);
	va_end(ap);
	log_warn("repl", "%s: verify: peer %u (%s) left the run: %s", vname(rv), i,
		 rv->peers[i].m->node, vf->note[i]);
}

/* peers still compared with us (or with the reference) */
static uint32_t compared_left(const struct repl_verify *vf)
{
	return vf->peers & ~(vf->ref >= 0 ? 1u << vf->ref : 0u);
}

static void record(struct repl_vol *rv, struct vreq *q)
{
	struct repl_verify *vf = rv->verify;

	if (q->local_res < 0) {
		stop_run(rv, "local read at offset %llu failed: %s", (unsigned long long)q->rd.off,
			 strerror(-q->local_res));
		return;
	}
	if (vf->ref >= 0) {
		/* diskless: the reference's digest stands for ours */
		if (!(q->ok & (1u << vf->ref))) {
			stop_run(rv, "the reference member %s did not answer for offset %llu",
				 rv->peers[vf->ref].m->node, (unsigned long long)q->rd.off);
			return;
		}
		memcpy(q->local, q->peer[vf->ref], REPL_DIGEST_LEN);
	}
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		uint32_t bit = 1u << i;

		if (!(q->sent & bit) || !(vf->peers & bit) || (int)i == vf->ref)
			continue;
		if (q->failed & bit) {
			drop_peer(rv, i, "its read at offset %llu failed",
				  (unsigned long long)q->rd.off);
			continue;
		}
		if (!(q->ok & bit))
			continue; /* gone: drop_peer said so */
		vf->compared[i] += q->rd.len;
		if (!memcmp(q->local, q->peer[i], REPL_DIGEST_LEN))
			continue;
		vf->differing[i] += q->rd.len;
		if (vf->nlisted[i] < REPL_VERIFY_LISTED)
			vf->listed[i][vf->nlisted[i]++] = q->rd.off;
		log_rl(LOG_LVL_WARN, "repl", "%s: verify: region off=%llu len=%u differs on "
		       "peer %u (%s)", vname(rv), (unsigned long long)q->rd.off, q->rd.len, i,
		       rv->peers[i].m->node);
		if (vf->repair)
			repl_resync_mark_peer(rv, &rv->peers[i], q->rd.off, q->rd.len);
	}
	vf->done += q->rd.len;
	if (!compared_left(vf))
		stop_run(rv, "no peer left to compare with");
}

static void pump(struct repl_vol *rv);

static void req_settle(struct repl_vol *rv, struct vreq *q)
{
	struct repl_verify *vf = rv->verify;

	if (!q->local_done || q->wait)
		return;
	for (struct vreq **pp = &vf->reqs; *pp; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	vf->inflight--;
	if (vf->running)
		record(rv, q);
	if (q->rd.buf)
		iobuf_put(q->rd.buf, q->rd.len);
	free(q);
	repl_vol_pump_blocked(rv);
	pump(rv);
}

static void read_done(struct vol_io *io, int res)
{
	struct vreq *q = container_of(io, struct vreq, rd);

	q->local_done = true;
	q->local_res = res;
	if (res >= 0)
		digest(io->buf, io->len, q->local);
	req_settle(q->rv, q);
}

static bool comparable(const struct repl_vol *rv, const struct repl_peer *p, const char **why)
{
	*why = NULL;
	if (!p->m)
		return false;
	*why = repl_peer_not_current(p);
	if (!*why && p->st.disk_state != REPL_DISK_UP_TO_DATE &&
	    p->st.disk_state != REPL_DISK_CONSISTENT)
		*why = "not up to date";
	if (!*why && !(p->conn->features & REPL_FEAT_VERIFY))
		*why = "its daemon does not support verify";
	return !*why;
}

static void pump(struct repl_vol *rv)
{
	struct repl_verify *vf = rv->verify;
	struct vol_backend *local = rv->b.next;

	while (vf->running && vf->inflight < VERIFY_DEPTH && (!vf->rate || vf->tokens > 0)) {
		uint64_t len;
		struct vreq *q;
		struct repl_msg m = { .type = REPL_MSG_VERIFY_REQ };

		if (vf->was_primary && rv->role != REPL_ROLE_PRIMARY) {
			stop_run(rv, "this member is no longer primary");
			return;
		}
		if (!vf->was_primary && (rv->role == REPL_ROLE_PRIMARY || repl_vol_live_primary(rv))) {
			stop_run(rv, "a member became primary: run verify on the primary");
			return;
		}
		for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
			const char *why;

			if ((vf->peers & (1u << i)) && rv->peers[i].conn != vf->conn[i])
				drop_peer(rv, i, "disconnected");
			else if ((vf->peers & (1u << i)) && !comparable(rv, &rv->peers[i], &why))
				drop_peer(rv, i, "%s", why);
		}
		if (vf->ref >= 0 && !(vf->peers & (1u << vf->ref))) {
			stop_run(rv, "the reference member %s left the run: %s",
				 rv->peers[vf->ref].m->node, vf->note[vf->ref]);
			return;
		}
		if (!compared_left(vf)) {
			stop_run(rv, "no peer left to compare with");
			return;
		}
		if (vf->cursor >= rv->v->size) {
			if (!vf->inflight)
				finish_run(rv);
			return;
		}
		len = MIN((uint64_t)vf->region, rv->v->size - vf->cursor);
		/* our turn comes once what overlaps is acknowledged everywhere;
		 * meanwhile overlapping writes wait for us (repl_verify_overlaps) */
		vf->waiting = true;
		if (repl_vol_writes_overlap(rv, vf->cursor, len) ||
		    repl_resync_overlaps(rv, vf->cursor, len))
			return;
		vf->waiting = false;
		q = calloc(1, sizeof(*q));
		if (!q || (vf->ref < 0 && !(q->rd.buf = iobuf_get(len)))) {
			free(q);
			return; /* again on the next tick */
		}
		q->rv = rv;
		q->id = ++vf->next_id;
		q->rd.op = VOL_READ;
		q->rd.off = vf->cursor;
		q->rd.len = (uint32_t)len;
		q->rd.vol = rv->v;
		q->rd.chain_done = read_done;
		m.u.io.id = q->id;
		m.u.io.offset = q->rd.off;
		m.u.io.length = q->rd.len;
		for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
			if (!(vf->peers & (1u << i)))
				continue;
			if (repl_conn_send(rv->peers[i].conn, &m)) {
				drop_peer(rv, i, "cannot queue a request on its link");
				continue;
			}
			q->sent |= 1u << i;
		}
		q->wait = q->sent;
		q->next = vf->reqs;
		vf->reqs = q;
		vf->inflight++;
		vf->cursor += len;
		vf->tokens -= (int64_t)len;
		if (vf->ref >= 0) {
			q->local_done = true; /* nothing to read here: the reference's digest */
			if (!q->wait) {
				req_settle(rv, q); /* nobody asked: record() stops the run */
				return;
			}
			continue;
		}
		local->ops->submit(local, &q->rd);
	}
}

void repl_verify_pump(struct repl_vol *rv)
{
	if (rv->verify && rv->verify->running)
		pump(rv);
}

void repl_verify_tick(struct repl_vol *rv, unsigned ms)
{
	struct repl_verify *vf = rv->verify;

	if (!vf || !vf->running)
		return;
	repl_tokens_refill(&vf->tokens, vf->rate, ms);
	pump(rv);
}

int repl_verify_start(struct repl_vol *rv, uint32_t region, uint64_t rate, bool repair,
		      char *err, size_t errlen)
{
	struct repl_verify *vf = rv->verify;
	uint32_t peers = 0;
	char skipped[REPL_MAX_NODES][64] = { { 0 } };
	bool diskless = rv->disk == REPL_DISK_DISKLESS && rv->role == REPL_ROLE_PRIMARY;
	int ref = -1;

	if (!region)
		region = REPL_VERIFY_REGION_DEFAULT;
	if (!is_pow2(region) || region < 4096 || region > REPL_MAX_DATA) {
		snprintf(err, errlen, "region size %u is not a power of two between 4 KiB and "
			 "1 MiB", region);
		return -EINVAL;
	}
	if (vf && (vf->running || vf->inflight)) {
		snprintf(err, errlen, "volume %s: a verify is already running (%llu of %llu "
			 "bytes done)", vname(rv), (unsigned long long)vf->done,
			 (unsigned long long)vf->total);
		return -EBUSY;
	}
	if (rv->disk != REPL_DISK_UP_TO_DATE && rv->disk != REPL_DISK_CONSISTENT && !diskless) {
		snprintf(err, errlen, "volume %s is %s here: run verify on the primary or an "
			 "up-to-date member", vname(rv), repl_disk_state_name(rv->disk));
		return -ESTALE;
	}
	if (diskless && repair) {
		snprintf(err, errlen, "volume %s: --repair needs a primary with data (this one is "
			 "diskless: no side is the truth by itself)", vname(rv));
		return -EBUSY;
	}
	if (rv->role != REPL_ROLE_PRIMARY && repl_vol_live_primary(rv)) {
		snprintf(err, errlen, "volume %s is primary on another member: run verify there "
			 "(only the primary sees every write in order)", vname(rv));
		return -EBUSY;
	}
	if (repair && rv->role != REPL_ROLE_PRIMARY) {
		snprintf(err, errlen, "volume %s: --repair needs the primary (it resyncs the "
			 "differing regions from its own data)", vname(rv));
		return -EBUSY;
	}
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const char *why;

		if (comparable(rv, &rv->peers[i], &why))
			peers |= 1u << i;
		else if (why)
			snprintf(skipped[i], sizeof(skipped[i]), "skipped: %s", why);
	}
	if (!peers) {
		snprintf(err, errlen, "volume %s: no connected, up-to-date peer to compare with",
			 vname(rv));
		return -EAGAIN;
	}
	if (diskless) {
		if (__builtin_popcount(peers) < 2) {
			snprintf(err, errlen, "volume %s: this member is diskless and only one "
				 "up-to-date member is connected: nothing to compare", vname(rv));
			return -EAGAIN;
		}
		ref = __builtin_ctz(peers);
	}
	if (!vf && !(vf = rv->verify = calloc(1, sizeof(*vf)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memset(vf, 0, sizeof(*vf));
	vf->running = true;
	vf->repair = repair;
	vf->was_primary = rv->role == REPL_ROLE_PRIMARY;
	vf->region = region;
	vf->rate = rate ? rate : rv->resync_rate;
	vf->tokens = (int64_t)(vf->rate / 5); /* a first tick's worth */
	vf->total = rv->v->size;
	vf->started_ns = now_ns();
	vf->peers = vf->included = peers;
	vf->ref = ref;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		if (peers & (1u << i))
			vf->conn[i] = rv->peers[i].conn;
		memcpy(vf->note[i], skipped[i], sizeof(vf->note[i]));
	}
	if (ref >= 0) {
		vf->included &= ~(1u << ref);
		snprintf(vf->note[ref], sizeof(vf->note[ref]),
			 "the reference (this member is diskless)");
	}
	log_info("repl", "%s: verify of %llu bytes in %u-byte regions against %u peer(s), "
		 "reading at most %llu bytes/s (0: no limit)%s%s%s", vname(rv),
		 (unsigned long long)vf->total, region, __builtin_popcount(vf->included),
		 (unsigned long long)vf->rate, repair ? ", repairing differences" : "",
		 ref >= 0 ? "; diskless: the reference is " : "",
		 ref >= 0 ? rv->peers[ref].m->node : "");
	pump(rv);
	repl_vol_publish(rv);
	return 0;
}

void repl_verify_peer_gone(struct repl_vol *rv, struct repl_peer *p)
{
	struct repl_verify *vf = rv->verify;
	uint32_t bit = 1u << p->id;

	if (!vf)
		return;
	if (vf->running)
		drop_peer(rv, p->id, "disconnected");
	for (struct vreq *q = vf->reqs, *next; q; q = next) {
		next = q->next;
		if (q->wait & bit) {
			q->wait &= ~bit;
			req_settle(rv, q);
		}
	}
}

int repl_verify_on_reply(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
			 char *why, size_t whylen)
{
	struct repl_verify *vf = rv->verify;
	uint32_t bit = 1u << p->id;
	struct vreq *q = NULL;

	if (vf)
		for (q = vf->reqs; q; q = q->next)
			if (q->id == m->u.digest.id)
				break;
	if (!q || !(q->wait & bit)) {
		snprintf(why, whylen, "VERIFY_REPLY for id %llu that was not asked of this peer",
			 (unsigned long long)m->u.digest.id);
		return -EBADMSG;
	}
	q->wait &= ~bit;
	if (m->u.digest.status == REPL_ST_OK) {
		q->ok |= bit;
		memcpy(q->peer[p->id], m->u.digest.digest, REPL_DIGEST_LEN);
	} else {
		q->failed |= bit;
	}
	req_settle(rv, q);
	return 0;
}

/* ---- the peer's side ---------------------------------------------------------- */

static void serve_done(struct repl_sec_read *s, int res)
{
	struct vol_io *io = &s->io;
	struct repl_msg m = { .type = REPL_MSG_VERIFY_REPLY };

	m.u.digest.id = s->id;
	m.u.digest.alg = REPL_DIGEST_SHA256;
	m.u.digest.status = repl_status_from_errno(res < 0 ? res : 0);
	if (res >= 0)
		digest(io->buf, io->len, m.u.digest.digest);
	else
		log_rl(LOG_LVL_WARN, "repl", "%s: verify read off=%llu failed: %s", vname(s->rv),
		       (unsigned long long)io->off, strerror(-res));
	if (s->c->state == REPL_CONN_LIVE)
		repl_conn_send(s->c, &m);
	repl_sec_read_end(s, false);
}

int repl_verify_serve(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c,
		      const struct repl_msg *m, char *why, size_t whylen)
{
	if (m->u.io.offset + m->u.io.length > rv->v->size) {
		snprintf(why, whylen, "VERIFY_REQ off=%llu len=%u past the end (%llu)",
			 (unsigned long long)m->u.io.offset, m->u.io.length,
			 (unsigned long long)rv->v->size);
		return -EBADMSG;
	}
	if (rv->disk == REPL_DISK_DISKLESS || rv->disk == REPL_DISK_INCONSISTENT) {
		struct repl_msg r = { .type = REPL_MSG_VERIFY_REPLY };

		/* nothing comparable here: the verifier drops us from the run */
		r.u.digest.id = m->u.io.id;
		r.u.digest.alg = REPL_DIGEST_SHA256;
		r.u.digest.status = REPL_ST_ROFS;
		repl_conn_send(c, &r);
		return 0;
	}
	if (repl_sec_read_start(rv, p, c, m, serve_done)) {
		snprintf(why, whylen, "out of memory");
		return -EBADMSG;
	}
	return 0;
}

void repl_verify_status(const struct repl_vol *rv, struct repl_vol_status *st)
{
	const struct repl_verify *vf = rv->verify;
	struct repl_verify_status *vs = &st->verify;

	if (!vf)
		return; /* never run */
	snprintf(vs->state, sizeof(vs->state), "%s",
		 vf->running ? "running" : vf->error[0] ? "failed" : "done");
	vs->region = vf->region;
	vs->rate = vf->rate;
	vs->repair = vf->repair;
	vs->total = vf->total;
	vs->done = vf->done;
	vs->ns = vf->running ? now_ns() - vf->started_ns : vf->ns;
	snprintf(vs->error, sizeof(vs->error), "%s", vf->error);
	for (unsigned k = 0; k < st->npeers; k++) {
		struct repl_peer_status *ps = &st->peers[k];
		unsigned i = ps->id;

		ps->verify_compared = vf->compared[i];
		ps->verify_differing = vf->differing[i];
		ps->verify_nlisted = vf->nlisted[i];
		memcpy(ps->verify_regions, vf->listed[i], sizeof(ps->verify_regions));
		ps->verify_in = (vf->included >> i) & 1;
		snprintf(ps->verify_note, sizeof(ps->verify_note), "%s", vf->note[i]);
	}
}

void repl_verify_free(struct repl_vol *rv)
{
	free(rv->verify);
	rv->verify = NULL;
}
