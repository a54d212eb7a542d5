/* Commands on an NVMe/TCP queue: slots, data transfer set-up (in-capsule,
 * R2T/H2CData, C2HData), Fabrics (Connect, Property Get/Set, Disconnect),
 * admin dispatch and completion.
 *
 * A command's life: DATA_IN (in-capsule data arriving) -> [WAIT_BUF] ->
 * [R2T: H2CData arriving] -> EXEC -> RESPONDING (response queued; the slot
 * is freed once it is sent). Every check runs before any data moves, so a
 * refused write never gets an R2T. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "iobuf.h"
#include "log.h"
#include "nvmf_conn.h"
#include "store.h"
#include "util.h"

struct nvmf_cmd *nvmf_cmd_alloc(struct nvmf_conn *q)
{
	struct nvmf_cmd *cmd = &q->slots[q->free_slots[--q->n_free]];
	uint16_t ttag = cmd->ttag;

	memset(cmd, 0, offsetof(struct nvmf_cmd, out_data));
	cmd->q = q;
	cmd->ttag = ttag;
	cmd->state = NVMF_CMD_EXEC;
	return cmd;
}

void nvmf_cmd_free(struct nvmf_cmd *cmd)
{
	struct nvmf_conn *q = cmd->q;

	if (cmd->state == NVMF_CMD_FREE)
		return;
	if (cmd->buf) {
		q->buffered -= cmd->buf_len;
		iobuf_put(cmd->buf, cmd->buf_len);
		cmd->buf = NULL;
	}
	cmd->state = NVMF_CMD_FREE;
	q->free_slots[q->n_free++] = cmd->ttag;
}

static void rsp_release(struct nvmf_out *o)
{
	struct nvmf_cmd *cmd = container_of(o, struct nvmf_cmd, out_rsp);
	struct nvmf_conn *q = cmd->q;

	nvmf_cmd_free(cmd);
	if (q->state == NVMF_CONN_LIVE)
		nvmf_cmd_kick_waiters(q);
}

void nvmf_cmd_complete(struct nvmf_cmd *cmd, uint16_t status, uint64_t result)
{
	struct nvmf_conn *q = cmd->q;
	uint8_t opc = cmd->sqe[0];

	q->outstanding--;
	if (q->state == NVMF_CONN_CLOSING || q->state == NVMF_CONN_TERMINATING) {
		nvmf_cmd_free(cmd);
		return;
	}
	if (status && (status & ~NVMF_DNR) != NVMF_ABORT_SQ_DELETION && q->ctrl)
		nvmf_err_record(q->ctrl, q->qid, cmd->sqe, status);
	if (status && (status & ~NVMF_DNR) != NVMF_ABORT_SQ_DELETION)
		log_rl(LOG_LVL_WARN, "nvmf", "%s qid %u cid %u: %s%s%s: %s (0x%03x)",
		       q->peer, q->qid, cmd->cid,
		       q->qid ? nvmf_io_name(opc) : nvmf_admin_name(opc),
		       opc == NVMF_OPC_FABRICS ? " " : "",
		       opc == NVMF_OPC_FABRICS ? nvmf_fctype_name(cmd->sqe[4]) : "",
		       nvmf_status_name(status), status & 0x7ff);
	cmd->state = NVMF_CMD_RESPONDING;
	memset(&cmd->out_data, 0, sizeof(cmd->out_data));
	if (!status && cmd->dir == 2 && cmd->xfer_len) {
		struct nvmf_out *o = &cmd->out_data;

		o->hdr = cmd->data_hdr;
		o->hdr_len = nvmf_put_c2h_data(cmd->data_hdr, q->hdgst, q->ddgst, q->hpda,
					       cmd->cid, 0, cmd->xfer_len, true);
		o->data = cmd->buf;
		o->data_len = cmd->xfer_len;
		if (q->ddgst) {
			put_le32(o->trl, crc32c(0, cmd->buf, cmd->xfer_len));
			o->trl_len = NVMF_DIGEST_LEN;
		}
		nvmf_conn_enqueue(q, o);
	}
	memset(&cmd->out_rsp, 0, sizeof(cmd->out_rsp));
	cmd->out_rsp.hdr = cmd->rsp_hdr;
	cmd->out_rsp.hdr_len = nvmf_put_rsp(cmd->rsp_hdr, q->hdgst, cmd->cid, q->qid,
					    q->sqhd, status, result);
	cmd->out_rsp.release = rsp_release;
	nvmf_conn_enqueue(q, &cmd->out_rsp);
	nvmf_conn_send(q);
}

/* ---- controllers ------------------------------------------------------ */

