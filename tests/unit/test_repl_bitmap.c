/* repl_bitmap.c: the per-peer dirty bitmap. In-memory bit operations at
 * grain and word boundaries and at the (partial) end of the volume, the
 * O(1) count, growth, dirty-block tracking, the on-disk block round trip
 * with one test per rejection reason (every single bit flip caught), the
 * sizing the metadata layout reserves, and the BITMAP wire chunks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"
#include "../../replication/repl_bitmap.h"
#include "../../replication/repl_proto.h"
#include "util.h"

#define KIB 1024ULL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define G64 (64 * KIB) /* default grain */
#define BPB REPL_BM_BITS_PER_BLOCK

static const struct urbd_uuid uuid_a = { { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
					   0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf } };
static const struct urbd_uuid uuid_b = { { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
					   0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xb0 } };

static struct repl_dirty_bitmap *mk(uint64_t size, uint32_t grain)
{
	struct repl_dirty_bitmap *bm = repl_bitmap_create(size, grain);

	assert_non_null(bm);
	return bm;
}

/* a bitmap of three blocks, the last one partial */
#define THREE_BLOCKS_SIZE ((2ULL * BPB + 1000) * G64 - 4096)

static void fix_crc(uint8_t *b)
{
	put_le32(b + BM_OFF_CRC, crc32c(crc32c(0, b, BM_OFF_CRC), b + BM_OFF_BITS,
					REPL_BM_BLOCK_SIZE - BM_OFF_BITS));
}

/* ---- create and sizing ------------------------------------------------- */

static void test_create_rejects(void **state)
{
	errno = 0;
	assert_null(repl_bitmap_create(0, 0));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(repl_bitmap_create(GIB, 2048)); /* below 4 KiB */
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(repl_bitmap_create(GIB, 3 * 4096)); /* not a power of two */
	assert_int_equal(errno, EINVAL);
}

static void test_create_defaults(void **state)
{
	struct repl_dirty_bitmap *bm = mk(GIB, 0);

	assert_int_equal(repl_bitmap_grain(bm), STORE_BM_GRAIN_DEFAULT);
	assert_int_equal(repl_bitmap_size(bm), GIB);
	assert_int_equal(repl_bitmap_total_bits(bm), 16384);
	assert_int_equal(repl_bitmap_blocks(bm), 1);
	assert_int_equal(repl_bitmap_count(bm), 0);
	assert_true(repl_bitmap_find_next_set(bm, 0) == REPL_BM_NONE);
	assert_true(repl_bitmap_next_dirty_block(bm, 0) == REPL_BM_NONE);
	repl_bitmap_free(bm);
	repl_bitmap_free(NULL);
}

static void test_sizing(void **state)
{
	assert_int_equal(repl_bitmap_bits_for(GIB, 0), 16384);
	assert_int_equal(repl_bitmap_bits_for(GIB + 1, 0), 16385);
	assert_int_equal(repl_bitmap_bits_for(4096, 0), 1);
	assert_int_equal(repl_bitmap_blocks_for(4096, 0), 1);
	assert_int_equal(repl_bitmap_blocks_for((uint64_t)BPB * G64, 0), 1);
	assert_int_equal(repl_bitmap_blocks_for((uint64_t)BPB * G64 + 1, 0), 2);
	/* 1 TiB: 16 Mi bits / 32256 per block */
	assert_int_equal(repl_bitmap_blocks_for(1ULL << 40, 0), 521);
	assert_int_equal(repl_bitmap_bytes_per_peer(1ULL << 40, 0), 521 * 4096);
	assert_int_equal(repl_bitmap_bytes_per_peer(1ULL << 40, 1u << 20), 33 * 4096);
}

/* store_meta_layout() must reserve what the format needs, for any size */
static void test_layout_reserves_enough(void **state)
{
	static const uint64_t sizes[] = { 4096, 64 * KIB, GIB, GIB + 4096,
					  (uint64_t)BPB * G64, (uint64_t)BPB * G64 + 4096,
					  100 * GIB, 1ULL << 40, 3ULL << 40, 1ULL << 44 };
	static const uint32_t grains[] = { 0, 4096, 1u << 20, 1u << 31 };

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
		for (size_t j = 0; j < ARRAY_SIZE(grains); j++) {
			struct store_meta m = { .size = sizes[i], .bm_grain = grains[j] };
			uint64_t need = repl_bitmap_bytes_per_peer(sizes[i], grains[j]);

			store_meta_layout(&m);
			assert_true(m.bm_len_per_peer >= need);
			assert_true(m.bm_len_per_peer < 2 * need); /* bounded slack */
			assert_int_equal(m.bm_len_per_peer % 4096, 0);
			assert_true(m.bm_offset >= m.al_offset + m.al_len);
			assert_int_equal(m.al_len, REPL_BM_BLOCK_SIZE * 16);
		}
}

/* growing inside the power-of-two bucket keeps every slot in place */
static void test_layout_stable_while_growing(void **state)
{
	/* 1 TiB needs 521 blocks and reserves 1024: room up to 1024 blocks */
	struct store_meta a = { .size = 1ULL << 40 };
	struct store_meta b = { .size = 1024ULL * BPB * G64 };
	struct store_meta c = { .size = 1024ULL * BPB * G64 + 4096 };

	store_meta_layout(&a);
	store_meta_layout(&b);
	store_meta_layout(&c);
	assert_int_equal(a.bm_len_per_peer, 1024 * 4096);
	assert_int_equal(b.bm_len_per_peer, a.bm_len_per_peer);
	assert_int_equal(c.bm_len_per_peer, 2048 * 4096);
}

