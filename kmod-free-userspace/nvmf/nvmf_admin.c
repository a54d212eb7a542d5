/* Identify data structures, log pages and the Discovery Log Page (NVMe
 * Base 1.4 section 5.15 / 5.14, NVMe-oF 1.1 section 5.3). Pure encoders. */
#include "nvmf_ctrl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "crc32c.h"
#include "log.h"
#include "util.h"

/* ASCII fields are space padded, never NUL terminated */
static void put_ascii(uint8_t *dst, size_t len, const char *s)
{
	size_t n = strlen(s);

	memset(dst, ' ', len);
	memcpy(dst, s, MIN(n, len));
}

/* Serial number: 20 hex digits of the volume UUID, stable across restarts
 * and the same on every replica, as multipath wants. */
static void put_serial(uint8_t *dst, const uint8_t *uuid)
{
	char s[21];

	for (int i = 0; i < 10; i++)
		snprintf(s + 2 * i, 3, "%02x", uuid[i]);
	put_ascii(dst, 20, s);
}

void nvmf_identify_ctrl(const struct nvmf_ctrl *c, uint16_t maxcmd, uint8_t *b)
{
	uint32_t ioccsz = (NVMF_SQE_LEN + NVMF_INCAPSULE) / 16;

	put_le16(b + 0, 0);                        /* VID: none (fabrics) */
	put_le16(b + 2, 0);                        /* SSVID */
	if (c->discovery)
		put_ascii(b + 4, 20, "urbd-discovery");
	else
		put_serial(b + 4, c->uuid);
	put_ascii(b + 24, 40, NVMF_MODEL);         /* MN */
	put_ascii(b + 64, 8, NVMF_FW_REV);         /* FR */
	b[72] = 6;                                 /* RAB */
	b[76] = c->discovery ? 0 : (1u << 1);      /* CMIC: may have several controllers */
	b[77] = NVMF_MDTS_SHIFT;                   /* MDTS, units of CAP.MPSMIN */
	put_le16(b + 78, c->cntlid);
	put_le32(b + 80, 0x00010300);              /* VER 1.3 */
	put_le32(b + 92, c->discovery ? 0 : (1u << 8)); /* OAES: NS attribute notices */
	put_le32(b + 96, 1u << 0);                 /* CTRATT: 128-bit host identifier */
	b[111] = c->discovery ? 2 : 1;             /* CNTRLTYPE: discovery / I/O */
	put_le16(b + 256, 0);                      /* OACS: no optional admin commands */
	b[258] = 3;                                /* ACL (0's based) */
	b[259] = NVMF_AERL - 1;                    /* AERL (0's based): AERs held */
	b[260] = 1u << 1;                          /* FRMW: one slot, slot 1 read-only */
	b[261] = 1u << 2;                          /* LPA: extended data for Get Log Page */
	b[262] = NVMF_ELPE;                        /* ELPE: error log entries (0's based) */
	put_le16(b + 320, NVMF_KAS_100MS);         /* KAS */
	b[512] = 0x66;                             /* SQES: 64 bytes */
	b[513] = 0x44;                             /* CQES: 16 bytes */
	put_le16(b + 514, maxcmd);                 /* MAXCMD */
	put_le32(b + 516, c->discovery ? 0 : 1);   /* NN */
	/* ONCS: Dataset Management, Write Zeroes */
	put_le16(b + 520, c->discovery ? 0 : (1u << 2) | (1u << 3));
	b[525] = c->discovery ? 0 : 1;             /* VWC present: Flush matters */
	/* SGLS: supported (no alignment), offsets in SGL data blocks (in-capsule) */
	put_le32(b + 536, (1u << 0) | (1u << 20));
	snprintf((char *)b + 768, 256, "%s", c->subnqn); /* SUBNQN, NUL padded */
	/* NVMe-oF attributes */
	put_le32(b + 1792, ioccsz);                /* IOCCSZ, 16-byte units */
	put_le32(b + 1796, NVMF_CQE_LEN / 16);     /* IORCSZ */
	put_le16(b + 1800, 0);                     /* ICDOFF */
	b[1802] = 0;                               /* FCATT: dynamic controller model */
	b[1803] = 1;                               /* MSDBD: one SGL descriptor */
	/* PSD0: one power state; fields left zero (not reported) */
}

void nvmf_identify_ns(const struct nvmf_ns_info *ns, uint8_t *b)
{
	put_le64(b + 0, ns->nsze);                 /* NSZE */
	put_le64(b + 8, ns->nsze);                 /* NCAP */
	put_le64(b + 16, ns->nsze);                /* NUSE */
	b[24] = 0;                                 /* NSFEAT */
	b[25] = 0;                                 /* NLBAF: one format (0's based) */
	b[26] = 0;                                 /* FLBAS: format 0, no metadata */
	b[30] = 1;                                 /* NMIC: may be shared by controllers */
	b[33] = 1;                                 /* DLFEAT: deallocated reads as zeroes */
	memcpy(b + 104, ns->uuid, 16);             /* NGUID */
	b[128 + 2] = (uint8_t)ns->lba_shift;       /* LBAF0: LBADS, MS 0, RP 0 */
}

