/* The NVMe/TCP target frontend: one TCP listener. Queues (connections) do
 * ICReq and Connect on the accepting reactor; a queue whose Connect names
 * a volume's subsystem (nqn.2026-11.io.urbd:<volume>) moves to the reactor
 * that owns the volume and lives there. The discovery subsystem
 * (nqn.2014-08.org.nvmexpress.discovery) is served on the acceptor. */
#ifndef URBD_NVMF_SERVER_H
#define URBD_NVMF_SERVER_H

#include "nbd/nbd_handshake.h"

struct reactor;
struct nvmf_server;

/* listen: "127.0.0.1:4420" or "[::1]:4420"; ops: how volumes are found
 * (the same ops the NBD server uses) */
int nvmf_server_start(struct reactor *acceptor, const char *listen,
		      const struct nbd_export_ops *ops, void *ops_ctx,
		      struct nvmf_server **out);
/* stops accepting, closes every queue (on its reactor) and waits, bounded,
 * for them to go */
void nvmf_server_stop(struct nvmf_server *s);
int nvmf_server_port(const struct nvmf_server *s);

#endif
