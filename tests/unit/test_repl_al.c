/* repl_al.c: the activity log. Reference counts and the all-or-nothing
 * begin, capacity and LRU eviction (and -EBUSY when nothing is idle),
 * transactions (seq, ring slot, in-flight limit, failure, out-of-order
 * completion, evicted extents), the block codec with one test per
 * rejection reason, recovery (fresh, torn newest, foreign, all corrupt),
 * restore, and a random walk against a reference model. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"
#include "../../replication/repl_al.h"
#include "util.h"

#define MIB (1024ULL * 1024)
#define EXT (4 * MIB)
#define VOL (1024 * MIB) /* 256 extents */
#define AREA (REPL_AL_RING * REPL_AL_BLOCK_SIZE)

static const struct urbd_uuid uuid_a = { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 } };
static const struct urbd_uuid uuid_b = { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17 } };

static struct repl_al *mk(uint32_t max)
{
	struct repl_al *al = repl_al_create(VOL, max, &uuid_a);

	assert_non_null(al);
	return al;
}

/* begin of one whole extent; returns begin's result */
static int begin_ext(struct repl_al *al, uint32_t e, bool *need, uint64_t *wait)
{
	bool n;
	uint64_t w;

	return repl_al_begin(al, (uint64_t)e * EXT, EXT, need ? need : &n, wait ? wait : &w);
}

static void end_ext(struct repl_al *al, uint32_t e)
{
	assert_int_equal(repl_al_end(al, (uint64_t)e * EXT, EXT), 0);
}

static void fix_crc(uint8_t *b)
{
	put_le32(b + AL_OFF_CRC, crc32c(crc32c(0, b, AL_OFF_CRC), b + AL_OFF_EXTENTS,
					REPL_AL_BLOCK_SIZE - AL_OFF_EXTENTS));
}

/* encodes and completes a transaction; returns its seq */
static uint64_t commit(struct repl_al *al, uint8_t *area, struct repl_al_txn *txn)
{
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	struct repl_al_txn t;

	assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
	if (area)
		memcpy(area + t.area_offset, buf, sizeof(buf));
	assert_int_equal(repl_al_txn_done(al, t.seq, 0), 0);
	if (txn)
		*txn = t;
	return t.seq;
}

/* ---- create --------------------------------------------------------------- */

static void test_create(void **state)
{
	struct repl_al *al;

	errno = 0;
	assert_null(repl_al_create(0, 0, &uuid_a));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(repl_al_create(VOL, REPL_AL_MAX_EXTENTS + 1, &uuid_a));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(repl_al_create((1ULL << 54) + EXT, 0, &uuid_a)); /* > 2^32 extents */
	assert_int_equal(errno, EINVAL);
	al = mk(0);
	assert_int_equal(repl_al_max_extents(al), REPL_AL_DEFAULT_EXTENTS);
	assert_int_equal(repl_al_active(al), 0);
	assert_int_equal(repl_al_seq(al), 0);
	assert_int_equal(repl_al_durable_seq(al), 0);
	assert_false(repl_al_txn_pending(al));
	repl_al_free(al);
	al = mk(REPL_AL_MAX_EXTENTS);
	assert_int_equal(repl_al_max_extents(al), 1012);
	repl_al_free(al);
	repl_al_free(NULL);
}

/* ---- begin / end ---------------------------------------------------------- */

