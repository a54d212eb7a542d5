/* common/crc32c.c (ISA-L wrapped to the standard CRC32C convention),
 * checked against the published check value and a bitwise reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"

/* Reflected CRC32C, polynomial 0x82F63B78, one bit at a time: slow but
 * obviously right. Same chaining convention as crc32c(). */
static uint32_t crc32c_ref(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1)));
	}
	return ~crc;
}

static void test_check_value(void **state)
{
	assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(crc32c_ref(0, "123456789", 9), 0xE3069283u);
}

static void test_empty(void **state)
{
	assert_int_equal(crc32c(0, "", 0), 0);
	assert_int_equal(crc32c(0, NULL, 0), 0);
	/* an empty chunk leaves a running CRC unchanged */
	assert_int_equal(crc32c(0xE3069283u, "x", 0), 0xE3069283u);
}

static void test_known_vectors(void **state)
{
	uint8_t zero[32] = { 0 }, ones[32], inc[32], dec[32];

	memset(ones, 0xff, sizeof(ones));
	for (int i = 0; i < 32; i++) {
		inc[i] = (uint8_t)i;
		dec[i] = (uint8_t)(31 - i);
	}
	/* RFC 3720 appendix B.4 */
	assert_int_equal(crc32c(0, zero, 32), 0x8A9136AAu);
	assert_int_equal(crc32c(0, ones, 32), 0x62A8AB43u);
	assert_int_equal(crc32c(0, inc, 32), 0x46DD794Eu);
	assert_int_equal(crc32c(0, dec, 32), 0x113FDB5Cu);
	assert_int_equal(crc32c(0, "a", 1), 0xC1D04330u);
}

static void test_chaining_equals_one_shot(void **state)
{
	const char *msg = "The quick brown fox jumps over the lazy dog";
	size_t n = strlen(msg);
	uint32_t whole = crc32c(0, msg, n);

	for (size_t cut = 0; cut <= n; cut++) {
		uint32_t c = crc32c(0, msg, cut);

		c = crc32c(c, msg + cut, n - cut);
		assert_int_equal(c, whole);
	}
	assert_int_equal(whole, crc32c_ref(0, msg, n));
}

static void test_chaining_three_pieces(void **state)
{
	uint8_t buf[300];
	uint32_t c;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	c = crc32c(0, buf, 1);
	c = crc32c(c, buf + 1, 150);
	c = crc32c(c, buf + 151, 149);
	assert_int_equal(c, crc32c(0, buf, sizeof(buf)));
}

static void test_unaligned_and_short_lengths(void **state)
{
	uint8_t buf[64 + 16];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i ^ 0x5a);
	/* every start alignment and every small length, which is where
	 * vectorised implementations have their tail/head paths */
	for (size_t off = 0; off < 16; off++)
		for (size_t len = 0; len <= 64; len++)
			assert_int_equal(crc32c(0, buf + off, len),
					 crc32c_ref(0, buf + off, len));
}

static void test_one_mib_vs_reference(void **state)
{
	size_t n = 1u << 20;
	uint8_t *buf = malloc(n);
	uint32_t x = 0x12345678;

	assert_non_null(buf);
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	assert_int_equal(crc32c(0, buf, n), crc32c_ref(0, buf, n));
	/* and with a non-zero seed */
	assert_int_equal(crc32c(0xdeadbeef, buf, n), crc32c_ref(0xdeadbeef, buf, n));
	free(buf);
}

static void test_single_bit_changes_crc(void **state)
{
	uint8_t buf[512] = { 0 };
	uint32_t base = crc32c(0, buf, sizeof(buf));

	for (size_t i = 0; i < sizeof(buf); i += 37) {
		buf[i] ^= 1;
		assert_int_not_equal(crc32c(0, buf, sizeof(buf)), base);
		buf[i] ^= 1;
	}
	assert_int_equal(crc32c(0, buf, sizeof(buf)), base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_value),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_chaining_equals_one_shot),
		cmocka_unit_test(test_chaining_three_pieces),
		cmocka_unit_test(test_unaligned_and_short_lengths),
		cmocka_unit_test(test_one_mib_vs_reference),
		cmocka_unit_test(test_single_bit_changes_crc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
