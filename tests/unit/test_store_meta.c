/* store_meta.c: superblock encode/decode/pick, pure functions over bytes.
 * Every rejection reason has its own test; "bad field" tests recompute a
 * valid CRC so that the field check itself is what rejects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"
#include "store_format.h"
#include "util.h"

static void sample(struct store_meta *m)
{
	memset(m, 0, sizeof(*m));
	m->seq = 0x0102030405060708ULL;
	for (int i = 0; i < 16; i++)
		m->uuid.b[i] = (uint8_t)(0xa0 + i);
	strcpy(m->name, "pvc-0123.data_x");
	m->size = 1ULL << 30;
	m->block_size = 512;
	m->flags = STORE_SB_F_CLEAN;
	m->created_ns = 0x1122334455667788ULL;
	m->gen.current = 0x1111111111111111ULL;
	m->gen.bitmap = 0x2222222222222222ULL;
	m->gen.history[0] = 0x3333333333333333ULL;
	m->gen.history[1] = 0x4444444444444444ULL;
	m->disk_state = 7;
	store_meta_layout(m);
}

static void encode_sample(uint8_t *buf)
{
	struct store_meta m;

	sample(&m);
	store_meta_encode(&m, buf);
}

static void fix_crc(uint8_t *buf)
{
	put_le32(buf + SB_OFF_CRC, crc32c(0, buf, SB_HDR_LEN));
}

static enum store_meta_err decode(const uint8_t *buf)
{
	struct store_meta m;

	return store_meta_decode(buf, STORE_SB_SIZE, &m);
}

/* ---- round trip ----------------------------------------------------- */

static void test_round_trip_every_field(void **state)
{
	uint8_t buf[STORE_SB_SIZE];
	struct store_meta in, out;

	sample(&in);
	store_meta_encode(&in, buf);
	memset(&out, 0x5a, sizeof(out));
	assert_int_equal(store_meta_decode(buf, sizeof(buf), &out), STORE_META_OK);
	assert_true(out.seq == in.seq);
	assert_memory_equal(out.uuid.b, in.uuid.b, 16);
	assert_string_equal(out.name, in.name);
	assert_true(out.size == in.size);
	assert_int_equal(out.block_size, in.block_size);
	assert_int_equal(out.flags, in.flags);
	assert_true(out.created_ns == in.created_ns);
	assert_true(out.gen.current == in.gen.current);
	assert_true(out.gen.bitmap == in.gen.bitmap);
	assert_true(out.gen.history[0] == in.gen.history[0]);
	assert_true(out.gen.history[1] == in.gen.history[1]);
	assert_int_equal(out.disk_state, in.disk_state);
	assert_int_equal(out.bm_grain, in.bm_grain);
	assert_true(out.al_offset == in.al_offset);
	assert_true(out.al_len == in.al_len);
	assert_true(out.bm_offset == in.bm_offset);
	assert_true(out.bm_len_per_peer == in.bm_len_per_peer);
	/* the whole struct, padding aside: name bytes after the NUL are zero */
	for (size_t i = strlen(in.name); i < sizeof(out.name); i++)
		assert_int_equal(out.name[i], 0);
}

