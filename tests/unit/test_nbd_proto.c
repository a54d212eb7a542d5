/* nbd_proto.c: request/option parsers, nbd_validate_request (one test per
 * error path), the errno mapping, names and encoders. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nbd/nbd_proto.h"
#include "util.h"

#define SIZE (1ULL << 30) /* export size for the validation tests */

static void put_req(uint8_t *b, uint16_t flags, uint16_t type, uint64_t handle,
		    uint64_t off, uint32_t len)
{
	put_be32(b, NBD_REQUEST_MAGIC);
	put_be16(b + 4, flags);
	put_be16(b + 6, type);
	put_be64(b + 8, handle);
	put_be64(b + 16, off);
	put_be32(b + 24, len);
}

/* ---- nbd_parse_request ---------------------------------------------- */

static void test_parse_request_fields_big_endian(void **state)
{
	uint8_t b[NBD_REQUEST_LEN] = {
		0x25, 0x60, 0x95, 0x13,                         /* magic */
		0x00, 0x01,                                     /* flags: FUA */
		0x00, 0x01,                                     /* type: WRITE */
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* handle */
		0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x10, 0x00, /* offset */
		0x00, 0x01, 0x00, 0x00,                         /* length */
	};
	struct nbd_request r;

	assert_int_equal(nbd_parse_request(b, sizeof(b), &r), 0);
	assert_int_equal(r.flags, NBD_CMD_FLAG_FUA);
	assert_int_equal(r.type, NBD_CMD_WRITE);
	assert_true(r.handle == 0x0102030405060708ULL);
	assert_true(r.offset == 0x100001000ULL);
	assert_int_equal(r.length, 0x10000);
}

static void test_parse_request_round_trip(void **state)
{
	uint8_t b[NBD_REQUEST_LEN + 5];
	struct nbd_request r;

	put_req(b, 0xffff, 0xfffe, UINT64_MAX, UINT64_MAX - 1, UINT32_MAX);
	/* extra bytes after the request are the next request: ignored */
	assert_int_equal(nbd_parse_request(b, sizeof(b), &r), 0);
	assert_int_equal(r.flags, 0xffff);
	assert_int_equal(r.type, 0xfffe);
	assert_true(r.handle == UINT64_MAX);
	assert_true(r.offset == UINT64_MAX - 1);
	assert_true(r.length == UINT32_MAX);
}

static void test_parse_request_short(void **state)
{
	uint8_t b[NBD_REQUEST_LEN];
	struct nbd_request r;

	put_req(b, 0, NBD_CMD_READ, 1, 0, 512);
	for (size_t n = 0; n < NBD_REQUEST_LEN; n++)
		assert_int_equal(nbd_parse_request(b, n, &r), -EAGAIN);
}

static void test_parse_request_bad_magic(void **state)
{
	uint8_t b[NBD_REQUEST_LEN];
	struct nbd_request r;

	put_req(b, 0, NBD_CMD_READ, 1, 0, 512);
	for (int i = 0; i < 4; i++) {
		b[i] ^= 0x80;
		assert_int_equal(nbd_parse_request(b, sizeof(b), &r), -EBADMSG);
		b[i] ^= 0x80;
	}
	/* a reply magic is not a request magic */
	put_be32(b, NBD_SIMPLE_REPLY_MAGIC);
	assert_int_equal(nbd_parse_request(b, sizeof(b), &r), -EBADMSG);
}

/* ---- nbd_validate_request ------------------------------------------- */

static uint32_t validate(uint16_t type, uint16_t flags, uint64_t off,
			 uint32_t len, const char **why)
{
	struct nbd_request r = { .flags = flags, .type = type, .handle = 9,
				 .offset = off, .length = len };

	*why = NULL;
	return nbd_validate_request(&r, SIZE, why);
}

static void expect_ok(uint16_t type, uint16_t flags, uint64_t off, uint32_t len)
{
	const char *why;
	uint32_t e = validate(type, flags, off, len, &why);

	if (e)
		fail_msg("%s flags=%#x off=%llu len=%u: error %u (%s)",
			 nbd_cmd_name(type), flags, (unsigned long long)off, len,
			 e, why ? why : "?");
}

