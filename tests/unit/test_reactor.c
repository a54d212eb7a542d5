/* reactor.c on a real io_uring: cross-thread post/call, timeouts, file
 * I/O results, cancellation, and that reactor_stop drains what is in
 * flight before it returns; every test runs twice, the second time with
 * busy-polling on (reactor_set_poll), which also has tests of its own. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "reactor.h"
#include "util.h"

struct fx {
	struct reactor *r;
	char path[256];
	int fd;
};

static int setup_with(void **state, unsigned poll_us)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *base = getenv("TMPDIR");

	if (!fx)
		return -1;
	fx->r = reactor_new(7, 64);
	if (fx->r)
		reactor_set_poll(fx->r, poll_us);
	if (!fx->r || reactor_start(fx->r) != 0) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/urbd-test-reactor-XXXXXX",
		 base ? base : "/tmp");
	fx->fd = mkstemp(fx->path);
	if (fx->fd < 0)
		return -1;
	*state = fx;
	return 0;
}

static int setup(void **state) { return setup_with(state, 0); }
static int setup_poll(void **state) { return setup_with(state, 200); }
static int setup_poll_long(void **state) { return setup_with(state, 200000); } /* 200 ms */

static int teardown(void **state)
{
	struct fx *fx = *state;

	reactor_free(fx->r);
	close(fx->fd);
	unlink(fx->path);
	free(fx);
	return 0;
}

/* one operation whose completion the test thread waits for */
struct waiter {
	struct reactor_op op;
	struct reactor_timer timer;
	struct reactor *r;
	sem_t done;
	int res;
	int calls;
	bool on_reactor;
	uint64_t t_done;
};

static void waiter_init(struct waiter *w, struct reactor *r)
{
	memset(w, 0, sizeof(*w));
	w->r = r;
	sem_init(&w->done, 0, 0);
}

static void waiter_cb(struct reactor_op *op, int res)
{
	struct waiter *w = container_of(op, struct waiter, op);

	w->res = res;
	w->calls++;
	w->on_reactor = reactor_self() == w->r;
	w->t_done = now_ns();
	sem_post(&w->done);
}

static void timer_cb(struct reactor_op *op, int res)
{
	struct waiter *w = container_of(op, struct waiter, timer.op);

	w->res = res;
	w->calls++;
	w->on_reactor = reactor_self() == w->r;
	w->t_done = now_ns();
	sem_post(&w->done);
}

/* waits at most 5 s so a lost completion fails instead of hanging */
static int wait_for(struct waiter *w)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	return sem_timedwait(&w->done, &ts);
}

/* ---- basics --------------------------------------------------------- */

static void test_new_and_id(void **state)
{
	struct fx *fx = *state;
	struct reactor *r2 = reactor_new(3, 8);

	assert_int_equal(reactor_id(fx->r), 7);
	assert_non_null(r2);
	assert_int_equal(reactor_id(r2), 3);
	/* never started: stop and free must still work */
	reactor_stop(r2);
	reactor_free(r2);
	assert_null(reactor_self());
}

static int ret_self(void *arg)
{
	struct reactor **out = arg;

	*out = reactor_self();
	return 42;
}

static void test_call_runs_on_reactor(void **state)
{
	struct fx *fx = *state;
	struct reactor *seen = NULL;

	assert_int_equal(reactor_call(fx->r, ret_self, &seen), 42);
	assert_ptr_equal(seen, fx->r);
	assert_null(reactor_self());
}

static int ret_neg(void *arg)
{
	return -ENOSPC;
}

static void test_call_returns_errors(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(reactor_call(fx->r, ret_neg, NULL), -ENOSPC);
}

/* reactor_defer: a task runs once per batch however often it was deferred,
 * after the callback that deferred it returned, and may defer another */
struct deferring {
	struct reactor_task t1, t2;
	int runs1, runs2;
	bool fn_returned, t1_after_fn, t2_ran_in_pass;
};

