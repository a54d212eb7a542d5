/* The replication layer: write fan-out, acks, quorum, roles, generations,
 * and the secondary's side of the protocol. Runs on the volume's reactor. */
#include "repl_volume.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iobuf.h"
#include "log.h"
#include "repl_conn.h"
#include "repl_volume_priv.h"

static void fill_status(struct repl_vol *rv, struct repl_vol_status *st);
#include "store.h"
#include "util.h"
#include "volume.h"

#define TIMER_MS       200
#define RECONNECT_MIN_MS 200
#define RECONNECT_MAX_MS 2000

static const struct repl_conn_ops conn_ops;
static void broadcast_state(struct repl_vol *rv);
static void quorum_changed(struct repl_vol *rv);

/* ---- generations (pure) ---------------------------------------------------- */

const char *repl_gen_cmp_name(enum repl_gen_cmp c)
{
	static const char *const n[] = {
		[REPL_GEN_SAME] = "same", [REPL_GEN_LOCAL_NEWER] = "local-newer",
		[REPL_GEN_PEER_NEWER] = "peer-newer", [REPL_GEN_SPLIT_BRAIN] = "split-brain",
		[REPL_GEN_UNRELATED] = "unrelated",
	};
	return (unsigned)c < ARRAY_SIZE(n) ? n[c] : "?";
}

static bool in_past(const struct store_generations *g, uint64_t x)
{
	return x && (x == g->bitmap || x == g->history[0] || x == g->history[1]);
}

enum repl_gen_cmp repl_gen_compare(const struct store_generations *l,
				   const struct store_generations *p)
{
	if (l->current == p->current)
		return REPL_GEN_SAME;
	/* generation 0: a member that joined and was never synced is behind
	 * everybody with data */
	if (!l->current || !p->current)
		return l->current ? REPL_GEN_LOCAL_NEWER : REPL_GEN_PEER_NEWER;
	if (in_past(l, p->current))
		return REPL_GEN_LOCAL_NEWER;
	if (in_past(p, l->current))
		return REPL_GEN_PEER_NEWER;
	/* neither current is in the other's past: did they ever share one? */
	if (in_past(p, l->bitmap) || in_past(p, l->history[0]) || in_past(p, l->history[1]))
		return REPL_GEN_SPLIT_BRAIN;
	return REPL_GEN_UNRELATED;
}

void repl_gen_rotate(struct store_generations *g, uint64_t fresh)
{
	if (!g->bitmap) {
		g->bitmap = g->current;
	} else {
		g->history[1] = g->history[0];
		g->history[0] = g->current;
	}
	g->current = fresh;
}

/* ---- helpers ------------------------------------------------------------------ */

static unsigned visible(const struct repl_vol *rv)
{
	unsigned n = 1;

	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		n += rv->peers[i].live && rv->cfg.members[i].present;
	return n;
}

static bool have_quorum(const struct repl_vol *rv)
{
	return rv->force_quorum || visible(rv) >= repl_config_majority(&rv->cfg);
}


static void set_role(struct repl_vol *rv, enum repl_role role)
{
	/* only a primary is a resync source */
	if (role != REPL_ROLE_PRIMARY)
		for (unsigned i = 0; i < REPL_MAX_NODES; i++)
			if (rv->peers[i].syncing)
				repl_resync_stop(rv, &rv->peers[i], false);
	if (role == REPL_ROLE_PRIMARY && rv->role != REPL_ROLE_PRIMARY)
		rv->primary_runs++;
	/* a secondary marks nothing: once another member may write, no
	 * bitmap here says all a peer misses any more */
	if (role != REPL_ROLE_PRIMARY && rv->role == REPL_ROLE_PRIMARY)
		for (unsigned i = 0; i < REPL_MAX_NODES; i++)
			rv->peers[i].bm_complete = false;
	rv->role = role;
	__atomic_store_n(&rv->primary_flag, role == REPL_ROLE_PRIMARY, __ATOMIC_RELEASE);
}

bool repl_vol_is_primary(const struct repl_vol *rv)
{
	return __atomic_load_n(&rv->primary_flag, __ATOMIC_ACQUIRE);
}

/* a tie-breaker: votes, keeps the generations, holds no data */
static bool local_diskless(const struct repl_vol *rv)
{
	return rv->cfg.members[rv->cfg.local_id].diskless;
}

/* An "unconfirmed" peer (it lost its primary without a goodbye) may hold
 * writes no one acknowledged; the next primary resyncs it completely. Not
 * when that primary was us, all along: every write it applied we applied
 * too, and what it did not acknowledge is in its bitmap, complete since
 * the generation it still has. */
static bool bitmap_covers(const struct repl_vol *rv, const struct repl_peer *p,
			  uint64_t peer_gen)
{
	return rv->role == REPL_ROLE_PRIMARY && p->bm_complete && p->bm_base == peer_gen &&
	       p->bm_run && p->bm_run == rv->primary_runs;
}

/* A peer unconfirmed only because it crashed while following a primary
 * (REPL_STATE_F_LOST_TRACK) may hold writes of that primary's that others
 * lack. If we are that primary, it holds none we lack (we wrote them too;
 * ours in flight at a crash of ours are marked from our activity log when
 * the bitmap is loaded) and what it lacks is in our bitmap for it: a
 * primary's bitmap, complete since the generation it still has, also one
 * loaded from our disk (kept across a clean restart, or marked from the
 * log after a crash). A bitmap with that base is ours as primary: only a
 * primary starts one when a member leaves, any other primary since would
 * have rotated the generation (the member was away) or resynced it. Not
 * one that came from tracking (repl_peerack.c: that counts on its report) */
static bool bitmap_covers_lost_track(const struct repl_vol *rv, const struct repl_peer *p,
				     const struct repl_state *s)
{
	return (s->flags & REPL_STATE_F_LOST_TRACK) && rv->role == REPL_ROLE_PRIMARY &&
	       p->bm_complete && p->bm_base == s->gen_current && !p->bm_trk && !p->bm_fp;
}

/* bitmap_covers, also for the generation our barrier is taking the peers
 * to: a member shows that one (in its STATE) before its FLUSH_ACK says it
 * confirmed it and on_ack moves the bitmap's base along. The bitmap holds
 * every write of ours it may lack since the previous one, so it covers the
 * new one too */
static bool bitmap_covers_now(const struct repl_vol *rv, const struct repl_peer *p,
			      uint64_t peer_gen)
{
	return bitmap_covers(rv, p, peer_gen) ||
	       (rv->barrier_pending && peer_gen == rv->v->sv->meta.gen.current &&
		bitmap_covers(rv, p, rv->barrier_prev.current));
}

/* p is live and in sync with us, the primary: it misses nothing since
 * its generation gen (what it fails to acknowledge from now on is marked)
 * but the writes in flight that went out before it connected. Those stay
 * marked; true if there are any: then it is behind. gen comes from the
 * STATE at hand: at connect, p->st is still the one of its last link */
static bool in_sync_claim(struct repl_vol *rv, struct repl_peer *p, uint64_t gen)
{
	bool missed = false;

	/* a claim from tracking (repl_peerack.c) holds bits that were only in
	 * flight: in step with us, it has them */
	if (!p->bm_complete || p->bm_trk || p->bm_base != gen) {
		if (!repl_resync_bitmap(rv, p))
			return false;
		repl_bitmap_clear_all(p->bm);
		p->bm_complete = true;
		p->bm_base = gen;
		p->bm_run = rv->primary_runs;
		p->bm_fp = false;
		p->bm_trk = false;
	}
	for (struct repl_req *q = rv->inflight; q; q = q->next)
		if (q->issued && is_write_like(q->sub.op) && !(q->sent & (1u << p->id))) {
			repl_resync_mark_peer(rv, p, q->sub.off, q->sub.len);
			missed = true;
		}
	return missed;
}

/* every member with a disk is live and holds all our writes: none misses
 * a write acknowledged from now on, so a rotation still owed for one that
 * left and came back (need_rotate) says nothing any more. Without this,
 * the first write after a blip in which nothing was acknowledged started
 * a generation (and a barrier) for members that lacked nothing */
static bool all_members_current(const struct repl_vol *rv)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const struct repl_peer *p = &rv->peers[i];

		if (!p->m || p->m->diskless)
			continue;
		if (!p->live || p->outdated || p->syncing)
			return false;
	}
	return true;
}

static bool unconfirmed(const struct repl_vol *rv)
{
	return rv->v->sv->meta.flags & STORE_SB_F_UNCONFIRMED;
}

/* the primary we replicate from, as STATE's `following` */
static uint32_t following_of(const struct repl_vol *rv)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		if (rv->peers[i].live && rv->peers[i].st.role == REPL_ROLE_PRIMARY)
			return i + 1;
	return 0;
}

static void fill_state(void *ctx, struct repl_conn *c, struct repl_state *s)
{
	struct repl_vol *rv = ctx;
	const struct store_meta *m = &rv->v->sv->meta;

	memset(s, 0, sizeof(*s));
	s->role = (uint8_t)rv->role;
	s->disk_state = (uint8_t)rv->disk;
	s->bm_grain = local_diskless(rv) ? 0 : repl_vol_grain(rv);
	s->size = rv->v->size;
	memcpy(s->volume_uuid, m->uuid.b, 16);
	s->gen_current = m->gen.current;
	s->gen_bitmap = m->gen.bitmap;
	s->gen_history[0] = m->gen.history[0];
	s->gen_history[1] = m->gen.history[1];
	s->node_id = rv->cfg.local_id;
	s->following = following_of(rv);
	if (unconfirmed(rv))
		s->flags |= REPL_STATE_F_UNCONFIRMED;
	if (unconfirmed(rv) && (m->flags & STORE_SB_F_LOST_TRACK))
		s->flags |= REPL_STATE_F_LOST_TRACK;
	if (rv->discard_my_data)
		s->flags |= REPL_STATE_F_DISCARD_MY_DATA;
	if (repl_actlog_crashed(rv))
		s->flags |= REPL_STATE_F_CRASHED_PRIMARY;
}

static void broadcast_state(struct repl_vol *rv)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];
		struct repl_msg m = { .type = REPL_MSG_STATE };

		if (!p->live)
			continue;
		fill_state(rv, p->conn, &m.u.state);
		repl_conn_send(p->conn, &m);
	}
}

/* persists generations / disk state; blocking, rare (role and membership
 * changes only), on the reactor: nothing is acknowledged until it is done */
static int save_meta(struct repl_vol *rv, const struct store_generations *g,
		     enum repl_disk_state persisted_disk)
{
	struct store_meta m = rv->v->sv->meta;
	int ret;

	m.gen = *g;
	m.disk_state = persisted_disk;
	ret = store_write_meta(rv->v->sv, &m);
	if (ret)
		log_err("repl", "%s: cannot persist generations: %s", vname(rv), strerror(-ret));
	return ret;
}

static uint64_t fresh_gen(void)
{
	uint8_t n[REPL_NONCE_LEN];
	uint64_t g = 0;

	if (repl_auth_random_nonce(n) == 0)
		memcpy(&g, n, sizeof(g));
	if (!g)
		g = now_ns();
	return g | 1;
}

/* A secondary that lost its primary uncleanly may hold writes that were
 * never acknowledged (it applied them, others did not) or, in other
 * orders, lack some the new primary has: the next primary resyncs it
 * completely. Persisted: a restart must not forget it. */
/* persists superblock flags, set and clear: 1 written, 0 already so, -errno */
static int sb_flags(struct repl_vol *rv, uint32_t set, uint32_t clear)
{
	struct store_meta m = rv->v->sv->meta;
	uint32_t flags = (m.flags | set) & ~clear;
	int ret;

	if (flags == m.flags)
		return 0;
	m.flags = flags;
	ret = store_write_meta(rv->v->sv, &m);
	return ret ? ret : 1;
}

int repl_vol_sb_flag(struct repl_vol *rv, uint32_t flag, bool on)
{
	return on ? sb_flags(rv, flag, 0) : sb_flags(rv, 0, flag);
}

/* losing the primary uncleanly (and being confirmed) ends a LOST_TRACK:
 * from then on we may hold writes of whoever that was */
static void set_unconfirmed(struct repl_vol *rv, bool on, const char *why)
{
	if ((on && local_diskless(rv)) ||
	    sb_flags(rv, on ? STORE_SB_F_UNCONFIRMED : 0,
		     on ? STORE_SB_F_LOST_TRACK : STORE_SB_F_UNCONFIRMED | STORE_SB_F_LOST_TRACK) <= 0)
		return;
	if (!on)
		repl_pa_confirmed(rv);
	log_info("repl", "%s: %s (%s)", vname(rv), on ? "unconfirmed: the next primary "
		 "resyncs what this replica may differ in (all of it unless its peers "
		 "tracked it)" : "confirmed again", why);
	broadcast_state(rv);
}

/* "Following": we apply a primary's writes. Some of them may be on us and
 * not on the others (or the other way round) until the primary has every
 * answer, and which ones only the rings of repl_peerack.c know, in memory.
 * A crash of ours loses them; the flag, persisted before the first such
 * write arrives (its STATE comes first on the link), makes us come back
 * unconfirmed (repl_vol_new), so that the next primary does not take our
 * equal generation for equal data. Cleared when that cannot be: the
 * primary demoted or left with a goodbye (all it sent is settled), or we
 * are promoted (our data is the truth). */
static void set_following(struct repl_vol *rv, bool on)
{
	int ret;

	if (local_diskless(rv))
		return;
	ret = repl_vol_sb_flag(rv, STORE_SB_F_FOLLOWING, on);
	if (ret < 0)
		log_err("repl", "%s: cannot persist that we %s a primary: %s", vname(rv),
			on ? "follow" : "no longer follow", strerror(-ret));
}

