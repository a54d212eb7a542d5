/* Replication connection: socket I/O, handshake, keepalive, teardown.
 * Everything here runs on the owning volume's reactor. */
#include "repl_conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "log.h"
#include "net.h"
#include "util.h"

#define RXBUF_SIZE   (256u * 1024)
#define TICK_MS      100
#define CONNECT_MS   3000
#define CLOSE_GRACE_MS 1000
#define HEAD_MAX     (REPL_HDR_LEN + 40)

struct repl_tx {
	struct repl_tx *next;
	uint32_t head_len, data_len, off; /* off: bytes of head+data already sent */
	const uint8_t *data;
	void (*release)(const uint8_t *data, uint32_t len); /* owned data: when sent */
	uint8_t head[HEAD_MAX + REPL_MAX_ERROR_TEXT];
};

const char *repl_conn_state_name(enum repl_conn_state s)
{
	static const char *const n[] = {
		[REPL_CONN_CONNECTING] = "connecting", [REPL_CONN_FEATURES] = "features",
		[REPL_CONN_AUTH] = "authenticating", [REPL_CONN_STATE] = "exchanging-state",
		[REPL_CONN_LIVE] = "connected", [REPL_CONN_CLOSING] = "closing",
	};
	return (unsigned)s < ARRAY_SIZE(n) ? n[s] : "?";
}

static unsigned env_ms(const char *name, unsigned def)
{
	const char *v = getenv(name);
	long x = v ? strtol(v, NULL, 10) : 0;

	return x > 0 && x < 600000 ? (unsigned)x : def;
}

static void flush_tx(struct repl_conn *c);
static void schedule_flush(struct repl_conn *c);
static void post_recv(struct repl_conn *c);
static void arm_tick(struct repl_conn *c);
static void maybe_free(struct repl_conn *c);

static void set_state(struct repl_conn *c, enum repl_conn_state st)
{
	/* forward only: the handshake never goes back, CLOSING is terminal */
	if (st <= c->state && st != REPL_CONN_CLOSING)
		log_err("repl", "%s: illegal state change %s -> %s", c->name,
			repl_conn_state_name(c->state), repl_conn_state_name(st));
	log_dbg("repl", "%s: %s -> %s", c->name, repl_conn_state_name(c->state),
		repl_conn_state_name(st));
	c->state = st;
}

static struct repl_conn *conn_new(struct reactor *r, const uint8_t uuid[16],
				  uint32_t local_id, uint32_t peer_id,
				  const struct repl_secret *secret, const char *name,
				  const struct repl_conn_ops *ops, void *ctx)
{
	struct repl_conn *c = calloc(1, sizeof(*c));

	if (!c || !(c->rxbuf = malloc(RXBUF_SIZE))) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	c->r = r;
	c->fd = -1;
	memcpy(c->uuid, uuid, 16);
	c->local_id = local_id;
	c->peer_id = peer_id;
	c->secret = secret;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->ops = ops;
	c->ctx = ctx;
	c->txq_tail = &c->txq;
	c->ping_ms = env_ms("URBD_REPL_PING_MS", REPL_PING_MS_DEFAULT);
	c->timeout_ms = env_ms("URBD_REPL_TIMEOUT_MS", REPL_TIMEOUT_MS_DEFAULT);
	c->local_features = (struct repl_features){
		.proto_min = REPL_PROTO_MIN, .proto_max = REPL_PROTO_MAX,
		.features = REPL_FEAT_TRIM | REPL_FEAT_WRITE_ZEROES | REPL_FEAT_VERIFY |
			    REPL_FEAT_AL_EXTENTS | REPL_FEAT_PEER_ACK | REPL_FEAT_BARRIER,
	};
	repl_parser_init(&c->parser);
	c->last_rx_ns = now_ns();
	c->deadline_ns = c->last_rx_ns + REPL_HANDSHAKE_MS * 1000000ull;
	return c;
}

static void tune_socket(int fd)
{
	int one = 1, buf = 4 << 20;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
}

/* ---- send ------------------------------------------------------------- */

