/* NVMe/TCP queue: one TCP connection on a reactor.
 *
 *   IC --ICReq--> CONNECT --Connect(discovery)-----------------------> LIVE
 *    |               |----Connect(volume)--> MOVING --post--> (volume's reactor) LIVE
 *    |               |                                                   |
 *    `---------------`--- fatal PDU error --> TERMINATING --sent--> CLOSING
 *                         peer gone, timeout, KATO expiry, volume detached --'
 *
 * Receive: one recv in flight into a 128 KiB buffer, parsed by the nvmf_rx
 * machine, at most NVMF_PDU_BUDGET PDUs per turn; the rest of a large
 * payload is received straight into its command's buffer. A queue on a
 * volume listens to it (detach closes, resize raises an event). Output queues up and
 * leaves in batches, one sendmsg in flight. Every callback holds the queue
 * so a close deep inside cannot free it under our feet. */
#include "nvmf_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iobuf.h"
#include "log.h"
#include "util.h"

static void maybe_free(struct nvmf_conn *q);
static void arm_tick(struct nvmf_conn *q);

void nvmf_conn_set_state(struct nvmf_conn *q, enum nvmf_conn_state s)
{
	static const char *const name[] = { "ic", "connect", "moving", "live",
					    "terminating", "closing" };
	/* legal transitions, by source state */
	static const unsigned legal[] = {
		[NVMF_CONN_IC] = 1u << NVMF_CONN_CONNECT | 1u << NVMF_CONN_TERMINATING |
				 1u << NVMF_CONN_CLOSING,
		[NVMF_CONN_CONNECT] = 1u << NVMF_CONN_MOVING | 1u << NVMF_CONN_LIVE |
				      1u << NVMF_CONN_TERMINATING | 1u << NVMF_CONN_CLOSING,
		[NVMF_CONN_MOVING] = 1u << NVMF_CONN_LIVE | 1u << NVMF_CONN_CONNECT |
				     1u << NVMF_CONN_CLOSING,
		[NVMF_CONN_LIVE] = 1u << NVMF_CONN_TERMINATING | 1u << NVMF_CONN_CLOSING,
		[NVMF_CONN_TERMINATING] = 1u << NVMF_CONN_CLOSING,
		[NVMF_CONN_CLOSING] = 0,
	};

	if (!(legal[q->state] & (1u << s))) {
		log_err("nvmf", "%s: illegal state change %s -> %s", q->peer,
			name[q->state], name[s]);
		abort();
	}
	log_dbg("nvmf", "%s: %s -> %s", q->peer, name[q->state], name[s]);
	q->state = s;
}

void nvmf_conn_hold(struct nvmf_conn *q)
{
	q->busy++;
}

void nvmf_conn_unhold(struct nvmf_conn *q)
{
	q->busy--;
	maybe_free(q);
}

void nvmf_conn_close(struct nvmf_conn *q, const char *why)
{
	if (q->state == NVMF_CONN_CLOSING)
		return;
	log_info("nvmf", "%s qid %u%s%s: closing: %s (%llu bytes in, %llu direct)",
		 q->peer, q->qid, q->vol ? " volume " : "", q->vol ? q->vol->name : "",
		 why, (unsigned long long)q->rx_bytes, (unsigned long long)q->rx_direct);
	nvmf_conn_set_state(q, NVMF_CONN_CLOSING);
	/* wakes the pending recv/send; the fd is closed once they are back */
	shutdown(q->fd, SHUT_RDWR);
	if (q->tick_pending)
		reactor_cancel(q->r, &q->tick.op);
	if (q->ctrl && q->ctrl->admin == q)
		nvmf_ctrl_teardown(q->ctrl, why);
	maybe_free(q);
}

static void maybe_free(struct nvmf_conn *q)
{
	void *ctx;
	const struct nbd_export_ops *ops;

	if (q->state != NVMF_CONN_CLOSING || q->recv_pending || q->send_pending ||
	    q->tick_pending || q->inflight || q->busy || q->resume_posted)
		return;
	while (q->sq_head) {
		struct nvmf_out *o = q->sq_head;

		q->sq_head = o->next;
		if (o->release)
			o->release(o);
	}
	for (unsigned i = 0; i < NVMF_SLOTS; i++)
		if (q->slots[i].state != NVMF_CMD_FREE)
			nvmf_cmd_free(&q->slots[i]);
	nvmf_conn_detach(q);
	ops = nvmf_server_ops(q->srv, &ctx);
	if (q->on_volume) {
		volume_unlisten(q->vol, &q->listener);
		q->vol->connections--;
	}
	if (q->vol)
		ops->put(ctx, q->vol);
	nvmf_server_track(q->srv, q, false);
	close(q->fd);
	free(q->slots);
	free(q->rbuf);
	free(q);
}

