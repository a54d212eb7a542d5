/* repl_proto.c: frame headers, every message's round trip, one test per
 * validation error, encoders refusing invalid messages, FEATURES
 * negotiation, names, and the resumable parser fed byte by byte. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"
#include "../../replication/repl_proto.h"
#include "util.h"

#define BUFSZ (REPL_HDR_LEN + 32 + REPL_MAX_DATA)

static uint8_t data4k[4096];
static uint8_t bitmap_chunk[16];

/* One valid message of every type (some types twice with other flags). */
static int sample(unsigned i, struct repl_msg *m)
{
	memset(m, 0, sizeof(*m));
	for (size_t k = 0; k < sizeof(data4k); k++)
		data4k[k] = (uint8_t)(k * 7 + 1);
	switch (i) {
	case 0:
		m->type = REPL_MSG_FEATURES;
		m->u.features = (struct repl_features){ 1, 3, REPL_FEAT_DATA_CRC | (1ull << 63), { 0 } };
		m->u.features.reserved[15] = 0xaa; /* ignored, preserved */
		return 0;
	case 1:
		m->type = REPL_MSG_AUTH_CHALLENGE;
		m->u.auth.alg = REPL_AUTH_HMAC_SHA256;
		m->u.auth.node_id = 7;
		memset(m->nonce, 0x5a, sizeof(m->nonce));
		return 0;
	case 2:
		m->type = REPL_MSG_AUTH_RESPONSE;
		memset(m->mac, 0xc3, sizeof(m->mac));
		return 0;
	case 3: m->type = REPL_MSG_AUTH_OK; return 0;
	case 4:
		m->type = REPL_MSG_STATE;
		m->u.state = (struct repl_state){
			.role = REPL_ROLE_PRIMARY, .disk_state = REPL_DISK_UP_TO_DATE,
			.flags = REPL_STATE_F_CRASHED_PRIMARY | REPL_STATE_F_LOST_TRACK,
			.bm_grain = 65536,
			.size = 1ull << 40, .gen_current = 0x1111222233334444ull,
			.gen_bitmap = 2, .gen_history = { 3, 4 }, .node_id = 2, .following = 1,
		};
		memset(m->u.state.volume_uuid, 0x42, 16);
		return 0;
	case 5:
		m->type = REPL_MSG_BITMAP; /* 100 bits in one chunk of 2 words */
		m->u.bitmap = (struct repl_bitmap){ 100, 0, REPL_BM_F_LAST };
		memset(bitmap_chunk, 0, sizeof(bitmap_chunk));
		bitmap_chunk[0] = 0x81;
		bitmap_chunk[12] = 0x08; /* bit 99 */
		m->data = bitmap_chunk;
		m->data_len = 16;
		return 0;
	case 6:
	case 7:
		m->type = REPL_MSG_WRITE;
		m->u.io = (struct repl_io){ .id = 99, .offset = 1ull << 33, .length = 4096,
					    .flags = REPL_IO_F_FUA };
		if (i == 7) {
			m->u.io.flags |= REPL_IO_F_DATA_CRC;
			m->u.io.data_crc = crc32c(0, data4k, 4096);
		}
		m->data = data4k;
		m->data_len = 4096;
		return 0;
	case 8: m->type = REPL_MSG_WRITE_ACK; m->u.ack = (struct repl_ack){ 99, REPL_ST_OK }; return 0;
	case 9: m->type = REPL_MSG_FLUSH; m->u.value = 5; return 0;
	case 10: m->type = REPL_MSG_FLUSH_ACK; m->u.ack = (struct repl_ack){ 5, REPL_ST_IO }; return 0;
	case 11:
		m->type = REPL_MSG_TRIM;
		m->u.io = (struct repl_io){ .id = 6, .offset = 512, .length = REPL_MAX_RANGE };
		return 0;
	case 12: m->type = REPL_MSG_TRIM_ACK; m->u.ack.id = 6; return 0;
	case 13:
		m->type = REPL_MSG_WRITE_ZEROES;
		m->u.io = (struct repl_io){ .id = 7, .offset = 0, .length = 1 << 20,
					    .flags = REPL_IO_F_FUA | REPL_IO_F_NO_HOLE };
		return 0;
	case 14: m->type = REPL_MSG_WRITE_ZEROES_ACK; m->u.ack = (struct repl_ack){ 7, REPL_ST_NOSPC }; return 0;
	case 15: m->type = REPL_MSG_BARRIER; m->u.value = 12; return 0;
	case 16: m->type = REPL_MSG_BARRIER_ACK; m->u.ack.id = 12; return 0;
	case 17:
		m->type = REPL_MSG_READ_REQ;
		m->u.io = (struct repl_io){ .id = 8, .offset = 4096, .length = 4096,
					    .flags = REPL_IO_F_RESYNC };
		return 0;
	case 18:
		m->type = REPL_MSG_READ_REPLY;
		m->u.read_reply = (struct repl_read_reply){ 8, REPL_ST_OK, REPL_IO_F_DATA_CRC,
							    crc32c(0, data4k, 4096) };
		m->data = data4k;
		m->data_len = 4096;
		return 0;
	case 19:
		m->type = REPL_MSG_READ_REPLY;
		m->u.read_reply = (struct repl_read_reply){ 8, REPL_ST_IO, 0, 0 };
		return 0;
	case 20:
		m->type = REPL_MSG_RESYNC_DATA;
		m->u.io = (struct repl_io){ .id = 9, .offset = 0, .length = 512 };
		m->data = data4k;
		m->data_len = 512;
		return 0;
	case 21: m->type = REPL_MSG_RESYNC_ACK; m->u.ack.id = 9; return 0;
	case 22: m->type = REPL_MSG_PING; m->u.value = 0xdeadbeefcafef00dull; return 0;
	case 23: m->type = REPL_MSG_PONG; m->u.value = 0xdeadbeefcafef00dull; return 0;
	case 24:
		m->type = REPL_MSG_ERROR;
		m->u.error.reason = REPL_REASON_PROTOCOL;
		strcpy(m->u.error.text, "WRITE: offset not 512-byte aligned");
		return 0;
	case 25: m->type = REPL_MSG_DISCONNECT; m->u.error.reason = REPL_REASON_SHUTDOWN; return 0;
	case 26:
		m->type = REPL_MSG_ERROR; /* the longest text */
		m->u.error.reason = REPL_REASON_AUTH_FAILED;
		memset(m->u.error.text, 'x', REPL_MAX_ERROR_TEXT);
		return 0;
	case 28: m->type = REPL_MSG_RESYNC_START; m->u.value = 1ull << 30; return 0;
	case 29: m->type = REPL_MSG_RESYNC_DONE; m->u.value = 65536; return 0;
	case 30:
		m->type = REPL_MSG_VERIFY_REQ;
		m->u.io = (struct repl_io){ .id = 10, .offset = 1ull << 20, .length = 1 << 20 };
		return 0;
	case 31:
		m->type = REPL_MSG_VERIFY_REPLY;
		m->u.digest = (struct repl_digest){ .id = 10, .status = REPL_ST_OK,
						    .alg = REPL_DIGEST_SHA256 };
		memset(m->u.digest.digest, 0x3c, REPL_DIGEST_LEN);
		return 0;
	case 32:
		m->type = REPL_MSG_VERIFY_REPLY;
		m->u.digest = (struct repl_digest){ .id = 11, .status = REPL_ST_IO,
						    .alg = REPL_DIGEST_SHA256 };
		return 0;
	case 33: {
		static uint8_t ext[12];

		put_be32(ext, 0);
		put_be32(ext + 4, 7);
		put_be32(ext + 8, 4000);
		m->type = REPL_MSG_AL_EXTENTS;
		m->u.al.count = 3;
		m->u.al.flags = REPL_AL_F_COVERS; /* the log's and the bitmaps' extents */
		m->data = ext;
		m->data_len = 12;
		return 0;
	}
	case 34:
		m->type = REPL_MSG_AL_EXTENTS;
		m->u.al.flags = REPL_AL_F_UNKNOWN;
		return 0;
	case 35: {
		static uint8_t ents[32];

		repl_peer_ack_put(ents, 0, 41, 0x7);
		repl_peer_ack_put(ents, 1, 1ull << 40, 0x81); /* members 0 and 7 */
		m->type = REPL_MSG_PEER_ACK;
		m->u.peer_ack.count = 2;
		m->u.peer_ack.in_sync = 0x86;
		m->data = ents;
		m->data_len = 32;
		return 0;
	}
	case 36:
		m->type = REPL_MSG_BITMAP; /* "cannot name its bits" */
		m->u.bitmap = (struct repl_bitmap){ 100, 64, REPL_BM_F_LAST | REPL_BM_F_UNKNOWN };
		memset(bitmap_chunk, 0, sizeof(bitmap_chunk));
		m->data = bitmap_chunk;
		m->data_len = 8;
		return 0;
	case 37:
		m->type = REPL_MSG_PEER_ACK; /* only who is in sync */
		m->u.peer_ack.in_sync = 0x5;
		return 0;
	case 27:
		m->type = REPL_MSG_HELLO;
		memset(m->u.hello.volume_uuid, 0x42, 16);
		m->u.hello.from_id = 0;
		m->u.hello.to_id = 7;
		return 0;
	default: return -1;
	}
}
#define NSAMPLES 38

