/* Per-peer dirty bitmap: in-memory bits, dirty-block tracking, and the
 * on-disk and wire encodings. Format and ordering rules: repl_bitmap.h.
 *
 * Invariants: bits >= total_bits are always zero in words[] (so counts,
 * exports and encodes never see padding); count == popcount(words); a
 * block's dirty mark is set whenever one of its words changes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "repl_bitmap.h"
#include "repl_proto.h"
#include "util.h"

#define WORDS_PER_BLOCK (REPL_BM_BITS_PER_BLOCK / 64) /* 504 */
#define PAYLOAD_LEN     (REPL_BM_BLOCK_SIZE - BM_OFF_BITS)

struct repl_dirty_bitmap {
	uint64_t size;        /* volume bytes */
	uint64_t total_bits;
	uint64_t nwords;
	uint64_t nblocks;
	uint64_t count;       /* set bits */
	uint32_t grain;
	unsigned grain_shift;
	uint64_t *words;      /* bit i: words[i / 64] bit i % 64 */
	uint64_t *dirty;      /* one bit per on-disk block */
};

const char *repl_bm_block_err_name(enum repl_bm_block_err e)
{
	switch (e) {
	case REPL_BM_BLOCK_OK: return "ok";
	case REPL_BM_BLOCK_ZERO: return "never written (all clear)";
	case REPL_BM_BLOCK_SHORT: return "truncated block";
	case REPL_BM_BLOCK_BAD_MAGIC: return "bad magic";
	case REPL_BM_BLOCK_BAD_CRC: return "checksum mismatch (torn or corrupt)";
	case REPL_BM_BLOCK_BAD_VERSION: return "unsupported version";
	case REPL_BM_BLOCK_WRONG_VOLUME: return "block of another volume";
	case REPL_BM_BLOCK_WRONG_SLOT: return "block of another peer slot";
	case REPL_BM_BLOCK_WRONG_INDEX: return "misplaced block (index mismatch)";
	case REPL_BM_BLOCK_WRONG_GRAIN: return "written with another grain";
	case REPL_BM_BLOCK_BAD_FIELD: return "impossible field value";
	}
	return "unknown";
}

/* ---- sizing ------------------------------------------------------------- */

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

uint64_t repl_bitmap_bits_for(uint64_t size, uint32_t grain)
{
	if (!grain)
		grain = STORE_BM_GRAIN_DEFAULT;
	return div_up(size, grain);
}

uint64_t repl_bitmap_blocks_for(uint64_t size, uint32_t grain)
{
	return div_up(repl_bitmap_bits_for(size, grain), REPL_BM_BITS_PER_BLOCK);
}

uint64_t repl_bitmap_bytes_per_peer(uint64_t size, uint32_t grain)
{
	return repl_bitmap_blocks_for(size, grain) * REPL_BM_BLOCK_SIZE;
}

int repl_bitmap_block_offset(const struct store_meta *m, uint32_t slot,
			     uint64_t idx, uint64_t *offset)
{
	uint64_t per_peer_blocks = m->bm_len_per_peer / REPL_BM_BLOCK_SIZE;
	uint64_t off;

	if (slot >= URBD_MAX_PEERS || idx >= per_peer_blocks)
		return -EINVAL;
	/* slot * len is below URBD_MAX_PEERS * len, which the file holds;
	 * still check: m may come from a superblock field */
	if (__builtin_mul_overflow((uint64_t)slot, m->bm_len_per_peer, &off) ||
	    add_overflows_u64(off, m->bm_offset, &off) ||
	    add_overflows_u64(off, idx * REPL_BM_BLOCK_SIZE, &off))
		return -EINVAL;
	*offset = off;
	return 0;
}

/* ---- in memory ----------------------------------------------------------- */

static bool grain_valid(uint32_t grain)
{
	return is_pow2(grain) && grain >= STORE_BLOCK_SIZE;
}

static void mark_dirty(struct repl_dirty_bitmap *bm, uint64_t block)
{
	bm->dirty[block / 64] |= 1ULL << (block % 64);
}