/* STORE_SB_F_WAS_PRIMARY: set before a primary's first write (its
 * activity log then means something after a crash), cleared once nothing
 * it wrote can be in flight (a demote). Either way a new term: the
 * bitmaps on disk count again once this term flushed them. */
static int set_was_primary(struct repl_vol *rv, bool on)
{
	if (!rv->actlog)
		return 0;
	return repl_bmstore_new_term(rv, on ? STORE_SB_F_WAS_PRIMARY : 0,
				     on ? 0 : STORE_SB_F_WAS_PRIMARY);
}

/* a new current generation: from now on, members that are not live miss
 * writes, and the generations say so when they come back */
static int rotate(struct repl_vol *rv, const char *why)
{
	struct store_generations g = rv->v->sv->meta.gen;
	int ret;

	repl_gen_rotate(&g, fresh_gen());
	ret = save_meta(rv, &g, rv->v->sv->meta.disk_state);
	if (ret)
		return ret;
	rv->need_rotate = false;
	log_info("repl", "%s: new generation %016llx (%s)", vname(rv),
		 (unsigned long long)g.current, why);
	broadcast_state(rv);
	return 0;
}

static void set_disk(struct repl_vol *rv, enum repl_disk_state ds, const char *why)
{
	/* a resync target stays inconsistent until its RESYNC_DONE; a
	 * tie-breaker is diskless for good */
	if (rv->disk == ds || (rv->disk == REPL_DISK_INCONSISTENT && ds == REPL_DISK_OUTDATED) ||
	    local_diskless(rv))
		return;
	log_info("repl", "%s: disk %s -> %s (%s)", vname(rv), repl_disk_state_name(rv->disk),
		 repl_disk_state_name(ds), why);
	/* "outdated" and "inconsistent" survive a restart: they must not be
	 * forgotten; the others are found again by talking to the peers */
	{
		uint32_t keep = ds == REPL_DISK_OUTDATED || ds == REPL_DISK_INCONSISTENT ? ds : 0;

		if (keep != rv->v->sv->meta.disk_state)
			save_meta(rv, &rv->v->sv->meta.gen, keep);
	}
	rv->disk = ds;
	broadcast_state(rv);
	repl_pa_update(rv);
	repl_vol_publish(rv);
}

/* ---- deferred completion ---------------------------------------------------------- */

struct late {
	struct vol_io *io;
	int res;
};

static void late_run(void *arg)
{
	struct late *l = arg;
	struct vol_io *io = l->io;
	int res = l->res;

	free(l);
	io->chain_done(io, res);
}

/* the chain contract: never complete from inside submit */
static void complete_later(struct repl_vol *rv, struct vol_io *io, int res)
{
	struct late *l = malloc(sizeof(*l));

	if (!l) {
		io->chain_done(io, res); /* better than never */
		return;
	}
	l->io = io;
	l->res = res;
	reactor_post(rv->b.r, late_run, l);
}

/* ---- primary: requests ------------------------------------------------------------ */

bool repl_vol_writes_overlap(struct repl_vol *rv, uint64_t off, uint64_t len)
{
	for (struct repl_req *q = rv->inflight; q; q = q->next)
		if (is_write_like(q->sub.op) && overlaps(off, len, q->sub.off, q->sub.len))
			return true;
	return false;
}

/* an application write waits for overlapping writes and resync transfers */
static bool overlaps_inflight(struct repl_vol *rv, const struct vol_io *io)
{
	return repl_vol_writes_overlap(rv, io->off, io->len) ||
	       repl_resync_overlaps(rv, io->off, io->len) ||
	       repl_verify_overlaps(rv, io->off, io->len);
}

static struct repl_req **hash_slot(struct repl_vol *rv, uint64_t id)
{
	return &rv->hash[id & (HASH_BUCKETS - 1)];
}

static struct repl_req *req_find(struct repl_vol *rv, uint64_t id)
{
	for (struct repl_req *q = *hash_slot(rv, id); q; q = q->hnext)
		if (q->id == id)
			return q;
	return NULL;
}

static void start_req(struct repl_vol *rv, struct vol_io *io);
static void submit(struct vol_backend *b, struct vol_io *io);

void repl_vol_pump_blocked(struct repl_vol *rv)
{
	struct vol_io **pp = &rv->blocked, *io;
	struct vol_io *still = NULL, **still_tail = &still;

	/* start what overlaps neither a request in flight nor an earlier
	 * request still waiting: overlapping writes keep arrival order */
	while ((io = *pp)) {
		bool wait = overlaps_inflight(rv, io);

		for (struct vol_io *w = still; !wait && w; w = w->next_deferred)
			wait = overlaps(io->off, io->len, w->off, w->len);
		*pp = io->next_deferred;
		io->next_deferred = NULL;
		if (wait) {
			*still_tail = io;
			still_tail = &io->next_deferred;
		} else {
			start_req(rv, io);
		}
	}
	rv->blocked = still;
	rv->blocked_tail = still ? still_tail : &rv->blocked;
}

static void req_free(struct repl_req *q)
{
	struct repl_vol *rv = q->rv;
	struct repl_req **pp = hash_slot(rv, q->id);

	while (*pp != q)
		pp = &(*pp)->hnext;
	*pp = q->hnext;
	if (q->prev)
		q->prev->next = q->next;
	else
		rv->inflight = q->next;
	if (q->next)
		q->next->prev = q->prev;
	if (q->own_buf)
		iobuf_put(q->own_buf, q->sub.len);
	if (is_write_like(q->sub.op) && q->local_done && q->local_res == 0)
		/* the members it did not go to were marked when it went out */
		repl_resync_mark(rv, q->sub.off, q->sub.len, q->acked | ~q->sent);
	rv->ninflight--;
	/* the secondaries learn who holds it (repl_peerack.c) */
	if (is_write_like(q->sub.op) && q->sent)
		repl_pa_settled(rv, q->id, q->acked |
				(q->local_done && q->local_res == 0 && !local_diskless(rv)
				 ? 1u << rv->cfg.local_id : 0));
	repl_actlog_end(rv, q);
	free(q);
	if (rv->blocked)
		repl_vol_pump_blocked(rv);
	repl_resync_pump_all(rv);
	repl_verify_pump(rv);
}

static int start_barrier(struct repl_vol *rv);

static void req_check(struct repl_req *q)
{
	struct repl_vol *rv = q->rv;

	if (q->held)
		return; /* barrier_done completes it */
	if (!q->parent_done && q->local_done) {
		bool enough = q->wait == 0;

		if (!enough && rv->cfg.ack == REPL_ACK_MAJORITY)
			enough = (unsigned)__builtin_popcount(q->acked) + 1 >=
				 repl_config_majority(&rv->cfg);
		if (enough) {
			int res = q->local_res;

			/* a diskless primary's write is safe only once a member
			 * that is up to date holds it: a resync target alone
			 * (inconsistent) cannot serve it if it were the last */
			if (res == 0 && local_diskless(rv) && is_write_like(q->sub.op) &&
			    !(q->acked & q->cur)) {
				log_rl(LOG_LVL_WARN, "repl", "%s: %s off=%llu failed: no up-to-date "
				       "member holds it", vname(rv), vol_op_name(q->sub.op),
				       (unsigned long long)q->sub.off);
				res = -EIO;
			}
			/* never acknowledge what a majority may not have seen */
			if (res == 0 && !have_quorum(rv)) {
				log_rl(LOG_LVL_WARN, "repl", "%s: %s off=%llu failed: no quorum "
				       "(%u of %u voters visible)", vname(rv), vol_op_name(q->sub.op),
				       (unsigned long long)q->sub.off, visible(rv),
				       repl_config_members(&rv->cfg));
				res = -EIO;
			}
			/* The generations must say "a member misses writes" before the
			 * first write it misses is acknowledged, and not earlier (a
			 * primary that loses its last peers one after the other then
			 * acknowledges nothing and stays comparable, behind rather than
			 * split, to whoever is promoted instead). And the peers that
			 * count for this write's quorum must hold the new generation
			 * first: the write waits for the barrier. */
			if (rv->need_rotate && !rv->barrier_pending && all_members_current(rv)) {
				rv->need_rotate = false;
				log_info("repl", "%s: every member is back in step: no new "
					 "generation needed", vname(rv));
			}
			if (res == 0 && is_write_like(q->sub.op) &&
			    (rv->need_rotate || rv->barrier_pending)) {
				if (!rv->barrier_pending && start_barrier(rv) < 0) {
					res = -EIO;
				} else if (rv->barrier_pending) {
					q->held = true;
					q->held_next = rv->held;
					rv->held = q;
					return;
				}
			}
			if (res == 0 && q->wait == 0 && q->acked)
				rv->writes_replicated++;
			q->parent_done = true;
			q->parent->chain_done(q->parent, res);
		}
	}
	if (q->parent_done && q->wait == 0)
		req_free(q);
}

/* The barrier is settled: the held writes complete, successfully only if
 * we and the peers that confirmed the new generation are a quorum. If
 * not, nothing was acknowledged under it: go back to the old generation,
 * so this member compares as behind, not split, with the others. */
static void barrier_done(struct repl_vol *rv)
{
	bool ok = 1u + (unsigned)__builtin_popcount(rv->barrier_acked) >=
		  repl_config_majority(&rv->cfg) || rv->force_quorum;
	struct repl_req *q = rv->held;

	rv->barrier_pending = false;
	rv->held = NULL;
	if (!ok) {
		uint64_t dropped = rv->v->sv->meta.gen.current;

		log_warn("repl", "%s: new generation not confirmed by a quorum: writes fail, "
			 "back to generation %016llx", vname(rv),
			 (unsigned long long)rv->barrier_prev.current);
		save_meta(rv, &rv->barrier_prev, rv->v->sv->meta.disk_state);
		/* a member lost during the barrier got a bitmap complete since
		 * the dropped generation (peer_lost): nothing was acknowledged
		 * under that one, so the bitmap is complete since the old one
		 * too, which is what the member comes back with (else it would
		 * get a full resync after a blip that cut us off from all) */
		for (unsigned i = 0; i < REPL_MAX_NODES; i++)
			if (rv->peers[i].bm_complete && rv->peers[i].bm_base == dropped)
				rv->peers[i].bm_base = rv->barrier_prev.current;
		rv->need_rotate = true;
		broadcast_state(rv);
	}
	while (q) {
		struct repl_req *next = q->held_next;

		if (ok && q->wait == 0 && q->acked)
			rv->writes_replicated++;
		q->held = false;
		q->parent_done = true;
		q->parent->chain_done(q->parent, ok ? 0 : -EIO);
		if (q->wait == 0)
			req_free(q);
		q = next;
	}
	repl_vol_publish(rv);
}

static int start_barrier(struct repl_vol *rv)
{
	struct repl_msg m = { .type = REPL_MSG_FLUSH };

	rv->barrier_prev = rv->v->sv->meta.gen;
	if (rotate(rv, "writing without every member") < 0)
		return -EIO;
	rv->barrier_id = ++rv->next_id;
	rv->barrier_wait = rv->barrier_acked = 0;
	m.u.value = rv->barrier_id;
	/* the STATE just broadcast precedes this FLUSH on each stream: its
	 * FLUSH_ACK says the peer persisted the new generation */
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		/* a tie-breaker, and a member that is behind, confirm too:
		 * they keep the generation (tiebreaker_follow,
		 * peer_state_changed), which is what outdates a member that
		 * missed this one */
		if (!p->live)
			continue;
		if (repl_conn_send(p->conn, &m) == 0)
			rv->barrier_wait |= 1u << i;
	}
	rv->barrier_pending = true;
	if (!rv->barrier_wait) {
		/* nobody to confirm: settled now, and the caller's write (not
		 * held yet) gets the verdict from the return value */
		bool ok = 1u >= repl_config_majority(&rv->cfg) || rv->force_quorum;

		barrier_done(rv);
		return ok ? 0 : -EIO;
	}
	return 0;
}

static void barrier_peer_gone(struct repl_vol *rv, uint32_t id)
{
	if (!rv->barrier_pending || !(rv->barrier_wait & (1u << id)))
		return;
	rv->barrier_wait &= ~(1u << id);
	if (!rv->barrier_wait)
		barrier_done(rv);
}

static void local_done(struct vol_io *sub, int res)
{
	struct repl_req *q = container_of(sub, struct repl_req, sub);
	struct repl_vol *rv = q->rv;

	q->local_done = true;
	q->local_res = res;
	req_check(q); /* may free q */
	repl_bar_local_done(rv);
}

static uint16_t msg_type_of(enum vol_op op)
{
	switch (op) {
	case VOL_WRITE: return REPL_MSG_WRITE;
	case VOL_FLUSH: return REPL_MSG_FLUSH;
	case VOL_TRIM: return REPL_MSG_TRIM;
	case VOL_WRITE_ZEROES: return REPL_MSG_WRITE_ZEROES;
	default: return 0;
	}
}

/* A WRITE larger than one frame goes as several, all with the request's
 * id; each is acknowledged. Returns the frames queued, 0 on failure. */
static uint16_t send_frames(struct repl_conn *c, const struct repl_msg *m)
{
	struct repl_msg part = *m;
	uint32_t done = 0;
	uint16_t n = 0;

	if (m->type != REPL_MSG_WRITE)
		return repl_conn_send(c, m) == 0;
	while (done < m->u.io.length) {
		uint32_t len = MIN(m->u.io.length - done, REPL_MAX_DATA);

		part.u.io.offset = m->u.io.offset + done;
		part.u.io.length = len;
		part.data = m->data + done;
		part.data_len = len;
		if (repl_conn_send(c, &part))
			return 0;
		done += len;
		n++;
	}
	return n;
}

