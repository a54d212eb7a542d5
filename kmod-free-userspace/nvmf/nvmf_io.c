/* NVM command set I/O commands on an I/O queue: Read, Write, Flush, Write
 * Zeroes, Dataset Management (deallocate). Ranges are checked here, at the
 * frontend edge, before any data moves (NVMe Base 1.4 section 6). */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "nvmf_conn.h"
#include "store.h"
#include "util.h"

#define RW_FUA (1u << 30)        /* CDW12: force unit access */
#define DSM_AD (1u << 2)         /* CDW11: attribute deallocate */
#define DSM_RANGE_LEN 16

static uint32_t lba_shift(const struct volume *v)
{
	return v->sv->meta.block_size == 4096 ? 12 : 9;
}

/* 0, or LBA Out of Range */
static uint16_t check_range(const struct volume *v, uint64_t slba, uint64_t nlb)
{
	uint64_t nsze = v->size >> lba_shift(v), end;

	if (add_overflows_u64(slba, nlb, &end) || end > nsze)
		return NVMF_LBA_RANGE | NVMF_DNR;
	return 0;
}

uint16_t nvmf_io_prepare(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	const uint8_t *s = cmd->sqe;
	uint32_t nsid = get_le32(s + 4);
	uint64_t slba = get_le64(s + NVMF_SQE_CDW(10));
	uint32_t nlb = (get_le32(s + NVMF_SQE_CDW(12)) & 0xffff) + 1;
	uint16_t st;

	if (s[0] == NVMF_IO_FLUSH)
		return nsid == 1 || nsid == 0xffffffff ? 0 : NVMF_INVALID_NS | NVMF_DNR;
	if (nsid != 1)
		return NVMF_INVALID_NS | NVMF_DNR;
	switch (s[0]) {
	case NVMF_IO_READ:
	case NVMF_IO_WRITE:
		if ((st = check_range(q->vol, slba, nlb)))
			return st;
		if (((uint64_t)nlb << lba_shift(q->vol)) != cmd->xfer_len)
			return NVMF_SGL_INVALID_DATA_LEN | NVMF_DNR;
		return 0;
	case NVMF_IO_WRITE_ZEROES:
		return check_range(q->vol, slba, nlb);
	case NVMF_IO_DSM: {
		uint32_t nr = (get_le32(s + NVMF_SQE_CDW(10)) & 0xff) + 1;

		if (cmd->dir != 1 || cmd->xfer_len < nr * DSM_RANGE_LEN)
			return NVMF_SGL_INVALID_DATA_LEN | NVMF_DNR;
		return 0;
	}
	default:
		return NVMF_INVALID_OPCODE | NVMF_DNR;
	}
}

static void io_done(struct vol_io *io, int res);

static void submit(struct nvmf_conn *q, struct nvmf_cmd *cmd, enum vol_op op,
		   uint64_t off, uint32_t len, uint32_t flags)
{
	memset(&cmd->io, 0, sizeof(cmd->io));
	cmd->io.op = op;
	cmd->io.off = off;
	cmd->io.len = len;
	cmd->io.flags = flags;
	cmd->io.buf = (op == VOL_READ || op == VOL_WRITE) ? cmd->buf : NULL;
	cmd->io.done = io_done;
	q->inflight++;
	volume_submit(q->vol, &cmd->io);
}

/* the next DSM range to deallocate; false when none is left */
static bool dsm_next(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	uint32_t sh = lba_shift(q->vol);

	while (cmd->dsm_next < cmd->dsm_count) {
		const uint8_t *r = cmd->buf + cmd->dsm_next++ * DSM_RANGE_LEN;
		uint32_t nlb = get_le32(r + 4);
		uint64_t slba = get_le64(r + 8);

		if (!nlb)
			continue;
		/* a volume op is at most 4 GiB: split longer ranges */
		if (nlb > (UINT32_MAX >> sh)) {
			uint32_t part = UINT32_MAX >> sh;

			put_le32((uint8_t *)r + 4, nlb - part);
			put_le64((uint8_t *)r + 8, slba + part);
			cmd->dsm_next--;
			nlb = part;
		}
		submit(q, cmd, VOL_TRIM, slba << sh, nlb << sh, 0);
		return true;
	}
	return false;
}

