/* NBD connection: handshake on the accepting reactor, then transmission
 * on the volume's reactor.
 *
 *   GREETING --flags--> OPTIONS --GO/EXPORT_NAME--> MOVING --post--> TRANSMISSION
 *       \                  \  ABORT/error                             |
 *        `------------------`------------------> CLOSING <-----------'
 *
 * Receive: one recv in flight into a 256 KiB buffer; requests are parsed
 * out of it in order. A WRITE payload that has not fully arrived is
 * received straight into the request's aligned buffer. Replies queue up
 * and leave in batches, one sendmsg in flight, so they never interleave. */
#include "nbd_conn.h"

#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "iobuf.h"
#include "log.h"
#include "nbd_server.h"
#include "util.h"

static void conn_recv(struct nbd_conn *c);
static void conn_send(struct nbd_conn *c);
static void req_release(struct nbd_out *o);
static void transmission_input(struct nbd_conn *c);
static void maybe_free(struct nbd_conn *c);

static void set_state(struct nbd_conn *c, enum nbd_conn_state s)
{
	static const char *const name[] = { "greeting", "options", "moving",
					    "transmission", "closing" };

	log_dbg("nbd", "%s: %s -> %s", c->peer, name[c->state], name[s]);
	c->state = s;
}

/* Every callback holds the connection while it runs: a close deep inside
 * (DISC, a protocol error) then frees it on the way out, not under our feet. */
static void hold(struct nbd_conn *c)
{
	c->busy++;
}

static void unhold(struct nbd_conn *c)
{
	c->busy--;
	maybe_free(c);
}

static void raw_release(struct nbd_out *o)
{
	free(o->data);
	free(o);
}

static void enqueue(struct nbd_conn *c, struct nbd_out *o)
{
	o->next = NULL;
	o->sent = 0;
	c->queued++;
	*c->sq_tail = o;
	c->sq_tail = &o->next;
}

/* queue handshake bytes (takes ownership of ob's buffer) */
static int enqueue_raw(struct nbd_conn *c, struct nbd_outbuf *ob)
{
	struct nbd_out *o;

	if (ob->oom || !(o = calloc(1, sizeof(*o)))) {
		nbd_out_free(ob);
		return -ENOMEM;
	}
	o->data = ob->data;
	o->data_len = (uint32_t)ob->len;
	o->release = raw_release;
	ob->data = NULL;
	ob->len = ob->cap = 0;
	enqueue(c, o);
	return 0;
}

void nbd_conn_close(struct nbd_conn *c, const char *why)
{
	if (c->state == NBD_CONN_CLOSING)
		return;
	log_info("nbd", "%s%s%s: closing: %s", c->peer, c->vol ? " volume " : "",
		 c->vol ? c->vol->name : "", why);
	set_state(c, NBD_CONN_CLOSING);
	/* wakes the pending recv/send; the fd is closed once they are back */
	shutdown(c->fd, SHUT_RDWR);
	maybe_free(c);
}

static void maybe_free(struct nbd_conn *c)
{
	void *ctx;
	const struct nbd_export_ops *ops;

	if (c->state != NBD_CONN_CLOSING || c->recv_pending || c->send_pending ||
	    c->inflight || c->busy)
		return;
	while (c->sq_head) {
		struct nbd_out *o = c->sq_head;

		c->sq_head = o->next;
		o->release(o);
	}
	if (c->payload_req)
		req_release(&c->payload_req->out);
	ops = nbd_server_ops(c->srv, &ctx);
	if (c->on_volume) {
		if (c->vprev)
			c->vprev->vnext = c->vnext;
		else
			c->vol->frontends = c->vnext;
		if (c->vnext)
			c->vnext->vprev = c->vprev;
		c->vol->connections--;
	} else if (c->tracked) {
		nbd_server_track(c->srv, c, false);
	}
	if (c->sess.vol)
		ops->put(ctx, c->sess.vol);
	close(c->fd);
	free(c->rbuf);
	free(c);
}

/* ---- send ----------------------------------------------------------- */

static void send_done(struct reactor_op *op, int res);

static void conn_send(struct nbd_conn *c)
{
	unsigned n = 0;

	if (c->send_pending || !c->sq_head || c->state == NBD_CONN_CLOSING)
		return;
	for (struct nbd_out *o = c->sq_head; o && n + 2 <= NBD_SEND_IOV; o = o->next) {
		uint32_t s = o->sent;

		if (s < o->hdr_len) {
			c->iov[n].iov_base = o->hdr + s;
			c->iov[n++].iov_len = o->hdr_len - s;
			s = o->hdr_len;
		}
		if (o->data_len && s < o->hdr_len + o->data_len) {
			c->iov[n].iov_base = (uint8_t *)o->data + (s - o->hdr_len);
			c->iov[n++].iov_len = o->hdr_len + o->data_len - s;
		}
	}
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = n;
	c->send_op.cb = send_done;
	c->send_pending = true;
	reactor_sendmsg(c->r, &c->send_op, c->fd, &c->msg);
}

