#include "reactor.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "iobuf.h"
#include "log.h"
#include "util.h"

#define CQE_BATCH 128

struct reactor_msg {
	struct reactor_msg *next;
	void (*fn)(void *arg);
	void *arg;
};

struct reactor {
	struct io_uring ring;
	int id;
	pthread_t thread;
	bool started;
	bool disabled; /* created IORING_SETUP_R_DISABLED: the thread enables it */
	bool single_issuer; /* its submitter is the thread that enabled it... */
	bool enabled_once;  /* ...which ran: a restart needs a new ring */
	unsigned entries;
	bool stopping; /* loop thread only */
	unsigned inflight;
	uint64_t poll_ns;   /* reactor_set_poll: busy-poll this long after work */
	uint64_t last_done; /* now_ns() of the last turn that completed something */

	/* cross-thread mailbox: the only lock, taken by the reactor only when
	 * its eventfd says there is mail */
	pthread_mutex_t lock;
	struct reactor_msg *head, **tail;
	int efd;
	uint64_t efd_val;
	struct reactor_op efd_op;
	struct reactor_task *tasks;   /* reactor_defer: loop thread only */
};

static __thread struct reactor *current;

struct reactor *reactor_self(void) { return current; }
int reactor_id(const struct reactor *r) { return r->id; }
unsigned reactor_inflight(const struct reactor *r) { return r->inflight; }

void reactor_set_poll(struct reactor *r, unsigned us)
{
	r->poll_ns = (uint64_t)us * 1000;
}

static struct io_uring_sqe *get_sqe(struct reactor *r)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&r->ring))) {
		int ret = io_uring_submit(&r->ring);

		if (ret < 0 && ret != -EAGAIN && ret != -EINTR && ret != -EBUSY)
			log_err("reactor", "r%d: io_uring_submit: %s", r->id,
				strerror(-ret));
	}
	return sqe;
}

static void prep_op(struct reactor *r, struct io_uring_sqe *sqe,
		    struct reactor_op *op)
{
	io_uring_sqe_set_data(sqe, op);
	r->inflight++;
}

void reactor_read(struct reactor *r, struct reactor_op *op, int fd, void *buf,
		  unsigned len, uint64_t off)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	io_uring_prep_read(sqe, fd, buf, len, off);
	prep_op(r, sqe, op);
}

void reactor_write(struct reactor *r, struct reactor_op *op, int fd,
		   const void *buf, unsigned len, uint64_t off, int rw_flags)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	io_uring_prep_write(sqe, fd, buf, len, off);
	sqe->rw_flags = rw_flags;
	prep_op(r, sqe, op);
}

void reactor_fsync(struct reactor *r, struct reactor_op *op, int fd,
		   bool datasync)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	io_uring_prep_fsync(sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
	prep_op(r, sqe, op);
}

void reactor_fallocate(struct reactor *r, struct reactor_op *op, int fd,
		       int mode, uint64_t off, uint64_t len)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	io_uring_prep_fallocate(sqe, fd, mode, (off_t)off, (off_t)len);
	prep_op(r, sqe, op);
}

void reactor_recv(struct reactor *r, struct reactor_op *op, int fd, void *buf,
		  unsigned len)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	io_uring_prep_recv(sqe, fd, buf, len, 0);
	prep_op(r, sqe, op);
}

void reactor_sendmsg(struct reactor *r, struct reactor_op *op, int fd,
		     const struct msghdr *msg)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	prep_op(r, sqe, op);
}

void reactor_accept(struct reactor *r, struct reactor_op *op, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
	prep_op(r, sqe, op);
}

void reactor_connect(struct reactor *r, struct reactor_op *op, int fd,
		     const struct sockaddr *addr, socklen_t len)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	io_uring_prep_connect(sqe, fd, addr, len);
	prep_op(r, sqe, op);
}

void reactor_timeout(struct reactor *r, struct reactor_timer *t, uint64_t ns)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	t->ts.tv_sec = (long long)(ns / 1000000000ULL);
	t->ts.tv_nsec = (long long)(ns % 1000000000ULL);
	io_uring_prep_timeout(sqe, &t->ts, 0, 0);
	prep_op(r, sqe, &t->op);
}

void reactor_cancel(struct reactor *r, struct reactor_op *target)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	io_uring_prep_cancel(sqe, target, 0);
	/* the cancel's own completion carries no callback */
	io_uring_sqe_set_data(sqe, NULL);
}

/* ---- mailbox -------------------------------------------------------- */

static void arm_eventfd(struct reactor *r);

static void drain_mailbox(struct reactor *r)
{
	struct reactor_msg *m;

	pthread_mutex_lock(&r->lock);
	m = r->head;
	r->head = NULL;
	r->tail = &r->head;
	pthread_mutex_unlock(&r->lock);
	while (m) {
		struct reactor_msg *next = m->next;

		m->fn(m->arg);
		free(m);
		m = next;
	}
}