static void test_encode_byte_positions(void **state)
{
	uint8_t buf[STORE_SB_SIZE];
	struct store_meta m;

	sample(&m);
	store_meta_encode(&m, buf);
	assert_true(get_le64(buf + SB_OFF_MAGIC) == STORE_META_MAGIC);
	assert_memory_equal(buf, "URBDMETA", 8);
	assert_int_equal(get_le32(buf + SB_OFF_VERSION), STORE_META_VERSION);
	assert_int_equal(get_le32(buf + SB_OFF_HDR_LEN), SB_HDR_LEN);
	assert_true(get_le64(buf + SB_OFF_SEQ) == m.seq);
	assert_int_equal(buf[SB_OFF_SEQ], 0x08); /* little-endian */
	assert_memory_equal(buf + SB_OFF_UUID, m.uuid.b, 16);
	assert_string_equal((const char *)buf + SB_OFF_NAME, m.name);
	assert_true(get_le64(buf + SB_OFF_SIZE) == m.size);
	assert_int_equal(get_le32(buf + SB_OFF_BLOCK_SIZE), m.block_size);
	assert_int_equal(get_le32(buf + SB_OFF_FLAGS), m.flags);
	assert_true(get_le64(buf + SB_OFF_CREATED) == m.created_ns);
	assert_true(get_le64(buf + SB_OFF_GEN + 24) == m.gen.history[1]);
	assert_int_equal(get_le32(buf + SB_OFF_DISK_STATE), m.disk_state);
	assert_int_equal(get_le32(buf + SB_OFF_BM_GRAIN), m.bm_grain);
	assert_true(get_le64(buf + SB_OFF_BM_LEN) == m.bm_len_per_peer);
	assert_int_equal(get_le32(buf + SB_OFF_CRC), crc32c(0, buf, SB_HDR_LEN));
}

static void test_encode_zero_fills_slot(void **state)
{
	uint8_t buf[STORE_SB_SIZE];

	memset(buf, 0xaa, sizeof(buf));
	encode_sample(buf);
	for (size_t i = SB_OFF_RESERVED; i < SB_HDR_LEN; i++)
		assert_int_equal(buf[i], 0);
	for (size_t i = SB_OFF_CRC + 4; i < STORE_SB_SIZE; i++)
		assert_int_equal(buf[i], 0);
}

static void test_encode_truncates_long_name(void **state)
{
	uint8_t buf[STORE_SB_SIZE];
	struct store_meta m, out;

	sample(&m);
	memset(m.name, 'a', sizeof(m.name)); /* 64 chars, no NUL */
	store_meta_encode(&m, buf);
	assert_int_equal(buf[SB_OFF_NAME + 63], 0);
	assert_int_equal(store_meta_decode(buf, sizeof(buf), &out), STORE_META_OK);
	assert_int_equal(strlen(out.name), 63);
}

static void test_decode_exactly_512(void **state)
{
	uint8_t buf[STORE_SB_SIZE];
	struct store_meta m;

	encode_sample(buf);
	assert_int_equal(store_meta_decode(buf, 512, &m), STORE_META_OK);
}

static void test_decode_ignores_bytes_after_header(void **state)
{
	uint8_t buf[STORE_SB_SIZE];

	encode_sample(buf);
	memset(buf + 512, 0xee, sizeof(buf) - 512);
	assert_int_equal(decode(buf), STORE_META_OK);
}

/* ---- rejections ----------------------------------------------------- */

static void test_reject_short(void **state)
{
	uint8_t buf[STORE_SB_SIZE];
	struct store_meta m;

	encode_sample(buf);
	assert_int_equal(store_meta_decode(buf, 511, &m), STORE_META_SHORT);
	assert_int_equal(store_meta_decode(buf, 0, &m), STORE_META_SHORT);
	assert_int_equal(store_meta_decode(buf, 100, &m), STORE_META_SHORT);
}

static void test_reject_zero(void **state)
{
	uint8_t buf[STORE_SB_SIZE] = { 0 };

	assert_int_equal(decode(buf), STORE_META_ZERO);
	/* only the 512-byte header decides "never written" */
	buf[600] = 1;
	assert_int_equal(decode(buf), STORE_META_ZERO);
}

static void test_reject_bad_magic(void **state)
{
	uint8_t buf[STORE_SB_SIZE];

	encode_sample(buf);
	buf[SB_OFF_MAGIC] ^= 0x20;
	fix_crc(buf);
	assert_int_equal(decode(buf), STORE_META_BAD_MAGIC);
}

