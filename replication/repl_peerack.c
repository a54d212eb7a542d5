/* Peer acks: every member knows what each other member may lack of the
 * primary's writes, so that whoever is promoted next resyncs only that,
 * not whole volumes (DRBD's "peer-ack" idea, written for urbd).
 *
 * The problem. When a primary dies, its writes in flight may have reached
 * some secondaries and not others, and a secondary that was away for a
 * while misses what the primary wrote meanwhile. Only the primary knew
 * which; the member promoted next used to resync every other member
 * completely ("unconfirmed"), and members that were away got a full
 * resync too.
 *
 *   primary      a write-like request is settled when every member it was
 *                sent to answered or left: repl_pa_settled() queues (id,
 *                members holding it). The queue leaves as PEER_ACK on every
 *                live link, in the same sendmsg as the next request (no send of its
 *                own), when 16 are queued or little is in flight, on the
 *                timer, and before a demote.
 *   secondary    every request applied from the primary is kept (id,
 *                range) in a ring until a PEER_ACK names it; then each
 *                member the PEER_ACK leaves out gets the range in its
 *                tracking bitmap (trk). When the primary is lost, what is
 *                left in the ring may be on any subset of members: it goes
 *                into every member's trk and, if the loss was unclean
 *                (this member is "unconfirmed"), into our own report.
 *   tracking     member X's trk counts from a PEER_ACK whose in-sync set
 *                names X: the primary's own word that X holds everything
 *                it settled, while we, up to date, apply all it sends (so
 *                we and X differ only in unsettled requests, which the
 *                rings hold; a member's STATE alone may be stale). It
 *                stops counting (invalid) when we are behind, follow
 *                another primary, the ring overflowed, or X becomes a
 *                primary, a resync target, follows someone else, or
 *                discards its data. The generations we had since it
 *                started are the ones X may come back with.
 *   report       a member that lost its primary uncleanly names the grains
 *                of its unacknowledged requests to every peer (BITMAP
 *                frames, after its STATE; UNKNOWN when it lost track, e.g.
 *                after a restart). They are what it may hold that we lack.
 *   promotion    X's trk becomes X's dirty bitmap, complete since the
 *                generation X had when we last heard of it; an unconfirmed
 *                X adds its report. X is resynced from that, not entirely.
 *
 * Why that is all X can differ in: from the start of tracking, a request
 * of the primary's is on us (we apply all of them) and on X unless the
 * PEER_ACK says otherwise (marked) or it never settled (in our ring, or in
 * X's, which X reports). Nobody else writes while both follow that
 * primary; a member that follows another one is caught by the generation
 * compare and by the rules above.
 *
 * Everything here is memory only: a member that restarts tracks nothing
 * and reports UNKNOWN, which means full resyncs, as before. A member that
 * crashed while following a primary comes back unconfirmed for that
 * reason (STORE_SB_F_FOLLOWING, repl_volume.c: came_back_following). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "repl_volume_priv.h"
#include "util.h"

#define RING_CAP   8192u  /* applied requests not yet named by a PEER_ACK */
#define FLUSH_AT   16u    /* queued entries that make the primary send */

struct pa_rec {
	uint64_t id, off;
	uint32_t len;
	bool live;
};

struct repl_pa {
	/* primary: settled requests not yet announced */
	uint64_t out_id[REPL_MAX_PEER_ACKS];
	uint32_t out_peers[REPL_MAX_PEER_ACKS];
	unsigned nout;
	uint32_t sent_in_sync;      /* the in-sync set last sent */
	/* secondary: requests of `following` (member id + 1) applied here and
	 * not yet named by a PEER_ACK; ring_ok: complete since it followed */
	struct pa_rec *ring;
	uint32_t head, count;       /* count includes dead records */
	uint32_t following;
	bool ring_ok;
	/* what we may hold that others lack, since we were last confirmed;
	 * own_valid false: we lost track (restart, overflow) */
	struct repl_dirty_bitmap *own;
	bool own_valid;
};

static struct repl_dirty_bitmap *new_bitmap(const struct repl_vol *rv)
{
	struct repl_dirty_bitmap *bm = repl_bitmap_create(rv->v->size, repl_vol_grain(rv));

	if (!bm)
		log_err("repl", "%s: no memory for a tracking bitmap: full resyncs instead",
			vname(rv));
	return bm;
}

