/* common/util.{h,c}: overflow-checked arithmetic, alignment, byte order,
 * volume-name validation and size parsing/formatting. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

/* ---- arithmetic and alignment --------------------------------------- */

static void test_add_overflow(void **state)
{
	uint64_t s = 0;

	assert_false(add_overflows_u64(1, 2, &s));
	assert_int_equal(s, 3);
	assert_false(add_overflows_u64(UINT64_MAX - 1, 1, &s));
	assert_true(s == UINT64_MAX);
	assert_false(add_overflows_u64(0, UINT64_MAX, &s));
	assert_true(s == UINT64_MAX);
	assert_true(add_overflows_u64(UINT64_MAX, 1, &s));
	assert_true(add_overflows_u64(1, UINT64_MAX, &s));
	assert_true(add_overflows_u64(UINT64_MAX, UINT64_MAX, &s));
	assert_true(add_overflows_u64(1ULL << 63, 1ULL << 63, &s));
	assert_false(add_overflows_u64((1ULL << 63) - 1, 1ULL << 63, &s));
}

static void test_is_pow2(void **state)
{
	assert_false(is_pow2(0));
	assert_true(is_pow2(1));
	assert_true(is_pow2(2));
	assert_false(is_pow2(3));
	assert_true(is_pow2(4096));
	assert_false(is_pow2(4095));
	assert_false(is_pow2(4097));
	assert_true(is_pow2(1ULL << 63));
	assert_false(is_pow2(UINT64_MAX));
}

static void test_align_down(void **state)
{
	assert_int_equal(align_down(0, 4096), 0);
	assert_int_equal(align_down(1, 4096), 0);
	assert_int_equal(align_down(4095, 4096), 0);
	assert_int_equal(align_down(4096, 4096), 4096);
	assert_int_equal(align_down(8191, 4096), 4096);
	assert_int_equal(align_down(513, 512), 512);
	assert_int_equal(align_down(7, 1), 7);
	assert_true(align_down(UINT64_MAX, 4096) == UINT64_MAX - 4095);
}

static void test_align_up(void **state)
{
	assert_int_equal(align_up(0, 4096), 0);
	assert_int_equal(align_up(1, 4096), 4096);
	assert_int_equal(align_up(4095, 4096), 4096);
	assert_int_equal(align_up(4096, 4096), 4096);
	assert_int_equal(align_up(4097, 4096), 8192);
	assert_int_equal(align_up(511, 512), 512);
	assert_int_equal(align_up(7, 1), 7);
}

static void test_is_aligned(void **state)
{
	assert_true(is_aligned(0, 4096));
	assert_true(is_aligned(8192, 4096));
	assert_false(is_aligned(1, 4096));
	assert_false(is_aligned(4095, 4096));
	assert_false(is_aligned(4096 + 512, 4096));
	assert_true(is_aligned(4096 + 512, 512));
	assert_true(is_aligned(12345, 1));
}

static void test_min_max_array_size(void **state)
{
	int a[7];
	struct outer {
		int x;
		long member;
	} o;

	assert_int_equal(MIN(3, 5), 3);
	assert_int_equal(MIN(5, 3), 3);
	assert_int_equal(MAX(3, 5), 5);
	assert_int_equal(MAX(-1, -2), -1);
	assert_int_equal(ARRAY_SIZE(a), 7);
	assert_ptr_equal(container_of(&o.member, struct outer, member), &o);
	(void)a;
}

/* ---- byte order ----------------------------------------------------- */

static void test_be_layout(void **state)
{
	uint8_t b[8];

	put_be16(b, 0x0102);
	assert_int_equal(b[0], 0x01);
	assert_int_equal(b[1], 0x02);
	put_be32(b, 0x01020304);
	assert_int_equal(b[0], 0x01);
	assert_int_equal(b[3], 0x04);
	put_be64(b, 0x0102030405060708ULL);
	for (int i = 0; i < 8; i++)
		assert_int_equal(b[i], i + 1);
}

static void test_le_layout(void **state)
{
	uint8_t b[8];

	put_le16(b, 0x0102);
	assert_int_equal(b[0], 0x02);
	assert_int_equal(b[1], 0x01);
	put_le32(b, 0x01020304);
	assert_int_equal(b[0], 0x04);
	assert_int_equal(b[3], 0x01);
	put_le64(b, 0x0102030405060708ULL);
	for (int i = 0; i < 8; i++)
		assert_int_equal(b[i], 8 - i);
}

