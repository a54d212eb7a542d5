/* The activity log on the primary's write path, and what a primary that
 * crashed brings back (repl_al.h is the pure log; this file does its I/O).
 *
 *   write-like request   repl_al_begin on its range; when its extents are
 *                        not in a durable transaction yet it waits
 *                        (repl_actlog_hold) while one is written (one 4 KiB
 *                        block, RWF_DSYNC, at the ring slot), then goes out
 *   request freed        repl_al_end: its extents may leave the set
 *   promote              STORE_SB_F_WAS_PRIMARY persisted; cleared by a
 *                        clean demote or a completed resync
 *   start with the flag  the log is recovered: the extents are what may
 *                        differ from the others (writes in flight at the
 *                        crash); STATE says CRASHED_PRIMARY and every new
 *                        link gets AL_EXTENTS after our STATE
 *   the new primary      resyncs us from its bitmap, complete since its
 *                        promotion (repl_actlog_track_former_primary),
 *                        plus those extents, instead of everything
 *
 * Why that is enough: a write is sent to the peers and written locally at
 * once, and only after its extents are on record, so whatever a crashed
 * primary holds that a peer lacks, or the other way round, lies in its
 * logged extents. The new primary wrote everything else since. Its
 * bitmap is trusted only when the generation we bring back is the one it
 * had at its promotion (a member that followed another primary in
 * between has another generation: full resync). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iobuf.h"
#include "log.h"
#include "repl_al.h"
#include "repl_volume_priv.h"
#include "util.h"

enum { AL_NONE, AL_WAIT_TXN, AL_WAIT_BEGIN };

struct repl_actlog {
	struct repl_vol *rv;
	struct repl_al *al;
	uint8_t *buf;               /* the transaction block in flight */
	struct reactor_op op;
	bool busy;                  /* a transaction write in flight */
	uint64_t busy_seq;
	uint64_t txn_offset;        /* where it goes */
	uint64_t bm_wait;           /* it evicts extents: it waits for this bitmap flush */
	struct repl_req *held, **held_tail;
	/* a crash we came back from */
	bool crashed;
	uint32_t flags;             /* REPL_AL_F_UNKNOWN when the log was unreadable */
	uint32_t count;
	uint8_t *wire;              /* count big-endian u32 extents */
	/* the log's extents plus those of every member's loaded bitmap, for
	 * AL_EXTENTS with REPL_AL_F_COVERS (repl_actlog_cover_bitmaps); NULL:
	 * the log's alone, without the flag */
	uint8_t *cover;
	uint32_t cover_count;
};

static void write_txn(struct repl_vol *rv);

static void hold(struct repl_actlog *a, struct repl_req *q, uint8_t state)
{
	q->al_state = state;
	q->al_next = NULL;
	*a->held_tail = q;
	a->held_tail = &q->al_next;
}

/* 0: may go; 1: waits for a transaction; -EBUSY: waits for extents */
static int begin(struct repl_vol *rv, struct repl_req *q)
{
	struct repl_actlog *a = rv->actlog;
	bool need_txn = false;
	uint64_t wait = 0;
	int ret = repl_al_begin(a->al, q->sub.off, q->sub.len, &need_txn, &wait);

	if (ret == -EBUSY)
		return -EBUSY;
	if (ret) {
		/* out of range: the local write fails on its own */
		log_rl(LOG_LVL_WARN, "repl", "%s: activity log: %s off=%llu len=%u: %s",
		       vname(rv), vol_op_name(q->sub.op), (unsigned long long)q->sub.off,
		       q->sub.len, strerror(-ret));
		return 0;
	}
	q->al_begun = true;
	if (wait <= repl_al_durable_seq(a->al))
		return 0;
	q->al_wait = wait;
	return 1;
}

bool repl_actlog_hold(struct repl_vol *rv, struct repl_req *q)
{
	struct repl_actlog *a = rv->actlog;
	int ret;

	if (!a || !is_write_like(q->sub.op))
		return false;
	/* behind earlier held requests: the issue order stays the arrival order */
	ret = a->held ? -EBUSY : begin(rv, q);
	if (ret == 0)
		return false;
	hold(a, q, ret == 1 ? AL_WAIT_TXN : AL_WAIT_BEGIN);
	if (ret == 1)
		write_txn(rv);
	return true;
}

/* issue what the log now covers, in order; begin the ones waiting for
 * extents */