static void tx_free(struct repl_tx *t)
{
	if (t->release)
		t->release(t->data, t->data_len);
	free(t);
}

int repl_conn_send(struct repl_conn *c, const struct repl_msg *m)
{
	return repl_conn_send_owned(c, m, NULL);
}

int repl_conn_send_owned(struct repl_conn *c, const struct repl_msg *m,
			 void (*release)(const uint8_t *data, uint32_t len))
{
	struct repl_tx *t;
	ssize_t n;

	if (c->state == REPL_CONN_CLOSING || c->fd < 0)
		return -EPIPE;
	t = malloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	/* ERROR carries its text as data; everything else keeps data apart */
	if (m->type == REPL_MSG_ERROR) {
		n = repl_msg_encode(m, t->head, sizeof(t->head));
		t->data = NULL;
		t->data_len = 0;
	} else {
		n = repl_msg_encode_head(m, t->head, sizeof(t->head));
		t->data = m->data;
		t->data_len = m->data ? m->data_len : 0;
	}
	if (n < 0) {
		log_err("repl", "%s: cannot encode %s: %s", c->name, repl_msg_name(m->type),
			strerror((int)-n));
		free(t);
		return (int)n;
	}
	t->head_len = (uint32_t)n;
	t->off = 0;
	t->next = NULL;
	t->release = release;
	*c->txq_tail = t;
	c->txq_tail = &t->next;
	c->tx_queued_bytes += t->head_len + t->data_len;
	schedule_flush(c);
	return 0;
}

static void free_txq(struct repl_conn *c)
{
	while (c->txq) {
		struct repl_tx *t = c->txq;

		c->txq = t->next;
		tx_free(t);
	}
	c->txq_tail = &c->txq;
	c->tx_queued_bytes = 0;
}

