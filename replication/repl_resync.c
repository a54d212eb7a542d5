/* The resync source: the primary brings a peer that is behind up to date
 * by sending every grain its dirty bitmap marks, while the application
 * keeps writing (to that peer too). A diskless primary reads the grains
 * at an up-to-date member (READ_REQ, repl_read.c) instead of locally.
 *
 *   repl_resync_start     bitmap complete since the peer's generation?
 *                         resend the marked grains, else every grain;
 *                         RESYNC_START(bytes) -> the peer is inconsistent
 *   pump                  up to SYNC_DEPTH transfers (SYNC_BYTES) in flight,
 *                         within the rate's tokens: local read ->
 *                         RESYNC_DATA frames of at most 1 MiB. A transfer
 *                         is a run of consecutive marked grains up to
 *                         XFER_MAX, or one grain larger than that
 *   RESYNC_ACK OK         (one per frame) the last one clears the
 *                         transfer's bits; when none is left and nothing
 *                         is in flight: RESYNC_DONE -> the peer takes our
 *                         generations and is up to date
 *
 * Ordering with application writes: a grain in transfer blocks an
 * overlapping application write (repl_resync_overlaps, checked by the
 * write path) and a grain overlapping a write in flight is not started,
 * so the peer never receives a grain's old contents after a newer write
 * to it. Application writes a syncing peer does not acknowledge mark the
 * bitmap again (repl_resync_mark), so they are resent. A dropped peer
 * keeps its bitmap: the resync resumes from it when the peer returns with
 * the generation it had. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "log.h"
#include "repl_volume_priv.h"
#include "util.h"

#define SYNC_DEPTH 16              /* transfers in flight per peer */
#define SYNC_BYTES (8u << 20)      /* ... and at most this much data */
#define XFER_MAX   REPL_MAX_DATA   /* grains merged into one transfer: up to 1 MiB */

struct repl_sync_req {
	struct vol_io rd;           /* the local read of the grains */
	struct repl_vol *rv;
	struct repl_peer *p;        /* NULL once the peer is gone */
	struct repl_conn *c;
	uint64_t id, bit, nbits;    /* the grains it covers */
	unsigned frames;            /* RESYNC_ACKs still due */
	bool sent;
	struct repl_sync_req *next;
};

static void pump(struct repl_vol *rv, struct repl_peer *p);

static void unlink_req(struct repl_vol *rv, struct repl_sync_req *r)
{
	for (struct repl_sync_req **pp = &rv->syncs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

static void free_req(struct repl_vol *rv, struct repl_sync_req *r)
{
	unlink_req(rv, r);
	if (r->p) {
		r->p->sync_inflight--;
		r->p->sync_inflight_bytes -= r->rd.len;
	}
	iobuf_put(r->rd.buf, r->rd.len);
	free(r);
}

bool repl_resync_overlaps(struct repl_vol *rv, uint64_t off, uint64_t len)
{
	for (struct repl_sync_req *r = rv->syncs; r; r = r->next)
		if (r->p && overlaps(off, len, r->rd.off, r->rd.len))
			return true;
	return false;
}

struct repl_dirty_bitmap *repl_resync_bitmap(struct repl_vol *rv, struct repl_peer *p)
{
	if (!p->bm) {
		p->bm = repl_bitmap_create(rv->v->size, repl_vol_grain(rv));
		if (!p->bm)
			log_err("repl", "%s: no memory for peer %u's dirty bitmap: it will need "
				"a full resync", vname(rv), p->id);
	}
	return p->bm;
}

void repl_resync_mark(struct repl_vol *rv, uint64_t off, uint64_t len, uint32_t acked)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (!p->m || p->m->diskless || (acked & (1u << i)))
			continue;
		if (repl_resync_bitmap(rv, p))
			repl_bitmap_set_range(p->bm, off, len);
		else
			p->bm_complete = false;
	}
}

