/* Controller registers, features and the cntlid registry. */
#include "nvmf_ctrl.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* CAP: MQES 127 (0's based), CQR, TO 10 s (500 ms units), NVM command set,
 * MPSMIN = MPSMAX = 4 KiB */
uint64_t nvmf_cap(void)
{
	return (uint64_t)(NVMF_MAX_QD - 1) | (1ULL << 16) | (20ULL << 24) |
	       (1ULL << 37);
}

#define NVMF_VS_1_3 0x00010300u

uint16_t nvmf_prop_get(const struct nvmf_ctrl *c, uint32_t ofst, unsigned size,
		       uint64_t *val)
{
	unsigned want = ofst == NVMF_PROP_CAP ? 8 : 4;

	if (size != want)
		return NVMF_INVALID_FIELD | NVMF_DNR;
	switch (ofst) {
	case NVMF_PROP_CAP: *val = nvmf_cap(); return 0;
	case NVMF_PROP_VS: *val = NVMF_VS_1_3; return 0;
	case NVMF_PROP_CC: *val = c->cc; return 0;
	case NVMF_PROP_CSTS: *val = c->csts; return 0;
	default: return NVMF_INVALID_FIELD | NVMF_DNR;
	}
}

uint16_t nvmf_prop_set(struct nvmf_ctrl *c, uint32_t ofst, unsigned size,
		       uint64_t val, enum nvmf_cc_effect *eff)
{
	uint32_t old = c->cc, cc = (uint32_t)val;

	*eff = NVMF_CC_NONE;
	if (ofst != NVMF_PROP_CC || size != 4)
		return NVMF_INVALID_FIELD | NVMF_DNR; /* CC is the only writable one here */
	c->cc = cc;
	if (NVMF_CC_SHN(cc) && !NVMF_CC_SHN(old)) {
		c->csts = (c->csts & ~(3u << NVMF_CSTS_SHST_SHIFT)) |
			  (NVMF_SHST_OCCURRING << NVMF_CSTS_SHST_SHIFT);
		*eff = NVMF_CC_SHUTDOWN;
		return 0;
	}
	if ((cc & NVMF_CC_EN) && !(old & NVMF_CC_EN)) {
		c->csts = NVMF_CSTS_RDY;
		*eff = NVMF_CC_ENABLED;
	} else if (!(cc & NVMF_CC_EN) && (old & NVMF_CC_EN)) {
		c->csts = 0; /* reset: RDY clear, shutdown status normal */
		*eff = NVMF_CC_DISABLED;
	}
	return 0;
}

uint16_t nvmf_get_features(struct nvmf_ctrl *c, const uint8_t *sqe, uint64_t *res)
{
	uint32_t cdw10 = get_le32(sqe + NVMF_SQE_CDW(10));
	uint8_t fid = cdw10 & 0xff, sel = (cdw10 >> 8) & 7;

	if (sel == 3) { /* supported capabilities: none saveable or changeable per NS */
		*res = 0;
		return 0;
	}
	switch (fid) {
	case NVMF_FEAT_NUM_QUEUES:
		if (c->discovery)
			break;
		*res = (uint32_t)(c->nr_ioq - 1) | ((uint32_t)(c->nr_ioq - 1) << 16);
		if (!c->nr_ioq_set || sel == 1) /* default */
			*res = (NVMF_MAX_IOQ - 1) | ((uint32_t)(NVMF_MAX_IOQ - 1) << 16);
		return 0;
	case NVMF_FEAT_KATO:
		*res = sel == 1 ? 0 : c->kato_ms;
		return 0;
	case NVMF_FEAT_ASYNC_EVENT:
		*res = sel == 1 ? 0 : c->aec;
		return 0;
	case NVMF_FEAT_VWC:
		if (c->discovery)
			break;
		*res = 1; /* writes are volatile until a Flush */
		return 0;
	}
	return NVMF_INVALID_FIELD | NVMF_DNR;
}