int repl_pa_new(struct repl_vol *rv)
{
	rv->pa = calloc(1, sizeof(*rv->pa));
	if (!rv->pa)
		return -ENOMEM;
	/* a flag that survived a restart: the report it needs is gone */
	rv->pa->own_valid = !(rv->v->sv->meta.flags & STORE_SB_F_UNCONFIRMED);
	return 0;
}

void repl_pa_free(struct repl_vol *rv)
{
	if (!rv->pa)
		return;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		repl_pa_reset_peer(rv, &rv->peers[i]);
	repl_bitmap_free(rv->pa->own);
	free(rv->pa->ring);
	free(rv->pa);
	rv->pa = NULL;
}

static bool feature(const struct repl_conn *c)
{
	return c && (c->features & REPL_FEAT_PEER_ACK);
}

/* a member whose differences we would track */
static bool trackable(const struct repl_vol *rv, const struct repl_peer *x)
{
	return x->m && !x->m->diskless && x->id != rv->cfg.local_id;
}

static void invalidate(struct repl_vol *rv, struct repl_peer *x, const char *why)
{
	if (!x->trk_valid)
		return;
	x->trk_valid = false;
	log_dbg("repl", "%s: stopped tracking what peer %u (%s) lacks: %s", vname(rv), x->id,
		x->m ? x->m->node : "?", why);
}

static void invalidate_all(struct repl_vol *rv, const char *why)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		invalidate(rv, &rv->peers[i], why);
}

static void mark(struct repl_peer *x, uint64_t off, uint64_t len)
{
	if (x->trk_valid && x->trk)
		repl_bitmap_set_range(x->trk, off, len);
}

/* owned PEER_ACK entries and BITMAP chunks: freed once sent */
static void release(const uint8_t *data, uint32_t len)
{
	free((void *)data);
}

/* ---- primary ---------------------------------------------------------------------- */

/* the members we (the primary) know hold every request we settled */
static uint32_t in_sync_set(const struct repl_vol *rv)
{
	uint32_t set = 0;

	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const struct repl_peer *p = &rv->peers[i];

		if (p->m && !p->m->diskless && p->live && !p->outdated && !p->syncing &&
		    p->bm && p->bm_complete && !repl_bitmap_count(p->bm))
			set |= 1u << i;
	}
	return set;
}

static void send_to(struct repl_vol *rv, struct repl_peer *p, uint32_t in_sync)
{
	struct repl_pa *pa = rv->pa;
	struct repl_msg m = { .type = REPL_MSG_PEER_ACK };
	uint8_t *ents = pa->nout ? malloc(16 * pa->nout) : NULL;

	if (pa->nout && !ents) {
		/* it keeps those requests as unconfirmed: resyncs too much, never
		 * too little */
		log_rl(LOG_LVL_WARN, "repl", "%s: no memory for a PEER_ACK", vname(rv));
		return;
	}
	for (unsigned i = 0; i < pa->nout; i++)
		repl_peer_ack_put(ents, i, pa->out_id[i], pa->out_peers[i]);
	m.u.peer_ack.count = pa->nout;
	m.u.peer_ack.in_sync = in_sync;
	m.data = ents;
	m.data_len = 16 * pa->nout;
	if (repl_conn_send_owned(p->conn, &m, ents ? release : NULL) < 0)
		free(ents);
}

void repl_pa_flush(struct repl_vol *rv)
{
	struct repl_pa *pa = rv->pa;
	uint32_t in_sync;

	if (!pa || rv->role != REPL_ROLE_PRIMARY)
		return;
	in_sync = in_sync_set(rv);
	/* nothing settled: only a changed in-sync set is news */
	if (!pa->nout && in_sync == pa->sent_in_sync)
		return;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (p->live && feature(p->conn) && !p->m->diskless)
			send_to(rv, p, in_sync);
	}
	pa->nout = 0;
	pa->sent_in_sync = in_sync;
}

void repl_pa_settled(struct repl_vol *rv, uint64_t id, uint32_t holders)
{
	struct repl_pa *pa = rv->pa;

	if (!pa)
		return;
	pa->out_id[pa->nout] = id;
	pa->out_peers[pa->nout] = holders;
	if (++pa->nout == REPL_MAX_PEER_ACKS)
		repl_pa_flush(rv);
}

bool repl_pa_due(const struct repl_vol *rv, unsigned inflight)
{
	return rv->pa && rv->pa->nout && (rv->pa->nout >= FLUSH_AT || inflight <= 1);
}

