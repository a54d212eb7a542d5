/* The replication listener: accepts peer connections, reads the
 * connector's FEATURES and HELLO (nothing else can arrive before we
 * answer), and hands the socket to the volume HELLO names, on that
 * volume's reactor. A connection that sends anything else, or not within
 * the handshake time, is closed with a log line and never reaches a
 * volume. */
#ifndef URBD_REPL_LISTENER_H
#define URBD_REPL_LISTENER_H

#include "reactor.h"
#include "repl_proto.h"

struct repl_listener;

/* Takes fd in every case (closes it when the volume is unknown) and
 * returns 0, or -ENOENT when no volume has that uuid. Called on the
 * listener's reactor. */
typedef int (*repl_route_fn)(void *ctx, int fd, const struct repl_features *f,
			     const struct repl_msg *hello, const char *peer_addr);

/* addr "host:port"; *out_port gets the bound port (for port 0) */
int repl_listener_start(struct reactor *r, const char *addr, repl_route_fn route,
			void *ctx, struct repl_listener **out, int *out_port);
void repl_listener_stop(struct repl_listener *l);

#endif
