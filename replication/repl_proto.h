/* The urbd peer replication protocol: every byte two urbd daemons exchange
 * on a replication connection. One header, shared by every binary that
 * speaks or inspects it (daemon, fuzzers, tests). Design notes and the
 * connection state diagram: replication/README.md.
 *
 * Framing. Every message is a 16-byte frame header followed by `length`
 * payload bytes. All integers are big-endian (network order), stored in
 * the byte-order-typed wrappers below so a raw load cannot compile.
 *
 *   0  be32 magic     REPL_MAGIC_V1 ("URB1"); the last byte is the header
 *                     version, so a future header layout gets a new magic
 *   4  be16 type      REPL_MSG_*
 *   6  be16 flags     frame flags: none defined in v1, must be zero
 *   8  be32 length    payload bytes after the header
 *   12 be32 hdr_crc   CRC32C over bytes [0, 12)
 *
 * The header CRC lets a receiver tell "the stream lost sync / a bit flipped"
 * from "the peer sent garbage" before trusting `length`. Bulk data carries
 * its own optional CRC32C (REPL_FEAT_DATA_CRC); control payloads are small
 * and rely on the TCP checksum (and on TLS once the transport has it).
 *
 * Payload = fixed body (struct repl_wire_*, size a multiple of 8 so data
 * that follows stays 8-aligned) + variable data for the few messages that
 * carry some. Each type has a [min, max] payload size in repl_proto.c's
 * table; the size is checked before any decoder runs, and every decoder
 * rejects non-zero reserved fields, unknown flags, misaligned or
 * overflowing ranges. Any violation is a protocol error: the receiver
 * sends ERROR(PROTOCOL) with the reason and closes the connection.
 *
 * Packet numbers are explicit and never reused; gaps are reserved for the
 * phase the neighbours belong to. FEATURES is the first frame on every
 * connection in both directions and its layout (and the v1 frame header
 * it travels in) never changes, so any two versions can always agree on
 * what to speak or say why they cannot. */
#ifndef URBD_REPL_PROTO_H
#define URBD_REPL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- byte-order-typed fields ------------------------------------------- */
struct be16 { uint8_t b[2]; };
struct be32 { uint8_t b[4]; };
struct be64 { uint8_t b[8]; };

static inline uint16_t be16_get(const struct be16 *v) { return (uint16_t)(v->b[0] << 8 | v->b[1]); }
static inline uint32_t be32_get(const struct be32 *v)
{
	return (uint32_t)v->b[0] << 24 | (uint32_t)v->b[1] << 16 | (uint32_t)v->b[2] << 8 | v->b[3];
}
static inline uint64_t be64_get(const struct be64 *v)
{
	return (uint64_t)be32_get((const struct be32 *)v) << 32 |
	       be32_get((const struct be32 *)(v->b + 4));
}
static inline void be16_set(struct be16 *v, uint16_t x) { v->b[0] = (uint8_t)(x >> 8); v->b[1] = (uint8_t)x; }
static inline void be32_set(struct be32 *v, uint32_t x)
{
	v->b[0] = (uint8_t)(x >> 24); v->b[1] = (uint8_t)(x >> 16);
	v->b[2] = (uint8_t)(x >> 8); v->b[3] = (uint8_t)x;
}
static inline void be64_set(struct be64 *v, uint64_t x)
{
	be32_set((struct be32 *)v, (uint32_t)(x >> 32));
	be32_set((struct be32 *)(v->b + 4), (uint32_t)x);
}

/* ---- frame header ------------------------------------------------------- */
#define REPL_MAGIC_V1     0x55524231u /* "URB1" */
#define REPL_HDR_LEN      16
#define REPL_HDR_CRC_LEN  12

struct repl_wire_hdr {
	struct be32 magic;
	struct be16 type;
	struct be16 flags;
	struct be32 length;
	struct be32 hdr_crc;
};
_Static_assert(sizeof(struct repl_wire_hdr) == REPL_HDR_LEN, "frame header is 16 bytes");

