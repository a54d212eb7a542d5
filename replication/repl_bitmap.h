/* Per-peer dirty bitmap: which grains of the volume a peer may lack.
 *
 * Bit i covers bytes [i * grain, (i + 1) * grain) of the volume; the last
 * grain may be partial. The primary sets bits for writes a peer did not
 * acknowledge (disconnected, or a laggard under ack=majority); resync
 * clears them as RESYNC_ACKs arrive. Pure and I/O-free: the replication
 * backend owns the metadata file and does the reads and writes; this module
 * keeps the bits in memory, tracks which 4 KiB on-disk blocks changed, and
 * encodes/decodes those blocks into caller buffers.
 *
 * On-disk block (STORE_MD_BLOCK_SIZE = 4096 bytes, little-endian), block
 * `idx` of peer slot `slot` lives at
 *   m->bm_offset + slot * m->bm_len_per_peer + idx * 4096
 * (repl_bitmap_block_offset()):
 *
 *   0   u32 magic        REPL_BM_MAGIC ("URBM")
 *   4   u16 version      REPL_BM_VERSION
 *   6   u16 hdr_len      STORE_BM_HDR_LEN (64)
 *   8   u32 slot         peer slot, < URBD_MAX_PEERS
 *   12  u32 index        block index within the slot
 *   16  16  uuid         volume uuid: a block of another volume is refused
 *   32  u64 seq          the caller's (replication: the generation the
 *                        peer's bits count from, 0 = no claim); reported,
 *                        not judged
 *   40  u32 grain        bytes per bit when written
 *   44  u32 nbits        bits this block covers: min(32256, total - first)
 *   48  u64 total_bits   bits in the whole bitmap when written
 *   56  u32 flags        REPL_BMB_F_*, the caller's; unknown bits refused
 *   60  u32 crc          CRC32C over [0, 60) then [64, 4096)
 *   64  4032 bytes of bits: bit (idx * 32256 + j) is bit j % 8 of byte j / 8;
 *       bits >= nbits are zero
 *
 * A block of all zero bytes was never written (the file is sparse): it
 * decodes as "all clear" (REPL_BM_BLOCK_ZERO, a success). Anything else
 * that fails a check is reported with its reason and never trusted; the
 * safe reaction is repl_bitmap_set_block() (resync that whole block's
 * range), which also marks the block to be rewritten.
 *
 * Ordering rules for the caller (see also repl_al.h):
 *  - A set bit must be on disk before the AL transaction that drops the
 *    extents it covers is written (the AL covers the window in between).
 *  - Clears may be written back lazily: losing one only costs an extra
 *    resync of that grain.
 *  - repl_bitmap_encode_block() clears the block's dirty mark; if the write
 *    then fails, call repl_bitmap_mark_block_dirty() so it is retried. Bits
 *    changed after the encode mark the block dirty again, so a block can
 *    be re-encoded while an older write of it is still in flight (the
 *    caller must then order the two writes, e.g. one in flight per block). */
#ifndef URBD_REPL_BITMAP_H
#define URBD_REPL_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_format.h"
#include "uuid.h"

#define REPL_BM_MAGIC            0x4d425255u /* "URBM" little-endian */
#define REPL_BM_VERSION          1
#define REPL_BM_BLOCK_SIZE       STORE_MD_BLOCK_SIZE
#define REPL_BM_BITS_PER_BLOCK   STORE_BM_BITS_PER_BLOCK /* 32256 */
#define REPL_BM_NONE             UINT64_MAX /* "no such bit/block" */
/* block flags: the peer was primary when its bits started (its activity
 * log must add to them) */
#define REPL_BMB_F_FORMER_PRIMARY 0x1u
#define REPL_BMB_F_KNOWN         REPL_BMB_F_FORMER_PRIMARY

/* Byte positions inside a bitmap block. */
enum {
	BM_OFF_MAGIC = 0,
	BM_OFF_VERSION = 4,
	BM_OFF_HDR_LEN = 6,
	BM_OFF_SLOT = 8,
	BM_OFF_INDEX = 12,
	BM_OFF_UUID = 16,
	BM_OFF_SEQ = 32,
	BM_OFF_GRAIN = 40,
	BM_OFF_NBITS = 44,
	BM_OFF_TOTAL_BITS = 48,
	BM_OFF_FLAGS = 56,
	BM_OFF_CRC = 60,
	BM_OFF_BITS = 64,
};
_Static_assert(BM_OFF_BITS == STORE_BM_HDR_LEN, "header length");
_Static_assert(REPL_BM_BITS_PER_BLOCK % 64 == 0, "a block holds whole words");

