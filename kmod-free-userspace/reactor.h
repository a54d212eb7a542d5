/* Reactor: one thread, one io_uring. Everything a volume does — frontend
 * sockets, disk I/O, later peer links — runs on the reactor that owns it,
 * so the data path takes no locks. Other threads reach a reactor only by
 * reactor_post()/reactor_call().
 *
 * Two result channels, as in liburing: the submit functions cannot fail
 * (they flush the SQ when it is full); an operation's own result arrives
 * in its callback as `res` (>= 0, or -errno from the kernel). */
#ifndef URBD_REACTOR_H
#define URBD_REACTOR_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct reactor;
struct reactor_op;

typedef void (*reactor_cb)(struct reactor_op *op, int res);

/* Embed in the struct that owns the operation; recover it with
 * container_of in the callback. One operation in flight per reactor_op. */
struct reactor_op {
	reactor_cb cb;
};

/* Work to run once the current batch of completions has been handled,
 * right before the reactor submits and sleeps again: senders queue frames
 * during a batch and send them in one sendmsg at its end. */
struct reactor_task {
	void (*fn)(struct reactor_task *t);
	struct reactor_task *next;
	bool queued;
};

struct reactor_timer {
	struct reactor_op op;
	struct __kernel_timespec ts; /* read by the kernel at submit time */
};

/* entries: SQ size (power of two); id: index for logs */
struct reactor *reactor_new(int id, unsigned entries);
/* starts the reactor's thread; 0 or -errno */
int reactor_start(struct reactor *r);
/* asks the loop to exit once the operations in flight drain, joins it */
void reactor_stop(struct reactor *r);
void reactor_free(struct reactor *r);
int reactor_id(const struct reactor *r);
/* Busy-poll: after a turn that completed work, watch the rings for up to
 * us microseconds (yielding the CPU on each look) before sleeping; 0 (the
 * default) sleeps at once. Before reactor_start. */
void reactor_set_poll(struct reactor *r, unsigned us);
/* the reactor running on this thread, or NULL */
struct reactor *reactor_self(void);

/* Thread-safe: run fn(arg) on r's thread soon. 0 or -ENOMEM. */
int reactor_post(struct reactor *r, void (*fn)(void *arg), void *arg);
/* Thread-safe, blocking, never from r's own thread: run fn(arg) on r and
 * return its result. */
int reactor_call(struct reactor *r, int (*fn)(void *arg), void *arg);

void reactor_read(struct reactor *r, struct reactor_op *op, int fd,
		  void *buf, unsigned len, uint64_t off);
/* rw_flags: RWF_DSYNC for a FUA write, else 0 */
void reactor_write(struct reactor *r, struct reactor_op *op, int fd,
		   const void *buf, unsigned len, uint64_t off, int rw_flags);
void reactor_fsync(struct reactor *r, struct reactor_op *op, int fd,
		   bool datasync);
void reactor_fallocate(struct reactor *r, struct reactor_op *op, int fd,
		       int mode, uint64_t off, uint64_t len);
void reactor_recv(struct reactor *r, struct reactor_op *op, int fd,
		  void *buf, unsigned len);
/* msg (and what it points to) must stay valid until the callback */
void reactor_sendmsg(struct reactor *r, struct reactor_op *op, int fd,
		     const struct msghdr *msg);
void reactor_accept(struct reactor *r, struct reactor_op *op, int fd);
/* addr must stay valid until the callback */
void reactor_connect(struct reactor *r, struct reactor_op *op, int fd,
		     const struct sockaddr *addr, socklen_t len);
void reactor_timeout(struct reactor *r, struct reactor_timer *t,
		     uint64_t ns);
/* best effort: the target completes with -ECANCELED if it was still queued */
void reactor_cancel(struct reactor *r, struct reactor_op *target);

/* Reactor thread only: run t->fn at the end of this batch (once, however
 * often it is deferred before that). t must stay valid until it ran. */
void reactor_defer(struct reactor *r, struct reactor_task *t);

/* operations submitted and not yet completed (for drain on shutdown) */
unsigned reactor_inflight(const struct reactor *r);

#endif
