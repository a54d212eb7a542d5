/* volume.c: the range check, and the engine driven through a fake backend
 * on a real reactor. The fake is a memory disk whose requests complete only
 * when the test says so, which lets the test see what the engine submits
 * while something else is still in flight (bounce, RMW, exclusivity). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ftw.h>
#include <sys/stat.h>
#include <semaphore.h>
#include <time.h>
#include <unistd.h>

#include "iobuf.h"
#include "log.h"
#include "reactor.h"
#include "store.h"
#include "volume.h"

/* ---- volume_check --------------------------------------------------- */

static void test_check_in_range(void **state)
{
	struct volume v = { .size = 1 << 20 };

	assert_int_equal(volume_check(&v, 0, 4096), 0);
	assert_int_equal(volume_check(&v, 4096, 1), 0);
	assert_int_equal(volume_check(&v, 0, 1 << 20), 0);
}

static void test_check_exact_end(void **state)
{
	struct volume v = { .size = 1 << 20 };

	assert_int_equal(volume_check(&v, (1 << 20) - 512, 512), 0);
	assert_int_equal(volume_check(&v, (1 << 20) - 1, 1), 0);
}

static void test_check_past_end(void **state)
{
	struct volume v = { .size = 1 << 20 };

	assert_int_equal(volume_check(&v, (1 << 20) - 511, 512), -ENOSPC);
	assert_int_equal(volume_check(&v, 1 << 20, 1), -ENOSPC);
	assert_int_equal(volume_check(&v, 0, (1 << 20) + 1), -ENOSPC);
	assert_int_equal(volume_check(&v, UINT64_MAX / 2, 1), -ENOSPC);
}

