/* One NVMe/TCP connection = one queue (private to the NVMe/TCP frontend). */
#ifndef URBD_NVMF_CONN_H
#define URBD_NVMF_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "nbd/nbd_handshake.h"
#include "nvmf_ctrl.h"
#include "nvmf_proto.h"
#include "nvmf_rx.h"
#include "reactor.h"
#include "volume.h"

#define NVMF_RBUF_SIZE   (128u * 1024)
/* command slots: a queue's depth plus responses still being sent */
#define NVMF_SLOTS       (NVMF_MAX_QD + 32)
/* bytes of data buffers a queue may hold; commands wait beyond it (one
 * always proceeds) */
#define NVMF_MAX_BUFFERED (32u << 20)
#define NVMF_PDU_BUDGET  64      /* PDUs handled per turn before yielding */
/* payload left in a PDU from which it is received straight into the
 * command's buffer rather than copied out of rbuf */
#define NVMF_DIRECT_MIN  (16u * 1024)
#define NVMF_SEND_IOV    64
#define NVMF_TICK_NS     (1000000000ULL)
/* ICReq + Connect must arrive within this time */
#define NVMF_CONNECT_TIMEOUT_NS (30ULL * 1000000000ULL)

enum nvmf_conn_state {
	NVMF_CONN_IC,          /* accepted; waiting for ICReq */
	NVMF_CONN_CONNECT,     /* ICResp sent; only Fabrics Connect is accepted */
	NVMF_CONN_MOVING,      /* Connect names a volume: handing over to its reactor */
	NVMF_CONN_LIVE,        /* connected queue serving commands */
	NVMF_CONN_TERMINATING, /* C2HTermReq queued; closed once it has gone */
	NVMF_CONN_CLOSING,     /* shut down; freed when nothing is in flight */
};

/* one queued piece of output: header, optional data, optional trailer */
struct nvmf_out {
	struct nvmf_out *next;
	const uint8_t *hdr;
	uint32_t hdr_len;
	const void *data;
	uint32_t data_len;
	uint8_t trl[NVMF_DIGEST_LEN];
	uint32_t trl_len;
	uint32_t sent;
	void (*release)(struct nvmf_out *o);
};

enum nvmf_cmd_state {
	NVMF_CMD_FREE,
	NVMF_CMD_DATA_IN,      /* in-capsule data arriving */
	NVMF_CMD_WAIT_BUF,     /* waiting for buffer budget */
	NVMF_CMD_R2T,          /* R2T sent; H2CData arriving */
	NVMF_CMD_EXEC,         /* with the volume (or held: AER) */
	NVMF_CMD_RESPONDING,   /* response queued */
};

struct nvmf_conn;

struct nvmf_cmd {
	struct vol_io io;
	struct nvmf_conn *q;
	enum nvmf_cmd_state state;
	uint16_t ttag;           /* slot index */
	uint16_t cid;
	uint8_t sqe[NVMF_SQE_LEN];
	uint8_t dir;             /* 0 none, 1 host to controller, 2 controller to host */
	uint8_t *buf;            /* iobuf */
	uint32_t buf_len;
	uint32_t xfer_len;       /* bytes the SGL describes */
	uint32_t h2c_got;
	uint16_t status;
	uint64_t result;
	/* DSM: ranges left to trim */
	uint32_t dsm_next, dsm_count;
	struct nvmf_cmd *wnext;  /* buffer wait list */
	struct nvmf_out out_data, out_rsp;
	uint8_t data_hdr[NVMF_MAX_HLEN];
	uint8_t rsp_hdr[NVMF_RSP_HLEN + NVMF_DIGEST_LEN];
};

struct nvmf_server;

struct nvmf_conn {
	struct nvmf_server *srv;
	struct reactor *r;
	int fd;
	enum nvmf_conn_state state;
	char peer[64];
	uint64_t accepted_ns;
	uint16_t qid;
	uint16_t sqsize;          /* entries (1-based) */
	uint16_t sqhd;
	uint8_t hpda;
	bool hdgst, ddgst;
	struct nvmf_ctrl *ctrl;   /* after Connect */
	struct volume *vol;       /* held reference while moving / live */
	struct nvmf_cmd *connect_cmd; /* the Connect completed after the move */
	uint16_t pending_cntlid;  /* I/O queue: controller named by Connect */

