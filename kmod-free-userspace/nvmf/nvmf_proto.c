/* NVMe/TCP PDU checks and encoders (pure: no sockets, no state). */
#include "nvmf_proto.h"

#include <errno.h>
#include <string.h>

#include "crc32c.h"
#include "util.h"

void nvmf_parse_ch(const uint8_t *p, struct nvmf_hdr *h)
{
	h->type = p[0];
	h->flags = p[1];
	h->hlen = p[2];
	h->pdo = p[3];
	h->plen = get_le32(p + 4);
}

static int fatal(struct nvmf_fatal *f, uint16_t fes, uint32_t fei, const char *why)
{
	f->fes = fes;
	f->fei = fei;
	f->why = why;
	return -EPROTO;
}

/* CapsuleCmd and H2CData: optional digests, optional padding up to pdo */
static int check_data_pdu(const struct nvmf_hdr *h, const struct nvmf_rx_limits *lim,
			  uint32_t max_data, struct nvmf_layout *lay,
			  struct nvmf_fatal *f)
{
	uint32_t hd = lim->hdgst ? NVMF_DIGEST_LEN : 0;
	uint32_t dd = lim->ddgst ? NVMF_DIGEST_LEN : 0;

	if (!!(h->flags & NVMF_F_HDGST) != lim->hdgst)
		return fatal(f, NVMF_FES_INVALID_HDR, 1,
			     "HDGST flag does not match the negotiated header digest");
	lay->hdr_len = h->hlen + hd;
	if (h->plen < lay->hdr_len)
		return fatal(f, NVMF_FES_INVALID_HDR, 4, "plen shorter than the header");
	if (h->plen == lay->hdr_len) {
		if (h->type == NVMF_PDU_H2C_DATA)
			return fatal(f, NVMF_FES_INVALID_HDR, 4, "H2CData without data");
		if (h->flags & NVMF_F_DDGST)
			return fatal(f, NVMF_FES_INVALID_HDR, 1, "DDGST flag on a PDU without data");
		return 0;
	}
	if (!!(h->flags & NVMF_F_DDGST) != lim->ddgst)
		return fatal(f, NVMF_FES_INVALID_HDR, 1,
			     "DDGST flag does not match the negotiated data digest");
	if (h->pdo < lay->hdr_len || h->pdo > h->plen)
		return fatal(f, NVMF_FES_INVALID_HDR, 3, "pdo outside the PDU");
	lay->pad = h->pdo - lay->hdr_len;
	if (h->plen - h->pdo <= dd)
		return fatal(f, NVMF_FES_INVALID_HDR, 4, "plen leaves no room for data");
	lay->data_len = h->plen - h->pdo - dd;
	lay->ddgst = dd != 0;
	if (lay->data_len > max_data)
		return fatal(f, NVMF_FES_DATA_LIMIT, 4, h->type == NVMF_PDU_CMD ?
			     "in-capsule data larger than the capsule size" :
			     "H2CData larger than MAXH2CDATA");
	return 0;
}

int nvmf_check_ch(const struct nvmf_hdr *h, const struct nvmf_rx_limits *lim,
		  struct nvmf_layout *lay, struct nvmf_fatal *f)
{
	static const uint8_t want_hlen[] = {
		[NVMF_PDU_ICREQ] = NVMF_ICREQ_HLEN, [NVMF_PDU_H2C_TERM] = NVMF_TERM_HLEN,
		[NVMF_PDU_CMD] = NVMF_CMD_HLEN, [NVMF_PDU_H2C_DATA] = NVMF_DATA_HLEN,
	};