/* Why a bitmap block was rejected. ZERO is a success. */
enum repl_bm_block_err {
	REPL_BM_BLOCK_OK = 0,
	REPL_BM_BLOCK_ZERO,         /* never written: all clear */
	REPL_BM_BLOCK_SHORT,        /* buffer shorter than a block */
	REPL_BM_BLOCK_BAD_MAGIC,
	REPL_BM_BLOCK_BAD_CRC,      /* torn or corrupt */
	REPL_BM_BLOCK_BAD_VERSION,  /* version or header length unknown */
	REPL_BM_BLOCK_WRONG_VOLUME, /* uuid differs: another volume's block */
	REPL_BM_BLOCK_WRONG_SLOT,   /* another peer's bitmap */
	REPL_BM_BLOCK_WRONG_INDEX,  /* misplaced block, or index out of range */
	REPL_BM_BLOCK_WRONG_GRAIN,  /* written with another grain */
	REPL_BM_BLOCK_BAD_FIELD,    /* CRC fine but a field is impossible */
};
const char *repl_bm_block_err_name(enum repl_bm_block_err e);
static inline bool repl_bm_block_usable(enum repl_bm_block_err e)
{
	return e == REPL_BM_BLOCK_OK || e == REPL_BM_BLOCK_ZERO;
}

/* opaque; "dirty_" because struct repl_bitmap is the decoded BITMAP
 * message of repl_proto.h */
struct repl_dirty_bitmap;

/* ---- sizing and placement ---------------------------------------------- */
/* Bits for a volume: ceil(size / grain). */
uint64_t repl_bitmap_bits_for(uint64_t size, uint32_t grain);
/* Blocks, and bytes, one peer's bitmap needs for (size, grain); the
 * metadata layout reserves at least this (store_meta_layout()). */
uint64_t repl_bitmap_blocks_for(uint64_t size, uint32_t grain);
uint64_t repl_bitmap_bytes_per_peer(uint64_t size, uint32_t grain);
/* Byte offset of block idx of a peer slot in the metadata file: 0, or
 * -EINVAL if slot/idx fall outside the reserved area m describes. */
int repl_bitmap_block_offset(const struct store_meta *m, uint32_t slot,
			     uint64_t idx, uint64_t *offset);

/* ---- in memory ----------------------------------------------------------- */
/* grain: power of two >= 4096 (0 = STORE_BM_GRAIN_DEFAULT); size > 0.
 * NULL with errno EINVAL or ENOMEM. All bits clear, no block dirty. */
struct repl_dirty_bitmap *repl_bitmap_create(uint64_t size, uint32_t grain);
void repl_bitmap_free(struct repl_dirty_bitmap *bm);
uint64_t repl_bitmap_size(const struct repl_dirty_bitmap *bm);
uint32_t repl_bitmap_grain(const struct repl_dirty_bitmap *bm);
uint64_t repl_bitmap_total_bits(const struct repl_dirty_bitmap *bm);
uint64_t repl_bitmap_blocks(const struct repl_dirty_bitmap *bm);
/* set bits, O(1) (kept up to date by every change) */
uint64_t repl_bitmap_count(const struct repl_dirty_bitmap *bm);

/* Byte ranges: [off, off + len) must lie inside the volume and len > 0,
 * else -EINVAL. set_range marks every grain the range touches and returns
 * how many bits were newly set. clear_range clears only the grains the
 * range covers completely (the partial last grain counts as complete when
 * the range reaches the end of the volume) and returns how many bits were
 * cleared. test_range: 1 if any touched grain is set, 0 if none. */
int64_t repl_bitmap_set_range(struct repl_dirty_bitmap *bm, uint64_t off, uint64_t len);
int64_t repl_bitmap_clear_range(struct repl_dirty_bitmap *bm, uint64_t off, uint64_t len);
int repl_bitmap_test_range(const struct repl_dirty_bitmap *bm, uint64_t off, uint64_t len);

/* Bit indexes (resync works in bits): [first, first + count) inside
 * total_bits, else -EINVAL; return how many bits changed. */
