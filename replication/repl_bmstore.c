/* The per-peer dirty bitmaps on disk (repl_bitmap.h is the pure codec):
 * a primary that restarts, cleanly or after a crash, still knows what
 * each absent peer misses, and resyncs only that when the peer returns.
 *
 * Slot i of the metadata file holds member i's bitmap. Every block of a
 * slot carries the slot's claim: seq = the generation the bits count from
 * (the peer's generation when it left in sync), 0 = no claim, and flag
 * REPL_BMB_F_FORMER_PRIMARY (the peer was primary when it left: its
 * activity log must add to the bits). A claim that changes rewrites the
 * slot whole, so a slot whose blocks disagree (a torn rewrite) is no
 * claim at all.
 *
 *   flush                 one at a time, asynchronous: every dirty block,
 *                         and every block of a slot whose claim changed,
 *                         RWF_DSYNC; on the timer (at most once a second),
 *                         before an activity-log transaction that evicts
 *                         extents (rule 3, repl_al.h), and at a clean stop
 *   STORE_SB_F_BM_VALID   the slots say what this member's memory said at
 *                         some point of its current term as primary:
 *                         cleared with every change of term (promote,
 *                         demote, a resync of us), set again once the
 *                         first flush of a term is durable
 *   start                 with WAS_PRIMARY and BM_VALID the slots are
 *                         loaded; the recovered activity-log extents join
 *                         every loaded bitmap (rule 5: writes in flight at
 *                         the end may have reached some replicas only)
 *
 * Why bits that are on disk plus the log's extents are enough: a bit is
 * set in memory when a write completes without the peer's ack, and that
 * write's extents stay in the activity log until a transaction evicts
 * them, which is written only after a flush made those bits durable. So
 * whatever the disk lacks is in the extents the log recovers. A claim
 * that changed in memory but not yet on disk is harmless: the old one
 * names a generation the peer no longer has (it left again, or was
 * resynced), or is older and so a superset of the bits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iobuf.h"
#include "log.h"
#include "repl_volume_priv.h"
#include "util.h"

#define BMS_DEPTH        32    /* block writes in flight */
#define BMS_INTERVAL_NS  1000000000ull

struct bms_write {
	struct reactor_op op;
	struct repl_bmstore *s;
	uint32_t slot;
	uint64_t idx;
	uint8_t *buf;
};

struct repl_bmstore {
	struct repl_vol *rv;
	bool busy;                  /* a flush in flight */
	bool again;                 /* another one was asked for meanwhile */
	bool failed;                /* a write of the flush in flight failed */
	bool validate;              /* set BM_VALID once a flush is durable */
	uint64_t started, completed; /* flush numbers: the last started, the
				      * last durable */
	uint64_t last_ns;
	uint32_t cur_slot;          /* cursor of the flush in flight */
	uint64_t cur_idx;
	unsigned inflight;
	/* the claim each slot's flush writes (valid for the slots visited) */
	uint64_t w_base[REPL_MAX_NODES];
	uint32_t w_flags[REPL_MAX_NODES];
	bool w_visited[REPL_MAX_NODES], w_failed[REPL_MAX_NODES];
	bool loaded;                /* bitmaps came from the disk at start */
	uint64_t gen_at_load;
};

static bool slot_kept(const struct repl_vol *rv, uint32_t i)
{
	const struct repl_peer *p = &rv->peers[i];

	return p->m && !p->m->diskless && i != rv->cfg.local_id;
}

static void claim_of(const struct repl_peer *p, uint64_t *base, uint32_t *flags)
{
	*base = p->bm && p->bm_complete ? p->bm_base : 0;
	*flags = *base && p->bm_fp ? REPL_BMB_F_FORMER_PRIMARY : 0;
}

/* the slot on disk may say something else than memory does */
static bool claim_changed(const struct repl_peer *p)
{
	uint64_t base;
	uint32_t flags;

	claim_of(p, &base, &flags);
	return !p->bm_disk_known || p->bm_disk_base != base || p->bm_disk_flags != flags;
}

static bool has_work(struct repl_vol *rv)
{
	for (uint32_t i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (!slot_kept(rv, i))
			continue;
		if (claim_changed(p) ||
		    (p->bm && repl_bitmap_next_dirty_block(p->bm, 0) != REPL_BM_NONE))
			return true;
	}
	return false;
}

static void flush_done(struct repl_bmstore *s);
static void pump(struct repl_bmstore *s);