	memset(lay, 0, sizeof(*lay));
	if (h->type >= sizeof(want_hlen) || !want_hlen[h->type])
		return fatal(f, NVMF_FES_INVALID_HDR, 0,
			     "PDU type not valid from a host");
	if (!lim->ic_done && h->type != NVMF_PDU_ICREQ && h->type != NVMF_PDU_H2C_TERM)
		return fatal(f, NVMF_FES_PDU_SEQUENCE, 0, "PDU before ICReq");
	if (lim->ic_done && h->type == NVMF_PDU_ICREQ)
		return fatal(f, NVMF_FES_PDU_SEQUENCE, 0, "second ICReq");
	if (h->hlen != want_hlen[h->type])
		return fatal(f, NVMF_FES_INVALID_HDR, 2, "hlen wrong for the PDU type");
	switch (h->type) {
	case NVMF_PDU_ICREQ:
		if (h->plen != NVMF_ICREQ_HLEN)
			return fatal(f, NVMF_FES_INVALID_HDR, 4, "ICReq plen is not 128");
		if (h->pdo)
			return fatal(f, NVMF_FES_INVALID_HDR, 3, "ICReq pdo is not 0");
		lay->hdr_len = NVMF_ICREQ_HLEN;
		return 0;
	case NVMF_PDU_H2C_TERM:
		/* never digested: the peer may be terminating because of them */
		if (h->plen < NVMF_TERM_HLEN || h->plen > NVMF_TERM_MAX_PLEN)
			return fatal(f, NVMF_FES_INVALID_HDR, 4, "H2CTermReq plen out of range");
		lay->hdr_len = NVMF_TERM_HLEN;
		lay->data_len = h->plen - NVMF_TERM_HLEN;
		return 0;
	case NVMF_PDU_CMD:
		return check_data_pdu(h, lim, lim->max_incapsule, lay, f);
	default:
		return check_data_pdu(h, lim, lim->maxh2cdata, lay, f);
	}
}

int nvmf_check_psh(const uint8_t *hdr, const struct nvmf_hdr *h,
		   const struct nvmf_layout *lay, struct nvmf_fatal *f)
{
	switch (h->type) {
	case NVMF_PDU_ICREQ:
		if (get_le16(hdr + NVMF_IC_PFV_OFF) != 0)
			return fatal(f, NVMF_FES_UNSUPPORTED, NVMF_IC_PFV_OFF,
				     "ICReq PDU format version is not 0");
		if (hdr[NVMF_ICREQ_HPDA_OFF] > NVMF_HPDA_MAX)
			return fatal(f, NVMF_FES_INVALID_HDR, NVMF_ICREQ_HPDA_OFF,
				     "ICReq HPDA above 31");
		return 0;
	case NVMF_PDU_H2C_DATA:
		if (get_le32(hdr + NVMF_DATA_LEN_OFF) != lay->data_len)
			return fatal(f, NVMF_FES_INVALID_HDR, NVMF_DATA_LEN_OFF,
				     "H2CData DATAL does not match plen");
		return 0;
	default:
		return 0;
	}
}

void nvmf_put_ch(uint8_t *p, uint8_t type, uint8_t flags, uint8_t hlen,
		 uint8_t pdo, uint32_t plen)
{
	p[0] = type;
	p[1] = flags;
	p[2] = hlen;
	p[3] = pdo;
	put_le32(p + 4, plen);
}

uint32_t nvmf_finish_hdr(uint8_t *hdr, uint8_t hlen, bool hdgst)
{
	if (!hdgst)
		return hlen;
	put_le32(hdr + hlen, crc32c(0, hdr, hlen));
	return hlen + NVMF_DIGEST_LEN;
}

uint32_t nvmf_put_icresp(uint8_t *p, uint8_t cpda, uint8_t dgst, uint32_t maxh2cdata)
{
	memset(p, 0, NVMF_ICRESP_HLEN);
	nvmf_put_ch(p, NVMF_PDU_ICRESP, 0, NVMF_ICRESP_HLEN, 0, NVMF_ICRESP_HLEN);
	put_le16(p + NVMF_IC_PFV_OFF, 0);
	p[NVMF_ICRESP_CPDA_OFF] = cpda;
	p[NVMF_IC_DGST_OFF] = dgst;
	put_le32(p + NVMF_ICRESP_MAXDATA_OFF, maxh2cdata);
	return NVMF_ICRESP_HLEN;
}

uint32_t nvmf_put_term(uint8_t *p, uint16_t fes, uint32_t fei,
		       const uint8_t *bad_hdr, uint32_t bad_len)
{
	bad_len = MIN(bad_len, NVMF_TERM_MAX_PLEN - NVMF_TERM_HLEN);
	memset(p, 0, NVMF_TERM_HLEN);
	nvmf_put_ch(p, NVMF_PDU_C2H_TERM, 0, NVMF_TERM_HLEN, 0, NVMF_TERM_HLEN + bad_len);
	put_le16(p + NVMF_TERM_FES_OFF, fes);
	put_le32(p + NVMF_TERM_FEI_OFF, fei);
	if (bad_len)
		memcpy(p + NVMF_TERM_HLEN, bad_hdr, bad_len);
	return NVMF_TERM_HLEN + bad_len;
}

uint16_t nvmf_cqe_status_field(uint16_t status)
{
	return (uint16_t)(((status & 0x7ff) << 1) | ((status & NVMF_DNR) ? 0x8000 : 0));
}