static void read_later(void *arg)
{
	struct vol_io *io = arg;

	repl_read_start((struct repl_vol *)io->layer, io); /* layer: set by submit */
}

/* a diskless primary's write: no local copy, the peers' acks are it */
static void diskless_local_done(void *arg)
{
	struct repl_req *q = arg;

	q->local_done = true;
	req_check(q);
}

static void start_req(struct repl_vol *rv, struct vol_io *io)
{
	struct repl_req *q;

	if (io->op == VOL_READ) {
		/* never complete inside submit: the read may fail at once */
		reactor_post(rv->b.r, read_later, io);
		return;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		io->chain_done(io, -ENOMEM);
		return;
	}
	q->rv = rv;
	q->parent = io;
	q->id = ++rv->next_id;
	q->start_ns = now_ns();
	q->sub.op = io->op;
	q->sub.flags = io->flags;
	q->sub.off = io->off;
	q->sub.len = io->len;
	q->sub.buf = io->buf;
	q->sub.vol = io->vol;
	q->sub.chain_done = local_done;
	if (io->op == VOL_WRITE && rv->cfg.ack == REPL_ACK_MAJORITY) {
		/* the client may get its completion before a laggard has the
		 * data on the wire: keep our own copy until every peer is done */
		q->own_buf = iobuf_get(io->len);
		if (!q->own_buf) {
			free(q);
			io->chain_done(io, -ENOMEM);
			return;
		}
		memcpy(q->own_buf, io->buf, io->len);
	}
	q->next = rv->inflight;
	if (rv->inflight)
		rv->inflight->prev = q;
	rv->inflight = q;
	rv->ninflight++;
	q->hnext = *hash_slot(rv, q->id);
	*hash_slot(rv, q->id) = q;
	/* the activity log first: a write goes nowhere before its extents
	 * are on record (a crashed primary resyncs only those) */
	if (repl_actlog_hold(rv, q))
		return;
	repl_vol_issue(rv, q);
}

/* a registered request goes out: to the peers and the local store */
void repl_vol_issue(struct repl_vol *rv, struct repl_req *q)
{
	struct vol_io *io = q->parent;
	struct vol_backend *next = rv->b.next;
	struct repl_msg m = { 0 };

	q->issued = true;

	m.type = msg_type_of(io->op);
	if (io->op == VOL_FLUSH) {
		m.u.value = q->id;
	} else {
		m.u.io.id = q->id;
		m.u.io.offset = io->off;
		m.u.io.length = io->len;
		m.u.io.flags = (io->flags & VOL_F_FUA) ? REPL_IO_F_FUA : 0;
		if (io->op == VOL_WRITE_ZEROES && (io->flags & VOL_F_NO_HOLE))
			m.u.io.flags |= REPL_IO_F_NO_HOLE;
		if (io->op == VOL_WRITE) {
			m.data = q->own_buf ? q->own_buf : io->buf;
			m.data_len = io->len;
		}
	}
	/* settled requests named to the peers ride with this one: frames
	 * queued in one batch leave in one sendmsg (repl_conn.c) */
	if (is_write_like(io->op) && repl_pa_due(rv, rv->ninflight))
		repl_pa_flush(rv);
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (!p->live || (p->outdated && !p->syncing) || p->m->diskless) {
			/* it misses this one: on record now, not when the request
			 * is done, so that a resync to it that starts meanwhile
			 * (it connects) cannot finish first and miss it */
			if (p->m && !p->m->diskless && is_write_like(io->op))
				repl_resync_mark_peer(rv, p, io->off, io->len);
			continue;
		}
		/* a live peer that cannot take the frames is on its way out:
		 * the request waits for peer_lost, which records in the
		 * generations that the peer misses it before it completes */
		q->wait |= 1u << i;
		q->sent |= 1u << i;
		if (!p->outdated && !p->syncing)
			q->cur |= 1u << i;
		p->pending++;
		q->frames[i] = send_frames(p->conn, &m);
		if (!q->frames[i])
			repl_conn_close(p->conn, REPL_REASON_NONE, "cannot queue a %s",
					repl_msg_name(m.type));
		/* on the wire before our local write is submitted: the peers'
		 * round trip is the longer path (in io_uring's SQ order) */
		repl_conn_flush_now(p->conn);
	}
	if (local_diskless(rv) && io->op != VOL_FLUSH) {
		q->local_res = q->wait ? 0 : -EIO; /* no replica took it */
		reactor_post(rv->b.r, diskless_local_done, q);
		return;
	}
	next->ops->submit(next, &q->sub);
}

static void submit(struct vol_backend *b, struct vol_io *io)
{
	struct repl_vol *rv = (struct repl_vol *)b;
	struct vol_backend *next = b->next;

	io->layer = b;
	if (io->op == VOL_READ && !(local_diskless(rv) && rv->role == REPL_ROLE_PRIMARY)) {
		/* the primary is up to date: reads are local */
		next->ops->submit(next, io);
		return;
	}
	if (io->op == VOL_READ) {
		/* diskless attach: read at a peer, after overlapping writes */
		if (rv->blocked || overlaps_inflight(rv, io)) {
			io->next_deferred = NULL;
			*rv->blocked_tail = io;
			rv->blocked_tail = &io->next_deferred;
			repl_vol_pump_blocked(rv);
			return;
		}
		start_req(rv, io);
		return;
	}
	if (rv->role != REPL_ROLE_PRIMARY) {
		log_rl(LOG_LVL_WARN, "repl", "%s: %s refused: this replica is %s", vname(rv),
		       vol_op_name(io->op), repl_role_name(rv->role));
		complete_later(rv, io, -EROFS);
		return;
	}
	if (!have_quorum(rv)) {
		if (rv->cfg.on_no_quorum == REPL_NOQ_SUSPEND && !rv->stopping) {
			io->next_deferred = NULL;
			*rv->suspended_tail = io;
			rv->suspended_tail = &io->next_deferred;
			return;
		}
		log_rl(LOG_LVL_WARN, "repl", "%s: %s failed: no quorum (%u of %u voters "
		       "visible)", vname(rv), vol_op_name(io->op), visible(rv),
		       repl_config_members(&rv->cfg));
		complete_later(rv, io, -EIO);
		return;
	}
	if (is_write_like(io->op) && (rv->blocked || overlaps_inflight(rv, io))) {
		io->next_deferred = NULL;
		*rv->blocked_tail = io;
		rv->blocked_tail = &io->next_deferred;
		repl_vol_pump_blocked(rv);
		return;
	}
	start_req(rv, io);
}

static void resume_suspended(struct repl_vol *rv)
{
	struct vol_io *io = rv->suspended;

	rv->suspended = NULL;
	rv->suspended_tail = &rv->suspended;
	while (io) {
		struct vol_io *next = io->next_deferred;

		if (rv->stopping)
			io->chain_done(io, -EIO);
		else
			submit(&rv->b, io);
		io = next;
	}
}

/* ---- peer acks ------------------------------------------------------------------- */

static int on_ack(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
		  char *why, size_t whylen)
{
	struct repl_req *q;
	uint32_t bit = 1u << p->id;

	if (m->type == REPL_MSG_FLUSH_ACK && rv->barrier_pending &&
	    m->u.ack.id == rv->barrier_id && (rv->barrier_wait & bit)) {
		if (m->u.ack.status == REPL_ST_OK) {
			rv->barrier_acked |= bit;
			/* it holds the generation now (a member behind took it
			 * without data): its bitmap still says what it misses,
			 * now since this one */
			if (p->bm_complete && p->bm_base == rv->barrier_prev.current)
				p->bm_base = rv->v->sv->meta.gen.current;
		}
		barrier_peer_gone(rv, p->id);
		return 0;
	}
	q = req_find(rv, m->u.ack.id);

	if (!q || !(q->wait & bit)) {
		snprintf(why, whylen, "%s for id %llu that was not sent to this peer",
			 repl_msg_name(m->type), (unsigned long long)m->u.ack.id);
		return -EBADMSG;
	}
	if (m->type != msg_type_of(q->sub.op) + 1) {
		snprintf(why, whylen, "%s answers a %s", repl_msg_name(m->type),
			 vol_op_name(q->sub.op));
		return -EBADMSG;
	}
	if (!q->frames[p->id])
		return 0; /* queuing failed half-way: peer_lost settles it */
	if (m->u.ack.status == REPL_ST_OK) {
		if (--q->frames[p->id])
			return 0; /* more frames of this request to come */
		q->wait &= ~bit;
		p->pending--;
		q->acked |= bit;
		{
			uint64_t lat = now_ns() - q->start_ns;

			p->lag_ns = p->lag_ns ? p->lag_ns - p->lag_ns / 8 + lat / 8 : lat;
		}
	} else {
		q->frames[p->id] = 0;
		q->wait &= ~bit;
		p->pending--;
		log_warn("repl", "%s: peer %u (%s) failed %s off=%llu: %s; it needs a resync",
			 vname(rv), p->id, p->m->node, vol_op_name(q->sub.op),
			 (unsigned long long)q->sub.off, repl_status_name(m->u.ack.status));
		p->outdated = true;
		repl_conn_close(p->conn, REPL_REASON_IO_ERROR, "the peer's disk failed a write");
	}
	req_check(q);
	return 0;
}

/* ---- secondary: apply the primary's requests --------------------------------------- */

struct sec_io {
	struct vol_io io;
	struct repl_vol *rv;
	struct repl_peer *p;
	struct repl_conn *c;
	uint64_t id;
	uint16_t ack_type;
	bool owns_buf;
	struct repl_epoch *ep;      /* a write's BARRIER epoch (repl_barrier.c) */
};

static void sec_done(struct vol_io *io, int res)
{
	struct sec_io *s = container_of(io, struct sec_io, io);
	struct repl_msg m = { .type = s->ack_type };

	m.u.ack.id = s->id;
	m.u.ack.status = repl_status_from_errno(res);
	if (res < 0)
		log_rl(LOG_LVL_WARN, "repl", "%s: applying %s off=%llu failed: %s",
		       vname(s->rv), vol_op_name(io->op), (unsigned long long)io->off,
		       strerror(-res));
	if (s->c->state == REPL_CONN_LIVE)
		repl_conn_send(s->c, &m);
	if (s->owns_buf)
		iobuf_put(io->buf, io->len);
	repl_bar_sec_io_done(s->rv, s->ep);
	repl_sec_io_done(s->rv, s->p, s->c);
	free(s);
}

void repl_sec_io_start(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c)
{
	repl_conn_get(c);
	if (++p->sec_inflight == SEC_PAUSE_AT)
		repl_conn_pause(c);
}

void repl_sec_io_done(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c)
{
	if (p->conn == c && --p->sec_inflight == SEC_RESUME_AT)
		repl_conn_resume(c);
	repl_conn_put(c);
}

static void sec_read_done(struct vol_io *io, int res)
{
	struct repl_sec_read *s = container_of(io, struct repl_sec_read, io);

	s->done(s, res);
}

int repl_sec_read_start(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c,
			const struct repl_msg *m,
			void (*done)(struct repl_sec_read *s, int res))
{
	struct vol_backend *local = rv->b.next;
	struct repl_sec_read *s = calloc(1, sizeof(*s));

	if (!s || !(s->io.buf = iobuf_get(m->u.io.length))) {
		free(s);
		return -ENOMEM;
	}
	s->rv = rv;
	s->p = p;
	s->c = c;
	s->id = m->u.io.id;
	s->done = done;
	s->io.op = VOL_READ;
	s->io.off = m->u.io.offset;
	s->io.len = m->u.io.length;
	s->io.vol = rv->v;
	s->io.chain_done = sec_read_done;
	repl_sec_io_start(rv, p, c);
	local->ops->submit(local, &s->io);
	return 0;
}

void repl_sec_read_end(struct repl_sec_read *s, bool keep_buf)
{
	if (!keep_buf)
		iobuf_put(s->io.buf, s->io.len);
	repl_sec_io_done(s->rv, s->p, s->c);
	free(s);
}

