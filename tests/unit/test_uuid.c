/* common/uuid.c: random v4 UUIDs, text form, parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "uuid.h"

static void test_generate_version_variant(void **state)
{
	for (int i = 0; i < 64; i++) {
		struct urbd_uuid u;

		assert_int_equal(urbd_uuid_generate(&u), 0);
		assert_int_equal(u.b[6] >> 4, 4);          /* version 4 */
		assert_int_equal(u.b[8] & 0xc0, 0x80);     /* RFC 4122 variant */
		assert_false(urbd_uuid_is_null(&u));
	}
}

static void test_generate_distinct(void **state)
{
	struct urbd_uuid a, b;

	assert_int_equal(urbd_uuid_generate(&a), 0);
	assert_int_equal(urbd_uuid_generate(&b), 0);
	assert_memory_not_equal(a.b, b.b, 16);
}

static void test_format_known(void **state)
{
	struct urbd_uuid u;
	char s[URBD_UUID_STR_LEN];

	for (int i = 0; i < 16; i++)
		u.b[i] = (uint8_t)(i * 0x11);
	memset(s, 'X', sizeof(s));
	urbd_uuid_format(&u, s);
	assert_string_equal(s, "00112233-4455-6677-8899-aabbccddeeff");
	assert_int_equal(strlen(s), URBD_UUID_STR_LEN - 1);
}

static void test_format_parse_round_trip(void **state)
{
	for (int i = 0; i < 32; i++) {
		struct urbd_uuid u, v;
		char s[URBD_UUID_STR_LEN];

		assert_int_equal(urbd_uuid_generate(&u), 0);
		urbd_uuid_format(&u, s);
		assert_int_equal(s[8], '-');
		assert_int_equal(s[13], '-');
		assert_int_equal(s[14], '4');
		assert_int_equal(s[18], '-');
		assert_int_equal(s[23], '-');
		memset(&v, 0, sizeof(v));
		assert_int_equal(urbd_uuid_parse(s, &v), 0);
		assert_memory_equal(u.b, v.b, 16);
	}
}

static void test_parse_uppercase(void **state)
{
	struct urbd_uuid u;
	char s[URBD_UUID_STR_LEN];

	assert_int_equal(urbd_uuid_parse("00112233-4455-6677-8899-AABBCCDDEEFF", &u), 0);
	urbd_uuid_format(&u, s);
	assert_string_equal(s, "00112233-4455-6677-8899-aabbccddeeff");
}

static void test_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"00112233-4455-6677-8899-aabbccddeef",    /* 35 chars */
		"00112233-4455-6677-8899-aabbccddeeff0",  /* 37 chars */
		"00112233-4455-6677-8899-aabbccddeefg",   /* non-hex */
		"0011223344556677-8899-aabbccddeeff----", /* dashes moved */
		"00112233+4455-6677-8899-aabbccddeeff",
		"00112233-4455+6677-8899-aabbccddeeff",
		"00112233-4455-6677+8899-aabbccddeeff",
		"00112233-4455-6677-8899+aabbccddeeff",
		"001122334-455-6677-8899-aabbccddeeff",
		"0011223-34455-6677-8899-aabbccddeeff",
		"00112233-4455-6677-8899-aabbccddee f",
		"{0112233-4455-6677-8899-aabbccddeef}",
		"00112233-4455-6677-8899-aabbccddee\377f",    /* high byte */
		"0x112233-4455-6677-8899-aabbccddeeff",
		"------------------------------------",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct urbd_uuid u;

		if (urbd_uuid_parse(bad[i], &u) != -EINVAL)
			fail_msg("accepted bad uuid \"%s\"", bad[i]);
	}
}

static void test_is_null(void **state)
{
	struct urbd_uuid u = { { 0 } };

	assert_true(urbd_uuid_is_null(&u));
	u.b[15] = 1;
	assert_false(urbd_uuid_is_null(&u));
	assert_int_equal(urbd_uuid_parse("00000000-0000-0000-0000-000000000000", &u), 0);
	assert_true(urbd_uuid_is_null(&u));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_version_variant),
		cmocka_unit_test(test_generate_distinct),
		cmocka_unit_test(test_format_known),
		cmocka_unit_test(test_format_parse_round_trip),
		cmocka_unit_test(test_parse_uppercase),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_is_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