static void test_check_overflow(void **state)
{
	struct volume v = { .size = UINT64_MAX };

	assert_int_equal(volume_check(&v, UINT64_MAX, 1), -EINVAL);
	assert_int_equal(volume_check(&v, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(volume_check(&v, UINT64_MAX - 4095, 8192), -EINVAL);
	assert_int_equal(volume_check(&v, UINT64_MAX - 4096, 4096), 0);
}

/* volume.h documents "-EINVAL (zero/overflowing length)" */
static void test_check_zero_length(void **state)
{
	struct volume v = { .size = 1 << 20 };

	assert_int_equal(volume_check(&v, 0, 0), -EINVAL);
	assert_int_equal(volume_check(&v, 4096, 0), -EINVAL);
}

static void test_op_names(void **state)
{
	assert_string_equal(vol_op_name(VOL_READ), "read");
	assert_string_equal(vol_op_name(VOL_WRITE), "write");
	assert_string_equal(vol_op_name(VOL_FLUSH), "flush");
	assert_string_equal(vol_op_name(VOL_TRIM), "trim");
	assert_string_equal(vol_op_name(VOL_WRITE_ZEROES), "write-zeroes");
	assert_string_equal(vol_op_name((enum vol_op)77), "?");
}

/* ---- fake backend --------------------------------------------------- */

#define DISK_SIZE (256 * 1024)
#define MAX_PENDING 32
#define MAX_LOG 64

struct sub_rec {            /* what the engine submitted, as submitted */
	struct vol_io *io;
	enum vol_op op;
	uint32_t flags;
	uint64_t off;
	uint32_t len;
};

struct fake_backend {
	struct vol_backend b;
	uint8_t *disk;
	struct vol_io *pending[MAX_PENDING];
	int n_pending;
	struct sub_rec log[MAX_LOG];
	int n_log;
	bool submit_on_reactor;     /* every submit ran on the reactor */
	bool completing;            /* inside a completion we triggered */
	int destroyed;
};

static void fake_submit(struct vol_backend *b, struct vol_io *io)
{
	struct fake_backend *f = (struct fake_backend *)b;

	assert_true(f->n_pending < MAX_PENDING);
	assert_true(f->n_log < MAX_LOG);
	if (reactor_self() != b->r)
		f->submit_on_reactor = false;
	assert_non_null(io->chain_done);
	f->pending[f->n_pending++] = io;
	f->log[f->n_log++] = (struct sub_rec){ io, io->op, io->flags, io->off, io->len };
}

static void fake_destroy(struct vol_backend *b)
{
	((struct fake_backend *)b)->destroyed++;
}

static const struct vol_backend_ops fake_ops = {
	.name = "fake",
	.submit = fake_submit,
	.destroy = fake_destroy,
};

struct fx {
	struct reactor *r;
	struct volume *v;
	struct fake_backend fake;
	/* completions seen by the frontend, in order */
	struct vol_io *done_io[MAX_LOG];
	int done_res[MAX_LOG];
	int n_done;
	bool done_on_reactor;
};

static struct fx *g; /* the running test's fixture, for callbacks */

static void frontend_done(struct vol_io *io, int res)
{
	g->done_on_reactor &= reactor_self() == g->r;
	g->done_io[g->n_done] = io;
	g->done_res[g->n_done] = res;
	g->n_done++;
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx->r = reactor_new(1, 64);
	if (!fx->r || reactor_start(fx->r))
		return -1;
	fx->fake.b.ops = &fake_ops;
	fx->fake.b.r = fx->r;
	fx->fake.disk = malloc(DISK_SIZE);
	for (size_t i = 0; i < DISK_SIZE; i++)
		fx->fake.disk[i] = (uint8_t)(i * 31 + (i >> 8));
	fx->fake.submit_on_reactor = true;
	/* a volume built by hand: the fields volume_new would set */
	fx->v = calloc(1, sizeof(*fx->v));
	strcpy(fx->v->name, "vt");
	fx->v->r = fx->r;
	fx->v->size = DISK_SIZE;
	fx->v->align = 4096;
	fx->v->defer_tail = &fx->v->defer_head;
	fx->v->top = &fx->fake.b;
	fx->done_on_reactor = true;
	g = fx;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	reactor_free(fx->r);
	volume_free(fx->v); /* destroys the chain: our fake */
	assert_int_equal(fx->fake.destroyed, 1);
	free(fx->fake.disk);
	free(fx);
	g = NULL;
	return 0;
}

/* -- steps run on the reactor -- */

static int step_submit(void *arg)
{
	volume_submit(g->v, arg);
	return 0;
}

static int complete_idx;
static int complete_res;

/* completes pending[complete_idx] as a memory disk would */
static int step_complete(void *arg)
{
	struct fake_backend *f = &g->fake;
	struct vol_io *io;

	if (complete_idx >= f->n_pending)
		return -ENOENT;
	io = f->pending[complete_idx];
	memmove(&f->pending[complete_idx], &f->pending[complete_idx + 1],
		(size_t)(f->n_pending - complete_idx - 1) * sizeof(io));
	f->n_pending--;
	if (complete_res == 0) {
		if (io->op == VOL_READ)
			memcpy(io->buf, f->disk + io->off, io->len);
		else if (io->op == VOL_WRITE)
			memcpy(f->disk + io->off, io->buf, io->len);
		else if (io->op == VOL_TRIM || io->op == VOL_WRITE_ZEROES)
			memset(f->disk + io->off, 0, io->len);
	}
	io->chain_done(io, complete_res);
	return 0;
}

static void submit(struct fx *fx, struct vol_io *io)
{
	assert_int_equal(reactor_call(fx->r, step_submit, io), 0);
}

static void complete(struct fx *fx, int idx, int res)
{
	complete_idx = idx;
	complete_res = res;
	assert_int_equal(reactor_call(fx->r, step_complete, NULL), 0);
}

static struct vol_io *new_io(enum vol_op op, uint64_t off, uint32_t len,
			     uint32_t flags)
{
	struct vol_io *io = calloc(1, sizeof(*io));

	assert_non_null(io);
	io->op = op;
	io->off = off;
	io->len = len;
	io->flags = flags;
	io->done = frontend_done;
	if (op == VOL_READ || op == VOL_WRITE) {
		io->buf = iobuf_get(len);
		assert_non_null(io->buf);
	}
	return io;
}

static void free_io(struct vol_io *io)
{
	if (io->buf)
		iobuf_put(io->buf, io->len);
	free(io);
}

static int n_pending(struct fx *fx) { return fx->fake.n_pending; }

/* ---- aligned requests ----------------------------------------------- */

static void test_aligned_read_passes_through(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = new_io(VOL_READ, 8192, 8192, 0);

	submit(fx, io);
	assert_int_equal(n_pending(fx), 1);
	assert_ptr_equal(fx->fake.pending[0], io); /* the same request, no copy */
	assert_int_equal(fx->fake.log[0].op, VOL_READ);
	assert_int_equal(fx->fake.log[0].off, 8192);
	assert_int_equal(fx->fake.log[0].len, 8192);
	assert_int_equal(fx->v->inflight, 1);
	assert_int_equal(fx->n_done, 0);
	complete(fx, 0, 0);
	assert_int_equal(fx->n_done, 1);
	assert_ptr_equal(fx->done_io[0], io);
	assert_int_equal(fx->done_res[0], 0);
	assert_memory_equal(io->buf, fx->fake.disk + 8192, 8192);
	assert_int_equal(fx->v->inflight, 0);
	assert_int_equal(fx->v->stats.reads, 1);
	assert_int_equal(fx->v->stats.bytes_read, 8192);
	assert_true(fx->fake.submit_on_reactor);
	assert_true(fx->done_on_reactor);
	free_io(io);
}

static void test_aligned_write_passes_through(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = new_io(VOL_WRITE, 4096, 4096, VOL_F_FUA);

	memset(io->buf, 0xc3, 4096);
	submit(fx, io);
	assert_int_equal(n_pending(fx), 1);
	assert_ptr_equal(fx->fake.pending[0], io);
	assert_int_equal(fx->fake.log[0].flags, VOL_F_FUA);
	assert_false(fx->v->exclusive);
	complete(fx, 0, 0);
	assert_int_equal(fx->done_res[0], 0);
	assert_int_equal(fx->fake.disk[4096], 0xc3);
	assert_int_equal(fx->fake.disk[8191], 0xc3);
	assert_int_equal(fx->v->stats.writes, 1);
	assert_int_equal(fx->v->stats.bytes_written, 4096);
	free_io(io);
}

static void test_aligned_requests_run_concurrently(void **state)
{
	struct fx *fx = *state;
	struct vol_io *a = new_io(VOL_READ, 0, 4096, 0);
	struct vol_io *b = new_io(VOL_WRITE, 4096, 4096, 0);
	struct vol_io *c = new_io(VOL_READ, 8192, 4096, 0);

	submit(fx, a);
	submit(fx, b);
	submit(fx, c);
	assert_int_equal(n_pending(fx), 3);
	assert_int_equal(fx->v->inflight, 3);
	/* completions may come back in any order */
	complete(fx, 2, 0);
	complete(fx, 0, 0);
	complete(fx, 0, 0);
	assert_int_equal(fx->n_done, 3);
	assert_ptr_equal(fx->done_io[0], c);
	assert_ptr_equal(fx->done_io[1], a);
	assert_ptr_equal(fx->done_io[2], b);
	assert_int_equal(fx->v->inflight, 0);
	free_io(a);
	free_io(b);
	free_io(c);
}

static void test_other_ops_pass_through_unaligned(void **state)
{
	struct fx *fx = *state;
	struct vol_io *fl = new_io(VOL_FLUSH, 0, 0, 0);
	struct vol_io *tr = new_io(VOL_TRIM, 1, 3, VOL_F_FUA);
	struct vol_io *wz = new_io(VOL_WRITE_ZEROES, 100, 5000, VOL_F_NO_HOLE);

	submit(fx, fl);
	submit(fx, tr);
	submit(fx, wz);
	assert_int_equal(n_pending(fx), 3);
	assert_ptr_equal(fx->fake.pending[0], fl);
	assert_ptr_equal(fx->fake.pending[1], tr);
	assert_ptr_equal(fx->fake.pending[2], wz);
	assert_int_equal(fx->fake.log[1].off, 1);
	assert_int_equal(fx->fake.log[1].len, 3);
	assert_int_equal(fx->fake.log[2].flags, VOL_F_NO_HOLE);
	assert_false(fx->v->exclusive);
	complete(fx, 0, 0);
	complete(fx, 0, 0);
	complete(fx, 0, 0);
	assert_int_equal(fx->n_done, 3);
	assert_int_equal(fx->v->stats.flushes, 1);
	assert_int_equal(fx->v->stats.reads, 0);
	assert_int_equal(fx->v->stats.writes, 0);
	assert_int_equal(fx->fake.disk[100], 0);
	assert_int_equal(fx->fake.disk[5099], 0);
	free_io(fl);
	free_io(tr);
	free_io(wz);
}

static void test_aligned_error(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = new_io(VOL_WRITE, 0, 4096, 0);

	submit(fx, io);
	complete(fx, 0, -EIO);
	assert_int_equal(fx->n_done, 1);
	assert_int_equal(fx->done_res[0], -EIO);
	assert_int_equal(fx->v->stats.errors, 1);
	assert_int_equal(fx->v->stats.writes, 0);
	assert_int_equal(fx->v->stats.bytes_written, 0);
	assert_int_equal(fx->v->inflight, 0);
	free_io(io);
}

/* ---- unaligned write: read-modify-write ----------------------------- */

static void test_unaligned_write_rmw(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = new_io(VOL_WRITE, 4000, 200, VOL_F_FUA);
	uint8_t *expect = malloc(8192);
	struct vol_io *sub;

	memset(io->buf, 0x5e, 200);
	memcpy(expect, fx->fake.disk, 8192);
	memset(expect + 4000, 0x5e, 200);

	submit(fx, io);
	assert_true(fx->v->exclusive);
	assert_int_equal(n_pending(fx), 1);
	sub = fx->fake.pending[0];
	assert_ptr_not_equal(sub, io);
	/* first the READ of the aligned span [0, 8192) */
	assert_int_equal(fx->fake.log[0].op, VOL_READ);
	assert_int_equal(fx->fake.log[0].off, 0);
	assert_int_equal(fx->fake.log[0].len, 8192);
	assert_true(is_aligned((uintptr_t)sub->buf, IOBUF_ALIGN));
	complete(fx, 0, 0);
	assert_int_equal(fx->n_done, 0);

	/* then the WRITE of the same span with the new bytes merged in */
	assert_int_equal(n_pending(fx), 1);
	assert_ptr_equal(fx->fake.pending[0], sub);
	assert_int_equal(fx->fake.log[1].op, VOL_WRITE);
	assert_int_equal(fx->fake.log[1].off, 0);
	assert_int_equal(fx->fake.log[1].len, 8192);
	assert_int_equal(fx->fake.log[1].flags, VOL_F_FUA);
	assert_memory_equal(sub->buf, expect, 8192);
	complete(fx, 0, 0);

	assert_int_equal(fx->n_done, 1);
	assert_ptr_equal(fx->done_io[0], io);
	assert_int_equal(fx->done_res[0], 0);
	assert_memory_equal(fx->fake.disk, expect, 8192);
	assert_false(fx->v->exclusive);
	assert_int_equal(fx->v->inflight, 0);
	assert_int_equal(fx->v->stats.writes, 1);
	assert_int_equal(fx->v->stats.bytes_written, 200);
	assert_int_equal(fx->v->stats.reads, 0);
	assert_int_equal(fx->fake.n_log, 2);
	free(expect);
	free_io(io);
}

static void test_unaligned_write_inside_block(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = new_io(VOL_WRITE, 12288 + 7, 1, 0);
	uint8_t before[4096];

	memcpy(before, fx->fake.disk + 12288, 4096);
	((uint8_t *)io->buf)[0] = (uint8_t)~before[7];
	submit(fx, io);
	assert_int_equal(fx->fake.log[0].off, 12288);
	assert_int_equal(fx->fake.log[0].len, 4096);
	complete(fx, 0, 0);
	assert_int_equal(fx->fake.log[1].flags, 0); /* no FUA asked, none added */
	complete(fx, 0, 0);
	assert_int_equal(fx->done_res[0], 0);
	assert_int_equal(fx->fake.disk[12288 + 7], (uint8_t)~before[7]);
	assert_memory_equal(fx->fake.disk + 12288, before, 7);
	assert_memory_equal(fx->fake.disk + 12288 + 8, before + 8, 4096 - 8);
	free_io(io);
}

static void test_aligned_offset_unaligned_length(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = new_io(VOL_WRITE, 4096, 4097, 0);

	submit(fx, io);
	assert_int_equal(fx->fake.log[0].op, VOL_READ);
	assert_int_equal(fx->fake.log[0].off, 4096);
	assert_int_equal(fx->fake.log[0].len, 8192);
	complete(fx, 0, 0);
	complete(fx, 0, 0);
	assert_int_equal(fx->done_res[0], 0);
	free_io(io);
}

static void test_unaligned_write_is_exclusive(void **state)
{
	struct fx *fx = *state;
	struct vol_io *w1 = new_io(VOL_WRITE, 100, 50, 0);
	struct vol_io *r2 = new_io(VOL_READ, 0, 4096, 0);
	struct vol_io *w3 = new_io(VOL_WRITE, 8192, 4096, 0);
	struct vol_io *fl4 = new_io(VOL_FLUSH, 0, 0, 0);

	memset(w1->buf, 0x11, 50);
	memset(w3->buf, 0x33, 4096);
	submit(fx, w1);
	submit(fx, r2);
	submit(fx, w3);
	submit(fx, fl4);
	/* only W1's read is out; everything else waits behind it */
	assert_int_equal(n_pending(fx), 1);
	assert_ptr_equal(fx->v->defer_head, r2);
	complete(fx, 0, 0);
	assert_int_equal(n_pending(fx), 1); /* W1's write, still alone */
	assert_int_equal(fx->fake.log[1].op, VOL_WRITE);
	complete(fx, 0, 0);
	/* W1 finished first, then the deferred ones were issued in order */
	assert_int_equal(fx->n_done, 1);
	assert_ptr_equal(fx->done_io[0], w1);
	assert_int_equal(n_pending(fx), 3);
	assert_ptr_equal(fx->fake.pending[0], r2);
	assert_ptr_equal(fx->fake.pending[1], w3);
	assert_ptr_equal(fx->fake.pending[2], fl4);
	assert_null(fx->v->defer_head);
	assert_ptr_equal(fx->v->defer_tail, &fx->v->defer_head);
	/* R2 sees W1's bytes */
	complete(fx, 0, 0);
	assert_ptr_equal(fx->done_io[1], r2);
	assert_int_equal(((uint8_t *)r2->buf)[100], 0x11);
	assert_int_equal(((uint8_t *)r2->buf)[149], 0x11);
	complete(fx, 0, 0);
	complete(fx, 0, 0);
	assert_int_equal(fx->n_done, 4);
	assert_int_equal(fx->v->inflight, 0);
	free_io(w1);
	free_io(r2);
	free_io(w3);
	free_io(fl4);
}

static void test_unaligned_write_waits_for_inflight(void **state)
{
	struct fx *fx = *state;
	struct vol_io *r1 = new_io(VOL_READ, 0, 4096, 0);
	struct vol_io *w2 = new_io(VOL_WRITE, 10, 10, 0);
	struct vol_io *r3 = new_io(VOL_READ, 4096, 4096, 0);

	submit(fx, r1);
	submit(fx, w2);
	/* W2 must not read its span while R1 is in flight */
	assert_int_equal(n_pending(fx), 1);
	assert_false(fx->v->exclusive);
	/* and later arrivals queue behind W2 rather than overtaking it */
	submit(fx, r3);
	assert_int_equal(n_pending(fx), 1);
	complete(fx, 0, 0);
	assert_int_equal(fx->n_done, 1);
	assert_int_equal(n_pending(fx), 1); /* W2's read, alone */
	assert_true(fx->v->exclusive);
	assert_int_equal(fx->fake.log[1].op, VOL_READ);
	assert_int_equal(fx->fake.log[1].off, 0);
	complete(fx, 0, 0);
	complete(fx, 0, 0);
	assert_ptr_equal(fx->done_io[1], w2);
	assert_int_equal(n_pending(fx), 1);
	assert_ptr_equal(fx->fake.pending[0], r3);
	complete(fx, 0, 0);
	assert_ptr_equal(fx->done_io[2], r3);
	free_io(r1);
	free_io(w2);
	free_io(r3);
}

static void test_two_unaligned_writes_serialise(void **state)
{
	struct fx *fx = *state;
	struct vol_io *a = new_io(VOL_WRITE, 1000, 100, 0);
	struct vol_io *b = new_io(VOL_WRITE, 1050, 100, 0);

	memset(a->buf, 0xaa, 100);
	memset(b->buf, 0xbb, 100);
	submit(fx, a);
	submit(fx, b);
	assert_int_equal(n_pending(fx), 1);
	complete(fx, 0, 0);
	complete(fx, 0, 0);
	assert_int_equal(n_pending(fx), 1); /* B's read, after A wrote */
	complete(fx, 0, 0);
	complete(fx, 0, 0);
	assert_int_equal(fx->n_done, 2);
	/* overlapping bytes hold B's data: no lost update */
	assert_int_equal(fx->fake.disk[1000], 0xaa);
	assert_int_equal(fx->fake.disk[1049], 0xaa);
	assert_int_equal(fx->fake.disk[1050], 0xbb);
	assert_int_equal(fx->fake.disk[1149], 0xbb);
	free_io(a);
	free_io(b);
}

static void test_unaligned_write_read_fails(void **state)
{
	struct fx *fx = *state;
	struct vol_io *w = new_io(VOL_WRITE, 10, 10, 0);
	struct vol_io *r = new_io(VOL_READ, 0, 4096, 0);
	uint8_t before = fx->fake.disk[10];

	submit(fx, w);
	submit(fx, r);
	complete(fx, 0, -EIO);
	/* no write half after a failed read; the queue moves on */
	assert_int_equal(fx->n_done, 1);
	assert_int_equal(fx->done_res[0], -EIO);
	assert_int_equal(fx->fake.disk[10], before);
	assert_false(fx->v->exclusive);
	assert_int_equal(fx->v->stats.errors, 1);
	assert_int_equal(fx->v->stats.writes, 0);
	assert_int_equal(n_pending(fx), 1);
	assert_ptr_equal(fx->fake.pending[0], r);
	complete(fx, 0, 0);
	assert_int_equal(fx->done_res[1], 0);
	free_io(w);
	free_io(r);
}

static void test_unaligned_write_write_fails(void **state)
{
	struct fx *fx = *state;
	struct vol_io *w = new_io(VOL_WRITE, 10, 10, 0);

	submit(fx, w);
	complete(fx, 0, 0);
	complete(fx, 0, -ENOSPC);
	assert_int_equal(fx->done_res[0], -ENOSPC);
	assert_false(fx->v->exclusive);
	assert_int_equal(fx->v->stats.errors, 1);
	assert_int_equal(fx->v->inflight, 0);
	free_io(w);
}

/* ---- unaligned read: bounce ----------------------------------------- */

static void test_unaligned_read_copies_slice(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = new_io(VOL_READ, 4090, 10, 0);
	struct vol_io *other = new_io(VOL_READ, 65536, 4096, 0);

	submit(fx, io);
	assert_int_equal(n_pending(fx), 1);
	assert_ptr_not_equal(fx->fake.pending[0], io);
	assert_int_equal(fx->fake.log[0].op, VOL_READ);
	assert_int_equal(fx->fake.log[0].off, 0);
	assert_int_equal(fx->fake.log[0].len, 8192);
	/* reads do not need exclusivity */
	assert_false(fx->v->exclusive);
	submit(fx, other);
	assert_int_equal(n_pending(fx), 2);
	complete(fx, 0, 0);
	assert_int_equal(fx->n_done, 1);
	assert_int_equal(fx->done_res[0], 0);
	assert_memory_equal(io->buf, fx->fake.disk + 4090, 10);
	assert_int_equal(fx->fake.n_log, 2); /* no write for a read */
	complete(fx, 0, 0);
	assert_int_equal(fx->v->stats.reads, 2);
	assert_int_equal(fx->v->stats.bytes_read, 10 + 4096);
	free_io(io);
	free_io(other);
}

static void test_unaligned_read_error(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = new_io(VOL_READ, 1, 1, 0);

	submit(fx, io);
	complete(fx, 0, -EIO);
	assert_int_equal(fx->done_res[0], -EIO);
	assert_int_equal(fx->v->stats.errors, 1);
	assert_int_equal(fx->v->stats.reads, 0);
	free_io(io);
}

static void test_unaligned_span_too_big(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = calloc(1, sizeof(*io));

	/* 32 MiB at offset 1 spans 32 MiB + 4 KiB: more than a bounce buffer */
	io->op = VOL_READ;
	io->off = 1;
	io->len = IOBUF_MAX;
	io->done = frontend_done;
	fx->v->size = 64ULL << 20;
	submit(fx, io);
	assert_int_equal(fx->n_done, 1);
	assert_int_equal(fx->done_res[0], -ENOMEM);
	assert_int_equal(n_pending(fx), 0);
	assert_int_equal(fx->v->inflight, 0);
	assert_false(fx->v->exclusive);
	free(io);
}

static void test_align_512_no_bounce(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io = new_io(VOL_WRITE, 512, 1024, 0);

	fx->v->align = 512;
	submit(fx, io);
	assert_ptr_equal(fx->fake.pending[0], io);
	assert_false(fx->v->exclusive);
	complete(fx, 0, 0);
	assert_int_equal(fx->done_res[0], 0);
	free_io(io);
}

static void test_stats_accumulate(void **state)
{
	struct fx *fx = *state;
	struct vol_io *io[6] = {
		new_io(VOL_READ, 0, 4096, 0),
		new_io(VOL_READ, 3, 5, 0),
		new_io(VOL_WRITE, 4096, 8192, 0),
		new_io(VOL_WRITE, 5, 7, 0),
		new_io(VOL_FLUSH, 0, 0, 0),
		new_io(VOL_READ, 0, 4096, 0),
	};

	for (int i = 0; i < 6; i++) {
		submit(fx, io[i]);
		while (n_pending(fx))
			complete(fx, 0, i == 5 ? -EIO : 0);
	}
	assert_int_equal(fx->n_done, 6);
	assert_int_equal(fx->v->stats.reads, 2);
	assert_int_equal(fx->v->stats.bytes_read, 4096 + 5);
	assert_int_equal(fx->v->stats.writes, 2);
	assert_int_equal(fx->v->stats.bytes_written, 8192 + 7);
	assert_int_equal(fx->v->stats.flushes, 1);
	assert_int_equal(fx->v->stats.errors, 1);
	for (int i = 0; i < 6; i++)
		free_io(io[i]);
}

/* ---- the real chain: volume_new over a store volume ----------------- */

struct real {
	char tmp[256];
	struct store *st;
	struct store_volume *sv;
	struct reactor *r;
	struct volume *v;
	sem_t done;
	int res;
};

static struct real *gr;

static void real_done(struct vol_io *io, int res)
{
	gr->res = res;
	sem_post(&gr->done);
}

static int real_submit_step(void *arg)
{
	volume_submit(gr->v, arg);
	return 0;
}

/* submits on the reactor, waits for the completion, returns its result */
static int real_io(enum vol_op op, uint64_t off, uint32_t len, void *buf,
		   uint32_t flags)
{
	struct vol_io io = { .op = op, .off = off, .len = len, .buf = buf,
			     .flags = flags, .done = real_done };
	struct timespec ts;

	assert_int_equal(reactor_call(gr->r, real_submit_step, &io), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	assert_int_equal(sem_timedwait(&gr->done, &ts), 0);
	return gr->res;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int real_setup(void **state)
{
	struct real *r = calloc(1, sizeof(*r));
	char path[300], err[256];
	const char *base = getenv("TMPDIR");

	if (!r)
		return -1;
	snprintf(r->tmp, sizeof(r->tmp), "%s/urbd-test-volume-XXXXXX",
		 base ? base : "/tmp");
	if (!mkdtemp(r->tmp))
		return -1;
	snprintf(path, sizeof(path), "%s/store", r->tmp);
	if (store_open(path, &r->st) ||
	    store_create_volume(r->st, "real", 1 << 20, err, sizeof(err)) ||
	    store_open_volume(r->st, "real", &r->sv, err, sizeof(err)))
		return -1;
	r->r = reactor_new(2, 64);
	if (!r->r || reactor_start(r->r))
		return -1;
	r->v = volume_new(r->r, r->sv);
	if (!r->v)
		return -1;
	sem_init(&r->done, 0, 0);
	gr = r;
	*state = r;
	return 0;
}

static int real_teardown(void **state)
{
	struct real *r = *state;

	reactor_free(r->r);
	volume_free(r->v);
	store_close_volume(r->sv);
	store_close(r->st);
	nftw(r->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	sem_destroy(&r->done);
	free(r);
	gr = NULL;
	return 0;
}

static void test_real_volume_new(void **state)
{
	struct real *r = *state;

	assert_string_equal(r->v->name, "real");
	assert_int_equal(r->v->size, 1 << 20);
	assert_int_equal(r->v->align, r->sv->dio_align ? r->sv->dio_align : 1);
	assert_ptr_equal(r->v->sv, r->sv);
	assert_non_null(r->v->top);
	assert_string_equal(r->v->top->ops->name, "local");
	assert_null(r->v->top->next);
}

static void test_real_aligned_round_trip(void **state)
{
	struct real *r = *state;
	uint8_t *w = iobuf_get(8192), *b = iobuf_get(8192);

	for (int i = 0; i < 8192; i++)
		w[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(real_io(VOL_WRITE, 65536, 8192, w, VOL_F_FUA), 0);
	memset(b, 0, 8192);
	assert_int_equal(real_io(VOL_READ, 65536, 8192, b, 0), 0);
	assert_memory_equal(b, w, 8192);
	/* it is on disk, where the data file says */
	assert_int_equal(pread(r->sv->data_fd, b, 4096, 65536), 4096);
	assert_memory_equal(b, w, 4096);
	assert_int_equal(real_io(VOL_FLUSH, 0, 0, NULL, 0), 0);
	assert_int_equal(r->v->stats.writes, 1);
	assert_int_equal(r->v->stats.reads, 1);
	assert_int_equal(r->v->stats.flushes, 1);
	iobuf_put(w, 8192);
	iobuf_put(b, 8192);
}

static void test_real_unaligned_round_trip(void **state)
{
	struct real *r = *state;
	uint8_t *w = iobuf_get(4096), *b = iobuf_get(16384);

	memset(b, 0x11, 16384);
	assert_int_equal(real_io(VOL_WRITE, 0, 16384, b, 0), 0);
	memset(w, 0xee, 4096);
	/* straddles two 4 KiB blocks at an odd offset */
	assert_int_equal(real_io(VOL_WRITE, 4000, 3000, w, 0), 0);
	assert_int_equal(real_io(VOL_READ, 0, 16384, b, 0), 0);
	for (int i = 0; i < 16384; i++)
		if (b[i] != ((i >= 4000 && i < 7000) ? 0xee : 0x11))
			fail_msg("byte %d is 0x%02x", i, b[i]);
	memset(w, 0, 4096);
	assert_int_equal(real_io(VOL_READ, 6999, 3, w, 0), 0);
	assert_int_equal(w[0], 0xee);
	assert_int_equal(w[1], 0x11);
	assert_int_equal(w[2], 0x11);
	assert_false(r->v->exclusive);
	assert_int_equal(r->v->inflight, 0);
	iobuf_put(w, 4096);
	iobuf_put(b, 16384);
}

static void test_real_trim_and_zeroes(void **state)
{
	struct real *r = *state;
	uint8_t *b = iobuf_get(8192);

	assert_int_equal(r->v->stats.errors, 0);
	memset(b, 0x99, 8192);
	assert_int_equal(real_io(VOL_WRITE, 0, 8192, b, 0), 0);
	assert_int_equal(real_io(VOL_TRIM, 0, 4096, NULL, 0), 0);
	assert_int_equal(real_io(VOL_WRITE_ZEROES, 4096, 2048, NULL, VOL_F_NO_HOLE), 0);
	assert_int_equal(real_io(VOL_READ, 0, 8192, b, 0), 0);
	for (int i = 0; i < 6144; i++)
		if (b[i] != 0)
			fail_msg("byte %d is 0x%02x after trim/zero", i, b[i]);
	assert_int_equal(b[6144], 0x99);
	assert_int_equal(r->v->stats.errors, 0);
	iobuf_put(b, 8192);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_in_range),
		cmocka_unit_test(test_check_exact_end),
		cmocka_unit_test(test_check_past_end),
		cmocka_unit_test(test_check_overflow),
		cmocka_unit_test(test_check_zero_length),
		cmocka_unit_test(test_op_names),
		T(test_aligned_read_passes_through),
		T(test_aligned_write_passes_through),
		T(test_aligned_requests_run_concurrently),
		T(test_other_ops_pass_through_unaligned),
		T(test_aligned_error),
		T(test_unaligned_write_rmw),
		T(test_unaligned_write_inside_block),
		T(test_aligned_offset_unaligned_length),
		T(test_unaligned_write_is_exclusive),
		T(test_unaligned_write_waits_for_inflight),
		T(test_two_unaligned_writes_serialise),
		T(test_unaligned_write_read_fails),
		T(test_unaligned_write_write_fails),
		T(test_unaligned_read_copies_slice),
		T(test_unaligned_read_error),
		T(test_unaligned_span_too_big),
		T(test_align_512_no_bounce),
		T(test_stats_accumulate),
		cmocka_unit_test_setup_teardown(test_real_volume_new, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_aligned_round_trip, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_unaligned_round_trip, real_setup, real_teardown),
		cmocka_unit_test_setup_teardown(test_real_trim_and_zeroes, real_setup, real_teardown),
	};
#undef T

	log_level = LOG_LVL_ERR; /* failed I/O is logged at warn on purpose */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