static void abort_aers(struct nvmf_ctrl *c)
{
	while (c->n_aer) {
		struct nvmf_cmd *cmd = c->aer[--c->n_aer];

		nvmf_cmd_complete(cmd, NVMF_ABORT_SQ_DELETION, 0);
	}
}

/* Completes held AERs with the events that wait for one (oldest AER
 * first). On the controller's reactor. */
void nvmf_ctrl_post_aens(struct nvmf_ctrl *c)
{
	uint32_t dw0;

	while (c->n_aer && c->admin && c->admin->state == NVMF_CONN_LIVE &&
	       nvmf_aen_next(c, &dw0)) {
		struct nvmf_cmd *cmd = c->aer[0];

		memmove(c->aer, c->aer + 1, --c->n_aer * sizeof(c->aer[0]));
		log_info("nvmf", "controller %u (%s): asynchronous event 0x%06x to host %s",
			 c->cntlid, c->subnqn, dw0, c->hostnqn);
		nvmf_cmd_complete(cmd, 0, dw0);
	}
}

/* On the controller's reactor: no new queues attach; I/O queues close. */
void nvmf_ctrl_teardown(struct nvmf_ctrl *c, const char *why)
{
	nvmf_ctrl_unregister(c);
	c->n_aer = 0; /* their slots belong to the closing admin queue */
	for (unsigned i = 1; i <= NVMF_MAX_IOQ; i++)
		if (c->ioq[i])
			nvmf_conn_close(c->ioq[i], why);
}

void nvmf_conn_detach(struct nvmf_conn *q)
{
	struct nvmf_ctrl *c = q->ctrl;

	if (!c)
		return;
	if (c->admin == q) {
		nvmf_ctrl_teardown(c, "admin queue closed");
		c->admin = NULL;
	} else if (q->qid <= NVMF_MAX_IOQ && c->ioq[q->qid] == q) {
		c->ioq[q->qid] = NULL;
	}
	q->ctrl = NULL;
	if (--c->refs == 0) {
		log_info("nvmf", "controller %u (%s, host %s) freed", c->cntlid,
			 c->subnqn, c->hostnqn);
		free(c);
	}
}

/* ---- Fabrics Connect ------------------------------------------------ */

#define IPO_DATA(off) ((1u << 16) | (off))   /* Connect Invalid Parameters: */
#define IPO_SQE(off) (off)                  /* where the bad field is */

static int connect_strings(const uint8_t *d, char *subnqn, char *hostnqn)
{
	const char *s = (const char *)d + NVMF_CD_SUBNQN_OFF;
	const char *h = (const char *)d + NVMF_CD_HOSTNQN_OFF;
	size_t sl = strnlen(s, 256), hl = strnlen(h, 256);

	if (sl > NVMF_NQN_MAX || sl == 0)
		return NVMF_CD_SUBNQN_OFF;
	if (hl > NVMF_NQN_MAX || hl == 0)
		return NVMF_CD_HOSTNQN_OFF;
	memcpy(subnqn, s, sl);
	subnqn[sl] = '\0';
	memcpy(hostnqn, h, hl);
	hostnqn[hl] = '\0';
	return 0;
}