static void task2(struct reactor_task *t)
{
	struct deferring *d = container_of(t, struct deferring, t2);

	d->runs2++;
	d->t2_ran_in_pass = d->runs1 == 1;
}

static void task1(struct reactor_task *t)
{
	struct deferring *d = container_of(t, struct deferring, t1);

	d->runs1++;
	d->t1_after_fn = d->fn_returned;
	reactor_defer(reactor_self(), &d->t2);
}

static int defer_twice(void *arg)
{
	struct deferring *d = arg;

	d->t1.fn = task1;
	d->t2.fn = task2;
	reactor_defer(reactor_self(), &d->t1);
	reactor_defer(reactor_self(), &d->t1);
	d->fn_returned = true; /* the tasks have not run yet */
	return d->runs1;
}

static int read_runs(void *arg)
{
	struct deferring *d = arg;

	return d->runs1 * 10 + d->runs2;
}

static void test_defer(void **state)
{
	struct fx *fx = *state;
	struct deferring d = { 0 };

	assert_int_equal(reactor_call(fx->r, defer_twice, &d), 0);
	assert_int_equal(reactor_call(fx->r, read_runs, &d), 11);
	assert_true(d.t1_after_fn);
	assert_true(d.t2_ran_in_pass);
	assert_false(d.t1.queued);
	/* deferred again later: runs again */
	assert_int_equal(reactor_call(fx->r, defer_twice, &d), 1);
	assert_int_equal(reactor_call(fx->r, read_runs, &d), 22);
}

struct nest {
	struct reactor *r;
	int inner;
};

static int nested(void *arg)
{
	struct nest *n = arg;
	struct reactor *seen = NULL;

	/* a call from the reactor's own thread runs inline, no deadlock */
	n->inner = reactor_call(n->r, ret_self, &seen);
	return seen == n->r ? 1 : 0;
}

static void test_call_from_own_thread(void **state)
{
	struct fx *fx = *state;
	struct nest n = { .r = fx->r };

	assert_int_equal(reactor_call(fx->r, nested, &n), 1);
	assert_int_equal(n.inner, 42);
}

#define N_POST 1000

struct post_log {
	struct reactor *r;
	int order[4 * N_POST];
	int n;          /* touched only on the reactor */
	int wrong_thread;
};

struct post_arg {
	struct post_log *log;
	int v;
};

static void post_fn(void *arg)
{
	struct post_arg *a = arg;

	if (reactor_self() != a->log->r)
		a->log->wrong_thread++;
	a->log->order[a->log->n++] = a->v;
}

static int barrier(void *arg)
{
	return 0;
}

static void test_post_in_order(void **state)
{
	struct fx *fx = *state;
	struct post_log *log = calloc(1, sizeof(*log));
	struct post_arg *args = calloc(N_POST, sizeof(*args));

	log->r = fx->r;
	for (int i = 0; i < N_POST; i++) {
		args[i].log = log;
		args[i].v = i;
		assert_int_equal(reactor_post(fx->r, post_fn, &args[i]), 0);
	}
	/* the mailbox is FIFO: once a later call has run, all posts have */
	assert_int_equal(reactor_call(fx->r, barrier, NULL), 0);
	assert_int_equal(log->n, N_POST);
	assert_int_equal(log->wrong_thread, 0);
	for (int i = 0; i < N_POST; i++)
		assert_int_equal(log->order[i], i);
	free(args);
	free(log);
}

struct poster {
	struct reactor *r;
	struct post_arg *args;
	int base;
};

static void *poster_thread(void *arg)
{
	struct poster *p = arg;

	for (int i = 0; i < N_POST; i++)
		reactor_post(p->r, post_fn, &p->args[p->base + i]);
	return NULL;
}

