/* nvmf_rx.c + nvmf_proto.c: the PDU receive machine fed whole and byte by
 * byte, and one test per fatal error path (the C2HTermReq's FES/FEI). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"
#include "nvmf/nvmf_proto.h"
#include "nvmf/nvmf_rx.h"
#include "util.h"

static const struct nvmf_rx_limits live = {
	.ic_done = true, .max_incapsule = 8192, .maxh2cdata = 131072,
};

/* builds a host PDU: header (hlen bytes, psh after the CH), digests as
 * asked, data at pdo = header + digest + pad */
static size_t mk_pdu(uint8_t *out, uint8_t type, uint8_t hlen, const uint8_t *psh,
		     const uint8_t *data, uint32_t dlen, bool hd, bool dd, uint32_t pad)
{
	uint32_t hl = hlen + (hd ? 4 : 0);
	uint32_t pdo = dlen ? hl + pad : 0;
	uint32_t plen = dlen ? pdo + dlen + (dd ? 4 : 0) : hl;
	uint8_t flags = (uint8_t)((hd ? NVMF_F_HDGST : 0) | (dlen && dd ? NVMF_F_DDGST : 0));

	memset(out, 0, plen);
	nvmf_put_ch(out, type, flags, hlen, (uint8_t)pdo, plen);
	if (psh)
		memcpy(out + NVMF_CH_LEN, psh, hlen - NVMF_CH_LEN);
	if (hd)
		put_le32(out + hlen, crc32c(0, out, hlen));
	if (dlen) {
		memcpy(out + pdo, data, dlen);
		if (dd)
			put_le32(out + pdo + dlen, crc32c(0, data, dlen));
	}
	return plen;
}

/* feeds in chunks of `step` bytes; returns the last event, *dest set at HEADER */
static enum nvmf_rx_event run(struct nvmf_rx *rx, const uint8_t *p, size_t n,
			      size_t step, uint8_t *dest, size_t *consumed)
{
	size_t off = 0;
	enum nvmf_rx_event ev = NVMF_RX_MORE;

	while (off < n || ev == NVMF_RX_HEADER) {
		size_t used, k = MIN(step, n - off);

		ev = nvmf_rx_feed(rx, p + off, k, &used);
		off += used;
		if (ev == NVMF_RX_HEADER) {
			nvmf_rx_set_dest(rx, dest);
			continue;
		}
		if (ev == NVMF_RX_PDU || ev == NVMF_RX_FATAL)
			break;
	}
	if (consumed)
		*consumed = off;
	return ev;
}

