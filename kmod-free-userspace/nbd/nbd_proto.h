/* NBD wire format (NetworkBlockDevice/nbd doc/proto.md), fixed newstyle.
 * Every integer on the wire is big-endian. Parsers here are pure functions
 * over (const uint8_t *, size_t): they are what the fuzzer drives. */
#ifndef URBD_NBD_PROTO_H
#define URBD_NBD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- handshake ------------------------------------------------------ */
#define NBD_MAGIC               0x4e42444d41474943ULL /* "NBDMAGIC" */
#define NBD_IHAVEOPT            0x49484156454f5054ULL /* "IHAVEOPT" */
#define NBD_OPT_REPLY_MAGIC     0x0003e889045565a9ULL

/* S: handshake flags (u16) */
#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_NO_ZEROES      (1u << 1)
/* C: client flags (u32) */
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

/* C: options */
enum nbd_opt {
	NBD_OPT_EXPORT_NAME = 1,      /* old way in: no reply, straight to transmission */
	NBD_OPT_ABORT = 2,
	NBD_OPT_LIST = 3,
	NBD_OPT_PEEK_EXPORT = 4,
	NBD_OPT_STARTTLS = 5,
	NBD_OPT_INFO = 6,
	NBD_OPT_GO = 7,
	NBD_OPT_STRUCTURED_REPLY = 8,
	NBD_OPT_LIST_META_CONTEXT = 9,
	NBD_OPT_SET_META_CONTEXT = 10,
	NBD_OPT_EXTENDED_HEADERS = 11,
};

/* S: option replies (u32); errors have bit 31 set */
#define NBD_REP_ACK             1u
#define NBD_REP_SERVER          2u
#define NBD_REP_INFO            3u
#define NBD_REP_META_CONTEXT    4u
#define NBD_REP_FLAG_ERROR      (1u << 31)
#define NBD_REP_ERR_UNSUP       (NBD_REP_FLAG_ERROR | 1u)
#define NBD_REP_ERR_POLICY      (NBD_REP_FLAG_ERROR | 2u)
#define NBD_REP_ERR_INVALID     (NBD_REP_FLAG_ERROR | 3u)
#define NBD_REP_ERR_PLATFORM    (NBD_REP_FLAG_ERROR | 4u)
#define NBD_REP_ERR_TLS_REQD    (NBD_REP_FLAG_ERROR | 5u)
#define NBD_REP_ERR_UNKNOWN     (NBD_REP_FLAG_ERROR | 6u)
#define NBD_REP_ERR_SHUTDOWN    (NBD_REP_FLAG_ERROR | 7u)
#define NBD_REP_ERR_TOO_BIG     (NBD_REP_FLAG_ERROR | 9u)

/* NBD_REP_INFO payload types (u16) */
#define NBD_INFO_EXPORT         0 /* u64 size, u16 transmission flags */
#define NBD_INFO_NAME           1
#define NBD_INFO_DESCRIPTION    2
#define NBD_INFO_BLOCK_SIZE     3 /* u32 minimum, preferred, maximum */

/* transmission flags (u16) */
#define NBD_FLAG_HAS_FLAGS      (1u << 0)
#define NBD_FLAG_READ_ONLY      (1u << 1)
#define NBD_FLAG_SEND_FLUSH     (1u << 2)
#define NBD_FLAG_SEND_FUA       (1u << 3)
#define NBD_FLAG_ROTATIONAL     (1u << 4)
#define NBD_FLAG_SEND_TRIM      (1u << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1u << 6)
#define NBD_FLAG_SEND_DF        (1u << 7)
#define NBD_FLAG_CAN_MULTI_CONN (1u << 8)

/* option header, C -> S: magic u64, option u32, length u32 */
#define NBD_OPT_HDR_LEN         16
/* option reply header, S -> C: magic u64, option u32, type u32, length u32 */
#define NBD_OPT_REPLY_HDR_LEN   20
/* longest option payload we accept: export name (4096) + info requests */
#define NBD_OPT_MAX_LEN         (4096 + 4 + 2 * 64)
#define NBD_NAME_MAX_WIRE       4096