uint32_t nvmf_put_rsp(uint8_t *p, bool hdgst, uint16_t cid, uint16_t sqid,
		      uint16_t sqhd, uint16_t status, uint64_t result)
{
	uint32_t plen = NVMF_RSP_HLEN + (hdgst ? NVMF_DIGEST_LEN : 0);

	nvmf_put_ch(p, NVMF_PDU_RSP, hdgst ? NVMF_F_HDGST : 0, NVMF_RSP_HLEN, 0, plen);
	put_le64(p + 8, result);
	put_le16(p + 16, sqhd);
	put_le16(p + 18, sqid);
	put_le16(p + 20, cid);
	put_le16(p + 22, nvmf_cqe_status_field(status));
	return nvmf_finish_hdr(p, NVMF_RSP_HLEN, hdgst);
}

uint32_t nvmf_put_r2t(uint8_t *p, bool hdgst, uint16_t cid, uint16_t ttag,
		      uint32_t off, uint32_t len)
{
	uint32_t plen = NVMF_R2T_HLEN + (hdgst ? NVMF_DIGEST_LEN : 0);

	memset(p, 0, NVMF_R2T_HLEN);
	nvmf_put_ch(p, NVMF_PDU_R2T, hdgst ? NVMF_F_HDGST : 0, NVMF_R2T_HLEN, 0, plen);
	put_le16(p + NVMF_DATA_CCCID_OFF, cid);
	put_le16(p + NVMF_DATA_TTAG_OFF, ttag);
	put_le32(p + NVMF_DATA_OFFSET_OFF, off);
	put_le32(p + NVMF_DATA_LEN_OFF, len);
	return nvmf_finish_hdr(p, NVMF_R2T_HLEN, hdgst);
}

uint32_t nvmf_put_c2h_data(uint8_t *p, bool hdgst, bool ddgst, uint8_t hpda,
			   uint16_t cid, uint32_t off, uint32_t len, bool last)
{
	uint32_t hl = NVMF_DATA_HLEN + (hdgst ? NVMF_DIGEST_LEN : 0);
	uint32_t pdo = (uint32_t)align_up(hl, 4u * (hpda + 1u));
	uint8_t flags = (uint8_t)((hdgst ? NVMF_F_HDGST : 0) | (ddgst ? NVMF_F_DDGST : 0) |
				  (last ? NVMF_F_DATA_LAST : 0));

	memset(p, 0, pdo);
	nvmf_put_ch(p, NVMF_PDU_C2H_DATA, flags, NVMF_DATA_HLEN, (uint8_t)pdo,
		    pdo + len + (ddgst ? NVMF_DIGEST_LEN : 0));
	put_le16(p + NVMF_DATA_CCCID_OFF, cid);
	put_le32(p + NVMF_DATA_OFFSET_OFF, off);
	put_le32(p + NVMF_DATA_LEN_OFF, len);
	nvmf_finish_hdr(p, NVMF_DATA_HLEN, hdgst);
	return pdo;
}

/* ---- names ------------------------------------------------------------ */

const char *nvmf_pdu_name(uint8_t type)
{
	static const char *const n[] = {
		[NVMF_PDU_ICREQ] = "ICReq", [NVMF_PDU_ICRESP] = "ICResp",
		[NVMF_PDU_H2C_TERM] = "H2CTermReq", [NVMF_PDU_C2H_TERM] = "C2HTermReq",
		[NVMF_PDU_CMD] = "CapsuleCmd", [NVMF_PDU_RSP] = "CapsuleResp",
		[NVMF_PDU_H2C_DATA] = "H2CData", [NVMF_PDU_C2H_DATA] = "C2HData",
		[NVMF_PDU_R2T] = "R2T",
	};

	return type < ARRAY_SIZE(n) && n[type] ? n[type] : "unknown-PDU";
}

const char *nvmf_fes_name(uint16_t fes)
{
	switch (fes) {
	case NVMF_FES_INVALID_HDR: return "Invalid PDU Header Field";
	case NVMF_FES_PDU_SEQUENCE: return "PDU Sequence Error";
	case NVMF_FES_HDR_DIGEST: return "Header Digest Error";
	case NVMF_FES_DATA_RANGE: return "Data Transfer Out of Range";
	case NVMF_FES_DATA_LIMIT: return "Data Transfer Limit Exceeded";
	case NVMF_FES_UNSUPPORTED: return "Unsupported Parameter";
	default: return "unknown-FES";
	}
}

