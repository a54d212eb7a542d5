/* The PDU receive machine of one NVMe/TCP queue: bytes in, PDUs out.
 * Free of sockets so it can be fed byte by byte in tests and by the fuzzer.
 *
 *   CH --8 bytes--> PSH --hlen-8 (+HDGST)--> PAD --> DATA --> DDGST --> CH
 *    \                \ bad field / digest                                 
 *     `----------------`------------------------------> ERROR (sticky)
 *
 * nvmf_rx_feed() consumes input until something happens:
 *   NVMF_RX_MORE    all input consumed, the PDU is not complete
 *   NVMF_RX_HEADER  the header of a PDU with data is in rx->hdr (digest
 *                   checked): the caller inspects it and calls
 *                   nvmf_rx_set_dest() (or nvmf_rx_fail()) before feeding on
 *   NVMF_RX_PDU     a whole PDU arrived: header in rx->hdr, data in the
 *                   destination; valid until the next feed
 *   NVMF_RX_FATAL   rx->fatal says what goes into the C2HTermReq
 * A data digest mismatch is not fatal to the stream: the PDU completes with
 * rx->ddgst_bad set and the caller fails the command. */
#ifndef URBD_NVMF_RX_H
#define URBD_NVMF_RX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nvmf_proto.h"

enum nvmf_rx_state {
	NVMF_RX_CH,     /* collecting the 8-byte common header */
	NVMF_RX_PSH,    /* collecting the PDU-specific header and its digest */
	NVMF_RX_WAIT,   /* header delivered; waiting for a data destination */
	NVMF_RX_PAD,    /* skipping the padding between header and pdo */
	NVMF_RX_DATA,   /* payload into the destination (or discarded) */
	NVMF_RX_DDGST,  /* the 4-byte data digest */
	NVMF_RX_ERROR,  /* fatal error seen; accepts nothing more */
};

enum nvmf_rx_event { NVMF_RX_MORE, NVMF_RX_HEADER, NVMF_RX_PDU, NVMF_RX_FATAL };

struct nvmf_rx {
	enum nvmf_rx_state state;
	struct nvmf_rx_limits lim;
	uint8_t hdr[NVMF_MAX_HLEN + NVMF_DIGEST_LEN];
	uint32_t got;            /* bytes of the current part received */
	uint32_t hdr_valid;      /* bytes of hdr filled for the current PDU */
	struct nvmf_hdr ch;
	struct nvmf_layout lay;
	uint8_t *dest;           /* NULL: data is read and dropped */
	uint32_t crc;            /* running data digest */
	uint8_t dgst[NVMF_DIGEST_LEN];
	bool ddgst_bad;          /* the PDU just delivered failed its data digest */
	struct nvmf_fatal fatal;
	uint64_t pdus;           /* PDUs delivered (stats, tests) */
	unsigned transitions;    /* state changes (tests count them) */
};

void nvmf_rx_init(struct nvmf_rx *rx, const struct nvmf_rx_limits *lim);
enum nvmf_rx_event nvmf_rx_feed(struct nvmf_rx *rx, const uint8_t *p, size_t n,
				size_t *used);
/* after NVMF_RX_HEADER: where the data goes (rx->lay.data_len bytes) */
void nvmf_rx_set_dest(struct nvmf_rx *rx, uint8_t *dest);
/* the caller found the header unacceptable: the machine turns fatal */
void nvmf_rx_fail(struct nvmf_rx *rx, uint16_t fes, uint32_t fei, const char *why);
/* bytes of payload still expected in DATA state (for direct receive) */
uint32_t nvmf_rx_data_left(const struct nvmf_rx *rx);
/* Direct receive: in DATA state with a destination, where the rest of the
 * payload goes (*len bytes); NULL otherwise. The caller may receive into
 * it straight from the socket instead of feeding the bytes, then reports
 * them with nvmf_rx_direct_done (never more than *len). */
uint8_t *nvmf_rx_direct_dest(const struct nvmf_rx *rx, uint32_t *len);
/* n payload bytes landed at the direct destination: NVMF_RX_MORE, or
 * NVMF_RX_PDU when they completed a PDU that has no data digest */
enum nvmf_rx_event nvmf_rx_direct_done(struct nvmf_rx *rx, size_t n);
const char *nvmf_rx_state_name(enum nvmf_rx_state s);

#endif