/* ---- secondary: the ring ---------------------------------------------------------- */

static void ring_reset(struct repl_pa *pa)
{
	pa->head = pa->count = 0;
}

/* Whatever the ring still holds may be on any subset of the members:
 * every tracked member gets it, and so does our report if the primary
 * left uncleanly. */
static void ring_spill(struct repl_vol *rv, bool unclean)
{
	struct repl_pa *pa = rv->pa;
	uint32_t n = 0;

	if (unclean && pa->own_valid && !pa->ring_ok)
		pa->own_valid = false;
	if (unclean && pa->own_valid && !pa->own && !(pa->own = new_bitmap(rv)))
		pa->own_valid = false;
	for (uint32_t k = 0; k < pa->count; k++) {
		struct pa_rec *r = &pa->ring[(pa->head + k) % RING_CAP];

		if (!r->live)
			continue;
		n++;
		for (unsigned i = 0; i < REPL_MAX_NODES; i++)
			if (trackable(rv, &rv->peers[i]) && i != pa->following - 1)
				mark(&rv->peers[i], r->off, r->len);
		if (unclean && pa->own_valid)
			repl_bitmap_set_range(pa->own, r->off, r->len);
	}
	if (n)
		log_info("repl", "%s: %u request(s) of the lost primary were not known to be on "
			 "every member: marked for the others%s", vname(rv), n,
			 unclean ? " and in our report" : "");
	ring_reset(pa);
}

/* we replicate from member pid now (pid + 1 == following) */
static void follow(struct repl_vol *rv, uint32_t pid, const struct repl_conn *c)
{
	struct repl_pa *pa = rv->pa;

	if (pa->following == pid + 1)
		return;
	if (pa->count)
		ring_spill(rv, false);
	invalidate_all(rv, "following another primary");
	pa->following = pid + 1;
	pa->ring_ok = feature(c);
	if (pa->ring_ok && !pa->ring && !(pa->ring = calloc(RING_CAP, sizeof(*pa->ring))))
		pa->ring_ok = false;
}

void repl_pa_applied(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m)
{
	struct repl_pa *pa = rv->pa;
	struct pa_rec *r;

	if (!pa || !feature(p->conn))
		return;
	follow(rv, p->id, p->conn);
	if (!pa->ring_ok)
		return;
	if (pa->count == RING_CAP) {
		log_warn("repl", "%s: %u requests of the primary not yet named by a PEER_ACK: "
			 "no longer tracking what the others lack (full resyncs after a "
			 "failover)", vname(rv), RING_CAP);
		pa->ring_ok = false;
		invalidate_all(rv, "ring overflow");
		return;
	}
	r = &pa->ring[(pa->head + pa->count++) % RING_CAP];
	r->id = m->u.io.id;
	r->off = m->u.io.offset;
	r->len = m->u.io.length;
	r->live = true;
}

static struct pa_rec *ring_find(struct repl_pa *pa, uint64_t id)
{
	/* PEER_ACKs come in settle order, close to the ring's: near the head */
	for (uint32_t k = 0; k < pa->count; k++) {
		struct pa_rec *r = &pa->ring[(pa->head + k) % RING_CAP];

		if (r->live && r->id == id)
			return r;
	}
	return NULL;
}

/* The primary p says the members in `in_sync` hold all it settled. We
 * apply everything p sends (up to date, following it, the ring complete):
 * from here on we and they differ only in what the rings hold and what
 * the PEER_ACKs will say they lack. */
static void start_tracking(struct repl_vol *rv, struct repl_peer *p, uint32_t in_sync)
{
	if (!rv->pa->ring_ok || rv->disk != REPL_DISK_UP_TO_DATE)
		return;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *x = &rv->peers[i];

		if (x->trk_valid || !(in_sync & (1u << i)) || !trackable(rv, x) || x == p)
			continue;
		if (!x->trk && !(x->trk = new_bitmap(rv)))
			continue;
		repl_bitmap_clear_all(x->trk);
		x->trk_valid = true;
		x->trk_base = rv->v->sv->meta.gen.current;
		log_dbg("repl", "%s: tracking what peer %u (%s) lacks of %s's writes", vname(rv),
			x->id, x->m->node, p->m->node);
	}
}

