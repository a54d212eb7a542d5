/* Activity log (AL): the set of hot 4 MiB extents of a volume, persisted
 * before the first write into an extent that is not in it, so that a
 * primary that crashed resyncs only those extents instead of the whole
 * volume. Pure and I/O-free like repl_bitmap.h: the replication backend
 * writes the blocks this module encodes and reports their completion.
 *
 * Extent e covers bytes [e << 22, (e + 1) << 22). At most max_extents
 * (default 256, at most REPL_AL_MAX_EXTENTS = 1012, what one block holds)
 * are active; each active extent has a reference count (writes in flight
 * in it) and the idle ones (count 0) form an LRU list.
 *
 * On disk: a ring of REPL_AL_RING = 16 blocks of 4 KiB at m->al_offset.
 * Every transaction writes ONE block, the whole active set, at ring slot
 * seq % 16 (offset m->al_offset + slot * 4096). Little-endian:
 *
 *   0   u32 magic      REPL_AL_MAGIC ("URAL")
 *   4   u16 version    REPL_AL_VERSION
 *   6   u16 hdr_len    REPL_AL_HDR_LEN (48)
 *   8   16  uuid       volume uuid
 *   24  u64 seq        transaction number, >= 1; seq % 16 == ring slot
 *   32  u32 count      extents that follow, <= REPL_AL_MAX_EXTENTS
 *   36  u64 reserved   zero
 *   44  u32 crc        CRC32C over [0, 44) then [48, 4096)
 *   48  u32 extent[count], strictly ascending, each inside the volume;
 *       zero after them
 *
 * Recovery (repl_al_recover) reads the 16 blocks and takes the valid one
 * with the highest seq; torn or foreign blocks are ignored with a reason.
 *
 * ORDERING RULES (the caller's side of the contract):
 *  1. A write into [off, off + len) starts with repl_al_begin(). It may be
 *     issued (locally and to peers) only once repl_al_durable_seq() >=
 *     the *wait_seq begin returned (0: at once). If *need_txn, no encoded
 *     transaction covers it yet: encode one (repl_al_encode_txn) and write
 *     it; repl_al_txn_pending() tells the same for the AL as a whole.
 *  2. A transaction block must be durable (written with FUA, or written
 *     then fdatasync'd) before repl_al_txn_done(seq, 0) is called.
 *  3. Eviction: before writing a transaction's block, make durable every
 *     dirty bitmap block (every peer slot) that covers an extent listed in
 *     txn.evicted (repl_bitmap_range_blocks()). Until then the previous
 *     transaction, which still lists the extent, is what protects it.
 *  4. repl_al_end() is called when the write completed (acknowledged, or
 *     failed with its bitmap bits set): only then may its extents leave
 *     the set.
 *  5. After a crash, recover first, set the recovered extents' bits in
 *     every peer's bitmap (the crashed primary may have written them to
 *     some replicas only), make those bitmap blocks durable, then
 *     repl_al_restore() so that new transactions continue the sequence
 *     (a new AL starting again at seq 1 would lose to the stale ring).
 *
 * Up to REPL_AL_MAX_INFLIGHT transactions may be in flight at once
 * (different ring slots); each carries the full set, so any one of them
 * becoming durable covers every begin made before it was encoded. */
#ifndef URBD_REPL_AL_H
#define URBD_REPL_AL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store_format.h"
#include "uuid.h"

#define REPL_AL_MAGIC           0x4c415255u /* "URAL" little-endian */
#define REPL_AL_VERSION         1
#define REPL_AL_EXTENT_SHIFT    22          /* 4 MiB extents */
#define REPL_AL_EXTENT_SIZE     (1ULL << REPL_AL_EXTENT_SHIFT)
#define REPL_AL_BLOCK_SIZE      STORE_MD_BLOCK_SIZE
#define REPL_AL_RING            STORE_AL_BLOCKS /* 16 */
#define REPL_AL_HDR_LEN         48
#define REPL_AL_MAX_EXTENTS     ((REPL_AL_BLOCK_SIZE - REPL_AL_HDR_LEN) / 4) /* 1012 */
#define REPL_AL_DEFAULT_EXTENTS 256
#define REPL_AL_MAX_INFLIGHT    4
_Static_assert(REPL_AL_RING == 16, "the ring is 16 blocks (STORE_AL_LEN)");
_Static_assert(REPL_AL_MAX_INFLIGHT < REPL_AL_RING, "in-flight slots never wrap");

/* Byte positions inside an AL block. */
enum {
	AL_OFF_MAGIC = 0,
	AL_OFF_VERSION = 4,
	AL_OFF_HDR_LEN = 6,
	AL_OFF_UUID = 8,
	AL_OFF_SEQ = 24,
	AL_OFF_COUNT = 32,
	AL_OFF_RESERVED = 36,
	AL_OFF_CRC = 44,
	AL_OFF_EXTENTS = 48,
};
_Static_assert(AL_OFF_EXTENTS == REPL_AL_HDR_LEN, "header length");

/* Why an AL block was not used. ZERO (never written) is not an error. */
enum repl_al_block_err {
	REPL_AL_BLOCK_OK = 0,
	REPL_AL_BLOCK_ZERO,          /* never written */
	REPL_AL_BLOCK_SHORT,         /* buffer shorter than a block */
	REPL_AL_BLOCK_BAD_MAGIC,
	REPL_AL_BLOCK_BAD_CRC,       /* torn or corrupt */
	REPL_AL_BLOCK_BAD_VERSION,
	REPL_AL_BLOCK_WRONG_VOLUME,  /* another volume's uuid */
	REPL_AL_BLOCK_WRONG_SLOT,    /* seq % 16 is not the block's ring slot */
	REPL_AL_BLOCK_BAD_FIELD,     /* CRC fine but count/extents/reserved impossible */
};
const char *repl_al_block_err_name(enum repl_al_block_err e);