static void test_block_offset(void **state)
{
	struct store_meta m = { .size = 1ULL << 40 };
	uint64_t off;

	store_meta_layout(&m);
	assert_int_equal(repl_bitmap_block_offset(&m, 0, 0, &off), 0);
	assert_int_equal(off, m.bm_offset);
	assert_int_equal(repl_bitmap_block_offset(&m, 2, 5, &off), 0);
	assert_int_equal(off, m.bm_offset + 2 * m.bm_len_per_peer + 5 * 4096);
	assert_int_equal(repl_bitmap_block_offset(&m, URBD_MAX_PEERS - 1, 1023, &off), 0);
	assert_int_equal(off + 4096, m.bm_offset + URBD_MAX_PEERS * m.bm_len_per_peer);
	assert_int_equal(repl_bitmap_block_offset(&m, URBD_MAX_PEERS - 1, 1024, &off), -EINVAL);
	assert_int_equal(repl_bitmap_block_offset(&m, URBD_MAX_PEERS, 0, &off), -EINVAL);
	m.bm_offset = UINT64_MAX - 4096; /* a hostile superblock */
	assert_int_equal(repl_bitmap_block_offset(&m, 1, 0, &off), -EINVAL);
}

/* ---- ranges -------------------------------------------------------------- */

static void test_set_range_counts(void **state)
{
	struct repl_dirty_bitmap *bm = mk(GIB, 0);

	assert_int_equal(repl_bitmap_set_range(bm, 0, 1), 1);
	assert_int_equal(repl_bitmap_set_range(bm, 0, 512), 0); /* already set */
	assert_int_equal(repl_bitmap_count(bm), 1);
	/* [64K - 512, 64K + 512) touches grains 0 and 1 */
	assert_int_equal(repl_bitmap_set_range(bm, G64 - 512, 1024), 1);
	assert_true(repl_bitmap_test_bit(bm, 1));
	assert_false(repl_bitmap_test_bit(bm, 2));
	/* 1 MiB write at an unaligned offset: 17 grains, 2 already set */
	assert_int_equal(repl_bitmap_set_range(bm, 4096, MIB), 15);
	assert_int_equal(repl_bitmap_count(bm), 17);
	/* across a word boundary: grains 60..70 */
	assert_int_equal(repl_bitmap_set_range(bm, 60 * G64, 11 * G64), 11);
	assert_int_equal(repl_bitmap_count(bm), 28);
	assert_int_equal(repl_bitmap_test_range(bm, 59 * G64, G64), 0);
	assert_int_equal(repl_bitmap_test_range(bm, 59 * G64, G64 + 1), 1);
	assert_int_equal(repl_bitmap_test_range(bm, 71 * G64, 100 * G64), 0);
	assert_int_equal(repl_bitmap_test_range(bm, 0, GIB), 1);
	repl_bitmap_free(bm);
}

static void test_range_errors(void **state)
{
	struct repl_dirty_bitmap *bm = mk(GIB, 0);
	uint64_t a, b;

	assert_int_equal(repl_bitmap_set_range(bm, 0, 0), -EINVAL);
	assert_int_equal(repl_bitmap_set_range(bm, GIB, 1), -EINVAL);
	assert_int_equal(repl_bitmap_set_range(bm, GIB - 512, 1024), -EINVAL);
	assert_int_equal(repl_bitmap_set_range(bm, 512, UINT64_MAX), -EINVAL);
	assert_int_equal(repl_bitmap_clear_range(bm, 0, 0), -EINVAL);
	assert_int_equal(repl_bitmap_clear_range(bm, UINT64_MAX, 2), -EINVAL);
	assert_int_equal(repl_bitmap_test_range(bm, GIB, 1), -EINVAL);
	assert_int_equal(repl_bitmap_set_bits(bm, 0, 0), -EINVAL);
	assert_int_equal(repl_bitmap_set_bits(bm, 16384, 1), -EINVAL);
	assert_int_equal(repl_bitmap_set_bits(bm, 16383, 2), -EINVAL);
	assert_int_equal(repl_bitmap_clear_bits(bm, 1, UINT64_MAX), -EINVAL);
	assert_int_equal(repl_bitmap_range_blocks(bm, 0, 0, &a, &b), -EINVAL);
	assert_false(repl_bitmap_test_bit(bm, 16384));
	assert_int_equal(repl_bitmap_count(bm), 0);
	assert_true(repl_bitmap_next_dirty_block(bm, 0) == REPL_BM_NONE);
	repl_bitmap_free(bm);
}

static void test_clear_range_whole_grains_only(void **state)
{
	struct repl_dirty_bitmap *bm = mk(GIB, 0);

	assert_int_equal(repl_bitmap_set_bits(bm, 0, 4), 4);
	/* [100, 3 grains + 100) covers grains 1 and 2 fully, 0 and 3 partly */
	assert_int_equal(repl_bitmap_clear_range(bm, 100, 3 * G64), 2);
	assert_true(repl_bitmap_test_bit(bm, 0));
	assert_false(repl_bitmap_test_bit(bm, 1));
	assert_false(repl_bitmap_test_bit(bm, 2));
	assert_true(repl_bitmap_test_bit(bm, 3));
	/* less than a grain inside one: nothing */
	assert_int_equal(repl_bitmap_clear_range(bm, 0, G64 - 512), 0);
	assert_int_equal(repl_bitmap_clear_range(bm, 3 * G64 + 512, G64 - 512), 0);
	assert_int_equal(repl_bitmap_count(bm), 2);
	assert_int_equal(repl_bitmap_clear_range(bm, 0, 4 * G64), 2);
	assert_int_equal(repl_bitmap_count(bm), 0);
	repl_bitmap_free(bm);
}