static void try_handover(struct nbd_conn *c);

static void send_task(struct reactor_task *t)
{
	struct nbd_conn *c = container_of(t, struct nbd_conn, send_task);

	conn_send(c);
	unhold(c);
}

/* Replies completed in one batch of completions leave in one sendmsg, at
 * its end (reactor_defer), not the first alone and the rest after it. */
static void send_later(struct nbd_conn *c)
{
	if (c->send_task.queued || c->send_pending)
		return; /* send_done sends what queued up meanwhile */
	c->send_task.fn = send_task;
	hold(c);
	reactor_defer(c->r, &c->send_task);
}

static void send_done(struct reactor_op *op, int res)
{
	struct nbd_conn *c = container_of(op, struct nbd_conn, send_op);
	uint32_t left = res > 0 ? (uint32_t)res : 0;

	c->send_pending = false;
	hold(c);
	if (c->state == NBD_CONN_CLOSING)
		goto out;
	if (res <= 0) {
		nbd_conn_close(c, res == 0 ? "send returned 0" : strerror(-res));
		goto out;
	}
	while (c->sq_head && left) {
		struct nbd_out *o = c->sq_head;
		uint32_t rem = o->hdr_len + o->data_len - o->sent;

		if (left < rem) {
			o->sent += left;
			break;
		}
		left -= rem;
		c->sq_head = o->next;
		if (!c->sq_head)
			c->sq_tail = &c->sq_head;
		o->release(o);
		c->queued--;
	}
	if (c->sq_head)
		conn_send(c);
	else if (c->disc && !c->inflight)
		nbd_conn_close(c, "client sent NBD_CMD_DISC");
	else if (c->state == NBD_CONN_MOVING)
		try_handover(c);
	if (c->state == NBD_CONN_TRANSMISSION && !c->disc) {
		/* replies leaving may lift a pause on reading */
		transmission_input(c);
		conn_recv(c);
	}
out:
	unhold(c);
}

/* ---- handshake ------------------------------------------------------ */

static void adopt(void *arg)
{
	struct nbd_conn *c = arg;
	struct volume *v = c->vol;

	hold(c);
	c->r = v->r;
	c->vnext = v->frontends;
	c->vprev = NULL;
	if (v->frontends)
		((struct nbd_conn *)v->frontends)->vprev = c;
	v->frontends = c;
	v->connections++;
	c->on_volume = true;
	set_state(c, NBD_CONN_TRANSMISSION);
	if (v->detaching) {
		nbd_conn_close(c, "volume is going away");
	} else {
		log_info("nbd", "%s: serving volume %s on reactor %d (%s replies)",
			 c->peer, v->name, reactor_id(v->r),
			 c->sess.structured ? "structured" : "simple");
		transmission_input(c);
		conn_recv(c);
	}
	unhold(c);
}

static void try_handover(struct nbd_conn *c)
{
	if (c->state != NBD_CONN_MOVING || c->send_pending || c->sq_head ||
	    c->recv_pending)
		return;
	nbd_server_track(c->srv, c, false);
	c->vol = c->sess.vol;
	if (reactor_post(c->vol->r, adopt, c) < 0) {
		c->vol = NULL;
		nbd_server_track(c->srv, c, true);
		nbd_conn_close(c, "out of memory");
	}
}