void nvmf_identify_active_ns(uint32_t after_nsid, uint8_t *b)
{
	if (after_nsid < 1)
		put_le32(b, 1);
}

void nvmf_identify_ns_desc(const struct nvmf_ns_info *ns, uint8_t *b)
{
	b[0] = 2;  /* NIDT: NGUID */
	b[1] = 16;
	memcpy(b + 4, ns->uuid, 16);
	b[20] = 3; /* NIDT: UUID */
	b[21] = 16;
	memcpy(b + 24, ns->uuid, 16);
}

uint16_t nvmf_identify(const struct nvmf_ctrl *c, const struct nvmf_ns_info *ns,
		       const uint8_t *sqe, uint8_t *buf, uint32_t len)
{
	uint8_t cns = get_le32(sqe + NVMF_SQE_CDW(10)) & 0xff;
	uint32_t nsid = get_le32(sqe + 4);
	uint8_t tmp[4096] = { 0 };

	if (len < sizeof(tmp))
		return NVMF_SGL_INVALID_DATA_LEN | NVMF_DNR;
	switch (cns) {
	case NVMF_CNS_CTRL:
		nvmf_identify_ctrl(c, NVMF_MAX_QD, tmp);
		break;
	case NVMF_CNS_NS:
	case NVMF_CNS_NS_DESC:
		if (c->discovery)
			return NVMF_INVALID_FIELD | NVMF_DNR;
		if (nsid != 1)
			return NVMF_INVALID_NS | NVMF_DNR;
		if (cns == NVMF_CNS_NS)
			nvmf_identify_ns(ns, tmp);
		else
			nvmf_identify_ns_desc(ns, tmp);
		break;
	case NVMF_CNS_ACTIVE_NS:
		if (c->discovery)
			return NVMF_INVALID_FIELD | NVMF_DNR;
		if (nsid >= 0xfffffffe)
			return NVMF_INVALID_NS | NVMF_DNR;
		nvmf_identify_active_ns(nsid, tmp);
		break;
	default:
		log_rl(LOG_LVL_WARN, "nvmf", "controller %u (%s): Identify CNS 0x%02x "
		       "(nsid %u) not supported", c->cntlid, c->subnqn, cns, nsid);
		return NVMF_INVALID_FIELD | NVMF_DNR;
	}
	memcpy(buf, tmp, sizeof(tmp));
	return 0;
}

/* ---- log pages --------------------------------------------------------- */

uint32_t nvmf_log_page_len(const uint8_t *sqe)
{
	uint32_t numdl = get_le32(sqe + NVMF_SQE_CDW(10)) >> 16;
	uint32_t numdu = get_le32(sqe + NVMF_SQE_CDW(11)) & 0xffff;
	uint64_t numd = (((uint64_t)numdu << 16) | numdl) + 1;

	return numd * 4 > 0xffffffffULL ? 0xffffffffu : (uint32_t)(numd * 4);
}

/* 128-bit little-endian counter fields of the SMART log */
static void put_le128(uint8_t *p, uint64_t v)
{
	put_le64(p, v);
	put_le64(p + 8, 0);
}

static void smart_log(const struct nvmf_ns_info *ns, uint8_t *b)
{
	b[0] = 0;                                   /* critical warning */
	put_le16(b + 1, 273 + 25);                  /* composite temperature, K */
	b[3] = 100;                                 /* available spare % */
	b[4] = 10;                                  /* spare threshold */
	/* data units: thousands of 512-byte units, rounded up */
	put_le128(b + 32, (ns->bytes_read / 512 + 999) / 1000);
	put_le128(b + 48, (ns->bytes_written / 512 + 999) / 1000);
	put_le128(b + 64, ns->reads);
	put_le128(b + 80, ns->writes);
}