/* Protocol versions this build speaks (negotiated through FEATURES). */
#define REPL_PROTO_MIN 1
#define REPL_PROTO_MAX 1

/* ---- packet numbers ------------------------------------------------------
 * "P" = primary (the node the volume is attached on), "S" = secondary,
 * "both" = each side sends it independently. */
enum repl_msg_type {
	/* 0x0000 never valid: a zeroed buffer is not a message */
	/* -- handshake (0x0001-0x000f) -- */
	REPL_MSG_FEATURES        = 0x0001, /* both: first frame after connect; layout frozen */
	REPL_MSG_AUTH_CHALLENGE  = 0x0002, /* both: after FEATURES agree; our random nonce */
	REPL_MSG_AUTH_RESPONSE   = 0x0003, /* both: HMAC over the peer's challenge */
	REPL_MSG_AUTH_OK         = 0x0004, /* both: the peer's response verified */
	REPL_MSG_HELLO           = 0x0005, /* connector: right after FEATURES; names the
					    * volume and both ends so the acceptor can route */
	/* 0x0006-0x000f reserved for the handshake (TLS upgrade, ...) */
	/* -- state (0x0010-0x001f) -- */
	REPL_MSG_STATE           = 0x0010, /* both: after AUTH_OK, and on every role/disk change */
	REPL_MSG_BITMAP          = 0x0011, /* both: dirty-bitmap chunks. v1: a member that
					    * lost its primary uncleanly names the grains
					    * of its unconfirmed writes, after its STATE
					    * (needs REPL_FEAT_PEER_ACK; repl_peerack.c) */
	REPL_MSG_AL_EXTENTS      = 0x0012, /* a crashed primary back, after its STATE: the
					    * extents its activity log names (needs
					    * REPL_FEAT_AL_EXTENTS) */
	/* 0x0013-0x001f reserved for state/quorum (twopc, fencing) */
	/* -- replicated I/O (0x0020-0x002f) -- */
	REPL_MSG_WRITE           = 0x0020, /* P->S: an application write, in submission order */
	REPL_MSG_WRITE_ACK       = 0x0021, /* S->P: the WRITE is on S's disk (durable if FUA) */
	REPL_MSG_FLUSH           = 0x0022, /* P->S: make every acknowledged WRITE durable */
	REPL_MSG_FLUSH_ACK       = 0x0023, /* S->P: the FLUSH completed */
	REPL_MSG_TRIM            = 0x0024, /* P->S: discard a range (reads back as zeroes) */
	REPL_MSG_TRIM_ACK        = 0x0025, /* S->P */
	REPL_MSG_WRITE_ZEROES    = 0x0026, /* P->S: zero a range without data on the wire */
	REPL_MSG_WRITE_ZEROES_ACK= 0x0027, /* S->P */
	REPL_MSG_BARRIER         = 0x0028, /* P->S: epoch boundary; S acks once all earlier writes completed */
	REPL_MSG_BARRIER_ACK     = 0x0029, /* S->P: everything before the barrier is on disk */
	REPL_MSG_PEER_ACK        = 0x002a, /* P->S: which members hold which settled writes
					    * (needs REPL_FEAT_PEER_ACK; repl_peerack.c) */
	/* 0x002b-0x002f reserved for I/O (compare-and-write, ...) */
	/* -- reads and resync (0x0030-0x003f) -- */
	REPL_MSG_READ_REQ        = 0x0030, /* P->S (diskless primary) or sync target->source */
	REPL_MSG_READ_REPLY      = 0x0031, /* answer to READ_REQ: status + data */
	REPL_MSG_RESYNC_DATA     = 0x0032, /* sync source->target: a dirty region's contents */
	REPL_MSG_RESYNC_ACK      = 0x0033, /* target->source: written; source clears the bits */
	REPL_MSG_RESYNC_START    = 0x0034, /* source->target: a resync of `value` bytes begins;
					    * the target is inconsistent until RESYNC_DONE */
	REPL_MSG_RESYNC_DONE     = 0x0035, /* source->target: every dirty region sent and
					    * acked (`value` bytes); take the source's generations */
	REPL_MSG_VERIFY_REQ      = 0x0036, /* verifier->peer: the digest of a range, please
					    * (needs REPL_FEAT_VERIFY) */
	REPL_MSG_VERIFY_REPLY    = 0x0037, /* peer->verifier: status + digest of the range */
	/* 0x0038-0x003f reserved for resync/verify (checksum-based sync) */
	/* -- keepalive (0x0040-0x004f) -- */
	REPL_MSG_PING            = 0x0040, /* both: idle connection, every ping interval */
	REPL_MSG_PONG            = 0x0041, /* both: echo of PING's token */
	/* 0x0042-0x004f reserved */
	/* -- teardown (0x0050-0x005f) -- */
	REPL_MSG_ERROR           = 0x0050, /* both: protocol/auth failure; sender closes next */
	REPL_MSG_DISCONNECT      = 0x0051, /* both: orderly goodbye with a reason */
	/* 0x0052-0x005f reserved */
	REPL_MSG_TYPE_END        = 0x0052, /* one past the highest assigned number */
};

