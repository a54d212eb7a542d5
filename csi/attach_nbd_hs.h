/* csi/attach_nbd_hs.h: the client half of the NBD handshake (fixed
 * newstyle, NBD_OPT_GO; NetworkBlockDevice/nbd doc/proto.md), run in
 * userspace so the socket can be handed to the kernel already in the
 * transmission phase. The wire constants are the server's
 * (kmod-free-userspace/nbd/nbd_proto.h). Private to csi/attach_nbd*.c.
 *
 * Parsers and encoders are pure functions over (const uint8_t *, size_t);
 * attach_nbd_handshake() drives them over a blocking socket, every read
 * and write bounded by one deadline.
 */
#ifndef URBD_CSI_ATTACH_NBD_HS_H
#define URBD_CSI_ATTACH_NBD_HS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "attach.h"

/* "NBDMAGIC", "IHAVEOPT", u16 handshake flags */
#define ATTACH_NBD_GREETING_LEN 18
/* the longest option reply payload read: NBD_INFO_NAME and _DESCRIPTION
 * (sent even unasked) hold at most 4096 bytes of text, error strings are
 * short; a server announcing more is not trusted */
#define ATTACH_NBD_REPLY_MAX 8192
/* option replies accepted for one NBD_OPT_GO before giving up on a
 * server that never sends NBD_REP_ACK */
#define ATTACH_NBD_REPLIES_MAX 64

/* what NBD_OPT_GO told us about the export */
struct attach_nbd_export {
	uint16_t hs_flags;  /* server handshake flags (NBD_FLAG_FIXED_NEWSTYLE, ...) */
	bool have_export;   /* NBD_INFO_EXPORT seen: size and flags are valid */
	uint64_t size;      /* bytes */
	uint16_t flags;     /* transmission flags (NBD_FLAG_HAS_FLAGS, ...) */
	bool have_block_size; /* NBD_INFO_BLOCK_SIZE seen */
	uint32_t min_block, pref_block, max_block;
};

/* an option reply header: magic u64, option u32, type u32, length u32 */
struct attach_nbd_opt_reply {
	uint32_t option;
	uint32_t type;   /* NBD_REP_* */
	uint32_t length; /* payload bytes that follow */
};

/* monotonic milliseconds: what deadlines are expressed in */
uint64_t attach_nbd_now_ms(void);

/* The server's greeting. -EAGAIN short, -EPROTO wrong magic or not fixed
 * newstyle (oldstyle servers cannot do NBD_OPT_GO). */
int attach_nbd_parse_greeting(const uint8_t *buf, size_t len, uint16_t *hs_flags);

/* NBD_OPT_GO for export_name asking for NBD_INFO_BLOCK_SIZE, header
 * included. Bytes written, or -EMSGSIZE (cap too small or the name
 * longer than the protocol's 4096 bytes). */
ssize_t attach_nbd_put_go(uint8_t *out, size_t cap, const char *export_name);

/* An option reply header for `option`. -EAGAIN short; -EBADMSG wrong
 * magic or a reply to another option; -EMSGSIZE length over
 * ATTACH_NBD_REPLY_MAX (r is still filled, for the log). */
int attach_nbd_parse_opt_reply(const uint8_t *buf, size_t len, uint32_t option,
			       struct attach_nbd_opt_reply *r);

/* One NBD_REP_INFO payload into e. Unknown info types are ignored (the
 * spec lets servers send more than asked); a known type with the wrong
 * length or block sizes that break the spec's rules is -EPROTO. */
int attach_nbd_parse_info(const uint8_t *buf, size_t len, struct attach_nbd_export *e);

/* NBD_REP_ERR_* -> negative errno (UNKNOWN: -ENOENT, POLICY: -EACCES, ...) */
int attach_nbd_rep_errno(uint32_t type);
const char *attach_nbd_rep_name(uint32_t type);

/* NBD_CMD_DISC: what a client sends before closing in transmission */
size_t attach_nbd_put_disc(uint8_t *out, size_t cap);

/* A connected stream socket to t (TCP with TCP_NODELAY and keepalive, or
 * unix), blocking, by deadline. fd or -errno (logged). */
int attach_nbd_dial(const struct attach_nbd_target *t, uint64_t deadline_ms);

/* The handshake on fd up to the end of NBD_OPT_GO. 0 with e filled (size
 * and flags always, block sizes when the server sent them), or -errno,
 * logged with peer and export: -ENOENT no such export, -EPROTO/-EBADMSG/
 * -EMSGSIZE a reply we cannot accept, -ETIMEDOUT, -ECONNRESET. */
int attach_nbd_handshake(int fd, const char *peer, const char *export_name,
			 uint64_t deadline_ms, struct attach_nbd_export *e);

/* NBD_OPT_ABORT: the goodbye while still haggling options */
size_t attach_nbd_put_abort(uint8_t *out, size_t cap);

/* Best effort goodbye, then close, so the server logs a clean end: NBD_CMD_DISC
 * for a negotiated socket the kernel did not take (transmission), else
 * NBD_OPT_ABORT (a refused or broken handshake). fd < 0 is ignored. */
void attach_nbd_abandon(int fd, bool transmission);

#endif
