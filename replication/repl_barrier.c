/* BARRIER: a point in a volume's write stream that every member with
 * data confirms as on stable storage, for a crash-consistent cut across
 * the replicas (what a snapshot of all of them needs).
 *
 *   primary   repl_vol_barrier_sync (urbdctl volume barrier): epoch e,
 *             BARRIER(e) to every live, up-to-date member that negotiated
 *             REPL_FEAT_BARRIER, behind every request already sent on the
 *             same link; locally, once the requests registered before it
 *             completed their local write, a FLUSH of the store. Done when
 *             the local flush and every BARRIER_ACK (or the peer's loss)
 *             are in: the members that confirmed, and why the others did
 *             not
 *   secondary the writes the primary sends are counted into epochs; a
 *             BARRIER closes the open one. Epochs settle in order: when
 *             the oldest closed one has nothing in flight, a FLUSH of the
 *             store, then BARRIER_ACK(e) with its status. So the ack says
 *             "every write sent before the barrier is applied and flushed
 *             here"
 *
 * Epochs are counted per volume, whichever primary sent the writes: a
 * BARRIER after a reconnect also waits for writes of the old link, which
 * is more than needed, never less. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "repl_volume_priv.h"
#include "util.h"

struct repl_epoch {
	uint64_t id;                /* the BARRIER's epoch once closed */
	unsigned inflight;          /* writes of this epoch not yet applied */
	bool closed, flushing;
	struct repl_conn *c;        /* the link the BARRIER came on (a ref) */
	struct repl_epoch *next;
};

struct repl_bar {
	struct repl_vol *rv;
	/* primary: the run */
	uint64_t next;              /* the last epoch given out */
	uint64_t epoch;             /* in progress, 0: none */
	uint64_t last_id;           /* requests registered before it: id <= this */
	uint64_t start_ns;
	uint32_t wait;              /* peers whose BARRIER_ACK is due */
	uint32_t confirmed;         /* peers that confirmed */
	bool local_wait, local_flushing, local_data;
	int local_res;
	struct vol_io flush;
	struct repl_bar_result res; /* of the last run */
	/* secondary: epochs, oldest first; the last one open */
	struct repl_epoch *head, *tail;
	struct vol_io sec_flush;
};

struct repl_bar_call {
	struct repl_vol *rv;
	char *err;
	size_t errlen;
	uint64_t epoch;
	struct repl_bar_result res;
};

static struct repl_bar *bar_of(struct repl_vol *rv)
{
	if (!rv->bar && (rv->bar = calloc(1, sizeof(*rv->bar))))
		rv->bar->rv = rv;
	return rv->bar;
}

/* a FLUSH of the local store in io, done calls cb */
static void flush_store(struct repl_vol *rv, struct vol_io *io, void (*cb)(struct vol_io *, int))
{
	struct vol_backend *local = rv->b.next;

	memset(io, 0, sizeof(*io));
	io->op = VOL_FLUSH;
	io->vol = rv->v;
	io->chain_done = cb;
	local->ops->submit(local, io);
}

/* ---- secondary ----------------------------------------------------------------- */

static void sec_progress(struct repl_vol *rv);

static void epoch_free(struct repl_epoch *e)
{
	if (e->c)
		repl_conn_put(e->c);
	free(e);
}

static void sec_flush_done(struct vol_io *io, int res)
{
	struct repl_bar *b = container_of(io, struct repl_bar, sec_flush);
	struct repl_vol *rv = b->rv;
	struct repl_epoch *e = b->head;
	struct repl_msg m = { .type = REPL_MSG_BARRIER_ACK };

	m.u.ack.id = e->id;
	m.u.ack.status = repl_status_from_errno(res);
	if (res < 0)
		log_rl(LOG_LVL_WARN, "repl", "%s: barrier %llu: flush failed: %s", vname(rv),
		       (unsigned long long)e->id, strerror(-res));
	if (e->c->state == REPL_CONN_LIVE)
		repl_conn_send(e->c, &m);
	b->head = e->next;
	if (!b->head)
		b->tail = NULL;
	epoch_free(e);
	sec_progress(rv);
}

/* the oldest closed epoch with nothing in flight: flush, then ack */
static void sec_progress(struct repl_vol *rv)
{
	struct repl_bar *b = rv->bar;
	struct repl_epoch *e = b ? b->head : NULL;

	if (!e || !e->closed || e->inflight || e->flushing)
		return;
	e->flushing = true;
	flush_store(rv, &b->sec_flush, sec_flush_done);
}