/* volume of 10 grains + 4 KiB: bit 10 covers a 4 KiB tail */
static void test_partial_last_grain(void **state)
{
	uint64_t size = 10 * G64 + 4096, off, len;
	struct repl_dirty_bitmap *bm = mk(size, 0);
	uint8_t chunk[8];

	assert_int_equal(repl_bitmap_total_bits(bm), 11);
	assert_int_equal(repl_bitmap_set_range(bm, size - 512, 512), 1);
	assert_true(repl_bitmap_test_bit(bm, 10));
	assert_int_equal(repl_bitmap_find_next_set(bm, 0), 10);
	repl_bitmap_bit_range(bm, 10, &off, &len);
	assert_int_equal(off, 10 * G64);
	assert_int_equal(len, 4096);
	repl_bitmap_bit_range(bm, 11, &off, &len);
	assert_int_equal(len, 0);
	repl_bitmap_bit_range(bm, 9, &off, &len);
	assert_int_equal(len, G64);
	/* not reaching the end: the tail grain is not fully covered */
	assert_int_equal(repl_bitmap_clear_range(bm, 10 * G64, 2048), 0);
	/* reaching the end covers it, though shorter than a grain */
	assert_int_equal(repl_bitmap_clear_range(bm, 10 * G64, 4096), 1);
	assert_int_equal(repl_bitmap_count(bm), 0);
	/* set_all never sets bits past the end */
	repl_bitmap_set_all(bm);
	assert_int_equal(repl_bitmap_count(bm), 11);
	assert_int_equal(repl_bitmap_export_chunk(bm, 0, chunk, sizeof(chunk)), 8);
	assert_int_equal(chunk[0], 0xff);
	assert_int_equal(chunk[1], 0x07);
	for (int i = 2; i < 8; i++)
		assert_int_equal(chunk[i], 0);
	repl_bitmap_clear_all(bm);
	assert_int_equal(repl_bitmap_count(bm), 0);
	repl_bitmap_free(bm);
}

static void test_bits_and_find_next(void **state)
{
	struct repl_dirty_bitmap *bm = mk(GIB, 0);
	static const uint64_t want[] = { 0, 63, 64, 127, 1000, 16383 };
	uint64_t bit;
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		assert_int_equal(repl_bitmap_set_bits(bm, want[i], 1), 1);
	for (bit = repl_bitmap_find_next_set(bm, 0); bit != REPL_BM_NONE;
	     bit = repl_bitmap_find_next_set(bm, bit + 1))
		assert_int_equal(bit, want[n++]);
	assert_int_equal(n, ARRAY_SIZE(want));
	assert_int_equal(repl_bitmap_find_next_set(bm, 65), 127);
	assert_int_equal(repl_bitmap_find_next_set(bm, 16383), 16383);
	assert_true(repl_bitmap_find_next_set(bm, 16384) == REPL_BM_NONE);
	assert_true(repl_bitmap_find_next_set(bm, UINT64_MAX) == REPL_BM_NONE);
	/* a run across two words, partly set already */
	assert_int_equal(repl_bitmap_set_bits(bm, 60, 10), 8);
	assert_int_equal(repl_bitmap_count(bm), 14);
	assert_int_equal(repl_bitmap_clear_bits(bm, 62, 4), 4);
	assert_int_equal(repl_bitmap_clear_bits(bm, 62, 4), 0);
	assert_int_equal(repl_bitmap_count(bm), 10);
	assert_int_equal(repl_bitmap_find_next_set(bm, 62), 66);
	repl_bitmap_set_all(bm);
	assert_int_equal(repl_bitmap_count(bm), 16384);
	assert_int_equal(repl_bitmap_clear_bits(bm, 0, 16384), 16384);
	assert_int_equal(repl_bitmap_count(bm), 0);
	repl_bitmap_free(bm);
}

/* the O(1) count agrees with a recount after a random walk */
static void test_count_matches_recount(void **state)
{
	struct repl_dirty_bitmap *bm = mk(THREE_BLOCKS_SIZE, 0);
	uint64_t total = repl_bitmap_total_bits(bm), n = 0, bit;

	srand(7);
	for (int i = 0; i < 2000; i++) {
		uint64_t first = (uint64_t)rand() % total;
		uint64_t count = 1 + (uint64_t)rand() % MIN(300, total - first);

		if (rand() % 3)
			assert_true(repl_bitmap_set_bits(bm, first, count) >= 0);
		else
			assert_true(repl_bitmap_clear_bits(bm, first, count) >= 0);
	}
	for (bit = repl_bitmap_find_next_set(bm, 0); bit != REPL_BM_NONE;
	     bit = repl_bitmap_find_next_set(bm, bit + 1))
		n++;
	assert_int_equal(n, repl_bitmap_count(bm));
	repl_bitmap_free(bm);
}

