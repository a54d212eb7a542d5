/* Unary gRPC server over the gRPC C core (see rpc.h).
 *
 * Threads: cfg->threads workers all block in grpc_completion_queue_next on
 * one queue. Every tag is a struct rpc_call (or the server's shutdown tag),
 * so whichever worker wakes up can advance the call. The server keeps
 * exactly `threads` calls requested at any time: each accepted call asks
 * for its successor before running its handler, so a slow handler never
 * stops new calls from being accepted while other workers are free.
 *
 * Shutdown ordering is the subtle part: once the core has reported the
 * shutdown tag, no worker may start a batch or request a call (the server
 * and queue are about to go away). `closing`, set under `lock`, is checked
 * under the same lock around every such operation.
 */
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>

#include "log.h"
#include "rpc_priv.h"
#include "util.h"

enum call_state {
	CALL_WAIT_NEW,  /* requested from the core, no client call yet */
	CALL_READ,      /* client call accepted, its request message in flight */
	CALL_REPLY,     /* status (+ reply) sent, waiting for the batch to finish */
};

struct rpc_call {
	struct rpc_server *srv;
	enum call_state state;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array request_md;
	grpc_byte_buffer *request;
	grpc_byte_buffer *reply;
	grpc_slice status_details;
	int client_cancelled;   /* GRPC_OP_RECV_CLOSE_ON_SERVER result */
};

struct rpc_server {
	const char *tag;
	grpc_server *server;
	grpc_completion_queue *cq;
	const struct rpc_method *methods;
	size_t n_methods;
	void *ctx;
	pthread_t *threads;
	unsigned n_threads;
	unsigned grace_ms;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool closing;           /* no new batches or call requests */
	bool shutdown_done;     /* the core delivered shutdown_tag */
	char shutdown_tag;      /* its address is the tag */

	char *unix_path;
	int lock_fd;
	int tcp_port;
};

static const char *const status_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
};

const char *rpc_status_name(grpc_status_code code)
{
	if ((unsigned)code < ARRAY_SIZE(status_names))
		return status_names[code];
	return "UNKNOWN_STATUS";
}

grpc_status_code rpc_status_from_errno(int neg_errno)
{
	switch (-neg_errno) {
	case 0: return GRPC_STATUS_OK;
	case EINVAL: return GRPC_STATUS_INVALID_ARGUMENT;
	case EEXIST: return GRPC_STATUS_ALREADY_EXISTS;
	case ENOENT: return GRPC_STATUS_NOT_FOUND;
	case ENOSPC: return GRPC_STATUS_RESOURCE_EXHAUSTED;
	case EBUSY: return GRPC_STATUS_FAILED_PRECONDITION;
	case ENOSYS:
	case EOPNOTSUPP: return GRPC_STATUS_UNIMPLEMENTED;
	case ETIMEDOUT: return GRPC_STATUS_DEADLINE_EXCEEDED;
	case EPERM:
	case EACCES: return GRPC_STATUS_PERMISSION_DENIED;
	default: return GRPC_STATUS_INTERNAL;
	}
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool grpc_started;

/* gRPC core log lines join ours. Its ERRORs are mostly per-connection
 * (a failed handshake, a peer reset): a warning for us, rate-limited since
 * a hostile client can cause them at will. */
static void grpc_log(gpr_log_func_args *args)
{
	if (args->severity == GPR_LOG_SEVERITY_ERROR)
		log_rl(LOG_LVL_WARN, "grpc", "%s", args->message);
	else
		log_dbg("grpc", "%s", args->message);
}

static void do_init(void)
{
	gpr_set_log_function(grpc_log);
	grpc_init();
	grpc_started = true;
}

void rpc_init(void)
{
	pthread_once(&init_once, do_init);
}

void rpc_cleanup(void)
{
	if (grpc_started) {
		grpc_started = false;
		grpc_shutdown_blocking();
	}
}

/* ---- calls --------------------------------------------------------- */

static void call_free(struct rpc_call *c)
{
	if (c->call)
		grpc_call_unref(c->call);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->request_md);
	if (c->request)
		grpc_byte_buffer_destroy(c->request);
	if (c->reply)
		grpc_byte_buffer_destroy(c->reply);
	grpc_slice_unref(c->status_details);
	free(c);
}