static void expect_err(uint16_t type, uint16_t flags, uint64_t off,
		       uint32_t len, uint32_t want, const char *why_part)
{
	const char *why;
	uint32_t e = validate(type, flags, off, len, &why);

	if (e != want)
		fail_msg("%s flags=%#x off=%llu len=%u: error %u, want %u",
			 nbd_cmd_name(type), flags, (unsigned long long)off, len,
			 e, want);
	assert_non_null(why);
	if (!strstr(why, why_part))
		fail_msg("reason \"%s\" does not mention \"%s\"", why, why_part);
}

static void test_validate_ok_in_range(void **state)
{
	expect_ok(NBD_CMD_READ, 0, 0, 512);
	expect_ok(NBD_CMD_READ, 0, SIZE - 1, 1);
	expect_ok(NBD_CMD_READ, 0, SIZE - NBD_MAX_PAYLOAD, NBD_MAX_PAYLOAD);
	expect_ok(NBD_CMD_WRITE, 0, 4096, 4096);
	expect_ok(NBD_CMD_WRITE, 0, 1, 3); /* unaligned is fine on the wire */
	expect_ok(NBD_CMD_TRIM, 0, 0, (uint32_t)SIZE);
	expect_ok(NBD_CMD_WRITE_ZEROES, 0, 0, (uint32_t)SIZE);
	expect_ok(NBD_CMD_FLUSH, 0, 0, 0);
	expect_ok(NBD_CMD_DISC, 0, 0, 0);
}

static void test_validate_exact_end_ok(void **state)
{
	expect_ok(NBD_CMD_READ, 0, SIZE - 4096, 4096);
	expect_ok(NBD_CMD_WRITE, 0, SIZE - 4096, 4096);
	expect_ok(NBD_CMD_TRIM, 0, SIZE - 4096, 4096);
	expect_ok(NBD_CMD_WRITE_ZEROES, 0, SIZE - 4096, 4096);
}

static void test_validate_read_past_end(void **state)
{
	expect_err(NBD_CMD_READ, 0, SIZE - 4095, 4096, NBD_EINVAL, "past the end");
	expect_err(NBD_CMD_READ, 0, SIZE, 1, NBD_EINVAL, "past the end");
}

static void test_validate_trim_past_end(void **state)
{
	expect_err(NBD_CMD_TRIM, 0, SIZE - 1, 2, NBD_EINVAL, "past the end");
	expect_err(NBD_CMD_TRIM, 0, SIZE + 4096, 4096, NBD_EINVAL, "past the end");
}

static void test_validate_write_past_end(void **state)
{
	expect_err(NBD_CMD_WRITE, 0, SIZE - 4095, 4096, NBD_ENOSPC, "past the end");
	expect_err(NBD_CMD_WRITE, 0, SIZE, 1, NBD_ENOSPC, "past the end");
}

static void test_validate_write_zeroes_past_end(void **state)
{
	expect_err(NBD_CMD_WRITE_ZEROES, 0, SIZE - 1, 2, NBD_ENOSPC, "past the end");
	expect_err(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, SIZE, 512,
		   NBD_ENOSPC, "past the end");
}

static void test_validate_offset_overflow(void **state)
{
	const char *why;
	struct nbd_request r = { .type = NBD_CMD_READ, .offset = UINT64_MAX - 10,
				 .length = 4096 };

	/* offset + length wraps: must not pass because the sum is small */
	assert_int_equal(nbd_validate_request(&r, UINT64_MAX, &why), NBD_EINVAL);
	r.type = NBD_CMD_WRITE;
	assert_int_equal(nbd_validate_request(&r, UINT64_MAX, &why), NBD_ENOSPC);
	r.type = NBD_CMD_TRIM;
	r.offset = UINT64_MAX;
	r.length = 1;
	assert_int_equal(nbd_validate_request(&r, UINT64_MAX, &why), NBD_EINVAL);
	r.type = NBD_CMD_WRITE_ZEROES;
	assert_int_equal(nbd_validate_request(&r, UINT64_MAX, &why), NBD_ENOSPC);
	/* ends exactly at 2^64 - 1 in a maximal export: fine */
	r.type = NBD_CMD_READ;
	r.offset = UINT64_MAX - 4096;
	r.length = 4096;
	assert_int_equal(nbd_validate_request(&r, UINT64_MAX, &why), 0);
}

static void test_validate_zero_length(void **state)
{
	expect_err(NBD_CMD_READ, 0, 0, 0, NBD_EINVAL, "zero length");
	expect_err(NBD_CMD_WRITE, 0, 0, 0, NBD_EINVAL, "zero length");
	expect_err(NBD_CMD_TRIM, 0, 0, 0, NBD_EINVAL, "zero length");
	expect_err(NBD_CMD_WRITE_ZEROES, 0, 0, 0, NBD_EINVAL, "zero length");
}

