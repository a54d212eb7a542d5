/* NVMe/TCP wire format (NVMe/TCP Transport Specification 1.0, NVMe-oF 1.1,
 * NVMe Base 1.4), target side. Every multi-byte field is little-endian;
 * the structs below document the layouts and pin their sizes, but the
 * code reads and writes fields with the get_le/put_le helpers at the
 * NVMF_..._OFF offsets, never by casting a buffer. Parsers here are pure functions over
 * (const uint8_t *, size_t): they are what the fuzzer drives. */
#ifndef URBD_NVMF_PROTO_H
#define URBD_NVMF_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- PDU common header (8 bytes) ---------------------------------------- */

enum nvmf_pdu_type {
	NVMF_PDU_ICREQ = 0x00,       /* H->C: first PDU on a connection */
	NVMF_PDU_ICRESP = 0x01,      /* C->H: answer to ICReq */
	NVMF_PDU_H2C_TERM = 0x02,    /* H->C: fatal error, host closes */
	NVMF_PDU_C2H_TERM = 0x03,    /* C->H: fatal error, we close */
	NVMF_PDU_CMD = 0x04,         /* H->C: command capsule (+ in-capsule data) */
	NVMF_PDU_RSP = 0x05,         /* C->H: response capsule (a CQE) */
	NVMF_PDU_H2C_DATA = 0x06,    /* H->C: write data answering an R2T */
	NVMF_PDU_C2H_DATA = 0x07,    /* C->H: read data */
	NVMF_PDU_R2T = 0x09,         /* C->H: ready to receive write data */
};

/* common header flags */
#define NVMF_F_HDGST      (1u << 0) /* a header digest follows the PSH */
#define NVMF_F_DDGST      (1u << 1) /* a data digest follows the data */
#define NVMF_F_DATA_LAST  (1u << 2) /* H2C/C2HData: last PDU of the transfer */
#define NVMF_F_DATA_SUCCESS (1u << 3) /* C2HData: no response capsule follows */

struct nvmf_ch {                /* common header, on the wire */
	uint8_t type;           /* 0: enum nvmf_pdu_type */
	uint8_t flags;          /* 1: NVMF_F_* */
	uint8_t hlen;           /* 2: header length (CH + PSH), no digest */
	uint8_t pdo;            /* 3: PDU data offset, 0 when no data */
	uint32_t plen;          /* 4: total PDU length incl. digests/padding */
};
_Static_assert(sizeof(struct nvmf_ch) == 8, "common header");

#define NVMF_CH_LEN        8
#define NVMF_DIGEST_LEN    4
#define NVMF_ICREQ_HLEN    128
#define NVMF_ICRESP_HLEN   128
#define NVMF_TERM_HLEN     24
#define NVMF_CMD_HLEN      72   /* CH + 64-byte SQE */
#define NVMF_RSP_HLEN      24   /* CH + 16-byte CQE */
#define NVMF_DATA_HLEN     24   /* H2CData and C2HData */
#define NVMF_R2T_HLEN      24
#define NVMF_MAX_HLEN      128
/* TermReq: header plus up to 128 bytes of the offending PDU's header */
#define NVMF_TERM_MAX_PLEN 152

/* ICReq (H->C, hlen 128) / ICResp (C->H, hlen 128) */
#define NVMF_IC_PFV_OFF      8   /* u16 PDU format version, 0 */
#define NVMF_ICREQ_HPDA_OFF  10  /* u8 host PDU data alignment: (n+1)*4 */
#define NVMF_ICRESP_CPDA_OFF 10  /* u8 controller PDU data alignment */
#define NVMF_IC_DGST_OFF     11  /* u8 bit0 HDGST, bit1 DDGST */
#define NVMF_ICREQ_MAXR2T_OFF 12 /* u32 0's based R2Ts per command */
#define NVMF_ICRESP_MAXDATA_OFF 12 /* u32 MAXH2CDATA, >= 4096 */
#define NVMF_IC_HDGST_EN  (1u << 0)
#define NVMF_IC_DDGST_EN  (1u << 1)
#define NVMF_HPDA_MAX     31