static void test_capsule_with_data_every_chunking(void **state)
{
	uint8_t pdu[4096 + 200], sqe[64], data[4096], dest[4096];
	size_t n;

	for (unsigned i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	memset(sqe, 0xab, sizeof(sqe));
	for (int dg = 0; dg < 4; dg++) {
		bool hd = dg & 1, dd = dg & 2;
		struct nvmf_rx_limits lim = live;

		lim.hdgst = hd;
		lim.ddgst = dd;
		n = mk_pdu(pdu, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, data, sizeof(data), hd, dd, 0);
		for (size_t step = 1; step <= n; step = step < 16 ? step + 1 : step * 3) {
			struct nvmf_rx rx;
			size_t used;

			nvmf_rx_init(&rx, &lim);
			memset(dest, 0, sizeof(dest));
			assert_int_equal(run(&rx, pdu, n, step, dest, &used), NVMF_RX_PDU);
			assert_int_equal(used, n);
			assert_false(rx.ddgst_bad);
			assert_memory_equal(rx.hdr + 8, sqe, 64);
			assert_memory_equal(dest, data, sizeof(data));
			assert_int_equal(rx.state, NVMF_RX_CH);
		}
	}
}

static void test_byte_by_byte_stream_of_pdus(void **state)
{
	uint8_t buf[1024], sqe[64] = { 0x02 }, psh[16] = { 0 }, data[100], dest[100];
	size_t n = 0;
	struct nvmf_rx rx;
	unsigned pdus = 0;
	struct nvmf_rx_limits lim = live;

	lim.hdgst = true;
	memset(data, 0x5a, sizeof(data));
	n += mk_pdu(buf + n, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, NULL, 0, true, false, 0);
	put_le32(psh + 8, sizeof(data)); /* DATAL */
	n += mk_pdu(buf + n, NVMF_PDU_H2C_DATA, NVMF_DATA_HLEN, psh, data, sizeof(data),
		    true, false, 0);
	n += mk_pdu(buf + n, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, NULL, 0, true, false, 0);
	nvmf_rx_init(&rx, &lim);
	for (size_t i = 0; i < n; i++) {
		size_t used;
		enum nvmf_rx_event ev = nvmf_rx_feed(&rx, buf + i, 1, &used);

		if (ev == NVMF_RX_HEADER) {
			assert_int_equal(used, 1);
			nvmf_rx_set_dest(&rx, dest);
			continue;
		}
		assert_int_equal(used, 1);
		assert_int_not_equal(ev, NVMF_RX_FATAL);
		if (ev == NVMF_RX_PDU)
			pdus++;
	}
	assert_int_equal(pdus, 3);
	assert_memory_equal(dest, data, sizeof(data));
	assert_int_equal(rx.pdus, 3);
}

static void test_padding_before_pdo_skipped(void **state)
{
	uint8_t pdu[512], sqe[64] = { 0 }, data[64], dest[64];
	struct nvmf_rx rx;

	memset(data, 0x11, sizeof(data));
	size_t n = mk_pdu(pdu, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, data, sizeof(data),
			  false, false, 56);
	nvmf_rx_init(&rx, &live);
	assert_int_equal(run(&rx, pdu, n, 5, dest, NULL), NVMF_RX_PDU);
	assert_int_equal(rx.lay.pad, 56);
	assert_memory_equal(dest, data, sizeof(data));
}

/* ---- fatal errors ------------------------------------------------------ */

static void expect_fatal(const struct nvmf_rx_limits *lim, const uint8_t *p, size_t n,
			 uint16_t fes, uint32_t fei)
{
	struct nvmf_rx rx;
	uint8_t dest[256 * 1024];
	size_t used;

	nvmf_rx_init(&rx, lim);
	assert_int_equal(run(&rx, p, n, 1, dest, &used), NVMF_RX_FATAL);
	assert_int_equal(rx.fatal.fes, fes);
	assert_int_equal(rx.fatal.fei, fei);
	assert_non_null(rx.fatal.why);
	assert_int_equal(rx.state, NVMF_RX_ERROR);
	/* sticky */
	assert_int_equal(nvmf_rx_feed(&rx, p, n, &used), NVMF_RX_FATAL);
	assert_int_equal(used, 0);
}

static void test_bad_type(void **state)
{
	uint8_t p[8];

	nvmf_put_ch(p, NVMF_PDU_RSP, 0, 24, 0, 24); /* a controller PDU type */
	expect_fatal(&live, p, 8, NVMF_FES_INVALID_HDR, 0);
	nvmf_put_ch(p, 0x42, 0, 24, 0, 24);
	expect_fatal(&live, p, 8, NVMF_FES_INVALID_HDR, 0);
}

static void test_bad_hlen(void **state)
{
	uint8_t p[8];

	nvmf_put_ch(p, NVMF_PDU_CMD, 0, 64, 0, 64);
	expect_fatal(&live, p, 8, NVMF_FES_INVALID_HDR, 2);
}

static void test_bad_plen(void **state)
{
	uint8_t p[8];

	nvmf_put_ch(p, NVMF_PDU_CMD, 0, 72, 0, 40); /* shorter than the header */
	expect_fatal(&live, p, 8, NVMF_FES_INVALID_HDR, 4);
	nvmf_put_ch(p, NVMF_PDU_ICREQ, 0, 128, 0, 200);
	struct nvmf_rx_limits pre = live;

	pre.ic_done = false;
	expect_fatal(&pre, p, 8, NVMF_FES_INVALID_HDR, 4);
}

static void test_bad_pdo(void **state)
{
	uint8_t p[8];

	nvmf_put_ch(p, NVMF_PDU_CMD, 0, 72, 40, 200); /* data inside the header */
	expect_fatal(&live, p, 8, NVMF_FES_INVALID_HDR, 3);
	nvmf_put_ch(p, NVMF_PDU_CMD, 0, 72, 250, 200); /* past the end */
	expect_fatal(&live, p, 8, NVMF_FES_INVALID_HDR, 3);
}

static void test_data_over_limits(void **state)
{
	uint8_t p[8];

	nvmf_put_ch(p, NVMF_PDU_CMD, 0, 72, 72, 72 + 8193);
	expect_fatal(&live, p, 8, NVMF_FES_DATA_LIMIT, 4);
	nvmf_put_ch(p, NVMF_PDU_H2C_DATA, 0, 24, 24, 24 + 131073);
	expect_fatal(&live, p, 8, NVMF_FES_DATA_LIMIT, 4);
}

static void test_h2c_datal_mismatch(void **state)
{
	uint8_t pdu[256], psh[16] = { 0 }, data[32] = { 0 };

	put_le32(psh + 8, 33);
	size_t n = mk_pdu(pdu, NVMF_PDU_H2C_DATA, 24, psh, data, sizeof(data), false, false, 0);
	expect_fatal(&live, pdu, n, NVMF_FES_INVALID_HDR, NVMF_DATA_LEN_OFF);
}

static void test_sequence_errors(void **state)
{
	uint8_t p[256], sqe[64] = { 0 };
	struct nvmf_rx_limits pre = live;
	size_t n;

	pre.ic_done = false;
	n = mk_pdu(p, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, NULL, 0, false, false, 0);
	expect_fatal(&pre, p, n, NVMF_FES_PDU_SEQUENCE, 0);
	n = mk_pdu(p, NVMF_PDU_ICREQ, NVMF_ICREQ_HLEN, NULL, NULL, 0, false, false, 0);
	expect_fatal(&live, p, n, NVMF_FES_PDU_SEQUENCE, 0);
}

static void test_icreq_bad_pfv(void **state)
{
	uint8_t p[128], psh[120] = { 0 };
	struct nvmf_rx_limits pre = live;

	pre.ic_done = false;
	put_le16(psh, 1);
	size_t n = mk_pdu(p, NVMF_PDU_ICREQ, NVMF_ICREQ_HLEN, psh, NULL, 0, false, false, 0);
	expect_fatal(&pre, p, n, NVMF_FES_UNSUPPORTED, NVMF_IC_PFV_OFF);
}

static void test_digest_flags_must_match(void **state)
{
	uint8_t p[256], sqe[64] = { 0 };
	struct nvmf_rx_limits hd = live;
	size_t n;

	hd.hdgst = true;
	n = mk_pdu(p, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, NULL, 0, false, false, 0);
	expect_fatal(&hd, p, n, NVMF_FES_INVALID_HDR, 1);
	n = mk_pdu(p, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, NULL, 0, true, false, 0);
	expect_fatal(&live, p, n, NVMF_FES_INVALID_HDR, 1);
}

static void test_header_digest_mismatch(void **state)
{
	uint8_t p[256], sqe[64] = { 0 };
	struct nvmf_rx_limits hd = live;

	hd.hdgst = true;
	size_t n = mk_pdu(p, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, NULL, 0, true, false, 0);
	p[20] ^= 1; /* corrupt the SQE after the digest was computed */
	expect_fatal(&hd, p, n, NVMF_FES_HDR_DIGEST, 0);
}

static void test_data_digest_mismatch_not_fatal(void **state)
{
	uint8_t p[512], sqe[64] = { 0 }, data[100] = { 1, 2, 3 }, dest[100];
	struct nvmf_rx_limits dd = live;
	struct nvmf_rx rx;

	dd.ddgst = true;
	size_t n = mk_pdu(p, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, data, sizeof(data), false, true, 0);
	p[n - 5] ^= 0x80; /* last data byte */
	nvmf_rx_init(&rx, &dd);
	assert_int_equal(run(&rx, p, n, 7, dest, NULL), NVMF_RX_PDU);
	assert_true(rx.ddgst_bad);
	/* the stream stays in step: the next PDU parses */
	n = mk_pdu(p, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, data, sizeof(data), false, true, 0);
	assert_int_equal(run(&rx, p, n, 3, dest, NULL), NVMF_RX_PDU);
	assert_false(rx.ddgst_bad);
}

/* Direct receive: part of an H2CData payload is fed from the buffer, the
 * rest "lands" in the destination (as a recv into it would) and is
 * reported with nvmf_rx_direct_done; with and without a data digest, then
 * the stream goes on with the next PDU. */
static void test_direct_receive(void **state)
{
	enum { LEN = 40000 };
	uint8_t *p = malloc(LEN + 256), *data = malloc(LEN), *dest = malloc(LEN);
	uint8_t psh[16] = { 0 }, sqe[64] = { 0 };
	struct nvmf_rx rx;

	for (unsigned i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i * 13 + 1);
	put_le32(psh + 8, LEN); /* DATAL */
	for (int dd = 0; dd < 2; dd++) {
		struct nvmf_rx_limits lim = live;
		uint32_t left = 0, hl = 24;
		size_t used, n, fed;
		uint8_t *dst;

		lim.ddgst = dd;
		memset(dest, 0, LEN);
		n = mk_pdu(p, NVMF_PDU_H2C_DATA, 24, psh, data, LEN, false, dd, 0);
		nvmf_rx_init(&rx, &lim);
		assert_null(nvmf_rx_direct_dest(&rx, &left)); /* not in DATA */
		assert_int_equal(nvmf_rx_feed(&rx, p, hl + 1000, &used), NVMF_RX_HEADER);
		assert_int_equal(used, hl);
		nvmf_rx_set_dest(&rx, dest);
		assert_int_equal(nvmf_rx_feed(&rx, p + hl, 1000, &used), NVMF_RX_MORE);
		fed = hl + used;
		dst = nvmf_rx_direct_dest(&rx, &left);
		assert_ptr_equal(dst, dest + 1000);
		assert_int_equal(left, LEN - 1000);
		assert_int_equal(nvmf_rx_data_left(&rx), LEN - 1000);
		/* two short "recvs" straight into the destination */
		memcpy(dst, p + fed, 5000);
		assert_int_equal(nvmf_rx_direct_done(&rx, 5000), NVMF_RX_MORE);
		dst = nvmf_rx_direct_dest(&rx, &left);
		assert_ptr_equal(dst, dest + 6000);
		memcpy(dst, p + fed + 5000, left);
		assert_int_equal(nvmf_rx_direct_done(&rx, left), dd ? NVMF_RX_MORE : NVMF_RX_PDU);
		fed += 5000 + left;
		if (dd) { /* the digest comes through the buffer */
			assert_null(nvmf_rx_direct_dest(&rx, &left));
			assert_int_equal(nvmf_rx_feed(&rx, p + fed, n - fed, &used), NVMF_RX_PDU);
			assert_false(rx.ddgst_bad);
		}
		assert_memory_equal(dest, data, LEN);
		/* in step: the next PDU parses */
		n = mk_pdu(p, NVMF_PDU_CMD, NVMF_CMD_HLEN, sqe, NULL, 0, false, false, 0);
		assert_int_equal(run(&rx, p, n, 5, NULL, NULL), NVMF_RX_PDU);
		assert_int_equal(rx.pdus, 2);
	}
	/* a payload corrupted on its direct way is caught by the digest */
	{
		struct nvmf_rx_limits lim = live;
		uint32_t left;
		size_t used, n;

		lim.ddgst = true;
		n = mk_pdu(p, NVMF_PDU_H2C_DATA, 24, psh, data, LEN, false, true, 0);
		nvmf_rx_init(&rx, &lim);
		assert_int_equal(nvmf_rx_feed(&rx, p, 24, &used), NVMF_RX_HEADER);
		nvmf_rx_set_dest(&rx, dest);
		assert_non_null(nvmf_rx_direct_dest(&rx, &left));
		memcpy(dest, p + 24, LEN);
		dest[LEN / 2] ^= 1;
		assert_int_equal(nvmf_rx_direct_done(&rx, LEN), NVMF_RX_MORE);
		assert_int_equal(nvmf_rx_feed(&rx, p + 24 + LEN, n - 24 - LEN, &used), NVMF_RX_PDU);
		assert_true(rx.ddgst_bad);
	}
	free(p);
	free(data);
	free(dest);
}

static void test_fail_from_caller(void **state)
{
	uint8_t p[512], psh[16] = { 0 }, data[16] = { 0 };
	struct nvmf_rx rx;
	size_t used;

	put_le32(psh + 8, sizeof(data));
	size_t n = mk_pdu(p, NVMF_PDU_H2C_DATA, 24, psh, data, sizeof(data), false, false, 0);
	nvmf_rx_init(&rx, &live);
	assert_int_equal(nvmf_rx_feed(&rx, p, n, &used), NVMF_RX_HEADER);
	assert_int_equal(used, 24);
	nvmf_rx_fail(&rx, NVMF_FES_DATA_RANGE, 0, "no such transfer");
	assert_int_equal(nvmf_rx_feed(&rx, p + used, n - used, &used), NVMF_RX_FATAL);
	assert_int_equal(rx.fatal.fes, NVMF_FES_DATA_RANGE);
}

/* ---- encoders ----------------------------------------------------------- */

static void test_encoders(void **state)
{
	uint8_t b[160];
	struct nvmf_hdr h;

	assert_int_equal(nvmf_put_rsp(b, true, 0x1234, 3, 7, NVMF_LBA_RANGE | NVMF_DNR, 5), 28);
	nvmf_parse_ch(b, &h);
	assert_int_equal(h.type, NVMF_PDU_RSP);
	assert_int_equal(h.plen, 28);
	assert_int_equal(get_le16(b + 20), 0x1234);
	/* SC 0x80 SCT 0 DNR: (0x080 << 1) | 0x8000 */
	assert_int_equal(get_le16(b + 22), 0x8100);
	assert_int_equal(get_le32(b + 24), crc32c(0, b, 24));
	/* C2HData with HPDA 3 (16-byte alignment), header digest: pdo 32 */
	assert_int_equal(nvmf_put_c2h_data(b, true, true, 3, 9, 0, 4096, true), 32);
	nvmf_parse_ch(b, &h);
	assert_int_equal(h.pdo, 32);
	assert_int_equal(h.plen, 32 + 4096 + 4);
	assert_int_equal(h.flags, NVMF_F_HDGST | NVMF_F_DDGST | NVMF_F_DATA_LAST);
	uint8_t bad[8] = { 0x42, 0, 72, 0, 1, 0, 0, 0 };
	assert_int_equal(nvmf_put_term(b, NVMF_FES_INVALID_HDR, 2, bad, 8), 32);
	assert_int_equal(b[0], NVMF_PDU_C2H_TERM);
	assert_int_equal(get_le16(b + 8), 1);
	assert_int_equal(get_le32(b + 10), 2);
	assert_memory_equal(b + 24, bad, 8);
	assert_string_equal(nvmf_pdu_name(NVMF_PDU_R2T), "R2T");
	assert_string_equal(nvmf_status_name(NVMF_LBA_RANGE | NVMF_DNR), "LBA Out of Range");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capsule_with_data_every_chunking),
		cmocka_unit_test(test_byte_by_byte_stream_of_pdus),
		cmocka_unit_test(test_padding_before_pdo_skipped),
		cmocka_unit_test(test_bad_type),
		cmocka_unit_test(test_bad_hlen),
		cmocka_unit_test(test_bad_plen),
		cmocka_unit_test(test_bad_pdo),
		cmocka_unit_test(test_data_over_limits),
		cmocka_unit_test(test_h2c_datal_mismatch),
		cmocka_unit_test(test_sequence_errors),
		cmocka_unit_test(test_icreq_bad_pfv),
		cmocka_unit_test(test_digest_flags_must_match),
		cmocka_unit_test(test_header_digest_mismatch),
		cmocka_unit_test(test_data_digest_mismatch_not_fatal),
		cmocka_unit_test(test_direct_receive),
		cmocka_unit_test(test_fail_from_caller),
		cmocka_unit_test(test_encoders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