static grpc_call_error start_batch(struct rpc_call *c, const grpc_op *ops, size_t n)
{
	struct rpc_server *s = c->srv;
	grpc_call_error err = GRPC_CALL_ERROR_ALREADY_FINISHED;

	pthread_mutex_lock(&s->lock);
	if (!s->closing)
		err = grpc_call_start_batch(c->call, ops, n, c, NULL);
	pthread_mutex_unlock(&s->lock);
	return err;
}

/* Asks the core for the next incoming call. */
static void request_call(struct rpc_server *s)
{
	struct rpc_call *c = calloc(1, sizeof(*c));
	grpc_call_error err = GRPC_CALL_ERROR_ALREADY_FINISHED;
	bool closing;

	if (!c) {
		log_err(s->tag, "out of memory: serving one call fewer in parallel");
		return;
	}
	c->srv = s;
	c->state = CALL_WAIT_NEW;
	c->status_details = grpc_empty_slice();
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->request_md);
	pthread_mutex_lock(&s->lock);
	closing = s->closing;
	if (!closing)
		err = grpc_server_request_call(s->server, &c->call, &c->details,
					       &c->request_md, s->cq, s->cq, c);
	pthread_mutex_unlock(&s->lock);
	if (err != GRPC_CALL_OK) {
		if (!closing)
			log_err(s->tag, "grpc_server_request_call failed: %d", err);
		call_free(c);
	}
}

static const struct rpc_method *find_method(const struct rpc_server *s, grpc_slice name)
{
	size_t len = GRPC_SLICE_LENGTH(name);

	for (size_t i = 0; i < s->n_methods; i++)
		if (strlen(s->methods[i].name) == len &&
		    memcmp(s->methods[i].name, GRPC_SLICE_START_PTR(name), len) == 0)
			return &s->methods[i];
	return NULL;
}

static void log_bad_call(struct rpc_call *c, const char *why)
{
	char *peer = grpc_call_get_peer(c->call);
	int len = (int)MIN(GRPC_SLICE_LENGTH(c->details.method), 200u);

	log_rl(LOG_LVL_WARN, c->srv->tag, "%.*s from %s: %s", len,
	       (const char *)GRPC_SLICE_START_PTR(c->details.method),
	       peer ? peer : "?", why);
	gpr_free(peer);
}

static void free_response(const struct rpc_method *m, void *ctx, ProtobufCMessage *resp)
{
	if (!resp)
		return;
	if (m->free_response)
		m->free_response(ctx, resp);
	else
		protobuf_c_message_free_unpacked(resp, NULL);
}