int repl_pa_on_peer_ack(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
			char *why, size_t whylen)
{
	struct repl_pa *pa = rv->pa;

	if (p->st.role != REPL_ROLE_PRIMARY || rv->role == REPL_ROLE_PRIMARY) {
		snprintf(why, whylen, "PEER_ACK from a peer that is not the primary");
		return -EBADMSG;
	}
	if (!pa || pa->following != p->id + 1 || !pa->ring_ok)
		return 0; /* nothing applied from it yet, or no longer tracking */
	for (uint32_t i = 0; i < m->u.peer_ack.count; i++) {
		uint64_t id;
		uint32_t holders;
		struct pa_rec *r;

		repl_peer_ack_entry(m, i, &id, &holders);
		r = ring_find(pa, id);
		if (!r)
			continue; /* a request we never got: not ours to track */
		for (unsigned x = 0; x < REPL_MAX_NODES; x++)
			if (!(holders & (1u << x)) && trackable(rv, &rv->peers[x]) && x != p->id)
				mark(&rv->peers[x], r->off, r->len);
		r->live = false;
	}
	while (pa->count && !pa->ring[pa->head].live) {
		pa->head = (pa->head + 1) % RING_CAP;
		pa->count--;
	}
	start_tracking(rv, p, m->u.peer_ack.in_sync);
	return 0;
}

void repl_pa_primary_lost(struct repl_vol *rv, struct repl_peer *p, bool unclean)
{
	struct repl_pa *pa = rv->pa;

	if (!pa || pa->following != p->id + 1)
		return;
	ring_spill(rv, unclean);
	pa->following = 0;
	pa->ring_ok = false;
}

/* ---- tracking --------------------------------------------------------------------- */

void repl_pa_update(struct repl_vol *rv)
{
	struct repl_pa *pa = rv->pa;
	const struct repl_peer *pp = NULL;

	if (!pa || rv->role == REPL_ROLE_PRIMARY || rv->disk == REPL_DISK_DISKLESS)
		return;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		if (rv->peers[i].live && rv->peers[i].st.role == REPL_ROLE_PRIMARY)
			pp = &rv->peers[i];
	if (!pp)
		return; /* between primaries: what is tracked stays as it is */
	follow(rv, pp->id, pp->conn);
	if (rv->disk != REPL_DISK_UP_TO_DATE) {
		invalidate_all(rv, "this replica is not up to date");
		return;
	}
	/* what a member says of itself can only stop its tracking (it
	 * starts on the primary's word: start_tracking) */
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *x = &rv->peers[i];
		const struct repl_state *s = &x->st;

		if (!x->trk_valid || !x->live)
			continue;
		if (s->role == REPL_ROLE_PRIMARY)
			invalidate(rv, x, "it is a primary");
		else if (s->disk_state == REPL_DISK_INCONSISTENT)
			invalidate(rv, x, "it is a resync target");
		else if (s->following && s->following != pp->id + 1)
			invalidate(rv, x, "it follows another primary");
		else if (s->flags & REPL_STATE_F_DISCARD_MY_DATA)
			invalidate(rv, x, "it discards its data");
	}
}

void repl_pa_reset_peer(struct repl_vol *rv, struct repl_peer *x)
{
	repl_bitmap_free(x->trk);
	repl_bitmap_free(x->rep);
	x->trk = x->rep = NULL;
	x->trk_valid = x->rep_valid = x->rep_building = x->rep_unknown = false;
}

void repl_pa_resized(struct repl_vol *rv)
{
	struct repl_pa *pa = rv->pa;

	if (!pa)
		return;
	/* the bitmaps have the old size: start again (rare) */
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		repl_pa_reset_peer(rv, &rv->peers[i]);
	if (pa->own && repl_bitmap_resize(pa->own, rv->v->size))
		pa->own_valid = false;
}

/* ---- the report of an unconfirmed member ------------------------------------------ */

static int send_chunk(struct repl_conn *c, uint64_t total, uint64_t first, uint32_t flags,
		      const uint8_t *chunk, size_t len)
{
	struct repl_msg m = { .type = REPL_MSG_BITMAP };
	uint8_t *copy = malloc(len);
	int ret;

	if (!copy)
		return -ENOMEM;
	memcpy(copy, chunk, len);
	m.u.bitmap.total_bits = total;
	m.u.bitmap.first_bit = first;
	m.u.bitmap.flags = flags;
	m.data = copy;
	m.data_len = (uint32_t)len;
	ret = repl_conn_send_owned(c, &m, release);
	if (ret < 0)
		free(copy);
	return ret;
}