static void test_validate_read_too_big(void **state)
{
	expect_err(NBD_CMD_READ, 0, 0, NBD_MAX_PAYLOAD + 1, NBD_EOVERFLOW,
		   "maximum block size");
	expect_err(NBD_CMD_READ, 0, 0, UINT32_MAX, NBD_EOVERFLOW,
		   "maximum block size");
}

static void test_validate_write_too_big(void **state)
{
	expect_err(NBD_CMD_WRITE, 0, 0, NBD_MAX_PAYLOAD + 1, NBD_EINVAL,
		   "maximum block size");
}

static void test_validate_trim_zeroes_may_be_big(void **state)
{
	/* no payload, so the block-size maximum does not apply */
	expect_ok(NBD_CMD_TRIM, 0, 0, NBD_MAX_PAYLOAD + 4096);
	expect_ok(NBD_CMD_WRITE_ZEROES, 0, 0, NBD_MAX_PAYLOAD * 2);
}

static void test_validate_unknown_command(void **state)
{
	static const uint16_t unknown[] = { NBD_CMD_CACHE, NBD_CMD_BLOCK_STATUS,
					    8, 9, 100, 0xffff };

	for (size_t i = 0; i < ARRAY_SIZE(unknown); i++)
		expect_err(unknown[i], 0, 0, 512, NBD_EINVAL, "unknown command");
}

static void test_validate_read_flags(void **state)
{
	expect_ok(NBD_CMD_READ, NBD_CMD_FLAG_DF, 0, 512);
	expect_err(NBD_CMD_READ, NBD_CMD_FLAG_FUA, 0, 512, NBD_EINVAL, "flag");
	expect_err(NBD_CMD_READ, NBD_CMD_FLAG_NO_HOLE, 0, 512, NBD_EINVAL, "flag");
	expect_err(NBD_CMD_READ, NBD_CMD_FLAG_REQ_ONE, 0, 512, NBD_EINVAL, "flag");
	expect_err(NBD_CMD_READ, 1u << 15, 0, 512, NBD_EINVAL, "flag");
}

static void test_validate_write_flags(void **state)
{
	expect_ok(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA, 0, 512);
	expect_err(NBD_CMD_WRITE, NBD_CMD_FLAG_NO_HOLE, 0, 512, NBD_EINVAL, "flag");
	expect_err(NBD_CMD_WRITE, NBD_CMD_FLAG_DF, 0, 512, NBD_EINVAL, "flag");
	expect_err(NBD_CMD_WRITE, NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_FAST_ZERO, 0,
		   512, NBD_EINVAL, "flag");
}

static void test_validate_trim_flags(void **state)
{
	expect_ok(NBD_CMD_TRIM, NBD_CMD_FLAG_FUA, 0, 512);
	expect_err(NBD_CMD_TRIM, NBD_CMD_FLAG_NO_HOLE, 0, 512, NBD_EINVAL, "flag");
	expect_err(NBD_CMD_TRIM, NBD_CMD_FLAG_DF, 0, 512, NBD_EINVAL, "flag");
}

static void test_validate_write_zeroes_flags(void **state)
{
	expect_ok(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_NO_HOLE, 0, 512);
	expect_ok(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FUA, 0, 512);
	expect_ok(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE, 0, 512);
	/* FAST_ZERO is not advertised */
	expect_err(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_FAST_ZERO, 0, 512,
		   NBD_EINVAL, "flag");
	expect_err(NBD_CMD_WRITE_ZEROES, NBD_CMD_FLAG_DF, 0, 512, NBD_EINVAL, "flag");
}

static void test_validate_flush_with_flags(void **state)
{
	expect_err(NBD_CMD_FLUSH, NBD_CMD_FLAG_FUA, 0, 0, NBD_EINVAL, "takes none");
	expect_err(NBD_CMD_FLUSH, NBD_CMD_FLAG_DF, 0, 0, NBD_EINVAL, "takes none");
}

static void test_validate_disc_with_flags(void **state)
{
	expect_err(NBD_CMD_DISC, NBD_CMD_FLAG_FUA, 0, 0, NBD_EINVAL, "takes none");
}