static struct nvmf_ctrl *ctrl_new(struct nvmf_conn *q, const uint8_t *sqe,
				  const uint8_t *d, const char *subnqn,
				  const char *hostnqn)
{
	struct nvmf_ctrl *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	snprintf(c->subnqn, sizeof(c->subnqn), "%s", subnqn);
	snprintf(c->hostnqn, sizeof(c->hostnqn), "%s", hostnqn);
	memcpy(c->hostid, d + NVMF_CD_HOSTID_OFF, 16);
	c->kato_ms = get_le32(sqe + NVMF_CONNECT_KATO_OFF);
	c->last_ka_ns = now_ns();
	c->nr_ioq = NVMF_MAX_IOQ;
	c->vol = q->vol;
	c->discovery = !q->vol;
	if (q->vol)
		memcpy(c->uuid, q->vol->sv->meta.uuid.b, 16);
	if (nvmf_ctrl_register(c) < 0) {
		free(c);
		return NULL;
	}
	c->admin = q;
	c->refs = 1;
	q->ctrl = c;
	return c;
}

/* runs on the acceptor: validates, then moves to the volume's reactor */
static void fabrics_connect(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	const uint8_t *s = cmd->sqe;
	uint16_t qid = get_le16(s + NVMF_CONNECT_QID_OFF);
	uint16_t sqsize = get_le16(s + NVMF_CONNECT_SQSIZE_OFF);
	char subnqn[NVMF_NQN_MAX + 1], hostnqn[NVMF_NQN_MAX + 1];
	const struct nbd_export_ops *ops;
	struct volume *vol;
	void *ctx;
	int bad;

	if (get_le16(s + NVMF_CONNECT_RECFMT_OFF) != 0) {
		nvmf_cmd_complete(cmd, NVMF_CONNECT_INCOMPAT_FMT | NVMF_DNR, 0);
		return;
	}
	if (!cmd->buf || cmd->xfer_len < NVMF_CONNECT_DATA_LEN) {
		log_warn("nvmf", "%s: Connect without its 1024 bytes of in-capsule data",
			 q->peer);
		nvmf_cmd_complete(cmd, NVMF_SGL_INVALID_DATA_LEN | NVMF_DNR, 0);
		return;
	}
	bad = connect_strings(cmd->buf, subnqn, hostnqn);
	if (bad) {
		nvmf_cmd_complete(cmd, NVMF_CONNECT_INVALID_PARAM | NVMF_DNR, IPO_DATA(bad));
		return;
	}
	if (sqsize == 0 || sqsize >= NVMF_MAX_QD) {
		nvmf_cmd_complete(cmd, NVMF_CONNECT_INVALID_PARAM | NVMF_DNR,
				  IPO_SQE(NVMF_CONNECT_SQSIZE_OFF));
		return;
	}
	if (strcmp(subnqn, NVMF_DISC_NQN) == 0) {
		if (qid != 0) {
			nvmf_cmd_complete(cmd, NVMF_CONNECT_INVALID_PARAM | NVMF_DNR,
					  IPO_SQE(NVMF_CONNECT_QID_OFF));
			return;
		}
		q->qid = 0;
		q->sqsize = sqsize + 1u;
		if (!ctrl_new(q, cmd->sqe, cmd->buf, subnqn, hostnqn)) {
			nvmf_cmd_complete(cmd, NVMF_CONNECT_CTRL_BUSY, 0);
			return;
		}
		nvmf_conn_set_state(q, NVMF_CONN_LIVE);
		log_info("nvmf", "%s: discovery controller %u for host %s", q->peer,
			 q->ctrl->cntlid, hostnqn);
		nvmf_cmd_complete(cmd, 0, q->ctrl->cntlid);
		return;
	}
	ops = nvmf_server_ops(q->srv, &ctx);
	vol = strncmp(subnqn, NVMF_NQN_PREFIX, strlen(NVMF_NQN_PREFIX)) == 0 &&
	      subnqn[strlen(NVMF_NQN_PREFIX)] ?
	      ops->get(ctx, subnqn + strlen(NVMF_NQN_PREFIX)) : NULL;
	if (!vol) {
		log_warn("nvmf", "%s: Connect to unknown subsystem %s", q->peer, subnqn);
		nvmf_cmd_complete(cmd, NVMF_CONNECT_INVALID_PARAM | NVMF_DNR,
				  IPO_DATA(NVMF_CD_SUBNQN_OFF));
		return;
	}
	if (qid > 0 && nvmf_ctrl_lookup(get_le16(cmd->buf + NVMF_CD_CNTLID_OFF), subnqn,
					hostnqn, NULL, NULL) < 0) {
		ops->put(ctx, vol);
		nvmf_cmd_complete(cmd, NVMF_CONNECT_INVALID_PARAM | NVMF_DNR,
				  IPO_DATA(NVMF_CD_CNTLID_OFF));
		return;
	}
	q->vol = vol;
	q->qid = qid;
	q->sqsize = sqsize + 1u;
	q->connect_cmd = cmd;
	nvmf_conn_set_state(q, NVMF_CONN_MOVING);
	nvmf_conn_handover(q);
}