static int apply(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c,
		 const struct repl_msg *m, char *why, size_t whylen)
{
	struct sec_io *s;
	struct vol_backend *local = rv->b.next;

	if (p->st.role != REPL_ROLE_PRIMARY || rv->role == REPL_ROLE_PRIMARY) {
		snprintf(why, whylen, "%s from a peer that is not the primary",
			 repl_msg_name(m->type));
		return -EBADMSG;
	}
	if (m->type != REPL_MSG_FLUSH && local_diskless(rv)) {
		snprintf(why, whylen, "%s to a diskless member", repl_msg_name(m->type));
		return -EBADMSG;
	}
	if (m->type != REPL_MSG_FLUSH &&
	    (m->u.io.offset + m->u.io.length > rv->v->size)) {
		snprintf(why, whylen, "%s off=%llu len=%u past the end (%llu)",
			 repl_msg_name(m->type), (unsigned long long)m->u.io.offset,
			 m->u.io.length, (unsigned long long)rv->v->size);
		return -EBADMSG;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(why, whylen, "out of memory");
		return -EBADMSG;
	}
	s->rv = rv;
	s->p = p;
	s->c = c;
	s->ack_type = (uint16_t)(m->type + 1);
	s->io.vol = rv->v;
	s->io.chain_done = sec_done;
	switch (m->type) {
	case REPL_MSG_FLUSH:
		s->id = m->u.value;
		s->io.op = VOL_FLUSH;
		break;
	case REPL_MSG_WRITE:
	case REPL_MSG_RESYNC_DATA:
		s->io.op = VOL_WRITE;
		s->io.buf = iobuf_get(m->u.io.length);
		if (!s->io.buf) {
			free(s);
			snprintf(why, whylen, "out of buffer memory");
			return -EBADMSG;
		}
		s->owns_buf = true;
		memcpy(s->io.buf, m->data, m->u.io.length);
		break;
	case REPL_MSG_TRIM:
		s->io.op = VOL_TRIM;
		break;
	default:
		s->io.op = VOL_WRITE_ZEROES;
		if (m->u.io.flags & REPL_IO_F_NO_HOLE)
			s->io.flags |= VOL_F_NO_HOLE;
		break;
	}
	if (m->type != REPL_MSG_FLUSH) {
		s->id = m->u.io.id;
		s->io.off = m->u.io.offset;
		s->io.len = m->u.io.length;
		if (m->u.io.flags & REPL_IO_F_FUA)
			s->io.flags |= VOL_F_FUA;
	}
	if (m->type != REPL_MSG_FLUSH && m->type != REPL_MSG_RESYNC_DATA)
		repl_pa_applied(rv, p, m);
	if (m->type != REPL_MSG_FLUSH)
		s->ep = repl_bar_sec_io(rv);
	repl_sec_io_start(rv, p, c);
	local->ops->submit(local, &s->io);
	return 0;
}

/* ---- connections ------------------------------------------------------------------- */

static struct repl_peer *peer_of(struct repl_vol *rv, struct repl_conn *c)
{
	struct repl_peer *p = &rv->peers[c->peer_id];

	return p->conn == c ? p : NULL;
}

bool repl_vol_live_primary(const struct repl_vol *rv)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		if (rv->peers[i].live && rv->peers[i].st.role == REPL_ROLE_PRIMARY)
			return true;
	return false;
}

const char *repl_peer_not_current(const struct repl_peer *p)
{
	if (p->m->diskless)
		return "diskless";
	if (!p->live)
		return "not connected";
	if (p->syncing)
		return "resyncing";
	if (p->outdated)
		return "outdated";
	return NULL;
}

static bool disk_usable(const struct repl_vol *rv)
{
	return rv->disk != REPL_DISK_OUTDATED && rv->disk != REPL_DISK_INCONSISTENT;
}

/* what a member's STATE says of its data: it holds a whole copy */
static bool state_usable(const struct repl_state *s)
{
	return s->disk_state == REPL_DISK_UP_TO_DATE || s->disk_state == REPL_DISK_CONSISTENT;
}

/* A tie-breaker keeps the newest generation a member holding data has
 * (the primary's, or an up-to-date member's that is ahead of ours): a
 * member that missed writes then finds a newer generation here and is
 * outdated, even with the primary gone. Persisted before the FLUSH after
 * the primary's STATE is acknowledged (the generation barrier). */
static void tiebreaker_follow(struct repl_vol *rv, struct repl_peer *p,
			      const struct repl_state *s, const struct store_generations *pg,
			      enum repl_gen_cmp cmp)
{
	if (cmp == REPL_GEN_SAME || !state_usable(s))
		return;
	if (cmp != REPL_GEN_PEER_NEWER && s->role != REPL_ROLE_PRIMARY)
		return;
	if (save_meta(rv, pg, 0))
		return;
	log_info("repl", "%s: tie-breaker: generation %016llx of %s (%s)", vname(rv),
		 (unsigned long long)pg->current, p->m->node, repl_role_name(s->role));
	broadcast_state(rv);
}

/* A peer's STATE: at the handshake (generations decide who is behind),
 * or on a live link (role/disk changes, the primary's new generations). */
static void peer_state_changed(struct repl_vol *rv, struct repl_peer *p,
			       const struct repl_state *s, bool handshake)
{
	struct store_generations pg = { s->gen_current, s->gen_bitmap,
					{ s->gen_history[0], s->gen_history[1] } };
	enum repl_gen_cmp cmp = repl_gen_compare(&rv->v->sv->meta.gen, &pg);
	bool was_primary = p->live && p->st.role == REPL_ROLE_PRIMARY && !handshake;

	p->st = *s;
	repl_pa_peer_state(rv, p, s);
	if (!(s->flags & REPL_STATE_F_CRASHED_PRIMARY))
		repl_actlog_peer_forget(p);
	if (rv->role != REPL_ROLE_PRIMARY && s->role == REPL_ROLE_PRIMARY)
		set_following(rv, true);
	else if (was_primary && s->role != REPL_ROLE_PRIMARY && !following_of(rv))
		set_following(rv, false); /* it demoted: nothing of its is in flight */
	/* the target of our resync took RESYNC_START: its STATEs from before
	 * are behind us, RESYNC_DONE may go (repl_resync.c). Nothing else in
	 * this STATE is news: it is our target, and the rest would only see
	 * a finished resync and its (still set) "unconfirmed" */
	if (p->syncing && s->disk_state == REPL_DISK_INCONSISTENT && !p->sync_started) {
		p->sync_started = true;
		repl_resync_pump_all(rv);
		return;
	}
	if (local_diskless(rv)) {
		tiebreaker_follow(rv, p, s, &pg, cmp);
		return;
	}
	if (s->disk_state == REPL_DISK_OUTDATED || s->disk_state == REPL_DISK_INCONSISTENT)
		p->outdated = true;
	if (!handshake && (s->flags & REPL_STATE_F_UNCONFIRMED) &&
	    rv->role == REPL_ROLE_PRIMARY && !p->syncing && !p->m->diskless &&
	    !bitmap_covers_now(rv, p, s->gen_current)) {
		p->outdated = true;
		p->bm_complete = false;
		repl_resync_start(rv, p, s->gen_current);
	}
	/* Behind (outdated, or a resync target: RESYNC_DONE brings the data's
	 * generations): the data waits for a resync, but the primary's newer
	 * generation is kept, persisted with the disk state as it is, before
	 * the FLUSH after it is acknowledged. That confirms the primary's
	 * generation barrier, and a member that missed those writes and
	 * meets us later is outdated by it. */
	if (!disk_usable(rv)) {
		if (!handshake && s->role == REPL_ROLE_PRIMARY && cmp == REPL_GEN_PEER_NEWER &&
		    rv->role != REPL_ROLE_PRIMARY &&
		    save_meta(rv, &pg, rv->v->sv->meta.disk_state) == 0)
			log_info("repl", "%s: %s, keeping the primary's generation %016llx",
				 vname(rv), repl_disk_state_name(rv->disk),
				 (unsigned long long)pg.current);
		return;
	}
	if (cmp == REPL_GEN_SAME) {
		if (s->role == REPL_ROLE_PRIMARY && disk_usable(rv))
			set_disk(rv, REPL_DISK_UP_TO_DATE, "in sync with the primary");
		return;
	}
	if (cmp == REPL_GEN_LOCAL_NEWER) {
		/* at the handshake: it missed writes. On a live link its STATE
		 * may simply predate ours: it says so itself if it is behind */
		if (handshake && !p->m->diskless)
			p->outdated = true;
		return;
	}
	if (cmp != REPL_GEN_PEER_NEWER)
		return;
	if (!handshake && s->role == REPL_ROLE_PRIMARY && disk_usable(rv) &&
	    rv->role != REPL_ROLE_PRIMARY) {
		/* the primary moved on while we stayed connected to it: we have
		 * every write it acknowledged, so its generation is ours too */
		save_meta(rv, &pg, 0);
		log_info("repl", "%s: following the primary's generation %016llx", vname(rv),
			 (unsigned long long)pg.current);
		set_disk(rv, REPL_DISK_UP_TO_DATE, "following the primary");
		broadcast_state(rv);
		return;
	}
	/* a live secondary ahead of us while a primary we see has not told us
	 * yet: wait for the primary's own STATE */
	if (!handshake && s->role != REPL_ROLE_PRIMARY && repl_vol_live_primary(rv) &&
	    rv->role != REPL_ROLE_PRIMARY)
		return;
	if (rv->role == REPL_ROLE_PRIMARY) {
		log_warn("repl", "%s: peer %u (%s) has a newer generation: stepping "
			 "down to secondary", vname(rv), p->id, p->m->node);
		set_role(rv, REPL_ROLE_SECONDARY);
	}
	set_disk(rv, REPL_DISK_OUTDATED, "a peer has a newer generation");
}

static uint32_t on_state(void *ctx, struct repl_conn *c, const struct repl_state *s,
			 char *why, size_t whylen)
{
	struct repl_vol *rv = ctx;
	struct repl_peer *p = peer_of(rv, c);
	struct store_generations pg = { s->gen_current, s->gen_bitmap,
					{ s->gen_history[0], s->gen_history[1] } };
	enum repl_gen_cmp cmp;

	if (!p) {
		snprintf(why, whylen, "superseded connection");
		return REPL_REASON_ADMIN;
	}
	/* a member holding data must be able to hold all the primary's: a
	 * larger one is fine (a resize grows the secondaries first) */
	if ((rv->role == REPL_ROLE_PRIMARY && !p->m->diskless && s->size < rv->v->size) ||
	    (s->role == REPL_ROLE_PRIMARY && !local_diskless(rv) && s->size > rv->v->size)) {
		snprintf(why, whylen, "size mismatch: ours %llu, the peer's %llu (the primary's "
			 "replicas must be at least its size: resize them first)",
			 (unsigned long long)rv->v->size, (unsigned long long)s->size);
		snprintf(p->why, sizeof(p->why), "%s", why);
		return REPL_REASON_SIZE_MISMATCH;
	}
	cmp = repl_gen_compare(&rv->v->sv->meta.gen, &pg);
	/* a tie-breaker holds no data to diverge: it follows (tiebreaker_follow) */
	if (local_diskless(rv) && (cmp == REPL_GEN_SPLIT_BRAIN || cmp == REPL_GEN_UNRELATED))
		cmp = s->role == REPL_ROLE_PRIMARY ? REPL_GEN_PEER_NEWER : REPL_GEN_SAME;
	if (cmp == REPL_GEN_SPLIT_BRAIN || cmp == REPL_GEN_UNRELATED) {
		/* the operator's choice, on either side, settles it: that side
		 * is behind and gets a full resync (its own changes are lost) */
		if (rv->discard_my_data && rv->role != REPL_ROLE_PRIMARY) {
			log_warn("repl", "%s: %s with peer %u (%s): discarding our data as the "
				 "operator asked", vname(rv), repl_gen_cmp_name(cmp), p->id,
				 p->m->node);
			set_disk(rv, REPL_DISK_OUTDATED, "discarding our data");
			cmp = REPL_GEN_PEER_NEWER;
		} else if ((s->flags & REPL_STATE_F_DISCARD_MY_DATA) &&
			   s->role != REPL_ROLE_PRIMARY) {
			log_warn("repl", "%s: %s with peer %u (%s): it discards its data as its "
				 "operator asked", vname(rv), repl_gen_cmp_name(cmp), p->id,
				 p->m->node);
			p->outdated = true;
			p->bm_complete = false;
			cmp = REPL_GEN_LOCAL_NEWER;
		}
	}
	if (cmp == REPL_GEN_SPLIT_BRAIN || cmp == REPL_GEN_UNRELATED) {
		snprintf(why, whylen, "%s: ours %016llx, the peer's %016llx; an operator must "
			 "choose which side's data to discard",
			 cmp == REPL_GEN_SPLIT_BRAIN ? "split brain" : "unrelated data",
			 (unsigned long long)rv->v->sv->meta.gen.current,
			 (unsigned long long)pg.current);
		snprintf(p->why, sizeof(p->why), "%s", why);
		p->split_brain = cmp == REPL_GEN_SPLIT_BRAIN;
		log_msg(c->quiet ? LOG_LVL_DBG : LOG_LVL_ERR, "repl", "%s: peer %u (%s): %s",
			vname(rv), p->id, p->m->node, why);
		return REPL_REASON_SPLIT_BRAIN;
	}
	if (s->role == REPL_ROLE_PRIMARY && rv->role == REPL_ROLE_PRIMARY) {
		if (cmp == REPL_GEN_PEER_NEWER) {
			/* we lost quorum and someone else took over: step down */
			log_warn("repl", "%s: peer %u (%s) is primary with a newer generation: "
				 "stepping down to secondary, outdated", vname(rv), p->id,
				 p->m->node);
			set_role(rv, REPL_ROLE_SECONDARY);
			set_disk(rv, REPL_DISK_OUTDATED, "another member took over as primary");
		} else if (cmp != REPL_GEN_LOCAL_NEWER) {
			snprintf(why, whylen, "both sides are primary");
			snprintf(p->why, sizeof(p->why), "%s", why);
			return REPL_REASON_TWO_PRIMARIES;
		}
		/* LOCAL_NEWER: the peer steps down when it sees our STATE */
	}
	p->live = true;
	/* it works: its next failure is news */
	repl_conn_set_quiet(c, false);
	if (p->fail_repeats)
		log_info("repl", "%s: peer %u (%s): connected after %u more failed attempt%s",
			 vname(rv), p->id, p->m->node, p->fail_repeats,
			 p->fail_repeats == 1 ? "" : "s");
	p->fail_why[0] = '\0';
	p->fail_repeats = 0;
	/* set again below from the generations; a tie-breaker is never behind */
	p->outdated = cmp == REPL_GEN_LOCAL_NEWER && !p->m->diskless;
	if (rv->role == REPL_ROLE_PRIMARY)
		repl_pa_rebase(p, s->gen_current); /* a claim from tracking: its generation */
	if ((s->flags & REPL_STATE_F_UNCONFIRMED) && rv->role == REPL_ROLE_PRIMARY &&
	    !p->m->diskless && !bitmap_covers(rv, p, s->gen_current) &&
	    !bitmap_covers_lost_track(rv, p, s)) {
		p->outdated = true;
		p->bm_complete = false;
	} else if (rv->role == REPL_ROLE_PRIMARY && !p->m->diskless && repl_pa_await(rv, p, s)) {
		/* tracked while we were both secondaries: its report of
		 * unconfirmed writes follows its STATE (repl_pa_on_report) */
		p->outdated = true;
	} else if (rv->role == REPL_ROLE_PRIMARY && !p->m->diskless && !p->outdated &&
		   !local_diskless(rv) && (bitmap_covers(rv, p, s->gen_current) ||
					   bitmap_covers_lost_track(rv, p, s)) &&
		   p->bm && repl_bitmap_count(p->bm)) {
		/* back with our generation, yet it lacks writes of ours: writes
		 * that failed while we had no quorum went to our disk and not to
		 * it, and writes still in flight did not go to it (the
		 * generation moves only when a write is acknowledged without a
		 * member). Its bitmap says where: resync those grains so that
		 * the copies are the same again. (A diskless primary leaves
		 * this to verify: the member may be its only source.) */
		log_info("repl", "%s: peer %u (%s) is back with our generation but lacks %llu "
			 "grain(s) of our writes (failed or in flight while it was away): "
			 "resyncing them", vname(rv), p->id, p->m->node,
			 (unsigned long long)repl_bitmap_count(p->bm));
		p->outdated = true;
	}
	if (rv->role == REPL_ROLE_PRIMARY && !p->outdated && !p->m->diskless &&
	    in_sync_claim(rv, p, s->gen_current) && !local_diskless(rv)) {
		/* it connected while writes that did not go to it were in
		 * flight: behind, and the generations say so before those are
		 * acknowledged (its RESYNC_START, then the barrier's FLUSH: it
		 * confirms the new generation as inconsistent, never as up to
		 * date). A diskless primary keeps the marks for later
		 * (diskless_resync): the member may be its only source */
		log_info("repl", "%s: peer %u (%s) connected while writes it did not get were "
			 "in flight: it is behind, resyncing them", vname(rv), p->id, p->m->node);
		p->outdated = true;
		rv->need_rotate = true;
	}
	p->split_brain = false;
	/* a peer is back: a forced promotion's "alone" ends here */
	rv->force_quorum = false;
	p->why[0] = '\0';
	p->backoff_ms = 0;
	log_info("repl", "%s: peer %u (%s) connected: %s, %s, generations %s", vname(rv),
		 p->id, p->m->node, repl_role_name(s->role), repl_disk_state_name(s->disk_state),
		 repl_gen_cmp_name(cmp));
	peer_state_changed(rv, p, s, true);
	if (s->role == REPL_ROLE_PRIMARY)
		broadcast_state(rv); /* we follow it now: promotions check that */
	/* a primary that crashed: its activity log follows its STATE and
	 * decides what the resync covers (repl_actlog_on_extents); a former
	 * primary without one gets everything */
	p->await_al = false;
	if (p->await_report) {
		log_info("repl", "%s: peer %u (%s) is unconfirmed: its resync waits for its "
			 "report", vname(rv), p->id, p->m->node);
	} else if (p->outdated && rv->role == REPL_ROLE_PRIMARY && !p->m->diskless &&
	    (s->flags & REPL_STATE_F_CRASHED_PRIMARY) && (c->features & REPL_FEAT_AL_EXTENTS)) {
		p->await_al = true;
	} else if (p->outdated && rv->role == REPL_ROLE_PRIMARY && !p->m->diskless) {
		if (p->bm_fp)
			p->bm_complete = false;
		repl_resync_start(rv, p, s->gen_current);
	} else if (p->outdated)
		log_warn("repl", "%s: peer %u (%s) is behind (outdated): it waits for a "
			 "primary to resync it", vname(rv), p->id, p->m->node);
	quorum_changed(rv);
	repl_actlog_send(rv, c); /* after our STATE, which went out first */
	repl_pa_report_send(rv, c);
	repl_pa_update(rv);
	repl_vol_publish(rv);
	return 0;
}