/* ---- sizes ---------------------------------------------------------------- */
#define REPL_SECTOR        512u          /* offset/length granularity on the wire */
#define REPL_MAX_DATA      (1u << 20)    /* data bytes in one WRITE/READ/RESYNC frame */
#define REPL_MAX_RANGE     0xfffffe00u   /* TRIM/WRITE_ZEROES: largest aligned u32 */
#define REPL_MAX_BITMAP    (64u * 1024)  /* bitmap bytes in one BITMAP frame */
#define REPL_MAX_ERROR_TEXT 256u
#define REPL_NONCE_LEN     32
#define REPL_MAC_LEN       32            /* HMAC-SHA256 */

/* ---- FEATURES (never changes: 32 bytes) ---------------------------------- */
#define REPL_FEAT_DATA_CRC      (1ull << 0) /* CRC32C on WRITE/READ_REPLY/RESYNC_DATA data */
#define REPL_FEAT_TRIM          (1ull << 1) /* TRIM is forwarded (else: written as zeroes) */
#define REPL_FEAT_WRITE_ZEROES  (1ull << 2) /* WRITE_ZEROES without data */
#define REPL_FEAT_BARRIER       (1ull << 3) /* BARRIER epochs (crash-consistent snapshots) */
#define REPL_FEAT_VERIFY        (1ull << 4) /* VERIFY_REQ/VERIFY_REPLY (online verify) */
#define REPL_FEAT_AL_EXTENTS    (1ull << 5) /* AL_EXTENTS after a crashed primary's STATE */
#define REPL_FEAT_PEER_ACK      (1ull << 6) /* PEER_ACK, and the unconfirmed report (BITMAP) */
#define REPL_FEAT_KNOWN         0x7full

struct repl_wire_features {
	struct be32 proto_min;
	struct be32 proto_max;
	struct be64 features;     /* REPL_FEAT_*; unknown bits are ignored, not errors */
	uint8_t reserved[16];     /* sent as zero, ignored on receipt (forward compat) */
};
_Static_assert(sizeof(struct repl_wire_features) == 32, "FEATURES layout is frozen");

/* ---- AUTH_* ---------------------------------------------------------------- */
#define REPL_AUTH_HMAC_SHA256 1

struct repl_wire_auth_challenge {
	struct be32 alg;          /* REPL_AUTH_HMAC_SHA256 */
	struct be32 node_id;      /* the sender's node id: bound into its MAC so a
				   * response cannot be reflected (repl_auth.c) */
	uint8_t nonce[REPL_NONCE_LEN]; /* fresh random bytes, never all zero */
};
_Static_assert(sizeof(struct repl_wire_auth_challenge) == 40, "auth challenge");