static void test_resize_grow(void **state)
{
	struct repl_dirty_bitmap *bm = mk(10 * G64 + 4096, 0);

	assert_int_equal(repl_bitmap_set_bits(bm, 10, 1), 1);
	assert_int_equal(repl_bitmap_resize(bm, 10 * G64), -EINVAL); /* shrink */
	assert_int_equal(repl_bitmap_resize(bm, THREE_BLOCKS_SIZE), 0);
	assert_int_equal(repl_bitmap_size(bm), THREE_BLOCKS_SIZE);
	assert_int_equal(repl_bitmap_total_bits(bm), 2 * BPB + 1000);
	assert_int_equal(repl_bitmap_blocks(bm), 3);
	assert_int_equal(repl_bitmap_count(bm), 1);
	assert_true(repl_bitmap_test_bit(bm, 10));
	assert_int_equal(repl_bitmap_find_next_set(bm, 11), REPL_BM_NONE);
	/* the new region is usable; the new last grain is partial */
	assert_int_equal(repl_bitmap_set_range(bm, THREE_BLOCKS_SIZE - 1, 1), 1);
	assert_true(repl_bitmap_test_bit(bm, 2 * BPB + 999));
	assert_int_equal(repl_bitmap_next_dirty_block(bm, 1), 2);
	assert_int_equal(repl_bitmap_resize(bm, THREE_BLOCKS_SIZE), 0); /* no-op */
	assert_int_equal(repl_bitmap_count(bm), 2);
	repl_bitmap_free(bm);
}

/* ---- dirty blocks ----------------------------------------------------------- */

static void test_dirty_blocks(void **state)
{
	struct repl_dirty_bitmap *bm = mk(THREE_BLOCKS_SIZE, 0);
	uint8_t buf[REPL_BM_BLOCK_SIZE];
	uint64_t first, count;

	assert_int_equal(repl_bitmap_set_bits(bm, BPB, 1), 1); /* block 1's first bit */
	assert_int_equal(repl_bitmap_next_dirty_block(bm, 0), 1);
	assert_true(repl_bitmap_next_dirty_block(bm, 2) == REPL_BM_NONE);
	/* no change, no dirt */
	assert_int_equal(repl_bitmap_set_bits(bm, BPB, 1), 0);
	assert_int_equal(repl_bitmap_clear_bits(bm, 0, 5), 0);
	assert_false(repl_bitmap_block_dirty(bm, 0));
	assert_int_equal(repl_bitmap_encode_block(bm, 1, 0, &uuid_a, 1, 0, buf), 0);
	assert_true(repl_bitmap_next_dirty_block(bm, 0) == REPL_BM_NONE);
	/* the write failed: write it again */
	assert_int_equal(repl_bitmap_mark_block_dirty(bm, 1), 0);
	assert_true(repl_bitmap_block_dirty(bm, 1));
	assert_int_equal(repl_bitmap_mark_block_dirty(bm, 3), -EINVAL);
	assert_false(repl_bitmap_block_dirty(bm, 3));
	/* a run across the block 0/1 boundary dirties both */
	assert_int_equal(repl_bitmap_encode_block(bm, 1, 0, &uuid_a, 2, 0, buf), 0);
	assert_int_equal(repl_bitmap_set_bits(bm, BPB - 3, 6), 5);
	assert_int_equal(repl_bitmap_next_dirty_block(bm, 0), 0);
	assert_int_equal(repl_bitmap_next_dirty_block(bm, 1), 1);
	/* clearing dirties too */
	assert_int_equal(repl_bitmap_encode_block(bm, 0, 0, &uuid_a, 3, 0, buf), 0);
	assert_int_equal(repl_bitmap_clear_bits(bm, BPB - 1, 1), 1);
	assert_true(repl_bitmap_block_dirty(bm, 0));
	/* set_block: every bit of the block, and dirty even without change */
	assert_int_equal(repl_bitmap_set_block(bm, 2), 0);
	assert_int_equal(repl_bitmap_count(bm), 6 - 1 + 1000);
	assert_int_equal(repl_bitmap_encode_block(bm, 2, 0, &uuid_a, 4, 0, buf), 0);
	assert_int_equal(repl_bitmap_set_block(bm, 2), 0);
	assert_true(repl_bitmap_block_dirty(bm, 2));
	assert_int_equal(repl_bitmap_set_block(bm, 3), -EINVAL);
	/* which blocks a byte range's bits live in */
	assert_int_equal(repl_bitmap_range_blocks(bm, 0, 4 * MIB, &first, &count), 0);
	assert_int_equal(first, 0);
	assert_int_equal(count, 1);
	assert_int_equal(repl_bitmap_range_blocks(bm, (uint64_t)BPB * G64 - 4096, 8192,
						  &first, &count), 0);
	assert_int_equal(first, 0);
	assert_int_equal(count, 2);
	assert_int_equal(repl_bitmap_range_blocks(bm, THREE_BLOCKS_SIZE - 1, 1,
						  &first, &count), 0);
	assert_int_equal(first, 2);
	assert_int_equal(count, 1);
	repl_bitmap_free(bm);
}

/* ---- on-disk blocks --------------------------------------------------------- */

static void fill_random(struct repl_dirty_bitmap *bm, unsigned seed)
{
	uint64_t total = repl_bitmap_total_bits(bm);

	srand(seed);
	for (int i = 0; i < 3000; i++)
		repl_bitmap_set_bits(bm, (uint64_t)rand() % total, 1);
	repl_bitmap_set_bits(bm, total - 1, 1); /* the very last bit */
}

static void assert_same_bits(const struct repl_dirty_bitmap *a,
			     const struct repl_dirty_bitmap *b)
{
	uint64_t x = repl_bitmap_find_next_set(a, 0), y = repl_bitmap_find_next_set(b, 0);

	assert_int_equal(repl_bitmap_count(a), repl_bitmap_count(b));
	while (x != REPL_BM_NONE) {
		assert_int_equal(x, y);
		x = repl_bitmap_find_next_set(a, x + 1);
		y = repl_bitmap_find_next_set(b, y + 1);
	}
	assert_true(y == REPL_BM_NONE);
}