static void write_done(struct reactor_op *op, int res)
{
	struct bms_write *w = container_of(op, struct bms_write, op);
	struct repl_bmstore *s = w->s;
	struct repl_vol *rv = s->rv;

	if (res != REPL_BM_BLOCK_SIZE) {
		struct repl_peer *p = &rv->peers[w->slot];

		log_rl(LOG_LVL_ERR, "repl", "%s: dirty bitmap of peer %u, block %llu: write "
		       "failed: %s", vname(rv), w->slot, (unsigned long long)w->idx,
		       strerror(res < 0 ? -res : EIO));
		if (p->bm && w->idx < repl_bitmap_blocks(p->bm))
			repl_bitmap_mark_block_dirty(p->bm, w->idx);
		s->failed = true;
		s->w_failed[w->slot] = true;
	}
	iobuf_put(w->buf, REPL_BM_BLOCK_SIZE);
	free(w);
	s->inflight--;
	pump(s);
}

static int issue(struct repl_bmstore *s, struct repl_peer *p, uint32_t slot, uint64_t idx)
{
	struct repl_vol *rv = s->rv;
	const struct store_meta *m = &rv->v->sv->meta;
	struct bms_write *w = calloc(1, sizeof(*w));
	uint64_t off;

	if (!w || !(w->buf = iobuf_get(REPL_BM_BLOCK_SIZE))) {
		free(w);
		return -ENOMEM;
	}
	if (repl_bitmap_block_offset(m, slot, idx, &off) ||
	    repl_bitmap_encode_block(p->bm, idx, slot, &m->uuid, s->w_base[slot],
				     s->w_flags[slot], w->buf)) {
		iobuf_put(w->buf, REPL_BM_BLOCK_SIZE);
		free(w);
		return -EINVAL;
	}
	w->s = s;
	w->slot = slot;
	w->idx = idx;
	w->op.cb = write_done;
	s->inflight++;
	reactor_write(rv->b.r, &w->op, rv->v->sv->meta_fd, w->buf, REPL_BM_BLOCK_SIZE, off,
		      RWF_DSYNC);
	return 0;
}

/* Issues the next dirty blocks, slot by slot; the flush is done once the
 * cursor passed the last slot and nothing is in flight. */
static void pump(struct repl_bmstore *s)
{
	struct repl_vol *rv = s->rv;

	while (s->inflight < BMS_DEPTH && s->cur_slot < REPL_MAX_NODES) {
		uint32_t i = s->cur_slot;
		struct repl_peer *p = &rv->peers[i];
		uint64_t idx;

		if (!slot_kept(rv, i)) {
			s->cur_slot++;
			s->cur_idx = 0;
			continue;
		}
		if (!s->w_visited[i]) {
			/* entering the slot: a changed claim rewrites it whole */
			s->w_visited[i] = true;
			s->w_failed[i] = false;
			if (claim_changed(p)) {
				if (!repl_resync_bitmap(rv, p)) {
					s->failed = true;
					s->w_failed[i] = true;
					s->cur_slot++;
					continue;
				}
				for (uint64_t b = 0; b < repl_bitmap_blocks(p->bm); b++)
					repl_bitmap_mark_block_dirty(p->bm, b);
			}
			claim_of(p, &s->w_base[i], &s->w_flags[i]);
		}
		idx = p->bm ? repl_bitmap_next_dirty_block(p->bm, s->cur_idx) : REPL_BM_NONE;
		if (idx == REPL_BM_NONE) {
			s->cur_slot++;
			s->cur_idx = 0;
			continue;
		}
		s->cur_idx = idx + 1;
		if (issue(s, p, i, idx)) {
			s->failed = true;
			s->w_failed[i] = true;
			break;
		}
	}
	if (s->inflight == 0 && (s->cur_slot >= REPL_MAX_NODES || s->failed))
		flush_done(s);
}

static void start(struct repl_bmstore *s)
{
	s->busy = true;
	s->failed = false;
	s->started++;
	s->cur_slot = 0;
	s->cur_idx = 0;
	s->last_ns = now_ns();
	memset(s->w_visited, 0, sizeof(s->w_visited));
	pump(s);
}

static void validate(struct repl_bmstore *s)
{
	if (s->validate && (s->rv->v->sv->meta.flags & STORE_SB_F_WAS_PRIMARY) &&
	    repl_vol_sb_flag(s->rv, STORE_SB_F_BM_VALID, true) >= 0)
		s->validate = false;
}

static void flush_done(struct repl_bmstore *s)
{
	struct repl_vol *rv = s->rv;

	if (!s->busy)
		return;
	for (uint32_t i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (!s->w_visited[i])
			continue;
		p->bm_disk_known = !s->w_failed[i];
		p->bm_disk_base = s->w_base[i];
		p->bm_disk_flags = s->w_flags[i];
	}
	s->busy = false;
	if (!s->failed) {
		s->completed = s->started;
		/* the slots now say what memory said during this term */
		validate(s);
	}
	if (s->again) {
		s->again = false;
		start(s);
		return;
	}
	repl_actlog_bm_flushed(rv);
}