uint16_t nvmf_set_features(struct nvmf_ctrl *c, const uint8_t *sqe, uint64_t *res)
{
	uint32_t cdw10 = get_le32(sqe + NVMF_SQE_CDW(10));
	uint32_t cdw11 = get_le32(sqe + NVMF_SQE_CDW(11));
	uint8_t fid = cdw10 & 0xff;

	*res = 0;
	if (cdw10 & (1u << 31))
		return NVMF_FEATURE_NOT_SAVEABLE | NVMF_DNR;
	switch (fid) {
	case NVMF_FEAT_NUM_QUEUES: {
		uint32_t nsq = (cdw11 & 0xffff) + 1, ncq = (cdw11 >> 16) + 1, n;

		if (c->discovery)
			break;
		if ((cdw11 & 0xffff) == 0xffff || (cdw11 >> 16) == 0xffff)
			return NVMF_INVALID_FIELD | NVMF_DNR;
		if (c->nr_ioq_set) /* only once after a reset; report what holds */
			return NVMF_CMD_SEQ_ERROR | NVMF_DNR;
		n = MIN(MIN(nsq, ncq), (uint32_t)NVMF_MAX_IOQ);
		c->nr_ioq = (uint16_t)n;
		c->nr_ioq_set = true;
		*res = (n - 1) | ((n - 1) << 16);
		return 0;
	}
	case NVMF_FEAT_KATO:
		c->kato_ms = cdw11;
		return 0;
	case NVMF_FEAT_ASYNC_EVENT:
		/* namespace attribute notices (bit 8) and discovery log change
		 * notices (bit 31) are what we can send */
		c->aec = cdw11 & ((1u << 8) | (1u << 31));
		return 0;
	case NVMF_FEAT_VWC:
		if (c->discovery)
			break;
		if (!(cdw11 & 1)) /* the cache cannot be turned off */
			return NVMF_INVALID_FIELD | NVMF_DNR;
		return 0;
	}
	return NVMF_INVALID_FIELD | NVMF_DNR;
}

/* ---- asynchronous events --------------------------------------------- */

/* what each event reports and which AEC bit enables it */
static const struct {
	uint8_t type, info, lid;
	uint32_t aec_bit;
} aen_def[NVMF_AEN_COUNT] = {
	[NVMF_AEN_NS_ATTR] = { 2, 0x00, NVMF_LOG_CHANGED_NS, 1u << 8 },
};

void nvmf_aen_raise(struct nvmf_ctrl *c, enum nvmf_aen ev)
{
	if (ev == NVMF_AEN_NS_ATTR)
		c->ns_changed = true;
	/* a masked event is still in its log page: the host sees this change
	 * when it reads it; no second notice (Base 1.4 section 5.2) */
	if (!(c->aec & aen_def[ev].aec_bit) || (c->aen_masked & (1u << ev)))
		return;
	c->aen_pending |= 1u << ev;
}

bool nvmf_aen_next(struct nvmf_ctrl *c, uint32_t *dw0)
{
	for (unsigned ev = 0; ev < NVMF_AEN_COUNT; ev++) {
		if (!(c->aen_pending & (1u << ev)))
			continue;
		c->aen_pending &= ~(1u << ev);
		c->aen_masked |= 1u << ev;
		*dw0 = aen_def[ev].type | (uint32_t)aen_def[ev].info << 8 |
		       (uint32_t)aen_def[ev].lid << 16;
		return true;
	}
	return false;
}

void nvmf_aen_log_read(struct nvmf_ctrl *c, uint8_t lid, bool rae)
{
	if (rae) /* Retain Asynchronous Event: the mask stays */
		return;
	for (unsigned ev = 0; ev < NVMF_AEN_COUNT; ev++)
		if (aen_def[ev].lid == lid)
			c->aen_masked &= ~(1u << ev);
}

/* ---- error log ------------------------------------------------------- */

/* The byte of the command a status points at (bits 7:0; the bit is 0),
 * 0xffff when it is not one field. */
static uint16_t err_location(uint16_t status)
{
	switch (status & ~NVMF_DNR) {
	case NVMF_INVALID_OPCODE: return 0;
	case NVMF_INVALID_NS: return 4;
	case NVMF_SGL_INVALID_OFFSET: return NVMF_SQE_SGL_ADDR_OFF;
	case NVMF_SGL_INVALID_DATA_LEN: return NVMF_SQE_SGL_LEN_OFF;
	case NVMF_SGL_INVALID_TYPE: return NVMF_SQE_SGL_ID_OFF;
	case NVMF_LBA_RANGE: return NVMF_SQE_CDW(10); /* SLBA */
	case NVMF_INVALID_LOG_PAGE: return NVMF_SQE_CDW(10); /* LID */
	default: return 0xffff;
	}
}