/* ---- transmission --------------------------------------------------- */
#define NBD_REQUEST_MAGIC       0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC  0x67446698u
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efu

/* request: magic u32, flags u16, type u16, handle u64, offset u64, length u32 */
#define NBD_REQUEST_LEN         28
#define NBD_SIMPLE_REPLY_LEN    16 /* magic u32, error u32, handle u64 */
/* structured chunk: magic u32, flags u16, type u16, handle u64, length u32 */
#define NBD_CHUNK_HDR_LEN       20

enum nbd_cmd {
	NBD_CMD_READ = 0,
	NBD_CMD_WRITE = 1,
	NBD_CMD_DISC = 2,
	NBD_CMD_FLUSH = 3,
	NBD_CMD_TRIM = 4,
	NBD_CMD_CACHE = 5,
	NBD_CMD_WRITE_ZEROES = 6,
	NBD_CMD_BLOCK_STATUS = 7,
};

#define NBD_CMD_FLAG_FUA        (1u << 0)
#define NBD_CMD_FLAG_NO_HOLE    (1u << 1)
#define NBD_CMD_FLAG_DF         (1u << 2)
#define NBD_CMD_FLAG_REQ_ONE    (1u << 3)
#define NBD_CMD_FLAG_FAST_ZERO  (1u << 4)

#define NBD_REPLY_FLAG_DONE     (1u << 0)
#define NBD_REPLY_TYPE_NONE     0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_ERROR    ((1u << 15) | 1u)

/* error values on the wire */
#define NBD_EPERM      1
#define NBD_EIO        5
#define NBD_ENOMEM     12
#define NBD_EINVAL     22
#define NBD_ENOSPC     28
#define NBD_EOVERFLOW  75
#define NBD_ENOTSUP    95
#define NBD_ESHUTDOWN  108

/* largest READ/WRITE payload we serve (advertised as the maximum block) */
#define NBD_MAX_PAYLOAD         (32u << 20)

struct nbd_request {
	uint16_t flags;
	uint16_t type;
	uint64_t handle;
	uint64_t offset;
	uint32_t length;
};

/* 0, or -EBADMSG (bad magic) / -EAGAIN (need more bytes) */
int nbd_parse_request(const uint8_t *buf, size_t len, struct nbd_request *req);

/* Checks a request against the export; returns 0 or the NBD error to
 * reply with, and a static reason for the log. `size` is the export's. */
uint32_t nbd_validate_request(const struct nbd_request *req, uint64_t size,
			      const char **why);

struct nbd_opt_hdr {
	uint32_t option;
	uint32_t length;
};
int nbd_parse_opt_hdr(const uint8_t *buf, size_t len, struct nbd_opt_hdr *h);

/* Parses an NBD_OPT_INFO/GO payload: u32 name length, name, u16 count,
 * count x u16 info requests. 0 or -EINVAL. */
struct nbd_go_req {
	char name[NBD_NAME_MAX_WIRE + 1];
	uint16_t n_info;
	uint16_t info[64];
};
int nbd_parse_go(const uint8_t *buf, size_t len, struct nbd_go_req *go);

/* errno (positive) -> the wire's error value */
uint32_t nbd_errno_to_wire(int err);
const char *nbd_cmd_name(uint16_t type);
const char *nbd_opt_name(uint32_t opt);

/* encoders; return bytes written */
size_t nbd_put_simple_reply(uint8_t *out, uint32_t error, uint64_t handle);
size_t nbd_put_chunk_hdr(uint8_t *out, uint16_t flags, uint16_t type,
			 uint64_t handle, uint32_t length);
size_t nbd_put_opt_reply_hdr(uint8_t *out, uint32_t option, uint32_t type,
			     uint32_t length);

#endif