/* ---- send ----------------------------------------------------------- */

static void send_done(struct reactor_op *op, int res);

void nvmf_conn_enqueue(struct nvmf_conn *q, struct nvmf_out *o)
{
	o->next = NULL;
	o->sent = 0;
	*q->sq_tail = o;
	q->sq_tail = &o->next;
}

void nvmf_conn_send(struct nvmf_conn *q)
{
	unsigned n = 0;

	if (q->send_pending || !q->sq_head || q->state == NVMF_CONN_CLOSING)
		return;
	for (struct nvmf_out *o = q->sq_head; o && n + 3 <= NVMF_SEND_IOV; o = o->next) {
		uint32_t s = o->sent, a = o->hdr_len, b = a + o->data_len;

		if (s < a) {
			q->iov[n].iov_base = (void *)(o->hdr + s);
			q->iov[n++].iov_len = a - s;
			s = a;
		}
		if (s < b) {
			q->iov[n].iov_base = (uint8_t *)o->data + (s - a);
			q->iov[n++].iov_len = b - s;
			s = b;
		}
		if (s < b + o->trl_len) {
			q->iov[n].iov_base = o->trl + (s - b);
			q->iov[n++].iov_len = b + o->trl_len - s;
		}
	}
	memset(&q->msg, 0, sizeof(q->msg));
	q->msg.msg_iov = q->iov;
	q->msg.msg_iovlen = n;
	q->send_op.cb = send_done;
	q->send_pending = true;
	reactor_sendmsg(q->r, &q->send_op, q->fd, &q->msg);
}

static void send_done(struct reactor_op *op, int res)
{
	struct nvmf_conn *q = container_of(op, struct nvmf_conn, send_op);
	uint32_t left = res > 0 ? (uint32_t)res : 0;

	q->send_pending = false;
	nvmf_conn_hold(q);
	if (q->state == NVMF_CONN_CLOSING)
		goto out;
	if (res <= 0) {
		nvmf_conn_close(q, res == 0 ? "send returned 0" : strerror(-res));
		goto out;
	}
	while (q->sq_head && left) {
		struct nvmf_out *o = q->sq_head;
		uint32_t rem = o->hdr_len + o->data_len + o->trl_len - o->sent;

		if (left < rem) {
			o->sent += left;
			break;
		}
		left -= rem;
		q->sq_head = o->next;
		if (!q->sq_head)
			q->sq_tail = &q->sq_head;
		if (o->release)
			o->release(o);
	}
	if (q->sq_head) {
		nvmf_conn_send(q);
	} else if (q->state == NVMF_CONN_TERMINATING) {
		nvmf_conn_close(q, "C2HTermReq sent");
		goto out;
	} else if (q->disconnect && !q->outstanding) {
		nvmf_conn_close(q, "host sent Fabrics Disconnect");
		goto out;
	}
	/* freed slots may let parsing continue */
	nvmf_conn_input(q);
	nvmf_conn_recv(q);
out:
	nvmf_conn_unhold(q);
}

/* ---- fatal errors: C2HTermReq, then close ------------------------------ */

static void terminate(struct nvmf_conn *q, const struct nvmf_fatal *f)
{
	/* the offending PDU's header, as much of it as arrived */
	uint32_t bad = MIN(MIN((uint32_t)q->rx.ch.hlen, q->rx.hdr_valid),
			   (uint32_t)(NVMF_TERM_MAX_PLEN - NVMF_TERM_HLEN));

	if (q->state == NVMF_CONN_CLOSING || q->state == NVMF_CONN_TERMINATING)
		return;
	log_warn("nvmf", "%s qid %u: fatal transport error: %s (FES %u %s, FEI %u, "
		 "%s type 0x%02x hlen %u pdo %u plen %u)", q->peer, q->qid, f->why,
		 f->fes, nvmf_fes_name(f->fes), f->fei, nvmf_pdu_name(q->rx.ch.type),
		 q->rx.ch.type, q->rx.ch.hlen, q->rx.ch.pdo, q->rx.ch.plen);
	nvmf_rx_fail(&q->rx, f->fes, f->fei, f->why);
	memset(&q->term_out, 0, sizeof(q->term_out));
	q->term_out.hdr = q->term_buf;
	q->term_out.hdr_len = nvmf_put_term(q->term_buf, f->fes, f->fei, q->rx.hdr, bad);
	nvmf_conn_set_state(q, NVMF_CONN_TERMINATING);
	q->term_ns = now_ns();
	nvmf_conn_enqueue(q, &q->term_out);
	nvmf_conn_send(q);
}