static void test_validate_flush_ignores_range(void **state)
{
	/* flush has no range; a non-zero offset/length is not an error */
	expect_ok(NBD_CMD_FLUSH, 0, UINT64_MAX, UINT32_MAX);
}

static void test_validate_flag_check_before_range(void **state)
{
	/* both wrong: the flag is reported */
	expect_err(NBD_CMD_READ, NBD_CMD_FLAG_FUA, SIZE, 0, NBD_EINVAL, "flag");
}

static void test_validate_empty_export(void **state)
{
	const char *why;
	struct nbd_request r = { .type = NBD_CMD_READ, .length = 1 };

	assert_int_equal(nbd_validate_request(&r, 0, &why), NBD_EINVAL);
	r.type = NBD_CMD_WRITE;
	assert_int_equal(nbd_validate_request(&r, 0, &why), NBD_ENOSPC);
}

/* ---- options -------------------------------------------------------- */

static void test_parse_opt_hdr(void **state)
{
	uint8_t b[NBD_OPT_HDR_LEN];
	struct nbd_opt_hdr h;

	put_be64(b, NBD_IHAVEOPT);
	put_be32(b + 8, NBD_OPT_GO);
	put_be32(b + 12, 0x01020304);
	assert_int_equal(nbd_parse_opt_hdr(b, sizeof(b), &h), 0);
	assert_int_equal(h.option, NBD_OPT_GO);
	assert_int_equal(h.length, 0x01020304);
	assert_memory_equal(b, "IHAVEOPT", 8);
}

static void test_parse_opt_hdr_short(void **state)
{
	uint8_t b[NBD_OPT_HDR_LEN];
	struct nbd_opt_hdr h;

	put_be64(b, NBD_IHAVEOPT);
	for (size_t n = 0; n < sizeof(b); n++)
		assert_int_equal(nbd_parse_opt_hdr(b, n, &h), -EAGAIN);
}

static void test_parse_opt_hdr_bad_magic(void **state)
{
	uint8_t b[NBD_OPT_HDR_LEN] = { 0 };
	struct nbd_opt_hdr h;

	put_be64(b, NBD_MAGIC);
	assert_int_equal(nbd_parse_opt_hdr(b, sizeof(b), &h), -EBADMSG);
	put_be64(b, NBD_IHAVEOPT ^ 1);
	assert_int_equal(nbd_parse_opt_hdr(b, sizeof(b), &h), -EBADMSG);
}

/* builds a GO payload; returns its length */
static size_t go_payload(uint8_t *b, const char *name, uint32_t nlen,
			 uint16_t n_info, const uint16_t *info, size_t n_given)
{
	size_t pos;

	put_be32(b, nlen);
	memcpy(b + 4, name, strlen(name));
	pos = 4 + strlen(name);
	put_be16(b + pos, n_info);
	pos += 2;
	for (size_t i = 0; i < n_given; i++, pos += 2)
		put_be16(b + pos, info[i]);
	return pos;
}

static struct nbd_go_req *go_new(void)
{
	struct nbd_go_req *go = calloc(1, sizeof(*go));

	assert_non_null(go);
	return go;
}

static void test_parse_go_ok(void **state)
{
	uint8_t b[64];
	uint16_t info[] = { NBD_INFO_BLOCK_SIZE, NBD_INFO_NAME };
	struct nbd_go_req *go = go_new();
	size_t n = go_payload(b, "vol1", 4, 2, info, 2);

	assert_int_equal(n, 4 + 4 + 2 + 4);
	assert_int_equal(nbd_parse_go(b, n, go), 0);
	assert_string_equal(go->name, "vol1");
	assert_int_equal(go->n_info, 2);
	assert_int_equal(go->info[0], NBD_INFO_BLOCK_SIZE);
	assert_int_equal(go->info[1], NBD_INFO_NAME);
	free(go);
}

static void test_parse_go_empty_name(void **state)
{
	uint8_t b[16];
	struct nbd_go_req *go = go_new();
	size_t n = go_payload(b, "", 0, 0, NULL, 0);

	assert_int_equal(n, 6);
	assert_int_equal(nbd_parse_go(b, n, go), 0);
	assert_string_equal(go->name, "");
	assert_int_equal(go->n_info, 0);
	free(go);
}