static bool handshake_step(struct nbd_conn *c, struct nbd_outbuf *ob)
{
	uint32_t avail = c->rtail - c->rhead;
	const uint8_t *p = c->rbuf + c->rhead;
	struct nbd_opt_hdr h;
	enum nbd_hs_result res;
	const char *why = NULL;

	if (c->state == NBD_CONN_GREETING) {
		if (avail < 4)
			return false;
		res = nbd_hs_client_flags(&c->sess, get_be32(p), &why);
		c->rhead += 4;
		if (res == NBD_HS_CLOSE) {
			nbd_conn_close(c, why);
			return false;
		}
		set_state(c, NBD_CONN_OPTIONS);
		return true;
	}
	if (nbd_parse_opt_hdr(p, avail, &h) == -EAGAIN)
		return false;
	if (nbd_parse_opt_hdr(p, avail, &h) < 0) {
		nbd_conn_close(c, "bad option magic (expected IHAVEOPT)");
		return false;
	}
	if (h.length > NBD_OPT_MAX_LEN) {
		uint8_t hdr[NBD_OPT_REPLY_HDR_LEN];

		log_warn("nbd", "%s: %s with %u bytes of data: too big", c->peer,
			 nbd_opt_name(h.option), h.length);
		nbd_put_opt_reply_hdr(hdr, h.option, NBD_REP_ERR_TOO_BIG, 0);
		nbd_out_put(ob, hdr, sizeof(hdr));
		set_state(c, NBD_CONN_MOVING); /* stop reading; closed below */
		c->disc = true;
		return false;
	}
	if (avail < NBD_OPT_HDR_LEN + h.length)
		return false;
	res = nbd_hs_option(&c->sess, h.option, p + NBD_OPT_HDR_LEN, h.length, ob);
	c->rhead += NBD_OPT_HDR_LEN + h.length;
	if (res == NBD_HS_CLOSE) {
		/* ABORT or a failed EXPORT_NAME: say what we have, then close */
		set_state(c, NBD_CONN_MOVING);
		c->disc = true;
		return false;
	}
	if (res == NBD_HS_TRANSMISSION) {
		set_state(c, NBD_CONN_MOVING);
		return false;
	}
	return true;
}

static void handshake_input(struct nbd_conn *c)
{
	struct nbd_outbuf ob = { 0 };

	while (handshake_step(c, &ob))
		;
	if (c->state == NBD_CONN_CLOSING) {
		nbd_out_free(&ob);
		return;
	}
	if (ob.len && enqueue_raw(c, &ob) < 0) {
		nbd_conn_close(c, "out of memory");
		return;
	}
	nbd_out_free(&ob);
	if (c->state == NBD_CONN_MOVING && c->disc) {
		/* lingering close: after the queued reply has gone out */
		if (!c->sq_head)
			nbd_conn_close(c, "negotiation ended");
		else
			conn_send(c);
		return;
	}
	conn_send(c);
	try_handover(c);
}

void nbd_conn_accepted(struct nbd_server *srv, struct reactor *r, int fd)
{
	struct nbd_conn *c = calloc(1, sizeof(*c));
	struct nbd_outbuf ob = { 0 };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1;

	if (!c || !(c->rbuf = malloc(NBD_RBUF_SIZE))) {
		log_err("nbd", "out of memory accepting a connection");
		free(c);
		close(fd);
		return;
	}
	c->srv = srv;
	c->r = r;
	c->fd = fd;
	c->sq_tail = &c->sq_head;
	c->accepted_ns = now_ns();
	c->sess.ops = nbd_server_ops(srv, &c->sess.ops_ctx);
	c->sess.peer = c->peer;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	snprintf(c->peer, sizeof(c->peer), "fd%d", fd);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    ss.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		char a[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(c->peer, sizeof(c->peer), "%s:%u", a, ntohs(in->sin_port));
	} else if (ss.ss_family == AF_UNIX) {
		snprintf(c->peer, sizeof(c->peer), "unix:fd%d", fd);
	}
	nbd_server_track(srv, c, true);
	hold(c);
	nbd_hs_greeting(&ob);
	if (enqueue_raw(c, &ob) < 0) {
		nbd_conn_close(c, "out of memory");
	} else {
		conn_send(c);
		conn_recv(c);
	}
	unhold(c);
}

/* ---- receive -------------------------------------------------------- */

static void submit_req(struct nbd_conn *c, struct nbd_req *req);

static void recv_done(struct reactor_op *op, int res)
{
	struct nbd_conn *c = container_of(op, struct nbd_conn, recv_op);

	c->recv_pending = false;
	hold(c);
	if (c->state == NBD_CONN_CLOSING)
		goto out;
	if (res <= 0) {
		nbd_conn_close(c, res == 0 ? (c->state == NBD_CONN_TRANSMISSION ?
			       "client went away without NBD_CMD_DISC" :
			       "client went away during negotiation") :
			       strerror(-res));
		goto out;
	}
	if (c->payload_req) {
		struct nbd_req *req = c->payload_req;

		req->io.progress += (uint32_t)res;
		if (req->io.progress == req->rq.length) {
			c->payload_req = NULL;
			submit_req(c, req);
		}
	} else {
		c->rtail += (uint32_t)res;
	}
	if (c->state == NBD_CONN_TRANSMISSION)
		transmission_input(c);
	else
		handshake_input(c);
	conn_recv(c);
out:
	unhold(c);
}

static bool over_budget(const struct nbd_conn *c)
{
	return c->inflight + c->queued >= NBD_MAX_INFLIGHT ||
	       c->buffered >= NBD_MAX_BUFFERED;
}

