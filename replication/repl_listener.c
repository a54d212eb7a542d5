/* Replication listener: accept, read FEATURES + HELLO, route. */
#include "repl_listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include "log.h"
#include "net.h"
#include "util.h"

#define INTRO_LEN   (2 * REPL_HDR_LEN + 32 + 24) /* FEATURES + HELLO */
#define INTRO_MS    10000
#define MAX_PENDING 64

struct pending {
	struct repl_listener *l;
	int fd;
	uint8_t buf[INTRO_LEN];
	uint32_t have;
	char addr[64];
	struct reactor_op op;
	struct reactor_timer timer;
	unsigned inflight;
	bool done;
};

struct repl_listener {
	struct reactor *r;
	int fd;
	struct reactor_op op;
	bool accepting, stopping;
	unsigned pending;
	repl_route_fn route;
	void *ctx;
};

static void arm_accept(struct repl_listener *l);

static void pending_end(struct pending *p)
{
	if (!p->done) {
		p->done = true;
		if (p->fd >= 0)
			shutdown(p->fd, SHUT_RDWR);
		reactor_cancel(p->l->r, &p->timer.op);
	}
	if (p->inflight)
		return;
	if (p->fd >= 0)
		close(p->fd);
	p->l->pending--;
	free(p);
}

/* the intro is complete: decode and route, or refuse */
static void intro_complete(struct pending *p)
{
	struct repl_hdr h1, h2;
	struct repl_msg f, hello;
	const char *why = NULL;
	int fd;

	if (repl_hdr_decode(p->buf, REPL_HDR_LEN, &h1, &why) ||
	    h1.type != REPL_MSG_FEATURES || h1.length != 32 ||
	    repl_msg_decode(h1.type, p->buf + REPL_HDR_LEN, 32, &f, &why) ||
	    repl_hdr_decode(p->buf + REPL_HDR_LEN + 32, REPL_HDR_LEN, &h2, &why) ||
	    h2.type != REPL_MSG_HELLO || h2.length != 24 ||
	    repl_msg_decode(h2.type, p->buf + 2 * REPL_HDR_LEN + 32, 24, &hello, &why)) {
		log_warn("repl", "connection from %s refused: not a urbd peer introduction "
			 "(FEATURES, HELLO)%s%s", p->addr, why ? ": " : "", why ? why : "");
		pending_end(p);
		return;
	}
	if (p->l->stopping) {
		pending_end(p);
		return;
	}
	fd = p->fd;
	p->fd = -1;
	p->done = true;
	reactor_cancel(p->l->r, &p->timer.op);
	if (p->l->route(p->l->ctx, fd, &f.u.features, &hello, p->addr) == -ENOENT) {
		char u[40];

		snprintf(u, sizeof(u), "%02x%02x%02x%02x-...", hello.u.hello.volume_uuid[0],
			 hello.u.hello.volume_uuid[1], hello.u.hello.volume_uuid[2],
			 hello.u.hello.volume_uuid[3]);
		log_warn("repl", "connection from %s refused: no volume with uuid %s here",
			 p->addr, u);
	}
	pending_end(p);
}

static void recv_done(struct reactor_op *op, int res)
{
	struct pending *p = container_of(op, struct pending, op);

	p->inflight--;
	if (p->done) {
		pending_end(p);
		return;
	}
	if (res <= 0) {
		log_info("repl", "connection from %s closed before its introduction: %s",
			 p->addr, res == 0 ? "EOF" : strerror(-res));
		pending_end(p);
		return;
	}
	p->have += (uint32_t)res;
	if (p->have < INTRO_LEN) {
		p->inflight++;
		reactor_recv(p->l->r, &p->op, p->fd, p->buf + p->have, INTRO_LEN - p->have);
		return;
	}
	intro_complete(p);
}

static void timer_done(struct reactor_op *op, int res)
{
	struct pending *p = container_of(op, struct pending, timer.op);

	p->inflight--;
	if (!p->done && res == -ETIME) {
		log_warn("repl", "connection from %s refused: no introduction in %d ms",
			 p->addr, INTRO_MS);
		pending_end(p);
		return;
	}
	if (p->done)
		pending_end(p);
}

static void accept_done(struct reactor_op *op, int res)
{
	struct repl_listener *l = container_of(op, struct repl_listener, op);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct pending *p;

	l->accepting = false;
	if (l->stopping) {
		if (res >= 0)
			close(res);
		return;
	}
	if (res < 0) {
		log_rl(LOG_LVL_WARN, "repl", "accept: %s", strerror(-res));
		arm_accept(l);
		return;
	}
	if (l->pending >= MAX_PENDING || !(p = calloc(1, sizeof(*p)))) {
		log_rl(LOG_LVL_WARN, "repl", "too many unintroduced connections: refusing one");
		close(res);
		arm_accept(l);
		return;
	}
	p->l = l;
	p->fd = res;
	snprintf(p->addr, sizeof(p->addr), "?");
	if (getpeername(res, (struct sockaddr *)&ss, &sl) == 0) {
		char host[48], serv[8];

		if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
				sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			snprintf(p->addr, sizeof(p->addr), "%s:%s", host, serv);
	}
	l->pending++;
	p->op.cb = recv_done;
	p->timer.op.cb = timer_done;
	p->inflight = 2;
	reactor_recv(l->r, &p->op, p->fd, p->buf, INTRO_LEN);
	reactor_timeout(l->r, &p->timer, INTRO_MS * 1000000ull);
	arm_accept(l);
}

static void arm_accept(struct repl_listener *l)
{
	if (l->accepting || l->stopping)
		return;
	l->accepting = true;
	l->op.cb = accept_done;
	reactor_accept(l->r, &l->op, l->fd);
}

static void start_on_reactor(void *arg) { arm_accept(arg); }

int repl_listener_start(struct reactor *r, const char *addr, repl_route_fn route,
			void *ctx, struct repl_listener **out, int *out_port)
{
	struct repl_listener *l;
	int fd = urbd_listen_tcp(addr, 64);

	if (fd < 0)
		return fd;
	if (out_port)
		*out_port = urbd_sock_port(fd);
	l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	l->r = r;
	l->fd = fd;
	l->route = route;
	l->ctx = ctx;
	reactor_post(r, start_on_reactor, l);
	*out = l;
	return 0;
}

static int stop_on_reactor(void *arg)
{
	struct repl_listener *l = arg;

	l->stopping = true;
	shutdown(l->fd, SHUT_RDWR);
	if (l->accepting)
		reactor_cancel(l->r, &l->op);
	return (int)l->pending + l->accepting;
}

void repl_listener_stop(struct repl_listener *l)
{
	if (!l)
		return;
	/* introductions still pending point at l: then it is left to the
	 * process exit (they end with the reactor) rather than freed early */
	int busy = 1;

	for (int i = 0; i < 1000 && (busy = reactor_call(l->r, stop_on_reactor, l)); i++)
		usleep(1000);
	if (!busy) {
		close(l->fd);
		free(l);
	} else {
		close(l->fd);
	}
}