/* Decodes, runs the handler, encodes: fills c->reply on success. */
static grpc_status_code dispatch(struct rpc_call *c, char *msg, size_t msglen)
{
	struct rpc_server *s = c->srv;
	const struct rpc_method *m = find_method(s, c->details.method);
	ProtobufCMessage *req, *resp = NULL;
	grpc_status_code code;

	if (!m) {
		snprintf(msg, msglen, "unknown method %.*s",
			 (int)MIN(GRPC_SLICE_LENGTH(c->details.method), 200u),
			 (const char *)GRPC_SLICE_START_PTR(c->details.method));
		log_bad_call(c, "unknown method");
		return GRPC_STATUS_UNIMPLEMENTED;
	}
	if (!c->request) {
		snprintf(msg, msglen, "%s: no request message", m->name);
		log_bad_call(c, "no request message");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	req = rpc_decode(c->request, m->request);
	if (!req) {
		snprintf(msg, msglen, "%s: request is not a valid %s", m->name,
			 m->request->name);
		log_bad_call(c, "undecodable request");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	code = m->handler(s->ctx, req, &resp, msg, msglen);
	protobuf_c_message_free_unpacked(req, NULL);
	if (code == GRPC_STATUS_OK && !resp) {
		snprintf(msg, msglen, "%s: handler produced no response", m->name);
		log_err(s->tag, "%s", msg);
		return GRPC_STATUS_INTERNAL;
	}
	if (code == GRPC_STATUS_OK)
		c->reply = rpc_encode(resp);
	free_response(m, s->ctx, resp);
	if (code != GRPC_STATUS_OK && !msg[0])
		snprintf(msg, msglen, "%s", rpc_status_name(code));
	log_dbg(s->tag, "%s -> %s%s%s", m->name, rpc_status_name(code),
		msg[0] ? ": " : "", msg);
	return code;
}

static void call_reply(struct rpc_call *c)
{
	char msg[512] = "";
	grpc_status_code code = dispatch(c, msg, sizeof(msg));
	grpc_op ops[4];
	size_t n = 0;

	memset(ops, 0, sizeof(ops));
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	n++;
	if (c->reply) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = c->reply;
		n++;
	}
	if (code != GRPC_STATUS_OK)
		c->status_details = grpc_slice_from_copied_string(msg);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	ops[n].data.send_status_from_server.status_details =
		code != GRPC_STATUS_OK ? &c->status_details : NULL;
	n++;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n].data.recv_close_on_server.cancelled = &c->client_cancelled;
	n++;
	c->state = CALL_REPLY;
	if (start_batch(c, ops, n) != GRPC_CALL_OK)
		call_free(c);
}

static void call_advance(struct rpc_call *c, bool ok)
{
	grpc_op op;

	switch (c->state) {
	case CALL_WAIT_NEW:
		if (!ok) {          /* server shutting down */
			call_free(c);
			return;
		}
		request_call(c->srv);
		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_RECV_MESSAGE;
		op.data.recv_message.recv_message = &c->request;
		c->state = CALL_READ;
		if (start_batch(c, &op, 1) != GRPC_CALL_OK)
			call_free(c);
		return;
	case CALL_READ:
		if (!ok) {          /* client went away or call cancelled */
			call_free(c);
			return;
		}
		call_reply(c);
		return;
	case CALL_REPLY:
		call_free(c);
		return;
	}
}

static void *worker(void *arg)
{
	struct rpc_server *s = arg;

	for (;;) {
		grpc_event ev = grpc_completion_queue_next(
			s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == &s->shutdown_tag) {
			pthread_mutex_lock(&s->lock);
			s->shutdown_done = true;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			continue;
		}
		call_advance(ev.tag, ev.success != 0);
	}
	return NULL;
}

/* ---- listeners ----------------------------------------------------- */

/* The core unlinks whatever sits at a unix socket path before binding, so
 * without this lock a second daemon would silently take over the socket of
 * a live one. The lock file is never unlinked: doing so would let two
 * processes hold locks on two different inodes of the same name. */
static int take_socket_lock(struct rpc_server *s, const char *path)
{
	char lock_path[PATH_MAX];

	if ((size_t)snprintf(lock_path, sizeof(lock_path), "%s.lock", path) >=
	    sizeof(lock_path))
		return -ENAMETOOLONG;
	s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		int err = errno;

		log_err(s->tag, "cannot open lock file %s: %s", lock_path, strerror(err));
		return -err;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		if (err == EWOULDBLOCK) {
			log_err(s->tag, "socket %s is in use by another running server "
				"(lock %s is held)", path, lock_path);
			return -EADDRINUSE;
		}
		log_err(s->tag, "cannot lock %s: %s", lock_path, strerror(err));
		return -err;
	}
	return 0;
}

