/* libFuzzer: replication metadata parsers (repl_bitmap.c, repl_al.c) on
 * arbitrary bytes.
 *
 * Input: a mode byte, then mode-specific bytes. mode % 4 picks the target:
 *   0  repl_bitmap_decode_block: 8 parameter bytes (volume size, grain,
 *      block index, slot), then the block (up to 4096 bytes, exact-size
 *      copy). Mode bit 2 forces the expected magic/version/uuid/slot/index/
 *      grain into the header, bit 3 recomputes the CRC, so that field and
 *      payload validation get explored.
 *   1  repl_al_recover: 4 bytes of volume size, then up to 64 KiB laid over
 *      a zeroed AL area. Bit 2 forces magic/version/uuid, bit 3 recomputes
 *      every block's CRC.
 *   2  repl_bitmap_merge_chunk: 8 parameter bytes (size, first bit, length
 *      trim), then the chunk.
 *   3  repl_al begin/end/encode/done driven by 3-byte commands.
 *
 * Invariants: decoders return a known reason with a name; whatever decodes
 * re-encodes to the same bytes; the bitmap's count equals its bits and no
 * bit past the end is ever set; a rejected chunk or block changes nothing;
 * recovery picks the highest valid seq and hands back a sorted in-range
 * set; the AL never holds more than its capacity. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../replication/repl_al.h"
#include "../../replication/repl_bitmap.h"
#include "../../replication/repl_proto.h"
#include "crc32c.h"
#include "util.h"

#define CHECK(c)                                                         \
	do {                                                             \
		if (!(c)) {                                              \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", \
				#c, __FILE__, __LINE__);                 \
			abort();                                         \
		}                                                        \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct urbd_uuid fuzz_uuid = { { 0x75, 0x72, 0x62, 0x64, 0x2d, 0x66, 0x75, 0x7a,
					      0x7a, 0x2d, 0x75, 0x75, 0x69, 0x64, 0x00, 0x01 } };

/* Counts set bits from the exported words, checks that none is past the
 * end, and that find_next_set agrees with the words at a few points. */
static uint64_t recount(const struct repl_dirty_bitmap *bm)
{
	static uint8_t words[REPL_MAX_BITMAP];
	uint64_t n = 0, total = repl_bitmap_total_bits(bm);
	size_t len = align_up(total, 64) / 8;
	uint64_t probe[] = { 0, total / 3, total / 2, total - 1 };

	CHECK(len <= sizeof(words)); /* mk_bitmap keeps bitmaps small */
	CHECK(repl_bitmap_export_chunk(bm, 0, words, len) == (int)len);
	for (size_t i = 0; i < len; i += 8)
		n += (uint64_t)__builtin_popcountll(get_le64(words + i));
	if (total % 64)
		CHECK((get_le64(words + len - 8) >> (total % 64)) == 0);
	for (size_t k = 0; k < ARRAY_SIZE(probe); k++) {
		uint64_t b = repl_bitmap_find_next_set(bm, probe[k]), x = probe[k];

		while (x < total && !(words[x / 8] >> (x % 8) & 1))
			x = x % 64 == 0 && !get_le64(words + x / 8) ? x + 64 : x + 1;
		CHECK(b == (x < total ? x : REPL_BM_NONE));
	}
	return n;
}

/* small volumes (up to three bitmap blocks) keep runs fast */
static struct repl_dirty_bitmap *mk_bitmap(const uint8_t *p)
{
	uint32_t grain = 4096u << (p[2] % 6);
	uint64_t bits = 1 + get_le16(p) % (3 * REPL_BM_BITS_PER_BLOCK);
	uint64_t sz = bits * grain - (p[3] % (grain / 4096)) * 4096;
	struct repl_dirty_bitmap *bm = repl_bitmap_create(sz, grain);

	CHECK(bm != NULL);
	CHECK(repl_bitmap_total_bits(bm) == bits);
	return bm;
}

