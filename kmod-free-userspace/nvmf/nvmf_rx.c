/* Resumable NVMe/TCP PDU receiver (see nvmf_rx.h for the diagram). */
#include "nvmf_rx.h"

#include <assert.h>
#include <string.h>

#include "crc32c.h"
#include "util.h"

#define S(x) (1u << NVMF_RX_##x)
/* legal next states for each state */
static const unsigned legal[] = {
	[NVMF_RX_CH] = S(PSH) | S(ERROR),
	[NVMF_RX_PSH] = S(CH) | S(WAIT) | S(ERROR),
	[NVMF_RX_WAIT] = S(PAD) | S(DATA) | S(ERROR),
	[NVMF_RX_PAD] = S(DATA),
	[NVMF_RX_DATA] = S(DDGST) | S(CH),
	[NVMF_RX_DDGST] = S(CH),
	[NVMF_RX_ERROR] = 0,
};
#undef S

const char *nvmf_rx_state_name(enum nvmf_rx_state s)
{
	static const char *const n[] = { "ch", "psh", "wait", "pad", "data",
					 "ddgst", "error" };

	return (unsigned)s < ARRAY_SIZE(n) ? n[s] : "?";
}

static void set_state(struct nvmf_rx *rx, enum nvmf_rx_state s)
{
	assert(legal[rx->state] & (1u << s));
	rx->state = s;
	rx->got = 0;
	rx->transitions++;
}

void nvmf_rx_init(struct nvmf_rx *rx, const struct nvmf_rx_limits *lim)
{
	memset(rx, 0, sizeof(*rx));
	rx->lim = *lim;
	rx->state = NVMF_RX_CH;
}

static enum nvmf_rx_event go_fatal(struct nvmf_rx *rx)
{
	set_state(rx, NVMF_RX_ERROR);
	return NVMF_RX_FATAL;
}

void nvmf_rx_fail(struct nvmf_rx *rx, uint16_t fes, uint32_t fei, const char *why)
{
	if (rx->state == NVMF_RX_ERROR)
		return;
	rx->fatal = (struct nvmf_fatal){ .fes = fes, .fei = fei, .why = why };
	set_state(rx, NVMF_RX_ERROR);
}

void nvmf_rx_set_dest(struct nvmf_rx *rx, uint8_t *dest)
{
	if (rx->state != NVMF_RX_WAIT)
		return;
	rx->dest = dest;
	rx->crc = 0;
	set_state(rx, rx->lay.pad ? NVMF_RX_PAD : NVMF_RX_DATA);
}

uint32_t nvmf_rx_data_left(const struct nvmf_rx *rx)
{
	return rx->state == NVMF_RX_DATA ? rx->lay.data_len - rx->got : 0;
}

uint8_t *nvmf_rx_direct_dest(const struct nvmf_rx *rx, uint32_t *len)
{
	if (rx->state != NVMF_RX_DATA || !rx->dest || rx->got >= rx->lay.data_len)
		return NULL;
	*len = rx->lay.data_len - rx->got;
	return rx->dest + rx->got;
}

/* the payload is complete: on to the digest, or the PDU is done */
static enum nvmf_rx_event data_done(struct nvmf_rx *rx)
{
	if (rx->lay.ddgst) {
		set_state(rx, NVMF_RX_DDGST);
		return NVMF_RX_MORE;
	}
	set_state(rx, NVMF_RX_CH);
	rx->pdus++;
	return NVMF_RX_PDU;
}

enum nvmf_rx_event nvmf_rx_direct_done(struct nvmf_rx *rx, size_t n)
{
	assert(rx->state == NVMF_RX_DATA && rx->dest &&
	       n <= (size_t)(rx->lay.data_len - rx->got));
	if (rx->lay.ddgst)
		rx->crc = crc32c(rx->crc, rx->dest + rx->got, n);
	rx->got += (uint32_t)n;
	return rx->got < rx->lay.data_len ? NVMF_RX_MORE : data_done(rx);
}