uint16_t nvmf_get_log_page(struct nvmf_ctrl *c, const struct nvmf_ns_info *ns,
			   const uint8_t *sqe, const uint8_t *disc_log,
			   uint32_t disc_len, uint8_t *buf, uint32_t len)
{
	uint32_t cdw10 = get_le32(sqe + NVMF_SQE_CDW(10));
	uint8_t lid = cdw10 & 0xff;
	bool rae = cdw10 & (1u << 15);
	uint64_t lpo = get_le64(sqe + NVMF_SQE_CDW(12));
	uint8_t page[4096] = { 0 };
	const uint8_t *src = page;
	uint32_t size;

	_Static_assert(NVMF_ERR_ENTRIES * 64 <= sizeof(page), "error log fits the page");

	if (lpo & 3)
		return NVMF_INVALID_FIELD | NVMF_DNR;
	switch (lid) {
	case NVMF_LOG_DISCOVERY:
		if (!c->discovery)
			return NVMF_INVALID_LOG_PAGE | NVMF_DNR;
		src = disc_log;
		size = disc_len;
		break;
	case NVMF_LOG_ERROR:
		nvmf_err_log(c, page);
		size = NVMF_ERR_ENTRIES * 64;
		break;
	case NVMF_LOG_SMART:
		if (c->discovery)
			return NVMF_INVALID_LOG_PAGE | NVMF_DNR;
		smart_log(ns, page);
		size = 512;
		break;
	case NVMF_LOG_FW_SLOT:
		if (c->discovery)
			return NVMF_INVALID_LOG_PAGE | NVMF_DNR;
		page[0] = 1; /* active slot 1 */
		put_ascii(page + 8, 8, NVMF_FW_REV);
		size = 512;
		break;
	case NVMF_LOG_CHANGED_NS:
		if (c->discovery)
			return NVMF_INVALID_LOG_PAGE | NVMF_DNR;
		if (c->ns_changed)
			put_le32(page, 1); /* our one namespace */
		size = 4096;
		break;
	default:
		return NVMF_INVALID_LOG_PAGE | NVMF_DNR;
	}
	memset(buf, 0, len);
	if (lpo > size)
		return NVMF_INVALID_FIELD | NVMF_DNR;
	/* read without Retain Asynchronous Event: the page's events are
	 * cleared and may be reported again */
	if (lid == NVMF_LOG_CHANGED_NS && !rae)
		c->ns_changed = false;
	nvmf_aen_log_read(c, lid, rae);
	memcpy(buf, src + lpo, MIN((uint64_t)len, size - lpo));
	return 0;
}

bool nvmf_disc_port_is_wildcard(const struct nvmf_disc_port *port)
{
	return !strcmp(port->traddr, "0.0.0.0") || !strcmp(port->traddr, "::");
}

void nvmf_disc_port_local(const struct nvmf_disc_port *listen,
			  const struct sockaddr *local, struct nvmf_disc_port *out)
{
	*out = *listen;
	if (!nvmf_disc_port_is_wildcard(listen))
		return;
	if (local->sa_family == AF_INET) {
		out->ipv6 = false;
		inet_ntop(AF_INET, &((const struct sockaddr_in *)local)->sin_addr,
			  out->traddr, sizeof(out->traddr));
	} else if (local->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)local)->sin6_addr;

		out->ipv6 = !IN6_IS_ADDR_V4MAPPED(a);
		if (out->ipv6)
			inet_ntop(AF_INET6, a, out->traddr, sizeof(out->traddr));
		else
			inet_ntop(AF_INET, a->s6_addr + 12, out->traddr, sizeof(out->traddr));
	}
}

uint8_t *nvmf_disc_log_build(const struct nvmf_disc_port *port, char **names,
			     size_t n, uint32_t *len)
{
	uint32_t total = NVMF_DISC_HDR_LEN + (uint32_t)n * NVMF_DISC_ENTRY_LEN;
	uint8_t *b = calloc(1, total);
	uint32_t gen = 0;

	if (!b)
		return NULL;
	/* GENCTR changes when the set of subsystems does, so a host that
	 * reads the log in pieces notices a change between the reads */
	for (size_t i = 0; i < n; i++)
		gen = crc32c(gen, names[i], strlen(names[i]) + 1);
	put_le64(b + 0, (uint64_t)gen + n);
	put_le64(b + 8, n);                         /* NUMREC */
	put_le16(b + 16, 0);                        /* RECFMT */
	for (size_t i = 0; i < n; i++) {
		uint8_t *e = b + NVMF_DISC_HDR_LEN + i * NVMF_DISC_ENTRY_LEN;

		e[0] = 3;                           /* TRTYPE: TCP */
		e[1] = port->ipv6 ? 2 : 1;          /* ADRFAM */
		e[2] = 2;                           /* SUBTYPE: NVM subsystem */
		e[3] = 2;                           /* TREQ: secure channel not required */
		put_le16(e + 4, 1);                 /* PORTID */
		put_le16(e + 6, 0xffff);            /* CNTLID: dynamic */
		put_le16(e + 8, 32);                /* ASQSZ */
		put_ascii(e + 32, 32, port->trsvcid);
		snprintf((char *)e + 256, 256, "%s%s", NVMF_NQN_PREFIX, names[i]);
		put_ascii(e + 512, 256, port->traddr);
		e[768] = 0;                         /* TSAS: SECTYPE none */
	}
	*len = total;
	return b;
}