static void test_be_round_trip_unaligned(void **state)
{
	uint8_t buf[32];
	static const uint64_t v64[] = { 0, 1, 0x8000000000000000ULL,
					0xdeadbeefcafef00dULL, UINT64_MAX };

	/* odd offsets: the helpers must not need natural alignment */
	for (size_t off = 0; off < 8; off++) {
		put_be16(buf + off, 0xabcd);
		assert_int_equal(get_be16(buf + off), 0xabcd);
		put_be32(buf + off, 0xdeadbeef);
		assert_int_equal(get_be32(buf + off), 0xdeadbeef);
		for (size_t i = 0; i < ARRAY_SIZE(v64); i++) {
			put_be64(buf + off, v64[i]);
			assert_true(get_be64(buf + off) == v64[i]);
		}
	}
}

static void test_le_round_trip_unaligned(void **state)
{
	uint8_t buf[32];
	static const uint64_t v64[] = { 0, 1, 0x8000000000000000ULL,
					0xdeadbeefcafef00dULL, UINT64_MAX };

	for (size_t off = 0; off < 8; off++) {
		put_le16(buf + off, 0xabcd);
		assert_int_equal(get_le16(buf + off), 0xabcd);
		put_le32(buf + off, 0xdeadbeef);
		assert_int_equal(get_le32(buf + off), 0xdeadbeef);
		for (size_t i = 0; i < ARRAY_SIZE(v64); i++) {
			put_le64(buf + off, v64[i]);
			assert_true(get_le64(buf + off) == v64[i]);
		}
	}
}

static void test_be_le_differ(void **state)
{
	uint8_t b[4];

	put_be32(b, 0x11223344);
	assert_int_equal(get_le32(b), 0x44332211);
	put_le16(b, 0x1122);
	assert_int_equal(get_be16(b), 0x2211);
}

/* ---- names ---------------------------------------------------------- */