/* We are the target of the primary's resync: inconsistent (and so
 * recorded, a crash must not forget it) from RESYNC_START until
 * RESYNC_DONE, then the primary's generations are ours. */
static int resync_target(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
			 char *why, size_t whylen)
{
	struct store_generations g = { p->st.gen_current, p->st.gen_bitmap,
				       { p->st.gen_history[0], p->st.gen_history[1] } };

	if (p->st.role != REPL_ROLE_PRIMARY || rv->role == REPL_ROLE_PRIMARY) {
		snprintf(why, whylen, "%s from a peer that is not the primary",
			 repl_msg_name(m->type));
		return -EBADMSG;
	}
	if (m->type == REPL_MSG_RESYNC_START) {
		log_info("repl", "%s: resync from peer %u (%s): %llu bytes", vname(rv), p->id,
			 p->m->node, (unsigned long long)m->u.value);
		/* the source waits for a STATE saying so before RESYNC_DONE:
		 * exactly one, also when we were inconsistent already */
		if (rv->disk == REPL_DISK_INCONSISTENT)
			broadcast_state(rv);
		else
			set_disk(rv, REPL_DISK_INCONSISTENT, "resync target");
		return 0;
	}
	if (rv->disk != REPL_DISK_INCONSISTENT) {
		snprintf(why, whylen, "RESYNC_DONE without RESYNC_START");
		return -EBADMSG;
	}
	/* every resync write completed (acked); make them durable before the
	 * generations say this replica is current. Generations, disk state
	 * and the cleared "unconfirmed" go out in one superblock and one
	 * STATE: a STATE saying "inconsistent" or "unconfirmed" after this
	 * would make the primary take us as behind again. */
	{
		struct store_meta mm = rv->v->sv->meta;

		mm.gen = g;
		mm.disk_state = 0;
		mm.flags &= ~(STORE_SB_F_UNCONFIRMED | STORE_SB_F_WAS_PRIMARY |
			      STORE_SB_F_BM_VALID);
		if (fdatasync(rv->v->sv->data_fd) < 0 || store_write_meta(rv->v->sv, &mm)) {
			log_err("repl", "%s: cannot make the resync durable: staying inconsistent",
				vname(rv));
			return 0;
		}
	}
	log_info("repl", "%s: resync from peer %u (%s) done: %llu bytes; generation %016llx",
		 vname(rv), p->id, p->m->node, (unsigned long long)m->u.value,
		 (unsigned long long)g.current);
	rv->discard_my_data = false;
	repl_actlog_settled(rv, "resynced");
	repl_pa_confirmed(rv);
	rv->disk = REPL_DISK_UP_TO_DATE;
	broadcast_state(rv);
	repl_pa_update(rv);
	repl_vol_publish(rv);
	return 0;
}

static int on_msg(void *ctx, struct repl_conn *c, const struct repl_msg *m, char *why,
		  size_t whylen)
{
	struct repl_vol *rv = ctx;
	struct repl_peer *p = peer_of(rv, c);

	if (!p || rv->stopping)
		return 0;
	switch (m->type) {
	case REPL_MSG_STATE:
		if (m->u.state.node_id != p->id) {
			snprintf(why, whylen, "STATE with another member id");
			return -EBADMSG;
		}
		if (m->u.state.role == REPL_ROLE_PRIMARY && rv->role == REPL_ROLE_PRIMARY) {
			snprintf(p->why, sizeof(p->why), "both sides are primary");
			repl_conn_close(c, REPL_REASON_TWO_PRIMARIES, "both sides are primary");
			return 0;
		}
		{
			uint32_t before = following_of(rv);

			peer_state_changed(rv, p, &m->u.state, false);
			/* tell the others whom we follow now: promotions check it */
			if (following_of(rv) != before)
				broadcast_state(rv);
			repl_pa_update(rv);
		}
		return 0;
	case REPL_MSG_WRITE:
	case REPL_MSG_FLUSH:
	case REPL_MSG_TRIM:
	case REPL_MSG_WRITE_ZEROES:
		return apply(rv, p, c, m, why, whylen);
	case REPL_MSG_WRITE_ACK:
	case REPL_MSG_FLUSH_ACK:
	case REPL_MSG_TRIM_ACK:
	case REPL_MSG_WRITE_ZEROES_ACK:
		return on_ack(rv, p, m, why, whylen);
	case REPL_MSG_RESYNC_ACK:
		return repl_resync_on_ack(rv, p, m, why, whylen);
	case REPL_MSG_RESYNC_DATA:
		return apply(rv, p, c, m, why, whylen);
	case REPL_MSG_RESYNC_START:
	case REPL_MSG_RESYNC_DONE:
		return resync_target(rv, p, m, why, whylen);
	case REPL_MSG_AL_EXTENTS:
		return repl_actlog_on_extents(rv, p, m, why, whylen);
	case REPL_MSG_PEER_ACK:
		return repl_pa_on_peer_ack(rv, p, m, why, whylen);
	case REPL_MSG_BITMAP:
		return repl_pa_on_report(rv, p, m, why, whylen);
	case REPL_MSG_VERIFY_REQ:
		return repl_verify_serve(rv, p, c, m, why, whylen);
	case REPL_MSG_VERIFY_REPLY:
		return repl_verify_on_reply(rv, p, m, why, whylen);
	case REPL_MSG_READ_REQ:
		return repl_read_serve(rv, p, c, m, why, whylen);
	case REPL_MSG_READ_REPLY:
		return repl_read_on_reply(rv, p, m, why, whylen);
	case REPL_MSG_BARRIER:
		return repl_bar_on_barrier(rv, p, c, m, why, whylen);
	case REPL_MSG_BARRIER_ACK:
		return repl_bar_on_ack(rv, p, m, why, whylen);
	default:
		snprintf(why, whylen, "%s is not expected on a connected peer link "
			 "(not negotiated or not implemented)", repl_msg_name(m->type));
		return -EBADMSG;
	}
}

static void peer_lost(struct repl_vol *rv, struct repl_peer *p)
{
	bool was_live = p->live, was_current = p->live && !p->outdated && !p->m->diskless;

	bool was_syncing = p->syncing;

	bool unclean = was_live && p->st.role == REPL_ROLE_PRIMARY &&
		       rv->role != REPL_ROLE_PRIMARY && !rv->stopping &&
		       !(p->conn && p->conn->goodbye) && !p->m->diskless;

	/* its requests nobody confirmed: into what each member may lack,
	 * and (unclean) our report, which goes out before the STATE that
	 * says we follow nobody (promotions wait for that one) */
	if (was_live && p->st.role == REPL_ROLE_PRIMARY && rv->role != REPL_ROLE_PRIMARY)
		repl_pa_primary_lost(rv, p, unclean);
	repl_pa_peer_gone(rv, p);
	repl_actlog_peer_forget(p);
	if (unclean) {
		set_unconfirmed(rv, true, "the primary left without a goodbye");
		repl_pa_report_all(rv);
	} else if (was_live && p->st.role == REPL_ROLE_PRIMARY && rv->role != REPL_ROLE_PRIMARY &&
		   !rv->stopping && p->conn && p->conn->goodbye) {
		set_following(rv, false); /* it said goodbye: what it sent is settled */
	}
	p->live = false;
	if (p->syncing || p->sync_inflight)
		repl_resync_stop(rv, p, true);
	if (!was_live)
		return;
	/* From here on its bitmap says what it misses: if it left in sync and
	 * was not itself a primary (a primary may hold writes nobody else has:
	 * it gets a full resync), or mid-resync (what is left is in the
	 * bitmap, and the resync resumes from it). */
	if (was_current && p->st.role != REPL_ROLE_PRIMARY && rv->role == REPL_ROLE_PRIMARY) {
		/* only a primary marks what a peer misses: a secondary's
		 * bitmap would stay empty while another primary writes
		 * (found by t-repl-diskless: the returning peer was "resynced"
		 * with 0 bytes by a member promoted after the writes) */
		p->bm_base = rv->v->sv->meta.gen.current;
		p->bm_complete = true;
		p->bm_run = rv->primary_runs;
	} else if (!was_syncing) {
		p->bm_complete = false;
	}
	log_msg(rv->stopping ? LOG_LVL_INFO : LOG_LVL_WARN, "repl",
		"%s: peer %u (%s) disconnected%s%s", vname(rv), p->id, p->m->node,
		p->why[0] ? ": " : "", p->why);
	/* It may miss writes from now on. Say so in the generations before
	 * any write completes without it, but only while writes can complete
	 * at all: a primary without quorum acknowledges nothing, keeps its
	 * generation, and so is simply behind (not split) when the others
	 * promote someone else. */
	if (rv->role == REPL_ROLE_PRIMARY && was_current && !rv->stopping)
		rv->need_rotate = true; /* done by the first write acknowledged without it */
	barrier_peer_gone(rv, p->id);
	repl_bar_peer_gone(rv, p);
	repl_verify_peer_gone(rv, p);
	repl_read_peer_gone(rv, p);
	for (struct repl_req *q = rv->inflight, *next; q; q = next) {
		next = q->next;
		if (q->wait & (1u << p->id)) {
			q->wait &= ~(1u << p->id);
			q->frames[p->id] = 0;
			p->pending--;
			req_check(q);
		}
	}
	/* a newer generation a peer showed while we still followed the
	 * primary was left for the primary to bring (peer_state_changed):
	 * with the primary gone, it outdates us now */
	if (was_live && p->st.role == REPL_ROLE_PRIMARY && rv->role != REPL_ROLE_PRIMARY &&
	    !rv->stopping)
		for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
			struct repl_peer *q = &rv->peers[i];

			if (q->live && q != p) {
				struct repl_state st = q->st;

				peer_state_changed(rv, q, &st, false);
			}
		}
	if (!rv->stopping)
		broadcast_state(rv); /* whom we follow may have changed */
	if (!rv->stopping)
		quorum_changed(rv);
	repl_pa_update(rv);
}