static void test_block_round_trip(void **state)
{
	struct repl_dirty_bitmap *a = mk(THREE_BLOCKS_SIZE, 0), *b = mk(THREE_BLOCKS_SIZE, 0);
	uint8_t buf[REPL_BM_BLOCK_SIZE], again[REPL_BM_BLOCK_SIZE];
	uint64_t seq = 0;
	uint32_t flags = 7;

	fill_random(a, 1);
	for (uint64_t i = 0; i < 3; i++) {
		uint32_t f = i == 1 ? REPL_BMB_F_FORMER_PRIMARY : 0;

		assert_int_equal(repl_bitmap_encode_block(a, i, 2, &uuid_a, 100 + i, f, buf), 0);
		assert_int_equal(get_le32(buf + BM_OFF_MAGIC), REPL_BM_MAGIC);
		assert_int_equal(get_le32(buf + BM_OFF_INDEX), i);
		assert_int_equal(get_le32(buf + BM_OFF_NBITS), i < 2 ? BPB : 1000);
		assert_int_equal(repl_bitmap_decode_block(b, i, 2, &uuid_a, buf,
							  sizeof(buf), &seq, &flags),
				 REPL_BM_BLOCK_OK);
		assert_int_equal(seq, 100 + i);
		assert_int_equal(flags, f);
		/* decoding made it clean and re-encodes to the same bytes */
		assert_false(repl_bitmap_block_dirty(b, i));
		assert_int_equal(repl_bitmap_encode_block(b, i, 2, &uuid_a, 100 + i, f, again), 0);
		assert_memory_equal(buf, again, sizeof(buf));
	}
	assert_same_bits(a, b);
	/* decoding replaces: a block of an empty bitmap clears */
	{
		struct repl_dirty_bitmap *empty = mk(THREE_BLOCKS_SIZE, 0);

		assert_int_equal(repl_bitmap_encode_block(empty, 1, 2, &uuid_a, 9, 0, buf), 0);
		assert_int_equal(repl_bitmap_decode_block(b, 1, 2, &uuid_a, buf, sizeof(buf), NULL, NULL),
				 REPL_BM_BLOCK_OK);
		assert_true(repl_bitmap_find_next_set(b, BPB) >= 2 * BPB);
		repl_bitmap_free(empty);
	}
	repl_bitmap_free(a);
	repl_bitmap_free(b);
}

/* bit i of the block's payload is bit i of the block's range */
static void test_block_bit_order(void **state)
{
	struct repl_dirty_bitmap *bm = mk(GIB, 0);
	uint8_t buf[REPL_BM_BLOCK_SIZE];

	repl_bitmap_set_bits(bm, 0, 1);
	repl_bitmap_set_bits(bm, 9, 1);
	repl_bitmap_set_bits(bm, 16383, 1);
	assert_int_equal(repl_bitmap_encode_block(bm, 0, 1, &uuid_a, 5, 0, buf), 0);
	assert_int_equal(buf[BM_OFF_BITS + 0], 0x01);
	assert_int_equal(buf[BM_OFF_BITS + 1], 0x02);
	assert_int_equal(buf[BM_OFF_BITS + 2047], 0x80);
	assert_int_equal(get_le32(buf + BM_OFF_NBITS), 16384);
	assert_int_equal(get_le64(buf + BM_OFF_TOTAL_BITS), 16384);
	assert_int_equal(get_le32(buf + BM_OFF_GRAIN), G64);
	assert_int_equal(get_le32(buf + BM_OFF_SLOT), 1);
	assert_int_equal(get_le64(buf + BM_OFF_SEQ), 5);
	assert_memory_equal(buf + BM_OFF_UUID, uuid_a.b, 16);
	assert_int_equal(repl_bitmap_encode_block(bm, 1, 0, &uuid_a, 5, 0, buf), -EINVAL);
	assert_int_equal(repl_bitmap_encode_block(bm, 0, URBD_MAX_PEERS, &uuid_a, 5, 0, buf),
			 -EINVAL);
	assert_int_equal(repl_bitmap_encode_block(bm, 0, 0, &uuid_a, 5, REPL_BMB_F_KNOWN + 1, buf),
			 -EINVAL);
	repl_bitmap_free(bm);
}