struct repl_wire_auth_response {
	uint8_t mac[REPL_MAC_LEN];
};
_Static_assert(sizeof(struct repl_wire_auth_response) == 32, "auth response");
/* AUTH_OK has an empty payload. */

/* ---- HELLO ------------------------------------------------------------------
 * One replication connection serves one volume between two members of its
 * replica set. The connector sends HELLO after its FEATURES; the acceptor
 * reads both (88 bytes, nothing else can be in flight yet) before it
 * answers, finds the volume by uuid, and moves the connection to the
 * volume's reactor. Member ids are the volume's replica-set slots; they
 * are also the ids bound into the AUTH MACs. */
#define REPL_MAX_NODES 8 /* member ids 0..7 */
struct repl_wire_hello {
	uint8_t volume_uuid[16];
	struct be32 from_id;      /* the connector's member id */
	struct be32 to_id;        /* the member id it means to reach */
};
_Static_assert(sizeof(struct repl_wire_hello) == 24, "hello");

/* ---- STATE --------------------------------------------------------------- */
enum repl_role {
	REPL_ROLE_UNKNOWN   = 0, /* never sent */
	REPL_ROLE_SECONDARY = 1, /* replica only, no frontend */
	REPL_ROLE_PRIMARY   = 2, /* volume attached here, accepts writes */
	REPL_ROLE_END,
};

enum repl_disk_state {
	REPL_DISK_DISKLESS     = 0, /* no local replica (tie-breaker or diskless attach) */
	REPL_DISK_ATTACHING    = 1, /* metadata being read */
	REPL_DISK_INCONSISTENT = 2, /* resync target mid-way: data not usable */
	REPL_DISK_OUTDATED     = 3, /* consistent, but known to miss writes */
	REPL_DISK_CONSISTENT   = 4, /* consistent, freshness unknown (no peer seen yet) */
	REPL_DISK_UP_TO_DATE   = 5, /* has every acknowledged write */
	REPL_DISK_END,
};

#define REPL_STATE_F_CRASHED_PRIMARY (1u << 0) /* was primary and did not demote cleanly */
#define REPL_STATE_F_DISCARD_MY_DATA (1u << 1) /* the operator chose this side's data to lose
						* in a split brain: take it as behind */
#define REPL_STATE_F_UNCONFIRMED     (1u << 2) /* lost its primary uncleanly: may hold
						* writes the others lack (or vice versa) */
#define REPL_STATE_F_LOST_TRACK      (1u << 3) /* with UNCONFIRMED: it restarted after a
						* crash while following a primary (not:
						* it lost one); that primary's bitmap for
						* it covers it */
#define REPL_STATE_F_KNOWN           0xfu

struct repl_wire_state {
	uint8_t role;             /* enum repl_role */
	uint8_t disk_state;       /* enum repl_disk_state */
	struct be16 flags;        /* REPL_STATE_F_* */
	struct be32 bm_grain;     /* bytes per dirty-bitmap bit, power of two >= 4096 */
	struct be64 size;         /* volume bytes, multiple of 512 */
	uint8_t volume_uuid[16];  /* must match the peer's or the connection is refused */
	struct be64 gen_current;  /* generation identifiers (store_format.h) */
	struct be64 gen_bitmap;
	struct be64 gen_history[2];
	struct be32 node_id;      /* sender's slot in the replica set */
	struct be32 following;    /* member id + 1 of the primary the sender is
				   * connected to, 0 for none: a candidate must not
				   * be promoted while a peer still follows another */
};
_Static_assert(sizeof(struct repl_wire_state) == 72, "state");

/* ---- BITMAP: chunked, uncompressed in v1 ----------------------------------
 * Bit i (one bm_grain of the volume) is bit (i % 8) of byte i / 8. Chunks
 * cover consecutive 64-bit-aligned ranges; bits past total_bits in the
 * last chunk must be zero. */
