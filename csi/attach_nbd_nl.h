/* csi/attach_nbd_nl.h: the kernel's generic-netlink "nbd" family
 * (include/uapi/linux/nbd-netlink.h) over a raw NETLINK_GENERIC socket:
 * resolve the family id (CTRL_CMD_GETFAMILY), NBD_CMD_CONNECT,
 * NBD_CMD_DISCONNECT. Private to csi/attach_nbd*.c.
 *
 * Message builders and the reply parser are pure functions over byte
 * buffers (unit-tested without a kernel); attach_nbd_nl_call() is the one
 * place that talks to the socket. Builders return the message length or
 * -EMSGSIZE when cap is too small.
 */
#ifndef URBD_CSI_ATTACH_NBD_NL_H
#define URBD_CSI_ATTACH_NBD_NL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* large enough for CTRL_CMD_GETFAMILY's reply (ops and groups) */
#define ATTACH_NBD_NL_BUF 16384

/* what NBD_CMD_CONNECT carries */
struct attach_nbd_nl_connect {
	uint64_t size_bytes;
	uint64_t block_size;
	uint64_t server_flags;   /* the transmission flags from NBD_INFO_EXPORT */
	int timeout_s;           /* NBD_ATTR_TIMEOUT; < 0: left out */
	int dead_conn_timeout_s; /* NBD_ATTR_DEAD_CONN_TIMEOUT; <= 0: left out */
	const int *fds;          /* negotiated sockets, one NBD_SOCK_ITEM each */
	int n_fds;
	const char *backend_id;  /* NBD_ATTR_BACKEND_IDENTIFIER; NULL: left out */
};

/* what came back for one request (matched by sequence number) */
struct attach_nbd_nl_reply {
	bool done;       /* its NLMSG_ERROR (ack or error) or NLMSG_DONE arrived */
	int error;       /* 0, or the kernel's -errno */
	bool have_value; /* the attribute asked for was in a reply message */
	uint32_t value;  /* its value (u16 or u32 attribute) */
	char msg[128];   /* the kernel's extended-ack message, if any */
};

int attach_nbd_nl_put_getfamily(uint8_t *buf, size_t cap, uint32_t seq, const char *name);
int attach_nbd_nl_put_connect(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
			      const struct attach_nbd_nl_connect *c);
int attach_nbd_nl_put_disconnect(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
				 uint32_t index);

/* One datagram from the kernel: messages for other sequence numbers are
 * skipped; in generic-netlink messages for seq, attribute `attr` (u16 or
 * u32) is picked up. Accumulates into r (call with r zeroed before the
 * first datagram). 0, or -EBADMSG for a malformed datagram. */
int attach_nbd_nl_parse(const uint8_t *buf, size_t len, uint32_t seq, uint16_t attr,
			struct attach_nbd_nl_reply *r);

/* A NETLINK_GENERIC socket with extended acks on; fd or -errno (logged). */
int attach_nbd_nl_open(void);
/* Sends msg (its sequence number is seq) and reads until its ack or
 * error, by deadline. 0 with r filled (r->error is the kernel's answer:
 * the call worked, the operation may not have), or -errno when the
 * socket failed or timed out (logged). */
int attach_nbd_nl_call(int sock, const uint8_t *msg, size_t len, uint32_t seq, uint16_t attr,
		       struct attach_nbd_nl_reply *r, uint64_t deadline_ms);
/* The "nbd" family id: 0, -ENODEV when the nbd module is not loaded. */
int attach_nbd_nl_family(int sock, uint16_t *family, uint64_t deadline_ms);
/* a fresh sequence number */
uint32_t attach_nbd_nl_seq(void);

#endif
