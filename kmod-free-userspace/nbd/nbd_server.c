#include "nbd_server.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "nbd_conn.h"
#include "reactor.h"
#include "util.h"

struct listener {
	struct nbd_server *srv;
	int fd;
	struct reactor_op op;
	bool pending;
	const char *what;
};

struct nbd_server {
	struct reactor *r;
	struct listener tcp, unx;
	char *unix_path;
	int port;
	bool stopping;
	const struct nbd_export_ops *ops;
	void *ops_ctx;
	struct nbd_conn *negotiating; /* connections still on the acceptor */
	struct reactor_timer sweep;   /* drops clients that never finish negotiating */
	bool sweep_pending;
	uint64_t handshake_timeout_ns;
};

#define SWEEP_INTERVAL_NS (1000000000ULL)

const struct nbd_export_ops *nbd_server_ops(struct nbd_server *s, void **ctx)
{
	*ctx = s->ops_ctx;
	return s->ops;
}

void nbd_server_track(struct nbd_server *s, struct nbd_conn *c, bool add)
{
	if (add) {
		c->sprev = NULL;
		c->snext = s->negotiating;
		if (s->negotiating)
			s->negotiating->sprev = c;
		s->negotiating = c;
		c->tracked = true;
		return;
	}
	if (!c->tracked)
		return;
	if (c->sprev)
		c->sprev->snext = c->snext;
	else
		s->negotiating = c->snext;
	if (c->snext)
		c->snext->sprev = c->sprev;
	c->snext = c->sprev = NULL;
	c->tracked = false;
}

static void arm_accept(struct listener *l);

static void accept_done(struct reactor_op *op, int res)
{
	struct listener *l = container_of(op, struct listener, op);

	l->pending = false;
	if (l->srv->stopping) {
		if (res >= 0)
			close(res);
		return;
	}
	if (res >= 0) {
		nbd_conn_accepted(l->srv, l->srv->r, res);
	} else if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN) {
		/* EMFILE and friends: keep serving those already connected */
		log_rl(LOG_LVL_ERR, "nbd", "accept on %s: %s", l->what, strerror(-res));
	}
	arm_accept(l);
}

static void arm_accept(struct listener *l)
{
	if (l->fd < 0 || l->srv->stopping)
		return;
	l->op.cb = accept_done;
	l->pending = true;
	reactor_accept(l->srv->r, &l->op, l->fd);
}

/* "host:port" or "[v6]:port"; *port_out: the port bound */
static int listen_tcp(const char *spec, int *port_out)
{
	int fd = urbd_listen_tcp(spec, 128);

	if (fd >= 0)
		*port_out = urbd_sock_port(fd);
	return fd;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* a live server answers: refuse to steal its socket */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return -EADDRINUSE;
	}
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, 0600) < 0 || listen(fd, 128) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

struct start_arg {
	struct nbd_server *s;
};

static void sweep_done(struct reactor_op *op, int res)
{
	struct nbd_server *s = container_of(op, struct nbd_server, sweep.op);
	uint64_t now = now_ns();
	struct nbd_conn *c, *next;

	s->sweep_pending = false;
	if (s->stopping)
		return;
	for (c = s->negotiating; c; c = next) {
		next = c->snext;
		if ((c->state == NBD_CONN_GREETING || c->state == NBD_CONN_OPTIONS) &&
		    now - c->accepted_ns > s->handshake_timeout_ns)
			nbd_conn_close(c, "negotiation took too long");
	}
	s->sweep_pending = true;
	reactor_timeout(s->r, &s->sweep, SWEEP_INTERVAL_NS);
}

static int start_on_reactor(void *arg)
{
	struct nbd_server *s = arg;

	s->sweep.op.cb = sweep_done;
	s->sweep_pending = true;
	reactor_timeout(s->r, &s->sweep, SWEEP_INTERVAL_NS);
	arm_accept(&s->tcp);
	arm_accept(&s->unx);
	return 0;
}

int nbd_server_start(struct reactor *acceptor, const struct nbd_server_config *cfg,
		     const struct nbd_export_ops *ops, void *ops_ctx,
		     struct nbd_server **out)
{
	struct nbd_server *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->r = acceptor;
	s->ops = ops;
	s->ops_ctx = ops_ctx;
	s->handshake_timeout_ns = NBD_HANDSHAKE_TIMEOUT_NS;
	if (getenv("URBD_NBD_HANDSHAKE_TIMEOUT_MS")) /* tests */
		s->handshake_timeout_ns =
			strtoull(getenv("URBD_NBD_HANDSHAKE_TIMEOUT_MS"), NULL, 10) * 1000000ULL;
	s->tcp = (struct listener){ .srv = s, .fd = -1, .what = "tcp" };
	s->unx = (struct listener){ .srv = s, .fd = -1, .what = "unix" };
	if (cfg->tcp_listen && *cfg->tcp_listen) {
		ret = listen_tcp(cfg->tcp_listen, &s->port);
		if (ret < 0) {
			log_err("nbd", "cannot listen on %s: %s", cfg->tcp_listen,
				strerror(-ret));
			goto fail;
		}
		s->tcp.fd = ret;
		log_info("nbd", "listening on %s (port %d)", cfg->tcp_listen, s->port);
	}
	if (cfg->unix_path && *cfg->unix_path) {
		ret = listen_unix(cfg->unix_path);
		if (ret < 0) {
			log_err("nbd", "cannot listen on unix socket %s: %s%s",
				cfg->unix_path, strerror(-ret),
				ret == -EADDRINUSE ? " (another server is using it)" : "");
			goto fail;
		}
		s->unx.fd = ret;
		s->unix_path = strdup(cfg->unix_path);
		log_info("nbd", "listening on unix socket %s", cfg->unix_path);
	}
	reactor_call(acceptor, start_on_reactor, s);
	*out = s;
	return 0;
fail:
	if (s->tcp.fd >= 0)
		close(s->tcp.fd);
	free(s);
	return ret;
}

int nbd_server_port(const struct nbd_server *s) { return s->port; }

static int stop_on_reactor(void *arg)
{
	struct nbd_server *s = arg;
	struct nbd_conn *c, *next;

	if (!s->stopping) {
		s->stopping = true;
		if (s->tcp.pending)
			reactor_cancel(s->r, &s->tcp.op);
		if (s->unx.pending)
			reactor_cancel(s->r, &s->unx.op);
		if (s->sweep_pending)
			reactor_cancel(s->r, &s->sweep.op);
		for (c = s->negotiating; c; c = next) {
			next = c->snext;
			nbd_conn_close(c, "server shutting down");
		}
	}
	return (s->tcp.pending || s->unx.pending || s->sweep_pending ||
		s->negotiating) ? -EAGAIN : 0;
}

void nbd_server_stop(struct nbd_server *s)
{
	if (!s)
		return;
	/* bounded: cancelled accepts and closed sockets come back quickly */
	for (int i = 0; i < 2000 && reactor_call(s->r, stop_on_reactor, s); i++)
		usleep(1000);
	if (s->tcp.fd >= 0)
		close(s->tcp.fd);
	if (s->unx.fd >= 0)
		close(s->unx.fd);
	if (s->unix_path) {
		unlink(s->unix_path);
		free(s->unix_path);
	}
	free(s);
}