static void assert_same_msg(const struct repl_msg *a, const struct repl_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_memory_equal(&a->u, &b->u, sizeof(a->u));
	assert_memory_equal(a->nonce, b->nonce, sizeof(a->nonce));
	assert_memory_equal(a->mac, b->mac, sizeof(a->mac));
	assert_int_equal(a->data_len, b->data_len);
	if (a->data_len)
		assert_memory_equal(a->data, b->data, a->data_len);
}

/* encode -> header decode -> payload decode -> same message -> same bytes */
static void test_round_trip_every_message(void **state)
{
	static uint8_t buf[BUFSZ], again[BUFSZ];
	struct repl_msg m, d;
	struct repl_hdr h;
	const char *why = NULL;
	unsigned seen[REPL_MSG_TYPE_END] = { 0 };

	for (unsigned i = 0; i < NSAMPLES; i++) {
		ssize_t n, n2, plen;

		assert_int_equal(sample(i, &m), 0);
		n = repl_msg_encode(&m, buf, sizeof(buf));
		assert_true(n >= REPL_HDR_LEN);
		plen = repl_msg_payload_len(&m);
		assert_int_equal(n, REPL_HDR_LEN + plen);
		assert_int_equal(repl_hdr_decode(buf, (size_t)n, &h, &why), 0);
		assert_int_equal(h.type, m.type);
		assert_int_equal(h.length, (uint32_t)plen);
		assert_int_equal(repl_msg_decode(h.type, buf + REPL_HDR_LEN, h.length, &d, &why), 0);
		assert_same_msg(&m, &d);
		n2 = repl_msg_encode(&d, again, sizeof(again));
		assert_int_equal(n2, n);
		assert_memory_equal(buf, again, (size_t)n);
		seen[m.type]++;
	}
	for (unsigned t = 0; t < REPL_MSG_TYPE_END; t++)
		if (strcmp(repl_msg_name((uint16_t)t), "?"))
			assert_true(seen[t] > 0); /* every assigned type covered */
}