static void release(struct repl_vol *rv)
{
	struct repl_actlog *a = rv->actlog;

	while (a->held) {
		struct repl_req *q = a->held;
		int ret;

		if (q->al_state == AL_WAIT_BEGIN) {
			if ((ret = begin(rv, q)) == -EBUSY)
				break;
			q->al_state = ret == 1 ? AL_WAIT_TXN : AL_NONE;
		} else if (q->al_wait <= repl_al_durable_seq(a->al)) {
			q->al_state = AL_NONE;
		}
		if (q->al_state != AL_NONE)
			break;
		a->held = q->al_next;
		if (!a->held)
			a->held_tail = &a->held;
		repl_vol_issue(rv, q);
	}
	if (a->held && a->held->al_state == AL_WAIT_TXN)
		write_txn(rv);
}

static void txn_done(struct reactor_op *op, int res)
{
	struct repl_actlog *a = container_of(op, struct repl_actlog, op);
	struct repl_vol *rv = a->rv;
	int err = res == REPL_AL_BLOCK_SIZE ? 0 : res < 0 ? res : -EIO;

	a->busy = false;
	repl_al_txn_done(a->al, a->busy_seq, err);
	if (err) {
		/* the held writes wait; the timer tries again */
		log_rl(LOG_LVL_ERR, "repl", "%s: activity log write failed: %s (writes into "
		       "new extents wait)", vname(rv), strerror(-err));
		return;
	}
	release(rv);
}

static void issue_txn(struct repl_vol *rv)
{
	struct repl_actlog *a = rv->actlog;

	a->bm_wait = 0;
	a->op.cb = txn_done;
	reactor_write(rv->b.r, &a->op, rv->v->sv->meta_fd, a->buf, REPL_AL_BLOCK_SIZE,
		      a->txn_offset, RWF_DSYNC);
}

static void write_txn(struct repl_vol *rv)
{
	struct repl_actlog *a = rv->actlog;
	struct repl_al_txn txn;
	uint64_t wait = 0;

	if (a->busy || !repl_al_txn_pending(a->al))
		return;
	if (repl_al_encode_txn(a->al, a->buf, &txn))
		return;
	a->busy = true;
	a->busy_seq = txn.seq;
	a->txn_offset = rv->v->sv->meta.al_offset + txn.area_offset;
	/* rule 3: the bits of the extents it drops are on disk first */
	if (txn.n_evicted && repl_bmstore_dirty(rv))
		wait = repl_bmstore_flush(rv);
	if (wait && !repl_bmstore_flushed(rv, wait)) {
		a->bm_wait = wait;
		return;
	}
	issue_txn(rv);
}

void repl_actlog_bm_flushed(struct repl_vol *rv)
{
	struct repl_actlog *a = rv->actlog;

	if (a && a->bm_wait && repl_bmstore_flushed(rv, a->bm_wait))
		issue_txn(rv);
}

void repl_actlog_end(struct repl_vol *rv, struct repl_req *q)
{
	struct repl_actlog *a = rv->actlog;

	if (!a || !q->al_begun)
		return;
	q->al_begun = false;
	repl_al_end(a->al, q->sub.off, q->sub.len);
	if (a->held && a->held->al_state == AL_WAIT_BEGIN)
		release(rv);
}

void repl_actlog_tick(struct repl_vol *rv)
{
	if (rv->actlog && rv->actlog->held)
		write_txn(rv);
}

unsigned repl_actlog_busy(const struct repl_vol *rv)
{
	return rv->actlog && rv->actlog->busy;
}

int repl_actlog_resize(struct repl_vol *rv, uint64_t size)
{
	return rv->actlog ? repl_al_resize(rv->actlog->al, size) : 0;
}

/* ---- a crash we came back from -------------------------------------------------- */

/* count big-endian extents into p's bitmap: how many lie in the volume */
static int mark_extents(struct repl_vol *rv, struct repl_peer *p, const uint8_t *wire,
			uint32_t count)
{
	int n = 0;

	for (uint32_t i = 0; i < count; i++) {
		uint64_t off = (uint64_t)get_be32(wire + 4 * i) << REPL_AL_EXTENT_SHIFT;

		if (off >= rv->v->size)
			continue;
		repl_resync_mark_peer(rv, p, off, MIN(REPL_AL_EXTENT_SIZE, rv->v->size - off));
		n++;
	}
	return n;
}

int repl_actlog_mark_recovered(struct repl_vol *rv, struct repl_peer *p)
{
	struct repl_actlog *a = rv->actlog;

	if (!repl_actlog_crashed(rv))
		return 0;
	if (a->flags & REPL_AL_F_UNKNOWN)
		return -1;
	return mark_extents(rv, p, a->wire, a->count);
}