/* the slot's member changed (repl_vol_member_sync) and its link is gone:
 * nothing known about the old one applies to the new one */
static void reset_peer(struct repl_vol *rv, struct repl_peer *p)
{
	uint32_t id = p->id;

	repl_bitmap_free(p->bm);
	repl_pa_reset_peer(rv, p);
	repl_actlog_peer_forget(p);
	memset(p, 0, sizeof(*p));
	p->id = id;
	if (rv->cfg.members[id].present)
		p->m = &rv->cfg.members[id];
}

static void quorum_changed(struct repl_vol *rv)
{
	if (!rv->had_quorum && have_quorum(rv)) {
		rv->had_quorum = true;
		log_info("repl", "%s: quorum (%u of %u voters)", vname(rv), visible(rv),
			 repl_config_members(&rv->cfg));
		resume_suspended(rv);
	} else if (rv->had_quorum && !have_quorum(rv)) {
		rv->had_quorum = false;
		log_warn("repl", "%s: lost quorum (%u of %u voters visible)%s", vname(rv),
			 visible(rv), repl_config_members(&rv->cfg),
			 rv->role == REPL_ROLE_PRIMARY ? (rv->cfg.on_no_quorum == REPL_NOQ_SUSPEND ?
			 ": suspending I/O" : ": failing writes") : "");
	}
}

/* a repeated failure is logged again after a minute (env
 * URBD_REPL_RELOG_MS: the tests' shorter one) */
static uint64_t relog_ns(void)
{
	const char *v = getenv("URBD_REPL_RELOG_MS");
	long ms = v ? strtol(v, NULL, 10) : 0;

	return (ms > 0 && ms <= 3600000 ? (uint64_t)ms : 60000) * 1000000;
}

/* A new link to p: quiet (its failure logs at debug level) while the
 * last one's failure was logged less than a minute ago. */
static void conn_quiet(struct repl_peer *p)
{
	repl_conn_set_quiet(p->conn, p->fail_why[0] &&
			    now_ns() - p->fail_logged_ns < relog_ns());
}

/* c failed before it went live: count a repeat of the failure logged
 * last; log a new one (a quiet link did not) */
static void count_failure(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c)
{
	bool same = !strcmp(c->close_why, p->fail_why);

	if (c->quiet && same) {
		p->fail_repeats++;
		return;
	}
	if (same && p->fail_repeats)
		log_warn("repl", "%s: peer %u (%s): the same failure %u more time%s in the "
			 "last %llu s: %s", vname(rv), p->id, p->m->node, p->fail_repeats,
			 p->fail_repeats == 1 ? "" : "s",
			 (unsigned long long)((now_ns() - p->fail_logged_ns) / 1000000000),
			 c->close_why);
	else if (c->quiet)
		log_warn("repl", "%s: peer %u (%s): %s", vname(rv), p->id, p->m->node,
			 c->close_why);
	snprintf(p->fail_why, sizeof(p->fail_why), "%s", c->close_why);
	p->fail_logged_ns = now_ns();
	p->fail_repeats = 0;
}

static void on_closed(void *ctx, struct repl_conn *c)
{
	struct repl_vol *rv = ctx;
	struct repl_peer *p = &rv->peers[c->peer_id];

	rv->conns--;
	if (p->conn != c)
		return;
	if (!p->live && c->closed_in != REPL_CONN_CONNECTING && c->close_why[0])
		count_failure(rv, p, c);
	/* keep the most telling reason: a bare EOF says less than the
	 * authentication failure or protocol error that came before it */
	if (c->close_why[0] && (!p->why[0] || !strstr(c->close_why, "closed the connection")))
		snprintf(p->why, sizeof(p->why), "%s", c->close_why);
	peer_lost(rv, p);
	p->conn = NULL;
	p->bytes_out += c->bytes_out;
	p->bytes_in += c->bytes_in;
	p->sec_inflight = 0;
	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : RECONNECT_MIN_MS;
	if (p->backoff_ms > RECONNECT_MAX_MS)
		p->backoff_ms = RECONNECT_MAX_MS;
	p->next_connect_ns = now_ns() + p->backoff_ms * 1000000ull;
	if (p->reset_pending)
		reset_peer(rv, p);
	repl_vol_publish(rv);
}

static const struct repl_conn_ops conn_ops = {
	.fill_state = fill_state,
	.on_state = on_state,
	.on_msg = on_msg,
	.on_closed = on_closed,
};

static void conn_name(struct repl_vol *rv, struct repl_peer *p, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s peer %u (%s %s)", vname(rv), p->id, p->m->node,
		     p->m->addr) >= (int)len)
		buf[len - 1] = '\0'; /* a long name is cut, which is fine in logs */
}

static void try_connect(struct repl_vol *rv, struct repl_peer *p)
{
	char name[256];

	conn_name(rv, p, name, sizeof(name));
	p->conn = repl_conn_connect(rv->b.r, p->m->addr, rv->v->sv->meta.uuid.b,
				    rv->cfg.local_id, p->id, rv->secret, name, &conn_ops, rv);
	if (!p->conn) {
		snprintf(p->why, sizeof(p->why), "cannot connect to %s: %s", p->m->addr,
			 strerror(errno));
		p->next_connect_ns = now_ns() + RECONNECT_MAX_MS * 1000000ull;
		return;
	}
	conn_quiet(p);
	rv->conns++;
}

void repl_vol_adopt(struct repl_vol *rv, int fd, const struct repl_features *f,
		    const struct repl_msg *hello, const char *peer_addr)
{
	uint32_t from = hello->u.hello.from_id;
	struct repl_peer *p;
	char name[256];

	if (rv->stopping || hello->u.hello.to_id != rv->cfg.local_id ||
	    from == rv->cfg.local_id || !rv->cfg.members[from].present ||
	    from > rv->cfg.local_id) {
		log_warn("repl", "%s: connection from %s refused: member %u -> %u does not "
			 "fit this replica set (we are %u; the lower id connects)", vname(rv),
			 peer_addr, from, hello->u.hello.to_id, rv->cfg.local_id);
		close(fd);
		return;
	}
	p = &rv->peers[from];
	if (p->conn) {
		/* One link per peer. An unauthenticated newcomer must not tear
		 * down a working link: refuse it. If the peer really restarted,
		 * the old link fails its keepalive (or the handshake deadline)
		 * soon, and the peer's next attempt gets in. */
		log_rl(LOG_LVL_INFO, "repl", "%s: connection from %s as member %u refused: a "
		       "link with it is %s", vname(rv), peer_addr, from,
		       repl_conn_state_name(p->conn->state));
		close(fd);
		return;
	}
	conn_name(rv, p, name, sizeof(name));
	p->conn = repl_conn_accept(rv->b.r, fd, f, rv->v->sv->meta.uuid.b, rv->cfg.local_id,
				   from, rv->secret, name, &conn_ops, rv);
	if (!p->conn) {
		close(fd);
		return;
	}
	conn_quiet(p);
	rv->conns++;
	repl_vol_publish(rv); /* "standalone" in status now means the link is gone */
}

/* ---- timer ---------------------------------------------------------------------------- */

static void arm_timer(struct repl_vol *rv);

/* A safety net: a live peer we take as behind, with no resync of ours
 * under way and none waited for, gets no writes from us and never
 * catches up. It should not happen (RESYNC_DONE's handshake closed the
 * one way found); if it does for a second, say so and resync it. */
/* a live member with data we take as behind, no resync of ours under way
 * and none waited for */
static bool resync_due(const struct repl_peer *p)
{
	return p->live && p->outdated && !p->syncing && !p->await_al && !p->await_report &&
	       !p->m->diskless;
}

static void resync_stuck(struct repl_vol *rv)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (!resync_due(p)) {
			p->stuck_ticks = 0;
			continue;
		}
		if (++p->stuck_ticks < 5)
			continue;
		p->stuck_ticks = 0;
		log_rl(LOG_LVL_WARN, "repl", "%s: peer %u (%s) is behind with no resync under way: "
		       "starting one", vname(rv), p->id, p->m->node);
		repl_resync_start(rv, p, p->st.gen_current);
	}
}

/* A diskless primary resyncs a member that is behind once an up-to-date
 * member is there to read from (repl_resync_start says why it waits).
 * And a member that is current but lacks grains its bitmap marks (writes
 * that failed while it was away reached another member: t-repl-diskless-
 * lost) once another current member can give them: not before, since
 * it may be the only member we can read from */
static void diskless_resync(struct repl_vol *rv)
{
	if (!repl_read_source(rv))
		return;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (resync_due(p)) {
			repl_resync_start(rv, p, p->st.gen_current);
			continue;
		}
		if (!p->m || repl_peer_not_current(p) || !p->bm || !p->bm_complete ||
		    p->bm_base != p->st.gen_current || !repl_bitmap_count(p->bm) ||
		    !repl_read_source_besides(rv, p->id))
			continue;
		log_info("repl", "%s: peer %u (%s) lacks %llu grain(s) of writes that failed while "
			 "it was away: resyncing them from another up-to-date member", vname(rv),
			 p->id, p->m->node, (unsigned long long)repl_bitmap_count(p->bm));
		p->outdated = true;
		repl_resync_start(rv, p, p->st.gen_current);
	}
}

static void timer_done(struct reactor_op *op, int res)
{
	struct repl_vol *rv = container_of(op, struct repl_vol, timer.op);
	uint64_t now = now_ns();

	rv->timer_pending = false;
	if (rv->stopping)
		return;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		/* the lower member id connects; diskless members too */
		if (!p->m || i == rv->cfg.local_id || p->conn || i < rv->cfg.local_id)
			continue;
		if (now >= p->next_connect_ns)
			try_connect(rv, p);
	}
	repl_resync_tick(rv, TIMER_MS);
	if (rv->role == REPL_ROLE_PRIMARY) {
		repl_pa_flush(rv); /* an idle primary's last settled requests */
		if (!local_diskless(rv))
			resync_stuck(rv);
		else
			diskless_resync(rv);
	}
	repl_verify_tick(rv, TIMER_MS);
	repl_actlog_tick(rv);
	repl_bmstore_tick(rv);
	repl_vol_publish(rv);
	arm_timer(rv);
}

static void arm_timer(struct repl_vol *rv)
{
	if (rv->timer_pending || rv->stopping)
		return;
	rv->timer.op.cb = timer_done;
	rv->timer_pending = true;
	reactor_timeout(rv->b.r, &rv->timer, TIMER_MS * 1000000ull);
}

/* ---- life cycle --------------------------------------------------------------------------- */

/* URBD_RESYNC_RATE_MB, else 250 MiB/s: a resync must not starve the application */
static uint64_t default_resync_rate(void)
{
	const char *r = getenv("URBD_RESYNC_RATE_MB");

	return (r ? strtoull(r, NULL, 10) : 250) << 20;
}

static void destroy(struct vol_backend *b)
{
	struct repl_vol *rv = (struct repl_vol *)b;

	pthread_mutex_destroy(&rv->status_lock);
	repl_resync_free(rv);
	repl_verify_free(rv);
	repl_actlog_free(rv);
	repl_bmstore_free(rv);
	repl_pa_free(rv);
	repl_bar_free(rv);
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		repl_actlog_peer_forget(&rv->peers[i]);
	free(rv);
}

static const struct vol_backend_ops repl_ops = {
	.name = "replication",
	.submit = submit,
	.destroy = destroy,
};

static void start_on_reactor(void *arg) { arm_timer(arg); }

/* A crash while we followed a primary (set_following): what we applied of
 * its writes and others may lack, or lack and others hold, was in memory.
 * Unconfirmed, with a report that says "unknown" (repl_pa_new): the next
 * primary resyncs us unless it knows better (its bitmap for us, or the
 * activity log of the primary we followed) */
static void came_back_following(struct repl_vol *rv)
{
	const struct store_volume *sv = rv->v->sv;
	int ret;

	if (local_diskless(rv) || !(sv->meta.flags & STORE_SB_F_FOLLOWING))
		return;
	if (sv->opened_clean) {
		/* stopped in order: nothing applied since, nothing forgotten */
		set_following(rv, false);
		return;
	}
	if (sv->meta.flags & STORE_SB_F_UNCONFIRMED)
		return;
	ret = sb_flags(rv, STORE_SB_F_UNCONFIRMED | STORE_SB_F_LOST_TRACK, 0);
	if (ret < 0)
		log_err("repl", "%s: cannot persist that it is unconfirmed: %s", vname(rv),
			strerror(-ret));
	else
		log_warn("repl", "%s: restarted uncleanly while following a primary: unconfirmed "
			 "(what it applied of that primary's last writes is unknown: that "
			 "primary resyncs it from its bitmap, another one entirely)", vname(rv));
}