static void test_encode_head_leaves_data_out(void **state)
{
	static uint8_t buf[BUFSZ];
	struct repl_msg m;

	sample(7, &m);
	assert_int_equal(repl_msg_encode_head(&m, buf, sizeof(buf)), REPL_HDR_LEN + 32);
	assert_int_equal(get_be32(buf + 8), 32 + 4096); /* length counts the data */
	assert_int_equal(repl_msg_encode_head(&m, buf, REPL_HDR_LEN + 31), -ENOSPC);
	assert_int_equal(repl_msg_encode(&m, buf, REPL_HDR_LEN + 32 + 4095), -ENOSPC);
	sample(24, &m);
	assert_int_equal(repl_msg_encode_head(&m, buf, REPL_HDR_LEN + 8), REPL_HDR_LEN + 8);
}

/* ---- header errors ------------------------------------------------------ */

static void hdr_expect(const uint8_t *b, size_t len, int ret, const char *why_part)
{
	struct repl_hdr h;
	const char *why = NULL;

	assert_int_equal(repl_hdr_decode(b, len, &h, &why), ret);
	if (why_part) {
		assert_non_null(why);
		assert_non_null(strstr(why, why_part));
	}
}

static void refresh_crc(uint8_t *b) { put_be32(b + 12, crc32c(0, b, 12)); }