struct repl_dirty_bitmap *repl_bitmap_create(uint64_t size, uint32_t grain)
{
	struct repl_dirty_bitmap *bm;

	if (!grain)
		grain = STORE_BM_GRAIN_DEFAULT;
	if (size == 0 || !grain_valid(grain)) {
		errno = EINVAL;
		return NULL;
	}
	bm = calloc(1, sizeof(*bm));
	if (!bm)
		return NULL;
	bm->size = size;
	bm->grain = grain;
	bm->grain_shift = (unsigned)__builtin_ctz(grain);
	bm->total_bits = repl_bitmap_bits_for(size, grain);
	bm->nwords = div_up(bm->total_bits, 64);
	bm->nblocks = div_up(bm->total_bits, REPL_BM_BITS_PER_BLOCK);
	if (bm->nblocks > UINT32_MAX) { /* the block index is a u32 */
		free(bm);
		errno = EINVAL;
		return NULL;
	}
	bm->words = calloc(bm->nwords, sizeof(uint64_t));
	bm->dirty = calloc(div_up(bm->nblocks, 64), sizeof(uint64_t));
	if (!bm->words || !bm->dirty) {
		repl_bitmap_free(bm);
		errno = ENOMEM;
		return NULL;
	}
	return bm;
}

void repl_bitmap_free(struct repl_dirty_bitmap *bm)
{
	if (!bm)
		return;
	free(bm->words);
	free(bm->dirty);
	free(bm);
}

uint64_t repl_bitmap_size(const struct repl_dirty_bitmap *bm) { return bm->size; }
uint32_t repl_bitmap_grain(const struct repl_dirty_bitmap *bm) { return bm->grain; }
uint64_t repl_bitmap_total_bits(const struct repl_dirty_bitmap *bm) { return bm->total_bits; }
uint64_t repl_bitmap_blocks(const struct repl_dirty_bitmap *bm) { return bm->nblocks; }
uint64_t repl_bitmap_count(const struct repl_dirty_bitmap *bm) { return bm->count; }

/* mask of bits [lo, hi] within one word, 0 <= lo <= hi < 64 */
static uint64_t word_mask(unsigned lo, unsigned hi)
{
	uint64_t m = ~0ULL << lo;

	return hi == 63 ? m : m & ((2ULL << hi) - 1);
}

/* Stores a new value in word w, keeping count and dirty marks right. */
static void store_word(struct repl_dirty_bitmap *bm, uint64_t w, uint64_t v)
{
	uint64_t old = bm->words[w];

	if (old == v)
		return;
	bm->count -= (uint64_t)__builtin_popcountll(old);
	bm->count += (uint64_t)__builtin_popcountll(v);
	bm->words[w] = v;
	mark_dirty(bm, w / WORDS_PER_BLOCK);
}

/* Sets or clears bits [first, first + count), already range-checked and
 * count > 0; returns how many changed. */
static uint64_t change_bits(struct repl_dirty_bitmap *bm, uint64_t first,
			    uint64_t count, bool set)
{
	uint64_t last = first + count - 1, changed = 0;

	for (uint64_t w = first / 64; w <= last / 64; w++) {
		unsigned lo = w == first / 64 ? first % 64 : 0;
		unsigned hi = w == last / 64 ? last % 64 : 63;
		uint64_t mask = word_mask(lo, hi), old = bm->words[w];
		uint64_t diff = set ? ~old & mask : old & mask;

		if (!diff)
			continue;
		changed += (uint64_t)__builtin_popcountll(diff);
		store_word(bm, w, old ^ diff);
	}
	return changed;
}

static bool bits_valid(const struct repl_dirty_bitmap *bm, uint64_t first,
		       uint64_t count)
{
	return count > 0 && first < bm->total_bits &&
	       count <= bm->total_bits - first;
}

static bool range_valid(const struct repl_dirty_bitmap *bm, uint64_t off, uint64_t len)
{
	return len > 0 && off < bm->size && len <= bm->size - off;
}