static void test_parse_go_max_name(void **state)
{
	size_t cap = 4 + NBD_NAME_MAX_WIRE + 1 + 2;
	uint8_t *b = malloc(cap);
	char *name = malloc(NBD_NAME_MAX_WIRE + 2);
	struct nbd_go_req *go = go_new();
	size_t n;

	memset(name, 'x', NBD_NAME_MAX_WIRE + 1);
	name[NBD_NAME_MAX_WIRE] = '\0';
	n = go_payload(b, name, NBD_NAME_MAX_WIRE, 0, NULL, 0);
	assert_int_equal(nbd_parse_go(b, n, go), 0);
	assert_int_equal(strlen(go->name), NBD_NAME_MAX_WIRE);
	/* one longer is refused even though the bytes are there */
	name[NBD_NAME_MAX_WIRE] = 'x';
	name[NBD_NAME_MAX_WIRE + 1] = '\0';
	n = go_payload(b, name, NBD_NAME_MAX_WIRE + 1, 0, NULL, 0);
	assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	free(b);
	free(name);
	free(go);
}

static void test_parse_go_too_short(void **state)
{
	uint8_t b[8] = { 0 };
	struct nbd_go_req *go = go_new();

	for (size_t n = 0; n < 6; n++)
		assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	free(go);
}

static void test_parse_go_name_past_end(void **state)
{
	uint8_t b[64];
	struct nbd_go_req *go = go_new();
	size_t n = go_payload(b, "vol1", 4, 0, NULL, 0);

	put_be32(b, 5); /* one byte more than present before the count */
	assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	put_be32(b, UINT32_MAX);
	assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	put_be32(b, UINT32_MAX - 5); /* nlen + 6 would wrap in 32 bits */
	assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	free(go);
}

static void test_parse_go_nul_in_name(void **state)
{
	uint8_t b[64];
	struct nbd_go_req *go = go_new();
	size_t n = go_payload(b, "vo\x01" "1", 4, 0, NULL, 0);

	b[4 + 2] = '\0';
	assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	free(go);
}

static void test_parse_go_info_count_mismatch(void **state)
{
	uint8_t b[64];
	uint16_t info[] = { 1, 2, 3 };
	struct nbd_go_req *go = go_new();
	size_t n;

	n = go_payload(b, "v", 1, 3, info, 2); /* says 3, has 2 */
	assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	n = go_payload(b, "v", 1, 1, info, 2); /* says 1, has 2 */
	assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	n = go_payload(b, "v", 1, 0, info, 0);
	assert_int_equal(nbd_parse_go(b, n + 1, go), -EINVAL); /* odd trailing byte */
	free(go);
}

static void test_parse_go_too_many_infos(void **state)
{
	uint8_t b[4 + 1 + 2 + 2 * 70];
	uint16_t info[70];
	struct nbd_go_req *go = go_new();
	size_t n;

	for (int i = 0; i < 70; i++)
		info[i] = NBD_INFO_EXPORT;
	n = go_payload(b, "v", 1, 64, info, 64);
	assert_int_equal(nbd_parse_go(b, n, go), 0);
	assert_int_equal(go->n_info, 64);
	n = go_payload(b, "v", 1, 65, info, 65);
	assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	n = go_payload(b, "v", 1, 70, info, 70);
	assert_int_equal(nbd_parse_go(b, n, go), -EINVAL);
	free(go);
}

/* ---- mapping, names, encoders --------------------------------------- */

static void test_errno_to_wire(void **state)
{
	assert_int_equal(nbd_errno_to_wire(0), 0);
	assert_int_equal(nbd_errno_to_wire(EPERM), NBD_EPERM);
	assert_int_equal(nbd_errno_to_wire(EROFS), NBD_EPERM);
	assert_int_equal(nbd_errno_to_wire(EIO), NBD_EIO);
	assert_int_equal(nbd_errno_to_wire(ENOMEM), NBD_ENOMEM);
	assert_int_equal(nbd_errno_to_wire(EINVAL), NBD_EINVAL);
	assert_int_equal(nbd_errno_to_wire(ENOSPC), NBD_ENOSPC);
	assert_int_equal(nbd_errno_to_wire(EDQUOT), NBD_ENOSPC);
	assert_int_equal(nbd_errno_to_wire(EFBIG), NBD_ENOSPC);
	assert_int_equal(nbd_errno_to_wire(EOVERFLOW), NBD_EOVERFLOW);
	assert_int_equal(nbd_errno_to_wire(EOPNOTSUPP), NBD_ENOTSUP);
	assert_int_equal(nbd_errno_to_wire(ESHUTDOWN), NBD_ESHUTDOWN);
	/* everything else is an I/O error */
	assert_int_equal(nbd_errno_to_wire(ENOENT), NBD_EIO);
	assert_int_equal(nbd_errno_to_wire(EBADF), NBD_EIO);
	assert_int_equal(nbd_errno_to_wire(ETIMEDOUT), NBD_EIO);
	assert_int_equal(nbd_errno_to_wire(12345), NBD_EIO);
}