static struct repl_epoch *open_epoch(struct repl_vol *rv)
{
	struct repl_bar *b = bar_of(rv);
	struct repl_epoch *e;

	if (!b)
		return NULL;
	if (b->tail && !b->tail->closed)
		return b->tail;
	if (!(e = calloc(1, sizeof(*e))))
		return NULL;
	if (b->tail)
		b->tail->next = e;
	else
		b->head = e;
	b->tail = e;
	return e;
}

struct repl_epoch *repl_bar_sec_io(struct repl_vol *rv)
{
	struct repl_epoch *e = open_epoch(rv);

	if (e)
		e->inflight++;
	return e; /* NULL (no memory): this write is not counted */
}

void repl_bar_sec_io_done(struct repl_vol *rv, struct repl_epoch *e)
{
	if (!e)
		return;
	e->inflight--;
	sec_progress(rv);
}

int repl_bar_on_barrier(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c,
			const struct repl_msg *m, char *why, size_t whylen)
{
	struct repl_epoch *e;

	if (p->st.role != REPL_ROLE_PRIMARY || rv->role == REPL_ROLE_PRIMARY) {
		snprintf(why, whylen, "BARRIER from a peer that is not the primary");
		return -EBADMSG;
	}
	if (rv->disk == REPL_DISK_DISKLESS) {
		snprintf(why, whylen, "BARRIER to a diskless member");
		return -EBADMSG;
	}
	if (!(e = open_epoch(rv))) {
		snprintf(why, whylen, "out of memory");
		return -EBADMSG;
	}
	e->id = m->u.value;
	e->closed = true;
	e->c = c;
	repl_conn_get(c);
	sec_progress(rv);
	return 0;
}

/* ---- primary ---------------------------------------------------------------------- */

static void run_check(struct repl_vol *rv);

static void local_flush_done(struct vol_io *io, int res)
{
	struct repl_bar *b = container_of(io, struct repl_bar, flush);
	struct repl_vol *rv = b->rv;

	b->local_flushing = false;
	b->local_res = res < 0 ? res : 0;
	run_check(rv);
}

/* the requests registered before the barrier: all written locally? */
static bool local_writes_done(struct repl_vol *rv)
{
	for (struct repl_req *q = rv->inflight; q; q = q->next)
		if (q->id <= rv->bar->last_id && is_write_like(q->sub.op) && !q->local_done)
			return false;
	return true;
}

static void run_check(struct repl_vol *rv)
{
	struct repl_bar *b = rv->bar;

	if (!b || !b->epoch)
		return;
	if (b->local_wait && local_writes_done(rv)) {
		b->local_wait = false;
		b->local_flushing = true;
		flush_store(rv, &b->flush, local_flush_done);
		return;
	}
	if (b->local_wait || b->local_flushing || b->wait)
		return;
	b->res.epoch = b->epoch;
	b->res.ns = now_ns() - b->start_ns;
	b->res.confirmed = b->confirmed;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		if (rv->cfg.members[i].present) {
			b->res.members |= 1u << i;
			snprintf(b->res.node[i], sizeof(b->res.node[i]), "%s",
				 rv->cfg.members[i].node);
		}
	if (b->local_data) {
		if (b->local_res == 0)
			b->res.confirmed |= 1u << rv->cfg.local_id;
		else
			snprintf(b->res.why[rv->cfg.local_id], sizeof(b->res.why[0]),
				 "local flush failed: %s", strerror(-b->local_res));
	}
	log_info("repl", "%s: barrier %llu: confirmed by %d member%s in %.3f ms", vname(rv),
		 (unsigned long long)b->epoch, __builtin_popcount(b->res.confirmed),
		 __builtin_popcount(b->res.confirmed) == 1 ? "" : "s", b->res.ns / 1e6);
	b->epoch = 0;
}

void repl_bar_local_done(struct repl_vol *rv)
{
	if (rv->bar && rv->bar->epoch && rv->bar->local_wait)
		run_check(rv);
}

int repl_bar_on_ack(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
		    char *why, size_t whylen)
{
	struct repl_bar *b = rv->bar;
	uint32_t bit = 1u << p->id;

	if (!b || !(b->wait & bit) || m->u.ack.id != b->epoch) {
		snprintf(why, whylen, "BARRIER_ACK for epoch %llu that was not asked of this peer",
			 (unsigned long long)m->u.ack.id);
		return -EBADMSG;
	}
	b->wait &= ~bit;
	if (m->u.ack.status == REPL_ST_OK)
		b->confirmed |= bit;
	else
		snprintf(b->res.why[p->id], sizeof(b->res.why[0]), "its flush failed: %s",
			 repl_status_name(m->u.ack.status));
	run_check(rv);
	return 0;
}