struct repl_vol *repl_vol_new(struct volume *v, const struct repl_config *cfg,
			      const struct repl_secret *secret)
{
	struct repl_vol *rv = calloc(1, sizeof(*rv));

	if (!rv)
		return NULL;
	rv->b.ops = &repl_ops;
	rv->b.r = v->r;
	rv->b.next = v->top;
	rv->v = v;
	rv->cfg = *cfg;
	rv->secret = secret;
	rv->blocked_tail = &rv->blocked;
	rv->suspended_tail = &rv->suspended;
	pthread_mutex_init(&rv->status_lock, NULL);
	rv->resync_rate = cfg->resync_rate_set ? cfg->resync_rate : default_resync_rate();
	rv->resync_tokens = (int64_t)(rv->resync_rate / 5);
	set_role(rv, REPL_ROLE_SECONDARY);
	rv->disk = cfg->members[cfg->local_id].diskless ? REPL_DISK_DISKLESS :
		   v->sv->meta.disk_state == REPL_DISK_OUTDATED ||
		   v->sv->meta.disk_state == REPL_DISK_INCONSISTENT ? v->sv->meta.disk_state
								    : REPL_DISK_CONSISTENT;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		rv->peers[i].id = i;
		if (cfg->members[i].present && i != cfg->local_id)
			rv->peers[i].m = &rv->cfg.members[i];
	}
	rv->had_quorum = have_quorum(rv);
	came_back_following(rv);
	if (repl_actlog_open(rv) || repl_bmstore_open(rv) || repl_pa_new(rv)) {
		log_err("repl", "%s: no memory for the activity log", v->name);
		repl_resync_free(rv);
		repl_actlog_free(rv);
		repl_bmstore_free(rv);
		repl_pa_free(rv);
		pthread_mutex_destroy(&rv->status_lock);
		free(rv);
		return NULL;
	}
	repl_actlog_cover_bitmaps(rv);
	fill_status(rv, &rv->status);
	v->top = &rv->b;
	reactor_post(v->r, start_on_reactor, rv);
	log_info("repl", "%s: replicated volume, member %u of %u (%s), %s, ack=%s, "
		 "on-no-quorum=%s, generation %016llx", v->name, cfg->local_id,
		 repl_config_members(cfg), cfg->members[cfg->local_id].node,
		 repl_disk_state_name(rv->disk), repl_ack_policy_name(cfg->ack),
		 repl_noquorum_name(cfg->on_no_quorum),
		 (unsigned long long)v->sv->meta.gen.current);
	return rv;
}

/* ---- control plane ----------------------------------------------------------------------- */

/* what a control call hands its reactor function */
struct ctl_arg {
	struct repl_vol *rv;
	bool force;                 /* promote --force, verify --repair */
	uint32_t id;                /* membership: the slot */
	const struct repl_member *m; /* ... its new member, NULL: remove */
	bool replace, apply;
	struct repl_config *out;
	uint32_t region;            /* verify */
	uint64_t rate;
	uint64_t size;              /* resize */
	char *err;
	size_t errlen;
};

/* We came back from a crash as primary and are promoted again; p was with
 * us and looks in sync. Our writes in flight at the crash may be on one of
 * us only: resync our logged extents, plus what the bitmap loaded for it
 * says (it has the extents already). Without that bitmap, the extents
 * are enough under ack=all (a write p did not acknowledge dropped it);
 * under ack=majority a laggard may miss more: everything. */
static void own_crash_resync(struct repl_vol *rv, struct repl_peer *p)
{
	int n = -1;

	p->outdated = true;
	if (p->bm_complete && p->bm_base == p->st.gen_current)
		n = 0;
	else if (rv->cfg.ack == REPL_ACK_ALL && repl_resync_bitmap(rv, p)) {
		repl_bitmap_clear_all(p->bm);
		p->bm_complete = true;
		p->bm_base = p->st.gen_current;
		p->bm_fp = false;
		n = repl_actlog_mark_recovered(rv, p);
	}
	if (n < 0)
		p->bm_complete = false;
	log_info("repl", "%s: peer %u (%s) was with us when we crashed as primary: %s",
		 vname(rv), p->id, p->m->node, n < 0 ? "full resync" :
		 "resyncing our activity-log extents and its dirty bitmap");
}

/* p still has gen, the generation a primary crashed in (x; NULL: we did),
 * with its data usable, and is no other crashed primary. If that primary
 * followed nobody since (the callers check: else it, or we, would be
 * unconfirmed), p followed it up to the crash, or was away and that
 * primary's bitmap for it covers the difference (loaded: own_crash_resync;
 * in the extents sent with COVERS). p, unconfirmed or not (it lost the
 * primary, perhaps restarting and forgetting which of its writes it
 * applied), differs from any other such member only in that primary's
 * writes then in flight (its log) or marked in its bitmaps. Another
 * primary since the crash either rotated the generation (the crashed one
 * was not visible) or had it follow (a promotion with every member
 * visible keeps the generation): then it lost that one too, or is being
 * resynced by it (inconsistent). */
static bool followed_crash(const struct repl_peer *p, const struct repl_peer *x, uint64_t gen)
{
	return p->st.gen_current == gen && state_usable(&p->st) &&
	       (p == x || !(p->st.flags & REPL_STATE_F_CRASHED_PRIMARY));
}

/* A crashed primary x among our peers, on the generation we had before
 * this promotion (followed_crash), following nobody since (not
 * unconfirmed), its extents known with REPL_AL_F_COVERS (its log's and
 * its complete dirty bitmaps': repl_actlog_cover_bitmaps). Only under
 * ack=all (a laggard may miss more), and only one such x (two would mean
 * we missed something). */
static struct repl_peer *crashed_peer(struct repl_vol *rv, uint64_t gen)
{
	struct repl_peer *x = NULL;

	if (rv->cfg.ack != REPL_ACK_ALL)
		return NULL;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (!p->live || p->m->diskless || !(p->st.flags & REPL_STATE_F_CRASHED_PRIMARY))
			continue;
		if (x || (p->st.flags & REPL_STATE_F_UNCONFIRMED) || p->al_gen != gen ||
		    !followed_crash(p, p, gen))
			return NULL;
		x = p;
	}
	return x;
}

/* p (x itself, or a member that followed it) resynced in x's extents */
static bool peer_crash_resync(struct repl_vol *rv, struct repl_peer *p,
			      const struct repl_peer *x, uint64_t gen)
{
	int n;

	if (!followed_crash(p, x, gen))
		return false;
	n = repl_actlog_mark_peer_log(rv, x, p);
	if (n < 0)
		return false;
	p->bm_complete = true;
	p->bm_base = p->st.gen_current;
	p->bm_fp = false;
	p->bm_trk = false;
	if (p == x)
		log_info("repl", "%s: peer %u (%s) crashed as primary: resyncing its %d logged "
			 "extent(s)", vname(rv), p->id, p->m->node, n);
	else
		log_info("repl", "%s: peer %u (%s) followed peer %u (%s) until it crashed as "
			 "primary: resyncing that one's %d logged extent(s)", vname(rv), p->id,
			 p->m->node, x->id, x->m->node, n);
	return true;
}

static int promote_on_reactor(void *arg)
{
	struct ctl_arg *a = arg;
	struct repl_vol *rv = a->rv;
	unsigned members = repl_config_members(&rv->cfg);
	/* before the promotion's barrier rotates it */
	uint64_t gen_before = rv->v->sv->meta.gen.current;

	if (rv->role == REPL_ROLE_PRIMARY && !(a->force && !have_quorum(rv)))
		return 0;
	if (local_diskless(rv) && !repl_read_source(rv)) {
		snprintf(a->err, a->errlen, "volume %s: this member is diskless and no up-to-date "
			 "replica is connected to read from", vname(rv));
		return -EBUSY;
	}
	if (rv->disk == REPL_DISK_OUTDATED || rv->disk == REPL_DISK_INCONSISTENT) {
		snprintf(a->err, a->errlen, "volume %s is %s here: it misses writes and "
			 "cannot become primary (promote an up-to-date replica)", vname(rv),
			 repl_disk_state_name(rv->disk));
		return -ESTALE;
	}
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const struct repl_peer *p = &rv->peers[i];
		uint32_t f = p->live ? p->st.following : 0;

		if (p->live && p->st.role == REPL_ROLE_PRIMARY) {
			snprintf(a->err, a->errlen, "volume %s is primary on %s: demote it there "
				 "first", vname(rv), p->m->node);
			return -EBUSY;
		}
		/* a peer we count for quorum still replicates from another
		 * primary: promoting now would make two generations diverge
		 * (the old primary may still complete writes with that peer) */
		if (f && f - 1 != rv->cfg.local_id && f - 1 < REPL_MAX_NODES) {
			snprintf(a->err, a->errlen, "volume %s: %s still follows the primary on "
				 "%s; try again once it has lost it", vname(rv), p->m->node,
				 rv->cfg.members[f - 1].present ? rv->cfg.members[f - 1].node : "?");
			return -EBUSY;
		}
	}
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const struct repl_peer *p = &rv->peers[i];

		if (p->live && !p->m->diskless && p->st.size < rv->v->size) {
			snprintf(a->err, a->errlen, "volume %s is %llu bytes here but %llu on %s: "
				 "resize it there first", vname(rv),
				 (unsigned long long)rv->v->size, (unsigned long long)p->st.size,
				 p->m->node);
			return -EBUSY;
		}
	}
	if (!have_quorum(rv) && !a->force) {
		snprintf(a->err, a->errlen, "volume %s: no quorum here (%u of %u voters "
			 "visible, %u needed)", vname(rv), visible(rv), members,
			 repl_config_majority(&rv->cfg));
		return -EAGAIN;
	}
	if (!have_quorum(rv)) {
		/* the operator says the others are gone for good: write alone
		 * until a peer connects again (risking a split brain) */
		log_warn("repl", "%s: forced: primary without quorum (%u of %u voters)",
			 vname(rv), visible(rv), members);
		rv->force_quorum = true;
		rv->had_quorum = true;
	}
	if (set_was_primary(rv, true)) {
		snprintf(a->err, a->errlen, "volume %s: cannot persist the primary flag", vname(rv));
		return -EIO;
	}
	/* the role first: the STATE the rotation broadcasts says "primary",
	 * which is what lets connected peers follow the new generation */
	set_role(rv, REPL_ROLE_PRIMARY);
	repl_bmstore_promoted(rv);
	/* what each member lacks, tracked while we were a secondary */
	repl_pa_promoted(rv);
	/* a primary that is gone may come back from a crash: from here on
	 * its bitmap says what we write without it, and its activity log
	 * (AL_EXTENTS) adds what it may hold that we lack */
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (p->m && !p->live && !p->m->diskless && p->st.role == REPL_ROLE_PRIMARY)
			repl_resync_track_former_primary(rv, p);
	}
	if (!local_diskless(rv))
		rv->disk = REPL_DISK_UP_TO_DATE;
	/* a new generation, confirmed by a quorum before the first write
	 * completes (the barrier): a tie-breaker gets no writes, so only the
	 * barrier's FLUSH_ACK says it holds the generation */
	if (visible(rv) < members && start_barrier(rv) < 0) {
		set_role(rv, REPL_ROLE_SECONDARY);
		snprintf(a->err, a->errlen, "volume %s: cannot persist the new generation",
			 vname(rv));
		return -EIO;
	}
	rv->had_quorum = have_quorum(rv);
	log_info("repl", "%s: promoted to primary (%u of %u voters visible%s)", vname(rv),
		 visible(rv), members, a->force ? ", forced" : "");
	{
		/* our data is the truth now; peers that may differ from it in
		 * unacknowledged writes (ours or theirs) are resynced entirely */
		bool was_unconfirmed = unconfirmed(rv);
		/* we crashed as primary: what was in flight then may be on
		 * some replicas only (rule 5 of repl_al.h) */
		bool own_crash = repl_actlog_crashed(rv) && !rv->v->sv->opened_clean;
		/* or another member did, and we followed it */
		struct repl_peer *x = own_crash ? NULL : crashed_peer(rv, gen_before);

		set_unconfirmed(rv, false, "promoted");
		set_following(rv, false);
		for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
			struct repl_peer *p = &rv->peers[i];

			if (!p->live || p->m->diskless)
				continue;
			if (own_crash && !was_unconfirmed && !p->outdated &&
			    followed_crash(p, NULL, gen_before)) {
				own_crash_resync(rv, p);
			} else if (was_unconfirmed || (p->st.flags & (REPL_STATE_F_UNCONFIRMED |
								      REPL_STATE_F_CRASHED_PRIMARY))) {
				bool crashed = p->st.flags & REPL_STATE_F_CRASHED_PRIMARY;

				p->outdated = true;
				/* tracked (plus its report), or it crashed while
				 * following us, or everyone followed x: resync that
				 * much */
				if ((crashed || (!repl_pa_claim(rv, p) &&
						 !bitmap_covers_lost_track(rv, p, &p->st))) &&
				    !(x && peer_crash_resync(rv, p, x, gen_before)))
					p->bm_complete = false;
			} else if (!p->outdated) {
				/* nothing of ours in flight yet */
				in_sync_claim(rv, p, p->st.gen_current);
			}
		}
		repl_actlog_settled(rv, "promoted: its data is the truth now");
	}
	broadcast_state(rv);
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (p->live && p->outdated && !p->m->diskless)
			repl_resync_start(rv, p, p->st.gen_current);
	}
	repl_vol_publish(rv);
	return 0;
}

int repl_vol_promote_sync(struct repl_vol *rv, bool force, char *err, size_t errlen)
{
	struct ctl_arg a = { .rv = rv, .force = force, .err = err, .errlen = errlen };

	return reactor_call(rv->b.r, promote_on_reactor, &a);
}