static void test_wire_errors_are_linux_values(void **state)
{
	assert_int_equal(NBD_EPERM, 1);
	assert_int_equal(NBD_EIO, 5);
	assert_int_equal(NBD_ENOMEM, 12);
	assert_int_equal(NBD_EINVAL, 22);
	assert_int_equal(NBD_ENOSPC, 28);
	assert_int_equal(NBD_EOVERFLOW, 75);
	assert_int_equal(NBD_ENOTSUP, 95);
	assert_int_equal(NBD_ESHUTDOWN, 108);
}

static void test_cmd_names(void **state)
{
	assert_string_equal(nbd_cmd_name(NBD_CMD_READ), "NBD_CMD_READ");
	assert_string_equal(nbd_cmd_name(NBD_CMD_WRITE), "NBD_CMD_WRITE");
	assert_string_equal(nbd_cmd_name(NBD_CMD_DISC), "NBD_CMD_DISC");
	assert_string_equal(nbd_cmd_name(NBD_CMD_FLUSH), "NBD_CMD_FLUSH");
	assert_string_equal(nbd_cmd_name(NBD_CMD_TRIM), "NBD_CMD_TRIM");
	assert_string_equal(nbd_cmd_name(NBD_CMD_CACHE), "NBD_CMD_CACHE");
	assert_string_equal(nbd_cmd_name(NBD_CMD_WRITE_ZEROES), "NBD_CMD_WRITE_ZEROES");
	assert_string_equal(nbd_cmd_name(NBD_CMD_BLOCK_STATUS), "NBD_CMD_BLOCK_STATUS");
	assert_string_equal(nbd_cmd_name(99), "unknown command");
}