void nvmf_err_record(struct nvmf_ctrl *c, uint16_t qid, const uint8_t *sqe,
		     uint16_t status)
{
	struct nvmf_err_entry *e = &c->errs[c->err_count % NVMF_ERR_ENTRIES];
	uint8_t opc = sqe[0];

	memset(e, 0, sizeof(*e));
	e->count = ++c->err_count;
	e->sqid = qid;
	e->cid = get_le16(sqe + 2);
	e->status = status;
	e->ploc = err_location(status);
	if (opc != NVMF_OPC_FABRICS)
		e->nsid = get_le32(sqe + 4);
	/* the commands whose CDW10/11 is a starting LBA */
	if (qid && (opc == NVMF_IO_READ || opc == NVMF_IO_WRITE ||
		    opc == NVMF_IO_WRITE_ZEROES))
		e->lba = get_le64(sqe + NVMF_SQE_CDW(10));
}

void nvmf_err_log(const struct nvmf_ctrl *c, uint8_t *buf)
{
	uint64_t n = MIN(c->err_count, (uint64_t)NVMF_ERR_ENTRIES);

	for (uint64_t i = 0; i < n; i++) {
		const struct nvmf_err_entry *e =
			&c->errs[(c->err_count - 1 - i) % NVMF_ERR_ENTRIES];
		uint8_t *b = buf + i * 64;

		put_le64(b + 0, e->count);
		put_le16(b + 8, e->sqid);
		put_le16(b + 10, e->cid);
		put_le16(b + 12, nvmf_cqe_status_field(e->status)); /* phase tag 0 */
		put_le16(b + 14, e->ploc);
		put_le64(b + 16, e->lba);
		put_le32(b + 24, e->nsid);
	}
}

/* ---- registry ---------------------------------------------------------- */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nvmf_ctrl **reg;     /* indexed by cntlid - 1 */
static unsigned reg_cap;
static uint16_t next_cntlid = 1;

int nvmf_ctrl_register(struct nvmf_ctrl *c)
{
	int ret = -ENOSPC;

	pthread_mutex_lock(&reg_lock);
	for (unsigned tries = 0; tries < NVMF_MAX_CNTLID; tries++) {
		uint16_t id = next_cntlid;

		next_cntlid = next_cntlid >= NVMF_MAX_CNTLID ? 1 : next_cntlid + 1;
		if (id > reg_cap) {
			unsigned cap = MAX(64u, reg_cap * 2);
			struct nvmf_ctrl **n;

			cap = MIN(cap, (unsigned)NVMF_MAX_CNTLID);
			n = realloc(reg, cap * sizeof(*n));
			if (!n) {
				ret = -ENOMEM;
				break;
			}
			memset(n + reg_cap, 0, (cap - reg_cap) * sizeof(*n));
			reg = n;
			reg_cap = cap;
		}
		if (!reg[id - 1]) {
			reg[id - 1] = c;
			c->cntlid = id;
			c->registered = true;
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return ret;
}

void nvmf_ctrl_unregister(struct nvmf_ctrl *c)
{
	if (!c->registered)
		return;
	pthread_mutex_lock(&reg_lock);
	if (c->cntlid && c->cntlid <= reg_cap && reg[c->cntlid - 1] == c)
		reg[c->cntlid - 1] = NULL;
	pthread_mutex_unlock(&reg_lock);
	c->registered = false;
}

int nvmf_ctrl_lookup(uint16_t cntlid, const char *subnqn, const char *hostnqn,
		     struct nvmf_ctrl **out, struct volume **vol)
{
	struct nvmf_ctrl *c;
	int ret = -ENOENT;

	pthread_mutex_lock(&reg_lock);
	c = cntlid && cntlid <= reg_cap ? reg[cntlid - 1] : NULL;
	if (c) {
		ret = strcmp(c->subnqn, subnqn) || strcmp(c->hostnqn, hostnqn) ? -EPERM : 0;
		if (!ret && out)
			*out = c;
		if (!ret && vol)
			*vol = c->vol;
	}
	pthread_mutex_unlock(&reg_lock);
	return ret;
}