static int add_unix_listener(struct rpc_server *s, const char *path)
{
	struct sockaddr_un sun;
	grpc_server_credentials *creds;
	char addr[sizeof(sun.sun_path) + 8];
	int ret;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_err(s->tag, "unix socket path %s is longer than %zu bytes", path,
			sizeof(sun.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	ret = take_socket_lock(s, path);
	if (ret)
		return ret;
	snprintf(addr, sizeof(addr), "unix:%s", path);
	creds = grpc_insecure_server_credentials_create();
	ret = grpc_server_add_http2_port(s->server, addr, creds);
	grpc_server_credentials_release(creds);
	if (!ret) {
		log_err(s->tag, "cannot listen on %s (see the gRPC log above)", addr);
		return -EADDRNOTAVAIL;
	}
	s->unix_path = strdup(path);
	return s->unix_path ? 0 : -ENOMEM;
}

static int add_tcp_listener(struct rpc_server *s, const char *addr,
			    const struct rpc_tls *tls)
{
	grpc_ssl_pem_key_cert_pair pair;
	grpc_server_credentials *creds;
	struct rpc_pem pem;
	int ret;

	ret = rpc_pem_load(&pem, tls, s->tag);
	if (ret)
		return ret;
	pair.private_key = pem.key;
	pair.cert_chain = pem.cert;
	creds = grpc_ssl_server_credentials_create_ex(
		pem.ca, &pair, 1,
		GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
	rpc_pem_free(&pem);
	if (!creds) {
		log_err(s->tag, "cannot create TLS server credentials");
		return -EINVAL;
	}
	s->tcp_port = grpc_server_add_http2_port(s->server, addr, creds);
	grpc_server_credentials_release(creds);
	if (!s->tcp_port) {
		log_err(s->tag, "cannot listen on %s", addr);
		return -EADDRNOTAVAIL;
	}
	return 0;
}

/* ---- start / stop -------------------------------------------------- */

static int validate_config(const struct rpc_server_config *cfg, const char *tag)
{
	if (!cfg->unix_path && !cfg->tcp_listen) {
		log_err(tag, "no listener configured");
		return -EINVAL;
	}
	if (cfg->tcp_listen &&
	    (!cfg->tls || !cfg->tls->cert || !cfg->tls->key || !cfg->tls->ca)) {
		log_err(tag, "TCP listener %s requires mutual TLS: a certificate, "
			"a key and a client CA", cfg->tcp_listen);
		return -EINVAL;
	}
	return 0;
}

/* Waits for the core's shutdown tag; false on timeout. */
static bool wait_shutdown(struct rpc_server *s, unsigned ms)
{
	struct timespec ts;
	bool done;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	while (!s->shutdown_done)
		if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT)
			break;
	done = s->shutdown_done;
	pthread_mutex_unlock(&s->lock);
	return done;
}

/* Without worker threads (start-up failed before they ran): drain the queue
 * here until the shutdown tag shows up. */
static void drain_until_shutdown(struct rpc_server *s)
{
	while (!s->shutdown_done) {
		grpc_event ev = grpc_completion_queue_next(
			s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

		if (ev.type == GRPC_OP_COMPLETE && ev.tag == &s->shutdown_tag)
			s->shutdown_done = true;
		else if (ev.type == GRPC_OP_COMPLETE)
			call_free(ev.tag);
		else if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
	}
}

static void server_destroy(struct rpc_server *s, bool threads_running)
{
	if (s->server) {
		grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
		if (threads_running) {
			if (!wait_shutdown(s, s->grace_ms)) {
				log_info(s->tag, "cancelling calls still running after %u ms",
					 s->grace_ms);
				grpc_server_cancel_all_calls(s->server);
				/* a handler still running cannot be interrupted:
				 * its call ends when it returns */
				while (!wait_shutdown(s, 1000))
					;
			}
		} else {
			grpc_server_cancel_all_calls(s->server);
			drain_until_shutdown(s);
		}
		pthread_mutex_lock(&s->lock);
		s->closing = true;
		pthread_mutex_unlock(&s->lock);
		grpc_server_destroy(s->server);
	}
	if (s->cq) {
		grpc_completion_queue_shutdown(s->cq);
		if (threads_running) {
			for (unsigned i = 0; i < s->n_threads; i++)
				pthread_join(s->threads[i], NULL);
		} else {
			while (grpc_completion_queue_next(s->cq,
				gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
			       GRPC_QUEUE_SHUTDOWN)
				;
		}
		grpc_completion_queue_destroy(s->cq);
	}
	if (s->unix_path && unlink(s->unix_path) < 0 && errno != ENOENT)
		log_warn(s->tag, "cannot remove %s: %s", s->unix_path, strerror(errno));
	if (s->lock_fd >= 0)
		close(s->lock_fd);  /* releases the flock */
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->unix_path);
	free(s->threads);
	free(s);
}

static int listen_all(struct rpc_server *s, const struct rpc_server_config *cfg)
{
	int ret;

	if (cfg->tcp_listen) {
		ret = add_tcp_listener(s, cfg->tcp_listen, cfg->tls);
		if (ret)
			return ret;
	}
	if (cfg->unix_path) {
		ret = add_unix_listener(s, cfg->unix_path);
		if (ret)
			return ret;
	}
	/* The core binds (and listens) in add_http2_port with the process
	 * umask: tighten the mode before the server starts, so no connection
	 * is served on a socket that is more open than 0600. */
	if (s->unix_path && chmod(s->unix_path, 0600) < 0) {
		ret = -errno;
		log_err(s->tag, "cannot chmod 0600 %s: %s", s->unix_path, strerror(-ret));
		return ret;
	}
	grpc_server_start(s->server);
	return 0;
}

static int start_threads(struct rpc_server *s)
{
	for (unsigned i = 0; i < s->n_threads; i++) {
		int err = pthread_create(&s->threads[i], NULL, worker, s);

		if (err) {
			log_err(s->tag, "cannot start thread: %s", strerror(err));
			/* the ones already running are joined by server_destroy */
			s->n_threads = i;
			return -err;
		}
	}
	return 0;
}

int rpc_server_start(const struct rpc_server_config *cfg,
		     const struct rpc_method *methods, size_t n_methods,
		     void *ctx, struct rpc_server **out)
{
	const char *tag = cfg->tag ? cfg->tag : "rpc";
	struct rpc_server *s;
	int ret;

	ret = validate_config(cfg, tag);
	if (ret)
		return ret;
	rpc_init();
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->tag = tag;
	s->methods = methods;
	s->n_methods = n_methods;
	s->ctx = ctx;
	s->lock_fd = -1;
	s->n_threads = cfg->threads ? cfg->threads : 2;
	s->grace_ms = cfg->grace_ms ? cfg->grace_ms : 1000;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->threads = calloc(s->n_threads, sizeof(*s->threads));
	s->cq = grpc_completion_queue_create_for_next(NULL);
	s->server = grpc_server_create(NULL, NULL);
	if (!s->threads || !s->cq || !s->server) {
		server_destroy(s, false);
		return -ENOMEM;
	}
	grpc_server_register_completion_queue(s->server, s->cq, NULL);
	ret = listen_all(s, cfg);
	if (ret) {
		server_destroy(s, false);
		return ret;
	}
	for (unsigned i = 0; i < s->n_threads; i++)
		request_call(s);
	ret = start_threads(s);
	if (ret) {
		server_destroy(s, s->n_threads > 0);
		return ret;
	}
	if (s->unix_path)
		log_info(tag, "serving unix:%s", s->unix_path);
	if (cfg->tcp_listen)
		log_info(tag, "serving %s (mutual TLS), port %d", cfg->tcp_listen,
			 s->tcp_port);
	*out = s;
	return 0;
}

int rpc_server_tcp_port(const struct rpc_server *s)
{
	return s->tcp_port;
}

void rpc_server_stop(struct rpc_server *s)
{
	const char *tag;
	uint64_t start;

	if (!s)
		return;
	tag = s->tag;
	start = now_ns();
	server_destroy(s, true);
	log_dbg(tag, "stopped in %" PRIu64 " ms", (now_ns() - start) / 1000000);
}