#define REPL_BM_F_LAST    (1u << 0) /* final chunk of this exchange */
#define REPL_BM_F_UNKNOWN (1u << 1) /* the sender cannot name its bits (it lost
				     * track): take every bit as set. Only on a
				     * LAST chunk whose bits are all zero */
#define REPL_BM_F_KNOWN   0x3u

struct repl_wire_bitmap {
	struct be64 total_bits;   /* bits in the whole bitmap */
	struct be64 first_bit;    /* first bit in this chunk, multiple of 64 */
	struct be32 flags;        /* REPL_BM_F_* */
	struct be32 reserved;
	/* followed by the chunk: a non-zero multiple of 8 bytes */
};
_Static_assert(sizeof(struct repl_wire_bitmap) == 24, "bitmap");

/* ---- data-carrying: WRITE and RESYNC_DATA ---------------------------------- */
#define REPL_IO_F_FUA      (1u << 0) /* WRITE/TRIM/WRITE_ZEROES: durable before the ack */
#define REPL_IO_F_DATA_CRC (1u << 1) /* data_crc is valid (needs REPL_FEAT_DATA_CRC) */
#define REPL_IO_F_NO_HOLE  (1u << 2) /* WRITE_ZEROES: keep the space allocated */
#define REPL_IO_F_RESYNC   (1u << 3) /* READ_REQ: for a resync, not an application read */

struct repl_wire_write {
	struct be64 id;           /* sender's sequence number, echoed in the ack */
	struct be64 offset;       /* bytes, multiple of 512 */
	struct be32 length;       /* data bytes following the body, 512..REPL_MAX_DATA */
	struct be32 flags;        /* WRITE: FUA|DATA_CRC; RESYNC_DATA: DATA_CRC */
	struct be32 data_crc;     /* CRC32C of the data if DATA_CRC, else zero */
	struct be32 reserved;
};
_Static_assert(sizeof(struct repl_wire_write) == 32, "write");

/* ---- range without data: TRIM, WRITE_ZEROES, READ_REQ ---------------------- */
struct repl_wire_range {
	struct be64 id;
	struct be64 offset;       /* multiple of 512 */
	struct be32 length;       /* multiple of 512, non-zero */
	struct be32 flags;        /* TRIM: FUA; WRITE_ZEROES: FUA|NO_HOLE; READ_REQ: RESYNC */
};
_Static_assert(sizeof(struct repl_wire_range) == 24, "range");

/* ---- acks: WRITE_ACK, FLUSH_ACK, TRIM_ACK, WRITE_ZEROES_ACK, BARRIER_ACK,
 *      RESYNC_ACK ------------------------------------------------------------ */
enum repl_status {
	REPL_ST_OK       = 0,
	REPL_ST_IO       = 1, /* EIO: the replica's disk failed the request */
	REPL_ST_NOSPC    = 2, /* ENOSPC: out of range or backing store full */
	REPL_ST_INVAL    = 3, /* EINVAL */
	REPL_ST_NOTSUP   = 4, /* EOPNOTSUPP */
	REPL_ST_ROFS     = 5, /* EROFS: replica not writable in its state */
	REPL_ST_END,
};

struct repl_wire_ack {
	struct be64 id;           /* the request's id (BARRIER_ACK: the epoch) */
	struct be32 status;       /* enum repl_status */
	struct be32 reserved;
};
_Static_assert(sizeof(struct repl_wire_ack) == 16, "ack");

/* FLUSH and BARRIER carry one u64: the request id / the barrier epoch. */
struct repl_wire_u64 {
	struct be64 value;
};
_Static_assert(sizeof(struct repl_wire_u64) == 8, "u64 body");

/* ---- READ_REPLY ------------------------------------------------------------ */
struct repl_wire_read_reply {
	struct be64 id;
	struct be32 status;       /* OK: data follows; else no data */
	struct be32 flags;        /* DATA_CRC */
	struct be32 data_crc;
	struct be32 reserved;
};
_Static_assert(sizeof(struct repl_wire_read_reply) == 24, "read reply");