static void test_reject_bad_version(void **state)
{
	uint8_t buf[STORE_SB_SIZE];

	encode_sample(buf);
	put_le32(buf + SB_OFF_VERSION, STORE_META_VERSION + 1);
	fix_crc(buf);
	assert_int_equal(decode(buf), STORE_META_BAD_VERSION);
	put_le32(buf + SB_OFF_VERSION, 0);
	fix_crc(buf);
	assert_int_equal(decode(buf), STORE_META_BAD_VERSION);
}

static void test_reject_bad_hdr_len(void **state)
{
	uint8_t buf[STORE_SB_SIZE];

	encode_sample(buf);
	put_le32(buf + SB_OFF_HDR_LEN, SB_HDR_LEN + 4);
	fix_crc(buf);
	assert_int_equal(decode(buf), STORE_META_BAD_VERSION);
}

/* a corrupt version field is corruption, not a newer format */
static void test_bad_version_without_crc_is_bad_crc(void **state)
{
	uint8_t buf[STORE_SB_SIZE];

	encode_sample(buf);
	put_le32(buf + SB_OFF_VERSION, 99);
	assert_int_equal(decode(buf), STORE_META_BAD_CRC);
}

static void test_reject_any_flipped_header_byte(void **state)
{
	uint8_t buf[STORE_SB_SIZE];

	encode_sample(buf);
	for (size_t i = 0; i < SB_HDR_LEN; i++) {
		enum store_meta_err want = i < 8 ? STORE_META_BAD_MAGIC :
						   STORE_META_BAD_CRC;
		enum store_meta_err got;

		buf[i] ^= 0xff;
		got = decode(buf);
		buf[i] ^= 0xff;
		if (got != want)
			fail_msg("byte %zu flipped: got %s, want %s", i,
				 store_meta_err_name(got), store_meta_err_name(want));
	}
	assert_int_equal(decode(buf), STORE_META_OK);
}

static void test_reject_single_bit_flips(void **state)
{
	uint8_t buf[STORE_SB_SIZE];

	encode_sample(buf);
	for (size_t i = 8; i < SB_HDR_LEN; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1u << bit);
			assert_int_equal(decode(buf), STORE_META_BAD_CRC);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
}

static void test_reject_flipped_crc(void **state)
{
	uint8_t buf[STORE_SB_SIZE];

	encode_sample(buf);
	for (size_t i = SB_OFF_CRC; i < SB_OFF_CRC + 4; i++) {
		buf[i] ^= 0x01;
		assert_int_equal(decode(buf), STORE_META_BAD_CRC);
		buf[i] ^= 0x01;
	}
}

/* set a field through the callback, recompute the CRC, expect BAD_FIELD */
static void expect_bad_field(void (*mutate)(uint8_t *buf), const char *what)
{
	uint8_t buf[STORE_SB_SIZE];
	enum store_meta_err got;

	encode_sample(buf);
	mutate(buf);
	fix_crc(buf);
	got = decode(buf);
	if (got != STORE_META_BAD_FIELD)
		fail_msg("%s: got %s, want %s", what, store_meta_err_name(got),
			 store_meta_err_name(STORE_META_BAD_FIELD));
}

