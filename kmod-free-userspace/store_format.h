/* On-disk format of a replica's metadata file (<store>/volumes/<name>/meta).
 * All integers little-endian. Every block carries magic, version and a
 * CRC32C; nothing that fails those checks is trusted.
 *
 * Layout (offsets in bytes):
 *   0      superblock slot A      (4 KiB)
 *   4096   superblock slot B      (4 KiB)
 *   8192   activity log area      (al_len bytes, filled in by replication)
 *   ...    dirty bitmaps, one per peer slot (bm_len_per_peer each)
 *
 * Crash safety: an update writes the slot that does NOT hold the newest
 * valid superblock, with seq+1, then fdatasyncs. A torn write leaves that
 * slot failing its CRC and the other slot (one generation older, and
 * describing a state that was durable) wins. The newer of two valid slots
 * (higher seq) is the current one.
 *
 * Sizing of the reserved areas (formats: replication/repl_bitmap.h and
 * replication/repl_al.h, described in replication/README.md).
 *
 * Dirty bitmap, per peer slot: 4 KiB blocks, each a 64-byte header (magic,
 * version, slot, index, volume uuid, seq, CRC32C) + 4032 bytes of bits, so
 * one block covers STORE_BM_BITS_PER_BLOCK = 32256 grains (~1.97 GiB at the
 * default 64 KiB grain). A peer slot reserves the blocks its bits need,
 * rounded up to a power of two: the slots stay put while the volume grows
 * until its block count reaches that power of two (a 1 TiB volume needs 521
 * blocks, reserves 1024, and can grow to ~2 TiB in place), and the reserve
 * costs nothing until written (the file is sparse, and a block that reads
 * back as zeroes is a valid, all-clear block). Growing past it changes
 * bm_len_per_peer and so moves slots 1..N-1: whoever grows the volume must
 * rewrite the peer bitmaps at their new places (replication/README.md,
 * "Growing a volume").
 * Slot i belongs to member id i (URBD_MAX_PEERS = REPL_MAX_NODES = 8; the
 * local member's slot stays unwritten).
 *   1 GiB  volume: 16 Ki bits ->   1 block  ->  4 KiB per peer, 32 KiB total
 *   1 TiB  volume: 16 Mi bits -> 521 blocks -> 4 MiB per peer (1024 blocks),
 *                  32 MiB reserved for 8 slots, 2 MiB per peer of it ever
 *                  written
 *   16 TiB volume: 256 Mi bits -> 8323 blocks -> 64 MiB per peer
 *
 * Activity log: 64 KiB = a ring of STORE_AL_BLOCKS = 16 blocks of 4 KiB;
 * one transaction writes one block holding the whole active set, a 48-byte
 * header + up to 1012 u32 extent numbers (4 MiB extents => up to ~4 GiB
 * hot set; 256 extents = 1 GiB by default). */
#ifndef URBD_STORE_FORMAT_H
#define URBD_STORE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "uuid.h"

#define STORE_META_MAGIC        0x4154454d44425255ULL /* "URBDMETA" LE */
#define STORE_META_VERSION      1
#define STORE_SB_SIZE           4096
#define STORE_SB_SLOTS          2
#define STORE_AL_OFFSET         (STORE_SB_SIZE * STORE_SB_SLOTS)
#define STORE_AL_LEN            (64 * 1024)
#define STORE_BM_GRAIN_DEFAULT  (64 * 1024)
#define URBD_MAX_PEERS          8 /* bitmap slots: one per member id (REPL_MAX_NODES) */
#define STORE_BLOCK_SIZE        4096 /* volume sizes are multiples of this */
#define STORE_MD_BLOCK_SIZE     4096 /* bitmap and activity-log blocks */
#define STORE_BM_HDR_LEN        64   /* bitmap block header, then the bits */
#define STORE_BM_BITS_PER_BLOCK ((STORE_MD_BLOCK_SIZE - STORE_BM_HDR_LEN) * 8)
#define STORE_AL_BLOCKS         (STORE_AL_LEN / STORE_MD_BLOCK_SIZE)

/* superblock flags */
#define STORE_SB_F_CLEAN        (1u << 0) /* shut down cleanly */
#define STORE_SB_F_UNCONFIRMED  (1u << 1) /* replication: lost its primary uncleanly,
					   * needs a full resync from the next one */
#define STORE_SB_F_WAS_PRIMARY  (1u << 2) /* replication: primary since the last clean
					   * demote: after a crash, its activity log
					   * names what may differ from the others */