/* on the volume's reactor, where controllers of this volume live */
void nvmf_cmd_connect_adopted(struct nvmf_conn *q)
{
	struct nvmf_cmd *cmd = q->connect_cmd;
	char subnqn[NVMF_NQN_MAX + 1], hostnqn[NVMF_NQN_MAX + 1];
	struct nvmf_ctrl *c = NULL;
	struct volume *owner = NULL;

	q->connect_cmd = NULL;
	connect_strings(cmd->buf, subnqn, hostnqn);
	if (q->qid == 0) {
		c = ctrl_new(q, cmd->sqe, cmd->buf, subnqn, hostnqn);
		if (!c) {
			nvmf_conn_set_state(q, NVMF_CONN_CONNECT);
			nvmf_cmd_complete(cmd, NVMF_CONNECT_CTRL_BUSY, 0);
			return;
		}
		nvmf_conn_set_state(q, NVMF_CONN_LIVE);
		log_info("nvmf", "%s: controller %u for host %s on volume %s (reactor %d, "
			 "kato %u ms, sq %u)", q->peer, c->cntlid, hostnqn, q->vol->name,
			 reactor_id(q->r), c->kato_ms, q->sqsize);
		nvmf_cmd_complete(cmd, 0, c->cntlid);
		return;
	}
	if (nvmf_ctrl_lookup(get_le16(cmd->buf + NVMF_CD_CNTLID_OFF), subnqn, hostnqn,
			     &c, &owner) < 0 || owner != q->vol) {
		nvmf_conn_set_state(q, NVMF_CONN_CONNECT);
		nvmf_cmd_complete(cmd, NVMF_CONNECT_INVALID_PARAM | NVMF_DNR,
				  IPO_DATA(NVMF_CD_CNTLID_OFF));
		return;
	}
	if (q->qid > c->nr_ioq || c->ioq[q->qid]) {
		nvmf_conn_set_state(q, NVMF_CONN_CONNECT);
		nvmf_cmd_complete(cmd, NVMF_CONNECT_INVALID_PARAM | NVMF_DNR,
				  IPO_SQE(NVMF_CONNECT_QID_OFF));
		return;
	}
	c->ioq[q->qid] = q;
	c->refs++;
	q->ctrl = c;
	nvmf_conn_set_state(q, NVMF_CONN_LIVE);
	log_info("nvmf", "%s: I/O queue %u of controller %u (sq %u)", q->peer, q->qid,
		 c->cntlid, q->sqsize);
	nvmf_cmd_complete(cmd, 0, c->cntlid);
}

/* ---- Fabrics on a live queue; admin commands --------------------------- */

static void shn_flush_done(struct vol_io *io, int res)
{
	struct nvmf_conn *q = container_of(io, struct nvmf_conn, shn_io);

	q->inflight--;
	nvmf_conn_hold(q);
	if (q->ctrl) {
		q->ctrl->csts = (q->ctrl->csts & ~(3u << NVMF_CSTS_SHST_SHIFT)) |
				(NVMF_SHST_COMPLETE << NVMF_CSTS_SHST_SHIFT);
		if (res < 0)
			log_err("nvmf", "%s: flush on shutdown: %s", q->peer, strerror(-res));
	}
	nvmf_conn_unhold(q);
}