	struct nvmf_rx rx;
	struct nvmf_cmd *rx_cmd;  /* command whose data the receiver fills */
	uint8_t *rbuf;
	uint32_t rhead, rtail;
	struct reactor_op recv_op;
	bool recv_pending;
	bool recv_direct;         /* the recv in flight fills rx's destination */
	uint64_t rx_bytes, rx_direct; /* received; of which straight into commands */
	bool bulk;                /* the last PDU with data was a large H2CData:
				   * receive one header at a time, so payloads
				   * can go direct */

	struct nvmf_cmd *slots;
	uint16_t free_slots[NVMF_SLOTS];
	unsigned n_free;
	unsigned outstanding;     /* commands the host is waiting on */
	struct nvmf_cmd *wait_head, **wait_tail;
	uint64_t buffered;
	unsigned inflight;        /* vol_ios in flight */

	struct nvmf_out *sq_head, **sq_tail;
	struct reactor_op send_op;
	bool send_pending;
	struct msghdr msg;
	struct iovec iov[NVMF_SEND_IOV];
	struct nvmf_out ctl_out;  /* ICResp */
	uint8_t ctl_buf[NVMF_ICRESP_HLEN];
	struct nvmf_out term_out; /* C2HTermReq */
	uint8_t term_buf[NVMF_TERM_MAX_PLEN];
	uint64_t term_ns;
	struct vol_io shn_io;     /* admin queue: the flush behind CC.SHN */
	bool on_volume;           /* counted in vol->connections, listening to it */
	struct vol_listener listener; /* volume detach / resize */

	struct reactor_timer tick;
	bool tick_pending;
	bool resume_posted;       /* a budget-limited input pass continues */
	bool disconnect;          /* Fabrics Disconnect: close once replies are out */
	unsigned busy;
	struct nvmf_conn *snext, *sprev; /* server's list */
};

void nvmf_conn_accepted(struct nvmf_server *srv, struct reactor *r, int fd);
void nvmf_conn_close(struct nvmf_conn *q, const char *why);

/* nvmf_cmd.c: commands on a queue */
void nvmf_cmd_start(struct nvmf_conn *q, struct nvmf_cmd *cmd);
void nvmf_cmd_data_done(struct nvmf_conn *q, struct nvmf_cmd *cmd);
void nvmf_cmd_complete(struct nvmf_cmd *cmd, uint16_t status, uint64_t result);
struct nvmf_cmd *nvmf_cmd_alloc(struct nvmf_conn *q);
void nvmf_cmd_free(struct nvmf_cmd *cmd);
void nvmf_cmd_kick_waiters(struct nvmf_conn *q);
void nvmf_ctrl_teardown(struct nvmf_ctrl *c, const char *why);
void nvmf_ctrl_post_aens(struct nvmf_ctrl *c);
void nvmf_conn_detach(struct nvmf_conn *q);
/* the move to the volume's reactor is done: finish Connect there */
void nvmf_cmd_connect_adopted(struct nvmf_conn *q);

/* nvmf_io.c */
uint16_t nvmf_io_prepare(struct nvmf_conn *q, struct nvmf_cmd *cmd);
void nvmf_io_exec(struct nvmf_conn *q, struct nvmf_cmd *cmd);

/* nvmf_conn.c helpers for the command layer */
void nvmf_conn_enqueue(struct nvmf_conn *q, struct nvmf_out *o);
void nvmf_conn_send(struct nvmf_conn *q);
void nvmf_conn_hold(struct nvmf_conn *q);
void nvmf_conn_unhold(struct nvmf_conn *q);
void nvmf_conn_set_state(struct nvmf_conn *q, enum nvmf_conn_state s);
void nvmf_conn_handover(struct nvmf_conn *q);
void nvmf_conn_input(struct nvmf_conn *q);
void nvmf_conn_recv(struct nvmf_conn *q);

/* nvmf_server.c internals */
void nvmf_server_track(struct nvmf_server *s, struct nvmf_conn *q, bool add);
const struct nbd_export_ops *nvmf_server_ops(struct nvmf_server *s, void **ctx);
bool nvmf_server_stopping(const struct nvmf_server *s);
/* the discovery log for this listener as seen by the host on fd (TRADDR:
 * the connection's local address when the listener is a wildcard);
 * malloc'ed */
uint8_t *nvmf_server_disc_log(struct nvmf_server *s, int fd, uint32_t *len);

#endif