uint64_t repl_bmstore_flush(struct repl_vol *rv)
{
	struct repl_bmstore *s = rv->bmstore;

	if (!s)
		return 0;
	if (s->busy) {
		s->again = true;
		return s->started + 1;
	}
	if (!has_work(rv))
		return 0;
	start(s);
	/* it may have completed at once (nothing could be issued) */
	return s->busy || s->failed ? s->started : 0;
}

bool repl_bmstore_flushed(const struct repl_vol *rv, uint64_t seq)
{
	return !rv->bmstore || seq <= rv->bmstore->completed;
}

bool repl_bmstore_dirty(struct repl_vol *rv)
{
	return rv->bmstore && has_work(rv);
}

void repl_bmstore_tick(struct repl_vol *rv)
{
	struct repl_bmstore *s = rv->bmstore;

	if (s && !s->busy && now_ns() - s->last_ns >= BMS_INTERVAL_NS && has_work(rv))
		start(s);
}

unsigned repl_bmstore_busy(struct repl_vol *rv)
{
	struct repl_bmstore *s = rv->bmstore;

	if (!s)
		return 0;
	/* a clean stop writes what is left once; if that fails, the slots
	 * count for nothing at the next start */
	if (!s->busy && !s->failed && has_work(rv))
		start(s);
	if (!s->busy && s->failed && (rv->v->sv->meta.flags & STORE_SB_F_BM_VALID)) {
		s->validate = false;
		repl_vol_sb_flag(rv, STORE_SB_F_BM_VALID, false);
	}
	return s->busy;
}

int repl_bmstore_new_term(struct repl_vol *rv, uint32_t flags_on, uint32_t flags_off)
{
	struct store_meta m = rv->v->sv->meta;
	int ret;

	m.flags = (m.flags | flags_on) & ~(flags_off | STORE_SB_F_BM_VALID);
	if (m.flags == rv->v->sv->meta.flags)
		ret = 0;
	else
		ret = store_write_meta(rv->v->sv, &m);
	if (ret == 0 && rv->bmstore) {
		struct repl_bmstore *s = rv->bmstore;

		s->validate = (flags_on & STORE_SB_F_WAS_PRIMARY) != 0;
		/* nothing to write: the slots say it already */
		if (s->validate && !repl_bmstore_flush(rv) && !s->busy)
			validate(s);
	}
	return ret;
}

void repl_bmstore_resized(struct repl_vol *rv)
{
	/* the slots may have moved (store_meta_layout): rewrite them all,
	 * and trust none of them until that is durable */
	if (!rv->bmstore)
		return;
	for (uint32_t i = 0; i < REPL_MAX_NODES; i++)
		rv->peers[i].bm_disk_known = false;
	if (rv->role == REPL_ROLE_PRIMARY)
		repl_bmstore_new_term(rv, STORE_SB_F_WAS_PRIMARY, 0);
}

/* ---- start --------------------------------------------------------------------------- */

/* slot i into a fresh bitmap: its claim, or 0 when the slot says nothing
 * usable (never written, no claim, torn, foreign, another grain) */
static uint64_t load_slot(struct repl_vol *rv, uint32_t i, uint8_t *buf,
			  struct repl_dirty_bitmap **out, uint32_t *flags, char *why,
			  size_t whylen)
{
	const struct store_meta *m = &rv->v->sv->meta;
	struct repl_dirty_bitmap *bm = repl_bitmap_create(rv->v->size, m->bm_grain);
	uint64_t base = 0, off;

	*out = NULL;
	if (!bm) {
		snprintf(why, whylen, "no memory");
		return 0;
	}
	for (uint64_t b = 0; b < repl_bitmap_blocks(bm); b++) {
		enum repl_bm_block_err e;
		uint64_t seq = 0;
		uint32_t f = 0;
		ssize_t n;

		if (repl_bitmap_block_offset(m, i, b, &off)) {
			snprintf(why, whylen, "block %llu outside the layout", (unsigned long long)b);
			goto bad;
		}
		n = pread(rv->v->sv->meta_fd, buf, REPL_BM_BLOCK_SIZE, (off_t)off);
		if (n >= 0 && n < REPL_BM_BLOCK_SIZE)
			memset(buf + n, 0, REPL_BM_BLOCK_SIZE - (size_t)n); /* past the end: never written */
		if (n < 0) {
			snprintf(why, whylen, "block %llu: %s", (unsigned long long)b, strerror(errno));
			goto bad;
		}
		e = repl_bitmap_decode_block(bm, b, i, &m->uuid, buf, REPL_BM_BLOCK_SIZE, &seq, &f);
		if (!repl_bm_block_usable(e)) {
			snprintf(why, whylen, "block %llu: %s", (unsigned long long)b,
				 repl_bm_block_err_name(e));
			goto bad;
		}
		if (!seq) {
			snprintf(why, whylen, "no claim");
			goto bad;
		}
		if (b == 0) {
			base = seq;
			*flags = f;
		} else if (seq != base || f != *flags) {
			snprintf(why, whylen, "block %llu is of another claim (a rewrite was cut "
				 "short)", (unsigned long long)b);
			goto bad;
		}
	}
	*out = bm;
	return base;
bad:
	repl_bitmap_free(bm);
	return 0;
}