void repl_resync_track_former_primary(struct repl_vol *rv, struct repl_peer *p)
{
	if (!repl_resync_bitmap(rv, p))
		return;
	repl_bitmap_clear_all(p->bm);
	p->bm_complete = true;
	p->bm_base = rv->v->sv->meta.gen.current;
	p->bm_run = rv->primary_runs;
	p->bm_fp = true;
	p->bm_trk = false;
}

void repl_resync_mark_peer(struct repl_vol *rv, struct repl_peer *p, uint64_t off, uint64_t len)
{
	if (repl_resync_bitmap(rv, p))
		repl_bitmap_set_range(p->bm, off, len);
	else
		p->bm_complete = false;
}

void repl_resync_start(struct repl_vol *rv, struct repl_peer *p, uint64_t peer_gen)
{
	struct repl_msg m = { .type = REPL_MSG_RESYNC_START };
	bool from_bitmap;

	if (p->syncing || !repl_resync_bitmap(rv, p))
		return;
	if (rv->disk == REPL_DISK_DISKLESS && !repl_read_source(rv)) {
		/* a diskless primary reads what it sends at an up-to-date
		 * member: with none connected, the timer tries again */
		log_rl(LOG_LVL_WARN, "repl", "%s: peer %u (%s) is behind: its resync waits "
		       "for an up-to-date member to read from", vname(rv), p->id, p->m->node);
		return;
	}
	from_bitmap = p->bm_complete && p->bm_base == peer_gen;
	if (!from_bitmap)
		repl_bitmap_set_all(p->bm);
	/* from now on the bitmap is what this peer misses, whatever happens
	 * to the link: a later resync resumes from it */
	p->bm_complete = true;
	p->bm_base = peer_gen;
	p->bm_run = rv->primary_runs; /* and it is ours alone: see bitmap_covers */
	p->bm_fp = false;
	p->bm_trk = false;
	p->syncing = true;
	/* RESYNC_DONE waits for the target's STATE saying "inconsistent":
	 * the STATEs it sent before RESYNC_START (outdated, unconfirmed) are
	 * then all in, and none can arrive after RESYNC_DONE and mark it
	 * behind again (a 0-byte resync used to finish first, and the
	 * target, outdated here for good, got no more writes: t-repl-chaos).
	 * A peer without REPL_FEAT_PEER_ACK may not send one: no wait. */
	p->sync_started = !(p->conn->features & REPL_FEAT_PEER_ACK);
	p->sync_cursor = 0;
	p->sync_total = repl_bitmap_count(p->bm) * repl_bitmap_grain(p->bm);
	p->sync_done = 0;
	p->sync_started_ns = now_ns();
	log_info("repl", "%s: resync to peer %u (%s): %llu bytes from %s%s", vname(rv), p->id,
		 p->m->node, (unsigned long long)p->sync_total,
		 from_bitmap ? "its dirty bitmap" : "everything (no bitmap since its generation)",
		 rv->disk == REPL_DISK_DISKLESS ? ", read at up-to-date members" : "");
	m.u.value = p->sync_total;
	if (repl_conn_send(p->conn, &m)) {
		p->syncing = false;
		return;
	}
	pump(rv, p);
}

static void finish(struct repl_vol *rv, struct repl_peer *p)
{
	struct repl_msg m = { .type = REPL_MSG_RESYNC_DONE };
	uint64_t ns = now_ns() - p->sync_started_ns;

	m.u.value = p->sync_done;
	if (repl_conn_send(p->conn, &m))
		return; /* the link is going: on_closed stops the resync */
	p->syncing = false;
	p->outdated = false;
	p->sync_last_total = p->sync_total;
	p->sync_last_done = p->sync_done;
	p->sync_last_ns = ns;
	log_info("repl", "%s: resync to peer %u (%s) done: %llu bytes in %.3f s (%.1f MiB/s)",
		 vname(rv), p->id, p->m->node, (unsigned long long)p->sync_done, ns / 1e9,
		 ns ? p->sync_done / (ns / 1e9) / (1 << 20) : 0.0);
	repl_vol_publish(rv);
}