static void prop_set(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	struct nvmf_ctrl *c = q->ctrl;
	enum nvmf_cc_effect eff;
	uint16_t st = nvmf_prop_set(c, get_le32(cmd->sqe + NVMF_PROP_OFST_OFF),
				    (cmd->sqe[NVMF_PROP_ATTRIB_OFF] & 7) ? 8 : 4,
				    get_le64(cmd->sqe + NVMF_PROP_VALUE_OFF), &eff);

	nvmf_cmd_complete(cmd, st, 0);
	if (eff == NVMF_CC_DISABLED || eff == NVMF_CC_SHUTDOWN)
		abort_aers(c);
	if (eff == NVMF_CC_DISABLED) { /* a reset: events start afresh */
		c->nr_ioq_set = false;
		c->aen_pending = c->aen_masked = 0;
	}
	if (eff == NVMF_CC_SHUTDOWN) {
		if (!c->vol) {
			c->csts = (c->csts & ~(3u << NVMF_CSTS_SHST_SHIFT)) |
				  (NVMF_SHST_COMPLETE << NVMF_CSTS_SHST_SHIFT);
			return;
		}
		/* SHST says complete only once every completed write is durable */
		memset(&q->shn_io, 0, sizeof(q->shn_io));
		q->shn_io.op = VOL_FLUSH;
		q->shn_io.done = shn_flush_done;
		q->inflight++;
		volume_submit(q->vol, &q->shn_io);
	}
}

static void fabrics_live(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	uint8_t fct = cmd->sqe[NVMF_SQE_FCTYPE_OFF];
	uint64_t val = 0;
	uint16_t st;

	switch (fct) {
	case NVMF_FCT_PROP_GET:
		if (q->qid)
			break;
		st = nvmf_prop_get(q->ctrl, get_le32(cmd->sqe + NVMF_PROP_OFST_OFF),
				   (cmd->sqe[NVMF_PROP_ATTRIB_OFF] & 7) ? 8 : 4, &val);
		nvmf_cmd_complete(cmd, st, val);
		return;
	case NVMF_FCT_PROP_SET:
		if (q->qid)
			break;
		prop_set(q, cmd);
		return;
	case NVMF_FCT_CONNECT:
		nvmf_cmd_complete(cmd, NVMF_CMD_SEQ_ERROR | NVMF_DNR, 0);
		return;
	case NVMF_FCT_DISCONNECT:
		q->disconnect = true;
		nvmf_cmd_complete(cmd, 0, 0);
		return;
	}
	nvmf_cmd_complete(cmd, NVMF_INVALID_FIELD | NVMF_DNR, 0);
}

static void ns_info(struct nvmf_conn *q, struct nvmf_ns_info *ns)
{
	struct volume *v = q->vol;

	memset(ns, 0, sizeof(*ns));
	if (!v)
		return;
	ns->lba_shift = v->sv->meta.block_size == 4096 ? 12 : 9;
	ns->nsze = v->size >> ns->lba_shift;
	memcpy(ns->uuid, v->sv->meta.uuid.b, 16);
	ns->bytes_read = v->stats.bytes_read;
	ns->bytes_written = v->stats.bytes_written;
	ns->reads = v->stats.reads;
	ns->writes = v->stats.writes;
}

