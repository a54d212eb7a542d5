/* The volume engine: frontend -> volume -> backend chain.
 *
 * A backend implements one small vtable; layers (replication, snapshot
 * change tracking) sit between the volume and the local store and pass
 * requests to `next`. Everything here runs on the volume's reactor.
 *
 * Ranges are checked once, at the frontend edge, with volume_check();
 * below that, requests are trusted to lie inside the volume. */
#ifndef URBD_VOLUME_H
#define URBD_VOLUME_H

#include <stdbool.h>
#include <stdint.h>

#include "reactor.h"
#include "util.h"

struct volume;
struct store_volume;

enum vol_op {
	VOL_READ,
	VOL_WRITE,
	VOL_FLUSH,        /* make every completed write durable */
	VOL_TRIM,         /* may discard: reads back as zeroes here */
	VOL_WRITE_ZEROES,
};

#define VOL_F_FUA     (1u << 0) /* durable before completion */
#define VOL_F_NO_HOLE (1u << 1) /* write zeroes: keep the space allocated */

struct vol_io {
	enum vol_op op;
	uint32_t flags;
	uint64_t off;
	uint32_t len;
	void *buf;               /* READ/WRITE: IOBUF_ALIGN-aligned */
	/* res: 0 or -errno; called on the volume's reactor */
	void (*done)(struct vol_io *io, int res);

	/* owned by the chain while the request is in flight */
	struct volume *vol;
	/* where the bottom of the chain reports: the volume sets it */
	void (*chain_done)(struct vol_io *io, int res);
	struct vol_backend *layer; /* the backend working on it now */
	struct reactor_op rop;
	struct vol_io *next_deferred;
	uint32_t progress;       /* bytes done (short read/write resubmission) */
	void *bounce;            /* unaligned requests: the aligned span */
	uint64_t span_off;
	uint32_t span_len;
	int stage;
};

struct vol_backend;
struct vol_backend_ops {
	const char *name;
	/* completes by calling io->chain_done(io, res), from a later
	 * completion, never from inside submit */
	void (*submit)(struct vol_backend *b, struct vol_io *io);
	void (*destroy)(struct vol_backend *b);
};

struct vol_backend {
	const struct vol_backend_ops *ops;
	struct vol_backend *next;
	struct reactor *r;
};

/* the bottom of every chain: the replica's data file */
struct vol_backend *vol_local_new(struct reactor *r, struct store_volume *sv);

/* ---- frontend listeners (begin) ----
 * A frontend hears about its volume's life here, whatever the protocol:
 * on_detach when the volume is going away (close your connections; may be
 * called more than once), on_resize after v->size changed. Both are called
 * on the volume's reactor, and listeners are added and removed only there.
 * A callback may remove any listener, itself included. */
struct vol_listener {
	struct vol_listener *next, *prev;
	void (*on_detach)(struct vol_listener *l, struct volume *v);
	void (*on_resize)(struct vol_listener *l, struct volume *v, uint64_t old_size);
	unsigned seen;            /* the volume's notify_seq last delivered */
};
/* ---- frontend listeners (end) ---- */

struct vol_stats {
	uint64_t reads, writes, bytes_read, bytes_written, flushes, errors;
};

struct volume {
	char name[URBD_NAME_MAX + 1];
	struct reactor *r;
	struct store_volume *sv;
	uint64_t size;            /* changed only on r */
	uint32_t align;           /* what the backend needs; smaller => bounce */
	struct vol_backend *top;
	unsigned inflight;
	bool exclusive;           /* an unaligned read-modify-write runs */
	struct vol_io *defer_head, **defer_tail;
	struct vol_stats stats;
	unsigned connections;     /* frontend connections bound to it */
	void *frontends;          /* frontend bookkeeping (nbd connection list) */
	bool detaching;           /* frontends are being disconnected */
	struct vol_listener *listeners; /* frontend listeners, on r */
	unsigned notify_seq;      /* bumped per notification */
	int refs;                 /* frontend references (atomic; any thread) */
};

struct volume *volume_new(struct reactor *r, struct store_volume *sv);
void volume_free(struct volume *v);

/* 0, or -EINVAL (zero/overflowing length) / -ENOSPC (past the end) */
int volume_check(const struct volume *v, uint64_t off, uint64_t len);
void volume_submit(struct volume *v, struct vol_io *io);

const char *vol_op_name(enum vol_op op);

/* ---- frontend listeners (begin): all on the volume's reactor ---- */
static inline void volume_listen(struct volume *v, struct vol_listener *l)
{
	l->prev = NULL;
	l->next = v->listeners;
	l->seen = v->notify_seq;
	if (v->listeners)
		v->listeners->prev = l;
	v->listeners = l;
}

static inline void volume_unlisten(struct volume *v, struct vol_listener *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else if (v->listeners == l)
		v->listeners = l->next;
	else
		return; /* not listening */
	if (l->next)
		l->next->prev = l->prev;
	l->next = l->prev = NULL;
}

/* Calls every listener once. A callback may unlink listeners (closing a
 * connection can close others), so the walk restarts from the head after
 * each call and skips those already told. */
static inline void volume_notify(struct volume *v, bool detach, uint64_t old_size)
{
	unsigned seq = ++v->notify_seq;
	struct vol_listener *l;

again:
	for (l = v->listeners; l; l = l->next) {
		if (l->seen == seq)
			continue;
		l->seen = seq;
		if (detach && l->on_detach)
			l->on_detach(l, v);
		else if (!detach && l->on_resize)
			l->on_resize(l, v, old_size);
		goto again;
	}
}
/* ---- frontend listeners (end) ---- */

#endif
