/* NVMe/TCP listener, accept, discovery log, shutdown. */
#include "nvmf_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "nvmf_conn.h"
#include "reactor.h"
#include "util.h"

struct nvmf_server {
	struct reactor *r;
	int fd;
	int port;
	struct reactor_op accept_op;
	bool accept_pending;
	bool stopping;               /* atomic: read by queues on every reactor */
	const struct nbd_export_ops *ops;
	void *ops_ctx;
	struct nvmf_disc_port disc;
	pthread_mutex_t lock;        /* queues live on several reactors */
	struct nvmf_conn *conns;
	unsigned nconns;
};

const struct nbd_export_ops *nvmf_server_ops(struct nvmf_server *s, void **ctx)
{
	*ctx = s->ops_ctx;
	return s->ops;
}

bool nvmf_server_stopping(const struct nvmf_server *s)
{
	return __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
}

void nvmf_server_track(struct nvmf_server *s, struct nvmf_conn *q, bool add)
{
	pthread_mutex_lock(&s->lock);
	if (add) {
		q->sprev = NULL;
		q->snext = s->conns;
		if (s->conns)
			s->conns->sprev = q;
		s->conns = q;
		s->nconns++;
	} else {
		if (q->sprev)
			q->sprev->snext = q->snext;
		else
			s->conns = q->snext;
		if (q->snext)
			q->snext->sprev = q->sprev;
		s->nconns--;
	}
	pthread_mutex_unlock(&s->lock);
}

/* The port as the host on fd sees it: a wildcard listener reports the
 * connection's local address. */
static void local_port(const struct nvmf_server *s, int fd, struct nvmf_disc_port *p)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	*p = s->disc;
	if (!nvmf_disc_port_is_wildcard(&s->disc))
		return;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		log_rl(LOG_LVL_WARN, "nvmf", "getsockname: %s", strerror(errno));
		return;
	}
	nvmf_disc_port_local(&s->disc, (struct sockaddr *)&ss, p);
}

uint8_t *nvmf_server_disc_log(struct nvmf_server *s, int fd, uint32_t *len)
{
	struct nvmf_disc_port port;
	char **names = NULL;
	size_t n = 0;
	uint8_t *log;

	if (s->ops->list(s->ops_ctx, &names, &n) < 0)
		return NULL;
	local_port(s, fd, &port);
	log = nvmf_disc_log_build(&port, names, n, len);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return log;
}

static void arm_accept(struct nvmf_server *s);

static void accept_done(struct reactor_op *op, int res)
{
	struct nvmf_server *s = container_of(op, struct nvmf_server, accept_op);

	s->accept_pending = false;
	if (nvmf_server_stopping(s)) {
		if (res >= 0)
			close(res);
		return;
	}
	if (res >= 0)
		nvmf_conn_accepted(s, s->r, res);
	else if (res != -EINTR && res != -ECONNABORTED && res != -EAGAIN)
		log_rl(LOG_LVL_ERR, "nvmf", "accept: %s", strerror(-res));
	arm_accept(s);
}

static void arm_accept(struct nvmf_server *s)
{
	if (nvmf_server_stopping(s))
		return;
	s->accept_op.cb = accept_done;
	s->accept_pending = true;
	reactor_accept(s->r, &s->accept_op, s->fd);
}

static int listen_tcp(struct nvmf_server *s, const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = urbd_listen_tcp(spec, 128);

	if (fd < 0)
		return fd;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		s->disc.ipv6 = ss.ss_family == AF_INET6;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			s->port = ntohs(in->sin_port);
			inet_ntop(AF_INET, &in->sin_addr, s->disc.traddr, sizeof(s->disc.traddr));
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			s->port = ntohs(in6->sin6_port);
			inet_ntop(AF_INET6, &in6->sin6_addr, s->disc.traddr,
				  sizeof(s->disc.traddr));
		}
		snprintf(s->disc.trsvcid, sizeof(s->disc.trsvcid), "%d", s->port);
	}
	return fd;
}

static int start_on_reactor(void *arg)
{
	arm_accept(arg);
	return 0;
}

int nvmf_server_start(struct reactor *acceptor, const char *listen,
		      const struct nbd_export_ops *ops, void *ops_ctx,
		      struct nvmf_server **out)
{
	struct nvmf_server *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->r = acceptor;
	s->ops = ops;
	s->ops_ctx = ops_ctx;
	pthread_mutex_init(&s->lock, NULL);
	ret = listen_tcp(s, listen);
	if (ret < 0) {
		log_err("nvmf", "cannot listen on %s: %s", listen, strerror(-ret));
		pthread_mutex_destroy(&s->lock);
		free(s);
		return ret;
	}
	s->fd = ret;
	log_info("nvmf", "NVMe/TCP target listening on %s (port %d); subsystems %s<volume>",
		 listen, s->port, NVMF_NQN_PREFIX);
	reactor_call(acceptor, start_on_reactor, s);
	*out = s;
	return 0;
}

int nvmf_server_port(const struct nvmf_server *s) { return s->port; }

static int stop_on_reactor(void *arg)
{
	struct nvmf_server *s = arg;

	__atomic_store_n(&s->stopping, true, __ATOMIC_RELEASE);
	if (s->accept_pending)
		reactor_cancel(s->r, &s->accept_op);
	return s->accept_pending ? -EAGAIN : 0;
}

void nvmf_server_stop(struct nvmf_server *s)
{
	unsigned left;

	if (!s)
		return;
	for (int i = 0; i < 2000 && reactor_call(s->r, stop_on_reactor, s); i++)
		usleep(1000);
	/* queues notice `stopping` on their next tick (1 s) and close */
	for (int i = 0; i < 5000; i++) {
		pthread_mutex_lock(&s->lock);
		left = s->nconns;
		pthread_mutex_unlock(&s->lock);
		if (!left)
			break;
		usleep(1000);
	}
	if (left) {
		log_err("nvmf", "%u queue(s) did not close in 5 s; leaking the server "
			"rather than freeing memory in use", left);
		close(s->fd);
		return;
	}
	close(s->fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
