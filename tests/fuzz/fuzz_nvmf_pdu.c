/* libFuzzer: NVMe/TCP host PDUs through the receive machine (nvmf_rx.c,
 * nvmf_check_ch/psh).
 *
 * Input: one byte of limits (bit0 ic_done, bit1 HDGST, bit2 DDGST, bit3
 * "caller refuses every header"), one byte chunk size, then the stream.
 *
 * Invariants: the machine never consumes more than it is given, always
 * makes progress or reports an event, delivers a payload no longer than
 * the limits allow into the destination it was given, turns FATAL with a
 * known FES and a reason and then stays FATAL. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvmf/nvmf_proto.h"
#include "nvmf/nvmf_rx.h"
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

static uint8_t dest[16384];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nvmf_rx_limits lim = { .max_incapsule = 8192, .maxh2cdata = 16384 };
	struct nvmf_rx rx;
	size_t off = 2, step;
	bool refuse;

	if (size < 2)
		return 0;
	lim.ic_done = data[0] & 1;
	lim.hdgst = data[0] & 2;
	lim.ddgst = data[0] & 4;
	refuse = data[0] & 8;
	step = data[1] ? data[1] : size;
	nvmf_rx_init(&rx, &lim);
	while (off < size) {
		size_t used, k = MIN(step, size - off);
		enum nvmf_rx_event ev = nvmf_rx_feed(&rx, data + off, k, &used);

		CHECK(used <= k);
		off += used;
		switch (ev) {
		case NVMF_RX_MORE:
			CHECK(used == k);
			break;
		case NVMF_RX_HEADER:
			CHECK(rx.lay.data_len > 0);
			CHECK(rx.lay.data_len <= sizeof(dest));
			CHECK(rx.ch.type == NVMF_PDU_CMD || rx.ch.type == NVMF_PDU_H2C_DATA ||
			      rx.ch.type == NVMF_PDU_H2C_TERM);
			if (refuse)
				nvmf_rx_fail(&rx, NVMF_FES_DATA_RANGE, 0, "refused");
			else
				nvmf_rx_set_dest(&rx, rx.ch.type == NVMF_PDU_H2C_TERM ? NULL : dest);
			break;
		case NVMF_RX_PDU:
			CHECK(rx.state == NVMF_RX_CH);
			CHECK(rx.ch.hlen <= NVMF_MAX_HLEN);
			break;
		case NVMF_RX_FATAL:
			CHECK(rx.fatal.fes >= NVMF_FES_INVALID_HDR &&
			      rx.fatal.fes <= NVMF_FES_UNSUPPORTED);
			CHECK(rx.fatal.why != NULL);
			CHECK(nvmf_rx_feed(&rx, data, size, &used) == NVMF_RX_FATAL && used == 0);
			return 0;
		}
	}
	return 0;
}