bool repl_actlog_crashed(const struct repl_vol *rv)
{
	return rv->actlog && rv->actlog->crashed;
}

void repl_actlog_settled(struct repl_vol *rv, const char *why)
{
	if (!repl_actlog_crashed(rv))
		return;
	rv->actlog->crashed = false;
	log_info("repl", "%s: the crash as primary is settled (%s)", vname(rv), why);
}

/* Reads the ring. The sequence always continues from the newest valid
 * block, crash or not: a log starting again at 1 would lose to the stale
 * blocks of an earlier term at the next recovery (rule 5, repl_al.h).
 * The extents only count after a crash as primary (the flag). */
static void recover(struct repl_vol *rv, bool crashed)
{
	struct repl_actlog *a = rv->actlog;
	const struct store_meta *m = &rv->v->sv->meta;
	struct repl_al_recovery *rec = calloc(1, sizeof(*rec));
	uint8_t *area = malloc(m->al_len);
	ssize_t n;
	int ret = -ENOMEM;

	a->crashed = crashed;
	a->flags = REPL_AL_F_UNKNOWN;
	if (rec && area) {
		n = pread(rv->v->sv->meta_fd, area, m->al_len, (off_t)m->al_offset);
		ret = n == (ssize_t)m->al_len ? repl_al_recover(area, m->al_len, &m->uuid, m->size, rec)
					       : -EIO;
	}
	if (ret == 0 && rec->slot >= 0)
		repl_al_restore(a->al, rec);
	if (!crashed) {
		if (ret && ret != -EBADMSG)
			log_warn("repl", "%s: cannot read the activity log: %s", vname(rv),
				 strerror(-ret));
	} else if (ret == 0 && (a->wire = malloc(4 * (size_t)rec->count + 4))) {
		a->flags = 0;
		a->count = rec->count;
		for (uint32_t i = 0; i < rec->count; i++)
			put_be32(a->wire + 4 * i, rec->extents[i]);
		log_warn("repl", "%s: was primary at a crash: %u activity-log extents (%llu MiB) "
			 "may differ from the others; the next primary resyncs them",
			 vname(rv), rec->count,
			 (unsigned long long)rec->count * (REPL_AL_EXTENT_SIZE >> 20));
	} else {
		log_err("repl", "%s: was primary at a crash, and its activity log is unusable "
			"(%s): the next primary resyncs it entirely", vname(rv),
			ret == -EBADMSG ? "no valid transaction" : strerror(-ret));
	}
	free(rec);
	free(area);
}

int repl_actlog_open(struct repl_vol *rv)
{
	struct repl_actlog *a;
	const struct store_meta *m = &rv->v->sv->meta;

	if (rv->cfg.members[rv->cfg.local_id].diskless)
		return 0; /* no local data: nothing to log */
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->rv = rv;
	a->held_tail = &a->held;
	a->al = repl_al_create(rv->v->size, REPL_AL_MAX_EXTENTS, &m->uuid);
	a->buf = iobuf_get(REPL_AL_BLOCK_SIZE);
	if (!a->al || !a->buf) {
		repl_al_free(a->al);
		if (a->buf)
			iobuf_put(a->buf, REPL_AL_BLOCK_SIZE);
		free(a);
		return -ENOMEM;
	}
	rv->actlog = a;
	recover(rv, m->flags & STORE_SB_F_WAS_PRIMARY);
	return 0;
}

void repl_actlog_free(struct repl_vol *rv)
{
	struct repl_actlog *a = rv->actlog;

	if (!a)
		return;
	repl_al_free(a->al);
	iobuf_put(a->buf, REPL_AL_BLOCK_SIZE);
	free(a->wire);
	free(a->cover);
	free(a);
	rv->actlog = NULL;
}

void repl_actlog_send(struct repl_vol *rv, struct repl_conn *c)
{
	struct repl_actlog *a = rv->actlog;
	struct repl_msg m = { .type = REPL_MSG_AL_EXTENTS };

	if (!repl_actlog_crashed(rv) || !(c->features & REPL_FEAT_AL_EXTENTS))
		return;
	m.u.al.count = a->cover ? a->cover_count : a->count;
	m.u.al.flags = a->cover ? REPL_AL_F_COVERS : a->flags;
	m.data = a->cover ? a->cover : a->count ? a->wire : NULL; /* live as long as the volume */
	m.data_len = 4 * m.u.al.count;
	repl_conn_send(c, &m);
}

