/* What main.c needs of the volume manager beyond the control-plane API. */
#ifndef URBD_VOLMGR_INTERNAL_H
#define URBD_VOLMGR_INTERNAL_H

#include "nbd/nbd_handshake.h"
#include "volmgr.h"

struct store;
struct reactor;
struct nbd_server;

struct volmgr_config {
	const char *node_id;
	const char *zone;
	const char *nbd_listen;
	const char *nbd_unix;
	const struct repl_secret *repl_secret; /* NULL: replication off */
};

int volmgr_new(struct store *store, struct reactor **reactors, unsigned n,
	       const struct volmgr_config *cfg, struct volmgr **out);
/* the frontend addresses as actually bound (a port 0 becomes the real
 * port); the strings are copied */
void volmgr_set_frontends(struct volmgr *m, const char *nbd_listen,
			  const char *nbd_unix);
/* opens every volume in the store; a volume with bad metadata is listed as
 * FAILED and the others still come up. Returns the number online. */
int volmgr_load(struct volmgr *m);
/* volumes in the store (online or failed) */
size_t volmgr_count(struct volmgr *m);
/* disconnects every frontend and closes the volumes */
void volmgr_shutdown(struct volmgr *m);
void volmgr_free(struct volmgr *m);

extern const struct nbd_export_ops volmgr_nbd_ops;

/* the replication listener's router (repl_route_fn): ctx is the volmgr */
struct repl_features;
struct repl_msg;
int volmgr_repl_route(void *ctx, int fd, const struct repl_features *f,
		      const struct repl_msg *hello, const char *peer_addr);

#endif