const char *nvmf_admin_name(uint8_t opc)
{
	switch (opc) {
	case NVMF_ADM_GET_LOG_PAGE: return "Get Log Page";
	case NVMF_ADM_IDENTIFY: return "Identify";
	case NVMF_ADM_ABORT: return "Abort";
	case NVMF_ADM_SET_FEATURES: return "Set Features";
	case NVMF_ADM_GET_FEATURES: return "Get Features";
	case NVMF_ADM_ASYNC_EVENT: return "Asynchronous Event Request";
	case NVMF_ADM_KEEP_ALIVE: return "Keep Alive";
	case NVMF_OPC_FABRICS: return "Fabrics";
	default: return "unknown-admin";
	}
}

const char *nvmf_io_name(uint8_t opc)
{
	switch (opc) {
	case NVMF_IO_FLUSH: return "Flush";
	case NVMF_IO_WRITE: return "Write";
	case NVMF_IO_READ: return "Read";
	case NVMF_IO_WRITE_ZEROES: return "Write Zeroes";
	case NVMF_IO_DSM: return "Dataset Management";
	case NVMF_OPC_FABRICS: return "Fabrics";
	default: return "unknown-io";
	}
}

const char *nvmf_fctype_name(uint8_t fct)
{
	switch (fct) {
	case NVMF_FCT_PROP_SET: return "Property Set";
	case NVMF_FCT_CONNECT: return "Connect";
	case NVMF_FCT_PROP_GET: return "Property Get";
	case NVMF_FCT_AUTH_SEND: return "Authentication Send";
	case NVMF_FCT_AUTH_RECV: return "Authentication Receive";
	case NVMF_FCT_DISCONNECT: return "Disconnect";
	default: return "unknown-fctype";
	}
}

const char *nvmf_status_name(uint16_t status)
{
	switch (status & ~NVMF_DNR) {
	case NVMF_SUCCESS: return "Successful Completion";
	case NVMF_INVALID_OPCODE: return "Invalid Command Opcode";
	case NVMF_INVALID_FIELD: return "Invalid Field in Command";
	case NVMF_DATA_XFER_ERROR: return "Data Transfer Error";
	case NVMF_INTERNAL: return "Internal Error";
	case NVMF_ABORT_SQ_DELETION: return "Command Aborted due to SQ Deletion";
	case NVMF_INVALID_NS: return "Invalid Namespace or Format";
	case NVMF_CMD_SEQ_ERROR: return "Command Sequence Error";
	case NVMF_SGL_INVALID_DATA_LEN: return "Data SGL Length Invalid";
	case NVMF_SGL_INVALID_TYPE: return "SGL Descriptor Type Invalid";
	case NVMF_SGL_INVALID_OFFSET: return "SGL Offset Invalid";
	case NVMF_TRANSIENT_TRANSPORT: return "Transient Transport Error";
	case NVMF_LBA_RANGE: return "LBA Out of Range";
	case NVMF_CAPACITY_EXCEEDED: return "Capacity Exceeded";
	case NVMF_NS_NOT_READY: return "Namespace Not Ready";
	case NVMF_INVALID_QID: return "Invalid Queue Identifier";
	case NVMF_INVALID_QSIZE: return "Invalid Queue Size";
	case NVMF_AER_LIMIT: return "Asynchronous Event Request Limit Exceeded";
	case NVMF_INVALID_LOG_PAGE: return "Invalid Log Page";
	case NVMF_FEATURE_NOT_SAVEABLE: return "Feature Identifier Not Saveable";
	case NVMF_CONNECT_INCOMPAT_FMT: return "Connect Incompatible Format";
	case NVMF_CONNECT_CTRL_BUSY: return "Connect Controller Busy";
	case NVMF_CONNECT_INVALID_PARAM: return "Connect Invalid Parameters";
	case NVMF_CONNECT_INVALID_HOST: return "Connect Invalid Host";
	default: return "unknown-status";
	}
}

uint16_t nvmf_errno_to_status(int err)
{
	switch (err) {
	case 0: return NVMF_SUCCESS;
	case ENOSPC: return NVMF_CAPACITY_EXCEEDED | NVMF_DNR;
	case EINVAL: return NVMF_INVALID_FIELD | NVMF_DNR;
	case ERANGE: return NVMF_LBA_RANGE | NVMF_DNR;
	case ENOMEM:
	case EAGAIN:
	case EBUSY: return NVMF_INTERNAL; /* retryable */
	default: return NVMF_INTERNAL | NVMF_DNR;
	}
}