int64_t repl_bitmap_set_bits(struct repl_dirty_bitmap *bm, uint64_t first, uint64_t count)
{
	if (!bits_valid(bm, first, count))
		return -EINVAL;
	return (int64_t)change_bits(bm, first, count, true);
}

int64_t repl_bitmap_clear_bits(struct repl_dirty_bitmap *bm, uint64_t first, uint64_t count)
{
	if (!bits_valid(bm, first, count))
		return -EINVAL;
	return (int64_t)change_bits(bm, first, count, false);
}

bool repl_bitmap_test_bit(const struct repl_dirty_bitmap *bm, uint64_t bit)
{
	return bit < bm->total_bits && (bm->words[bit / 64] >> (bit % 64) & 1);
}

int64_t repl_bitmap_set_range(struct repl_dirty_bitmap *bm, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (!range_valid(bm, off, len))
		return -EINVAL;
	first = off >> bm->grain_shift;
	last = (off + len - 1) >> bm->grain_shift;
	return (int64_t)change_bits(bm, first, last - first + 1, true);
}

int64_t repl_bitmap_clear_range(struct repl_dirty_bitmap *bm, uint64_t off, uint64_t len)
{
	uint64_t first, end_bit, end = off + len;

	if (!range_valid(bm, off, len))
		return -EINVAL;
	/* only whole grains: a partly written grain may still differ */
	first = (off >> bm->grain_shift) + ((off & (bm->grain - 1)) != 0);
	end_bit = end == bm->size ? bm->total_bits : end >> bm->grain_shift;
	if (end_bit <= first)
		return 0;
	return (int64_t)change_bits(bm, first, end_bit - first, false);
}

int repl_bitmap_test_range(const struct repl_dirty_bitmap *bm, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (!range_valid(bm, off, len))
		return -EINVAL;
	first = off >> bm->grain_shift;
	last = (off + len - 1) >> bm->grain_shift;
	for (uint64_t w = first / 64; w <= last / 64; w++) {
		unsigned lo = w == first / 64 ? first % 64 : 0;
		unsigned hi = w == last / 64 ? last % 64 : 63;

		if (bm->words[w] & word_mask(lo, hi))
			return 1;
	}
	return 0;
}

/* first set bit >= from in a bitset of nbits bits, or REPL_BM_NONE */
static uint64_t next_set(const uint64_t *set, uint64_t nbits, uint64_t from)
{
	uint64_t w, v;

	if (from >= nbits)
		return REPL_BM_NONE;
	w = from / 64;
	v = set[w] & (~0ULL << (from % 64));
	for (;;) {
		if (v) {
			uint64_t bit = w * 64 + (uint64_t)__builtin_ctzll(v);

			return bit < nbits ? bit : REPL_BM_NONE;
		}
		if (++w >= div_up(nbits, 64))
			return REPL_BM_NONE;
		v = set[w];
	}
}

uint64_t repl_bitmap_find_next_set(const struct repl_dirty_bitmap *bm, uint64_t from)
{
	return next_set(bm->words, bm->total_bits, from);
}

void repl_bitmap_bit_range(const struct repl_dirty_bitmap *bm, uint64_t bit,
			   uint64_t *off, uint64_t *len)
{
	if (bit >= bm->total_bits) {
		*off = bm->size;
		*len = 0;
		return;
	}
	*off = bit << bm->grain_shift;
	*len = MIN((uint64_t)bm->grain, bm->size - *off);
}

void repl_bitmap_set_all(struct repl_dirty_bitmap *bm)
{
	change_bits(bm, 0, bm->total_bits, true);
}

void repl_bitmap_clear_all(struct repl_dirty_bitmap *bm)
{
	change_bits(bm, 0, bm->total_bits, false);
}