static void tx_done(struct reactor_op *op, int res)
{
	struct repl_conn *c = container_of(op, struct repl_conn, tx_op);
	size_t left = res > 0 ? (size_t)res : 0;

	c->tx_pending = false;
	c->inflight--;
	if (res < 0 && c->state != REPL_CONN_CLOSING)
		repl_conn_close(c, REPL_REASON_NONE, "send failed: %s", strerror(-res));
	c->bytes_out += left;
	/* retire what the kernel took: whole frames, then a partial one */
	while (left && c->txq) {
		struct repl_tx *t = c->txq;
		size_t rem = t->head_len + t->data_len - t->off;

		if (left < rem) {
			t->off += (uint32_t)left;
			c->tx_queued_bytes -= left;
			break;
		}
		left -= rem;
		c->tx_queued_bytes -= rem;
		c->txq = t->next;
		if (!c->txq)
			c->txq_tail = &c->txq;
		tx_free(t);
	}
	if (c->state == REPL_CONN_CLOSING) {
		if (!c->txq && c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
		if (res <= 0)
			free_txq(c);
		maybe_free(c);
		return;
	}
	schedule_flush(c);
}

/* the batch's frames leave together: at its end (reactor_defer) */
static void flush_task(struct reactor_task *t)
{
	struct repl_conn *c = container_of(t, struct repl_conn, flush_task);

	c->inflight--;
	flush_tx(c);
	maybe_free(c);
}

static void schedule_flush(struct repl_conn *c)
{
	if (c->flush_task.queued || c->tx_pending)
		return; /* tx_done schedules the next one */
	c->flush_task.fn = flush_task;
	c->inflight++;
	reactor_defer(c->r, &c->flush_task);
}

static void flush_tx(struct repl_conn *c)
{
	unsigned n = 0;

	if (c->tx_pending || !c->txq || c->fd < 0)
		return;
	for (struct repl_tx *t = c->txq; t && n + 2 <= ARRAY_SIZE(c->iov); t = t->next) {
		uint32_t off = t->off;

		if (off < t->head_len) {
			c->iov[n].iov_base = t->head + off;
			c->iov[n++].iov_len = t->head_len - off;
			off = t->head_len;
		}
		if (t->data_len && off < t->head_len + t->data_len) {
			c->iov[n].iov_base = (void *)(t->data + (off - t->head_len));
			c->iov[n++].iov_len = t->head_len + t->data_len - off;
		}
	}
	memset(&c->msg, 0, sizeof(c->msg));
	c->msg.msg_iov = c->iov;
	c->msg.msg_iovlen = n;
	c->tx_op.cb = tx_done;
	c->tx_pending = true;
	c->inflight++;
	reactor_sendmsg(c->r, &c->tx_op, c->fd, &c->msg);
}

static void send_simple(struct repl_conn *c, uint16_t type, uint64_t value)
{
	struct repl_msg m = { .type = type };

	m.u.value = value;
	repl_conn_send(c, &m);
}

/* ---- teardown ------------------------------------------------------------ */

static void maybe_free(struct repl_conn *c)
{
	if (c->state != REPL_CONN_CLOSING || c->inflight)
		return;
	if (!c->notified) {
		c->notified = true;
		c->inflight++; /* on_closed may drop references it held */
		c->ops->on_closed(c->ctx, c);
		c->inflight--;
		if (c->inflight)
			return;
	}
	if (c->fd >= 0)
		close(c->fd);
	free_txq(c);
	repl_parser_free(&c->parser);
	free(c->rxbuf);
	free(c);
}

void repl_conn_flush_now(struct repl_conn *c)
{
	flush_tx(c);
}

void repl_conn_set_quiet(struct repl_conn *c, bool quiet)
{
	c->quiet = quiet;
	/* an adopted link starts authenticating before its owner says this */
	c->auth.quiet = quiet;
}

void repl_conn_close(struct repl_conn *c, uint32_t reason, const char *fmt, ...)
{
	va_list ap;
	bool error;

	if (c->state == REPL_CONN_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(c->close_why, sizeof(c->close_why), fmt, ap);
	va_end(ap);
	c->close_reason = reason;
	error = reason != REPL_REASON_SHUTDOWN && reason != REPL_REASON_ADMIN &&
		reason != REPL_REASON_NONE;
	if (reason == REPL_REASON_NONE && c->state == REPL_CONN_CONNECTING)
		log_dbg("repl", "%s: %s", c->name, c->close_why); /* retried; in status */
	else if (reason == REPL_REASON_NONE)
		log_msg(c->quiet ? LOG_LVL_DBG : LOG_LVL_WARN, "repl",
			"%s: connection lost (%s): %s", c->name,
			repl_conn_state_name(c->state), c->close_why);
	else if (error)
		log_msg(c->quiet ? LOG_LVL_DBG : LOG_LVL_WARN, "repl", "%s: closing (%s): %s: %s",
			c->name, repl_conn_state_name(c->state), repl_reason_name(reason),
			c->close_why);
	else
		log_info("repl", "%s: closing: %s: %s", c->name, repl_reason_name(reason),
			 c->close_why);
	/* a goodbye only to a peer that got as far as the handshake */
	if (c->state >= REPL_CONN_FEATURES && reason != REPL_REASON_NONE) {
		struct repl_msg m = { .type = error ? REPL_MSG_ERROR : REPL_MSG_DISCONNECT };

		m.u.error.reason = reason;
		if (error) {
			/* the peer gets the reason, printable ASCII only */
			size_t i;

			for (i = 0; c->close_why[i] && i < REPL_MAX_ERROR_TEXT; i++) {
				char ch = c->close_why[i];

				m.u.error.text[i] = ch >= 0x20 && ch < 0x7f ? ch : '?';
			}
			m.u.error.text[i] = '\0';
			m.data = (const uint8_t *)m.u.error.text;
			m.data_len = (uint32_t)i;
		}
		repl_conn_send(c, &m);
	}
	c->closed_in = c->state;
	c->state = REPL_CONN_CLOSING;
	c->deadline_ns = now_ns() + CLOSE_GRACE_MS * 1000000ull;
	if (c->fd >= 0 && !c->txq)
		shutdown(c->fd, SHUT_RDWR);
	/* the tick keeps running until the grace ends (tick_done) */
	maybe_free(c);
}

void repl_conn_get(struct repl_conn *c) { c->inflight++; }

void repl_conn_put(struct repl_conn *c)
{
	c->inflight--;
	maybe_free(c);
}

/* ---- handshake ------------------------------------------------------------ */

static int protocol_error(struct repl_conn *c, const char *what)
{
	repl_conn_close(c, REPL_REASON_PROTOCOL, "%s", what);
	return -EBADMSG;
}

static void send_features(struct repl_conn *c)
{
	struct repl_msg m = { .type = REPL_MSG_FEATURES };

	m.u.features = c->local_features;
	repl_conn_send(c, &m);
}

static int start_auth(struct repl_conn *c, const struct repl_features *peer)
{
	uint8_t nonce[REPL_NONCE_LEN];
	struct repl_msg out;

	if (repl_features_agree(&c->local_features, peer, &c->version, &c->features)) {
		repl_conn_close(c, REPL_REASON_VERSION,
				"no common protocol version: we speak %u..%u, the peer %u..%u",
				c->local_features.proto_min, c->local_features.proto_max,
				peer->proto_min, peer->proto_max);
		return -EPROTO;
	}
	if (repl_auth_random_nonce(nonce) ||
	    repl_auth_start(&c->auth, c->quiet, c->secret, c->local_id, c->peer_id, nonce, c->name,
			    &out)) {
		repl_conn_close(c, REPL_REASON_AUTH_FAILED, "cannot start authentication");
		return -EIO;
	}
	set_state(c, REPL_CONN_AUTH);
	repl_conn_send(c, &out);
	return 0;
}

static void send_state(struct repl_conn *c)
{
	struct repl_msg m = { .type = REPL_MSG_STATE };

	c->ops->fill_state(c->ctx, c, &m.u.state);
	repl_conn_send(c, &m);
}

static int on_handshake(struct repl_conn *c, const struct repl_msg *m)
{
	struct repl_msg out;
	char why[200] = "";
	uint32_t reason;
	int ret;

	switch (c->state) {
	case REPL_CONN_FEATURES:
		if (m->type != REPL_MSG_FEATURES)
			return protocol_error(c, "expected FEATURES");
		return start_auth(c, &m->u.features);
	case REPL_CONN_AUTH:
		if (m->type != REPL_MSG_AUTH_CHALLENGE && m->type != REPL_MSG_AUTH_RESPONSE &&
		    m->type != REPL_MSG_AUTH_OK)
			return protocol_error(c, "expected authentication");
		ret = repl_auth_recv(&c->auth, m, &out);
		if (ret < 0) {
			repl_conn_close(c, c->auth.reason, "authentication failed: %s",
					c->auth.why ? c->auth.why : "refused");
			return ret;
		}
		if (ret == 1)
			repl_conn_send(c, &out);
		if (c->auth.state == REPL_AUTH_DONE) {
			log_info("repl", "%s: peer authenticated", c->name);
			set_state(c, REPL_CONN_STATE);
			send_state(c);
		}
		return 0;
	case REPL_CONN_STATE:
		if (m->type != REPL_MSG_STATE)
			return protocol_error(c, "expected STATE");
		if (m->u.state.node_id != c->peer_id)
			return protocol_error(c, "STATE from another member id than HELLO named");
		if (memcmp(m->u.state.volume_uuid, c->uuid, 16)) {
			repl_conn_close(c, REPL_REASON_UUID_MISMATCH,
					"the peer holds another volume (uuid differs)");
			return -EPROTO;
		}
		reason = c->ops->on_state(c->ctx, c, &m->u.state, why, sizeof(why));
		if (reason) {
			repl_conn_close(c, reason, "%s", why);
			return -EPROTO;
		}
		set_state(c, REPL_CONN_LIVE);
		c->deadline_ns = 0;
		return 0;
	default:
		return protocol_error(c, "message in an unexpected state");
	}
}

static int on_frame(struct repl_conn *c, const struct repl_msg *m)
{
	char why[200] = "";

	switch (m->type) {
	case REPL_MSG_ERROR:
		repl_conn_close(c, REPL_REASON_NONE, "peer reported %s: %s",
				repl_reason_name(m->u.error.reason), m->u.error.text);
		return -EPIPE;
	case REPL_MSG_DISCONNECT:
		c->goodbye = true;
		repl_conn_close(c, REPL_REASON_NONE, "peer disconnected: %s",
				repl_reason_name(m->u.error.reason));
		return -EPIPE;
	case REPL_MSG_PING:
		if (c->state < REPL_CONN_STATE)
			return protocol_error(c, "PING before authentication");
		send_simple(c, REPL_MSG_PONG, m->u.value);
		return 0;
	case REPL_MSG_PONG:
		if (c->state < REPL_CONN_STATE)
			return protocol_error(c, "PONG before authentication");
		return 0;
	default:
		break;
	}
	if (c->state != REPL_CONN_LIVE)
		return on_handshake(c, m);
	if (c->ops->on_msg(c->ctx, c, m, why, sizeof(why)) < 0)
		return protocol_error(c, why[0] ? why : "unexpected message");
	return 0;
}

/* ---- receive --------------------------------------------------------------- */

static void process_rx(struct repl_conn *c)
{
	while (c->rx_off < c->rx_len && !c->rx_paused && c->state != REPL_CONN_CLOSING) {
		struct repl_msg m;
		size_t used = 0;
		int ret = repl_parser_feed(&c->parser, c->rxbuf + c->rx_off,
					   c->rx_len - c->rx_off, &used, &m);

		c->rx_off += (uint32_t)used;
		if (ret == -EBADMSG) {
			protocol_error(c, c->parser.why);
			return;
		}
		if (ret < 0) {
			repl_conn_close(c, REPL_REASON_NONE, "out of memory");
			return;
		}
		if (ret == 1)
			on_frame(c, &m);
	}
	if (c->rx_off >= c->rx_len)
		post_recv(c);
}

static void rx_done(struct reactor_op *op, int res)
{
	struct repl_conn *c = container_of(op, struct repl_conn, rx_op);

	c->rx_pending = false;
	c->inflight--;
	if (c->state == REPL_CONN_CLOSING) {
		maybe_free(c);
		return;
	}
	if (res <= 0) {
		repl_conn_close(c, REPL_REASON_NONE, "%s",
				res == 0 ? "peer closed the connection" : strerror(-res));
		return;
	}
	c->last_rx_ns = now_ns();
	c->bytes_in += (uint64_t)res;
	c->rx_len = (uint32_t)res;
	c->rx_off = 0;
	process_rx(c);
}

static void post_recv(struct repl_conn *c)
{
	if (c->rx_pending || c->rx_paused || c->fd < 0 || c->state == REPL_CONN_CLOSING ||
	    c->state == REPL_CONN_CONNECTING)
		return;
	c->rx_len = c->rx_off = 0;
	c->rx_op.cb = rx_done;
	c->rx_pending = true;
	c->inflight++;
	reactor_recv(c->r, &c->rx_op, c->fd, c->rxbuf, RXBUF_SIZE);
}

void repl_conn_pause(struct repl_conn *c) { c->rx_paused = true; }

void repl_conn_resume(struct repl_conn *c)
{
	if (!c->rx_paused)
		return;
	c->rx_paused = false;
	process_rx(c);
}

/* ---- timer: deadlines and keepalive ------------------------------------------- */

static void tick_done(struct reactor_op *op, int res)
{
	struct repl_conn *c = container_of(op, struct repl_conn, tick.op);
	uint64_t now = now_ns();

	c->tick_pending = false;
	c->inflight--;
	if (c->state == REPL_CONN_CLOSING) {
		if (c->fd >= 0 && now >= c->deadline_ns) {
			shutdown(c->fd, SHUT_RDWR);
			if (c->state == REPL_CONN_CLOSING && c->inflight)
				reactor_cancel(c->r, &c->conn_op);
		} else if (c->inflight) {
			arm_tick(c);
		}
		maybe_free(c);
		return;
	}
	if (c->deadline_ns && now >= c->deadline_ns) {
		if (c->state == REPL_CONN_CONNECTING)
			reactor_cancel(c->r, &c->conn_op);
		repl_conn_close(c, REPL_REASON_TIMEOUT, "%s did not finish in time",
				repl_conn_state_name(c->state));
		return;
	}
	if (c->state >= REPL_CONN_STATE) {
		if (now - c->last_rx_ns > c->timeout_ms * 1000000ull) {
			repl_conn_close(c, REPL_REASON_TIMEOUT, "nothing received for %u ms",
					c->timeout_ms);
			return;
		}
		if (now - c->last_ping_ns >= c->ping_ms * 1000000ull) {
			c->last_ping_ns = now;
			send_simple(c, REPL_MSG_PING, now);
		}
	}
	arm_tick(c);
}

static void arm_tick(struct repl_conn *c)
{
	if (c->tick_pending)
		return;
	c->tick.op.cb = tick_done;
	c->tick_pending = true;
	c->inflight++;
	reactor_timeout(c->r, &c->tick, TICK_MS * 1000000ull);
}

/* ---- set-up ------------------------------------------------------------------- */

static void connect_done(struct reactor_op *op, int res)
{
	struct repl_conn *c = container_of(op, struct repl_conn, conn_op);
	struct repl_msg hello = { .type = REPL_MSG_HELLO };

	c->inflight--;
	if (c->state == REPL_CONN_CLOSING) {
		maybe_free(c);
		return;
	}
	if (res < 0) {
		repl_conn_close(c, REPL_REASON_NONE, "connect: %s", strerror(-res));
		return;
	}
	tune_socket(c->fd);
	set_state(c, REPL_CONN_FEATURES);
	c->deadline_ns = now_ns() + REPL_HANDSHAKE_MS * 1000000ull;
	send_features(c);
	memcpy(hello.u.hello.volume_uuid, c->uuid, 16);
	hello.u.hello.from_id = c->local_id;
	hello.u.hello.to_id = c->peer_id;
	repl_conn_send(c, &hello);
	post_recv(c);
}

struct repl_conn *repl_conn_connect(struct reactor *r, const char *addr,
				    const uint8_t uuid[16], uint32_t local_id,
				    uint32_t peer_id, const struct repl_secret *secret,
				    const char *name, const struct repl_conn_ops *ops,
				    void *ctx)
{
	struct repl_conn *c = conn_new(r, uuid, local_id, peer_id, secret, name, ops, ctx);
	int ret;

	if (!c)
		return NULL;
	c->connector = true;
	ret = urbd_resolve(addr, false, &c->sa, &c->salen);
	if (!ret) {
		c->fd = socket(c->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0)
			ret = -errno;
	}
	if (ret) {
		repl_parser_free(&c->parser);
		free(c->rxbuf);
		free(c);
		errno = -ret;
		return NULL;
	}
	c->state = REPL_CONN_CONNECTING;
	c->deadline_ns = now_ns() + CONNECT_MS * 1000000ull;
	c->conn_op.cb = connect_done;
	c->inflight++;
	reactor_connect(r, &c->conn_op, c->fd, (struct sockaddr *)&c->sa, c->salen);
	arm_tick(c);
	return c;
}

struct repl_conn *repl_conn_accept(struct reactor *r, int fd,
				   const struct repl_features *peer_features,
				   const uint8_t uuid[16], uint32_t local_id, uint32_t peer_id,
				   const struct repl_secret *secret, const char *name,
				   const struct repl_conn_ops *ops, void *ctx)
{
	struct repl_conn *c = conn_new(r, uuid, local_id, peer_id, secret, name, ops, ctx);

	if (!c)
		return NULL;
	c->fd = fd;
	tune_socket(fd);
	c->state = REPL_CONN_FEATURES;
	arm_tick(c);
	send_features(c);
	post_recv(c);
	start_auth(c, peer_features); /* on failure it is closing: on_closed reports it */
	return c;
}