static void eventfd_done(struct reactor_op *op, int res)
{
	struct reactor *r = container_of(op, struct reactor, efd_op);

	if (res < 0 && res != -EINTR && res != -ECANCELED)
		log_err("reactor", "r%d: eventfd read: %s", r->id, strerror(-res));
	drain_mailbox(r);
	if (!r->stopping)
		arm_eventfd(r);
}

static void arm_eventfd(struct reactor *r)
{
	r->efd_op.cb = eventfd_done;
	reactor_read(r, &r->efd_op, r->efd, &r->efd_val, sizeof(r->efd_val), 0);
}

int reactor_post(struct reactor *r, void (*fn)(void *arg), void *arg)
{
	struct reactor_msg *m = malloc(sizeof(*m));
	uint64_t one = 1;

	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->fn = fn;
	m->arg = arg;
	pthread_mutex_lock(&r->lock);
	*r->tail = m;
	r->tail = &m->next;
	pthread_mutex_unlock(&r->lock);
	if (write(r->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("reactor", "r%d: eventfd write: %m", r->id);
	return 0;
}

struct sync_call {
	int (*fn)(void *arg);
	void *arg;
	int ret;
	bool done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

static void sync_call_run(void *arg)
{
	struct sync_call *sc = arg;
	int ret = sc->fn(sc->arg);

	pthread_mutex_lock(&sc->lock);
	sc->ret = ret;
	sc->done = true;
	pthread_cond_signal(&sc->cond);
	pthread_mutex_unlock(&sc->lock);
}

int reactor_call(struct reactor *r, int (*fn)(void *arg), void *arg)
{
	struct sync_call sc = { .fn = fn, .arg = arg };
	int ret;

	if (current == r)
		return fn(arg);
	pthread_mutex_init(&sc.lock, NULL);
	pthread_cond_init(&sc.cond, NULL);
	ret = reactor_post(r, sync_call_run, &sc);
	if (ret == 0) {
		pthread_mutex_lock(&sc.lock);
		while (!sc.done)
			pthread_cond_wait(&sc.cond, &sc.lock);
		pthread_mutex_unlock(&sc.lock);
		ret = sc.ret;
	}
	pthread_mutex_destroy(&sc.lock);
	pthread_cond_destroy(&sc.cond);
	return ret;
}

/* ---- loop ----------------------------------------------------------- */

static unsigned run_completions(struct reactor *r)
{
	unsigned total = 0;
	struct io_uring_cqe *cqe;
	struct {
		struct reactor_op *op;
		int res;
	} batch[CQE_BATCH];
	unsigned head, n;

	/* Copy out and release CQ slots before running callbacks, which
	 * submit new work, so the CQ never fills behind our back. */
	do {
		n = 0;
		io_uring_for_each_cqe(&r->ring, head, cqe) {
			batch[n].op = io_uring_cqe_get_data(cqe);
			batch[n].res = cqe->res;
			if (++n == CQE_BATCH)
				break;
		}
		io_uring_cq_advance(&r->ring, n);
		for (unsigned i = 0; i < n; i++) {
			if (!batch[i].op)
				continue; /* cancel requests */
			r->inflight--;
			batch[i].op->cb(batch[i].op, batch[i].res);
		}
		total += n;
	} while (n == CQE_BATCH);
	return total;
}

/* completions waiting, or completion work the kernel queued for this
 * thread (DEFER_TASKRUN/COOP_TASKRUN with TASKRUN_FLAG) */
static bool ring_has_work(struct reactor *r)
{
	return io_uring_cq_ready(&r->ring) ||
	       (IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_TASKRUN);
}

/* Sleep in io_uring_enter until something completes; with busy-polling
 * (reactor_set_poll), first watch the rings without sleeping for up to
 * poll_ns after the last turn that completed work. A thread woken from
 * sleep on another CPU costs a cross-CPU wake-up (an IPI, and on a VM an
 * exit: about 35 us each way on the 2-vCPU VM of DESIGN.md §7, against
 * 3 us on the same CPU); a replicated write at QD1 waits for several in
 * a row (client -> primary -> peers -> disk -> acks -> client). Polling
 * yields the CPU on every turn, so other runnable threads still run. */
static int reactor_wait(struct reactor *r)
{
	if (r->poll_ns && !r->stopping) {
		uint64_t end = r->last_done + r->poll_ns;
		int ret = io_uring_submit(&r->ring);

		if (ret < 0)
			return ret;
		for (;;) {
			while (!ring_has_work(r) && now_ns() < end)
				sched_yield();
			if (!ring_has_work(r))
				break;
			/* io_uring_submit enters with GETEVENTS when the kernel
			 * flagged queued completion work: it runs it (which may
			 * complete nothing, e.g. a poll that re-arms) */
			ret = io_uring_submit(&r->ring);
			if (ret < 0 || io_uring_cq_ready(&r->ring))
				return ret;
			if (now_ns() >= end)
				break;
		}
	}
	return io_uring_submit_and_wait(&r->ring, 1);
}

void reactor_defer(struct reactor *r, struct reactor_task *t)
{
	if (t->queued)
		return;
	t->queued = true;
	t->next = r->tasks;
	r->tasks = t;
}

/* what the batch deferred; a task may defer more (run in this pass too) */
static void run_tasks(struct reactor *r)
{
	while (r->tasks) {
		struct reactor_task *t = r->tasks;

		r->tasks = NULL;
		while (t) {
			struct reactor_task *next = t->next;

			t->queued = false;
			t->fn(t);
			t = next;
		}
	}
}

static void request_stop(void *arg)
{
	struct reactor *r = arg;

	r->stopping = true;
	reactor_cancel(r, &r->efd_op);
}

static void *reactor_thread(void *arg)
{
	struct reactor *r = arg;

	current = r;
	if (r->disabled) {
		/* this thread becomes the ring's single issuer. A raw
		 * io_uring_register: Debian 12's liburing 2.3 declares
		 * io_uring_enable_rings but does not export it */
		if (syscall(__NR_io_uring_register, r->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
			    NULL, 0) < 0) {
			log_err("reactor", "r%d: enabling the ring: %m", r->id);
			abort();
		}
		r->disabled = false;
		r->enabled_once = true;
	}
	arm_eventfd(r);
	/* After a stop request, keep turning until everything in flight has
	 * completed so no callback is left pointing at freed memory. */
	while (!r->stopping || r->inflight) {
		int ret = reactor_wait(r);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY &&
		    ret != -ETIME) {
			log_err("reactor", "r%d: io_uring_submit_and_wait: %s",
				r->id, strerror(-ret));
			break;
		}
		if (run_completions(r) && r->poll_ns)
			r->last_done = now_ns();
		run_tasks(r);
	}
	drain_mailbox(r);
	run_tasks(r);
	iobuf_trim(); /* this thread's buffer cache */
	current = NULL;
	return NULL;
}

/* The CQ is twice the SQ by default; socket-heavy loads complete more
 * than they submit per turn, so give it more room.
 * Only the reactor's thread submits (other threads post to its mailbox),
 * so the ring is single-issuer and its completion work runs deferred, in
 * that thread's io_uring_enter, not as task work that interrupts it
 * wherever it is (DEFER_TASKRUN, Linux 6.1). The ring starts disabled:
 * the thread that enables it (reactor_thread) is its one submitter. Older
 * kernels refuse the flags (-EINVAL): then cooperative task work (5.19),
 * then neither. TASKRUN_FLAG: the kernel marks the SQ ring when it queued
 * completion work, so that a polling loop sees it without a syscall. */
static int ring_init(struct reactor *r)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED |
			IORING_SETUP_TASKRUN_FLAG,
		IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
		0,
	};
	const char *plain = getenv("URBD_RING_PLAIN"); /* 1: the plain ring, for A/B benches */
	struct io_uring_params p;
	int ret = -EINVAL;

	for (unsigned i = plain && *plain == '1' ? ARRAY_SIZE(tries) - 1 : 0;
	     i < ARRAY_SIZE(tries) && ret == -EINVAL; i++) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE | tries[i];
		p.cq_entries = r->entries * 4;
		ret = io_uring_queue_init_params(r->entries, &r->ring, &p);
	}
	if (ret < 0) {
		log_err("reactor", "r%d: io_uring_queue_init: %s", r->id, strerror(-ret));
		return ret;
	}
	r->disabled = (p.flags & IORING_SETUP_R_DISABLED) != 0;
	r->single_issuer = (p.flags & IORING_SETUP_SINGLE_ISSUER) != 0;
	r->enabled_once = false;
	return 0;
}