/* copies up to `want - rx->got` bytes into dst (or skips them) */
static size_t take(struct nvmf_rx *rx, uint8_t *dst, uint32_t want,
		   const uint8_t *p, size_t n)
{
	size_t k = MIN((size_t)(want - rx->got), n);

	if (dst)
		memcpy(dst + rx->got, p, k);
	rx->got += (uint32_t)k;
	return k;
}

static enum nvmf_rx_event header_done(struct nvmf_rx *rx)
{
	if (rx->lay.hdr_len > rx->ch.hlen) {
		uint32_t want = crc32c(0, rx->hdr, rx->ch.hlen);

		if (get_le32(rx->hdr + rx->ch.hlen) != want) {
			rx->fatal = (struct nvmf_fatal){ NVMF_FES_HDR_DIGEST, 0,
							 "header digest mismatch" };
			return go_fatal(rx);
		}
	}
	if (nvmf_check_psh(rx->hdr, &rx->ch, &rx->lay, &rx->fatal) < 0)
		return go_fatal(rx);
	if (!rx->lay.data_len) {
		set_state(rx, NVMF_RX_CH);
		rx->pdus++;
		return NVMF_RX_PDU;
	}
	set_state(rx, NVMF_RX_WAIT);
	return NVMF_RX_HEADER;
}

enum nvmf_rx_event nvmf_rx_feed(struct nvmf_rx *rx, const uint8_t *p, size_t n,
				size_t *used)
{
	size_t i = 0;
	enum nvmf_rx_event ev = NVMF_RX_MORE;

	for (;;) {
		switch (rx->state) {
		case NVMF_RX_CH:
			if (rx->got == 0)
				rx->ddgst_bad = false;
			i += take(rx, rx->hdr, NVMF_CH_LEN, p + i, n - i);
			rx->hdr_valid = rx->got;
			if (rx->got < NVMF_CH_LEN)
				goto out;
			nvmf_parse_ch(rx->hdr, &rx->ch);
			if (nvmf_check_ch(&rx->ch, &rx->lim, &rx->lay, &rx->fatal) < 0) {
				ev = go_fatal(rx);
				goto out;
			}
			set_state(rx, NVMF_RX_PSH);
			rx->got = NVMF_CH_LEN;
			break;
		case NVMF_RX_PSH:
			i += take(rx, rx->hdr, rx->lay.hdr_len, p + i, n - i);
			rx->hdr_valid = rx->got;
			if (rx->got < rx->lay.hdr_len)
				goto out;
			ev = header_done(rx);
			goto out;
		case NVMF_RX_WAIT:
			ev = NVMF_RX_HEADER; /* the caller has not said where data goes */
			goto out;
		case NVMF_RX_PAD:
			i += take(rx, NULL, rx->lay.pad, p + i, n - i);
			if (rx->got < rx->lay.pad)
				goto out;
			set_state(rx, NVMF_RX_DATA);
			break;
		case NVMF_RX_DATA: {
			size_t k = MIN((size_t)(rx->lay.data_len - rx->got), n - i);

			if (rx->lay.ddgst && k)
				rx->crc = crc32c(rx->crc, p + i, k);
			i += take(rx, rx->dest, rx->lay.data_len, p + i, n - i);
			if (rx->got < rx->lay.data_len)
				goto out;
			if (data_done(rx) == NVMF_RX_MORE)
				break; /* the data digest */
			ev = NVMF_RX_PDU;
			goto out;
		}
		case NVMF_RX_DDGST:
			i += take(rx, rx->dgst, NVMF_DIGEST_LEN, p + i, n - i);
			if (rx->got < NVMF_DIGEST_LEN)
				goto out;
			rx->ddgst_bad = get_le32(rx->dgst) != rx->crc;
			set_state(rx, NVMF_RX_CH);
			rx->pdus++;
			ev = NVMF_RX_PDU;
			goto out;
		case NVMF_RX_ERROR:
			ev = NVMF_RX_FATAL;
			goto out;
		}
	}
out:
	*used = i;
	return ev;
}