static void fuzz_bitmap_block(uint8_t mode, const uint8_t *data, size_t size)
{
	struct repl_dirty_bitmap *bm;
	enum repl_bm_block_err e;
	uint64_t idx, seq = 0, before;
	uint32_t slot, flags = 0;
	uint8_t *blk, *re;
	size_t len;

	if (size < 8)
		return;
	bm = mk_bitmap(data);
	idx = data[4] % (repl_bitmap_blocks(bm) + 1); /* one past: WRONG_INDEX */
	slot = data[5] % (URBD_MAX_PEERS + 1);
	data += 8;
	size -= 8;
	len = MIN(size, (size_t)REPL_BM_BLOCK_SIZE);
	blk = malloc(len ? len : 1);
	CHECK(blk != NULL);
	memcpy(blk, data, len);
	if (len == REPL_BM_BLOCK_SIZE && (mode & 4)) {
		put_le32(blk + BM_OFF_MAGIC, REPL_BM_MAGIC);
		put_le16(blk + BM_OFF_VERSION, REPL_BM_VERSION);
		put_le16(blk + BM_OFF_HDR_LEN, STORE_BM_HDR_LEN);
		put_le32(blk + BM_OFF_SLOT, slot);
		put_le32(blk + BM_OFF_INDEX, (uint32_t)idx);
		memcpy(blk + BM_OFF_UUID, fuzz_uuid.b, 16);
		put_le32(blk + BM_OFF_GRAIN, repl_bitmap_grain(bm));
	}
	if (len == REPL_BM_BLOCK_SIZE && (mode & 8))
		put_le32(blk + BM_OFF_CRC,
			 crc32c(crc32c(0, blk, BM_OFF_CRC), blk + BM_OFF_BITS,
				REPL_BM_BLOCK_SIZE - BM_OFF_BITS));

	repl_bitmap_set_bits(bm, 0, 1); /* something to keep or replace */
	before = repl_bitmap_count(bm);
	e = repl_bitmap_decode_block(bm, idx, slot, &fuzz_uuid, blk, len, &seq, &flags);
	CHECK(e >= REPL_BM_BLOCK_OK && e <= REPL_BM_BLOCK_BAD_FIELD);
	CHECK(repl_bm_block_err_name(e) != NULL);
	CHECK(recount(bm) == repl_bitmap_count(bm));
	if (!repl_bm_block_usable(e)) {
		CHECK(repl_bitmap_count(bm) == before);
	} else {
		CHECK(len == REPL_BM_BLOCK_SIZE && idx < repl_bitmap_blocks(bm));
		CHECK(!repl_bitmap_block_dirty(bm, idx));
	}
	/* a block written at this very size re-encodes byte for byte */
	if (e == REPL_BM_BLOCK_OK &&
	    get_le64(blk + BM_OFF_TOTAL_BITS) == repl_bitmap_total_bits(bm)) {
		re = malloc(REPL_BM_BLOCK_SIZE);
		CHECK(re != NULL);
		CHECK(repl_bitmap_encode_block(bm, idx, slot, &fuzz_uuid, seq, flags, re) == 0);
		CHECK(memcmp(re, blk, REPL_BM_BLOCK_SIZE) == 0);
		free(re);
	}
	free(blk);
	repl_bitmap_free(bm);
}

static void fuzz_al_recover(uint8_t mode, const uint8_t *data, size_t size)
{
	const size_t area_len = (size_t)REPL_AL_RING * REPL_AL_BLOCK_SIZE;
	struct repl_al_recovery *rec = malloc(sizeof(*rec));
	uint8_t *area = calloc(1, area_len), *re = malloc(REPL_AL_BLOCK_SIZE);
	uint64_t vol, best = 0;
	int ret;

	CHECK(rec && area && re);
	if (size < 4)
		goto out;
	/* 1 .. 2^32 - 1 MiB: from a handful of extents to thousands */
	vol = ((uint64_t)(get_le32(data) | 1)) << 20;
	data += 4;
	size -= 4;
	memcpy(area, data, MIN(size, area_len));
	for (unsigned i = 0; i < REPL_AL_RING; i++) {
		uint8_t *b = area + (size_t)i * REPL_AL_BLOCK_SIZE;

		if (mode & 4) {
			put_le32(b + AL_OFF_MAGIC, REPL_AL_MAGIC);
			put_le16(b + AL_OFF_VERSION, REPL_AL_VERSION);
			put_le16(b + AL_OFF_HDR_LEN, REPL_AL_HDR_LEN);
			memcpy(b + AL_OFF_UUID, fuzz_uuid.b, 16);
		}
		if (mode & 8)
			put_le32(b + AL_OFF_CRC,
				 crc32c(crc32c(0, b, AL_OFF_CRC), b + AL_OFF_EXTENTS,
					REPL_AL_BLOCK_SIZE - AL_OFF_EXTENTS));
	}
	ret = repl_al_recover(area, area_len, &fuzz_uuid, vol, rec);
	CHECK(ret == 0 || ret == -EBADMSG);
	for (unsigned i = 0; i < REPL_AL_RING; i++) {
		CHECK(rec->why[i] <= REPL_AL_BLOCK_BAD_FIELD);
		CHECK(repl_al_block_err_name(rec->why[i]) != NULL);
		if (rec->why[i] == REPL_AL_BLOCK_OK) {
			CHECK(rec->block_seq[i] % REPL_AL_RING == i);
			best = MAX(best, rec->block_seq[i]);
		}
	}
	if (ret == -EBADMSG) {
		CHECK(rec->slot == -1 && rec->count == 0 && best == 0);
		goto out;
	}
	CHECK(rec->seq == best);
	if (rec->slot < 0) {
		CHECK(rec->count == 0);
		for (unsigned i = 0; i < REPL_AL_RING; i++)
			CHECK(rec->why[i] == REPL_AL_BLOCK_ZERO);
		goto out;
	}
	CHECK(rec->count <= REPL_AL_MAX_EXTENTS);
	for (uint32_t k = 0; k < rec->count; k++) {
		CHECK((uint64_t)rec->extents[k] << REPL_AL_EXTENT_SHIFT < vol);
		CHECK(k == 0 || rec->extents[k] > rec->extents[k - 1]);
	}
	CHECK(repl_al_encode_block(re, &fuzz_uuid, rec->seq, rec->extents, rec->count) == 0);
	CHECK(memcmp(re, area + (size_t)rec->slot * REPL_AL_BLOCK_SIZE,
		     REPL_AL_BLOCK_SIZE) == 0);
out:
	free(rec);
	free(area);
	free(re);
}

