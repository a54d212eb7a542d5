/* One replication connection: one volume, two members of its replica set,
 * one TCP socket, driven by the volume's reactor. This layer owns the
 * socket, the frame parser, the send queue, the handshake (FEATURES,
 * HELLO, AUTH, STATE), keepalive and teardown; once the STATE exchange is
 * accepted, every frame goes to the volume (repl_volume.c). State diagram:
 * replication/README.md.
 *
 * Lifetime: the volume learns that a connection is gone only through
 * on_closed, which runs once every operation on the socket has completed
 * (so no send still reads a buffer the volume is about to release). */
#ifndef URBD_REPL_CONN_H
#define URBD_REPL_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "reactor.h"
#include "repl_auth.h"
#include "repl_proto.h"

enum repl_conn_state {
	REPL_CONN_CONNECTING, /* connector: connect() in flight */
	REPL_CONN_FEATURES,   /* our FEATURES (+HELLO) out; the peer's FEATURES due */
	REPL_CONN_AUTH,       /* challenge-response in both directions */
	REPL_CONN_STATE,      /* both proved the secret; our STATE out, the peer's due */
	REPL_CONN_LIVE,       /* STATE accepted: frames belong to the volume */
	REPL_CONN_CLOSING,    /* shut down; freed when nothing is in flight */
};

struct repl_conn;

struct repl_conn_ops {
	/* our STATE, sent once authenticated */
	void (*fill_state)(void *ctx, struct repl_conn *c, struct repl_state *s);
	/* the peer's first STATE: 0 to go LIVE, else a REPL_REASON_* to refuse
	 * with (why says why; the connection closes) */
	uint32_t (*on_state)(void *ctx, struct repl_conn *c, const struct repl_state *s,
			     char *why, size_t whylen);
	/* a frame in LIVE (not PING/PONG/ERROR/DISCONNECT): 0, or -EBADMSG
	 * with why filled (protocol error: ERROR sent, connection closed) */
	int (*on_msg)(void *ctx, struct repl_conn *c, const struct repl_msg *m,
		      char *why, size_t whylen);
	/* gone, nothing in flight: forget c (it is freed after this returns) */
	void (*on_closed)(void *ctx, struct repl_conn *c);
};

/* timing, milliseconds (env URBD_REPL_PING_MS / URBD_REPL_TIMEOUT_MS) */
#define REPL_PING_MS_DEFAULT      500
#define REPL_TIMEOUT_MS_DEFAULT   2000  /* silence before a peer is declared dead */
#define REPL_HANDSHAKE_MS         10000

struct repl_tx;

struct repl_conn {
	enum repl_conn_state state;
	struct reactor *r;
	int fd;
	bool connector;
	uint32_t local_id, peer_id;
	uint8_t uuid[16];
	char name[256];              /* "<volume> peer <id> (<node>)" for logs */
	const struct repl_conn_ops *ops;
	void *ctx;
	const struct repl_secret *secret;
	struct repl_auth auth;
	struct repl_features local_features;
	uint64_t features;           /* agreed */
	uint32_t version;

	/* receive */
	struct reactor_op rx_op;
	uint8_t *rxbuf;
	uint32_t rx_len, rx_off;     /* bytes in rxbuf, bytes consumed */
	bool rx_pending, rx_paused;
	struct repl_parser parser;

	/* send: a queue of frames, one sendmsg in flight */
	struct repl_tx *txq, **txq_tail;
	struct reactor_op tx_op;
	bool tx_pending;
	struct msghdr msg;
	struct iovec iov[64];
	uint64_t tx_queued_bytes;

	/* connect */
	struct reactor_op conn_op;
	struct sockaddr_storage sa;
	socklen_t salen;

	/* timers */
	struct reactor_timer tick;
	bool tick_pending;
	uint64_t last_rx_ns, last_ping_ns, deadline_ns;
	unsigned ping_ms, timeout_ms;

	unsigned inflight;           /* socket ops + the volume's references */
	uint32_t close_reason;
	enum repl_conn_state closed_in; /* the state repl_conn_close found */
	char close_why[200];
	bool notified;
	bool goodbye;                /* the peer sent DISCONNECT: an orderly end */
	struct reactor_task flush_task; /* the send at the end of the batch */
	bool quiet;                  /* its failure logs at debug level: the same
				      * as the last attempt's (repl_conn_set_quiet) */
	uint64_t bytes_in, bytes_out;
};

const char *repl_conn_state_name(enum repl_conn_state s);

/* Connector side: connect to addr ("host:port", resolved here, blocking
 * resolution is fine for numeric addresses) and run the handshake.
 * NULL with errno on a bad address / no memory. */
struct repl_conn *repl_conn_connect(struct reactor *r, const char *addr,
				    const uint8_t uuid[16], uint32_t local_id,
				    uint32_t peer_id, const struct repl_secret *secret,
				    const char *name, const struct repl_conn_ops *ops,
				    void *ctx);

/* Acceptor side, on the volume's reactor: fd already carried the peer's
 * FEATURES and HELLO (read by the listener). */
struct repl_conn *repl_conn_accept(struct reactor *r, int fd,
				   const struct repl_features *peer_features,
				   const uint8_t uuid[16], uint32_t local_id, uint32_t peer_id,
				   const struct repl_secret *secret, const char *name,
				   const struct repl_conn_ops *ops, void *ctx);

/* Queues a frame. data (m->data) is not copied: it must stay valid until
 * on_closed or until the frame is sent (the volume guarantees it by not
 * releasing data before the peer's ack or on_closed). 0 or -ENOMEM/-EPIPE. */
int repl_conn_send(struct repl_conn *c, const struct repl_msg *m);
/* The same, the connection owning m->data once queued: release(data, len)
 * runs when the frame is sent or dropped. On an error return the caller
 * still owns it. */
int repl_conn_send_owned(struct repl_conn *c, const struct repl_msg *m,
			 void (*release)(const uint8_t *data, uint32_t len));

/* Orderly or error close: sends ERROR(reason, why) or DISCONNECT (reason
 * SHUTDOWN/ADMIN) when the connection got far enough, then shuts the
 * socket down. Idempotent. */
void repl_conn_close(struct repl_conn *c, uint32_t reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Frames are sent at the end of the reactor's batch of completions, all
 * together. flush_now sends what is queued at once instead (unless a send
 * is in flight): its sendmsg is then submitted before whatever the caller
 * queues next, e.g. the primary's WRITEs ahead of its own local write. */
void repl_conn_flush_now(struct repl_conn *c);

/* This attempt's close and authentication refusal log at debug level:
 * the owner logs repeated failures itself (a peer retried every 2 s with
 * the wrong secret would fill the log). */
void repl_conn_set_quiet(struct repl_conn *c, bool quiet);

/* the volume's references (I/O it runs on behalf of this connection) */
void repl_conn_get(struct repl_conn *c);
void repl_conn_put(struct repl_conn *c);

/* receive flow control: the volume pauses when it has too much in flight */
void repl_conn_pause(struct repl_conn *c);
void repl_conn_resume(struct repl_conn *c);

#endif