static void m_name_unterminated(uint8_t *b) { memset(b + SB_OFF_NAME, 'a', 64); }
static void m_name_empty(uint8_t *b) { memset(b + SB_OFF_NAME, 0, 64); }
static void m_name_upper(uint8_t *b) { b[SB_OFF_NAME] = 'P'; }
static void m_name_slash(uint8_t *b) { b[SB_OFF_NAME + 3] = '/'; }
static void m_name_dash(uint8_t *b) { b[SB_OFF_NAME] = '-'; }
static void m_size_zero(uint8_t *b) { put_le64(b + SB_OFF_SIZE, 0); }
static void m_size_unaligned(uint8_t *b) { put_le64(b + SB_OFF_SIZE, (1ULL << 30) + 512); }
static void m_bs_not_pow2(uint8_t *b) { put_le32(b + SB_OFF_BLOCK_SIZE, 1536); }
static void m_bs_small(uint8_t *b) { put_le32(b + SB_OFF_BLOCK_SIZE, 256); }
static void m_bs_big(uint8_t *b) { put_le32(b + SB_OFF_BLOCK_SIZE, 8192); }
static void m_bs_zero(uint8_t *b) { put_le32(b + SB_OFF_BLOCK_SIZE, 0); }
static void m_grain_not_pow2(uint8_t *b) { put_le32(b + SB_OFF_BM_GRAIN, 3 * 4096); }
static void m_grain_small(uint8_t *b) { put_le32(b + SB_OFF_BM_GRAIN, 2048); }
static void m_grain_zero(uint8_t *b) { put_le32(b + SB_OFF_BM_GRAIN, 0); }
static void m_al_inside_sb(uint8_t *b) { put_le64(b + SB_OFF_AL_OFFSET, 4096); }
static void m_bm_overlaps_al(uint8_t *b) { put_le64(b + SB_OFF_BM_OFFSET, STORE_AL_OFFSET + 4096); }
static void m_al_len_wraps(uint8_t *b)
{
	/* al_offset + al_len wraps to 0, so bm_offset >= it "holds" */
	put_le64(b + SB_OFF_AL_LEN, (uint64_t)0 - STORE_AL_OFFSET);
}
static void m_reserved(uint8_t *b) { b[SB_OFF_RESERVED + 17] = 0x42; }
static void m_name_tail(uint8_t *b) { b[SB_OFF_NAME + 60] = 'z'; }

static void test_bad_name_unterminated(void **s) { expect_bad_field(m_name_unterminated, "name without NUL"); }
static void test_bad_name_empty(void **s) { expect_bad_field(m_name_empty, "empty name"); }
static void test_bad_name_uppercase(void **s) { expect_bad_field(m_name_upper, "uppercase name"); }
static void test_bad_name_slash(void **s) { expect_bad_field(m_name_slash, "name with '/'"); }
static void test_bad_name_leading_dash(void **s) { expect_bad_field(m_name_dash, "name with leading '-'"); }
static void test_bad_size_zero(void **s) { expect_bad_field(m_size_zero, "size 0"); }
static void test_bad_size_unaligned(void **s) { expect_bad_field(m_size_unaligned, "size not 4 KiB aligned"); }
static void test_bad_block_size_not_pow2(void **s) { expect_bad_field(m_bs_not_pow2, "block size 1536"); }
static void test_bad_block_size_small(void **s) { expect_bad_field(m_bs_small, "block size 256"); }
static void test_bad_block_size_big(void **s) { expect_bad_field(m_bs_big, "block size 8192"); }
static void test_bad_block_size_zero(void **s) { expect_bad_field(m_bs_zero, "block size 0"); }
static void test_bad_grain_not_pow2(void **s) { expect_bad_field(m_grain_not_pow2, "grain 12 KiB"); }
static void test_bad_grain_small(void **s) { expect_bad_field(m_grain_small, "grain 2 KiB"); }
static void test_bad_grain_zero(void **s) { expect_bad_field(m_grain_zero, "grain 0"); }
static void test_bad_al_offset(void **s) { expect_bad_field(m_al_inside_sb, "AL inside the superblocks"); }
static void test_bad_bm_offset(void **s) { expect_bad_field(m_bm_overlaps_al, "bitmap overlapping the AL"); }
/* The next three describe gaps in store_meta_decode (reported to the
 * lead): a header that does not re-encode to itself must not decode. */
static void test_bad_al_len_wrap(void **s) { expect_bad_field(m_al_len_wraps, "al_offset + al_len wraps"); }
static void test_bad_reserved_nonzero(void **s) { expect_bad_field(m_reserved, "non-zero reserved byte"); }
static void test_bad_name_garbage_after_nul(void **s) { expect_bad_field(m_name_tail, "bytes after the name's NUL"); }

