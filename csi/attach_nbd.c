/* csi/attach_nbd.c: NBD attach over the kernel's generic-netlink "nbd"
 * family (NBD_CMD_CONNECT with a socket on which the userspace handshake,
 * NBD_OPT_GO, has already run).
 *
 * Not implemented yet: NVMe/TCP is the first attach path. These stubs keep
 * the interface in attach.h stable for the CSI node plugin.
 */
#include <errno.h>

#include "attach.h"
#include "log.h"

int attach_nbd_connect(const char *host, const char *port, const char *export_name, char *dev,
		       size_t devlen)
{
	log_err("attach", "nbd attach is not implemented (use nvme)");
	return -ENOSYS;
}

int attach_nbd_disconnect(const char *dev)
{
	log_err("attach", "nbd attach is not implemented (use nvme)");
	return -ENOSYS;
}