static bool any_set(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i])
			return true;
	return false;
}

void repl_pa_report_send(struct repl_vol *rv, struct repl_conn *c)
{
	struct repl_pa *pa = rv->pa;
	uint8_t *chunk;
	uint64_t total, aligned, first;

	if (!pa || !feature(c) || c->state == REPL_CONN_CLOSING || rv->disk == REPL_DISK_DISKLESS ||
	    !(rv->v->sv->meta.flags & STORE_SB_F_UNCONFIRMED))
		return;
	total = repl_bitmap_bits_for(rv->v->size, repl_vol_grain(rv));
	aligned = (total + 63) / 64 * 64;
	chunk = malloc(REPL_MAX_BITMAP);
	if (!chunk || !pa->own_valid || (!pa->own && !(pa->own = new_bitmap(rv)))) {
		uint8_t zero8[8] = { 0 };

		free(chunk);
		send_chunk(c, total, aligned - 64, REPL_BM_F_LAST | REPL_BM_F_UNKNOWN, zero8, 8);
		log_info("repl", "%s: told %s: our unconfirmed writes are unknown (full resync)",
			 vname(rv), c->name);
		return;
	}
	/* only chunks with bits in them, and always the last one */
	for (first = 0; first < aligned; first += 8ull * REPL_MAX_BITMAP) {
		int n = repl_bitmap_export_chunk(pa->own, first, chunk, REPL_MAX_BITMAP);
		bool last = first + 8ull * (uint64_t)n >= aligned;

		if (n <= 0)
			break;
		if (!last && !any_set(chunk, (size_t)n))
			continue;
		if (send_chunk(c, total, first, last ? REPL_BM_F_LAST : 0, chunk, (size_t)n) < 0)
			break;
	}
	free(chunk);
	log_info("repl", "%s: told %s: %llu grain(s) of unconfirmed writes", vname(rv), c->name,
		 (unsigned long long)repl_bitmap_count(pa->own));
}

void repl_pa_report_all(struct repl_vol *rv)
{
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		if (rv->peers[i].live)
			repl_pa_report_send(rv, rv->peers[i].conn);
}

void repl_pa_confirmed(struct repl_vol *rv)
{
	struct repl_pa *pa = rv->pa;

	if (!pa)
		return;
	if (pa->own)
		repl_bitmap_clear_all(pa->own);
	pa->own_valid = true;
}

static void report_done(struct repl_vol *rv, struct repl_peer *x);

int repl_pa_on_report(struct repl_vol *rv, struct repl_peer *x, const struct repl_msg *m,
		      char *why, size_t whylen)
{
	const struct repl_bitmap *b = &m->u.bitmap;
	uint32_t g = x->st.bm_grain;

	if (!feature(x->conn)) {
		snprintf(why, whylen, "BITMAP without the PEER_ACK feature");
		return -EBADMSG;
	}
	if (!g) {
		snprintf(why, whylen, "BITMAP from a diskless member");
		return -EBADMSG;
	}
	if (b->total_bits != repl_bitmap_bits_for(x->st.size, g)) {
		snprintf(why, whylen, "BITMAP of %llu bits for %llu bytes in %u-byte grains",
			 (unsigned long long)b->total_bits, (unsigned long long)x->st.size, g);
		return -EBADMSG;
	}
	if (!x->rep_building) {
		x->rep_building = true;
		x->rep_valid = x->rep_unknown = false;
		if (!x->rep && !(x->rep = new_bitmap(rv)))
			x->rep_unknown = true;
		if (x->rep)
			repl_bitmap_clear_all(x->rep);
	}
	if (b->flags & REPL_BM_F_UNKNOWN)
		x->rep_unknown = true;
	for (uint32_t i = 0; x->rep && i < m->data_len; i++) {
		if (!m->data[i])
			continue;
		for (unsigned j = 0; j < 8; j++) {
			uint64_t off = (b->first_bit + 8ull * i + j) * g;

			if ((m->data[i] & (1u << j)) && off < rv->v->size)
				repl_bitmap_set_range(x->rep, off, MIN((uint64_t)g, rv->v->size - off));
		}
	}
	if (!(b->flags & REPL_BM_F_LAST))
		return 0;
	x->rep_building = false;
	x->rep_valid = !x->rep_unknown;
	log_info("repl", "%s: peer %u (%s) reports %s", vname(rv), x->id, x->m->node,
		 x->rep_valid ? "its unconfirmed writes" : "that it lost track of its unconfirmed "
		 "writes");
	report_done(rv, x);
	return 0;
}