static void test_hdr_errors(void **state)
{
	uint8_t b[REPL_HDR_LEN];

	repl_hdr_encode(b, REPL_MSG_PING, 8);
	hdr_expect(b, sizeof(b), 0, NULL);
	hdr_expect(b, sizeof(b) - 1, -EAGAIN, NULL);
	b[0] ^= 1;
	hdr_expect(b, sizeof(b), -EBADMSG, "magic");
	refresh_crc(b);
	hdr_expect(b, sizeof(b), -EBADMSG, "magic");
	b[0] ^= 1;
	refresh_crc(b);
	b[9] ^= 0x80; /* length changed, CRC not */
	hdr_expect(b, sizeof(b), -EBADMSG, "CRC");
	repl_hdr_encode(b, REPL_MSG_PING, 8);
	put_be16(b + 6, 1);
	refresh_crc(b);
	hdr_expect(b, sizeof(b), -EBADMSG, "flags");
	repl_hdr_encode(b, 0, 0);
	hdr_expect(b, sizeof(b), -EBADMSG, "unknown message type");
	repl_hdr_encode(b, 0x0006, 0); /* reserved gap */
	hdr_expect(b, sizeof(b), -EBADMSG, "unknown message type");
	repl_hdr_encode(b, 0xffff, 0);
	hdr_expect(b, sizeof(b), -EBADMSG, "unknown message type");
	repl_hdr_encode(b, REPL_MSG_PING, 7);
	hdr_expect(b, sizeof(b), -EBADMSG, "out of bounds");
	repl_hdr_encode(b, REPL_MSG_PING, 9);
	hdr_expect(b, sizeof(b), -EBADMSG, "out of bounds");
	repl_hdr_encode(b, REPL_MSG_WRITE, 32 + REPL_MAX_DATA + 1);
	hdr_expect(b, sizeof(b), -EBADMSG, "out of bounds");
	repl_hdr_encode(b, REPL_MSG_WRITE, UINT32_MAX);
	hdr_expect(b, sizeof(b), -EBADMSG, "out of bounds");
	repl_hdr_encode(b, REPL_MSG_WRITE, 32 + REPL_MAX_DATA);
	hdr_expect(b, sizeof(b), 0, NULL);
}

/* ---- payload validation: one case per rule ---------------------------- */

struct bad_case {
	unsigned sample;      /* start from this valid sample */
	size_t off;           /* payload offset to overwrite */
	unsigned width;       /* 1, 2, 4 or 8 bytes, big-endian */
	uint64_t value;
	const char *why;      /* substring of the expected reason */
};