static void read_done(struct vol_io *io, int res)
{
	struct repl_sync_req *r = container_of(io, struct repl_sync_req, rd);
	struct repl_vol *rv = r->rv;
	struct repl_peer *p = r->p;
	struct repl_msg m = { .type = REPL_MSG_RESYNC_DATA };

	if (!p || !p->live || p->conn != r->c) {
		free_req(rv, r);
		repl_vol_pump_blocked(rv);
		return;
	}
	if (res < 0) {
		log_err("repl", "%s: resync to peer %u: %s read off=%llu failed: %s; stopping",
			vname(rv), p->id, rv->disk == REPL_DISK_DISKLESS ? "peer" : "local",
			(unsigned long long)io->off, strerror(-res));
		free_req(rv, r);
		repl_resync_stop(rv, p, false);
		repl_vol_pump_blocked(rv);
		return;
	}
	/* frames of at most 1 MiB (a grain may be larger), one ack each */
	m.u.io.id = r->id;
	for (uint32_t done = 0; done < io->len; done += m.u.io.length) {
		m.u.io.offset = io->off + done;
		m.u.io.length = MIN(io->len - done, REPL_MAX_DATA);
		m.data = (const uint8_t *)io->buf + done;
		m.data_len = m.u.io.length;
		if (repl_conn_send(p->conn, &m)) {
			/* the link is going: what was queued is dropped with it */
			free_req(rv, r);
			repl_vol_pump_blocked(rv);
			return;
		}
		r->frames++;
	}
	r->sent = true;
}

/* the grains from `bit` on that one transfer takes: consecutive marked
 * ones up to XFER_MAX, none overlapping a write or transfer in flight
 * (0: even the first one overlaps: later) */
static uint64_t run_of(struct repl_vol *rv, struct repl_peer *p, uint64_t bit, uint64_t *off,
		       uint64_t *len)
{
	uint64_t n = 0, o, l;

	*len = 0;
	while (repl_bitmap_test_bit(p->bm, bit + n)) {
		repl_bitmap_bit_range(p->bm, bit + n, &o, &l);
		if (n && *len + l > XFER_MAX)
			break;
		if (repl_vol_writes_overlap(rv, o, l) || repl_resync_overlaps(rv, o, l))
			break;
		if (!n)
			*off = o;
		*len += l;
		n++;
		if (bit + n >= repl_bitmap_total_bits(p->bm))
			break;
	}
	return n;
}

static void pump(struct repl_vol *rv, struct repl_peer *p)
{
	struct vol_backend *local = rv->b.next;
	bool wrapped = false;

	while (p->syncing && p->live && p->sync_inflight < SYNC_DEPTH &&
	       p->sync_inflight_bytes < SYNC_BYTES &&
	       (!rv->resync_rate || rv->resync_tokens > 0)) {
		uint64_t bit = repl_bitmap_find_next_set(p->bm, p->sync_cursor), off = 0, len, n;
		struct repl_sync_req *r;

		if (rv->disk == REPL_DISK_DISKLESS && !repl_read_source(rv)) {
			log_warn("repl", "%s: resync to peer %u (%s): no up-to-date member left "
				 "to read from; it resumes when one is back", vname(rv), p->id,
				 p->m->node);
			repl_resync_stop(rv, p, false);
			return;
		}

		if (bit == REPL_BM_NONE) {
			if (!wrapped && p->sync_cursor) {
				/* grains skipped for an overlap, or marked again */
				p->sync_cursor = 0;
				wrapped = true;
				continue;
			}
			if (!p->sync_inflight && !repl_bitmap_count(p->bm) && p->sync_started)
				finish(rv, p);
			return;
		}
		/* a write in flight there: take the grain after it completed */
		n = run_of(rv, p, bit, &off, &len);
		p->sync_cursor = bit + (n ? n : 1);
		if (!n)
			continue;
		r = calloc(1, sizeof(*r));
		if (!r || !(r->rd.buf = iobuf_get(len))) {
			free(r);
			return; /* retried on the next tick */
		}
		r->rv = rv;
		r->p = p;
		r->c = p->conn;
		r->id = ++rv->sync_next_id;
		r->bit = bit;
		r->nbits = n;
		r->rd.op = VOL_READ;
		r->rd.off = off;
		r->rd.len = (uint32_t)len;
		r->rd.vol = rv->v;
		r->rd.chain_done = read_done;
		r->next = rv->syncs;
		rv->syncs = r;
		p->sync_inflight++;
		p->sync_inflight_bytes += len;
		rv->resync_tokens -= (int64_t)len;
		/* a diskless primary reads at an up-to-date member; the target
		 * is not one (syncing), and nothing else touches r after this:
		 * a read that fails at once has freed it */
		if (rv->disk == REPL_DISK_DISKLESS)
			repl_read_start(rv, &r->rd);
		else
			local->ops->submit(local, &r->rd);
	}
}