static void conn_recv(struct nbd_conn *c)
{
	if (c->recv_pending || c->disc ||
	    (c->state != NBD_CONN_GREETING && c->state != NBD_CONN_OPTIONS &&
	     c->state != NBD_CONN_TRANSMISSION))
		return;
	c->recv_op.cb = recv_done;
	if (c->payload_req) {
		struct nbd_req *req = c->payload_req;

		c->recv_pending = true;
		reactor_recv(c->r, &c->recv_op, c->fd,
			     (uint8_t *)req->buf + req->io.progress,
			     req->rq.length - req->io.progress);
		return;
	}
	if (over_budget(c))
		return; /* resumed when a request completes or replies go out */
	if (c->rhead == c->rtail) {
		c->rhead = c->rtail = 0;
	} else if (c->rhead && NBD_RBUF_SIZE - c->rtail < NBD_DIRECT_RECV) {
		memmove(c->rbuf, c->rbuf + c->rhead, c->rtail - c->rhead);
		c->rtail -= c->rhead;
		c->rhead = 0;
	}
	if (c->rtail == NBD_RBUF_SIZE)
		return;
	c->recv_pending = true;
	reactor_recv(c->r, &c->recv_op, c->fd, c->rbuf + c->rtail,
		     NBD_RBUF_SIZE - c->rtail);
}

/* ---- transmission --------------------------------------------------- */

static void req_release(struct nbd_out *o)
{
	struct nbd_req *req = container_of(o, struct nbd_req, out);

	req->c->buffered -= req->buf_len;
	iobuf_put(req->buf, req->buf_len);
	free(req);
}

static void queue_reply(struct nbd_conn *c, struct nbd_req *req, uint32_t err)
{
	struct nbd_out *o = &req->out;
	bool data = req->rq.type == NBD_CMD_READ && !err;

	memset(o, 0, sizeof(*o));
	o->release = req_release;
	if (!c->sess.structured) {
		o->hdr_len = (uint32_t)nbd_put_simple_reply(o->hdr, err, req->rq.handle);
	} else if (err) {
		o->hdr_len = (uint32_t)nbd_put_chunk_hdr(o->hdr, NBD_REPLY_FLAG_DONE,
				NBD_REPLY_TYPE_ERROR, req->rq.handle, 6);
		put_be32(o->hdr + o->hdr_len, err);
		put_be16(o->hdr + o->hdr_len + 4, 0); /* no message */
		o->hdr_len += 6;
	} else if (data) {
		o->hdr_len = (uint32_t)nbd_put_chunk_hdr(o->hdr, NBD_REPLY_FLAG_DONE,
				NBD_REPLY_TYPE_OFFSET_DATA, req->rq.handle,
				8 + req->rq.length);
		put_be64(o->hdr + o->hdr_len, req->rq.offset);
		o->hdr_len += 8;
	} else {
		o->hdr_len = (uint32_t)nbd_put_chunk_hdr(o->hdr, NBD_REPLY_FLAG_DONE,
				NBD_REPLY_TYPE_NONE, req->rq.handle, 0);
	}
	if (data) {
		o->data = req->buf;
		o->data_len = req->rq.length;
	}
	enqueue(c, o);
	send_later(c);
}

static void req_done(struct vol_io *io, int res)
{
	struct nbd_req *req = container_of(io, struct nbd_req, io);
	struct nbd_conn *c = req->c;

	/* FUA on trim/write-zeroes: follow with a flush before replying */
	if (res == 0 && (req->rq.flags & NBD_CMD_FLAG_FUA) && io->op != VOL_FLUSH &&
	    (req->rq.type == NBD_CMD_TRIM || req->rq.type == NBD_CMD_WRITE_ZEROES)) {
		io->op = VOL_FLUSH;
		volume_submit(c->vol, io);
		return;
	}
	c->inflight--;
	hold(c);
	if (c->state == NBD_CONN_CLOSING) {
		req_release(&req->out);
	} else {
		queue_reply(c, req, res < 0 ? nbd_errno_to_wire(-res) : 0);
		if (!c->disc) {
			transmission_input(c);
			conn_recv(c);
		} else if (!c->inflight && !c->sq_head && !c->send_pending) {
			nbd_conn_close(c, "client sent NBD_CMD_DISC");
		}
	}
	unhold(c);
}