void repl_bar_peer_gone(struct repl_vol *rv, struct repl_peer *p)
{
	struct repl_bar *b = rv->bar;

	if (!b || !(b->wait & (1u << p->id)))
		return;
	b->wait &= ~(1u << p->id);
	snprintf(b->res.why[p->id], sizeof(b->res.why[0]), "disconnected before its ack");
	run_check(rv);
}

/* why member i is left out of a barrier, or NULL: it gets one */
static const char *left_out(struct repl_vol *rv, unsigned i)
{
	struct repl_peer *p = &rv->peers[i];
	const char *why = repl_peer_not_current(p);

	if (!why && !(p->conn->features & REPL_FEAT_BARRIER))
		why = "its daemon has no BARRIER";
	return why;
}

static int start_on_reactor(void *arg)
{
	struct repl_bar_call *a = arg;
	struct repl_vol *rv = a->rv;
	struct repl_bar *b;
	struct repl_msg m = { .type = REPL_MSG_BARRIER };

	if (rv->role != REPL_ROLE_PRIMARY) {
		snprintf(a->err, a->errlen, "volume %s is %s here: run the barrier on the primary",
			 vname(rv), repl_role_name(rv->role));
		return -EROFS;
	}
	if (!(b = bar_of(rv))) {
		snprintf(a->err, a->errlen, "out of memory");
		return -ENOMEM;
	}
	if (b->epoch) {
		snprintf(a->err, a->errlen, "volume %s: barrier %llu is still running", vname(rv),
			 (unsigned long long)b->epoch);
		return -EBUSY;
	}
	memset(&b->res, 0, sizeof(b->res));
	b->epoch = ++b->next;
	b->last_id = rv->next_id;
	b->start_ns = now_ns();
	b->wait = b->confirmed = 0;
	b->local_data = rv->disk != REPL_DISK_DISKLESS;
	b->local_wait = b->local_data;
	b->local_flushing = false;
	b->local_res = 0;
	if (!b->local_data)
		snprintf(b->res.why[rv->cfg.local_id], sizeof(b->res.why[0]), "diskless");
	m.u.value = b->epoch;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];
		const char *why;

		if (!p->m || i == rv->cfg.local_id)
			continue;
		if ((why = left_out(rv, i))) {
			snprintf(b->res.why[i], sizeof(b->res.why[0]), "%s", why);
			continue;
		}
		if (repl_conn_send(p->conn, &m)) {
			snprintf(b->res.why[i], sizeof(b->res.why[0]), "its link is going");
			continue;
		}
		b->wait |= 1u << i;
	}
	log_info("repl", "%s: barrier %llu: waiting for %d member(s)%s", vname(rv),
		 (unsigned long long)b->epoch, __builtin_popcount(b->wait),
		 b->local_wait ? " and the local flush" : "");
	a->epoch = b->epoch;
	run_check(rv);
	return 0;
}

static int result_on_reactor(void *arg)
{
	struct repl_bar_call *a = arg;
	struct repl_bar *b = a->rv->bar;

	if (!b || b->res.epoch != a->epoch)
		return -EAGAIN;
	a->res = b->res;
	return 0;
}

int repl_vol_barrier_sync(struct repl_vol *rv, unsigned timeout_ms, struct repl_bar_result *res,
			  char *err, size_t errlen)
{
	struct repl_bar_call a = { .rv = rv, .err = err, .errlen = errlen };
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	int ret = reactor_call(rv->b.r, start_on_reactor, &a);

	if (ret)
		return ret;
	while ((ret = reactor_call(rv->b.r, result_on_reactor, &a)) == -EAGAIN) {
		struct timespec ts = { 0, 1000000L };

		if (now_ns() >= end) {
			snprintf(err, errlen, "volume %s: barrier %llu not confirmed within %u ms",
				 vname(rv), (unsigned long long)a.epoch, timeout_ms);
			return -ETIMEDOUT;
		}
		nanosleep(&ts, NULL);
	}
	*res = a.res;
	return 0;
}

void repl_bar_free(struct repl_vol *rv)
{
	struct repl_bar *b = rv->bar;

	if (!b)
		return;
	while (b->head) {
		struct repl_epoch *e = b->head;

		b->head = e->next;
		epoch_free(e);
	}
	free(b);
	rv->bar = NULL;
}