/* H2CTermReq / C2HTermReq (hlen 24) */
#define NVMF_TERM_FES_OFF  8    /* u16 fatal error status */
#define NVMF_TERM_FEI_OFF  10   /* u32 fatal error information (not aligned) */
enum nvmf_fes {
	NVMF_FES_INVALID_HDR = 0x01,   /* FEI: byte offset of the bad field */
	NVMF_FES_PDU_SEQUENCE = 0x02,  /* a PDU arrived that is not allowed now */
	NVMF_FES_HDR_DIGEST = 0x03,    /* FEI: the digest we computed */
	NVMF_FES_DATA_RANGE = 0x04,    /* H2CData outside the R2T */
	NVMF_FES_DATA_LIMIT = 0x05,    /* more data than MAXH2CDATA / capsule size */
	NVMF_FES_UNSUPPORTED = 0x06,   /* FEI: offset of the unsupported field */
};

/* H2CData / C2HData / R2T (hlen 24) */
#define NVMF_DATA_CCCID_OFF 8   /* u16 command capsule CID */
#define NVMF_DATA_TTAG_OFF  10  /* u16 transfer tag (H2CData, R2T) */
#define NVMF_DATA_OFFSET_OFF 12 /* u32 offset in the command's data */
#define NVMF_DATA_LEN_OFF   16  /* u32 data length in this PDU / R2T */

/* ---- SQE (64 bytes) and CQE (16 bytes) ------------------------------------ */

#define NVMF_SQE_LEN 64
#define NVMF_CQE_LEN 16
struct nvmf_sqe_layout {
	uint8_t opcode;       /* 0 */
	uint8_t flags;        /* 1: bits 7:6 PSDT (must be SGL on fabrics) */
	uint16_t cid;         /* 2 */
	uint32_t nsid;        /* 4; fabrics: byte 4 is FCTYPE */
	uint32_t cdw2, cdw3;  /* 8 */
	uint64_t mptr;        /* 16 */
	uint8_t sgl1[16];     /* 24: address u64, length u32, rsvd[3], id u8 */
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15; /* 40..63 */
};
_Static_assert(sizeof(struct nvmf_sqe_layout) == NVMF_SQE_LEN, "SQE");
struct nvmf_cqe_layout {
	uint32_t dw0, dw1;    /* command specific result */
	uint16_t sqhd, sqid;  /* 8, 10 */
	uint16_t cid;         /* 12 */
	uint16_t status;      /* 14: bit0 phase, 15:1 status field */
};
_Static_assert(sizeof(struct nvmf_cqe_layout) == NVMF_CQE_LEN, "CQE");

#define NVMF_SQE_CDW(n) (40 + 4 * ((n) - 10)) /* byte offset of CDW10..15 */
#define NVMF_SQE_FCTYPE_OFF 4
#define NVMF_SQE_SGL_ADDR_OFF 24
#define NVMF_SQE_SGL_LEN_OFF  32
#define NVMF_SQE_SGL_ID_OFF   39
#define NVMF_PSDT_MASK 0xc0
#define NVMF_PSDT_SGL  0x40     /* SGL for data, MPTR is an address */

/* SGL descriptor identifiers NVMe/TCP uses (type << 4 | subtype) */
#define NVMF_SGL_INCAPSULE 0x01 /* data block, offset into in-capsule data */
#define NVMF_SGL_TRANSPORT 0x5a /* transport data block: R2T/H2C or C2HData */

/* Status: SCT in bits 10:8, SC in bits 7:0; NVMF_DNR added as bit 14
 * (placed in the CQE as bit 15 after the phase-bit shift). */
#define NVMF_SCT_GENERIC 0
#define NVMF_SCT_CMD     1
#define NVMF_ST(sct, sc) ((uint16_t)(((sct) << 8) | (sc)))
#define NVMF_DNR 0x4000
enum nvmf_status {
	NVMF_SUCCESS = 0,
	NVMF_INVALID_OPCODE = NVMF_ST(0, 0x01),
	NVMF_INVALID_FIELD = NVMF_ST(0, 0x02),
	NVMF_DATA_XFER_ERROR = NVMF_ST(0, 0x04),
	NVMF_INTERNAL = NVMF_ST(0, 0x06),
	NVMF_ABORT_SQ_DELETION = NVMF_ST(0, 0x08),
	NVMF_INVALID_NS = NVMF_ST(0, 0x0b),
	NVMF_CMD_SEQ_ERROR = NVMF_ST(0, 0x0c),
	NVMF_SGL_INVALID_DATA_LEN = NVMF_ST(0, 0x0f),
	NVMF_SGL_INVALID_TYPE = NVMF_ST(0, 0x11),
	NVMF_SGL_INVALID_OFFSET = NVMF_ST(0, 0x16),
	NVMF_TRANSIENT_TRANSPORT = NVMF_ST(0, 0x22),
	NVMF_LBA_RANGE = NVMF_ST(0, 0x80),
	NVMF_CAPACITY_EXCEEDED = NVMF_ST(0, 0x81),
	NVMF_NS_NOT_READY = NVMF_ST(0, 0x82),
	NVMF_INVALID_QID = NVMF_ST(1, 0x01),
	NVMF_INVALID_QSIZE = NVMF_ST(1, 0x02),
	NVMF_AER_LIMIT = NVMF_ST(1, 0x05),
	NVMF_INVALID_LOG_PAGE = NVMF_ST(1, 0x09),
	NVMF_FEATURE_NOT_SAVEABLE = NVMF_ST(1, 0x0d),
	NVMF_CONNECT_INCOMPAT_FMT = NVMF_ST(1, 0x80),
	NVMF_CONNECT_CTRL_BUSY = NVMF_ST(1, 0x81),
	NVMF_CONNECT_INVALID_PARAM = NVMF_ST(1, 0x82),
	NVMF_CONNECT_INVALID_HOST = NVMF_ST(1, 0x84),
};