int64_t repl_bitmap_set_bits(struct repl_dirty_bitmap *bm, uint64_t first, uint64_t count);
int64_t repl_bitmap_clear_bits(struct repl_dirty_bitmap *bm, uint64_t first, uint64_t count);
bool repl_bitmap_test_bit(const struct repl_dirty_bitmap *bm, uint64_t bit);
/* first set bit >= from, or REPL_BM_NONE */
uint64_t repl_bitmap_find_next_set(const struct repl_dirty_bitmap *bm, uint64_t from);
/* Byte range of a bit (clipped to the volume size). */
void repl_bitmap_bit_range(const struct repl_dirty_bitmap *bm, uint64_t bit,
			   uint64_t *off, uint64_t *len);

void repl_bitmap_set_all(struct repl_dirty_bitmap *bm);
void repl_bitmap_clear_all(struct repl_dirty_bitmap *bm);
/* dst |= src: bits newly set in dst (their blocks become dirty), or
 * -EINVAL (dst untouched) unless both have the same size and grain. */
int64_t repl_bitmap_or(struct repl_dirty_bitmap *dst, const struct repl_dirty_bitmap *src);
/* New size >= current (volumes only grow; -EINVAL otherwise). New bits are
 * clear; no block becomes dirty (blocks written before the resize still
 * decode: their total_bits is smaller). On -ENOMEM nothing changed. */
int repl_bitmap_resize(struct repl_dirty_bitmap *bm, uint64_t new_size);

/* ---- persistent form ----------------------------------------------------- */
/* first block >= from whose in-memory bits differ from what was last
 * encoded/decoded, or REPL_BM_NONE */
uint64_t repl_bitmap_next_dirty_block(const struct repl_dirty_bitmap *bm, uint64_t from);
bool repl_bitmap_block_dirty(const struct repl_dirty_bitmap *bm, uint64_t idx);
/* the write of an encoded block failed: write it again later */
int repl_bitmap_mark_block_dirty(struct repl_dirty_bitmap *bm, uint64_t idx);
/* Blocks holding the bits of byte range [off, off + len): *first and
 * *count (the blocks to write before an AL eviction of that range). */
int repl_bitmap_range_blocks(const struct repl_dirty_bitmap *bm, uint64_t off,
			     uint64_t len, uint64_t *first, uint64_t *count);
/* Sets every bit of block idx (the safe answer to an unusable block). */
int repl_bitmap_set_block(struct repl_dirty_bitmap *bm, uint64_t idx);

/* Fills buf (REPL_BM_BLOCK_SIZE bytes) with block idx and clears its dirty
 * mark. -EINVAL: idx >= blocks, slot >= URBD_MAX_PEERS or unknown flags. */
int repl_bitmap_encode_block(struct repl_dirty_bitmap *bm, uint64_t idx, uint32_t slot,
			     const struct urbd_uuid *uuid, uint64_t seq, uint32_t flags,
			     uint8_t *buf);
/* Loads block idx from buf (len bytes) into bm, replacing that block's
 * bits, when the block is usable (OK or ZERO); bm is untouched otherwise.
 * A block written before the volume grew (smaller total_bits) is accepted.
 * *seq and *flags (either may be NULL) get the block's, 0 for a zero
 * block. */
enum repl_bm_block_err repl_bitmap_decode_block(struct repl_dirty_bitmap *bm, uint64_t idx,
						uint32_t slot,
						const struct urbd_uuid *uuid,
						const uint8_t *buf, size_t len,
						uint64_t *seq, uint32_t *flags);

/* ---- wire (BITMAP message, replication/repl_proto.h) ------------------- */
/* Bit i is bit (i % 8) of byte i / 8 of the chunk that starts at first_bit.
 * first_bit: a multiple of 64 below total_bits; len: non-zero multiple of
 * 8, at most REPL_MAX_BITMAP. export fills buf with up to len bytes
 * (fewer for the last chunk: it ends at total_bits rounded up to 64, the
 * padding bits zero) and returns the bytes filled; the chunk is the last
 * one when first_bit + 8 * ret >= total_bits. merge ORs a received chunk
 * in and returns how many bits were newly set; -EINVAL (and bm untouched)
 * if the chunk runs past total_bits rounded up to 64 or sets a bit >=
 * total_bits. */
int repl_bitmap_export_chunk(const struct repl_dirty_bitmap *bm, uint64_t first_bit,
			     uint8_t *buf, size_t len);
int repl_bitmap_merge_chunk(struct repl_dirty_bitmap *bm, uint64_t first_bit,
			    const uint8_t *buf, size_t len);

#endif