/* any single flipped bit is caught, and the bitmap stays as it was */
static void test_block_every_bit_flip(void **state)
{
	struct repl_dirty_bitmap *a = mk(GIB, 0), *b = mk(GIB, 0);
	uint8_t buf[REPL_BM_BLOCK_SIZE];
	uint64_t seq = 77;

	fill_random(a, 2);
	assert_int_equal(repl_bitmap_encode_block(a, 0, 1, &uuid_a, 42, 0, buf), 0);
	repl_bitmap_set_bits(b, 5, 3);
	for (size_t bit = 0; bit < 8 * sizeof(buf); bit++) {
		enum repl_bm_block_err e;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		e = repl_bitmap_decode_block(b, 0, 1, &uuid_a, buf, sizeof(buf), &seq, NULL);
		if (e != REPL_BM_BLOCK_BAD_CRC && e != REPL_BM_BLOCK_BAD_MAGIC)
			fail_msg("flip of bit %zu: %s", bit, repl_bm_block_err_name(e));
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(seq, 77);
	assert_int_equal(repl_bitmap_count(b), 3);
	assert_int_equal(repl_bitmap_decode_block(b, 0, 1, &uuid_a, buf, sizeof(buf), &seq, NULL),
			 REPL_BM_BLOCK_OK);
	assert_same_bits(a, b);
	repl_bitmap_free(a);
	repl_bitmap_free(b);
}

static void test_block_zero_is_clear(void **state)
{
	struct repl_dirty_bitmap *bm = mk(THREE_BLOCKS_SIZE, 0);
	uint8_t buf[REPL_BM_BLOCK_SIZE] = { 0 };
	uint64_t seq = 9;

	repl_bitmap_set_bits(bm, BPB - 1, 3); /* last of block 0, first two of 1 */
	assert_int_equal(repl_bitmap_decode_block(bm, 1, 0, &uuid_a, buf, sizeof(buf), &seq, NULL),
			 REPL_BM_BLOCK_ZERO);
	assert_true(repl_bm_block_usable(REPL_BM_BLOCK_ZERO));
	assert_int_equal(seq, 0);
	assert_int_equal(repl_bitmap_count(bm), 1);
	assert_true(repl_bitmap_test_bit(bm, BPB - 1));
	assert_false(repl_bitmap_block_dirty(bm, 1));
	repl_bitmap_free(bm);
}

static void test_block_rejects_foreign(void **state)
{
	struct repl_dirty_bitmap *bm = mk(THREE_BLOCKS_SIZE, 0);
	struct repl_dirty_bitmap *other = mk(THREE_BLOCKS_SIZE, 1u << 20);
	uint8_t buf[REPL_BM_BLOCK_SIZE];

	repl_bitmap_set_bits(bm, BPB + 5, 1);
	assert_int_equal(repl_bitmap_encode_block(bm, 1, 2, &uuid_a, 1, 0, buf), 0);
	assert_int_equal(repl_bitmap_decode_block(bm, 1, 2, &uuid_b, buf, sizeof(buf), NULL, NULL),
			 REPL_BM_BLOCK_WRONG_VOLUME);
	assert_int_equal(repl_bitmap_decode_block(bm, 1, 3, &uuid_a, buf, sizeof(buf), NULL, NULL),
			 REPL_BM_BLOCK_WRONG_SLOT);
	assert_int_equal(repl_bitmap_decode_block(bm, 0, 2, &uuid_a, buf, sizeof(buf), NULL, NULL),
			 REPL_BM_BLOCK_WRONG_INDEX);
	assert_int_equal(repl_bitmap_decode_block(bm, 3, 2, &uuid_a, buf, sizeof(buf), NULL, NULL),
			 REPL_BM_BLOCK_WRONG_INDEX); /* past the bitmap */
	assert_int_equal(repl_bitmap_decode_block(bm, 1, 2, &uuid_a, buf, sizeof(buf) - 1, NULL, NULL),
			 REPL_BM_BLOCK_SHORT);
	/* written with a 64 KiB grain, read with 1 MiB */
	assert_int_equal(repl_bitmap_decode_block(other, 0, 2, &uuid_a, buf, sizeof(buf), NULL, NULL),
			 REPL_BM_BLOCK_WRONG_INDEX);
	assert_int_equal(repl_bitmap_encode_block(bm, 0, 2, &uuid_a, 1, 0, buf), 0);
	assert_int_equal(repl_bitmap_decode_block(other, 0, 2, &uuid_a, buf, sizeof(buf), NULL, NULL),
			 REPL_BM_BLOCK_WRONG_GRAIN);
	/* nothing was trusted */
	assert_int_equal(repl_bitmap_count(bm), 1);
	assert_int_equal(repl_bitmap_count(other), 0);
	repl_bitmap_free(bm);
	repl_bitmap_free(other);
}

/* header damage behind a valid CRC: each field's own reason */
static void expect_field(void (*mutate)(uint8_t *), enum repl_bm_block_err want)
{
	struct repl_dirty_bitmap *bm = mk(THREE_BLOCKS_SIZE, 0);
	uint8_t buf[REPL_BM_BLOCK_SIZE];

	repl_bitmap_set_bits(bm, 2 * BPB, 1000);
	assert_int_equal(repl_bitmap_encode_block(bm, 2, 0, &uuid_a, 1, 0, buf), 0);
	mutate(buf);
	fix_crc(buf);
	assert_int_equal(repl_bitmap_decode_block(bm, 2, 0, &uuid_a, buf, sizeof(buf), NULL, NULL),
			 want);
	repl_bitmap_free(bm);
}

static void m_version(uint8_t *b) { put_le16(b + BM_OFF_VERSION, 2); }
static void m_hdr_len(uint8_t *b) { put_le16(b + BM_OFF_HDR_LEN, 128); }
static void m_flags(uint8_t *b) { put_le32(b + BM_OFF_FLAGS, REPL_BMB_F_KNOWN + 1); }
static void m_nbits(uint8_t *b) { put_le32(b + BM_OFF_NBITS, 1001); }
static void m_bit_past_nbits(uint8_t *b) { b[BM_OFF_BITS + 1000 / 8] |= 1u << (1000 % 8); }
static void m_byte_past_nbits(uint8_t *b) { b[REPL_BM_BLOCK_SIZE - 1] = 0x80; }
static void m_total_larger(uint8_t *b)
{
	/* from a bigger bitmap: 3 full blocks, nbits consistent with it */
	put_le64(b + BM_OFF_TOTAL_BITS, 3ULL * BPB);
	put_le32(b + BM_OFF_NBITS, BPB);
}
static void m_total_before_block(uint8_t *b)
{
	put_le64(b + BM_OFF_TOTAL_BITS, 2ULL * BPB);
	put_le32(b + BM_OFF_NBITS, 0);
}

static void test_block_bad_version(void **s) { expect_field(m_version, REPL_BM_BLOCK_BAD_VERSION); }
static void test_block_bad_hdr_len(void **s) { expect_field(m_hdr_len, REPL_BM_BLOCK_BAD_VERSION); }
static void test_block_unknown_flags(void **s) { expect_field(m_flags, REPL_BM_BLOCK_BAD_FIELD); }
static void test_block_bad_nbits(void **s) { expect_field(m_nbits, REPL_BM_BLOCK_BAD_FIELD); }
static void test_block_bit_past_nbits(void **s) { expect_field(m_bit_past_nbits, REPL_BM_BLOCK_BAD_FIELD); }
static void test_block_byte_past_nbits(void **s) { expect_field(m_byte_past_nbits, REPL_BM_BLOCK_BAD_FIELD); }
static void test_block_total_larger(void **s) { expect_field(m_total_larger, REPL_BM_BLOCK_BAD_FIELD); }
static void test_block_total_before(void **s) { expect_field(m_total_before_block, REPL_BM_BLOCK_BAD_FIELD); }

/* a block written before the volume grew still loads */
static void test_block_from_before_grow(void **state)
{
	struct repl_dirty_bitmap *small = mk(10 * G64 + 4096, 0);
	struct repl_dirty_bitmap *big = mk(THREE_BLOCKS_SIZE, 0);
	uint8_t buf[REPL_BM_BLOCK_SIZE];

	repl_bitmap_set_bits(small, 0, 11);
	assert_int_equal(repl_bitmap_encode_block(small, 0, 0, &uuid_a, 1, 0, buf), 0);
	repl_bitmap_set_bits(big, 11, 100); /* gone after the load: replaced */
	assert_int_equal(repl_bitmap_decode_block(big, 0, 0, &uuid_a, buf, sizeof(buf), NULL, NULL),
			 REPL_BM_BLOCK_OK);
	assert_int_equal(repl_bitmap_count(big), 11);
	assert_int_equal(repl_bitmap_find_next_set(big, 11), REPL_BM_NONE);
	repl_bitmap_free(small);
	repl_bitmap_free(big);
}

static void test_block_err_names(void **state)
{
	for (int e = REPL_BM_BLOCK_OK; e <= REPL_BM_BLOCK_BAD_FIELD; e++) {
		assert_non_null(repl_bm_block_err_name(e));
		assert_string_not_equal(repl_bm_block_err_name(e), "unknown");
		for (int f = REPL_BM_BLOCK_OK; f < e; f++)
			assert_string_not_equal(repl_bm_block_err_name(e),
						repl_bm_block_err_name(f));
	}
	assert_string_equal(repl_bm_block_err_name(99), "unknown");
	assert_false(repl_bm_block_usable(REPL_BM_BLOCK_BAD_CRC));
}

/* ---- wire chunks ------------------------------------------------------------ */

static void test_chunk_round_trip(void **state)
{
	struct repl_dirty_bitmap *a = mk(THREE_BLOCKS_SIZE, 0), *b = mk(THREE_BLOCKS_SIZE, 0);
	uint64_t total = repl_bitmap_total_bits(a), first = 0;
	static uint8_t chunk[REPL_MAX_BITMAP];
	int n, last = 0;

	fill_random(a, 3);
	repl_bitmap_set_bits(b, 7, 1); /* merge ORs: kept */
	while (first < total) {
		n = repl_bitmap_export_chunk(a, first, chunk, 1000);
		assert_true(n > 0 && n % 8 == 0);
		assert_true(repl_bitmap_merge_chunk(b, first, chunk, (size_t)n) >= 0);
		first += 8ULL * (uint64_t)n;
		last = n;
	}
	/* the last chunk ends at total rounded up to 64 bits */
	assert_int_equal(first, align_up(total, 64));
	assert_int_equal(last, 8192 % 1000);
	repl_bitmap_set_bits(a, 7, 1);
	assert_same_bits(a, b);
	/* every changed block is dirty in the receiver */
	assert_int_equal(repl_bitmap_next_dirty_block(b, 0), 0);
	assert_int_equal(repl_bitmap_next_dirty_block(b, 1), 1);
	assert_int_equal(repl_bitmap_next_dirty_block(b, 2), 2);
	/* merging again sets nothing new */
	n = repl_bitmap_export_chunk(a, 0, chunk, sizeof(chunk));
	assert_int_equal(n, align_up(total, 64) / 8); /* all of it */
	assert_int_equal(repl_bitmap_merge_chunk(b, 0, chunk, (size_t)n), 0);
	repl_bitmap_free(a);
	repl_bitmap_free(b);
}

static void test_chunk_bit_order_and_count(void **state)
{
	struct repl_dirty_bitmap *bm = mk(GIB, 0);
	uint8_t chunk[16] = { 0 };

	chunk[0] = 0x81; /* bits 64 and 71 */
	chunk[9] = 0x01; /* bit 128 */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 64, chunk, sizeof(chunk)), 3);
	assert_true(repl_bitmap_test_bit(bm, 64));
	assert_true(repl_bitmap_test_bit(bm, 71));
	assert_true(repl_bitmap_test_bit(bm, 136));
	assert_int_equal(repl_bitmap_count(bm), 3);
	assert_int_equal(repl_bitmap_merge_chunk(bm, 64, chunk, sizeof(chunk)), 0);
	memset(chunk, 0, sizeof(chunk));
	assert_int_equal(repl_bitmap_export_chunk(bm, 128, chunk, 8), 8);
	assert_int_equal(chunk[1], 0x01);
	repl_bitmap_free(bm);
}