static void test_opt_names(void **state)
{
	static const struct { uint32_t opt; const char *name; } t[] = {
		{ NBD_OPT_EXPORT_NAME, "NBD_OPT_EXPORT_NAME" },
		{ NBD_OPT_ABORT, "NBD_OPT_ABORT" },
		{ NBD_OPT_LIST, "NBD_OPT_LIST" },
		{ NBD_OPT_PEEK_EXPORT, "NBD_OPT_PEEK_EXPORT" },
		{ NBD_OPT_STARTTLS, "NBD_OPT_STARTTLS" },
		{ NBD_OPT_INFO, "NBD_OPT_INFO" },
		{ NBD_OPT_GO, "NBD_OPT_GO" },
		{ NBD_OPT_STRUCTURED_REPLY, "NBD_OPT_STRUCTURED_REPLY" },
		{ NBD_OPT_LIST_META_CONTEXT, "NBD_OPT_LIST_META_CONTEXT" },
		{ NBD_OPT_SET_META_CONTEXT, "NBD_OPT_SET_META_CONTEXT" },
		{ NBD_OPT_EXTENDED_HEADERS, "NBD_OPT_EXTENDED_HEADERS" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		assert_string_equal(nbd_opt_name(t[i].opt), t[i].name);
	assert_string_equal(nbd_opt_name(0), "unknown option");
	assert_string_equal(nbd_opt_name(0x80000000u), "unknown option");
}

static void test_put_simple_reply(void **state)
{
	uint8_t b[NBD_SIMPLE_REPLY_LEN];

	assert_int_equal(nbd_put_simple_reply(b, NBD_EIO, 0x0102030405060708ULL),
			 NBD_SIMPLE_REPLY_LEN);
	assert_int_equal(get_be32(b), NBD_SIMPLE_REPLY_MAGIC);
	assert_int_equal(get_be32(b + 4), NBD_EIO);
	assert_true(get_be64(b + 8) == 0x0102030405060708ULL);
	assert_int_equal(b[0], 0x67);
}

static void test_put_chunk_hdr(void **state)
{
	uint8_t b[NBD_CHUNK_HDR_LEN];

	assert_int_equal(nbd_put_chunk_hdr(b, NBD_REPLY_FLAG_DONE,
					   NBD_REPLY_TYPE_OFFSET_DATA, 77, 4104),
			 NBD_CHUNK_HDR_LEN);
	assert_int_equal(get_be32(b), NBD_STRUCTURED_REPLY_MAGIC);
	assert_int_equal(get_be16(b + 4), NBD_REPLY_FLAG_DONE);
	assert_int_equal(get_be16(b + 6), NBD_REPLY_TYPE_OFFSET_DATA);
	assert_int_equal(get_be64(b + 8), 77);
	assert_int_equal(get_be32(b + 16), 4104);
}

static void test_put_opt_reply_hdr(void **state)
{
	uint8_t b[NBD_OPT_REPLY_HDR_LEN];

	assert_int_equal(nbd_put_opt_reply_hdr(b, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, 9),
			 NBD_OPT_REPLY_HDR_LEN);
	assert_true(get_be64(b) == NBD_OPT_REPLY_MAGIC);
	assert_int_equal(get_be32(b + 8), NBD_OPT_GO);
	assert_int_equal(get_be32(b + 12), NBD_REP_ERR_UNKNOWN);
	assert_int_equal(get_be32(b + 16), 9);
}

static void test_constants(void **state)
{
	uint8_t b[8];

	put_be64(b, NBD_MAGIC);
	assert_memory_equal(b, "NBDMAGIC", 8);
	put_be64(b, NBD_IHAVEOPT);
	assert_memory_equal(b, "IHAVEOPT", 8);
	assert_int_equal(NBD_REP_ERR_UNSUP, 0x80000001u);
	assert_int_equal(NBD_REP_ERR_UNKNOWN, 0x80000006u);
	assert_int_equal(NBD_REP_ERR_TOO_BIG, 0x80000009u);
	assert_int_equal(NBD_MAX_PAYLOAD, 32u << 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_request_fields_big_endian),
		cmocka_unit_test(test_parse_request_round_trip),
		cmocka_unit_test(test_parse_request_short),
		cmocka_unit_test(test_parse_request_bad_magic),
		cmocka_unit_test(test_validate_ok_in_range),
		cmocka_unit_test(test_validate_exact_end_ok),
		cmocka_unit_test(test_validate_read_past_end),
		cmocka_unit_test(test_validate_trim_past_end),
		cmocka_unit_test(test_validate_write_past_end),
		cmocka_unit_test(test_validate_write_zeroes_past_end),
		cmocka_unit_test(test_validate_offset_overflow),
		cmocka_unit_test(test_validate_zero_length),
		cmocka_unit_test(test_validate_read_too_big),
		cmocka_unit_test(test_validate_write_too_big),
		cmocka_unit_test(test_validate_trim_zeroes_may_be_big),
		cmocka_unit_test(test_validate_unknown_command),
		cmocka_unit_test(test_validate_read_flags),
		cmocka_unit_test(test_validate_write_flags),
		cmocka_unit_test(test_validate_trim_flags),
		cmocka_unit_test(test_validate_write_zeroes_flags),
		cmocka_unit_test(test_validate_flush_with_flags),
		cmocka_unit_test(test_validate_disc_with_flags),
		cmocka_unit_test(test_validate_flush_ignores_range),
		cmocka_unit_test(test_validate_flag_check_before_range),
		cmocka_unit_test(test_validate_empty_export),
		cmocka_unit_test(test_parse_opt_hdr),
		cmocka_unit_test(test_parse_opt_hdr_short),
		cmocka_unit_test(test_parse_opt_hdr_bad_magic),
		cmocka_unit_test(test_parse_go_ok),
		cmocka_unit_test(test_parse_go_empty_name),
		cmocka_unit_test(test_parse_go_max_name),
		cmocka_unit_test(test_parse_go_too_short),
		cmocka_unit_test(test_parse_go_name_past_end),
		cmocka_unit_test(test_parse_go_nul_in_name),
		cmocka_unit_test(test_parse_go_info_count_mismatch),
		cmocka_unit_test(test_parse_go_too_many_infos),
		cmocka_unit_test(test_errno_to_wire),
		cmocka_unit_test(test_wire_errors_are_linux_values),
		cmocka_unit_test(test_cmd_names),
		cmocka_unit_test(test_opt_names),
		cmocka_unit_test(test_put_simple_reply),
		cmocka_unit_test(test_put_chunk_hdr),
		cmocka_unit_test(test_put_opt_reply_hdr),
		cmocka_unit_test(test_constants),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
