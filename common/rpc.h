/* A small unary gRPC server and client over the gRPC C core and
 * protobuf-c, shared by the daemon's control API, urbdctl and urbd-csi.
 *
 * Server: a table of methods, each { full method name, request descriptor,
 * handler }. Calls run on a few threads that all wait on one completion
 * queue; each call is a tiny state machine (wait for call -> read request ->
 * send reply) whose context is the completion tag. Unknown methods get
 * UNIMPLEMENTED, undecodable requests INVALID_ARGUMENT, without reaching a
 * handler. The unix listener is guarded by "<path>.lock" (flock) so a second
 * server fails instead of silently stealing the socket, and is chmod 0600.
 * TCP listeners always use mutual TLS.
 *
 * Client: one channel per rpc_client, one completion queue per call, so
 * rpc_call is thread-safe. Fail-fast: a daemon that is not running gives
 * UNAVAILABLE right away instead of waiting out the deadline.
 */
#ifndef URBD_RPC_H
#define URBD_RPC_H

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* Handlers return a status. On GRPC_STATUS_OK they set *resp to a message
 * they allocated; otherwise they write a one-line reason into errmsg (sent
 * to the client as the status message). A *resp set by a failing handler
 * is freed (free_response) and not sent, so a handler may attach its
 * response first and fail half-way through filling it. */
typedef grpc_status_code (*rpc_handler_fn)(void *ctx, const ProtobufCMessage *req,
					   ProtobufCMessage **resp,
					   char *errmsg, size_t errlen);
/* Frees a response after it has been serialised. */
typedef void (*rpc_free_fn)(void *ctx, ProtobufCMessage *resp);

struct rpc_method {
	const char *name;                           /* "/urbd.v1.Control/CreateVolume" */
	const ProtobufCMessageDescriptor *request;  /* decoded before the handler runs */
	rpc_handler_fn handler;
	/* NULL: protobuf_c_message_free_unpacked(resp, NULL), i.e. the handler
	 * built the response from malloc'ed memory only (strings included,
	 * or left at their protobuf_c_empty_string default). */
	rpc_free_fn free_response;
};

/* TLS material as PEM file paths. Server: cert/key are the server's, ca is
 * what client certificates must chain to. Client: cert/key are the client's,
 * ca what the server certificate must chain to. */
struct rpc_tls {
	const char *cert;
	const char *key;
	const char *ca;
	/* client only: name to check the server certificate against instead
	 * of the target's host (e.g. when dialling by IP); NULL for default */
	const char *server_name;
};

struct rpc_server_config {
	const char *tag;          /* log tag, e.g. "control"; NULL = "rpc" */
	const char *unix_path;    /* unix socket path or NULL */
	const char *tcp_listen;   /* "0.0.0.0:7700", "127.0.0.1:0" or NULL */
	const struct rpc_tls *tls; /* required with tcp_listen (mutual TLS) */
	unsigned threads;         /* completion-queue threads; 0 = 2 */
	unsigned grace_ms;        /* stop: wait this long for calls to end before
				   * cancelling them; 0 = 1000 */
};

struct rpc_server;
struct rpc_client;

/* Idempotent; rpc_server_start/rpc_client_new call it. */
void rpc_init(void);
/* Once, at process exit, after every server and client is gone. */
void rpc_cleanup(void);

/* 0 or -errno, with the reason logged: -EADDRINUSE when another live server
 * holds the unix socket's lock, -EINVAL for a bad config or TLS material,
 * -ENAMETOOLONG for a unix path that does not fit sockaddr_un. ctx is
 * passed to every handler. methods must outlive the server. */
int rpc_server_start(const struct rpc_server_config *cfg,
		     const struct rpc_method *methods, size_t n_methods,
		     void *ctx, struct rpc_server **out);
/* Port the TCP listener is bound to (useful with ":0"), 0 if none. */
int rpc_server_tcp_port(const struct rpc_server *s);
/* Stops accepting, lets running calls finish for grace_ms, cancels the
 * rest, joins the threads, removes the socket and releases the lock. */
void rpc_server_stop(struct rpc_server *s);

/* target: "unix:/path", "unix:relative/path" or "host:port". tls NULL for
 * an insecure channel (meant for unix sockets); with tls, all of cert, key
 * and ca are required (mutual TLS). NULL with errno set on error. */
struct rpc_client *rpc_client_new(const char *target, const struct rpc_tls *tls);
void rpc_client_free(struct rpc_client *c);
const char *rpc_client_target(const struct rpc_client *c);

/* One unary call. Returns the call's status; on GRPC_STATUS_OK *resp is the
 * decoded response (free with protobuf_c_message_free_unpacked(*resp, NULL)),
 * otherwise *resp is NULL and errmsg holds the server's status message or a
 * local reason. timeout_ms 0 means 10 s. */
grpc_status_code rpc_call(struct rpc_client *c, const char *method,
			  const ProtobufCMessage *req,
			  const ProtobufCMessageDescriptor *resp_desc,
			  ProtobufCMessage **resp, unsigned timeout_ms,
			  char *errmsg, size_t errlen);

/* Default -errno -> status mapping for handlers:
 * EINVAL->INVALID_ARGUMENT, EEXIST->ALREADY_EXISTS, ENOENT->NOT_FOUND,
 * ENOSPC->RESOURCE_EXHAUSTED, EBUSY->FAILED_PRECONDITION,
 * ENOSYS/EOPNOTSUPP->UNIMPLEMENTED, ETIMEDOUT->DEADLINE_EXCEEDED,
 * EPERM/EACCES->PERMISSION_DENIED, anything else->INTERNAL. */
grpc_status_code rpc_status_from_errno(int neg_errno);
/* "OK", "NOT_FOUND", ... */
const char *rpc_status_name(grpc_status_code code);

#endif