static void test_name_valid_good(void **state)
{
	static const char *const good[] = {
		"a", "0", "vol", "vol-1", "vol.1", "vol_1", "pvc-0a1b2c3d",
		"a-", "a.", "a_", "9lives", "a..b", "x-y.z_w",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		assert_true(urbd_name_valid(good[i]));
}

static void test_name_valid_bad(void **state)
{
	static const char *const bad[] = {
		"", "A", "Vol", "volA", "-a", ".a", "_a", ".", "..", "a/b",
		"/a", "a/", "a b", " a", "a\n", "a\t", "a+b", "a:b", "a@b",
		"\xc3\xa9t\xc3\xa9", "a*", "a~",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_false(urbd_name_valid(bad[i]));
}

static void test_name_valid_length(void **state)
{
	char n[80];

	memset(n, 'a', sizeof(n));
	n[63] = '\0';
	assert_int_equal(strlen(n), URBD_NAME_MAX);
	assert_true(urbd_name_valid(n));
	n[63] = 'a';
	n[64] = '\0';
	assert_false(urbd_name_valid(n));
	n[62] = '\0';
	assert_true(urbd_name_valid(n));
	memset(n, 'a', sizeof(n));
	n[79] = '\0';
	assert_false(urbd_name_valid(n));
}

/* ---- sizes ---------------------------------------------------------- */

static void expect_size(const char *s, uint64_t want)
{
	uint64_t v = 12345;

	if (urbd_parse_size(s, &v) != 0)
		fail_msg("urbd_parse_size(\"%s\") failed", s);
	if (v != want)
		fail_msg("urbd_parse_size(\"%s\") = %llu, want %llu", s,
			 (unsigned long long)v, (unsigned long long)want);
}

static void test_parse_size_plain(void **state)
{
	expect_size("0", 0);
	expect_size("1", 1);
	expect_size("4096", 4096);
	expect_size("18446744073709551615", UINT64_MAX);
}

static void test_parse_size_units(void **state)
{
	expect_size("1K", 1024);
	expect_size("1k", 1024);
	expect_size("512M", 512ULL << 20);
	expect_size("1G", 1ULL << 30);
	expect_size("1g", 1ULL << 30);
	expect_size("3T", 3ULL << 40);
	expect_size("2P", 2ULL << 50);
	expect_size("16383P", 16383ULL << 50);
}

static void test_parse_size_suffixes(void **state)
{
	expect_size("1GiB", 1ULL << 30);
	expect_size("1GB", 1ULL << 30);
	expect_size("1Gib", 1ULL << 30);
	expect_size("1Gb", 1ULL << 30);
	expect_size("64KiB", 64ULL << 10);
	expect_size("10MiB", 10ULL << 20);
}

static void expect_size_err(const char *s, int err)
{
	uint64_t v = 0;
	int ret = urbd_parse_size(s, &v);

	if (ret != err)
		fail_msg("urbd_parse_size(\"%s\") = %d, want %d", s ? s : "(null)",
			 ret, err);
}

static void test_parse_size_fraction_rejected(void **state)
{
	expect_size_err("1.5G", -EINVAL);
	expect_size_err("1,5G", -EINVAL);
	expect_size_err("0.5", -EINVAL);
}

static void test_parse_size_empty_rejected(void **state)
{
	expect_size_err("", -EINVAL);
	expect_size_err(NULL, -EINVAL);
}

static void test_parse_size_unit_only_rejected(void **state)
{
	expect_size_err("G", -EINVAL);
	expect_size_err("GiB", -EINVAL);
	expect_size_err("iB", -EINVAL);
}

static void test_parse_size_sign_space_rejected(void **state)
{
	expect_size_err("-1", -EINVAL);
	expect_size_err("+1", -EINVAL);
	expect_size_err(" 1", -EINVAL);
	expect_size_err("1 G", -EINVAL);
	expect_size_err("1G ", -EINVAL);
}

static void test_parse_size_bad_suffix_rejected(void **state)
{
	expect_size_err("1X", -EINVAL);
	expect_size_err("1E", -EINVAL);
	expect_size_err("1Gx", -EINVAL);
	expect_size_err("1GiBx", -EINVAL);
	expect_size_err("1GG", -EINVAL);
	expect_size_err("1iB", -EINVAL);
	expect_size_err("1B", -EINVAL); /* bytes suffix without a unit */
	expect_size_err("0x10", -EINVAL);
}

static void test_parse_size_overflow(void **state)
{
	expect_size_err("18446744073709551616", -ERANGE);
	expect_size_err("99999999999999999999999", -ERANGE);
	expect_size_err("16384P", -ERANGE);
	expect_size_err("17179869184G", -ERANGE);
	expect_size_err("18446744073709551615K", -ERANGE);
}

static void expect_format(uint64_t bytes, const char *want)
{
	char buf[32];
	char *ret = urbd_format_size(bytes, buf, sizeof(buf));

	assert_ptr_equal(ret, buf);
	assert_string_equal(buf, want);
}

static void test_format_size(void **state)
{
	expect_format(0, "0 B");
	expect_format(1, "1 B");
	expect_format(1023, "1023 B");
	expect_format(1024, "1.0 KiB");
	expect_format(1536, "1.5 KiB");
	expect_format(1ULL << 20, "1.0 MiB");
	expect_format(512ULL << 20, "512.0 MiB");
	expect_format(1ULL << 30, "1.0 GiB");
	expect_format(3ULL << 40, "3.0 TiB");
	expect_format(1ULL << 50, "1.0 PiB");
	expect_format(1ULL << 60, "1024.0 PiB");
	expect_format(UINT64_MAX, "16384.0 PiB");
}

static void test_format_size_truncates(void **state)
{
	char buf[4];

	urbd_format_size(1ULL << 30, buf, sizeof(buf));
	assert_string_equal(buf, "1.0");
}

static void test_parse_format_round_trip(void **state)
{
	char buf[32];
	uint64_t v;

	urbd_format_size(1ULL << 30, buf, sizeof(buf));
	/* "1.0 GiB" is for humans, not for the parser */
	assert_int_equal(urbd_parse_size(buf, &v), -EINVAL);
}

static void test_clocks(void **state)
{
	uint64_t a = now_ns(), b = now_ns();

	assert_true(b >= a);
	assert_true(wall_ns() > 1500000000ULL * 1000000000ULL); /* after 2017 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_overflow),
		cmocka_unit_test(test_is_pow2),
		cmocka_unit_test(test_align_down),
		cmocka_unit_test(test_align_up),
		cmocka_unit_test(test_is_aligned),
		cmocka_unit_test(test_min_max_array_size),
		cmocka_unit_test(test_be_layout),
		cmocka_unit_test(test_le_layout),
		cmocka_unit_test(test_be_round_trip_unaligned),
		cmocka_unit_test(test_le_round_trip_unaligned),
		cmocka_unit_test(test_be_le_differ),
		cmocka_unit_test(test_name_valid_good),
		cmocka_unit_test(test_name_valid_bad),
		cmocka_unit_test(test_name_valid_length),
		cmocka_unit_test(test_parse_size_plain),
		cmocka_unit_test(test_parse_size_units),
		cmocka_unit_test(test_parse_size_suffixes),
		cmocka_unit_test(test_parse_size_fraction_rejected),
		cmocka_unit_test(test_parse_size_empty_rejected),
		cmocka_unit_test(test_parse_size_unit_only_rejected),
		cmocka_unit_test(test_parse_size_sign_space_rejected),
		cmocka_unit_test(test_parse_size_bad_suffix_rejected),
		cmocka_unit_test(test_parse_size_overflow),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_format_size_truncates),
		cmocka_unit_test(test_parse_format_round_trip),
		cmocka_unit_test(test_clocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