static void test_begin_waits_for_txn(void **state)
{
	struct repl_al *al = mk(0);
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	struct repl_al_txn t;
	uint64_t wait;
	bool need;

	/* cold extent: a transaction is needed */
	assert_int_equal(repl_al_begin(al, 512, 4096, &need, &wait), 0);
	assert_true(need);
	assert_int_equal(wait, 1);
	assert_true(repl_al_txn_pending(al));
	assert_int_equal(repl_al_refcount(al, 0), 1);
	/* a second write into it before the encode: same transaction */
	assert_int_equal(repl_al_begin(al, 8192, 4096, &need, &wait), 0);
	assert_true(need);
	assert_int_equal(wait, 1);
	assert_int_equal(repl_al_refcount(al, 0), 2);
	assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
	assert_int_equal(t.seq, 1);
	assert_int_equal(t.slot, 1);
	assert_int_equal(t.area_offset, 4096);
	assert_int_equal(t.count, 1);
	assert_int_equal(t.n_evicted, 0);
	assert_false(repl_al_txn_pending(al));
	/* encoded, not durable: wait for it, but no new transaction */
	assert_int_equal(repl_al_begin(al, 0, 512, &need, &wait), 0);
	assert_false(need);
	assert_int_equal(wait, 1);
	assert_int_equal(repl_al_txn_done(al, 1, 0), 0);
	assert_int_equal(repl_al_durable_seq(al), 1);
	/* hot extent: go */
	assert_int_equal(repl_al_begin(al, 0, 512, &need, &wait), 0);
	assert_false(need);
	assert_int_equal(wait, 0);
	assert_int_equal(repl_al_refcount(al, 0), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(repl_al_end(al, 0, 512), 0);
	assert_int_equal(repl_al_refcount(al, 0), 0);
	assert_int_equal(repl_al_active(al), 1); /* idle, still active */
	assert_int_equal(repl_al_end(al, 0, 512), -EINVAL);
	/* a write into a hot and a cold extent waits for the cold one */
	assert_int_equal(repl_al_begin(al, EXT - 512, 1024, &need, &wait), 0);
	assert_true(need);
	assert_int_equal(wait, 2);
	assert_int_equal(repl_al_refcount(al, 0), 1);
	assert_int_equal(repl_al_refcount(al, 1), 1);
	repl_al_free(al);
}

static void test_begin_end_errors(void **state)
{
	struct repl_al *al = mk(4);
	uint64_t wait = 99;
	bool need = true;

	assert_int_equal(repl_al_begin(al, 0, 0, &need, &wait), -EINVAL);
	assert_int_equal(repl_al_begin(al, VOL, 512, &need, &wait), -EINVAL);
	assert_int_equal(repl_al_begin(al, VOL - 512, 1024, &need, &wait), -EINVAL);
	assert_int_equal(repl_al_begin(al, 512, UINT64_MAX, &need, &wait), -EINVAL);
	/* five extents never fit a set of four */
	assert_int_equal(repl_al_begin(al, 0, 5 * EXT, &need, &wait), -E2BIG);
	assert_int_equal(repl_al_begin(al, EXT - 512, 4 * EXT, &need, &wait), -E2BIG);
	assert_int_equal(repl_al_active(al), 0);
	assert_false(repl_al_txn_pending(al));
	assert_int_equal(wait, 99); /* untouched on error */
	assert_int_equal(repl_al_refcount(al, 0), -ENOENT);
	/* end: all or nothing */
	assert_int_equal(begin_ext(al, 0, NULL, NULL), 0);
	assert_int_equal(repl_al_end(al, 0, 2 * EXT), -EINVAL);
	assert_int_equal(repl_al_refcount(al, 0), 1);
	assert_int_equal(repl_al_end(al, 0, 0), -EINVAL);
	assert_int_equal(repl_al_end(al, VOL, 1), -EINVAL);
	end_ext(al, 0);
	repl_al_free(al);
}

static void test_fill_to_capacity_then_busy(void **state)
{
	struct repl_al *al = mk(4);
	bool need;
	uint64_t wait;

	for (uint32_t e = 0; e < 4; e++)
		assert_int_equal(begin_ext(al, e * 10, NULL, NULL), 0);
	assert_int_equal(repl_al_active(al), 4);
	/* every extent busy */
	assert_int_equal(begin_ext(al, 100, &need, &wait), -EBUSY);
	assert_int_equal(repl_al_active(al), 4);
	assert_int_equal(repl_al_refcount(al, 100), -ENOENT);
	/* the present ones take more references without room */
	assert_int_equal(begin_ext(al, 10, NULL, NULL), 0);
	assert_int_equal(repl_al_refcount(al, 10), 2);
	/* one idle: it makes room */
	end_ext(al, 20);
	assert_int_equal(begin_ext(al, 100, &need, &wait), 0);
	assert_true(need);
	assert_int_equal(repl_al_refcount(al, 20), -ENOENT);
	assert_int_equal(repl_al_active(al), 4);
	repl_al_free(al);
}

/* a range's own idle extent cannot be evicted to admit its neighbour */
static void test_busy_does_not_evict_own_extent(void **state)
{
	struct repl_al *al = mk(2);

	assert_int_equal(begin_ext(al, 5, NULL, NULL), 0);
	assert_int_equal(begin_ext(al, 9, NULL, NULL), 0);
	end_ext(al, 5); /* 5 idle, 9 busy, set full */
	assert_int_equal(repl_al_begin(al, 5 * EXT, 2 * EXT, &(bool){ 0 }, &(uint64_t){ 0 }),
			 -EBUSY);
	assert_int_equal(repl_al_refcount(al, 5), 0);
	assert_int_equal(repl_al_refcount(al, 6), -ENOENT);
	end_ext(al, 9); /* now 9 can go */
	assert_int_equal(repl_al_begin(al, 5 * EXT, 2 * EXT, &(bool){ 0 }, &(uint64_t){ 0 }), 0);
	assert_int_equal(repl_al_refcount(al, 5), 1);
	assert_int_equal(repl_al_refcount(al, 6), 1);
	assert_int_equal(repl_al_refcount(al, 9), -ENOENT);
	repl_al_free(al);
}

static void test_lru_eviction_order(void **state)
{
	struct repl_al *al = mk(3);
	struct repl_al_txn t;

	for (uint32_t e = 1; e <= 3; e++) { /* A=1, B=2, C=3 idle in that order */
		assert_int_equal(begin_ext(al, e, NULL, NULL), 0);
		end_ext(al, e);
	}
	commit(al, NULL, &t);
	assert_int_equal(t.count, 3);
	/* touching A makes it the most recent: order B, C, A */
	assert_int_equal(begin_ext(al, 1, NULL, NULL), 0);
	end_ext(al, 1);
	assert_int_equal(begin_ext(al, 4, NULL, NULL), 0); /* evicts B */
	assert_int_equal(repl_al_refcount(al, 2), -ENOENT);
	assert_int_equal(repl_al_refcount(al, 3), 0);
	assert_int_equal(begin_ext(al, 5, NULL, NULL), 0); /* evicts C */
	assert_int_equal(repl_al_refcount(al, 3), -ENOENT);
	assert_int_equal(repl_al_refcount(al, 1), 0);
	assert_int_equal(begin_ext(al, 6, NULL, NULL), 0); /* evicts A */
	assert_int_equal(repl_al_refcount(al, 1), -ENOENT);
	assert_int_equal(begin_ext(al, 7, NULL, NULL), -EBUSY); /* 4, 5, 6 busy */
	commit(al, NULL, &t);
	assert_int_equal(t.count, 3);
	assert_int_equal(t.n_evicted, 3);
	assert_int_equal(t.evicted[0], 1);
	assert_int_equal(t.evicted[1], 2);
	assert_int_equal(t.evicted[2], 3);
	repl_al_free(al);
}

/* eviction is reported against what was last written, once */
static void test_evicted_reporting(void **state)
{
	struct repl_al *al = mk(1);
	struct repl_al_txn t;

	assert_int_equal(begin_ext(al, 7, NULL, NULL), 0);
	end_ext(al, 7);
	commit(al, NULL, &t);
	assert_int_equal(t.n_evicted, 0);
	/* 7 out, 8 in, 8 out, 7 back before any transaction: nothing
	 * written has left the set */
	assert_int_equal(begin_ext(al, 8, NULL, NULL), 0);
	end_ext(al, 8);
	assert_int_equal(begin_ext(al, 7, NULL, NULL), 0);
	end_ext(al, 7);
	commit(al, NULL, &t);
	assert_int_equal(t.n_evicted, 0);
	assert_int_equal(t.count, 1);
	/* 7 out for good */
	assert_int_equal(begin_ext(al, 9, NULL, NULL), 0);
	commit(al, NULL, &t);
	assert_int_equal(t.n_evicted, 1);
	assert_int_equal(t.evicted[0], 7);
	commit(al, NULL, &t);
	assert_int_equal(t.n_evicted, 0);
	repl_al_free(al);
}

/* ---- transactions ------------------------------------------------------- */

static void test_txn_seq_and_slot_rotation(void **state)
{
	struct repl_al *al = mk(0);
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	uint32_t ext[REPL_AL_MAX_EXTENTS], n;
	struct repl_al_txn t;
	uint64_t seq;

	for (uint64_t i = 1; i <= 40; i++) {
		assert_int_equal(begin_ext(al, (uint32_t)i, NULL, NULL), 0);
		end_ext(al, (uint32_t)i);
		assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
		assert_int_equal(t.seq, i);
		assert_int_equal(t.slot, i % 16);
		assert_int_equal(t.area_offset, (i % 16) * 4096);
		assert_int_equal(t.count, i);
		assert_int_equal(repl_al_decode_block(buf, sizeof(buf), t.slot, &uuid_a, VOL,
						      &seq, ext, &n),
				 REPL_AL_BLOCK_OK);
		assert_int_equal(seq, i);
		assert_int_equal(n, i);
		for (uint32_t k = 0; k < n; k++)
			assert_int_equal(ext[k], k + 1); /* ascending */
		assert_int_equal(repl_al_txn_done(al, t.seq, 0), 0);
		assert_int_equal(repl_al_durable_seq(al), i);
	}
	repl_al_free(al);
}

static void test_txn_inflight_limit(void **state)
{
	struct repl_al *al = mk(0);
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	struct repl_al_txn t;

	for (int i = 0; i < REPL_AL_MAX_INFLIGHT; i++)
		assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
	assert_int_equal(repl_al_encode_txn(al, buf, &t), -EBUSY);
	assert_int_equal(repl_al_seq(al), REPL_AL_MAX_INFLIGHT);
	assert_int_equal(repl_al_txn_done(al, 2, 0), 0);
	assert_int_equal(repl_al_txn_done(al, 2, 0), -EINVAL); /* twice */
	assert_int_equal(repl_al_txn_done(al, 9, 0), -EINVAL); /* never encoded */
	assert_int_equal(repl_al_txn_done(al, 0, 0), -EINVAL);
	assert_int_equal(repl_al_txn_done(al, 1 + 16, 0), -EINVAL); /* same slot as 1 */
	assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
	assert_int_equal(t.seq, REPL_AL_MAX_INFLIGHT + 1);
	repl_al_free(al);
}

/* a newer transaction durable first covers the older one's waiters */
static void test_txn_out_of_order_done(void **state)
{
	struct repl_al *al = mk(0);
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	struct repl_al_txn t1, t2;
	uint64_t w1, w2;

	assert_int_equal(begin_ext(al, 1, NULL, &w1), 0);
	assert_int_equal(repl_al_encode_txn(al, buf, &t1), 0);
	assert_int_equal(begin_ext(al, 2, NULL, &w2), 0);
	assert_int_equal(repl_al_encode_txn(al, buf, &t2), 0);
	assert_int_equal(w1, 1);
	assert_int_equal(w2, 2);
	assert_int_equal(t2.count, 2); /* the full set, not a delta */
	assert_int_equal(repl_al_txn_done(al, 2, 0), 0);
	assert_true(repl_al_durable_seq(al) >= w1);
	assert_true(repl_al_durable_seq(al) >= w2);
	assert_int_equal(repl_al_txn_done(al, 1, 0), 0);
	assert_int_equal(repl_al_durable_seq(al), 2);
	repl_al_free(al);
}

static void test_txn_failure_rearms(void **state)
{
	struct repl_al *al = mk(0);
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	struct repl_al_txn t;
	uint64_t wait;
	bool need;

	assert_int_equal(begin_ext(al, 3, &need, &wait), 0);
	assert_int_equal(wait, 1);
	assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
	assert_int_equal(repl_al_txn_done(al, 1, -EIO), 0);
	assert_int_equal(repl_al_durable_seq(al), 0);
	assert_true(repl_al_txn_pending(al));
	/* new writes into 3 need the retry */
	assert_int_equal(begin_ext(al, 3, &need, &wait), 0);
	assert_true(need);
	assert_int_equal(wait, 2);
	assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
	assert_int_equal(t.seq, 2);
	assert_int_equal(t.count, 1);
	assert_int_equal(repl_al_txn_done(al, 2, 0), 0);
	assert_true(repl_al_durable_seq(al) >= 1); /* the first waiter may go */
	repl_al_free(al);
}

/* an older transaction failing while a newer one is in flight changes
 * nothing: the newer one lists the whole set */
static void test_txn_failure_of_older(void **state)
{
	struct repl_al *al = mk(0);
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	struct repl_al_txn t;
	uint64_t wait;
	bool need;

	assert_int_equal(begin_ext(al, 3, NULL, NULL), 0);
	assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
	assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
	assert_int_equal(repl_al_txn_done(al, 1, -EIO), 0);
	assert_false(repl_al_txn_pending(al));
	assert_int_equal(begin_ext(al, 3, &need, &wait), 0);
	assert_false(need);
	assert_int_equal(wait, 1);
	assert_int_equal(repl_al_txn_done(al, 2, 0), 0);
	assert_int_equal(repl_al_durable_seq(al), 2);
	repl_al_free(al);
}

/* ---- block codec ----------------------------------------------------------- */

static void test_encode_block_rejects(void **state)
{
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	uint32_t ext[REPL_AL_MAX_EXTENTS + 1] = { 5, 5 };

	assert_int_equal(repl_al_encode_block(buf, &uuid_a, 1, ext, 2), -EINVAL); /* dup */
	ext[1] = 4;
	assert_int_equal(repl_al_encode_block(buf, &uuid_a, 1, ext, 2), -EINVAL); /* order */
	assert_int_equal(repl_al_encode_block(buf, &uuid_a, 0, ext, 1), -EINVAL); /* seq 0 */
	for (uint32_t i = 0; i <= REPL_AL_MAX_EXTENTS; i++)
		ext[i] = i;
	assert_int_equal(repl_al_encode_block(buf, &uuid_a, 1, ext, REPL_AL_MAX_EXTENTS + 1),
			 -EINVAL);
	assert_int_equal(repl_al_encode_block(buf, &uuid_a, 1, ext, REPL_AL_MAX_EXTENTS), 0);
	assert_int_equal(get_le32(buf + AL_OFF_MAGIC), REPL_AL_MAGIC);
	assert_int_equal(get_le32(buf + AL_OFF_COUNT), 1012);
	assert_int_equal(get_le32(buf + REPL_AL_BLOCK_SIZE - 4), 1011); /* fills the block */
}

static void test_block_every_bit_flip(void **state)
{
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	uint32_t ext[REPL_AL_MAX_EXTENTS] = { 1, 7, 200 }, out[REPL_AL_MAX_EXTENTS], n;
	uint64_t seq;

	assert_int_equal(repl_al_encode_block(buf, &uuid_a, 21, ext, 3), 0);
	assert_int_equal(repl_al_decode_block(buf, sizeof(buf), 5, &uuid_a, VOL, &seq, out, &n),
			 REPL_AL_BLOCK_OK);
	for (size_t bit = 0; bit < 8 * sizeof(buf); bit++) {
		enum repl_al_block_err e;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		e = repl_al_decode_block(buf, sizeof(buf), 5, &uuid_a, VOL, &seq, out, &n);
		if (e != REPL_AL_BLOCK_BAD_CRC && e != REPL_AL_BLOCK_BAD_MAGIC)
			fail_msg("flip of bit %zu: %s", bit, repl_al_block_err_name(e));
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}

static void expect_block(void (*mutate)(uint8_t *), unsigned slot,
			 const struct urbd_uuid *uuid, enum repl_al_block_err want)
{
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	uint32_t ext[REPL_AL_MAX_EXTENTS] = { 1, 7, 200 }, out[REPL_AL_MAX_EXTENTS], n;
	uint64_t seq;

	assert_int_equal(repl_al_encode_block(buf, &uuid_a, 21, ext, 3), 0);
	if (mutate) {
		mutate(buf);
		fix_crc(buf);
	}
	assert_int_equal(repl_al_decode_block(buf, sizeof(buf), slot, uuid, VOL, &seq, out, &n),
			 want);
}

static void m_version(uint8_t *b) { put_le16(b + AL_OFF_VERSION, 2); }
static void m_hdr_len(uint8_t *b) { put_le16(b + AL_OFF_HDR_LEN, 64); }
static void m_seq0(uint8_t *b) { put_le64(b + AL_OFF_SEQ, 0); }
static void m_reserved(uint8_t *b) { b[AL_OFF_RESERVED + 7] = 1; }
static void m_count_big(uint8_t *b) { put_le32(b + AL_OFF_COUNT, REPL_AL_MAX_EXTENTS + 1); }
static void m_count_short(uint8_t *b) { put_le32(b + AL_OFF_COUNT, 2); } /* 200 left over */
static void m_unsorted(uint8_t *b) { put_le32(b + AL_OFF_EXTENTS + 4, 1); }
static void m_outside(uint8_t *b) { put_le32(b + AL_OFF_EXTENTS + 8, 256); } /* VOL has 256 */
static void m_magic(uint8_t *b) { b[0] ^= 1; }

static void test_block_ok(void **s) { expect_block(NULL, 5, &uuid_a, REPL_AL_BLOCK_OK); }
static void test_block_wrong_volume(void **s) { expect_block(NULL, 5, &uuid_b, REPL_AL_BLOCK_WRONG_VOLUME); }
static void test_block_wrong_slot(void **s) { expect_block(NULL, 6, &uuid_a, REPL_AL_BLOCK_WRONG_SLOT); }
static void test_block_bad_version(void **s) { expect_block(m_version, 5, &uuid_a, REPL_AL_BLOCK_BAD_VERSION); }
static void test_block_bad_hdr_len(void **s) { expect_block(m_hdr_len, 5, &uuid_a, REPL_AL_BLOCK_BAD_VERSION); }
static void test_block_seq0(void **s) { expect_block(m_seq0, 0, &uuid_a, REPL_AL_BLOCK_BAD_FIELD); }
static void test_block_reserved(void **s) { expect_block(m_reserved, 5, &uuid_a, REPL_AL_BLOCK_BAD_FIELD); }
static void test_block_count_big(void **s) { expect_block(m_count_big, 5, &uuid_a, REPL_AL_BLOCK_BAD_FIELD); }
static void test_block_padding(void **s) { expect_block(m_count_short, 5, &uuid_a, REPL_AL_BLOCK_BAD_FIELD); }
static void test_block_unsorted(void **s) { expect_block(m_unsorted, 5, &uuid_a, REPL_AL_BLOCK_BAD_FIELD); }
static void test_block_outside(void **s) { expect_block(m_outside, 5, &uuid_a, REPL_AL_BLOCK_BAD_FIELD); }
static void test_block_magic(void **s) { expect_block(m_magic, 5, &uuid_a, REPL_AL_BLOCK_BAD_MAGIC); }

static void test_block_zero_and_short(void **state)
{
	uint8_t buf[REPL_AL_BLOCK_SIZE] = { 0 };
	uint32_t out[REPL_AL_MAX_EXTENTS], n;
	uint64_t seq;

	assert_int_equal(repl_al_decode_block(buf, sizeof(buf), 0, &uuid_a, VOL, &seq, out, &n),
			 REPL_AL_BLOCK_ZERO);
	assert_int_equal(repl_al_decode_block(buf, sizeof(buf) - 1, 0, &uuid_a, VOL, &seq, out, &n),
			 REPL_AL_BLOCK_SHORT);
}

static void test_err_names(void **state)
{
	for (int e = REPL_AL_BLOCK_OK; e <= REPL_AL_BLOCK_BAD_FIELD; e++) {
		assert_string_not_equal(repl_al_block_err_name(e), "unknown");
		for (int f = REPL_AL_BLOCK_OK; f < e; f++)
			assert_string_not_equal(repl_al_block_err_name(e),
						repl_al_block_err_name(f));
	}
	assert_string_equal(repl_al_block_err_name(42), "unknown");
}

/* ---- recovery -------------------------------------------------------------- */

static void test_recover_fresh(void **state)
{
	uint8_t *area = calloc(1, AREA);
	struct repl_al_recovery rec;

	assert_non_null(area);
	assert_int_equal(repl_al_recover(area, AREA, &uuid_a, VOL, &rec), 0);
	assert_int_equal(rec.count, 0);
	assert_int_equal(rec.seq, 0);
	assert_int_equal(rec.slot, -1);
	for (int i = 0; i < REPL_AL_RING; i++)
		assert_int_equal(rec.why[i], REPL_AL_BLOCK_ZERO);
	assert_int_equal(repl_al_recover(area, AREA - 1, &uuid_a, VOL, &rec), -EINVAL);
	assert_int_equal(repl_al_recover(area, AREA, &uuid_a, 0, &rec), -EINVAL);
	free(area);
}

/* 20 transactions wrap the ring; the newest is torn */
static void test_recover_torn_newest(void **state)
{
	struct repl_al *al = mk(0);
	uint8_t *area = calloc(1, AREA);
	struct repl_al_recovery rec;
	struct repl_al_txn t;
	uint8_t old4[REPL_AL_BLOCK_SIZE];

	assert_non_null(area);
	for (uint32_t i = 1; i <= 20; i++) {
		assert_int_equal(begin_ext(al, i * 3, NULL, NULL), 0);
		if (i > 2)
			end_ext(al, (i - 2) * 3);
		if (i == 20)
			memcpy(old4, area + 4 * 4096, sizeof(old4));
		commit(al, area, &t);
	}
	/* seq 20 overwrote seq 4 in slot 4 and was torn: new header, old
	 * extent list */
	memcpy(area + 4 * 4096 + 64, old4 + 64, sizeof(old4) - 64);
	assert_int_equal(repl_al_recover(area, AREA, &uuid_a, VOL, &rec), 0);
	assert_int_equal(rec.why[4], REPL_AL_BLOCK_BAD_CRC);
	assert_int_equal(rec.seq, 19);
	assert_int_equal(rec.slot, 3);
	assert_int_equal(rec.count, 19); /* nothing evicted: 256 extents of room */
	for (uint32_t k = 0; k < rec.count; k++)
		assert_int_equal(rec.extents[k], (k + 1) * 3);
	for (int i = 0; i < REPL_AL_RING; i++) {
		if (i == 4)
			continue;
		assert_int_equal(rec.why[i], REPL_AL_BLOCK_OK);
		/* slot i holds the newest seq with seq % 16 == i */
		assert_int_equal(rec.block_seq[i], i <= 3 ? 16 + (unsigned)i : (unsigned)i);
	}
	assert_int_equal(rec.block_seq[4], 0);
	repl_al_free(al);
	free(area);
}

static void test_recover_ignores_foreign_and_misplaced(void **state)
{
	uint8_t *area = calloc(1, AREA);
	uint32_t mine[] = { 1, 2 }, theirs[] = { 9 };
	struct repl_al_recovery rec;

	assert_non_null(area);
	assert_int_equal(repl_al_encode_block(area + 1 * 4096, &uuid_a, 1, mine, 2), 0);
	/* a newer block of another volume (metadata file copied around) */
	assert_int_equal(repl_al_encode_block(area + 2 * 4096, &uuid_b, 2, theirs, 1), 0);
	/* seq 19 belongs in slot 3, found in slot 7 */
	assert_int_equal(repl_al_encode_block(area + 7 * 4096, &uuid_a, 19, theirs, 1), 0);
	memset(area + 9 * 4096, 0x5a, 4096); /* garbage */
	assert_int_equal(repl_al_recover(area, AREA, &uuid_a, VOL, &rec), 0);
	assert_int_equal(rec.seq, 1);
	assert_int_equal(rec.count, 2);
	assert_int_equal(rec.extents[1], 2);
	assert_int_equal(rec.why[2], REPL_AL_BLOCK_WRONG_VOLUME);
	assert_int_equal(rec.why[7], REPL_AL_BLOCK_WRONG_SLOT);
	assert_int_equal(rec.why[9], REPL_AL_BLOCK_BAD_MAGIC);
	assert_int_equal(rec.why[0], REPL_AL_BLOCK_ZERO);
	free(area);
}

static void test_recover_nothing_valid(void **state)
{
	uint8_t *area = calloc(1, AREA);
	uint32_t ext[] = { 4 };
	struct repl_al_recovery rec;

	assert_non_null(area);
	assert_int_equal(repl_al_encode_block(area + 4096, &uuid_a, 1, ext, 1), 0);
	area[4096 + 100] ^= 0x10; /* the only transaction, torn */
	assert_int_equal(repl_al_recover(area, AREA, &uuid_a, VOL, &rec), -EBADMSG);
	assert_int_equal(rec.why[1], REPL_AL_BLOCK_BAD_CRC);
	assert_int_equal(rec.slot, -1);
	assert_int_equal(rec.count, 0);
	memset(area, 0xff, AREA);
	assert_int_equal(repl_al_recover(area, AREA, &uuid_a, VOL, &rec), -EBADMSG);
	free(area);
}

/* after a crash the log continues the sequence and reports the recovered
 * extents as leaving the set on the first transaction */
static void test_restore_continues(void **state)
{
	struct repl_al *al = mk(0), *al2 = mk(0);
	uint8_t *area = calloc(1, AREA);
	struct repl_al_recovery rec;
	struct repl_al_txn t;
	uint64_t wait;
	bool need;

	assert_non_null(area);
	assert_int_equal(begin_ext(al, 10, NULL, NULL), 0);
	assert_int_equal(begin_ext(al, 11, NULL, NULL), 0);
	commit(al, area, NULL);
	commit(al, area, NULL);
	assert_int_equal(repl_al_recover(area, AREA, &uuid_a, VOL, &rec), 0);
	assert_int_equal(rec.seq, 2);
	assert_int_equal(repl_al_restore(al, &rec), -EBUSY); /* in use */
	assert_int_equal(repl_al_restore(al2, &rec), 0);
	assert_int_equal(repl_al_seq(al2), 2);
	assert_int_equal(repl_al_durable_seq(al2), 2);
	assert_int_equal(begin_ext(al2, 11, &need, &wait), 0);
	assert_true(need);
	assert_int_equal(wait, 3);
	commit(al2, area, &t);
	assert_int_equal(t.seq, 3);
	assert_int_equal(t.n_evicted, 1);
	assert_int_equal(t.evicted[0], 10);
	/* the ring now recovers to the new transaction */
	assert_int_equal(repl_al_recover(area, AREA, &uuid_a, VOL, &rec), 0);
	assert_int_equal(rec.seq, 3);
	assert_int_equal(rec.count, 1);
	assert_int_equal(rec.extents[0], 11);
	repl_al_free(al);
	repl_al_free(al2);
	free(area);
}

static void test_resize(void **state)
{
	struct repl_al *al = mk(0);

	assert_int_equal(begin_ext(al, 256, NULL, NULL), -EINVAL);
	assert_int_equal(repl_al_resize(al, VOL / 2), -EINVAL);
	assert_int_equal(repl_al_resize(al, 2 * VOL), 0);
	assert_int_equal(begin_ext(al, 256, NULL, NULL), 0);
	assert_int_equal(begin_ext(al, 511, NULL, NULL), 0);
	assert_int_equal(begin_ext(al, 512, NULL, NULL), -EINVAL);
	repl_al_free(al);
}

/* extents far apart (same low bits) still hash, evict and come back */
static void test_strided_extents(void **state)
{
	struct repl_al *al = repl_al_create(1ULL << 50, 64, &uuid_a); /* 1 PiB */
	bool need;
	uint64_t wait;

	assert_non_null(al);
	for (uint32_t i = 0; i < 200; i++) {
		uint64_t off = (uint64_t)i * 2048 * EXT;

		assert_int_equal(repl_al_begin(al, off, 4096, &need, &wait), 0);
		assert_int_equal(repl_al_refcount(al, i * 2048), 1);
		assert_int_equal(repl_al_end(al, off, 4096), 0);
	}
	assert_int_equal(repl_al_active(al), 64);
	for (uint32_t i = 0; i < 200; i++)
		assert_int_equal(repl_al_refcount(al, i * 2048), i < 136 ? -ENOENT : 0);
	repl_al_free(al);
}

/* ---- random walk against a model -------------------------------------------- */

#define NEXT 24
#define CAP 6

struct model {
	int refs[NEXT];       /* -1: not active */
	uint64_t idle_at[NEXT]; /* when it last became idle */
	uint64_t clock;
};

static int model_active(const struct model *m)
{
	int n = 0;

	for (int e = 0; e < NEXT; e++)
		n += m->refs[e] >= 0;
	return n;
}

static int model_begin(struct model *m, int e0, int e1)
{
	int missing = 0, idle_other = 0, n = model_active(m);

	for (int e = e0; e <= e1; e++)
		missing += m->refs[e] < 0;
	for (int e = 0; e < NEXT; e++)
		if (m->refs[e] == 0 && (e < e0 || e > e1))
			idle_other++;
	if (missing > CAP - n + idle_other)
		return -EBUSY;
	for (int e = e0; e <= e1; e++)
		if (m->refs[e] >= 0)
			m->refs[e]++;
	for (int e = e0; e <= e1; e++) {
		if (m->refs[e] >= 0) /* present: pinned above */
			continue;
		if (model_active(m) == CAP) { /* evict the least recently idle */
			int victim = -1;

			for (int v = 0; v < NEXT; v++)
				if (m->refs[v] == 0 &&
				    (victim < 0 || m->idle_at[v] < m->idle_at[victim]))
					victim = v;
			assert_true(victim >= 0);
			m->refs[victim] = -1;
		}
		m->refs[e] = 1;
	}
	return 0;
}

static void test_random_walk_matches_model(void **state)
{
	struct repl_al *al = repl_al_create(NEXT * EXT, CAP, &uuid_a);
	uint8_t buf[REPL_AL_BLOCK_SIZE];
	struct model m;
	struct { int e0, e1; } held[64];
	int nheld = 0;

	assert_non_null(al);
	for (int e = 0; e < NEXT; e++)
		m.refs[e] = -1;
	m.clock = 0;
	srand(11);
	for (int step = 0; step < 20000; step++) {
		if (nheld < 64 && (rand() % 2 || nheld == 0)) {
			int e0 = rand() % NEXT, span = rand() % 2; /* MIN evaluates twice */
			int e1 = MIN(NEXT - 1, e0 + span);
			uint64_t wait;
			bool need;
			int r = repl_al_begin(al, (uint64_t)e0 * EXT, (uint64_t)(e1 - e0 + 1) * EXT,
					      &need, &wait);

			assert_int_equal(r, model_begin(&m, e0, e1));
			if (r == 0) {
				held[nheld].e0 = e0;
				held[nheld++].e1 = e1;
			}
		} else {
			int i = rand() % nheld;

			assert_int_equal(repl_al_end(al, (uint64_t)held[i].e0 * EXT,
						     (uint64_t)(held[i].e1 - held[i].e0 + 1) * EXT), 0);
			for (int e = held[i].e0; e <= held[i].e1; e++)
				if (--m.refs[e] == 0)
					m.idle_at[e] = ++m.clock;
			held[i] = held[--nheld];
		}
		for (int e = 0; e < NEXT; e++)
			assert_int_equal(repl_al_refcount(al, (uint32_t)e),
					 m.refs[e] < 0 ? -ENOENT : m.refs[e]);
		assert_int_equal(repl_al_active(al), model_active(&m));
		if (step % 97 == 0) {
			struct repl_al_txn t;

			assert_int_equal(repl_al_encode_txn(al, buf, &t), 0);
			assert_int_equal(t.count, model_active(&m));
			assert_int_equal(repl_al_txn_done(al, t.seq, 0), 0);
		}
	}
	repl_al_free(al);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_begin_waits_for_txn),
		cmocka_unit_test(test_begin_end_errors),
		cmocka_unit_test(test_fill_to_capacity_then_busy),
		cmocka_unit_test(test_busy_does_not_evict_own_extent),
		cmocka_unit_test(test_lru_eviction_order),
		cmocka_unit_test(test_evicted_reporting),
		cmocka_unit_test(test_txn_seq_and_slot_rotation),
		cmocka_unit_test(test_txn_inflight_limit),
		cmocka_unit_test(test_txn_out_of_order_done),
		cmocka_unit_test(test_txn_failure_rearms),
		cmocka_unit_test(test_txn_failure_of_older),
		cmocka_unit_test(test_encode_block_rejects),
		cmocka_unit_test(test_block_every_bit_flip),
		cmocka_unit_test(test_block_ok),
		cmocka_unit_test(test_block_wrong_volume),
		cmocka_unit_test(test_block_wrong_slot),
		cmocka_unit_test(test_block_bad_version),
		cmocka_unit_test(test_block_bad_hdr_len),
		cmocka_unit_test(test_block_seq0),
		cmocka_unit_test(test_block_reserved),
		cmocka_unit_test(test_block_count_big),
		cmocka_unit_test(test_block_padding),
		cmocka_unit_test(test_block_unsorted),
		cmocka_unit_test(test_block_outside),
		cmocka_unit_test(test_block_magic),
		cmocka_unit_test(test_block_zero_and_short),
		cmocka_unit_test(test_err_names),
		cmocka_unit_test(test_recover_fresh),
		cmocka_unit_test(test_recover_torn_newest),
		cmocka_unit_test(test_recover_ignores_foreign_and_misplaced),
		cmocka_unit_test(test_recover_nothing_valid),
		cmocka_unit_test(test_restore_continues),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_strided_extents),
		cmocka_unit_test(test_random_walk_matches_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
