/* libFuzzer: superblock decoding (store_meta.c) on arbitrary bytes.
 *
 * Input: one mode byte, then slot A (up to 512 bytes), then slot B (up to
 * 512 bytes). Mode bits help the fuzzer past the checksum so that field
 * validation gets explored: bit 0/1 recompute slot A's/B's CRC, bit 2/3
 * also force a valid magic, version and header length into A/B first.
 *
 * Invariants: anything that decodes OK re-encodes to the same 512-byte
 * header (so nothing is silently dropped on the next metadata update) and
 * has sane fields; store_meta_pick agrees with decoding each slot alone
 * and picks the newer valid one. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "store_format.h"
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

static void massage(uint8_t *b, size_t len, bool fix_hdr, bool fix_crc)
{
	if (len < SB_OFF_CRC + 4)
		return;
	if (fix_hdr) {
		put_le64(b + SB_OFF_MAGIC, STORE_META_MAGIC);
		put_le32(b + SB_OFF_VERSION, STORE_META_VERSION);
		put_le32(b + SB_OFF_HDR_LEN, SB_HDR_LEN);
	}
	if (fix_crc)
		put_le32(b + SB_OFF_CRC, crc32c(0, b, SB_HDR_LEN));
}

static enum store_meta_err check_slot(const uint8_t *b, size_t len,
				      struct store_meta *m)
{
	enum store_meta_err e = store_meta_decode(b, len, m);
	uint8_t *re;

	CHECK(e >= STORE_META_OK && e <= STORE_META_BAD_FIELD);
	CHECK(store_meta_err_name(e) != NULL);
	if (e != STORE_META_OK)
		return e;
	CHECK(len >= 512);
	CHECK(memchr(m->name, '\0', sizeof(m->name)) != NULL);
	CHECK(urbd_name_valid(m->name));
	CHECK(m->size > 0 && m->size % STORE_BLOCK_SIZE == 0);
	CHECK(is_pow2(m->block_size) && m->block_size >= 512 &&
	      m->block_size <= STORE_BLOCK_SIZE);
	CHECK(is_pow2(m->bm_grain) && m->bm_grain >= STORE_BLOCK_SIZE);

	re = malloc(STORE_SB_SIZE);
	CHECK(re != NULL);
	store_meta_encode(m, re);
	if (memcmp(re, b, 512) != 0) {
		for (size_t i = 0; i < 512; i++)
			if (re[i] != b[i]) {
				fprintf(stderr, "re-encoded superblock differs at byte "
					"%zu: decoded 0x%02x, re-encoded 0x%02x\n",
					i, b[i], re[i]);
				break;
			}
		abort();
	}
	free(re);
	return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_meta ma, mb, mp;
	enum store_meta_err ea, eb, wa, wb;
	uint8_t *a, *b, mode;
	size_t la, lb, lp;
	int pick;

	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	la = MIN(size, 512);
	lb = MIN(size - la, 512);
	/* exact-size copies: any read past len is an ASan report */
	a = malloc(la ? la : 1);
	b = malloc(lb ? lb : 1);
	CHECK(a && b);
	memcpy(a, data, la);
	memcpy(b, data + la, lb);
	massage(a, la, mode & 4, mode & 1);
	massage(b, lb, mode & 8, mode & 2);

	ea = check_slot(a, la, &ma);
	eb = check_slot(b, lb, &mb);

	/* pick over the common length */
	lp = MIN(la, lb);
	pick = store_meta_pick(a, b, lp, &mp, &wa, &wb);
	if (lp == la)
		CHECK(wa == ea);
	if (lp == lb)
		CHECK(wb == eb);
	if (pick == -1) {
		CHECK(wa != STORE_META_OK && wb != STORE_META_OK);
	} else if (pick == 0) {
		CHECK(wa == STORE_META_OK);
		CHECK(wb != STORE_META_OK || mp.seq >= mb.seq);
		CHECK(memcmp(&mp, &ma, sizeof(mp)) == 0);
	} else {
		CHECK(pick == 1);
		CHECK(wb == STORE_META_OK);
		CHECK(wa != STORE_META_OK || mp.seq > ma.seq);
		CHECK(memcmp(&mp, &mb, sizeof(mp)) == 0);
	}
	free(a);
	free(b);
	return 0;
}