static void test_post_from_many_threads(void **state)
{
	struct fx *fx = *state;
	struct post_log *log = calloc(1, sizeof(*log));
	struct post_arg *args = calloc(4 * N_POST, sizeof(*args));
	struct poster p[4];
	pthread_t t[4];
	int last[4] = { -1, -1, -1, -1 };

	log->r = fx->r;
	for (int i = 0; i < 4 * N_POST; i++) {
		args[i].log = log;
		args[i].v = i;
	}
	for (int i = 0; i < 4; i++) {
		p[i] = (struct poster){ fx->r, args, i * N_POST };
		assert_int_equal(pthread_create(&t[i], NULL, poster_thread, &p[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(reactor_call(fx->r, barrier, NULL), 0);
	assert_int_equal(log->n, 4 * N_POST);
	assert_int_equal(log->wrong_thread, 0);
	/* each thread's posts run in the order that thread made them */
	for (int i = 0; i < 4 * N_POST; i++) {
		int th = log->order[i] / N_POST;

		assert_true(log->order[i] > last[th]);
		last[th] = log->order[i];
	}
	free(args);
	free(log);
}

/* ---- timeouts and cancel -------------------------------------------- */

struct timer_req {
	struct waiter *w;
	uint64_t ns;
	unsigned inflight_after;
};

static int arm_timer(void *arg)
{
	struct timer_req *t = arg;

	t->w->timer.op.cb = timer_cb;
	reactor_timeout(t->w->r, &t->w->timer, t->ns);
	t->inflight_after = reactor_inflight(t->w->r);
	return 0;
}

static int read_inflight(void *arg)
{
	return (int)reactor_inflight(arg);
}

static void test_timeout_fires(void **state)
{
	struct fx *fx = *state;
	struct waiter w;
	struct timer_req t = { .w = &w, .ns = 50 * 1000000ULL };
	uint64_t t0;
	int base = reactor_call(fx->r, read_inflight, fx->r);

	waiter_init(&w, fx->r);
	t0 = now_ns();
	assert_int_equal(reactor_call(fx->r, arm_timer, &t), 0);
	assert_int_equal(t.inflight_after, base + 1);
	assert_int_equal(wait_for(&w), 0);
	assert_int_equal(w.res, -ETIME);
	assert_int_equal(w.calls, 1);
	assert_true(w.on_reactor);
	assert_true(w.t_done - t0 >= 45 * 1000000ULL);
	assert_true(w.t_done - t0 < 3000 * 1000000ULL);
	assert_int_equal(reactor_call(fx->r, read_inflight, fx->r), base);
}

static int cancel_timer(void *arg)
{
	struct waiter *w = arg;

	reactor_cancel(w->r, &w->timer.op);
	return 0;
}

static void test_cancel(void **state)
{
	struct fx *fx = *state;
	struct waiter w;
	struct timer_req t = { .w = &w, .ns = 10ULL * 1000000000ULL };
	uint64_t t0 = now_ns();

	waiter_init(&w, fx->r);
	assert_int_equal(reactor_call(fx->r, arm_timer, &t), 0);
	assert_int_equal(reactor_call(fx->r, cancel_timer, &w), 0);
	assert_int_equal(wait_for(&w), 0);
	assert_int_equal(w.res, -ECANCELED);
	assert_true(now_ns() - t0 < 2ULL * 1000000000ULL);
}

static void test_stop_drains(void **state)
{
	struct fx *fx = *state;
	struct waiter w;
	struct timer_req t = { .w = &w, .ns = 100 * 1000000ULL };
	uint64_t t0;

	waiter_init(&w, fx->r);
	t0 = now_ns();
	assert_int_equal(reactor_call(fx->r, arm_timer, &t), 0);
	reactor_stop(fx->r);
	/* stop returned only after the timer completed on the reactor */
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.res, -ETIME);
	assert_true(w.on_reactor);
	assert_true(now_ns() - t0 >= 90 * 1000000ULL);
	assert_int_equal(reactor_inflight(fx->r), 0);
	/* a second stop is harmless */
	reactor_stop(fx->r);
}

static void test_restart_after_stop(void **state)
{
	struct fx *fx = *state;
	struct reactor *seen = NULL;

	reactor_stop(fx->r);
	assert_int_equal(reactor_start(fx->r), 0);
	assert_int_equal(reactor_call(fx->r, ret_self, &seen), 42);
	assert_ptr_equal(seen, fx->r);
}

/* ---- file I/O ------------------------------------------------------- */

enum io_kind { IO_READ, IO_WRITE, IO_FSYNC, IO_FDATASYNC, IO_FALLOC };

struct io_req {
	struct waiter *w;
	enum io_kind kind;
	int fd;
	void *buf;
	unsigned len;
	uint64_t off;
	int flags;
};

static int submit_io(void *arg)
{
	struct io_req *q = arg;
	struct reactor *r = q->w->r;

	q->w->op.cb = waiter_cb;
	switch (q->kind) {
	case IO_READ:
		reactor_read(r, &q->w->op, q->fd, q->buf, q->len, q->off);
		break;
	case IO_WRITE:
		reactor_write(r, &q->w->op, q->fd, q->buf, q->len, q->off, q->flags);
		break;
	case IO_FSYNC:
		reactor_fsync(r, &q->w->op, q->fd, false);
		break;
	case IO_FDATASYNC:
		reactor_fsync(r, &q->w->op, q->fd, true);
		break;
	case IO_FALLOC:
		reactor_fallocate(r, &q->w->op, q->fd, q->flags, q->off, q->len);
		break;
	}
	return 0;
}

/* runs one operation on the reactor and returns its result */
static int do_io(struct fx *fx, enum io_kind kind, int fd, void *buf,
		 unsigned len, uint64_t off, int flags)
{
	struct waiter w;
	struct io_req q = { &w, kind, fd, buf, len, off, flags };

	waiter_init(&w, fx->r);
	assert_int_equal(reactor_call(fx->r, submit_io, &q), 0);
	assert_int_equal(wait_for(&w), 0);
	assert_int_equal(w.calls, 1);
	assert_true(w.on_reactor);
	return w.res;
}

static void test_write_read(void **state)
{
	struct fx *fx = *state;
	uint8_t out[4096], in[4096];

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 13 + 1);
	assert_int_equal(do_io(fx, IO_WRITE, fx->fd, out, sizeof(out), 8192, 0), 4096);
	memset(in, 0, sizeof(in));
	assert_int_equal(do_io(fx, IO_READ, fx->fd, in, sizeof(in), 8192, 0), 4096);
	assert_memory_equal(in, out, sizeof(in));
	/* the hole before it reads as zeroes */
	memset(in, 0xff, sizeof(in));
	assert_int_equal(do_io(fx, IO_READ, fx->fd, in, 100, 10, 0), 100);
	for (int i = 0; i < 100; i++)
		assert_int_equal(in[i], 0);
	/* and the result matches what a plain pread sees */
	assert_int_equal(pread(fx->fd, in, sizeof(in), 8192), 4096);
	assert_memory_equal(in, out, sizeof(in));
}

static void test_read_at_eof(void **state)
{
	struct fx *fx = *state;
	uint8_t b[512];

	assert_int_equal(pwrite(fx->fd, "hello", 5, 0), 5);
	assert_int_equal(do_io(fx, IO_READ, fx->fd, b, sizeof(b), 0, 0), 5);
	assert_memory_equal(b, "hello", 5);
	assert_int_equal(do_io(fx, IO_READ, fx->fd, b, sizeof(b), 1 << 20, 0), 0);
}

static void test_write_dsync(void **state)
{
	struct fx *fx = *state;
	uint8_t b[512];

	memset(b, 0x77, sizeof(b));
	assert_int_equal(do_io(fx, IO_WRITE, fx->fd, b, sizeof(b), 0, RWF_DSYNC), 512);
}

static void test_fsync(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(pwrite(fx->fd, "x", 1, 0), 1);
	assert_int_equal(do_io(fx, IO_FSYNC, fx->fd, NULL, 0, 0, 0), 0);
	assert_int_equal(do_io(fx, IO_FDATASYNC, fx->fd, NULL, 0, 0, 0), 0);
}

static void test_fallocate_punch(void **state)
{
	struct fx *fx = *state;
	uint8_t b[8192];

	memset(b, 0xab, sizeof(b));
	assert_int_equal(pwrite(fx->fd, b, sizeof(b), 0), (ssize_t)sizeof(b));
	assert_int_equal(do_io(fx, IO_FALLOC, fx->fd, NULL, 4096, 0,
			       FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE), 0);
	assert_int_equal(pread(fx->fd, b, sizeof(b), 0), (ssize_t)sizeof(b));
	for (int i = 0; i < 4096; i++)
		assert_int_equal(b[i], 0);
	assert_int_equal(b[4096], 0xab);
	assert_int_equal(lseek(fx->fd, 0, SEEK_END), 8192);
}

static void test_errors_arrive_as_res(void **state)
{
	struct fx *fx = *state;
	uint8_t b[16];
	int rofd = open(fx->path, O_RDONLY);

	assert_true(rofd >= 0);
	assert_int_equal(do_io(fx, IO_READ, 9999, b, sizeof(b), 0, 0), -EBADF);
	assert_int_equal(do_io(fx, IO_WRITE, rofd, b, sizeof(b), 0, 0), -EBADF);
	assert_int_equal(do_io(fx, IO_FALLOC, fx->fd, NULL, 4096, 0, 0x7f00), -EOPNOTSUPP);
	close(rofd);
}

static void post_submit_io(void *arg)
{
	submit_io(arg);
}

static void test_many_ops_beyond_sq(void **state)
{
	struct fx *fx = *state;
	enum { N = 200 }; /* more than the 64-entry SQ */
	struct waiter *w = calloc(N, sizeof(*w));
	struct io_req *q = calloc(N, sizeof(*q));
	uint32_t *vals = calloc(N, sizeof(*vals));

	for (int i = 0; i < N; i++) {
		waiter_init(&w[i], fx->r);
		vals[i] = (uint32_t)i * 2654435761u;
		q[i] = (struct io_req){ &w[i], IO_WRITE, fx->fd, &vals[i], 4,
					(uint64_t)i * 4, 0 };
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(reactor_post(fx->r, post_submit_io, &q[i]), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(wait_for(&w[i]), 0);
		assert_int_equal(w[i].res, 4);
	}
	for (int i = 0; i < N; i++) {
		uint32_t v;

		assert_int_equal(pread(fx->fd, &v, 4, (off_t)i * 4), 4);
		assert_int_equal(v, vals[i]);
	}
	free(w);
	free(q);
	free(vals);
}

/* ---- busy-polling ---------------------------------------------------- */

/* CPU time (ns) this process used, but for the calling thread's own
 * (the two clocks are read one after the other: a difference of two
 * readings may come out a little below zero) */
static int64_t others_cpu_ns(void)
{
	struct timespec p, t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &p);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return ((int64_t)p.tv_sec - (int64_t)t.tv_sec) * 1000000000LL +
	       (int64_t)p.tv_nsec - (int64_t)t.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* With a 200 ms window (setup_poll_long): after a completion a polling
 * reactor keeps its CPU (it watches the ring), and once the window has passed with nothing to do it sleeps:
 * an idle polling daemon costs nothing. The reactor's thread is the
 * only other thread of this process. */
static void test_poll_spins_then_sleeps(void **state)
{
	struct fx *fx = *state;
	struct waiter w;
	int64_t c0, c1, c2;

	waiter_init(&w, fx->r);
	assert_int_equal(reactor_call(fx->r, arm_timer, &(struct timer_req){ .w = &w, .ns = 1000000 }), 0);
	assert_int_equal(wait_for(&w), 0);
	c0 = others_cpu_ns();
	sleep_ms(50); /* inside the window: it polls */
	c1 = others_cpu_ns();
	sleep_ms(400); /* the window ends 200 ms after the completion */
	c2 = others_cpu_ns();
	sleep_ms(200); /* nothing to do: asleep */
	print_message("reactor CPU: %.1f ms in 50 ms of the window, %.1f ms in "
		      "the 200 ms after it\n", (double)(c1 - c0) / 1e6,
		      (double)(others_cpu_ns() - c2) / 1e6);
	assert_true(c1 - c0 > 5000000LL);
	assert_true(others_cpu_ns() - c2 < 10000000LL);
}

/* Without polling the reactor sleeps at once. */
static void test_no_poll_sleeps(void **state)
{
	struct fx *fx = *state;
	struct waiter w;
	int64_t c0;

	waiter_init(&w, fx->r);
	assert_int_equal(reactor_call(fx->r, arm_timer, &(struct timer_req){ .w = &w, .ns = 1000000 }), 0);
	assert_int_equal(wait_for(&w), 0);
	c0 = others_cpu_ns();
	sleep_ms(50);
	print_message("reactor CPU: %.2f ms in 50 ms after a completion\n",
		      (double)(others_cpu_ns() - c0) / 1e6);
	assert_true(others_cpu_ns() - c0 < 5000000LL);
}

/* Work that arrives while the reactor polls runs without waking it:
 * cross-thread posts, a timer and file I/O, many times over. */
static void test_poll_sees_arrivals(void **state)
{
	struct fx *fx = *state;
	char buf[4096];

	for (int i = 0; i < 200; i++) {
		if (i % 3 == 0) {
			struct waiter w;

			waiter_init(&w, fx->r);
			assert_int_equal(reactor_call(fx->r, arm_timer,
						      &(struct timer_req){ .w = &w, .ns = 100000 }), 0);
			assert_int_equal(wait_for(&w), 0);
			assert_int_equal(w.res, -ETIME);
			assert_int_equal(w.calls, 1);
			assert_true(w.on_reactor);
		} else {
			memset(buf, i, sizeof(buf));
			assert_int_equal(do_io(fx, IO_WRITE, fx->fd, buf, sizeof(buf),
					       (uint64_t)i * 4096, 0), (int)sizeof(buf));
		}
		if (i % 50 == 0)
			sleep_ms(1); /* sometimes after the window: asleep */
	}
	for (int i = 1; i < 200; i++) {
		if (i % 3 == 0)
			continue;
		assert_int_equal(pread(fx->fd, buf, sizeof(buf), (off_t)i * 4096), (ssize_t)sizeof(buf));
		for (size_t k = 0; k < sizeof(buf); k++)
			assert_int_equal((uint8_t)buf[k], (uint8_t)i);
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define P(f) cmocka_unit_test_setup_teardown(f, setup_poll, teardown)
	const struct CMUnitTest tests[] = {
#define COMMON(X) \
	X(test_new_and_id), X(test_call_runs_on_reactor), X(test_call_returns_errors), \
	X(test_defer), X(test_call_from_own_thread), X(test_post_in_order), \
	X(test_post_from_many_threads), X(test_timeout_fires), X(test_cancel), \
	X(test_stop_drains), X(test_restart_after_stop), X(test_write_read), \
	X(test_read_at_eof), X(test_write_dsync), X(test_fsync), X(test_fallocate_punch), \
	X(test_errors_arrive_as_res), X(test_many_ops_beyond_sq)
		COMMON(T),
		T(test_no_poll_sleeps),
		COMMON(P),
		P(test_poll_sees_arrivals),
		cmocka_unit_test_setup_teardown(test_poll_spins_then_sleeps, setup_poll_long, teardown),
#undef COMMON
	};
#undef T
#undef P

	return cmocka_run_group_tests(tests, NULL, NULL);
}