/* ---- opcodes ---------------------------------------------------------- */

enum nvmf_admin_opc {
	NVMF_ADM_GET_LOG_PAGE = 0x02,
	NVMF_ADM_IDENTIFY = 0x06,
	NVMF_ADM_ABORT = 0x08,
	NVMF_ADM_SET_FEATURES = 0x09,
	NVMF_ADM_GET_FEATURES = 0x0a,
	NVMF_ADM_ASYNC_EVENT = 0x0c,
	NVMF_ADM_KEEP_ALIVE = 0x18,
	NVMF_OPC_FABRICS = 0x7f,   /* both queues; byte 4 is the FCTYPE */
};

enum nvmf_io_opc {
	NVMF_IO_FLUSH = 0x00,
	NVMF_IO_WRITE = 0x01,
	NVMF_IO_READ = 0x02,
	NVMF_IO_WRITE_ZEROES = 0x08,
	NVMF_IO_DSM = 0x09,
};

enum nvmf_fctype {
	NVMF_FCT_PROP_SET = 0x00,
	NVMF_FCT_CONNECT = 0x01,
	NVMF_FCT_PROP_GET = 0x04,
	NVMF_FCT_AUTH_SEND = 0x05,
	NVMF_FCT_AUTH_RECV = 0x06,
	NVMF_FCT_DISCONNECT = 0x08,
};

/* Connect SQE fields and its 1024-byte data */
#define NVMF_CONNECT_RECFMT_OFF 40 /* u16, 0 */
#define NVMF_CONNECT_QID_OFF    42 /* u16 */
#define NVMF_CONNECT_SQSIZE_OFF 44 /* u16, 0's based */
#define NVMF_CONNECT_CATTR_OFF  46 /* u8 */
#define NVMF_CONNECT_KATO_OFF   48 /* u32 ms, admin queue only */
#define NVMF_CONNECT_DATA_LEN   1024
#define NVMF_CD_HOSTID_OFF  0      /* 16 bytes */
#define NVMF_CD_CNTLID_OFF  16     /* u16: 0xffff dynamic; I/O: the admin's */
#define NVMF_CD_SUBNQN_OFF  256    /* 256 bytes, NUL-terminated */
#define NVMF_CD_HOSTNQN_OFF 512
#define NVMF_NQN_MAX 223           /* NVMe base: NQNs are at most 223 bytes */

/* Property Get/Set */
#define NVMF_PROP_ATTRIB_OFF 40    /* bits 2:0: 0 = 4 bytes, 1 = 8 bytes */
#define NVMF_PROP_OFST_OFF   44
#define NVMF_PROP_VALUE_OFF  48
enum nvmf_prop {
	NVMF_PROP_CAP = 0x00,      /* 8 bytes */
	NVMF_PROP_VS = 0x08,
	NVMF_PROP_CC = 0x14,
	NVMF_PROP_CSTS = 0x1c,
};
#define NVMF_CC_EN          (1u << 0)
#define NVMF_CC_SHN(cc)     (((cc) >> 14) & 3)
#define NVMF_CSTS_RDY       (1u << 0)
#define NVMF_CSTS_CFS       (1u << 1)
#define NVMF_CSTS_SHST_SHIFT 2
#define NVMF_SHST_NORMAL    0
#define NVMF_SHST_OCCURRING 1
#define NVMF_SHST_COMPLETE  2