/* ---- received PDUs ------------------------------------------------------ */

static void on_icreq(struct nvmf_conn *q)
{
	uint8_t dg = q->rx.hdr[NVMF_IC_DGST_OFF] & (NVMF_IC_HDGST_EN | NVMF_IC_DDGST_EN);

	q->hpda = q->rx.hdr[NVMF_ICREQ_HPDA_OFF];
	q->hdgst = dg & NVMF_IC_HDGST_EN;
	q->ddgst = dg & NVMF_IC_DDGST_EN;
	q->rx.lim.ic_done = true;
	q->rx.lim.hdgst = q->hdgst;
	q->rx.lim.ddgst = q->ddgst;
	memset(&q->ctl_out, 0, sizeof(q->ctl_out));
	q->ctl_out.hdr = q->ctl_buf;
	q->ctl_out.hdr_len = nvmf_put_icresp(q->ctl_buf, 0, dg, NVMF_MAXH2CDATA);
	nvmf_conn_enqueue(q, &q->ctl_out);
	nvmf_conn_set_state(q, NVMF_CONN_CONNECT);
	log_dbg("nvmf", "%s: ICReq hpda %u digests%s%s", q->peer, q->hpda,
		q->hdgst ? " header" : "", q->ddgst ? " data" : "");
	nvmf_conn_send(q);
}

static void on_header(struct nvmf_conn *q)
{
	const uint8_t *h = q->rx.hdr;
	struct nvmf_cmd *cmd;

	switch (q->rx.ch.type) {
	case NVMF_PDU_CMD:
		cmd = nvmf_cmd_alloc(q);
		memcpy(cmd->sqe, h + NVMF_CH_LEN, NVMF_SQE_LEN);
		cmd->state = NVMF_CMD_DATA_IN;
		cmd->buf_len = q->rx.lay.data_len;
		cmd->buf = iobuf_get(cmd->buf_len);
		if (!cmd->buf) {
			nvmf_cmd_free(cmd);
			nvmf_conn_close(q, "out of memory");
			return;
		}
		q->buffered += cmd->buf_len;
		q->rx_cmd = cmd;
		nvmf_rx_set_dest(&q->rx, cmd->buf);
		return;
	case NVMF_PDU_H2C_DATA: {
		uint16_t cid = get_le16(h + NVMF_DATA_CCCID_OFF);
		uint16_t ttag = get_le16(h + NVMF_DATA_TTAG_OFF);
		uint32_t off = get_le32(h + NVMF_DATA_OFFSET_OFF);
		uint32_t len = q->rx.lay.data_len;
		struct nvmf_fatal f;

		cmd = ttag < NVMF_SLOTS ? &q->slots[ttag] : NULL;
		if (!cmd || cmd->state != NVMF_CMD_R2T || cmd->cid != cid) {
			f = (struct nvmf_fatal){ NVMF_FES_INVALID_HDR, NVMF_DATA_TTAG_OFF,
						 "H2CData for no outstanding R2T" };
			terminate(q, &f);
			return;
		}
		if (off != cmd->h2c_got || (uint64_t)off + len > cmd->xfer_len) {
			f = (struct nvmf_fatal){ NVMF_FES_DATA_RANGE, 0,
						 "H2CData outside the requested range" };
			terminate(q, &f);
			return;
		}
		q->rx_cmd = cmd;
		nvmf_rx_set_dest(&q->rx, cmd->buf + off);
		return;
	}
	default: /* H2CTermReq: the error data is only logged by type */
		nvmf_rx_set_dest(&q->rx, NULL);
		return;
	}
}

