/* One NBD client connection (private to the NBD frontend). */
#ifndef URBD_NBD_CONN_H
#define URBD_NBD_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "nbd_handshake.h"
#include "nbd_proto.h"
#include "reactor.h"
#include "volume.h"

#define NBD_RBUF_SIZE   (256u * 1024)
/* requests in flight plus replies not yet sent, per connection: a client
 * that stops reading replies stops being read, so memory stays bounded */
#define NBD_MAX_INFLIGHT 256
/* and the bytes of data buffers those hold: 256 x 32 MiB reads would be
 * 8 GiB; past this budget reading pauses (one request always proceeds) */
#define NBD_MAX_BUFFERED (64u << 20)
#define NBD_SEND_IOV    64    /* iovecs gathered into one sendmsg */
#define NBD_DIRECT_RECV (64u * 1024) /* payloads this big skip the copy */
/* a client must finish negotiating within this time, or it is dropped:
 * idle half-open connections would otherwise pin memory forever */
#define NBD_HANDSHAKE_TIMEOUT_NS (30ULL * 1000000000ULL)

enum nbd_conn_state {
	NBD_CONN_GREETING,     /* greeting queued, waiting for client flags */
	NBD_CONN_OPTIONS,      /* option haggling */
	NBD_CONN_MOVING,       /* negotiated; waiting to hand over to the volume's reactor */
	NBD_CONN_TRANSMISSION, /* serving requests */
	NBD_CONN_CLOSING,      /* shut down; freed when nothing is in flight */
};

/* one queued piece of output: header bytes then optional data */
struct nbd_out {
	struct nbd_out *next;
	uint8_t hdr[32];
	uint32_t hdr_len;
	void *data;
	uint32_t data_len;
	uint32_t sent;
	void (*release)(struct nbd_out *o);
};

struct nbd_conn;

struct nbd_req {
	struct vol_io io;
	struct nbd_conn *c;
	struct nbd_request rq;
	struct nbd_out out;
	void *buf;
	uint32_t buf_len;
};

struct nbd_server;

struct nbd_conn {
	struct nbd_server *srv;
	struct reactor *r;
	int fd;
	enum nbd_conn_state state;
	char peer[64];
	uint64_t accepted_ns;           /* negotiation deadline counts from here */
	struct nbd_session sess;
	struct volume *vol;
	struct nbd_conn *vnext, *vprev; /* volume's connection list */
	struct nbd_conn *snext, *sprev; /* server's negotiating list */
	bool on_volume;                 /* linked on vol->frontends */
	bool tracked;                   /* linked on the server's list */

	uint8_t *rbuf;
	uint32_t rhead, rtail;
	struct reactor_op recv_op;
	bool recv_pending;
	struct nbd_req *payload_req;    /* WRITE payload arriving directly */
	uint64_t drain_left;            /* payload bytes of a refused WRITE */

	struct nbd_out *sq_head, **sq_tail;
	struct reactor_op send_op;
	struct reactor_task send_task;  /* replies of a batch leave at its end */
	bool send_pending;
	struct msghdr msg;
	struct iovec iov[NBD_SEND_IOV];

	unsigned inflight;
	unsigned queued;                /* replies waiting to be sent */
	uint64_t buffered;              /* bytes in request/reply data buffers */
	unsigned busy;                  /* callbacks running: pins the memory */
	bool disc;                      /* NBD_CMD_DISC seen */
};

void nbd_conn_accepted(struct nbd_server *srv, struct reactor *r, int fd);
void nbd_conn_close(struct nbd_conn *c, const char *why);

/* server internals the connection needs */
void nbd_server_track(struct nbd_server *s, struct nbd_conn *c, bool add);
const struct nbd_export_ops *nbd_server_ops(struct nbd_server *s, void **ctx);

#endif