static const struct bad_case bad_cases[] = {
	{ 0, 0, 4, 0, "version range" },                 /* proto_min 0 */
	{ 0, 0, 4, 4, "version range" },                 /* min > max */
	{ 1, 0, 4, 2, "algorithm" },
	{ 4, 0, 1, 0, "role" },
	{ 4, 0, 1, 3, "role" },
	{ 4, 1, 1, REPL_DISK_END, "disk state" },
	{ 4, 2, 2, 0x10, "state flags" },
	{ 4, 4, 4, 65535, "grain" },
	{ 4, 4, 4, 2048, "grain" },
	{ 4, 1, 1, REPL_DISK_DISKLESS, "grain" },        /* diskless with a grain */
	{ 4, 8, 8, 1000, "512" },                        /* size misaligned */
	{ 4, 68, 4, 9, "followed primary" },
	{ 5, 0, 8, 0, "total_bits" },
	{ 5, 0, 8, (1ull << 40) + 1, "total_bits" },
	{ 5, 8, 8, 32, "multiple of 64" },
	{ 5, 8, 8, 64, "past total_bits" },              /* 64 + 128 > 128 */
	{ 5, 0, 8, 200, "does not end" },                /* LAST but 128 < 256 */
	{ 5, 16, 4, 4, "bitmap flags" },
	{ 5, 16, 4, REPL_BM_F_LAST | REPL_BM_F_UNKNOWN, "UNKNOWN" }, /* bits set */
	{ 36, 16, 4, REPL_BM_F_UNKNOWN, "UNKNOWN" },     /* not LAST */
	{ 5, 20, 4, 1, "reserved" },
	{ 5, 24 + 12, 1, 0x18, "past total_bits" },      /* bit 100 set */
	{ 5, 24 + 15, 1, 0x80, "past total_bits" },      /* bit 127 set */
	{ 6, 20, 4, REPL_IO_F_NO_HOLE, "flags" },
	{ 6, 20, 4, 1u << 31, "flags" },
	{ 6, 16, 4, 4096 - 512, "disagrees" },
	{ 6, 8, 8, 4097, "aligned" },
	{ 6, 8, 8, UINT64_MAX - 511, "overflows" },
	{ 6, 24, 4, 1, "without the DATA_CRC" },
	{ 7, 24, 4, 0, "CRC mismatch" },
	{ 7, 32 + 100, 1, 0, "CRC mismatch" },           /* data corrupted */
	{ 6, 28, 4, 1, "reserved" },
	{ 20, 20, 4, REPL_IO_F_FUA, "flags" },           /* RESYNC_DATA has no FUA */
	{ 11, 16, 4, 0, "zero length" },
	{ 11, 16, 4, 1000, "aligned" },
	{ 11, 8, 8, 100, "aligned" },
	{ 11, 8, 8, UINT64_MAX - 511, "overflows" },
	{ 11, 20, 4, REPL_IO_F_RESYNC, "flags" },
	{ 13, 20, 4, REPL_IO_F_DATA_CRC, "flags" },
	{ 17, 16, 4, REPL_MAX_DATA + 512, "too large" },
	{ 17, 20, 4, REPL_IO_F_FUA, "flags" },
	{ 8, 8, 4, REPL_ST_END, "status" },
	{ 8, 12, 4, 1, "reserved" },
	{ 16, 12, 1, 1, "reserved" },
	{ 18, 8, 4, REPL_ST_END, "status" },
	{ 18, 8, 4, REPL_ST_IO, "carries data" },
	{ 18, 12, 4, 4, "flags" },
	{ 18, 16, 4, 0, "CRC" },
	{ 18, 20, 4, 1, "reserved" },
	{ 19, 12, 4, REPL_IO_F_DATA_CRC, "carries data" },
	{ 24, 0, 4, REPL_REASON_END, "reason" },
	{ 24, 4, 4, 1, "reserved" },
	{ 24, 8, 1, '\n', "printable" },
	{ 24, 9, 1, 0, "NUL" },
	{ 24, 10, 1, 0x80, "printable" },
	{ 25, 4, 4, 1, "reserved" },
	{ 27, 16, 4, 8, "out of range" },                /* from_id 8 */
	{ 27, 20, 4, 0, "to itself" },                   /* to_id == from_id */
	{ 30, 20, 4, REPL_IO_F_RESYNC, "flags" },        /* VERIFY_REQ takes none */
	{ 30, 16, 4, REPL_MAX_DATA + 512, "too large" },
	{ 30, 16, 4, 0, "zero length" },
	{ 30, 8, 8, 4097, "aligned" },
	{ 31, 8, 4, REPL_ST_END, "status" },
	{ 31, 12, 4, 2, "algorithm" },
	{ 31, 8, 4, REPL_ST_IO, "carries a digest" },
	{ 33, 4, 4, 4, "AL flags" },
	{ 33, 0, 4, 2, "disagrees" },
	{ 33, 12, 4, 0, "ascending" },                   /* 0, 0, 4000 */
	{ 33, 4, 4, REPL_AL_F_UNKNOWN, "with UNKNOWN" },
	{ 35, 0, 4, REPL_MAX_PEER_ACKS + 1, "count out of range" },
	{ 35, 0, 4, 1, "disagrees" },
	{ 35, 0, 4, 3, "disagrees" },
	{ 35, 4, 4, 0x100, "in-sync set" },
	{ 35, 8 + 8, 4, 0x100, "out of range" },          /* member 8 */
	{ 35, 8 + 16 + 12, 4, 1, "reserved" },
};