static void test_block_size_limits_ok(void **state)
{
	static const uint32_t ok[] = { 512, 1024, 2048, 4096 };
	uint8_t buf[STORE_SB_SIZE];

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		encode_sample(buf);
		put_le32(buf + SB_OFF_BLOCK_SIZE, ok[i]);
		fix_crc(buf);
		assert_int_equal(decode(buf), STORE_META_OK);
	}
}

static void test_err_names(void **state)
{
	for (int e = STORE_META_OK; e <= STORE_META_BAD_FIELD; e++) {
		const char *n = store_meta_err_name((enum store_meta_err)e);

		assert_non_null(n);
		assert_string_not_equal(n, "unknown");
	}
	assert_string_equal(store_meta_err_name(STORE_META_OK), "ok");
	assert_string_equal(store_meta_err_name((enum store_meta_err)99), "unknown");
}

/* ---- pick ----------------------------------------------------------- */

static void encode_seq(uint8_t *buf, uint64_t seq)
{
	struct store_meta m;

	sample(&m);
	m.seq = seq;
	store_meta_encode(&m, buf);
}

static void test_pick_newer_a(void **state)
{
	uint8_t a[STORE_SB_SIZE], b[STORE_SB_SIZE];
	enum store_meta_err wa, wb;
	struct store_meta m;

	encode_seq(a, 8);
	encode_seq(b, 7);
	assert_int_equal(store_meta_pick(a, b, sizeof(a), &m, &wa, &wb), 0);
	assert_int_equal(m.seq, 8);
	assert_int_equal(wa, STORE_META_OK);
	assert_int_equal(wb, STORE_META_OK);
}

static void test_pick_newer_b(void **state)
{
	uint8_t a[STORE_SB_SIZE], b[STORE_SB_SIZE];
	enum store_meta_err wa, wb;
	struct store_meta m;

	encode_seq(a, 7);
	encode_seq(b, 8);
	assert_int_equal(store_meta_pick(a, b, sizeof(a), &m, &wa, &wb), 1);
	assert_int_equal(m.seq, 8);
}

static void test_pick_equal_seq_prefers_a(void **state)
{
	uint8_t a[STORE_SB_SIZE], b[STORE_SB_SIZE];
	enum store_meta_err wa, wb;
	struct store_meta m;

	encode_seq(a, 5);
	encode_seq(b, 5);
	assert_int_equal(store_meta_pick(a, b, sizeof(a), &m, &wa, &wb), 0);
}

static void test_pick_torn_newest_falls_back(void **state)
{
	uint8_t a[STORE_SB_SIZE], b[STORE_SB_SIZE];
	enum store_meta_err wa, wb;
	struct store_meta m;

	encode_seq(a, 3);
	encode_seq(b, 4);
	b[300] ^= 1; /* torn write of the newer slot */
	assert_int_equal(store_meta_pick(a, b, sizeof(a), &m, &wa, &wb), 0);
	assert_int_equal(m.seq, 3);
	assert_int_equal(wa, STORE_META_OK);
	assert_int_equal(wb, STORE_META_BAD_CRC);

	encode_seq(a, 6);
	encode_seq(b, 5);
	a[100] ^= 1;
	assert_int_equal(store_meta_pick(a, b, sizeof(a), &m, &wa, &wb), 1);
	assert_int_equal(m.seq, 5);
	assert_int_equal(wa, STORE_META_BAD_CRC);
	assert_int_equal(wb, STORE_META_OK);
}

static void test_pick_fresh_volume(void **state)
{
	uint8_t a[STORE_SB_SIZE], b[STORE_SB_SIZE] = { 0 };
	enum store_meta_err wa, wb;
	struct store_meta m;

	encode_seq(a, 1);
	assert_int_equal(store_meta_pick(a, b, sizeof(a), &m, &wa, &wb), 0);
	assert_int_equal(wb, STORE_META_ZERO);
	assert_int_equal(store_meta_pick(b, a, sizeof(a), &m, &wa, &wb), 1);
	assert_int_equal(wa, STORE_META_ZERO);
	assert_int_equal(m.seq, 1);
}