void repl_actlog_cover_bitmaps(struct repl_vol *rv)
{
	struct repl_actlog *a = rv->actlog;
	uint64_t n = (rv->v->size + REPL_AL_EXTENT_SIZE - 1) >> REPL_AL_EXTENT_SHIFT;
	uint32_t count = 0, k = 0;
	uint8_t *seen;

	if (!a || !a->crashed || a->flags || !(seen = calloc(n, 1)))
		return;
	for (uint32_t i = 0; i < a->count; i++) {
		uint64_t e = get_be32(a->wire + 4 * i);

		if (e < n)
			seen[e] = 1;
	}
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const struct repl_peer *p = &rv->peers[i];
		uint64_t bit, off, len;

		if (!p->m || p->m->diskless)
			continue;
		if (!p->bm || !p->bm_complete) {
			free(seen); /* a member we cannot vouch for */
			return;
		}
		for (bit = repl_bitmap_find_next_set(p->bm, 0); bit != REPL_BM_NONE;
		     bit = repl_bitmap_find_next_set(p->bm, bit + 1)) {
			repl_bitmap_bit_range(p->bm, bit, &off, &len);
			for (uint64_t e = off >> REPL_AL_EXTENT_SHIFT;
			     len && e <= (off + len - 1) >> REPL_AL_EXTENT_SHIFT && e < n; e++)
				seen[e] = 1;
		}
	}
	for (uint64_t e = 0; e < n; e++)
		count += seen[e];
	if (count <= REPL_MAX_AL_EXTENTS && (a->cover = malloc(4ull * count + 4))) {
		for (uint64_t e = 0; e < n; e++)
			if (seen[e])
				put_be32(a->cover + 4 * k++, (uint32_t)e);
		a->cover_count = count;
		log_info("repl", "%s: what any member may differ in lies in %u extent(s) of 4 MiB "
			 "(the log's %u and our dirty bitmaps'): sent with the log", vname(rv),
			 count, a->count);
	}
	free(seen);
}

void repl_actlog_peer_forget(struct repl_peer *p)
{
	free(p->al_wire);
	p->al_wire = NULL;
	p->al_count = 0;
	p->al_gen = 0;
}

/* kept for a promotion of ours while it is still the crashed primary it
 * says it is (repl_volume.c: peer_crash_resync) */
static void keep_extents(struct repl_peer *p, const struct repl_msg *m)
{
	repl_actlog_peer_forget(p);
	if (!(m->u.al.flags & REPL_AL_F_COVERS) || (m->u.al.flags & REPL_AL_F_UNKNOWN) ||
	    !p->st.gen_current)
		return;
	if (m->u.al.count) {
		p->al_wire = malloc(4ull * m->u.al.count);
		if (!p->al_wire)
			return;
		memcpy(p->al_wire, m->data, 4ull * m->u.al.count);
	}
	p->al_count = m->u.al.count;
	p->al_gen = p->st.gen_current;
}

int repl_actlog_mark_peer_log(struct repl_vol *rv, const struct repl_peer *x,
			      struct repl_peer *p)
{
	if (!x->al_gen || !repl_resync_bitmap(rv, p))
		return -1;
	repl_bitmap_clear_all(p->bm);
	return mark_extents(rv, p, x->al_wire, x->al_count);
}

int repl_actlog_on_extents(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
			   char *why, size_t whylen)
{
	uint64_t gen = p->st.gen_current;
	uint32_t n = 0;

	keep_extents(p, m);

	if (!p->await_al || rv->role != REPL_ROLE_PRIMARY) {
		p->await_al = false;
		return 0; /* only the primary it came back to uses them */
	}
	p->await_al = false;
	if (m->u.al.flags & REPL_AL_F_UNKNOWN) {
		p->bm_complete = false;
	} else if (p->bm_complete && p->bm_base == gen) {
		n = (uint32_t)mark_extents(rv, p, m->data, m->u.al.count);
	}
	log_info("repl", "%s: peer %u (%s) was primary at a crash: %s (%u extents)", vname(rv),
		 p->id, p->m->node, m->u.al.flags & REPL_AL_F_UNKNOWN ?
		 "its activity log is unknown: full resync" :
		 !p->bm_complete || p->bm_base != gen ?
		 "no bitmap here since its generation: full resync" :
		 "its activity-log extents join our bitmap", n);
	repl_resync_start(rv, p, gen);
	return 0;
}