static void admin_exec(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	struct nvmf_ctrl *c = q->ctrl;
	struct nvmf_ns_info ns;
	uint64_t res = 0;
	uint16_t st;

	ns_info(q, &ns);
	switch (cmd->sqe[0]) {
	case NVMF_ADM_IDENTIFY:
		st = nvmf_identify(c, &ns, cmd->sqe, cmd->buf, cmd->xfer_len);
		break;
	case NVMF_ADM_GET_LOG_PAGE: {
		uint8_t *disc = NULL;
		uint32_t disc_len = 0;

		if (c->discovery && (get_le32(cmd->sqe + NVMF_SQE_CDW(10)) & 0xff) ==
		    NVMF_LOG_DISCOVERY && !(disc = nvmf_server_disc_log(q->srv, q->fd, &disc_len))) {
			st = NVMF_INTERNAL;
			break;
		}
		st = nvmf_get_log_page(c, &ns, cmd->sqe, disc, disc_len, cmd->buf,
				       cmd->xfer_len);
		free(disc);
		break;
	}
	case NVMF_ADM_GET_FEATURES:
		st = nvmf_get_features(c, cmd->sqe, &res);
		break;
	case NVMF_ADM_SET_FEATURES:
		st = nvmf_set_features(c, cmd->sqe, &res);
		break;
	case NVMF_ADM_KEEP_ALIVE:
		c->last_ka_ns = now_ns();
		st = 0;
		break;
	case NVMF_ADM_ABORT:
		st = 0;
		res = 1; /* not aborted: commands here are short */
		break;
	case NVMF_ADM_ASYNC_EVENT:
		if (c->n_aer >= NVMF_AERL) {
			st = NVMF_AER_LIMIT;
			break;
		}
		c->aer[c->n_aer++] = cmd; /* held until an event or shutdown */
		nvmf_ctrl_post_aens(c);   /* an event may be waiting for it */
		return;
	default:
		st = NVMF_INVALID_OPCODE | NVMF_DNR;
		break;
	}
	nvmf_cmd_complete(cmd, st, res);
}

static uint16_t admin_prepare(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	switch (cmd->sqe[0]) {
	case NVMF_ADM_IDENTIFY:
		return cmd->xfer_len >= 4096 && cmd->dir == 2 ? 0 :
		       NVMF_SGL_INVALID_DATA_LEN | NVMF_DNR;
	case NVMF_ADM_GET_LOG_PAGE:
		return cmd->xfer_len && nvmf_log_page_len(cmd->sqe) == cmd->xfer_len ? 0 :
		       NVMF_SGL_INVALID_DATA_LEN | NVMF_DNR;
	default:
		return 0;
	}
}

/* ---- start: SGL checks, buffers, R2T -------------------------------- */

static void exec(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	cmd->state = NVMF_CMD_EXEC;
	if (cmd->sqe[0] == NVMF_OPC_FABRICS)
		fabrics_live(q, cmd);
	else if (q->qid)
		nvmf_io_exec(q, cmd);
	else
		admin_exec(q, cmd);
}

static void send_r2t(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	struct nvmf_out *o = &cmd->out_data;

	cmd->state = NVMF_CMD_R2T;
	memset(o, 0, sizeof(*o));
	o->hdr = cmd->data_hdr;
	o->hdr_len = nvmf_put_r2t(cmd->data_hdr, q->hdgst, cmd->cid, cmd->ttag, 0,
				  cmd->xfer_len);
	nvmf_conn_enqueue(q, o);
	nvmf_conn_send(q);
}

/* false: over the queue's buffer budget, the command waits */
static bool get_buffer(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	if (q->buffered && q->buffered + cmd->xfer_len > NVMF_MAX_BUFFERED)
		return false;
	cmd->buf = iobuf_get(cmd->xfer_len);
	if (!cmd->buf)
		return false;
	cmd->buf_len = cmd->xfer_len;
	q->buffered += cmd->buf_len;
	if (cmd->dir == 2 && !q->qid)
		memset(cmd->buf, 0, cmd->buf_len); /* admin data: never stale bytes */
	return true;
}

static void buffered_go(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	if (cmd->dir == 1)
		send_r2t(q, cmd);
	else
		exec(q, cmd);
}

void nvmf_cmd_kick_waiters(struct nvmf_conn *q)
{
	while (q->wait_head && get_buffer(q, q->wait_head)) {
		struct nvmf_cmd *cmd = q->wait_head;

		q->wait_head = cmd->wnext;
		if (!q->wait_head)
			q->wait_tail = &q->wait_head;
		buffered_go(q, cmd);
	}
}