static void fuzz_merge(const uint8_t *data, size_t size)
{
	struct repl_dirty_bitmap *bm;
	uint64_t first, before;
	uint8_t *chunk, *out;
	size_t len;
	int ret;

	if (size < 8)
		return;
	bm = mk_bitmap(data);
	/* mostly aligned first bits, sometimes not */
	first = (uint64_t)get_le16(data + 4) * (data[6] & 1 ? 64 : 1);
	len = size - 8 - MIN(size - 8, (size_t)data[7] % 8);
	chunk = malloc(len ? len : 1);
	out = malloc(len ? len : 1);
	CHECK(chunk && out);
	memcpy(chunk, data + 8, len);
	repl_bitmap_set_bits(bm, repl_bitmap_total_bits(bm) - 1, 1);
	before = repl_bitmap_count(bm);
	ret = repl_bitmap_merge_chunk(bm, first, chunk, len);
	CHECK(recount(bm) == repl_bitmap_count(bm));
	if (ret < 0) {
		CHECK(ret == -EINVAL);
		CHECK(repl_bitmap_count(bm) == before);
	} else {
		CHECK(repl_bitmap_count(bm) == before + (uint64_t)ret);
		/* everything sent is now set */
		CHECK(repl_bitmap_export_chunk(bm, first, out, len) == (int)len);
		for (size_t i = 0; i < len; i++)
			CHECK((out[i] & chunk[i]) == chunk[i]);
	}
	free(chunk);
	free(out);
	repl_bitmap_free(bm);
}

/* commands: op, extent, span */
static void fuzz_al_ops(const uint8_t *data, size_t size)
{
	struct repl_al *al = repl_al_create(64 * REPL_AL_EXTENT_SIZE, 8, &fuzz_uuid);
	uint8_t *buf = malloc(REPL_AL_BLOCK_SIZE);
	uint32_t ext[REPL_AL_MAX_EXTENTS], n;
	struct repl_al_txn t;
	uint64_t wait, seq;
	bool need;

	CHECK(al && buf);
	size = MIN(size, (size_t)3 * 512); /* long scripts only slow the fuzzer */
	for (size_t i = 0; i + 3 <= size; i += 3) {
		uint64_t off = (uint64_t)(data[i + 1] % 64) << REPL_AL_EXTENT_SHIFT;
		uint64_t len = ((uint64_t)data[i + 2] + 1) << 17; /* 128 KiB .. 32 MiB */
		int r;

		switch (data[i] % 4) {
		case 0:
			r = repl_al_begin(al, off, len, &need, &wait);
			CHECK(r == 0 || r == -EBUSY || r == -EINVAL || r == -E2BIG);
			if (r == 0) {
				CHECK(wait == 0 || wait > repl_al_durable_seq(al));
				CHECK(need == (wait > repl_al_seq(al)));
			}
			break;
		case 1:
			r = repl_al_end(al, off, len);
			CHECK(r == 0 || r == -EINVAL);
			break;
		case 2:
			r = repl_al_encode_txn(al, buf, &t);
			CHECK(r == 0 || r == -EBUSY);
			if (r == 0) {
				CHECK(repl_al_decode_block(buf, REPL_AL_BLOCK_SIZE, t.slot,
							   &fuzz_uuid, 64 * REPL_AL_EXTENT_SIZE,
							   &seq, ext, &n) == REPL_AL_BLOCK_OK);
				CHECK(seq == t.seq && n == t.count && n == repl_al_active(al));
			}
			break;
		case 3:
			/* complete the oldest in-flight transaction, failing some */
			for (uint64_t s = repl_al_seq(al) > 16 ? repl_al_seq(al) - 15 : 1;
			     s <= repl_al_seq(al); s++)
				if (repl_al_txn_done(al, s, data[i + 2] & 1 ? -EIO : 0) == 0)
					break;
			break;
		}
		CHECK(repl_al_active(al) <= repl_al_max_extents(al));
		CHECK(repl_al_durable_seq(al) <= repl_al_seq(al));
	}
	free(buf);
	repl_al_free(al);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t mode;

	if (size < 1)
		return 0;
	mode = data[0];
	switch (mode % 4) {
	case 0: fuzz_bitmap_block(mode, data + 1, size - 1); break;
	case 1: fuzz_al_recover(mode, data + 1, size - 1); break;
	case 2: fuzz_merge(data + 1, size - 1); break;
	case 3: fuzz_al_ops(data + 1, size - 1); break;
	}
	return 0;
}