/* ---- pure block codec (fuzzed) ----------------------------------------- */
/* extents strictly ascending, count <= REPL_AL_MAX_EXTENTS, seq >= 1:
 * fills REPL_AL_BLOCK_SIZE bytes; -EINVAL otherwise. */
int repl_al_encode_block(uint8_t *buf, const struct urbd_uuid *uuid, uint64_t seq,
			 const uint32_t *extents, uint32_t count);
/* slot: the block's place in the ring; volume_size bounds the extents.
 * extents must hold REPL_AL_MAX_EXTENTS entries. */
enum repl_al_block_err repl_al_decode_block(const uint8_t *buf, size_t len,
					    unsigned slot,
					    const struct urbd_uuid *uuid,
					    uint64_t volume_size, uint64_t *seq,
					    uint32_t *extents, uint32_t *count);

/* ---- recovery ------------------------------------------------------------ */
struct repl_al_recovery {
	uint64_t seq;                          /* chosen transaction; 0: none */
	int slot;                              /* its ring slot; -1: none */
	uint32_t count;                        /* extents to resync */
	uint32_t extents[REPL_AL_MAX_EXTENTS]; /* ascending */
	enum repl_al_block_err why[REPL_AL_RING]; /* per ring slot, for the log */
	uint64_t block_seq[REPL_AL_RING];      /* seq of each OK block, else 0 */
};
/* area: the whole AL area, len >= REPL_AL_RING * REPL_AL_BLOCK_SIZE.
 *   0        a valid transaction was found (rec->slot >= 0), or every block
 *            is zero (fresh volume: rec->count == 0, rec->slot == -1)
 *   -EBADMSG blocks were written but none is valid: the hot set is
 *            unknown, treat the whole volume as dirty (rec->why says why)
 *   -EINVAL  len too short or volume_size 0 */
int repl_al_recover(const uint8_t *area, size_t len, const struct urbd_uuid *uuid,
		    uint64_t volume_size, struct repl_al_recovery *rec);

/* ---- in memory ----------------------------------------------------------- */
struct repl_al; /* opaque */

/* One encoded transaction (repl_al_encode_txn). */
struct repl_al_txn {
	uint64_t seq;
	unsigned slot;            /* ring slot: seq % REPL_AL_RING */
	uint64_t area_offset;     /* slot * REPL_AL_BLOCK_SIZE, from m->al_offset */
	uint32_t count;           /* extents in the block */
	uint32_t n_evicted;       /* extents the previous transaction listed and
				   * this one drops: persist their bitmap blocks
				   * before writing this block (rule 3) */
	const uint32_t *evicted;  /* ascending; valid until the next encode */
};

/* max_extents 0 = REPL_AL_DEFAULT_EXTENTS; volume_size > 0 and at most
 * 2^32 extents. NULL with errno EINVAL or ENOMEM. */
struct repl_al *repl_al_create(uint64_t volume_size, uint32_t max_extents,
			       const struct urbd_uuid *uuid);
void repl_al_free(struct repl_al *al);
/* Continue after recovery (rule 5): seq and the durable seq become
 * rec->seq, and rec's extents count as the last written set (so the first
 * transaction lists them in evicted). Only on a fresh AL: else -EBUSY. */
int repl_al_restore(struct repl_al *al, const struct repl_al_recovery *rec);
/* the volume grew: extents up to the new size become usable */
int repl_al_resize(struct repl_al *al, uint64_t new_size);

/* Takes a reference on every extent of [off, off + len), adding missing
 * ones (evicting least recently idle ones if the set is full). All or
 * nothing:
 *   0        *wait_seq: the transaction that must be durable first (0 =
 *            none); *need_txn: that transaction is not encoded yet
 *   -EBUSY   not enough idle extents to evict: retry after an end
 *   -E2BIG   the range spans more extents than max_extents: split it
 *   -EINVAL  empty range, or outside the volume */
int repl_al_begin(struct repl_al *al, uint64_t off, uint64_t len,
		  bool *need_txn, uint64_t *wait_seq);
/* Drops the references of a begin with the same range; -EINVAL (and
 * nothing changed) if some extent of it holds no reference. */
int repl_al_end(struct repl_al *al, uint64_t off, uint64_t len);

/* The active set differs from the last encoded transaction. */
bool repl_al_txn_pending(const struct repl_al *al);
/* Encodes the active set as transaction seq + 1 into buf
 * (REPL_AL_BLOCK_SIZE bytes). -EBUSY when REPL_AL_MAX_INFLIGHT are in
 * flight: call again after a repl_al_txn_done. */
int repl_al_encode_txn(struct repl_al *al, uint8_t *buf, struct repl_al_txn *txn);
/* The write of transaction seq finished with res (0 or -errno). On
 * failure the set is pending again (encode and write a new transaction,
 * or fail the volume); writes waiting on it wait for the next one.
 * -EINVAL if seq is not in flight. */
int repl_al_txn_done(struct repl_al *al, uint64_t seq, int res);
/* highest transaction known durable */
uint64_t repl_al_durable_seq(const struct repl_al *al);
/* last encoded transaction */
uint64_t repl_al_seq(const struct repl_al *al);

/* introspection (status, tests) */
uint32_t repl_al_max_extents(const struct repl_al *al);
uint32_t repl_al_active(const struct repl_al *al);
/* reference count of extent e, or -ENOENT if not active */
int repl_al_refcount(const struct repl_al *al, uint32_t extent);

#endif