static void on_pdu(struct nvmf_conn *q)
{
	struct nvmf_cmd *cmd = q->rx_cmd;

	q->rx_cmd = NULL;
	/* capsules without data (new commands, reads) do not end a bulk stream */
	if (q->rx.lay.data_len)
		q->bulk = q->rx.ch.type == NVMF_PDU_H2C_DATA &&
			  q->rx.lay.data_len >= NVMF_DIRECT_MIN;
	switch (q->rx.ch.type) {
	case NVMF_PDU_ICREQ:
		on_icreq(q);
		return;
	case NVMF_PDU_H2C_TERM:
		log_warn("nvmf", "%s qid %u: host sent H2CTermReq: FES %u (%s), FEI %u",
			 q->peer, q->qid, get_le16(q->rx.hdr + NVMF_TERM_FES_OFF),
			 nvmf_fes_name(get_le16(q->rx.hdr + NVMF_TERM_FES_OFF)),
			 get_le32(q->rx.hdr + NVMF_TERM_FEI_OFF));
		nvmf_conn_close(q, "host terminated the connection");
		return;
	case NVMF_PDU_CMD:
		if (q->outstanding >= MAX(q->sqsize, (uint16_t)1)) {
			struct nvmf_fatal f = { NVMF_FES_PDU_SEQUENCE, 0,
						"host exceeded the submission queue size" };

			if (cmd)
				nvmf_cmd_free(cmd);
			terminate(q, &f);
			return;
		}
		if (!cmd) {
			cmd = nvmf_cmd_alloc(q);
			memcpy(cmd->sqe, q->rx.hdr + NVMF_CH_LEN, NVMF_SQE_LEN);
		}
		if (q->rx.ddgst_bad)
			cmd->status = NVMF_TRANSIENT_TRANSPORT;
		nvmf_cmd_start(q, cmd);
		return;
	case NVMF_PDU_H2C_DATA:
		if (!cmd)
			return;
		cmd->h2c_got += q->rx.lay.data_len;
		if (q->rx.ddgst_bad)
			cmd->status = NVMF_TRANSIENT_TRANSPORT;
		if (cmd->h2c_got == cmd->xfer_len)
			nvmf_cmd_data_done(q, cmd);
		return;
	}
}

static bool input_allowed(const struct nvmf_conn *q)
{
	return (q->state == NVMF_CONN_IC || q->state == NVMF_CONN_CONNECT ||
		q->state == NVMF_CONN_LIVE) && !q->disconnect;
}

static void resume_input(void *arg)
{
	struct nvmf_conn *q = arg;

	q->resume_posted = false;
	nvmf_conn_input(q);
	nvmf_conn_recv(q);
	nvmf_conn_unhold(q);
}

void nvmf_conn_input(struct nvmf_conn *q)
{
	unsigned budget = NVMF_PDU_BUDGET;

	while (input_allowed(q) && q->rhead < q->rtail && !q->resume_posted) {
		enum nvmf_rx_event ev;
		size_t used;

		/* a new capsule needs a slot: wait for responses to go out */
		if (q->rx.state == NVMF_RX_CH && !q->n_free)
			return;
		if (!budget) {
			/* let the reactor's other queues have a turn */
			nvmf_conn_hold(q);
			if (reactor_post(q->r, resume_input, q) == 0) {
				q->resume_posted = true;
			} else {
				nvmf_conn_unhold(q);
				budget = NVMF_PDU_BUDGET;
			}
			return;
		}
		ev = nvmf_rx_feed(&q->rx, q->rbuf + q->rhead, q->rtail - q->rhead, &used);
		q->rhead += (uint32_t)used;
		switch (ev) {
		case NVMF_RX_MORE:
			break;
		case NVMF_RX_HEADER:
			on_header(q);
			break;
		case NVMF_RX_PDU:
			budget--;
			on_pdu(q);
			break;
		case NVMF_RX_FATAL:
			terminate(q, &q->rx.fatal);
			return;
		}
	}
}

/* ---- receive ---------------------------------------------------------- */

static void recv_done(struct reactor_op *op, int res)
{
	struct nvmf_conn *q = container_of(op, struct nvmf_conn, recv_op);

	q->recv_pending = false;
	nvmf_conn_hold(q);
	if (q->state == NVMF_CONN_CLOSING)
		goto out;
	if (res == -ECANCELED && q->state == NVMF_CONN_MOVING) {
		nvmf_conn_handover(q);
		goto out;
	}
	if (res <= 0) {
		nvmf_conn_close(q, res == 0 ? "host closed the connection" : strerror(-res));
		goto out;
	}
	q->rx_bytes += (uint64_t)res;
	if (q->recv_direct) {
		q->recv_direct = false;
		q->rx_direct += (uint64_t)res;
		if (nvmf_rx_direct_done(&q->rx, (size_t)res) == NVMF_RX_PDU)
			on_pdu(q);
		nvmf_conn_input(q);
		nvmf_conn_recv(q);
		goto out;
	}
	q->rtail += (uint32_t)res;
	if (q->state == NVMF_CONN_MOVING) {
		nvmf_conn_handover(q); /* the bytes wait in rbuf */
		goto out;
	}
	nvmf_conn_input(q);
	nvmf_conn_recv(q);
out:
	nvmf_conn_unhold(q);
}