static void test_chunk_errors(void **state)
{
	struct repl_dirty_bitmap *bm = mk(10 * G64 + 4096, 0); /* 11 bits */
	uint8_t chunk[16] = { 0 };

	assert_int_equal(repl_bitmap_merge_chunk(bm, 1, chunk, 8), -EINVAL);  /* unaligned */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 0, chunk, 0), -EINVAL);  /* empty */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 0, chunk, 7), -EINVAL);  /* not 8 */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 64, chunk, 8), -EINVAL); /* past end */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 0, chunk, 16), -EINVAL); /* runs past */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 0, chunk, REPL_MAX_BITMAP + 8), -EINVAL);
	/* a bit past total_bits in the padding of the last word */
	chunk[0] = 0x01;
	chunk[1] = 0x08; /* bit 11 */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 0, chunk, 8), -EINVAL);
	assert_int_equal(repl_bitmap_count(bm), 0); /* all or nothing */
	chunk[1] = 0x04; /* bit 10, the last one */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 0, chunk, 8), 2);
	assert_int_equal(repl_bitmap_export_chunk(bm, 64, chunk, 8), -EINVAL);
	assert_int_equal(repl_bitmap_export_chunk(bm, 0, chunk, 4), -EINVAL);
	assert_int_equal(repl_bitmap_export_chunk(bm, 0, chunk, 16), 8); /* one word */
	repl_bitmap_free(bm);
}