static void test_pick_both_bad(void **state)
{
	uint8_t a[STORE_SB_SIZE], b[STORE_SB_SIZE];
	enum store_meta_err wa, wb;
	struct store_meta m;

	encode_seq(a, 1);
	encode_seq(b, 2);
	a[SB_OFF_MAGIC] = 'X';
	b[SB_OFF_SEQ] ^= 1;
	assert_int_equal(store_meta_pick(a, b, sizeof(a), &m, &wa, &wb), -1);
	assert_int_equal(wa, STORE_META_BAD_MAGIC);
	assert_int_equal(wb, STORE_META_BAD_CRC);
}

static void test_pick_both_zero_or_short(void **state)
{
	uint8_t a[STORE_SB_SIZE] = { 0 }, b[STORE_SB_SIZE] = { 0 };
	enum store_meta_err wa, wb;
	struct store_meta m;

	assert_int_equal(store_meta_pick(a, b, sizeof(a), &m, &wa, &wb), -1);
	assert_int_equal(wa, STORE_META_ZERO);
	assert_int_equal(wb, STORE_META_ZERO);
	encode_seq(a, 1);
	assert_int_equal(store_meta_pick(a, a, 64, &m, &wa, &wb), -1);
	assert_int_equal(wa, STORE_META_SHORT);
	assert_int_equal(wb, STORE_META_SHORT);
}

/* ---- layout --------------------------------------------------------- */

static void test_layout_1gib(void **state)
{
	struct store_meta m = { .size = 1ULL << 30 };

	store_meta_layout(&m);
	assert_int_equal(m.bm_grain, STORE_BM_GRAIN_DEFAULT);
	assert_int_equal(m.al_offset, 2 * STORE_SB_SIZE);
	assert_int_equal(m.al_len, 64 * 1024);
	assert_int_equal(m.bm_offset, 8192 + 65536);
	/* 16384 bits = 2 KiB, rounded up to a 4 KiB block */
	assert_int_equal(m.bm_len_per_peer, 4096);
}

static void test_layout_1tib(void **state)
{
	struct store_meta m = { .size = 1ULL << 40 };

	store_meta_layout(&m);
	/* 16 Mi bits = 521 bitmap blocks of 32256 bits (repl_bitmap.h),
	 * reserved as 1024 (next power of two: room to grow in place) */
	assert_int_equal(m.bm_len_per_peer, 4u << 20);
	assert_int_equal(URBD_MAX_PEERS * m.bm_len_per_peer, 32u << 20);
}

static void test_layout_keeps_grain(void **state)
{
	struct store_meta m = { .size = 1ULL << 40, .bm_grain = 1u << 20 };

	store_meta_layout(&m);
	assert_int_equal(m.bm_grain, 1u << 20);
	assert_int_equal(m.bm_len_per_peer, 256 * 1024); /* 1 Mi bits: 33 -> 64 blocks */
}

static void test_layout_small_sizes(void **state)
{
	struct store_meta m = { .size = 4096 };

	store_meta_layout(&m);
	assert_int_equal(m.bm_len_per_peer, 4096); /* one bit still takes a block */
	m.size = 0;
	m.bm_grain = 0;
	store_meta_layout(&m);
	assert_int_equal(m.bm_len_per_peer, 0);
	/* 64 GiB + one grain: 1 Mi + 1 bits, 33 blocks, reserved as 64 */
	m.size = (64ULL << 30) + 65536;
	store_meta_layout(&m);
	assert_int_equal(m.bm_len_per_peer, 256 * 1024);
	/* the most one block holds, and one bit more */
	m.size = (uint64_t)STORE_BM_BITS_PER_BLOCK * 65536;
	store_meta_layout(&m);
	assert_int_equal(m.bm_len_per_peer, 4096);
	m.size += 4096;
	store_meta_layout(&m);
	assert_int_equal(m.bm_len_per_peer, 8192);
}