int repl_bitmap_resize(struct repl_dirty_bitmap *bm, uint64_t new_size)
{
	uint64_t bits, nwords, nblocks, old_dw, new_dw;
	uint64_t *words, *dirty;

	if (new_size < bm->size)
		return -EINVAL;
	bits = repl_bitmap_bits_for(new_size, bm->grain);
	nwords = div_up(bits, 64);
	nblocks = div_up(bits, REPL_BM_BITS_PER_BLOCK);
	if (nblocks > UINT32_MAX)
		return -EINVAL;
	old_dw = div_up(bm->nblocks, 64);
	new_dw = div_up(nblocks, 64);
	if (nwords > SIZE_MAX / sizeof(uint64_t))
		return -ENOMEM;
	words = realloc(bm->words, nwords * sizeof(uint64_t));
	if (!words)
		return -ENOMEM;
	bm->words = words;
	dirty = realloc(bm->dirty, new_dw * sizeof(uint64_t));
	if (!dirty)
		return -ENOMEM; /* words grew but nothing else changed: fine */
	bm->dirty = dirty;
	memset(words + bm->nwords, 0, (nwords - bm->nwords) * sizeof(uint64_t));
	memset(dirty + old_dw, 0, (new_dw - old_dw) * sizeof(uint64_t));
	bm->size = new_size;
	bm->total_bits = bits;
	bm->nwords = nwords;
	bm->nblocks = nblocks;
	return 0;
}

/* ---- persistent form ----------------------------------------------------- */

uint64_t repl_bitmap_next_dirty_block(const struct repl_dirty_bitmap *bm, uint64_t from)
{
	return next_set(bm->dirty, bm->nblocks, from);
}

bool repl_bitmap_block_dirty(const struct repl_dirty_bitmap *bm, uint64_t idx)
{
	return idx < bm->nblocks && (bm->dirty[idx / 64] >> (idx % 64) & 1);
}

int repl_bitmap_mark_block_dirty(struct repl_dirty_bitmap *bm, uint64_t idx)
{
	if (idx >= bm->nblocks)
		return -EINVAL;
	mark_dirty(bm, idx);
	return 0;
}

int repl_bitmap_range_blocks(const struct repl_dirty_bitmap *bm, uint64_t off,
			     uint64_t len, uint64_t *first, uint64_t *count)
{
	uint64_t b0, b1;

	if (!range_valid(bm, off, len))
		return -EINVAL;
	b0 = (off >> bm->grain_shift) / REPL_BM_BITS_PER_BLOCK;
	b1 = ((off + len - 1) >> bm->grain_shift) / REPL_BM_BITS_PER_BLOCK;
	*first = b0;
	*count = b1 - b0 + 1;
	return 0;
}

/* bits block idx covers in a bitmap of total bits */
static uint64_t block_nbits(uint64_t total, uint64_t idx)
{
	return MIN((uint64_t)REPL_BM_BITS_PER_BLOCK,
		   total - idx * REPL_BM_BITS_PER_BLOCK);
}

int repl_bitmap_set_block(struct repl_dirty_bitmap *bm, uint64_t idx)
{
	if (idx >= bm->nblocks)
		return -EINVAL;
	change_bits(bm, idx * REPL_BM_BITS_PER_BLOCK,
		    block_nbits(bm->total_bits, idx), true);
	/* rewrite it even if nothing changed: the on-disk copy is bad */
	mark_dirty(bm, idx);
	return 0;
}

static uint32_t block_crc(const uint8_t *buf)
{
	return crc32c(crc32c(0, buf, BM_OFF_CRC), buf + BM_OFF_BITS, PAYLOAD_LEN);
}

