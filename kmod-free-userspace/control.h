/* The daemon's control API server (urbd.v1.Control over gRPC): a unix
 * socket (0600) always, TCP with mutual TLS when configured. Requests run
 * on the control server's own threads and reach volumes only through the
 * volume manager (volmgr.h). */
#ifndef URBD_CONTROL_H
#define URBD_CONTROL_H

struct volmgr;
struct control_server;

struct control_config {
	const char *unix_path;  /* required: e.g. "./var/urbd/control.sock" */
	const char *tcp_listen; /* "0.0.0.0:7700" or NULL for none */
	const char *tls_cert;   /* PEM files; all three required with tcp_listen */
	const char *tls_key;
	const char *tls_ca;     /* CA that client certificates must chain to */
	unsigned threads;       /* completion-queue threads; 0 = 2 */
};

/* 0 or -errno; logs the reason (socket in use by a live daemon, bad certs…) */
int control_start(struct volmgr *m, const struct control_config *cfg,
		  struct control_server **out);
/* cancels outstanding calls after a short grace period, joins threads */
void control_stop(struct control_server *s);

#endif