void repl_pa_peer_state(struct repl_vol *rv, struct repl_peer *x, const struct repl_state *s)
{
	if (!(s->flags & REPL_STATE_F_UNCONFIRMED))
		x->rep_valid = x->rep_building = false;
}

void repl_pa_peer_gone(struct repl_vol *rv, struct repl_peer *x)
{
	x->rep_valid = x->rep_building = false;
	x->await_report = false;
}

/* ---- promotion -------------------------------------------------------------------- */

/* The generations x may have and still be covered: ours since tracking
 * began (newest first; before our promotion rotates): a member that
 * missed writes before that has an older one, since a primary rotates
 * before it acknowledges the first write without a member. */
static void accepted_gens(const struct repl_vol *rv, struct repl_peer *x)
{
	const struct store_generations *g = &rv->v->sv->meta.gen;
	const uint64_t ours[3] = { g->current, g->history[0], g->history[1] };

	x->trk_ngens = 0;
	for (unsigned k = 0; k < 3 && ours[k]; k++) {
		x->trk_gens[x->trk_ngens++] = ours[k];
		if (ours[k] == x->trk_base)
			return;
	}
	x->trk_ngens = 0; /* tracking began before what we remember: no claim */
}

bool repl_pa_rebase(struct repl_peer *x, uint64_t gen)
{
	if (!x->bm_trk)
		return false;
	for (unsigned k = 0; k < x->trk_ngens; k++)
		if (x->trk_gens[k] == gen) {
			x->bm_base = gen;
			return true;
		}
	return false;
}

void repl_pa_promoted(struct repl_vol *rv)
{
	struct repl_pa *pa = rv->pa;

	if (!pa)
		return;
	if (pa->following) {
		/* promoted while still following someone? spill defensively */
		ring_spill(rv, false);
		pa->following = 0;
	}
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *x = &rv->peers[i];
		struct repl_dirty_bitmap *t;

		if (!x->trk_valid || !x->trk)
			continue;
		x->trk_valid = false;
		if (!repl_resync_bitmap(rv, x))
			continue;
		/* swap: the old bitmap is the next tracking one */
		t = x->bm;
		x->bm = x->trk;
		x->trk = t;
		x->bm_complete = true;
		x->bm_run = rv->primary_runs;
		x->bm_fp = false;
		x->bm_trk = true;
		accepted_gens(rv, x);
		if (!repl_pa_rebase(x, x->st.gen_current))
			x->bm_base = x->trk_ngens ? x->trk_gens[0] : 0;
		log_info("repl", "%s: peer %u (%s): %llu grain(s) it may lack, tracked while we "
			 "were secondaries", vname(rv), x->id, x->m->node,
			 (unsigned long long)repl_bitmap_count(x->bm));
	}
}

bool repl_pa_claim(struct repl_vol *rv, struct repl_peer *x)
{
	if (!x->bm_trk || !x->bm_complete || !repl_pa_rebase(x, x->st.gen_current))
		return false;
	if (!(x->st.flags & REPL_STATE_F_UNCONFIRMED))
		return true;
	if (!x->rep_valid || repl_bitmap_or(x->bm, x->rep) < 0)
		return false;
	log_info("repl", "%s: peer %u (%s) is unconfirmed: its report adds to what it is "
		 "resynced in (%llu grain(s) in all)", vname(rv), x->id, x->m->node,
		 (unsigned long long)repl_bitmap_count(x->bm));
	return true;
}

bool repl_pa_await(struct repl_vol *rv, struct repl_peer *x, const struct repl_state *s)
{
	if (!x->bm_trk || !x->bm_complete || !repl_pa_rebase(x, s->gen_current) ||
	    !(s->flags & REPL_STATE_F_UNCONFIRMED))
		return false;
	if (!feature(x->conn)) {
		x->bm_complete = false;
		return false;
	}
	x->await_report = true;
	return true;
}

static void report_done(struct repl_vol *rv, struct repl_peer *x)
{
	if (!x->await_report)
		return;
	x->await_report = false;
	if (rv->role != REPL_ROLE_PRIMARY || !x->live)
		return;
	if (!x->rep_valid || repl_bitmap_or(x->bm, x->rep) < 0)
		x->bm_complete = false;
	repl_resync_start(rv, x, x->st.gen_current);
}
