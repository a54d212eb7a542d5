/* libFuzzer: NBD transmission requests through nbd_parse_request and
 * nbd_validate_request.
 *
 * Input: u64 export size (big-endian), then 28-byte requests as on the
 * wire. A request with a bad magic is also retried with the magic fixed,
 * so the validator sees every request body.
 *
 * Invariants: a request that validates has a known command, only the flags
 * that command allows, and for the ranged commands a non-zero length with
 * offset + length <= size (no wrap), and length <= 32 MiB for READ/WRITE;
 * a request that does not validate gets EINVAL/ENOSPC/EOVERFLOW and a
 * reason; parsing re-encodes to the same bytes. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbd/nbd_proto.h"
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

static uint16_t allowed(uint16_t type)
{
	switch (type) {
	case NBD_CMD_READ: return NBD_CMD_FLAG_DF;
	case NBD_CMD_WRITE: return NBD_CMD_FLAG_FUA;
	case NBD_CMD_TRIM: return NBD_CMD_FLAG_FUA;
	case NBD_CMD_WRITE_ZEROES: return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE;
	default: return 0;
	}
}

static void check_one(const uint8_t *wire, uint64_t export_size)
{
	struct nbd_request r;
	const char *why = NULL;
	uint8_t copy[NBD_REQUEST_LEN];
	uint32_t err;
	int ret;

	/* a copy of exactly 28 bytes: an overread is an ASan report */
	memcpy(copy, wire, sizeof(copy));
	ret = nbd_parse_request(copy, sizeof(copy), &r);
	if (ret == -EBADMSG) {
		CHECK(get_be32(copy) != NBD_REQUEST_MAGIC);
		put_be32(copy, NBD_REQUEST_MAGIC);
		ret = nbd_parse_request(copy, sizeof(copy), &r);
	}
	CHECK(ret == 0);
	CHECK(nbd_parse_request(copy, sizeof(copy) - 1, &r) == -EAGAIN);
	ret = nbd_parse_request(copy, sizeof(copy), &r);
	CHECK(ret == 0);
	CHECK(get_be16(copy + 4) == r.flags && get_be16(copy + 6) == r.type &&
	      get_be64(copy + 8) == r.handle && get_be64(copy + 16) == r.offset &&
	      get_be32(copy + 24) == r.length);
	CHECK(nbd_cmd_name(r.type) != NULL);

	err = nbd_validate_request(&r, export_size, &why);
	if (err == 0) {
		uint64_t end;

		switch (r.type) {
		case NBD_CMD_FLUSH:
		case NBD_CMD_DISC:
			CHECK(r.flags == 0);
			break;
		case NBD_CMD_READ:
		case NBD_CMD_WRITE:
			CHECK(r.length <= NBD_MAX_PAYLOAD);
			/* fall through */
		case NBD_CMD_TRIM:
		case NBD_CMD_WRITE_ZEROES:
			CHECK((r.flags & ~allowed(r.type)) == 0);
			CHECK(r.length > 0);
			CHECK(!add_overflows_u64(r.offset, r.length, &end));
			CHECK(end <= export_size);
			break;
		default:
			CHECK(!"unknown command validated");
		}
	} else {
		CHECK(err == NBD_EINVAL || err == NBD_ENOSPC || err == NBD_EOVERFLOW);
		CHECK(why != NULL && why[0] != '\0');
		if (err == NBD_ENOSPC)
			CHECK(r.type == NBD_CMD_WRITE || r.type == NBD_CMD_WRITE_ZEROES);
		if (err == NBD_EOVERFLOW)
			CHECK(r.type == NBD_CMD_READ && r.length > NBD_MAX_PAYLOAD);
	}
	/* the reply for it encodes the handle back unchanged */
	{
		uint8_t rep[NBD_SIMPLE_REPLY_LEN];

		CHECK(nbd_put_simple_reply(rep, err, r.handle) == sizeof(rep));
		CHECK(get_be32(rep + 4) == err && get_be64(rep + 8) == r.handle);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t export_size;
	size_t pos = 8;

	if (size < 8)
		return 0;
	export_size = get_be64(data);
	while (size - pos >= NBD_REQUEST_LEN) {
		check_one(data + pos, export_size);
		pos += NBD_REQUEST_LEN;
	}
	/* a trailing partial request only ever asks for more bytes */
	if (size > pos) {
		struct nbd_request r;
		size_t n = size - pos;
		uint8_t *tail = malloc(n);

		CHECK(tail != NULL);
		memcpy(tail, data + pos, n);
		CHECK(nbd_parse_request(tail, n, &r) == -EAGAIN);
		free(tail);
	}
	return 0;
}