static void put_width(uint8_t *p, unsigned width, uint64_t v)
{
	switch (width) {
	case 1: *p = (uint8_t)v; break;
	case 2: put_be16(p, (uint16_t)v); break;
	case 4: put_be32(p, (uint32_t)v); break;
	default: put_be64(p, v); break;
	}
}

static void test_validation_errors(void **state)
{
	static uint8_t buf[BUFSZ];

	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct repl_msg m, d;
		const char *why = NULL;
		ssize_t n;
		int ret;

		sample(c->sample, &m);
		n = repl_msg_encode(&m, buf, sizeof(buf));
		assert_true(n > 0);
		assert_true(c->off + c->width <= (size_t)n - REPL_HDR_LEN);
		put_width(buf + REPL_HDR_LEN + c->off, c->width, c->value);
		ret = repl_msg_decode(m.type, buf + REPL_HDR_LEN, (size_t)n - REPL_HDR_LEN, &d, &why);
		if (ret != -EBADMSG || !why || !strstr(why, c->why))
			fail_msg("case %zu (%s @%zu=%llu): ret %d why '%s', want '%s'", i,
				 repl_msg_name(m.type), c->off, (unsigned long long)c->value,
				 ret, why ? why : "(null)", c->why);
	}
}

static void test_payload_length_errors(void **state)
{
	static uint8_t buf[BUFSZ];
	struct repl_msg m, d;
	const char *why = NULL;
	ssize_t n;

	/* a WRITE whose data is not a multiple of 512 */
	sample(6, &m);
	n = repl_msg_encode(&m, buf, sizeof(buf));
	put_be32(buf + REPL_HDR_LEN + 16, 4095);
	assert_int_equal(repl_msg_decode(REPL_MSG_WRITE, buf + REPL_HDR_LEN, (size_t)n - REPL_HDR_LEN - 1, &d, &why), -EBADMSG);
	assert_non_null(strstr(why, "aligned"));
	/* every fixed-size type, one byte short and one byte long */
	for (unsigned i = 0; i < NSAMPLES; i++) {
		uint32_t lo, hi;

		sample(i, &m);
		assert_int_equal(repl_msg_bounds(m.type, &lo, &hi), 0);
		n = repl_msg_encode(&m, buf, sizeof(buf));
		if (lo > 0)
			assert_int_equal(repl_msg_decode(m.type, buf + REPL_HDR_LEN, lo - 1, &d, &why), -EBADMSG);
		if (hi < REPL_MAX_DATA)
			assert_int_equal(repl_msg_decode(m.type, buf + REPL_HDR_LEN, hi + 1, &d, &why), -EBADMSG);
	}
	assert_int_equal(repl_msg_decode(0x0006, buf, 0, &d, &why), -EBADMSG);
	assert_int_equal(repl_msg_bounds(0x0006, &(uint32_t){ 0 }, &(uint32_t){ 0 }), -EBADMSG);
	/* a bitmap chunk that is not whole words */
	sample(5, &m);
	n = repl_msg_encode(&m, buf, sizeof(buf));
	assert_int_equal(repl_msg_decode(REPL_MSG_BITMAP, buf + REPL_HDR_LEN, (size_t)n - REPL_HDR_LEN - 4, &d, &why), -EBADMSG);
	assert_non_null(strstr(why, "multiple of 8"));
}