/* a last chunk of a multi-word bitmap whose bits end inside the word */
static void test_chunk_merge_past_end_multiword(void **state)
{
	struct repl_dirty_bitmap *bm = mk(100 * G64, 0); /* 100 bits, 2 words */
	uint8_t chunk[16] = { 0 };

	chunk[8 + 4] = 0x10; /* bit 64 + 36 = 100: past the end */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 0, chunk, 16), -EINVAL);
	assert_int_equal(repl_bitmap_merge_chunk(bm, 64, chunk + 8, 8), -EINVAL);
	chunk[8 + 4] = 0x08; /* bit 99 */
	assert_int_equal(repl_bitmap_merge_chunk(bm, 64, chunk + 8, 8), 1);
	assert_true(repl_bitmap_test_bit(bm, 99));
	repl_bitmap_free(bm);
}

/* dst |= src: counts, dirty blocks, and a geometry mismatch refused */
static void test_or(void **state)
{
	uint64_t size = 3ull * REPL_BM_BITS_PER_BLOCK * 65536; /* three blocks of bits */
	struct repl_dirty_bitmap *a = repl_bitmap_create(size, 65536);
	struct repl_dirty_bitmap *b = repl_bitmap_create(size, 65536);
	struct repl_dirty_bitmap *c = repl_bitmap_create(size, 131072);

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	repl_bitmap_set_range(a, 0, 65536);
	repl_bitmap_set_range(b, 0, 2 * 65536);                            /* overlaps bit 0 */
	repl_bitmap_set_range(b, 2ull * REPL_BM_BITS_PER_BLOCK * 65536, 4096); /* block 2 */
	/* forget what the sets dirtied: only the OR's changes count below */
	for (uint64_t i = 0; i < repl_bitmap_blocks(a); i++) {
		uint8_t blk[REPL_BM_BLOCK_SIZE];

		assert_int_equal(repl_bitmap_encode_block(a, i, 0, &uuid_a, 1, 0, blk), 0);
	}
	assert_int_equal(repl_bitmap_or(a, b), 2);
	assert_int_equal(repl_bitmap_count(a), 3);
	assert_true(repl_bitmap_test_bit(a, 1));
	assert_true(repl_bitmap_test_bit(a, 2ull * REPL_BM_BITS_PER_BLOCK));
	assert_true(repl_bitmap_block_dirty(a, 0));
	assert_false(repl_bitmap_block_dirty(a, 1));
	assert_true(repl_bitmap_block_dirty(a, 2));
	assert_int_equal(repl_bitmap_or(a, b), 0); /* nothing new */
	assert_int_equal(repl_bitmap_or(a, c), -EINVAL);
	assert_int_equal(repl_bitmap_count(a), 3);
	repl_bitmap_free(a);
	repl_bitmap_free(b);
	repl_bitmap_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rejects),
		cmocka_unit_test(test_create_defaults),
		cmocka_unit_test(test_sizing),
		cmocka_unit_test(test_layout_reserves_enough),
		cmocka_unit_test(test_layout_stable_while_growing),
		cmocka_unit_test(test_block_offset),
		cmocka_unit_test(test_set_range_counts),
		cmocka_unit_test(test_range_errors),
		cmocka_unit_test(test_clear_range_whole_grains_only),
		cmocka_unit_test(test_partial_last_grain),
		cmocka_unit_test(test_bits_and_find_next),
		cmocka_unit_test(test_count_matches_recount),
		cmocka_unit_test(test_resize_grow),
		cmocka_unit_test(test_dirty_blocks),
		cmocka_unit_test(test_block_round_trip),
		cmocka_unit_test(test_block_bit_order),
		cmocka_unit_test(test_block_every_bit_flip),
		cmocka_unit_test(test_block_zero_is_clear),
		cmocka_unit_test(test_block_rejects_foreign),
		cmocka_unit_test(test_block_bad_version),
		cmocka_unit_test(test_block_bad_hdr_len),
		cmocka_unit_test(test_block_unknown_flags),
		cmocka_unit_test(test_block_bad_nbits),
		cmocka_unit_test(test_block_bit_past_nbits),
		cmocka_unit_test(test_block_byte_past_nbits),
		cmocka_unit_test(test_block_total_larger),
		cmocka_unit_test(test_block_total_before),
		cmocka_unit_test(test_block_from_before_grow),
		cmocka_unit_test(test_block_err_names),
		cmocka_unit_test(test_chunk_round_trip),
		cmocka_unit_test(test_chunk_bit_order_and_count),
		cmocka_unit_test(test_chunk_errors),
		cmocka_unit_test(test_chunk_merge_past_end_multiword),
		cmocka_unit_test(test_or),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