/* ---- PEER_ACK: the primary's settled writes ---------------------------------
 * A write-like request (WRITE, TRIM, WRITE_ZEROES) is settled on the
 * primary when every member it was sent to answered or left. PEER_ACK
 * lists settled ids with the members that hold the request (acknowledged
 * it OK; the primary's own bit when its local write succeeded). A
 * secondary keeps each request it applied until a PEER_ACK names it: what
 * is left when the primary is lost, and what a PEER_ACK says a member
 * lacks, is what that member may differ in (repl_peerack.c). Entries
 * follow the body; ids the receiver never got are ignored. `in_sync`: the
 * members the primary knows to hold everything it settled so far (live,
 * nothing in their dirty bitmap, not being resynced); a secondary starts
 * tracking a member on that word alone. count 0: only that. */
#define REPL_MAX_PEER_ACKS 64u

struct repl_wire_peer_ack {
	struct be32 count;        /* entries that follow, 0..REPL_MAX_PEER_ACKS */
	struct be32 in_sync;      /* bit i: member i holds every settled request */
};
_Static_assert(sizeof(struct repl_wire_peer_ack) == 8, "peer ack");

struct repl_wire_peer_ack_entry {
	struct be64 id;           /* the request's id (as in its WRITE/TRIM/...) */
	struct be32 peers;        /* bit i: member i holds it; < 1 << REPL_MAX_NODES */
	struct be32 reserved;
};
_Static_assert(sizeof(struct repl_wire_peer_ack_entry) == 16, "peer ack entry");

/* ---- AL_EXTENTS: the activity log of a primary that crashed ---------------
 * Extent e is bytes [e << 22, (e + 1) << 22) (4 MiB, repl_al.h). The
 * receiving primary resyncs them (with what it wrote since) instead of
 * the whole volume. UNKNOWN: the log could not be read: everything.
 * COVERS: the extents also hold every bit of the sender's dirty bitmaps
 * for its members (all of them complete): whatever any member that
 * followed it may differ in from it, or from another such member. */
#define REPL_AL_F_UNKNOWN   (1u << 0)
#define REPL_AL_F_COVERS    (1u << 1)
#define REPL_AL_F_KNOWN     0x3u
#define REPL_MAX_AL_EXTENTS 1012u    /* one activity-log block's worth */

struct repl_wire_al_extents {
	struct be32 count;        /* u32 extents follow, strictly ascending */
	struct be32 flags;        /* REPL_AL_F_*; UNKNOWN: count 0 */
};
_Static_assert(sizeof(struct repl_wire_al_extents) == 8, "al extents");

/* ---- VERIFY_REQ: struct repl_wire_range (flags 0, length <= REPL_MAX_DATA);
 *      VERIFY_REPLY: the digest of that range on the peer's disk ----------- */
#define REPL_DIGEST_SHA256 1u     /* the only algorithm in v1 */
#define REPL_DIGEST_LEN    32u

struct repl_wire_digest {
	struct be64 id;           /* the VERIFY_REQ's id */
	struct be32 status;       /* enum repl_status; not OK: digest all zero */
	struct be32 alg;          /* REPL_DIGEST_SHA256 */
	uint8_t digest[REPL_DIGEST_LEN];
};
_Static_assert(sizeof(struct repl_wire_digest) == 48, "digest");

/* ---- PING / PONG: struct repl_wire_u64 with an opaque token ------------------ */

/* ---- ERROR / DISCONNECT ------------------------------------------------------ */
enum repl_reason {
	REPL_REASON_NONE          = 0,
	REPL_REASON_PROTOCOL      = 1,  /* malformed frame or message out of order */
	REPL_REASON_VERSION       = 2,  /* no common protocol version */
	REPL_REASON_AUTH_FAILED   = 3,  /* wrong shared secret */
	REPL_REASON_UUID_MISMATCH = 4,  /* peer holds another volume */
	REPL_REASON_SIZE_MISMATCH = 5,
	REPL_REASON_SPLIT_BRAIN   = 6,  /* diverged generations: needs an operator */
	REPL_REASON_TWO_PRIMARIES = 7,
	REPL_REASON_TIMEOUT       = 8,  /* ping or handshake timeout */
	REPL_REASON_IO_ERROR      = 9,  /* local disk failed: detaching */
	REPL_REASON_SHUTDOWN      = 10, /* daemon stopping */
	REPL_REASON_ADMIN         = 11, /* operator disconnected the peer */
	REPL_REASON_END,
};