static void test_encoders_refuse_invalid(void **state)
{
	static uint8_t buf[BUFSZ];
	struct repl_msg m;

	sample(6, &m);
	m.u.io.offset = 3;
	assert_int_equal(repl_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	sample(6, &m);
	m.data_len = 0;
	assert_int_equal(repl_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	sample(6, &m);
	m.data_len = REPL_MAX_DATA + 512;
	m.u.io.length = m.data_len;
	assert_int_equal(repl_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	sample(4, &m);
	m.u.state.role = 9;
	assert_int_equal(repl_msg_encode_head(&m, buf, sizeof(buf)), -EINVAL);
	sample(24, &m);
	memset(m.u.error.text, 'y', sizeof(m.u.error.text)); /* unterminated */
	assert_int_equal(repl_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	sample(25, &m);
	strcpy(m.u.error.text, "bye");
	assert_int_equal(repl_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	memset(&m, 0, sizeof(m));
	m.type = 0x0042;
	assert_int_equal(repl_msg_encode(&m, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(repl_msg_payload_len(&m), -EINVAL);
}

static void test_features_agree(void **state)
{
	struct repl_features a = { 1, 3, REPL_FEAT_DATA_CRC | REPL_FEAT_TRIM, { 0 } };
	struct repl_features b = { 2, 5, REPL_FEAT_TRIM | (1ull << 40), { 0 } };
	struct repl_features c = { 4, 5, 0, { 0 } };
	uint32_t v = 0;
	uint64_t f = 0;

	assert_int_equal(repl_features_agree(&a, &b, &v, &f), 0);
	assert_int_equal(v, 3);
	assert_true(f == REPL_FEAT_TRIM);
	assert_int_equal(repl_features_agree(&b, &a, &v, &f), 0);
	assert_int_equal(v, 3);
	assert_int_equal(repl_features_agree(&a, &c, &v, &f), -EPROTONOSUPPORT);
}

static void test_names(void **state)
{
	assert_string_equal(repl_msg_name(REPL_MSG_FEATURES), "FEATURES");
	assert_string_equal(repl_msg_name(REPL_MSG_WRITE_ZEROES_ACK), "WRITE_ZEROES_ACK");
	assert_string_equal(repl_msg_name(REPL_MSG_DISCONNECT), "DISCONNECT");
	assert_string_equal(repl_msg_name(0), "?");
	assert_string_equal(repl_msg_name(0x0013), "?"); /* reserved, unassigned */
	assert_string_equal(repl_msg_name(0xffff), "?");
	assert_string_equal(repl_role_name(REPL_ROLE_PRIMARY), "primary");
	assert_string_equal(repl_role_name(77), "?");
	assert_string_equal(repl_disk_state_name(REPL_DISK_UP_TO_DATE), "up-to-date");
	assert_string_equal(repl_disk_state_name(REPL_DISK_END), "?");
	assert_string_equal(repl_reason_name(REPL_REASON_SPLIT_BRAIN), "split-brain");
	assert_string_equal(repl_reason_name(1000), "?");
	assert_string_equal(repl_status_name(REPL_ST_NOSPC), "no-space");
	assert_string_equal(repl_status_name(REPL_ST_END), "?");
	for (unsigned i = 0; i < REPL_REASON_END; i++)
		assert_string_not_equal(repl_reason_name(i), "?");
	for (unsigned s = 0; s < REPL_ST_END; s++) {
		assert_string_not_equal(repl_status_name(s), "?");
		assert_int_equal(repl_status_from_errno(repl_status_to_errno(s)), s);
	}
	assert_int_equal(repl_status_from_errno(-EBADF), REPL_ST_IO);
	assert_int_equal(repl_status_to_errno(1234), -EIO);
}

/* ---- the resumable parser ------------------------------------------------ */

static uint8_t *stream_all(size_t *len)
{
	size_t cap = (size_t)NSAMPLES * (REPL_HDR_LEN + 32 + 4096 + 300);
	uint8_t *s = malloc(cap);
	struct repl_msg m;

	*len = 0;
	for (unsigned i = 0; i < NSAMPLES; i++) {
		sample(i, &m);
		ssize_t n = repl_msg_encode(&m, s + *len, cap - *len);
		assert_true(n > 0);
		*len += (size_t)n;
	}
	return s;
}

/* feeds `s` in chunks of `step` (0: varying 1..37) and checks every sample */
static void feed_and_check(const uint8_t *s, size_t len, size_t step)
{
	struct repl_parser p;
	struct repl_msg got, want;
	unsigned next = 0;
	size_t pos = 0, k = 0;

	repl_parser_init(&p);
	while (pos < len) {
		size_t chunk = step ? step : 1 + (k++ * 7) % 37, used = 0;
		size_t end = MIN(len, pos + chunk);

		while (pos < end) {
			int ret = repl_parser_feed(&p, s + pos, end - pos, &used, &got);

			assert_true(ret >= 0);
			pos += used;
			if (ret == 1) {
				sample(next++, &want);
				assert_same_msg(&want, &got);
			} else {
				assert_int_equal(pos, end);
			}
		}
	}
	assert_int_equal(next, NSAMPLES);
	assert_int_equal(p.state, REPL_PARSE_HEADER);
	assert_true(p.frames == NSAMPLES);
	repl_parser_free(&p);
}

static void test_parser_byte_by_byte(void **state)
{
	size_t len;
	uint8_t *s = stream_all(&len);

	feed_and_check(s, len, 1);
	feed_and_check(s, len, 0);
	feed_and_check(s, len, len);
	free(s);
}

static void test_parser_truncated_frame_waits(void **state)
{
	static uint8_t buf[BUFSZ];
	struct repl_parser p;
	struct repl_msg m, got;
	size_t used;
	ssize_t n;

	sample(7, &m);
	n = repl_msg_encode(&m, buf, sizeof(buf));
	repl_parser_init(&p);
	assert_int_equal(repl_parser_feed(&p, buf, (size_t)n - 1, &used, &got), 0);
	assert_int_equal(used, (size_t)n - 1);
	assert_int_equal(p.state, REPL_PARSE_PAYLOAD);
	assert_int_equal(repl_parser_feed(&p, buf + n - 1, 1, &used, &got), 1);
	assert_int_equal(used, 1);
	assert_same_msg(&m, &got);
	/* header only, then nothing */
	assert_int_equal(repl_parser_feed(&p, buf, 10, &used, &got), 0);
	assert_int_equal(p.state, REPL_PARSE_HEADER);
	assert_int_equal(repl_parser_feed(&p, buf + 10, 0, &used, &got), 0);
	assert_int_equal(used, 0);
	repl_parser_free(&p);
}

static void test_parser_errors_are_sticky(void **state)
{
	static uint8_t buf[BUFSZ];
	struct repl_parser p;
	struct repl_msg m, got;
	size_t used;
	ssize_t n;

	/* a hostile length is refused at the header, before any allocation */
	repl_parser_init(&p);
	repl_hdr_encode(buf, REPL_MSG_WRITE, UINT32_MAX);
	for (int i = 0; i < 15; i++)
		assert_int_equal(repl_parser_feed(&p, buf + i, 1, &used, &got), 0);
	assert_int_equal(repl_parser_feed(&p, buf + 15, 1, &used, &got), -EBADMSG);
	assert_null(p.buf);
	assert_non_null(strstr(p.why, "out of bounds"));
	assert_int_equal(repl_parser_feed(&p, buf, 16, &used, &got), -EBADMSG);
	assert_int_equal(used, 0);
	repl_parser_free(&p);

	/* a valid frame, then one whose payload is invalid */
	repl_parser_init(&p);
	sample(22, &m);
	n = repl_msg_encode(&m, buf, sizeof(buf));
	sample(8, &m);
	ssize_t n2 = repl_msg_encode(&m, buf + n, sizeof(buf) - (size_t)n);
	put_be32(buf + n + REPL_HDR_LEN + 8, 77); /* status */
	assert_int_equal(repl_parser_feed(&p, buf, (size_t)(n + n2), &used, &got), 1);
	assert_int_equal(used, (size_t)n);
	assert_int_equal(repl_parser_feed(&p, buf + n, (size_t)n2, &used, &got), -EBADMSG);
	assert_int_equal(p.state, REPL_PARSE_ERROR);
	assert_non_null(strstr(p.why, "frame 2 (WRITE_ACK)"));
	assert_non_null(strstr(p.why, "status"));
	repl_parser_free(&p);

	/* garbage instead of a header */
	repl_parser_init(&p);
	memset(buf, 'G', 64);
	assert_int_equal(repl_parser_feed(&p, buf, 64, &used, &got), -EBADMSG);
	assert_int_equal(used, 16);
	assert_non_null(strstr(p.why, "magic"));
	repl_parser_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_message),
		cmocka_unit_test(test_encode_head_leaves_data_out),
		cmocka_unit_test(test_hdr_errors),
		cmocka_unit_test(test_validation_errors),
		cmocka_unit_test(test_payload_length_errors),
		cmocka_unit_test(test_encoders_refuse_invalid),
		cmocka_unit_test(test_features_agree),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_parser_byte_by_byte),
		cmocka_unit_test(test_parser_truncated_frame_waits),
		cmocka_unit_test(test_parser_errors_are_sticky),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