#define STORE_SB_F_BM_VALID     (1u << 3) /* replication: the per-peer dirty bitmaps
					   * were made durable during the current term
					   * as primary (replication/repl_bmstore.c) */
#define STORE_SB_F_FOLLOWING    (1u << 4) /* replication: a secondary applying a
					   * primary's writes; after a crash it may hold
					   * some that others lack: unconfirmed */
#define STORE_SB_F_LOST_TRACK   (1u << 5) /* replication: unconfirmed by such a crash
					   * (not by losing its primary): the primary
					   * it followed, its bitmap for it, covers it */

/* generation identifiers, filled in by replication (DRBD-style UUIDs) */
struct store_generations {
	uint64_t current;
	uint64_t bitmap;
	uint64_t history[2];
};

/* decoded superblock: what the rest of the daemon works with */
struct store_meta {
	uint64_t seq;                 /* bumped on every update */
	struct urbd_uuid uuid;        /* volume identity, same on all replicas */
	char name[64];                /* NUL-terminated */
	uint64_t size;                /* bytes, multiple of STORE_BLOCK_SIZE */
	uint32_t block_size;          /* logical block size exported */
	uint32_t flags;               /* STORE_SB_F_* */
	uint64_t created_ns;          /* wall clock */
	struct store_generations gen;
	uint32_t disk_state;          /* replication's disk state, 0 for now */
	uint32_t bm_grain;            /* bytes per dirty-bitmap bit */
	uint64_t al_offset, al_len;
	uint64_t bm_offset, bm_len_per_peer;
};

/* Byte positions inside a superblock slot (the encoded form). */
enum {
	SB_OFF_MAGIC = 0,         /* u64 STORE_META_MAGIC */
	SB_OFF_VERSION = 8,       /* u32 */
	SB_OFF_HDR_LEN = 12,      /* u32 bytes covered by the CRC */
	SB_OFF_SEQ = 16,          /* u64 */
	SB_OFF_UUID = 24,         /* 16 bytes */
	SB_OFF_NAME = 40,         /* 64 bytes, NUL-padded */
	SB_OFF_SIZE = 104,        /* u64 */
	SB_OFF_BLOCK_SIZE = 112,  /* u32 */
	SB_OFF_FLAGS = 116,       /* u32 */
	SB_OFF_CREATED = 120,     /* u64 */
	SB_OFF_GEN = 128,         /* 4 x u64 */
	SB_OFF_DISK_STATE = 160,  /* u32 */
	SB_OFF_BM_GRAIN = 164,    /* u32 */
	SB_OFF_AL_OFFSET = 168,   /* u64 */
	SB_OFF_AL_LEN = 176,      /* u64 */
	SB_OFF_BM_OFFSET = 184,   /* u64 */
	SB_OFF_BM_LEN = 192,      /* u64 */
	SB_OFF_RESERVED = 200,    /* zero up to the CRC */
	SB_HDR_LEN = 508,         /* CRC covers [0, SB_HDR_LEN) */
	SB_OFF_CRC = 508,         /* u32 CRC32C */
};
_Static_assert(SB_OFF_CRC + 4 == 512, "superblock header is one sector");
_Static_assert(SB_OFF_RESERVED <= SB_HDR_LEN, "fields overlap the CRC");

/* Why a slot was rejected, for the operator. */
enum store_meta_err {
	STORE_META_OK = 0,
	STORE_META_SHORT,      /* fewer than 512 bytes */
	STORE_META_ZERO,       /* never written */
	STORE_META_BAD_MAGIC,
	STORE_META_BAD_VERSION,
	STORE_META_BAD_CRC,
	STORE_META_BAD_FIELD,  /* CRC fine but a field is impossible */
};
const char *store_meta_err_name(enum store_meta_err e);

/* Pure functions over bytes (fuzzed). encode fills STORE_SB_SIZE bytes. */
void store_meta_encode(const struct store_meta *m, uint8_t *buf);
enum store_meta_err store_meta_decode(const uint8_t *buf, size_t len,
				      struct store_meta *m);
/* Picks the current slot of two: returns 0 or 1, or -1 if neither is
 * valid; *why_a / *why_b tell what was wrong with each. */
int store_meta_pick(const uint8_t *slot_a, const uint8_t *slot_b, size_t len,
		    struct store_meta *m, enum store_meta_err *why_a,
		    enum store_meta_err *why_b);
/* fills in the reserved-area layout for a volume of m->size */
void store_meta_layout(struct store_meta *m);

#endif
