/* The NBD frontend: listeners (TCP and unix), connections. Connections
 * negotiate on the accepting reactor and then move to the reactor that
 * owns their volume, where they live until closed. */
#ifndef URBD_NBD_SERVER_H
#define URBD_NBD_SERVER_H

#include "nbd_handshake.h"

struct reactor;
struct volume;
struct nbd_server;

struct nbd_server_config {
	const char *tcp_listen; /* "127.0.0.1:10809", "[::1]:10809" or NULL */
	const char *unix_path;  /* or NULL */
};

int nbd_server_start(struct reactor *acceptor, const struct nbd_server_config *cfg,
		     const struct nbd_export_ops *ops, void *ops_ctx,
		     struct nbd_server **out);
/* stops accepting and closes connections still negotiating; volumes'
 * connections are closed with nbd_volume_disconnect_all */
void nbd_server_stop(struct nbd_server *s);
/* the bound TCP port (useful with port 0) */
int nbd_server_port(const struct nbd_server *s);

/* On v's reactor: close every connection of v; in-flight I/O completes
 * first. Returns how many were asked to close. */
unsigned nbd_volume_disconnect_all(struct volume *v);

#endif
