#include "volume.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/falloc.h>

#include "iobuf.h"
#include "log.h"
#include "store.h"

const char *vol_op_name(enum vol_op op)
{
	switch (op) {
	case VOL_READ: return "read";
	case VOL_WRITE: return "write";
	case VOL_FLUSH: return "flush";
	case VOL_TRIM: return "trim";
	case VOL_WRITE_ZEROES: return "write-zeroes";
	}
	return "?";
}

struct volume *volume_new(struct reactor *r, struct store_volume *sv)
{
	struct volume *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	snprintf(v->name, sizeof(v->name), "%s", sv->name);
	v->r = r;
	v->sv = sv;
	v->size = sv->meta.size;
	v->align = sv->dio_align ? sv->dio_align : 1;
	v->defer_tail = &v->defer_head;
	v->top = vol_local_new(r, sv);
	if (!v->top) {
		free(v);
		return NULL;
	}
	return v;
}

void volume_free(struct volume *v)
{
	struct vol_backend *b, *next;

	if (!v)
		return;
	for (b = v->top; b; b = next) {
		next = b->next;
		b->ops->destroy(b);
	}
	free(v);
}

int volume_check(const struct volume *v, uint64_t off, uint64_t len)
{
	uint64_t end;

	if (len == 0 || add_overflows_u64(off, len, &end))
		return -EINVAL;
	if (end > v->size)
		return -ENOSPC;
	return 0;
}

static bool unaligned(const struct volume *v, const struct vol_io *io)
{
	return (io->op == VOL_READ || io->op == VOL_WRITE) &&
	       (!is_aligned(io->off, v->align) || !is_aligned(io->len, v->align));
}

static void start(struct volume *v, struct vol_io *io);

/* Run deferred requests in arrival order while the exclusivity rule
 * allows: an unaligned write runs alone, everything else runs together. */
static void pump(struct volume *v)
{
	while (v->defer_head && !v->exclusive) {
		struct vol_io *io = v->defer_head;

		if (unaligned(v, io) && io->op == VOL_WRITE && v->inflight)
			return;
		v->defer_head = io->next_deferred;
		if (!v->defer_head)
			v->defer_tail = &v->defer_head;
		start(v, io);
	}
}

static void finish(struct vol_io *io, int res)
{
	struct volume *v = io->vol;

	v->inflight--;
	if (res < 0) {
		v->stats.errors++;
		log_rl(LOG_LVL_WARN, "volume", "%s: %s off=%llu len=%u failed: %s",
		       v->name, vol_op_name(io->op), (unsigned long long)io->off,
		       io->len, strerror(-res));
	} else if (io->op == VOL_READ) {
		v->stats.reads++;
		v->stats.bytes_read += io->len;
	} else if (io->op == VOL_WRITE) {
		v->stats.writes++;
		v->stats.bytes_written += io->len;
	} else if (io->op == VOL_FLUSH) {
		v->stats.flushes++;
	}
	io->done(io, res);
	pump(v);
}

/* ---- unaligned requests: bounce through the aligned span ------------- */

struct bounce_io {
	struct vol_io sub;
	struct vol_io *parent;
};

static void bounce_step(struct vol_io *sub, int res);

static void bounce_end(struct bounce_io *b, int res)
{
	struct vol_io *io = b->parent;
	struct volume *v = io->vol;

	if (io->op == VOL_WRITE)
		v->exclusive = false;
	iobuf_put(b->sub.buf, b->sub.len);
	free(b);
	finish(io, res);
}

static void bounce_step(struct vol_io *sub, int res)
{
	struct bounce_io *b = container_of(sub, struct bounce_io, sub);
	struct vol_io *io = b->parent;
	uint8_t *span = sub->buf;
	uint32_t delta = (uint32_t)(io->off - sub->off);

	if (res < 0 || sub->op == VOL_WRITE) {
		bounce_end(b, res);
		return;
	}
	if (io->op == VOL_READ) {
		memcpy(io->buf, span + delta, io->len);
		bounce_end(b, 0);
		return;
	}
	/* read half of read-modify-write done: merge, write the span back */
	memcpy(span + delta, io->buf, io->len);
	sub->op = VOL_WRITE;
	sub->flags = io->flags & VOL_F_FUA;
	sub->progress = 0;
	io->vol->top->ops->submit(io->vol->top, sub);
}