/* ERROR: body + 0..REPL_MAX_ERROR_TEXT bytes of printable ASCII (no NUL).
 * DISCONNECT: body only. */
struct repl_wire_error {
	struct be32 reason;       /* enum repl_reason */
	struct be32 reserved;
};
_Static_assert(sizeof(struct repl_wire_error) == 8, "error");

/* ---- decoded messages (host order) --------------------------------------- */
struct repl_hdr {
	uint16_t type;
	uint16_t flags;
	uint32_t length;
};

struct repl_features {
	uint32_t proto_min, proto_max;
	uint64_t features;
	uint8_t reserved[16]; /* kept only so decode/encode round-trips */
};

struct repl_state {
	uint8_t role, disk_state;
	uint16_t flags;
	uint32_t bm_grain;
	uint64_t size;
	uint8_t volume_uuid[16];
	uint64_t gen_current, gen_bitmap, gen_history[2];
	uint32_t node_id;
	uint32_t following;   /* 0, or primary's member id + 1 */
};

struct repl_io {              /* WRITE, RESYNC_DATA, TRIM, WRITE_ZEROES, READ_REQ,
			       * VERIFY_REQ */
	uint64_t id, offset;
	uint32_t length, flags, data_crc;
};

struct repl_ack {             /* every *_ACK */
	uint64_t id;
	uint32_t status;
};

struct repl_read_reply {
	uint64_t id;
	uint32_t status, flags, data_crc;
};

struct repl_digest {          /* VERIFY_REPLY */
	uint64_t id;
	uint32_t status, alg;
	uint8_t digest[REPL_DIGEST_LEN];
};

struct repl_bitmap {
	uint64_t total_bits, first_bit;
	uint32_t flags;
};

struct repl_error {           /* ERROR and DISCONNECT */
	uint32_t reason;
	char text[REPL_MAX_ERROR_TEXT + 1]; /* NUL-terminated; empty for DISCONNECT */
};

struct repl_msg {
	uint16_t type;
	union {
		struct repl_features features;
		struct { uint32_t alg, node_id; } auth; /* AUTH_CHALLENGE */
		struct { uint8_t volume_uuid[16]; uint32_t from_id, to_id; } hello;
		struct repl_state state;
		struct repl_bitmap bitmap;
		struct repl_io io;
		struct repl_ack ack;
		struct repl_read_reply read_reply;
		struct repl_digest digest;        /* VERIFY_REPLY */
		struct { uint32_t count, flags; } al; /* AL_EXTENTS: data = count BE u32 */
		struct { uint32_t count, in_sync; } peer_ack; /* PEER_ACK: data = count entries */
		uint64_t value;                   /* FLUSH id, BARRIER epoch, PING/PONG token,
						   * RESYNC_START/DONE bytes */
		struct repl_error error;
	} u;
	uint8_t nonce[REPL_NONCE_LEN];            /* AUTH_CHALLENGE */
	uint8_t mac[REPL_MAC_LEN];                /* AUTH_RESPONSE */
	/* WRITE/RESYNC_DATA/READ_REPLY data, BITMAP chunk, AL_EXTENTS list
	 * (big-endian u32s), PEER_ACK entries: points into the
	 * decoded buffer (not copied); data_len bytes */
	const uint8_t *data;
	uint32_t data_len;
};

/* ---- API (pure functions over bytes; repl_proto.c) ------------------------ */