int repl_bitmap_encode_block(struct repl_dirty_bitmap *bm, uint64_t idx, uint32_t slot,
			     const struct urbd_uuid *uuid, uint64_t seq, uint32_t flags,
			     uint8_t *buf)
{
	uint64_t w0 = idx * WORDS_PER_BLOCK, nw;

	if (idx >= bm->nblocks || slot >= URBD_MAX_PEERS || (flags & ~REPL_BMB_F_KNOWN))
		return -EINVAL;
	nw = MIN((uint64_t)WORDS_PER_BLOCK, bm->nwords - w0);
	memset(buf, 0, REPL_BM_BLOCK_SIZE);
	put_le32(buf + BM_OFF_MAGIC, REPL_BM_MAGIC);
	put_le16(buf + BM_OFF_VERSION, REPL_BM_VERSION);
	put_le16(buf + BM_OFF_HDR_LEN, STORE_BM_HDR_LEN);
	put_le32(buf + BM_OFF_SLOT, slot);
	put_le32(buf + BM_OFF_INDEX, (uint32_t)idx);
	memcpy(buf + BM_OFF_UUID, uuid->b, 16);
	put_le64(buf + BM_OFF_SEQ, seq);
	put_le32(buf + BM_OFF_GRAIN, bm->grain);
	put_le32(buf + BM_OFF_NBITS, (uint32_t)block_nbits(bm->total_bits, idx));
	put_le64(buf + BM_OFF_TOTAL_BITS, bm->total_bits);
	put_le32(buf + BM_OFF_FLAGS, flags);
	for (uint64_t i = 0; i < nw; i++)
		put_le64(buf + BM_OFF_BITS + i * 8, bm->words[w0 + i]);
	put_le32(buf + BM_OFF_CRC, block_crc(buf));
	bm->dirty[idx / 64] &= ~(1ULL << (idx % 64));
	return 0;
}

/* memcmp against itself shifted by one: the library's vector loop
 * instead of a byte loop (recovery checks 64 KiB at a time) */
static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Replaces block idx's words with the payload (NULL: all clear). */
static void load_block(struct repl_dirty_bitmap *bm, uint64_t idx, const uint8_t *payload)
{
	uint64_t w0 = idx * WORDS_PER_BLOCK;
	uint64_t nw = MIN((uint64_t)WORDS_PER_BLOCK, bm->nwords - w0);

	for (uint64_t i = 0; i < nw; i++)
		store_word(bm, w0 + i, payload ? get_le64(payload + i * 8) : 0);
	bm->dirty[idx / 64] &= ~(1ULL << (idx % 64));
}

/* CRC-valid block: do its header fields describe block idx of bm? */
static enum repl_bm_block_err check_fields(const struct repl_dirty_bitmap *bm,
					   uint64_t idx, const uint8_t *buf)
{
	uint64_t total = get_le64(buf + BM_OFF_TOTAL_BITS);
	uint64_t nbits = get_le32(buf + BM_OFF_NBITS);
	const uint8_t *bits = buf + BM_OFF_BITS;

	if (get_le32(buf + BM_OFF_GRAIN) != bm->grain)
		return REPL_BM_BLOCK_WRONG_GRAIN;
	/* a bitmap only grows: a block from a larger one is not ours */
	if ((get_le32(buf + BM_OFF_FLAGS) & ~REPL_BMB_F_KNOWN) || total > bm->total_bits ||
	    total <= idx * REPL_BM_BITS_PER_BLOCK ||
	    nbits != block_nbits(total, idx))
		return REPL_BM_BLOCK_BAD_FIELD;
	/* bits past nbits must be zero */
	if (nbits % 8 && (bits[nbits / 8] >> (nbits % 8)))
		return REPL_BM_BLOCK_BAD_FIELD;
	if (!all_zero(bits + div_up(nbits, 8), PAYLOAD_LEN - div_up(nbits, 8)))
		return REPL_BM_BLOCK_BAD_FIELD;
	return REPL_BM_BLOCK_OK;
}