static void start_unaligned(struct volume *v, struct vol_io *io)
{
	struct bounce_io *b = calloc(1, sizeof(*b));
	uint64_t s = align_down(io->off, v->align);
	uint64_t e = align_up(io->off + io->len, v->align);

	if (!b || e - s > IOBUF_MAX || !(b->sub.buf = iobuf_get(e - s))) {
		free(b);
		finish(io, -ENOMEM);
		return;
	}
	if (io->op == VOL_WRITE)
		v->exclusive = true;
	b->parent = io;
	b->sub.op = VOL_READ;
	b->sub.off = s;
	b->sub.len = (uint32_t)(e - s);
	b->sub.vol = v;
	b->sub.chain_done = bounce_step;
	v->top->ops->submit(v->top, &b->sub);
}

static void start(struct volume *v, struct vol_io *io)
{
	v->inflight++;
	if (unaligned(v, io)) {
		start_unaligned(v, io);
		return;
	}
	/* the frontend's done is called from finish(); the chain calls ours */
	io->chain_done = finish;
	io->stage = 0;
	io->progress = 0;
	v->top->ops->submit(v->top, io);
}

void volume_submit(struct volume *v, struct vol_io *io)
{
	io->vol = v;
	io->next_deferred = NULL;
	if (v->exclusive || v->defer_head ||
	    (unaligned(v, io) && io->op == VOL_WRITE && v->inflight)) {
		*v->defer_tail = io;
		v->defer_tail = &io->next_deferred;
		return;
	}
	start(v, io);
}

/* ---- the local store backend ---------------------------------------- */

struct local_backend {
	struct vol_backend b;
	struct store_volume *sv;
};

static void local_rw_done(struct reactor_op *op, int res);

static void local_issue(struct local_backend *lb, struct vol_io *io)
{
	uint8_t *p = (uint8_t *)io->buf + io->progress;
	uint32_t left = io->len - io->progress;

	io->rop.cb = local_rw_done;
	if (io->op == VOL_READ)
		reactor_read(lb->b.r, &io->rop, lb->sv->data_fd, p, left,
			     io->off + io->progress);
	else
		reactor_write(lb->b.r, &io->rop, lb->sv->data_fd, p, left,
			      io->off + io->progress,
			      (io->flags & VOL_F_FUA) ? RWF_DSYNC : 0);
}

static void local_rw_done(struct reactor_op *op, int res)
{
	struct vol_io *io = container_of(op, struct vol_io, rop);

	if (res > 0) {
		io->progress += (uint32_t)res;
		if (io->progress < io->len) {
			/* short transfer: continue where it stopped */
			local_issue((struct local_backend *)io->layer, io);
			return;
		}
		res = 0;
	} else if (res == 0 && io->len) {
		/* a checked range never reaches past the data file's end */
		res = -EIO;
	}
	io->chain_done(io, res);
}

static void local_other_done(struct reactor_op *op, int res)
{
	struct vol_io *io = container_of(op, struct vol_io, rop);
	struct local_backend *lb = (struct local_backend *)io->layer;

	if (res > 0)
		res = 0;
	if (res == -EOPNOTSUPP && io->op == VOL_WRITE_ZEROES && io->stage == 0) {
		/* no ZERO_RANGE here: punching a hole also reads back zeroes */
		io->stage = 1;
		reactor_fallocate(lb->b.r, &io->rop, lb->sv->data_fd,
				  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  io->off, io->len);
		return;
	}
	io->chain_done(io, res);
}

static void local_submit(struct vol_backend *b, struct vol_io *io)
{
	struct local_backend *lb = (struct local_backend *)b;
	int fd = lb->sv->data_fd;

	io->layer = b;
	switch (io->op) {
	case VOL_READ:
	case VOL_WRITE:
		local_issue(lb, io);
		return;
	case VOL_FLUSH:
		io->rop.cb = local_other_done;
		reactor_fsync(b->r, &io->rop, fd, true);
		return;
	case VOL_TRIM:
		io->rop.cb = local_other_done;
		reactor_fallocate(b->r, &io->rop, fd,
				  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  io->off, io->len);
		return;
	case VOL_WRITE_ZEROES:
		io->rop.cb = local_other_done;
		reactor_fallocate(b->r, &io->rop, fd,
				  (io->flags & VOL_F_NO_HOLE) ?
				  FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE :
				  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  io->off, io->len);
		return;
	}
}

static void local_destroy(struct vol_backend *b)
{
	free(b);
}

static const struct vol_backend_ops local_ops = {
	.name = "local",
	.submit = local_submit,
	.destroy = local_destroy,
};

struct vol_backend *vol_local_new(struct reactor *r, struct store_volume *sv)
{
	struct local_backend *lb = calloc(1, sizeof(*lb));

	if (!lb)
		return NULL;
	lb->b.ops = &local_ops;
	lb->b.r = r;
	lb->sv = sv;
	return &lb->b;
}