/* rbuf is empty and a large payload is under way: the kernel copies the
 * rest of it straight into the command's buffer (one copy, not two) */
static bool recv_direct(struct nvmf_conn *q)
{
	uint32_t left;
	uint8_t *dst = nvmf_rx_direct_dest(&q->rx, &left);

	if (!dst || left < NVMF_DIRECT_MIN)
		return false;
	q->recv_direct = true;
	reactor_recv(q->r, &q->recv_op, q->fd, dst, left);
	return true;
}

/* In a stream of large H2CData the next PDU is most likely another, or a
 * capsule without data: take one capsule's worth (an H2CData header and
 * the first few payload bytes; hosts put the payload right after the
 * header, we ask CPDA 0), so that the rest of a payload lands direct. */
static uint32_t recv_len(const struct nvmf_conn *q)
{
	uint32_t room = NVMF_RBUF_SIZE - q->rtail;

	if (q->bulk && q->rhead == q->rtail && q->rx.state == NVMF_RX_CH)
		return MIN(room, NVMF_CMD_HLEN + (q->hdgst ? NVMF_DIGEST_LEN : 0u));
	return room;
}

void nvmf_conn_recv(struct nvmf_conn *q)
{
	if (q->recv_pending || !input_allowed(q))
		return;
	if (q->rhead == q->rtail) {
		q->rhead = q->rtail = 0;
	} else if (q->rhead && NVMF_RBUF_SIZE - q->rtail < NVMF_RBUF_SIZE / 2) {
		memmove(q->rbuf, q->rbuf + q->rhead, q->rtail - q->rhead);
		q->rtail -= q->rhead;
		q->rhead = 0;
	}
	if (q->rtail == NVMF_RBUF_SIZE)
		return; /* parsing is paused; resumed when slots free up */
	q->recv_op.cb = recv_done;
	q->recv_pending = true;
	if (q->rhead == q->rtail && q->state == NVMF_CONN_LIVE && recv_direct(q))
		return;
	reactor_recv(q->r, &q->recv_op, q->fd, q->rbuf + q->rtail,
		     recv_len(q));
}

/* ---- timer: connect deadline, keep-alive, shutdown ------------------- */

static void tick_done(struct reactor_op *op, int res)
{
	struct nvmf_conn *q = container_of(op, struct nvmf_conn, tick.op);
	uint64_t now = now_ns();
	struct nvmf_ctrl *c = q->ctrl;

	q->tick_pending = false;
	nvmf_conn_hold(q);
	if (q->state == NVMF_CONN_CLOSING)
		goto out;
	if (q->state == NVMF_CONN_MOVING) {
		nvmf_conn_handover(q);
		goto out;
	}
	if (nvmf_server_stopping(q->srv))
		nvmf_conn_close(q, "server shutting down");
	else if ((q->state == NVMF_CONN_IC || q->state == NVMF_CONN_CONNECT) &&
		 now - q->accepted_ns > NVMF_CONNECT_TIMEOUT_NS)
		nvmf_conn_close(q, "no ICReq/Connect within 30 s");
	else if (q->state == NVMF_CONN_TERMINATING && now - q->term_ns > 2 * NVMF_TICK_NS)
		nvmf_conn_close(q, "host did not take the C2HTermReq");
	else if (c && c->admin == q && c->kato_ms &&
		 now - c->last_ka_ns > (uint64_t)c->kato_ms * 1000000ULL + NVMF_TICK_NS)
		nvmf_conn_close(q, "keep-alive timeout: controller torn down");
	arm_tick(q);
out:
	nvmf_conn_unhold(q);
}

static void arm_tick(struct nvmf_conn *q)
{
	if (q->tick_pending || q->state == NVMF_CONN_CLOSING || q->state == NVMF_CONN_MOVING)
		return;
	q->tick.op.cb = tick_done;
	q->tick_pending = true;
	reactor_timeout(q->r, &q->tick, NVMF_TICK_NS);
}