static void test_layout_decodes(void **state)
{
	uint8_t buf[STORE_SB_SIZE];
	struct store_meta m;

	sample(&m);
	m.size = 4096;
	store_meta_layout(&m);
	store_meta_encode(&m, buf);
	assert_int_equal(decode(buf), STORE_META_OK);
}

static void test_format_constants(void **state)
{
	assert_int_equal(STORE_AL_OFFSET, 8192);
	assert_int_equal(SB_OFF_CRC + 4, 512);
	assert_int_equal(SB_HDR_LEN, 508);
	assert_true(STORE_SB_SIZE >= 512);
	assert_true(is_pow2(STORE_BM_GRAIN_DEFAULT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_field),
		cmocka_unit_test(test_encode_byte_positions),
		cmocka_unit_test(test_encode_zero_fills_slot),
		cmocka_unit_test(test_encode_truncates_long_name),
		cmocka_unit_test(test_decode_exactly_512),
		cmocka_unit_test(test_decode_ignores_bytes_after_header),
		cmocka_unit_test(test_reject_short),
		cmocka_unit_test(test_reject_zero),
		cmocka_unit_test(test_reject_bad_magic),
		cmocka_unit_test(test_reject_bad_version),
		cmocka_unit_test(test_reject_bad_hdr_len),
		cmocka_unit_test(test_bad_version_without_crc_is_bad_crc),
		cmocka_unit_test(test_reject_any_flipped_header_byte),
		cmocka_unit_test(test_reject_single_bit_flips),
		cmocka_unit_test(test_reject_flipped_crc),
		cmocka_unit_test(test_bad_name_unterminated),
		cmocka_unit_test(test_bad_name_empty),
		cmocka_unit_test(test_bad_name_uppercase),
		cmocka_unit_test(test_bad_name_slash),
		cmocka_unit_test(test_bad_name_leading_dash),
		cmocka_unit_test(test_bad_size_zero),
		cmocka_unit_test(test_bad_size_unaligned),
		cmocka_unit_test(test_bad_block_size_not_pow2),
		cmocka_unit_test(test_bad_block_size_small),
		cmocka_unit_test(test_bad_block_size_big),
		cmocka_unit_test(test_bad_block_size_zero),
		cmocka_unit_test(test_bad_grain_not_pow2),
		cmocka_unit_test(test_bad_grain_small),
		cmocka_unit_test(test_bad_grain_zero),
		cmocka_unit_test(test_bad_al_offset),
		cmocka_unit_test(test_bad_bm_offset),
		cmocka_unit_test(test_bad_al_len_wrap),
		cmocka_unit_test(test_bad_reserved_nonzero),
		cmocka_unit_test(test_bad_name_garbage_after_nul),
		cmocka_unit_test(test_block_size_limits_ok),
		cmocka_unit_test(test_err_names),
		cmocka_unit_test(test_pick_newer_a),
		cmocka_unit_test(test_pick_newer_b),
		cmocka_unit_test(test_pick_equal_seq_prefers_a),
		cmocka_unit_test(test_pick_torn_newest_falls_back),
		cmocka_unit_test(test_pick_fresh_volume),
		cmocka_unit_test(test_pick_both_bad),
		cmocka_unit_test(test_pick_both_zero_or_short),
		cmocka_unit_test(test_layout_1gib),
		cmocka_unit_test(test_layout_1tib),
		cmocka_unit_test(test_layout_keeps_grain),
		cmocka_unit_test(test_layout_small_sizes),
		cmocka_unit_test(test_layout_decodes),
		cmocka_unit_test(test_format_constants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