enum repl_bm_block_err repl_bitmap_decode_block(struct repl_dirty_bitmap *bm, uint64_t idx,
						uint32_t slot,
						const struct urbd_uuid *uuid,
						const uint8_t *buf, size_t len,
						uint64_t *seq, uint32_t *flags)
{
	enum repl_bm_block_err e;

	if (len < REPL_BM_BLOCK_SIZE)
		return REPL_BM_BLOCK_SHORT;
	if (idx >= bm->nblocks)
		return REPL_BM_BLOCK_WRONG_INDEX;
	if (all_zero(buf, REPL_BM_BLOCK_SIZE)) {
		load_block(bm, idx, NULL);
		if (seq)
			*seq = 0;
		if (flags)
			*flags = 0;
		return REPL_BM_BLOCK_ZERO;
	}
	if (get_le32(buf + BM_OFF_MAGIC) != REPL_BM_MAGIC)
		return REPL_BM_BLOCK_BAD_MAGIC;
	/* CRC before version: a flipped version bit is corruption, not a
	 * newer format */
	if (get_le32(buf + BM_OFF_CRC) != block_crc(buf))
		return REPL_BM_BLOCK_BAD_CRC;
	if (get_le16(buf + BM_OFF_VERSION) != REPL_BM_VERSION ||
	    get_le16(buf + BM_OFF_HDR_LEN) != STORE_BM_HDR_LEN)
		return REPL_BM_BLOCK_BAD_VERSION;
	if (memcmp(buf + BM_OFF_UUID, uuid->b, 16) != 0)
		return REPL_BM_BLOCK_WRONG_VOLUME;
	if (get_le32(buf + BM_OFF_SLOT) != slot)
		return REPL_BM_BLOCK_WRONG_SLOT;
	if (get_le32(buf + BM_OFF_INDEX) != idx)
		return REPL_BM_BLOCK_WRONG_INDEX;
	e = check_fields(bm, idx, buf);
	if (e != REPL_BM_BLOCK_OK)
		return e;
	load_block(bm, idx, buf + BM_OFF_BITS);
	if (seq)
		*seq = get_le64(buf + BM_OFF_SEQ);
	if (flags)
		*flags = get_le32(buf + BM_OFF_FLAGS);
	return REPL_BM_BLOCK_OK;
}

/* ---- wire ----------------------------------------------------------------- */

static bool chunk_valid(const struct repl_dirty_bitmap *bm, uint64_t first_bit,
			size_t len)
{
	return first_bit % 64 == 0 && first_bit < bm->total_bits &&
	       len > 0 && len % 8 == 0 && len <= REPL_MAX_BITMAP;
}

int repl_bitmap_export_chunk(const struct repl_dirty_bitmap *bm, uint64_t first_bit,
			     uint8_t *buf, size_t len)
{
	uint64_t w0 = first_bit / 64, nw;

	if (!chunk_valid(bm, first_bit, len))
		return -EINVAL;
	nw = MIN((uint64_t)len / 8, bm->nwords - w0);
	for (uint64_t i = 0; i < nw; i++)
		put_le64(buf + i * 8, bm->words[w0 + i]);
	return (int)(nw * 8);
}

int64_t repl_bitmap_or(struct repl_dirty_bitmap *dst, const struct repl_dirty_bitmap *src)
{
	int64_t newly = 0;

	if (dst->size != src->size || dst->grain != src->grain)
		return -EINVAL;
	for (uint64_t w = 0; w < dst->nwords; w++) {
		uint64_t add = src->words[w] & ~dst->words[w];

		if (!add)
			continue;
		newly += __builtin_popcountll(add);
		store_word(dst, w, dst->words[w] | add);
	}
	return newly;
}

int repl_bitmap_merge_chunk(struct repl_dirty_bitmap *bm, uint64_t first_bit,
			    const uint8_t *buf, size_t len)
{
	uint64_t w0 = first_bit / 64, nw = len / 8, newly = 0;
	unsigned tail = bm->total_bits % 64;

	if (!chunk_valid(bm, first_bit, len) || nw > bm->nwords - w0)
		return -EINVAL;
	/* validate before touching anything: a bad chunk changes nothing */
	if (tail && w0 + nw == bm->nwords &&
	    (get_le64(buf + (nw - 1) * 8) & ~word_mask(0, tail - 1)))
		return -EINVAL;
	for (uint64_t i = 0; i < nw; i++) {
		uint64_t old = bm->words[w0 + i];
		uint64_t add = get_le64(buf + i * 8) & ~old;

		if (!add)
			continue;
		newly += (uint64_t)__builtin_popcountll(add);
		store_word(bm, w0 + i, old | add);
	}
	return (int)newly;
}