struct reactor *reactor_new(int id, unsigned entries)
{
	struct reactor *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return NULL;
	r->id = id;
	r->entries = entries;
	r->tail = &r->head;
	pthread_mutex_init(&r->lock, NULL);
	r->efd = eventfd(0, EFD_CLOEXEC);
	if (r->efd < 0)
		goto fail;
	ret = ring_init(r);
	if (ret < 0) {
		errno = -ret;
		close(r->efd);
		goto fail;
	}
	return r;
fail:
	pthread_mutex_destroy(&r->lock);
	free(r);
	return NULL;
}

int reactor_start(struct reactor *r)
{
	int ret;

	/* a stopped reactor started again: its ring belongs to the thread
	 * that is gone (nothing is in flight after a stop) */
	if (r->single_issuer && r->enabled_once) {
		io_uring_queue_exit(&r->ring);
		ret = ring_init(r);
		if (ret < 0)
			return ret;
	}
	r->stopping = false; /* a restart: the last stop's flag would end it at once */
	ret = pthread_create(&r->thread, NULL, reactor_thread, r);

	if (ret)
		return -ret;
	r->started = true;
	return 0;
}

void reactor_stop(struct reactor *r)
{
	if (!r->started)
		return;
	reactor_post(r, request_stop, r);
	pthread_join(r->thread, NULL);
	r->started = false;
}

void reactor_free(struct reactor *r)
{
	if (!r)
		return;
	reactor_stop(r);
	io_uring_queue_exit(&r->ring);
	close(r->efd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