int repl_resync_on_ack(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
		       char *why, size_t whylen)
{
	struct repl_sync_req *r;

	for (r = rv->syncs; r; r = r->next)
		if (r->p == p && r->sent && r->id == m->u.ack.id)
			break;
	if (!r) {
		snprintf(why, whylen, "RESYNC_ACK for id %llu that was not sent to this peer",
			 (unsigned long long)m->u.ack.id);
		return -EBADMSG;
	}
	if (m->u.ack.status != REPL_ST_OK) {
		log_warn("repl", "%s: peer %u (%s) failed resync data off=%llu: %s; stopping",
			 vname(rv), p->id, p->m->node, (unsigned long long)r->rd.off,
			 repl_status_name(m->u.ack.status));
		free_req(rv, r);
		repl_resync_stop(rv, p, false);
		repl_vol_pump_blocked(rv);
		return 0;
	}
	if (--r->frames)
		return 0; /* more frames of this transfer to come */
	repl_bitmap_clear_bits(p->bm, r->bit, r->nbits);
	p->sync_done += r->rd.len;
	free_req(rv, r);
	repl_vol_pump_blocked(rv);
	pump(rv, p);
	return 0;
}

void repl_resync_stop(struct repl_vol *rv, struct repl_peer *p, bool peer_gone)
{
	if (p->syncing)
		log_info("repl", "%s: resync to peer %u (%s) stopped at %llu of %llu bytes%s",
			 vname(rv), p->id, p->m->node, (unsigned long long)p->sync_done,
			 (unsigned long long)p->sync_total,
			 peer_gone ? " (peer gone: resumes from the bitmap)" : "");
	p->syncing = false;
	if (!peer_gone)
		return; /* transfers in flight still complete and clear their bits */
	/* the link is gone and nothing reads our buffers any more (on_closed):
	 * drop what was sent; reads still running find r->p NULL */
	for (struct repl_sync_req *r = rv->syncs, *next; r; r = next) {
		next = r->next;
		if (r->p != p)
			continue;
		if (r->sent) {
			free_req(rv, r);
		} else {
			r->p = NULL;
			p->sync_inflight--;
			p->sync_inflight_bytes -= r->rd.len;
		}
	}
}

void repl_resync_pump_all(struct repl_vol *rv)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		if (rv->peers[i].syncing)
			pump(rv, &rv->peers[i]);
}

void repl_resync_tick(struct repl_vol *rv, unsigned ms)
{
	repl_tokens_refill(&rv->resync_tokens, rv->resync_rate, ms);
	repl_resync_pump_all(rv);
}

void repl_resync_free(struct repl_vol *rv)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		repl_bitmap_free(rv->peers[i].bm);
		rv->peers[i].bm = NULL;
	}
}
