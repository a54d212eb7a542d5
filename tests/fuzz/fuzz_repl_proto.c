/* libFuzzer: the replication wire codec (replication/repl_proto.c).
 *
 * Input: one mode byte, then bytes.
 *   mode bit 0: before parsing, walk the bytes as frames and repair each
 *               header's magic and CRC (and a data CRC where the flag says
 *               there is one), so mutations reach the message decoders
 *               instead of dying at the header CRC;
 *   mode bits 4-7: chunk size for the second, resumable parse (0 = byte by byte).
 *
 * Every input runs through:
 *   1. the parser in one call per frame, and again in small chunks: both
 *      must yield the same frames and end in the same state;
 *   2. every assigned message type's decoder, with the bytes as payload.
 *
 * Invariants: every frame the parser yields re-encodes to exactly the
 * bytes it was parsed from; every payload a decoder accepts re-encodes to
 * the same payload bytes; a rejection always comes with a reason. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static uint8_t out[REPL_HDR_LEN + 32 + REPL_MAX_DATA];

static void repair(uint8_t *b, size_t len)
{
	size_t pos = 0;

	while (pos + REPL_HDR_LEN <= len) {
		uint8_t *h = b + pos;
		uint16_t type = get_be16(h + 4);
		uint32_t plen = get_be32(h + 8);
		uint8_t *p = h + REPL_HDR_LEN;
		size_t avail = len - pos - REPL_HDR_LEN;

		put_be32(h, REPL_MAGIC_V1);
		put_be32(h + 12, crc32c(0, h, REPL_HDR_CRC_LEN));
		if (plen > avail)
			return;
		if ((type == REPL_MSG_WRITE || type == REPL_MSG_RESYNC_DATA) && plen >= 32 &&
		    (get_be32(p + 20) & REPL_IO_F_DATA_CRC))
			put_be32(p + 24, crc32c(0, p + 32, plen - 32));
		if (type == REPL_MSG_READ_REPLY && plen >= 24 &&
		    (get_be32(p + 12) & REPL_IO_F_DATA_CRC))
			put_be32(p + 16, crc32c(0, p + 24, plen - 24));
		pos += REPL_HDR_LEN + plen;
	}
}

struct parse_result {
	unsigned frames;
	int end;          /* 0 or the error */
	size_t used;      /* bytes consumed up to the end/error */
};

static struct parse_result parse(const uint8_t *b, size_t len, size_t chunk)
{
	struct repl_parser p;
	struct parse_result r = { 0, 0, 0 };
	struct repl_msg m;
	size_t pos = 0, frame_start = 0;

	repl_parser_init(&p);
	while (pos < len) {
		size_t n = chunk ? MIN(chunk, len - pos) : len - pos, used = 0;
		int ret = repl_parser_feed(&p, b + pos, n, &used, &m);

		CHECK(used <= n);
		pos += used;
		if (ret < 0) {
			CHECK(ret == -EBADMSG);
			CHECK(p.state == REPL_PARSE_ERROR && p.why[0]);
			/* sticky */
			CHECK(repl_parser_feed(&p, b, len, &used, &m) == -EBADMSG && used == 0);
			r.end = ret;
			break;
		}
		if (ret == 1) {
			ssize_t e = repl_msg_encode(&m, out, sizeof(out));

			CHECK(e > 0 && (size_t)e == pos - frame_start);
			if (memcmp(out, b + frame_start, (size_t)e)) {
				fprintf(stderr, "%s re-encodes differently\n", repl_msg_name(m.type));
				CHECK(0);
			}
			CHECK(strcmp(repl_msg_name(m.type), "?") != 0);
			frame_start = pos;
			r.frames++;
		} else {
			CHECK(used == n);
		}
	}
	r.used = pos;
	repl_parser_free(&p);
	return r;
}

static void decode_as_every_type(const uint8_t *b, size_t len)
{
	for (unsigned t = 0; t < REPL_MSG_TYPE_END; t++) {
		struct repl_msg m;
		const char *why = NULL;
		uint32_t lo, hi;
		int ret = repl_msg_decode((uint16_t)t, b, len, &m, &why);

		if (repl_msg_bounds((uint16_t)t, &lo, &hi)) {
			CHECK(ret == -EBADMSG);
			continue;
		}
		if (ret) {
			CHECK(ret == -EBADMSG && why && *why);
			continue;
		}
		CHECK(len >= lo && len <= hi);
		ssize_t e = repl_msg_encode(&m, out, sizeof(out));
		CHECK(e == (ssize_t)(REPL_HDR_LEN + len));
		CHECK(memcmp(out + REPL_HDR_LEN, b, len) == 0);
		CHECK(get_be16(out + 4) == t && get_be32(out + 8) == len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b;
	size_t len, chunk;
	struct parse_result whole, pieces;

	if (size < 1)
		return 0;
	len = size - 1;
	chunk = data[0] >> 4;
	b = malloc(len ? len : 1);
	if (!b)
		return 0;
	memcpy(b, data + 1, len);
	if (data[0] & 1)
		repair(b, len);

	whole = parse(b, len, 0);
	pieces = parse(b, len, chunk ? chunk : 1);
	CHECK(whole.frames == pieces.frames && whole.end == pieces.end);
	if (whole.end)
		CHECK(whole.used == pieces.used);

	decode_as_every_type(b, len);
	free(b);
	return 0;
}