static uint16_t setup_xfer(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	const uint8_t *s = cmd->sqe;
	uint8_t opc = s[0];
	uint8_t dir = opc == NVMF_OPC_FABRICS ? (s[NVMF_SQE_FCTYPE_OFF] & 3) : (opc & 3);
	uint8_t id = s[NVMF_SQE_SGL_ID_OFF];
	uint32_t len = get_le32(s + NVMF_SQE_SGL_LEN_OFF);

	if (dir == 3)
		return NVMF_INVALID_FIELD | NVMF_DNR;
	cmd->dir = dir;
	if ((s[1] & NVMF_PSDT_MASK) != NVMF_PSDT_SGL && (dir || cmd->buf))
		return NVMF_INVALID_FIELD | NVMF_DNR;
	if (cmd->buf) { /* in-capsule data */
		if (dir != 1)
			return NVMF_INVALID_FIELD | NVMF_DNR;
		if (id != NVMF_SGL_INCAPSULE)
			return NVMF_SGL_INVALID_TYPE | NVMF_DNR;
		if (get_le64(s + NVMF_SQE_SGL_ADDR_OFF) != 0)
			return NVMF_SGL_INVALID_OFFSET | NVMF_DNR;
		if (len != cmd->buf_len)
			return NVMF_SGL_INVALID_DATA_LEN | NVMF_DNR;
		cmd->xfer_len = cmd->h2c_got = len;
		return 0;
	}
	if (!dir || !len)
		return 0;
	if (id != NVMF_SGL_TRANSPORT)
		return NVMF_SGL_INVALID_TYPE | NVMF_DNR;
	if (len > NVMF_MAX_XFER)
		return NVMF_SGL_INVALID_DATA_LEN | NVMF_DNR;
	cmd->xfer_len = len;
	return 0;
}

void nvmf_cmd_start(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	uint16_t st;

	cmd->cid = get_le16(cmd->sqe + 2);
	q->outstanding++;
	q->sqhd = (uint16_t)((q->sqhd + 1) % MAX(q->sqsize, (uint16_t)1));
	if (cmd->status) { /* data digest error on the in-capsule data */
		nvmf_cmd_complete(cmd, cmd->status, 0);
		return;
	}
	if (q->state != NVMF_CONN_LIVE) {
		if (cmd->sqe[0] == NVMF_OPC_FABRICS &&
		    cmd->sqe[NVMF_SQE_FCTYPE_OFF] == NVMF_FCT_CONNECT) {
			cmd->xfer_len = cmd->buf ? cmd->buf_len : 0;
			fabrics_connect(q, cmd);
			return;
		}
		log_rl(LOG_LVL_WARN, "nvmf", "%s: opcode 0x%02x before Connect", q->peer,
		       cmd->sqe[0]);
		nvmf_cmd_complete(cmd, NVMF_CMD_SEQ_ERROR | NVMF_DNR, 0);
		return;
	}
	st = setup_xfer(q, cmd);
	if (!st && cmd->sqe[0] != NVMF_OPC_FABRICS) {
		if (!(q->ctrl->csts & NVMF_CSTS_RDY))
			st = NVMF_CMD_SEQ_ERROR;
		else
			st = q->qid ? nvmf_io_prepare(q, cmd) : admin_prepare(q, cmd);
	}
	if (st) {
		nvmf_cmd_complete(cmd, st, 0);
		return;
	}
	if (cmd->xfer_len && !cmd->buf) {
		if (!get_buffer(q, cmd)) {
			cmd->state = NVMF_CMD_WAIT_BUF;
			cmd->wnext = NULL;
			*q->wait_tail = cmd;
			q->wait_tail = &cmd->wnext;
			return;
		}
		buffered_go(q, cmd);
		return;
	}
	exec(q, cmd);
}

void nvmf_cmd_data_done(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	if (cmd->status) {
		nvmf_cmd_complete(cmd, cmd->status, 0);
		return;
	}
	exec(q, cmd);
}