int repl_bmstore_open(struct repl_vol *rv)
{
	const struct store_meta *m = &rv->v->sv->meta;
	struct repl_bmstore *s;
	uint8_t *buf;
	bool load = (m->flags & STORE_SB_F_WAS_PRIMARY) && (m->flags & STORE_SB_F_BM_VALID);

	if (rv->cfg.members[rv->cfg.local_id].diskless)
		return 0; /* never primary with data: no bitmaps to keep */
	/* plain malloc: this runs on the control thread, whose iobuf cache
	 * nobody would drain (the meta file is not O_DIRECT) */
	s = calloc(1, sizeof(*s));
	buf = malloc(REPL_BM_BLOCK_SIZE);
	if (!s || !buf) {
		free(s);
		free(buf);
		return -ENOMEM;
	}
	s->rv = rv;
	s->last_ns = now_ns();
	rv->bmstore = s;
	for (uint32_t i = 0; load && i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];
		struct repl_dirty_bitmap *bm;
		uint32_t flags = 0;
		char why[160] = "";
		uint64_t base;
		int marked;

		if (!slot_kept(rv, i))
			continue;
		base = load_slot(rv, i, buf, &bm, &flags, why, sizeof(why));
		if (!base) {
			log_warn("repl", "%s: dirty bitmap of peer %u (%s) not usable (%s): it gets "
				 "a full resync", vname(rv), i, p->m->node, why);
			continue;
		}
		repl_bitmap_free(p->bm);
		p->bm = bm;
		p->bm_complete = true;
		p->bm_base = base;
		p->bm_fp = flags & REPL_BMB_F_FORMER_PRIMARY;
		p->bm_run = 0; /* not this run's: an unconfirmed peer gets everything */
		p->bm_disk_known = true;
		p->bm_disk_base = base;
		p->bm_disk_flags = flags;
		/* rule 5: what was in flight at a crash may be on some
		 * replicas only; a clean stop wrote the bits exactly */
		marked = rv->v->sv->opened_clean ? 0 : repl_actlog_mark_recovered(rv, p);
		if (marked < 0) {
			p->bm_complete = false;
			log_warn("repl", "%s: dirty bitmap of peer %u (%s) loaded, but the activity "
				 "log is unknown: full resync", vname(rv), i, p->m->node);
			continue;
		}
		s->loaded = true;
		log_info("repl", "%s: dirty bitmap of peer %u (%s) loaded: %llu bytes out of sync "
			 "since generation %016llx (%d activity-log extents added)%s", vname(rv), i,
			 p->m->node,
			 (unsigned long long)(repl_bitmap_count(bm) * repl_bitmap_grain(bm)),
			 (unsigned long long)base, marked,
			 p->bm_fp ? ", it was primary when it left" : "");
	}
	s->gen_at_load = m->gen.current;
	free(buf);
	return 0;
}

void repl_bmstore_promoted(struct repl_vol *rv)
{
	struct repl_bmstore *s = rv->bmstore;

	if (!s || !s->loaded)
		return;
	s->loaded = false;
	if (rv->v->sv->meta.gen.current == s->gen_at_load)
		return;
	/* another primary's writes came in since: the loaded bits lack them */
	for (uint32_t i = 0; i < REPL_MAX_NODES; i++)
		if (rv->peers[i].bm_run == 0)
			rv->peers[i].bm_complete = false;
	log_info("repl", "%s: the dirty bitmaps loaded at start are stale (generation changed "
		 "since): peers behind get a full resync", vname(rv));
}

void repl_bmstore_free(struct repl_vol *rv)
{
	free(rv->bmstore);
	rv->bmstore = NULL;
}