/* ---- the volume's notifications (on its reactor) ------------------------ */

static void vol_detached(struct vol_listener *l, struct volume *v)
{
	struct nvmf_conn *q = container_of(l, struct nvmf_conn, listener);

	nvmf_conn_hold(q);
	nvmf_conn_close(q, "volume detached");
	nvmf_conn_unhold(q);
}

/* The namespace changed size: every controller of the subsystem tells its
 * host (Namespace Attribute Changed); Identify reads v->size afresh. */
static void vol_resized(struct vol_listener *l, struct volume *v, uint64_t old_size)
{
	struct nvmf_conn *q = container_of(l, struct nvmf_conn, listener);
	struct nvmf_ctrl *c = q->ctrl;

	if (q->state != NVMF_CONN_LIVE || !c || c->admin != q)
		return;
	log_info("nvmf", "controller %u (%s): namespace 1 resized %llu -> %llu bytes",
		 c->cntlid, c->subnqn, (unsigned long long)old_size,
		 (unsigned long long)v->size);
	nvmf_conn_hold(q);
	nvmf_aen_raise(c, NVMF_AEN_NS_ATTR);
	nvmf_ctrl_post_aens(c);
	nvmf_conn_unhold(q);
}

/* ---- moving to the volume's reactor ----------------------------------- */

static void adopt(void *arg)
{
	struct nvmf_conn *q = arg;
	struct volume *v = q->vol;

	q->r = v->r;
	v->connections++;
	q->on_volume = true;
	q->listener.on_detach = vol_detached;
	q->listener.on_resize = vol_resized;
	volume_listen(v, &q->listener);
	if (v->detaching) {
		nvmf_conn_close(q, "volume is going away");
	} else {
		nvmf_cmd_connect_adopted(q);
		arm_tick(q);
		nvmf_conn_input(q);
		nvmf_conn_recv(q);
	}
	nvmf_conn_unhold(q);
}

/* Moves once nothing is in flight on the acceptor's ring: the pending recv
 * and the tick are cancelled and come back here. */
void nvmf_conn_handover(struct nvmf_conn *q)
{
	if (q->state != NVMF_CONN_MOVING)
		return;
	if (q->recv_pending)
		reactor_cancel(q->r, &q->recv_op);
	if (q->tick_pending)
		reactor_cancel(q->r, &q->tick.op);
	if (q->recv_pending || q->tick_pending || q->send_pending || q->sq_head ||
	    q->resume_posted)
		return;
	nvmf_conn_hold(q); /* dropped by adopt() on the other side */
	if (reactor_post(q->vol->r, adopt, q) < 0) {
		nvmf_conn_unhold(q);
		nvmf_conn_close(q, "out of memory");
	}
}

/* ---- accept --------------------------------------------------------- */

void nvmf_conn_accepted(struct nvmf_server *srv, struct reactor *r, int fd)
{
	struct nvmf_conn *q = calloc(1, sizeof(*q));
	struct nvmf_rx_limits lim = { .max_incapsule = NVMF_INCAPSULE,
				      .maxh2cdata = NVMF_MAXH2CDATA };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1;

	if (!q || !(q->rbuf = malloc(NVMF_RBUF_SIZE)) ||
	    !(q->slots = calloc(NVMF_SLOTS, sizeof(*q->slots)))) {
		log_err("nvmf", "out of memory accepting a connection");
		if (q)
			free(q->rbuf);
		free(q);
		close(fd);
		return;
	}
	q->srv = srv;
	q->r = r;
	q->fd = fd;
	q->sq_tail = &q->sq_head;
	q->wait_tail = &q->wait_head;
	q->accepted_ns = now_ns();
	q->sqsize = 1;
	for (unsigned i = 0; i < NVMF_SLOTS; i++) {
		q->slots[i].q = q;
		q->slots[i].ttag = (uint16_t)i;
		q->free_slots[i] = (uint16_t)(NVMF_SLOTS - 1 - i);
	}
	q->n_free = NVMF_SLOTS;
	nvmf_rx_init(&q->rx, &lim);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	snprintf(q->peer, sizeof(q->peer), "fd%d", fd);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(q->peer, sizeof(q->peer), "%s:%u", a, ntohs(in->sin_port));
	}
	nvmf_server_track(srv, q, true);
	nvmf_conn_hold(q);
	arm_tick(q);
	nvmf_conn_recv(q);
	nvmf_conn_unhold(q);
}