/* Identify CNS, features, log pages */
enum nvmf_cns {
	NVMF_CNS_NS = 0x00,
	NVMF_CNS_CTRL = 0x01,
	NVMF_CNS_ACTIVE_NS = 0x02,
	NVMF_CNS_NS_DESC = 0x03,
};
enum nvmf_fid {
	NVMF_FEAT_VWC = 0x06,
	NVMF_FEAT_NUM_QUEUES = 0x07,
	NVMF_FEAT_ASYNC_EVENT = 0x0b,
	NVMF_FEAT_KATO = 0x0f,
};
enum nvmf_lid {
	NVMF_LOG_ERROR = 0x01,
	NVMF_LOG_SMART = 0x02,
	NVMF_LOG_FW_SLOT = 0x03,
	NVMF_LOG_CHANGED_NS = 0x04,
	NVMF_LOG_CMD_EFFECTS = 0x05,
	NVMF_LOG_DISCOVERY = 0x70,
};

#define NVMF_DISC_NQN "nqn.2014-08.org.nvmexpress.discovery"
#define NVMF_NQN_PREFIX "nqn.2026-11.io.urbd:"
#define NVMF_DISC_HDR_LEN   1024
#define NVMF_DISC_ENTRY_LEN 1024

/* ---- parsed forms ----------------------------------------------------- */

struct nvmf_hdr {
	uint8_t type, flags, hlen, pdo;
	uint32_t plen;
};

/* Where things sit inside a PDU, derived from the common header. */
struct nvmf_layout {
	uint32_t hdr_len;   /* hlen + header digest */
	uint32_t pad;       /* bytes between the header digest and pdo */
	uint32_t data_len;  /* payload bytes (no digest) */
	bool ddgst;         /* a data digest follows the payload */
};

/* Limits the receiver enforces, from the connection's negotiation state. */
struct nvmf_rx_limits {
	bool ic_done;         /* ICReq seen: everything else is allowed now */
	bool hdgst, ddgst;    /* negotiated digests */
	uint32_t max_incapsule; /* bytes of in-capsule data accepted */
	uint32_t maxh2cdata;
};

/* A fatal transport error: what goes into the C2HTermReq. */
struct nvmf_fatal {
	uint16_t fes;
	uint32_t fei;
	const char *why;
};

void nvmf_parse_ch(const uint8_t *p, struct nvmf_hdr *h);
/* Validates a host PDU's common header against the limits and computes its
 * layout. 0, or -EPROTO with *f filled. */
int nvmf_check_ch(const struct nvmf_hdr *h, const struct nvmf_rx_limits *lim,
		  struct nvmf_layout *lay, struct nvmf_fatal *f);
/* Checks that need the PDU-specific header (hdr: hlen bytes). */
int nvmf_check_psh(const uint8_t *hdr, const struct nvmf_hdr *h,
		   const struct nvmf_layout *lay, struct nvmf_fatal *f);

/* encoders for controller PDUs; return the header length written
 * (digest included when hdgst) */
void nvmf_put_ch(uint8_t *p, uint8_t type, uint8_t flags, uint8_t hlen,
		 uint8_t pdo, uint32_t plen);
/* hdr has room for hlen + 4; appends the digest when hdgst */
uint32_t nvmf_finish_hdr(uint8_t *hdr, uint8_t hlen, bool hdgst);
uint32_t nvmf_put_icresp(uint8_t *p, uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata);
uint32_t nvmf_put_term(uint8_t *p, uint16_t fes, uint32_t fei,
		       const uint8_t *bad_hdr, uint32_t bad_len);
uint32_t nvmf_put_rsp(uint8_t *p, bool hdgst, uint16_t cid, uint16_t sqid,
		      uint16_t sqhd, uint16_t status, uint64_t result);
uint32_t nvmf_put_r2t(uint8_t *p, bool hdgst, uint16_t cid, uint16_t ttag,
		      uint32_t off, uint32_t len);
/* C2HData header for len bytes at off; pad is derived from hpda */
uint32_t nvmf_put_c2h_data(uint8_t *p, bool hdgst, bool ddgst, uint8_t hpda,
			   uint16_t cid, uint32_t off, uint32_t len, bool last);

uint16_t nvmf_cqe_status_field(uint16_t status); /* status word, phase 0 */

const char *nvmf_pdu_name(uint8_t type);
const char *nvmf_fes_name(uint16_t fes);
const char *nvmf_admin_name(uint8_t opc);
const char *nvmf_io_name(uint8_t opc);
const char *nvmf_fctype_name(uint8_t fct);
const char *nvmf_status_name(uint16_t status);
/* NVMe status for an errno from the volume */
uint16_t nvmf_errno_to_status(int err);

#endif