/* Names for logs: never NULL ("?" for unknown values). */
const char *repl_msg_name(uint16_t type);
const char *repl_role_name(unsigned role);
const char *repl_disk_state_name(unsigned ds);
const char *repl_reason_name(unsigned reason);
const char *repl_status_name(unsigned status);
/* errno (0 or negative) <-> status; unknown errnos map to REPL_ST_IO */
uint32_t repl_status_from_errno(int err);
int repl_status_to_errno(uint32_t status);

/* Payload bounds of a type: 0, or -EBADMSG when the type is unassigned. */
int repl_msg_bounds(uint16_t type, uint32_t *min, uint32_t *max);

/* Header: 0; -EAGAIN when len < 16; -EBADMSG with *why on a bad magic,
 * CRC, flags, unknown type or a length outside the type's bounds. */
int repl_hdr_decode(const uint8_t *buf, size_t len, struct repl_hdr *h, const char **why);
void repl_hdr_encode(uint8_t *buf, uint16_t type, uint32_t length);

/* Payload of a frame whose header decoded: 0 or -EBADMSG with *why.
 * m->data points into `payload`. `len` must equal the header's length. */
int repl_msg_decode(uint16_t type, const uint8_t *payload, size_t len,
		    struct repl_msg *m, const char **why);

/* Payload bytes m would encode to (body + data), or -EINVAL. */
ssize_t repl_msg_payload_len(const struct repl_msg *m);
/* Header + fixed body only (for writev with the data kept in place): the
 * number of bytes written, -ENOSPC if cap is too small, -EINVAL if m
 * would not decode (the encoder refuses to emit what it would reject). */
ssize_t repl_msg_encode_head(const struct repl_msg *m, uint8_t *buf, size_t cap);
/* The whole frame including m->data. */
ssize_t repl_msg_encode(const struct repl_msg *m, uint8_t *buf, size_t cap);

/* Entry i (< m->u.peer_ack.count) of a decoded PEER_ACK. */
void repl_peer_ack_entry(const struct repl_msg *m, uint32_t i, uint64_t *id, uint32_t *peers);
/* Fills entry i of a PEER_ACK's data (16 bytes each) for repl_msg_encode. */
void repl_peer_ack_put(uint8_t *data, uint32_t i, uint64_t id, uint32_t peers);

/* FEATURES negotiation: the highest common version and the common
 * feature bits; -EPROTONOSUPPORT when the version ranges do not meet. */
int repl_features_agree(const struct repl_features *local,
			const struct repl_features *peer, uint32_t *version,
			uint64_t *features);

/* ---- resumable parser ------------------------------------------------------
 * Feed any number of bytes at a time (one is fine). The parser validates
 * the header as soon as its 16 bytes are in, before it reserves room for
 * the payload, so a hostile length never allocates. */
enum repl_parser_state {
	REPL_PARSE_HEADER,  /* collecting the 16-byte header */
	REPL_PARSE_PAYLOAD, /* header valid, collecting `length` payload bytes */
	REPL_PARSE_ERROR,   /* protocol error: sticky, p->why says why */
};

struct repl_parser {
	enum repl_parser_state state;
	uint8_t hdr_buf[REPL_HDR_LEN];
	struct repl_hdr hdr;
	size_t have;        /* bytes of the current header or payload */
	uint8_t *buf;       /* payload; grows to the largest frame seen */
	size_t cap;
	uint64_t frames;    /* frames delivered */
	char why[160];
};

void repl_parser_init(struct repl_parser *p);
void repl_parser_free(struct repl_parser *p);
/* Consumes bytes from in until a frame completes or an error occurs.
 * Returns 1 with *m decoded (m->data valid until the next call), 0 when
 * all of `len` was consumed without completing a frame, -EBADMSG on a
 * protocol error (p->why; every later call fails the same way), -ENOMEM.
 * *consumed says how much of `in` was used in every case. */
int repl_parser_feed(struct repl_parser *p, const uint8_t *in, size_t len,
		     size_t *consumed, struct repl_msg *m);

#endif