static int demote_on_reactor(void *arg)
{
	struct ctl_arg *a = arg;
	struct repl_vol *rv = a->rv;

	if (rv->role != REPL_ROLE_PRIMARY)
		return 0;
	if (rv->inflight || rv->blocked || rv->suspended) {
		snprintf(a->err, a->errlen, "volume %s has I/O in flight: detach its "
			 "clients first", vname(rv));
		return -EBUSY;
	}
	repl_pa_flush(rv); /* the secondaries' rings: nothing is unconfirmed */
	set_role(rv, REPL_ROLE_SECONDARY);
	/* nothing in flight: nothing the activity log would have to name */
	set_was_primary(rv, false);
	log_info("repl", "%s: demoted to secondary", vname(rv));
	broadcast_state(rv);
	repl_vol_publish(rv);
	return 0;
}

static int discard_on_reactor(void *arg)
{
	struct ctl_arg *a = arg;
	struct repl_vol *rv = a->rv;

	if (rv->role == REPL_ROLE_PRIMARY) {
		snprintf(a->err, a->errlen, "volume %s is primary here: demote it before "
			 "discarding its data", vname(rv));
		return -EBUSY;
	}
	if (!rv->discard_my_data)
		log_warn("repl", "%s: the operator discards this replica's data: the next "
			 "peer it meets in a split brain resyncs it completely", vname(rv));
	rv->discard_my_data = true;
	/* what this replica holds is no longer anybody's truth */
	set_disk(rv, REPL_DISK_OUTDATED, "the operator discards its data");
	repl_vol_publish(rv);
	return 0;
}

int repl_vol_discard_sync(struct repl_vol *rv, char *err, size_t errlen)
{
	struct ctl_arg a = { .rv = rv, .err = err, .errlen = errlen };

	return reactor_call(rv->b.r, discard_on_reactor, &a);
}

static int member_on_reactor(void *arg)
{
	struct ctl_arg *a = arg;
	struct repl_vol *rv = a->rv;
	struct repl_config nc = rv->cfg;
	struct repl_peer *p;
	int ret;

	if (a->id >= REPL_MAX_NODES) {
		snprintf(a->err, a->errlen, "member id %u out of range (0..%u)", a->id,
			 REPL_MAX_NODES - 1);
		return -EINVAL;
	}
	if (a->id == rv->cfg.local_id) {
		snprintf(a->err, a->errlen, "member %u is this node: remove or replace it from "
			 "the others, and delete the volume here", a->id);
		return -EBUSY;
	}
	if (a->m && nc.members[a->id].present && !a->replace) {
		snprintf(a->err, a->errlen, "member id %u is taken (%s): pick a free one, or "
			 "--replace to put a new node there", a->id, nc.members[a->id].node);
		return -EEXIST;
	}
	if (!nc.members[a->id].present && (!a->m || a->replace)) {
		snprintf(a->err, a->errlen, "volume %s has no member %u", vname(rv), a->id);
		return -ENXIO;
	}
	if (a->m) {
		nc.members[a->id] = *a->m;
		nc.members[a->id].present = true;
	} else {
		nc.members[a->id].present = false;
	}
	if ((ret = repl_config_check(&nc, a->err, a->errlen)))
		return ret;
	if (a->out)
		*a->out = nc;
	if (!a->apply)
		return 0;
	p = &rv->peers[a->id];
	log_info("repl", "%s: member %u %s%s%s", vname(rv), a->id,
		 !a->m ? "removed (" : a->replace ? "replaced by " : "added: ",
		 a->m ? a->m->node : rv->cfg.members[a->id].node, !a->m ? ")" : "");
	/* the old member's strings stay readable until its link is gone
	 * (p->m points into rv->cfg); a removed slot keeps them */
	rv->cfg.members[a->id] = nc.members[a->id];
	if (p->conn) {
		p->reset_pending = true;
		repl_conn_close(p->conn, REPL_REASON_ADMIN, a->m ? "member replaced" :
				"member removed");
	} else {
		reset_peer(rv, p);
	}
	quorum_changed(rv);
	repl_vol_publish(rv);
	return 0;
}

int repl_vol_member_sync(struct repl_vol *rv, uint32_t id, const struct repl_member *m,
			 bool replace, bool apply, struct repl_config *out, char *err,
			 size_t errlen)
{
	struct ctl_arg a = { .rv = rv, .id = id, .m = m, .replace = replace, .apply = apply,
			     .out = out, .err = err, .errlen = errlen };

	return reactor_call(rv->b.r, member_on_reactor, &a);
}

static int config_on_reactor(void *arg)
{
	struct ctl_arg *a = arg;

	*a->out = a->rv->cfg;
	return 0;
}

void repl_vol_config_sync(struct repl_vol *rv, struct repl_config *out)
{
	struct ctl_arg a = { .rv = rv, .out = out };

	reactor_call(rv->b.r, config_on_reactor, &a);
}

static int resync_rate_on_reactor(void *arg)
{
	struct ctl_arg *a = arg;
	struct repl_vol *rv = a->rv;

	rv->cfg.resync_rate_set = a->force;
	rv->cfg.resync_rate = a->force ? a->rate : 0;
	rv->resync_rate = a->force ? a->rate : default_resync_rate();
	/* a lower limit holds from the next tick on, not after a large credit */
	if (rv->resync_rate && rv->resync_tokens > (int64_t)(rv->resync_rate / 5))
		rv->resync_tokens = (int64_t)(rv->resync_rate / 5);
	log_info("repl", "%s: resync rate %llu bytes/s (0: no limit)%s", vname(rv),
		 (unsigned long long)rv->resync_rate, a->force ? "" : ", the daemon's default");
	repl_resync_pump_all(rv);
	repl_vol_publish(rv);
	return 0;
}

void repl_vol_resync_rate_sync(struct repl_vol *rv, bool set, uint64_t rate)
{
	struct ctl_arg a = { .rv = rv, .force = set, .rate = rate };

	reactor_call(rv->b.r, resync_rate_on_reactor, &a);
}

/* grows this member; on the primary only once every connected member
 * with data has (they must hold whatever it will write there) */
static int resize_on_reactor(void *arg)
{
	struct ctl_arg *a = arg;
	struct repl_vol *rv = a->rv;
	uint64_t old = rv->v->size;
	int ret;

	if (a->size == old)
		return 0;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (rv->role == REPL_ROLE_PRIMARY && p->live && !p->m->diskless &&
		    p->st.size < a->size) {
			snprintf(a->err, a->errlen, "volume %s is %llu bytes on %s: resize the "
				 "other members first, the primary last", vname(rv),
				 (unsigned long long)p->st.size, p->m->node);
			return -EBUSY;
		}
	}
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		if (rv->peers[i].bm && repl_bitmap_resize(rv->peers[i].bm, a->size)) {
			snprintf(a->err, a->errlen, "no memory for the larger dirty bitmaps");
			return -ENOMEM;
		}
	if (repl_actlog_resize(rv, a->size)) {
		snprintf(a->err, a->errlen, "cannot grow the activity log");
		return -ENOMEM;
	}
	/* here, not on a control thread: the reactor writes the same
	 * superblock (generations), and the two must not interleave */
	if ((ret = store_grow_volume(rv->v->sv, a->size))) {
		snprintf(a->err, a->errlen, "growing volume %s: %s", vname(rv), strerror(-ret));
		return ret;
	}
	rv->v->size = a->size;
	repl_bmstore_resized(rv);
	repl_pa_resized(rv);
	volume_notify(rv->v, false, old); /* frontends tell their hosts */
	log_info("repl", "%s: resized from %llu to %llu bytes", vname(rv),
		 (unsigned long long)old, (unsigned long long)a->size);
	broadcast_state(rv);
	repl_vol_publish(rv);
	return 0;
}

int repl_vol_resize_sync(struct repl_vol *rv, uint64_t size, char *err, size_t errlen)
{
	struct ctl_arg a = { .rv = rv, .size = size, .err = err, .errlen = errlen };

	return reactor_call(rv->b.r, resize_on_reactor, &a);
}

static int verify_on_reactor(void *arg)
{
	struct ctl_arg *a = arg;

	return repl_verify_start(a->rv, a->region, a->rate, a->force, a->err, a->errlen);
}

int repl_vol_verify_sync(struct repl_vol *rv, uint32_t region, uint64_t rate, bool repair,
			 char *err, size_t errlen)
{
	struct ctl_arg a = { .rv = rv, .region = region, .rate = rate, .force = repair,
			     .err = err, .errlen = errlen };

	return reactor_call(rv->b.r, verify_on_reactor, &a);
}

int repl_vol_demote_sync(struct repl_vol *rv, char *err, size_t errlen)
{
	struct ctl_arg a = { .rv = rv, .err = err, .errlen = errlen };

	if (__atomic_load_n(&rv->v->refs, __ATOMIC_ACQUIRE)) {
		snprintf(err, errlen, "volume %s has %d frontend connection(s): detach them "
			 "first", rv->v->name, __atomic_load_n(&rv->v->refs, __ATOMIC_ACQUIRE));
		return -EBUSY;
	}
	return reactor_call(rv->b.r, demote_on_reactor, &a);
}

static void fill_status(struct repl_vol *rv, struct repl_vol_status *st)
{
	memset(st, 0, sizeof(*st));
	st->local_id = rv->cfg.local_id;
	snprintf(st->role, sizeof(st->role), "%s", repl_role_name(rv->role));
	snprintf(st->disk, sizeof(st->disk), "%s", repl_disk_state_name(rv->disk));
	st->quorum = have_quorum(rv);
	st->voters = repl_config_members(&rv->cfg);
	st->visible = visible(rv);
	snprintf(st->ack, sizeof(st->ack), "%s", repl_ack_policy_name(rv->cfg.ack));
	snprintf(st->on_no_quorum, sizeof(st->on_no_quorum), "%s",
		 repl_noquorum_name(rv->cfg.on_no_quorum));
	st->gen_current = rv->v->sv->meta.gen.current;
	st->gen_bitmap = rv->v->sv->meta.gen.bitmap;
	st->writes_replicated = rv->writes_replicated;
	st->discard_my_data = rv->discard_my_data;
	st->forced = rv->force_quorum;
	st->unconfirmed = unconfirmed(rv);
	st->bitmap_grain = rv->v->sv->meta.bm_grain;
	st->resync_rate = rv->resync_rate;
	st->resync_rate_set = rv->cfg.resync_rate_set;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const struct repl_peer *p = &rv->peers[i];
		struct repl_peer_status *ps;

		if (!p->m)
			continue;
		ps = &st->peers[st->npeers++];
		ps->id = i;
		snprintf(ps->node, sizeof(ps->node), "%s", p->m->node);
		snprintf(ps->addr, sizeof(ps->addr), "%s", p->m->addr);
		ps->diskless = p->m->diskless;
		snprintf(ps->connection, sizeof(ps->connection), "%s",
			 p->split_brain ? "split-brain" :
			 p->conn ? repl_conn_state_name(p->conn->state) : "standalone");
		snprintf(ps->role, sizeof(ps->role), "%s",
			 p->live ? repl_role_name(p->st.role) : "unknown");
		snprintf(ps->disk, sizeof(ps->disk), "%s",
			 !p->live ? "unknown" : p->outdated ? "outdated" :
			 repl_disk_state_name(p->st.disk_state));
		snprintf(ps->error, sizeof(ps->error), "%s", p->why);
		ps->pending = p->pending;
		ps->lag_ns = p->live ? p->lag_ns : 0;
		ps->outdated = p->outdated;
		ps->tracked = p->trk_valid;
		ps->syncing = p->syncing;
		ps->out_of_sync = p->bm ? repl_bitmap_count(p->bm) * repl_bitmap_grain(p->bm) : 0;
		ps->resync_total = p->syncing ? p->sync_total : p->sync_last_total;
		ps->resync_done = p->syncing ? p->sync_done : p->sync_last_done;
		ps->resync_ns = p->syncing ? now_ns() - p->sync_started_ns : p->sync_last_ns;
		ps->bytes_out = p->bytes_out + (p->conn ? p->conn->bytes_out : 0);
		ps->bytes_in = p->bytes_in + (p->conn ? p->conn->bytes_in : 0);
	}
	repl_verify_status(rv, st);
}

void repl_vol_publish(struct repl_vol *rv)
{
	struct repl_vol_status *st = malloc(sizeof(*st));

	if (!st)
		return;
	fill_status(rv, st);
	pthread_mutex_lock(&rv->status_lock);
	rv->status = *st;
	pthread_mutex_unlock(&rv->status_lock);
	free(st);
}

void repl_vol_status_sync(struct repl_vol *rv, struct repl_vol_status *st)
{
	pthread_mutex_lock(&rv->status_lock);
	*st = rv->status;
	pthread_mutex_unlock(&rv->status_lock);
}

static int stop_on_reactor(void *arg)
{
	struct repl_vol *rv = arg;

	if (!rv->stopping) {
		rv->stopping = true;
		if (rv->timer_pending)
			reactor_cancel(rv->b.r, &rv->timer.op);
		resume_suspended(rv);
		for (unsigned i = 0; i < REPL_MAX_NODES; i++)
			if (rv->peers[i].conn)
				repl_conn_close(rv->peers[i].conn, REPL_REASON_SHUTDOWN,
						"volume going offline");
	}
	return (int)rv->conns + rv->timer_pending + (int)repl_verify_inflight(rv) +
	       (int)repl_actlog_busy(rv) + (int)repl_bmstore_busy(rv);
}

void repl_vol_stop_sync(struct repl_vol *rv)
{
	for (int i = 0; i < 3000 && reactor_call(rv->b.r, stop_on_reactor, rv); i++)
		usleep(1000);
}