static void io_done(struct vol_io *io, int res)
{
	struct nvmf_cmd *cmd = container_of(io, struct nvmf_cmd, io);
	struct nvmf_conn *q = cmd->q;
	uint8_t opc = cmd->sqe[0];

	q->inflight--;
	nvmf_conn_hold(q);
	if (q->state == NVMF_CONN_CLOSING) {
		q->outstanding--;
		nvmf_cmd_free(cmd);
		goto out;
	}
	if (res < 0) {
		log_rl(LOG_LVL_ERR, "nvmf", "%s qid %u volume %s: %s offset %llu length %u: %s",
		       q->peer, q->qid, q->vol->name, nvmf_io_name(opc),
		       (unsigned long long)io->off, io->len, strerror(-res));
		nvmf_cmd_complete(cmd, nvmf_errno_to_status(-res), 0);
		goto out;
	}
	/* Write Zeroes with FUA: durable before completion */
	if (opc == NVMF_IO_WRITE_ZEROES && io->op != VOL_FLUSH &&
	    (get_le32(cmd->sqe + NVMF_SQE_CDW(12)) & RW_FUA)) {
		submit(q, cmd, VOL_FLUSH, 0, 0, 0);
		goto out;
	}
	if (opc == NVMF_IO_DSM && dsm_next(q, cmd))
		goto out;
	nvmf_cmd_complete(cmd, 0, 0);
out:
	nvmf_conn_unhold(q);
}

void nvmf_io_exec(struct nvmf_conn *q, struct nvmf_cmd *cmd)
{
	const uint8_t *s = cmd->sqe;
	uint32_t sh = lba_shift(q->vol);
	uint64_t slba = get_le64(s + NVMF_SQE_CDW(10));
	uint32_t cdw12 = get_le32(s + NVMF_SQE_CDW(12));
	uint32_t nlb = (cdw12 & 0xffff) + 1;

	switch (s[0]) {
	case NVMF_IO_READ:
		submit(q, cmd, VOL_READ, slba << sh, nlb << sh, 0);
		return;
	case NVMF_IO_WRITE:
		submit(q, cmd, VOL_WRITE, slba << sh, nlb << sh,
		       (cdw12 & RW_FUA) ? VOL_F_FUA : 0);
		return;
	case NVMF_IO_FLUSH:
		submit(q, cmd, VOL_FLUSH, 0, 0, 0);
		return;
	case NVMF_IO_WRITE_ZEROES:
		submit(q, cmd, VOL_WRITE_ZEROES, slba << sh, nlb << sh, 0);
		return;
	case NVMF_IO_DSM:
		if (!(get_le32(s + NVMF_SQE_CDW(11)) & DSM_AD)) {
			nvmf_cmd_complete(cmd, 0, 0); /* only hints: nothing to do */
			return;
		}
		cmd->dsm_count = (get_le32(s + NVMF_SQE_CDW(10)) & 0xff) + 1;
		for (uint32_t i = 0; i < cmd->dsm_count; i++) {
			const uint8_t *r = cmd->buf + i * DSM_RANGE_LEN;
			uint16_t st = check_range(q->vol, get_le64(r + 8), get_le32(r + 4));

			if (st) {
				nvmf_cmd_complete(cmd, st, 0);
				return;
			}
		}
		cmd->dsm_next = 0;
		if (!dsm_next(q, cmd))
			nvmf_cmd_complete(cmd, 0, 0);
		return;
	}
	nvmf_cmd_complete(cmd, NVMF_INVALID_OPCODE | NVMF_DNR, 0);
}
