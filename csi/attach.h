/* csi/attach.h: attach a remote urbd volume as a local block device on this
 * node (the CSI node plugin's NodeStage, and the urbd-attach tool).
 *
 * NVMe/TCP (attach_nvme_*) through libnvme (the kernel's nvme-tcp
 * initiator does the I/O). Every call is idempotent: connecting an NQN this
 * host is already connected to returns its device; disconnecting one it is
 * not connected to succeeds. Returns 0 or -errno; errors are logged once,
 * where found.
 *
 * NBD through the kernel's generic-netlink "nbd" family: this process runs
 * the NBD handshake (fixed newstyle, NBD_OPT_GO) on its own sockets, then
 * hands them to the kernel with NBD_CMD_CONNECT, tagged with a backend
 * identifier ("urbd:<host>:<port>/<export>") that the kernel shows in
 * /sys/block/nbdN/backend. That file is how a device is found again, so
 * NBD calls are idempotent the same way: connecting a backend that is
 * already attached returns its /dev/nbdN; disconnecting one that is not
 * attached succeeds.
 */
#ifndef URBD_CSI_ATTACH_H
#define URBD_CSI_ATTACH_H

#include <stddef.h>

/* Where libnvme and nvme-cli keep the host's identity (persisted: a target
 * that authorizes hosts by NQN must see the same one after a reboot). */
#define ATTACH_NVME_CONF_DIR "/etc/nvme"
#define ATTACH_NQN_MAX 224 /* NVMe base spec: an NQN is at most 223 bytes */
#define ATTACH_HOSTID_LEN 37 /* a UUID in text form + NUL */

struct attach_nvme_target {
	const char *transport; /* "tcp" (NULL: "tcp") */
	const char *traddr;    /* target address, e.g. "10.0.2.2" */
	const char *trsvcid;   /* port, e.g. "4420" */
	const char *subsysnqn; /* nqn.2026-11.io.urbd:<volume> */
	int ctrl_loss_tmo;     /* seconds the kernel keeps reconnecting; 0: default (600), -1 forever */
	int keep_alive_tmo;    /* seconds; 0: the kernel's default */
};

/* The host NQN and host ID from DIR/hostnqn and DIR/hostid; whichever is
 * missing or empty is created (hostid a random UUID, hostnqn
 * "nqn.2014-08.org.nvmexpress:uuid:<hostid>"; a missing hostid is taken
 * from an existing uuid-form hostnqn so the two agree) and written
 * atomically. DIR is created if missing. */
int attach_nvme_host_identity(const char *dir, char *hostnqn, size_t nqnlen, char *hostid,
			      size_t idlen);

/* Checks a target before anything touches the kernel: -EINVAL (logged)
 * when a field is missing, too long or not what NVMe/TCP accepts. */
int attach_nvme_target_validate(const struct attach_nvme_target *t);

/* Connects (or finds the existing connection) and waits up to timeout_ms
 * for the namespace's block device; dev gets "/dev/nvmeXnY".
 * -ETIMEDOUT when the device did not appear in time. */
int attach_nvme_connect(const struct attach_nvme_target *t, char *dev, size_t devlen,
			int timeout_ms);
/* The block device of a live connection to subsysnqn; -ENOENT if none. */
int attach_nvme_find(const char *subsysnqn, char *dev, size_t devlen);
/* Disconnects every controller of subsysnqn; 0 when there was none. */
int attach_nvme_disconnect(const char *subsysnqn);

/* ---- NBD ------------------------------------------------------------- */

#define ATTACH_NBD_DEFAULT_PORT "10809"
#define ATTACH_NBD_BACKEND_MAX 512   /* sysfs shows it in one page; ours are short */
#define ATTACH_NBD_MAX_CONNECTIONS 16
#define ATTACH_NBD_DEFAULT_TIMEOUT_S 30
/* serializes connects on this host: the kernel does not refuse a second
 * device with the same backend identifier, so find-then-connect must be
 * atomic between attach processes */
#define ATTACH_NBD_LOCK_PATH "/run/urbd-attach-nbd.lock"

struct attach_nbd_target {
	const char *host;        /* server name or address, e.g. "10.0.2.2" */
	const char *port;        /* TCP port (NULL: 10809) */
	const char *unix_path;   /* instead of host/port: a unix socket */
	const char *export_name; /* the urbd volume */
	int connections;         /* sockets given to the kernel (0: 1); more than one
				  * only when the server sets NBD_FLAG_CAN_MULTI_CONN */
	int timeout_s;           /* per-request timeout (0: 30; -1: none, the kernel
				  * then never fails a request in flight) */
	int dead_conn_timeout_s; /* how long the kernel waits for a reconfigure once
				  * every connection is dead (0: fail I/O at once) */
	unsigned block_size;     /* logical block size, 512..4096 (0: the server's
				  * minimum, at least 512) */
};

/* -EINVAL (logged) when a field is missing, malformed or out of range. */
int attach_nbd_target_validate(const struct attach_nbd_target *t);

/* The backend identifier of t: "urbd:<host>:<port>/<export>" (an IPv6
 * host in brackets) or "urbd:unix:<path>/<export>". -ENAMETOOLONG when it
 * does not fit in len or ATTACH_NBD_BACKEND_MAX. Pure: no validation. */
int attach_nbd_backend_id(const struct attach_nbd_target *t, char *buf, size_t len);

/* Handshakes, connects the kernel device by netlink and waits until
 * /dev/nbdN has its size; dev gets "/dev/nbdN". The whole call is bounded
 * by timeout_ms (<= 0: 10 s). An already attached backend is returned as
 * it is, whatever t's tuning says. Errors: -ENOENT the server has no such
 * export; -ENODEV the nbd module is not loaded; -EPERM not root;
 * -EINVAL the export's size is 0 or not a multiple of the block size;
 * -ETIMEDOUT. */
int attach_nbd_connect(const struct attach_nbd_target *t, char *dev, size_t devlen,
		       int timeout_ms);
/* The device whose /sys/block/nbdN/backend is backend_id; -ENOENT if none. */
int attach_nbd_find(const char *backend_id, char *dev, size_t devlen);
/* Disconnects dev ("/dev/nbdN" or "nbdN") and waits up to timeout_ms for
 * the kernel to drop it (size 0, no backend); 0 when it was not connected.
 * -EBUSY when the device is still held open (mounted) after timeout_ms. */
int attach_nbd_disconnect(const char *dev, int timeout_ms);
/* Disconnects every device attached to backend_id; 0 when there was none. */
int attach_nbd_disconnect_backend(const char *backend_id, int timeout_ms);

#endif