static void submit_req(struct nbd_conn *c, struct nbd_req *req)
{
	static const enum vol_op map[] = {
		[NBD_CMD_READ] = VOL_READ, [NBD_CMD_WRITE] = VOL_WRITE,
		[NBD_CMD_FLUSH] = VOL_FLUSH, [NBD_CMD_TRIM] = VOL_TRIM,
		[NBD_CMD_WRITE_ZEROES] = VOL_WRITE_ZEROES,
	};

	req->io.op = map[req->rq.type];
	req->io.off = req->rq.offset;
	req->io.len = req->rq.type == NBD_CMD_FLUSH ? 0 : req->rq.length;
	req->io.buf = req->buf;
	req->io.flags = 0;
	if (req->rq.flags & NBD_CMD_FLAG_FUA && req->rq.type == NBD_CMD_WRITE)
		req->io.flags |= VOL_F_FUA;
	if (req->rq.flags & NBD_CMD_FLAG_NO_HOLE)
		req->io.flags |= VOL_F_NO_HOLE;
	req->io.done = req_done;
	c->inflight++;
	volume_submit(c->vol, &req->io);
}

/* Parses and starts one request; false when it must wait for input. */
static bool handle_request(struct nbd_conn *c, const struct nbd_request *rq)
{
	const char *why = "";
	uint32_t err = nbd_validate_request(rq, c->vol->size, &why);
	struct nbd_req *req;
	uint32_t avail;

	if (rq->type == NBD_CMD_WRITE && rq->length > NBD_MAX_PAYLOAD) {
		/* cannot stay in step with a stream this long: hang up */
		log_warn("nbd", "%s: %s length %u above the %u maximum", c->peer,
			 nbd_cmd_name(rq->type), rq->length, NBD_MAX_PAYLOAD);
		nbd_conn_close(c, "oversized write payload");
		return false;
	}
	if (rq->type == NBD_CMD_DISC) { /* never answered, flags or not */
		c->disc = true;
		if (!c->inflight && !c->sq_head && !c->send_pending)
			nbd_conn_close(c, "client sent NBD_CMD_DISC");
		return false;
	}
	req = calloc(1, sizeof(*req));
	if (!req) {
		nbd_conn_close(c, "out of memory");
		return false;
	}
	req->c = c;
	req->rq = *rq;
	if (err) {
		log_rl(LOG_LVL_WARN, "nbd", "%s: %s offset=%llu length=%u flags=0x%x: %s",
		       c->peer, nbd_cmd_name(rq->type),
		       (unsigned long long)rq->offset, rq->length, rq->flags, why);
		if (rq->type == NBD_CMD_WRITE)
			c->drain_left = rq->length; /* keep the stream in step */
		queue_reply(c, req, err);
		return true;
	}
	if (rq->type == NBD_CMD_READ || rq->type == NBD_CMD_WRITE) {
		req->buf_len = rq->length;
		c->buffered += rq->length;
		req->buf = iobuf_get(rq->length);
		if (!req->buf) {
			free(req);
			nbd_conn_close(c, "out of memory");
			return false;
		}
	}
	if (rq->type == NBD_CMD_WRITE) {
		avail = MIN(c->rtail - c->rhead, rq->length);
		memcpy(req->buf, c->rbuf + c->rhead, avail);
		c->rhead += avail;
		req->io.progress = avail;
		if (avail < rq->length) {
			c->payload_req = req; /* the rest lands in req->buf */
			return false;
		}
	}
	submit_req(c, req);
	return true;
}

static void transmission_input(struct nbd_conn *c)
{
	struct nbd_request rq;

	while (c->state == NBD_CONN_TRANSMISSION && !c->payload_req && !c->disc) {
		uint32_t avail = c->rtail - c->rhead;
		int ret;

		if (c->drain_left) {
			uint32_t n = (uint32_t)MIN((uint64_t)avail, c->drain_left);

			c->rhead += n;
			c->drain_left -= n;
			if (c->drain_left)
				return;
			continue;
		}
		if (over_budget(c))
			return;
		ret = nbd_parse_request(c->rbuf + c->rhead, avail, &rq);
		if (ret == -EAGAIN)
			return;
		if (ret < 0) {
			log_warn("nbd", "%s: bad request magic 0x%08x", c->peer,
				 get_be32(c->rbuf + c->rhead));
			nbd_conn_close(c, "protocol error: bad request magic");
			return;
		}
		c->rhead += NBD_REQUEST_LEN;
		if (!handle_request(c, &rq))
			return;
	}
}

unsigned nbd_volume_disconnect_all(struct volume *v)
{
	unsigned n = 0;
	struct nbd_conn *c = v->frontends, *next;

	v->detaching = true;
	for (; c; c = next) {
		next = c->vnext;
		nbd_conn_close(c, "volume detached by the operator");
		n++;
	}
	return n;
}
