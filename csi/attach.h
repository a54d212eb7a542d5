/* csi/attach.h: attach a remote urbd volume as a local block device on this
 * node (the CSI node plugin's NodeStage, and the urbd-attach tool).
 *
 * NVMe/TCP through libnvme (the kernel's nvme-tcp initiator does the I/O).
 * Every call is idempotent: connecting an NQN this host is already
 * connected to returns its device; disconnecting one it is not connected to
 * succeeds. Returns 0 or -errno; errors are logged once, where found.
 *
 * NBD (attach_nbd_*): not implemented yet; the functions return -ENOSYS.
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

/* NBD over the kernel's netlink interface: not implemented (-ENOSYS). */
int attach_nbd_connect(const char *host, const char *port, const char *export_name, char *dev,
		       size_t devlen);
int attach_nbd_disconnect(const char *dev);

#endif
