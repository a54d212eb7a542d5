/* Activity log: active-extent set with reference counts and an LRU of idle
 * extents, transactions into a ring of 16 blocks, and recovery. Format and
 * the caller's ordering rules: repl_al.h.
 *
 * Invariants: an extent is in the hash iff its entry is in_use; an in-use
 * entry is on the idle list iff its refs == 0; need_seq of an entry is the
 * first transaction that lists it (any later one does too while refs > 0,
 * since such an entry cannot be evicted). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "repl_al.h"
#include "util.h"

#define NIL UINT32_MAX

struct al_entry {
	uint32_t extent;
	uint32_t refs;
	bool in_use;
	uint64_t need_seq;   /* transaction that must be durable before writes */
	uint32_t prev, next; /* idle LRU links, or the free list (next) */
};

struct repl_al {
	struct urbd_uuid uuid;
	uint64_t nextents;          /* extents in the volume */
	uint32_t max;               /* capacity of the active set */
	uint32_t used;
	struct al_entry *e;         /* max entries */
	uint32_t free_head;
	uint32_t idle_head, idle_tail, idle_count; /* head = least recently idle */
	uint32_t *hash;             /* entry index + 1, 0 = empty; open addressing */
	uint32_t hash_mask;
	unsigned hash_shift;        /* 32 - log2(table size) */
	uint64_t seq;               /* last encoded transaction */
	uint64_t durable;           /* highest durable transaction */
	bool changed;               /* set differs from the last encoded one */
	uint64_t inflight[REPL_AL_RING]; /* seq in flight per ring slot, 0 = none */
	unsigned n_inflight;
	uint32_t last[REPL_AL_MAX_EXTENTS]; /* last encoded set, ascending */
	uint32_t n_last;
	uint32_t evicted[REPL_AL_MAX_EXTENTS];
};

const char *repl_al_block_err_name(enum repl_al_block_err e)
{
	switch (e) {
	case REPL_AL_BLOCK_OK: return "ok";
	case REPL_AL_BLOCK_ZERO: return "never written";
	case REPL_AL_BLOCK_SHORT: return "truncated block";
	case REPL_AL_BLOCK_BAD_MAGIC: return "bad magic";
	case REPL_AL_BLOCK_BAD_CRC: return "checksum mismatch (torn or corrupt)";
	case REPL_AL_BLOCK_BAD_VERSION: return "unsupported version";
	case REPL_AL_BLOCK_WRONG_VOLUME: return "block of another volume";
	case REPL_AL_BLOCK_WRONG_SLOT: return "sequence does not match ring slot";
	case REPL_AL_BLOCK_BAD_FIELD: return "impossible field value";
	}
	return "unknown";
}

/* ---- block codec --------------------------------------------------------- */

static uint32_t block_crc(const uint8_t *buf)
{
	return crc32c(crc32c(0, buf, AL_OFF_CRC), buf + AL_OFF_EXTENTS,
		      REPL_AL_BLOCK_SIZE - AL_OFF_EXTENTS);
}

/* memcmp against itself shifted by one: the library's vector loop
 * instead of a byte loop (recovery checks 64 KiB at a time) */
static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static uint64_t extents_for(uint64_t size)
{
	return (size >> REPL_AL_EXTENT_SHIFT) + ((size & (REPL_AL_EXTENT_SIZE - 1)) != 0);
}

int repl_al_encode_block(uint8_t *buf, const struct urbd_uuid *uuid, uint64_t seq,
			 const uint32_t *extents, uint32_t count)
{
	if (seq == 0 || count > REPL_AL_MAX_EXTENTS)
		return -EINVAL;
	for (uint32_t i = 1; i < count; i++)
		if (extents[i] <= extents[i - 1])
			return -EINVAL;
	memset(buf, 0, REPL_AL_BLOCK_SIZE);
	put_le32(buf + AL_OFF_MAGIC, REPL_AL_MAGIC);
	put_le16(buf + AL_OFF_VERSION, REPL_AL_VERSION);
	put_le16(buf + AL_OFF_HDR_LEN, REPL_AL_HDR_LEN);
	memcpy(buf + AL_OFF_UUID, uuid->b, 16);
	put_le64(buf + AL_OFF_SEQ, seq);
	put_le32(buf + AL_OFF_COUNT, count);
	for (uint32_t i = 0; i < count; i++)
		put_le32(buf + AL_OFF_EXTENTS + 4 * i, extents[i]);
	put_le32(buf + AL_OFF_CRC, block_crc(buf));
	return 0;
}

enum repl_al_block_err repl_al_decode_block(const uint8_t *buf, size_t len,
					    unsigned slot,
					    const struct urbd_uuid *uuid,
					    uint64_t volume_size, uint64_t *seq,
					    uint32_t *extents, uint32_t *count)
{
	uint64_t s, nextents = extents_for(volume_size);
	uint32_t n;

	if (len < REPL_AL_BLOCK_SIZE)
		return REPL_AL_BLOCK_SHORT;
	if (all_zero(buf, REPL_AL_BLOCK_SIZE))
		return REPL_AL_BLOCK_ZERO;
	if (get_le32(buf + AL_OFF_MAGIC) != REPL_AL_MAGIC)
		return REPL_AL_BLOCK_BAD_MAGIC;
	/* CRC before version: a flipped version bit is corruption */
	if (get_le32(buf + AL_OFF_CRC) != block_crc(buf))
		return REPL_AL_BLOCK_BAD_CRC;
	if (get_le16(buf + AL_OFF_VERSION) != REPL_AL_VERSION ||
	    get_le16(buf + AL_OFF_HDR_LEN) != REPL_AL_HDR_LEN)
		return REPL_AL_BLOCK_BAD_VERSION;
	if (memcmp(buf + AL_OFF_UUID, uuid->b, 16) != 0)
		return REPL_AL_BLOCK_WRONG_VOLUME;
	s = get_le64(buf + AL_OFF_SEQ);
	n = get_le32(buf + AL_OFF_COUNT);
	if (s == 0 || get_le64(buf + AL_OFF_RESERVED) != 0 ||
	    n > REPL_AL_MAX_EXTENTS)
		return REPL_AL_BLOCK_BAD_FIELD;
	if (s % REPL_AL_RING != slot)
		return REPL_AL_BLOCK_WRONG_SLOT;
	/* ascending and inside the volume; zero padding: the block re-encodes
	 * to the same bytes */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t x = get_le32(buf + AL_OFF_EXTENTS + 4 * i);

		if (x >= nextents || (i > 0 && x <= extents[i - 1]))
			return REPL_AL_BLOCK_BAD_FIELD;
		extents[i] = x;
	}
	if (!all_zero(buf + AL_OFF_EXTENTS + 4 * n,
		      REPL_AL_BLOCK_SIZE - AL_OFF_EXTENTS - 4 * n))
		return REPL_AL_BLOCK_BAD_FIELD;
	*seq = s;
	*count = n;
	return REPL_AL_BLOCK_OK;
}

int repl_al_recover(const uint8_t *area, size_t len, const struct urbd_uuid *uuid,
		    uint64_t volume_size, struct repl_al_recovery *rec)
{
	uint32_t tmp[REPL_AL_MAX_EXTENTS], n;
	unsigned zero = 0;
	uint64_t s;

	memset(rec, 0, sizeof(*rec));
	rec->slot = -1;
	if (len < (size_t)REPL_AL_RING * REPL_AL_BLOCK_SIZE || volume_size == 0)
		return -EINVAL;
	for (unsigned i = 0; i < REPL_AL_RING; i++) {
		rec->why[i] = repl_al_decode_block(area + (size_t)i * REPL_AL_BLOCK_SIZE,
						   REPL_AL_BLOCK_SIZE, i, uuid,
						   volume_size, &s, tmp, &n);
		if (rec->why[i] == REPL_AL_BLOCK_ZERO)
			zero++;
		if (rec->why[i] != REPL_AL_BLOCK_OK)
			continue;
		rec->block_seq[i] = s;
		if (rec->slot < 0 || s > rec->seq) {
			rec->slot = (int)i;
			rec->seq = s;
			rec->count = n;
			memcpy(rec->extents, tmp, n * sizeof(tmp[0]));
		}
	}
	if (rec->slot >= 0 || zero == REPL_AL_RING)
		return 0;
	/* Written, but nothing valid: even a torn very first transaction
	 * lands here. Its writes never started, but a ring whose every
	 * valid block was destroyed looks the same, so no guessing. */
	return -EBADMSG;
}

/* ---- hash: extent -> entry ------------------------------------------------ */

/* Fibonacci hashing, top bits: strided extents (every 8 GiB, say) would
 * all share the low bits of the product */
static uint32_t hash_slot(const struct repl_al *al, uint32_t extent)
{
	return (uint32_t)(extent * 0x9e3779b1u) >> al->hash_shift;
}

static uint32_t lookup(const struct repl_al *al, uint32_t extent)
{
	for (uint32_t h = hash_slot(al, extent);; h = (h + 1) & al->hash_mask) {
		uint32_t v = al->hash[h];

		if (!v)
			return NIL;
		if (al->e[v - 1].extent == extent)
			return v - 1;
	}
}

static void hash_insert(struct repl_al *al, uint32_t idx)
{
	uint32_t h = hash_slot(al, al->e[idx].extent);

	while (al->hash[h])
		h = (h + 1) & al->hash_mask;
	al->hash[h] = idx + 1;
}

/* Linear probing without tombstones: after removing a slot, move back any
 * later entry of the run whose home slot no longer reaches it. */
static void hash_remove(struct repl_al *al, uint32_t extent)
{
	uint32_t h = hash_slot(al, extent), j;

	while (al->e[al->hash[h] - 1].extent != extent)
		h = (h + 1) & al->hash_mask;
	al->hash[h] = 0;
	for (j = (h + 1) & al->hash_mask; al->hash[j]; j = (j + 1) & al->hash_mask) {
		uint32_t home = hash_slot(al, al->e[al->hash[j] - 1].extent);

		/* can the entry at j stay, i.e. is home in the cyclic (h, j]? */
		if (h <= j ? (h < home && home <= j) : (h < home || home <= j))
			continue;
		al->hash[h] = al->hash[j];
		al->hash[j] = 0;
		h = j;
	}
}

/* ---- idle LRU ------------------------------------------------------------ */

static void idle_append(struct repl_al *al, uint32_t idx)
{
	al->e[idx].next = NIL;
	al->e[idx].prev = al->idle_tail;
	if (al->idle_tail != NIL)
		al->e[al->idle_tail].next = idx;
	else
		al->idle_head = idx;
	al->idle_tail = idx;
	al->idle_count++;
}

static void idle_unlink(struct repl_al *al, uint32_t idx)
{
	struct al_entry *x = &al->e[idx];

	if (x->prev != NIL)
		al->e[x->prev].next = x->next;
	else
		al->idle_head = x->next;
	if (x->next != NIL)
		al->e[x->next].prev = x->prev;
	else
		al->idle_tail = x->prev;
	al->idle_count--;
}

/* ---- lifecycle ----------------------------------------------------------- */

struct repl_al *repl_al_create(uint64_t volume_size, uint32_t max_extents,
			       const struct urbd_uuid *uuid)
{
	struct repl_al *al;
	uint32_t hsize = 1;

	if (!max_extents)
		max_extents = REPL_AL_DEFAULT_EXTENTS;
	if (volume_size == 0 || extents_for(volume_size) > (1ULL << 32) ||
	    max_extents > REPL_AL_MAX_EXTENTS) {
		errno = EINVAL;
		return NULL;
	}
	al = calloc(1, sizeof(*al));
	if (!al)
		return NULL;
	/* load factor <= 1/2 keeps probe runs short */
	while (hsize < 2 * max_extents)
		hsize <<= 1;
	al->e = calloc(max_extents, sizeof(*al->e));
	al->hash = calloc(hsize, sizeof(*al->hash));
	if (!al->e || !al->hash) {
		repl_al_free(al);
		errno = ENOMEM;
		return NULL;
	}
	al->uuid = *uuid;
	al->nextents = extents_for(volume_size);
	al->max = max_extents;
	al->hash_mask = hsize - 1;
	al->hash_shift = 32 - (unsigned)__builtin_ctz(hsize);
	for (uint32_t i = 0; i < max_extents; i++)
		al->e[i].next = i + 1 < max_extents ? i + 1 : NIL;
	al->free_head = 0;
	al->idle_head = al->idle_tail = NIL;
	return al;
}

void repl_al_free(struct repl_al *al)
{
	if (!al)
		return;
	free(al->e);
	free(al->hash);
	free(al);
}

int repl_al_restore(struct repl_al *al, const struct repl_al_recovery *rec)
{
	if (al->used || al->seq || al->n_inflight)
		return -EBUSY;
	if (rec->count > REPL_AL_MAX_EXTENTS)
		return -EINVAL;
	al->seq = al->durable = rec->seq;
	memcpy(al->last, rec->extents, rec->count * sizeof(al->last[0]));
	al->n_last = rec->count;
	return 0;
}

int repl_al_resize(struct repl_al *al, uint64_t new_size)
{
	uint64_t n = extents_for(new_size);

	if (n < al->nextents || n > (1ULL << 32))
		return -EINVAL;
	al->nextents = n;
	return 0;
}

/* ---- begin / end ---------------------------------------------------------- */

static int range_extents(const struct repl_al *al, uint64_t off, uint64_t len,
			 uint32_t *first, uint32_t *last)
{
	uint64_t e0, e1;

	if (len == 0 || add_overflows_u64(off, len - 1, &e1))
		return -EINVAL;
	e0 = off >> REPL_AL_EXTENT_SHIFT;
	e1 >>= REPL_AL_EXTENT_SHIFT;
	if (e1 >= al->nextents)
		return -EINVAL;
	*first = (uint32_t)e0;
	*last = (uint32_t)e1;
	return 0;
}

static void evict_one(struct repl_al *al)
{
	uint32_t idx = al->idle_head;

	idle_unlink(al, idx);
	hash_remove(al, al->e[idx].extent);
	al->e[idx].in_use = false;
	al->e[idx].next = al->free_head;
	al->free_head = idx;
	al->used--;
	al->changed = true;
}

static void add_extent(struct repl_al *al, uint32_t extent)
{
	uint32_t idx;

	if (al->used == al->max)
		evict_one(al);
	idx = al->free_head;
	al->free_head = al->e[idx].next;
	al->e[idx] = (struct al_entry){ .extent = extent, .refs = 1,
					.in_use = true,
					.need_seq = al->seq + 1,
					.prev = NIL, .next = NIL };
	hash_insert(al, idx);
	al->used++;
	al->changed = true;
}

int repl_al_begin(struct repl_al *al, uint64_t off, uint64_t len,
		  bool *need_txn, uint64_t *wait_seq)
{
	uint32_t first, last, missing = 0, idle_here = 0;
	uint64_t wait = 0;
	int ret;

	ret = range_extents(al, off, len, &first, &last);
	if (ret)
		return ret;
	if ((uint64_t)last - first + 1 > al->max)
		return -E2BIG;
	for (uint64_t x = first; x <= last; x++) {
		uint32_t idx = lookup(al, (uint32_t)x);

		if (idx == NIL)
			missing++;
		else if (al->e[idx].refs == 0)
			idle_here++;
	}
	/* our own idle extents are pinned below, so they cannot make room */
	if (missing > al->max - al->used + al->idle_count - idle_here)
		return -EBUSY;

	/* pin what is present first so that adding cannot evict it */
	for (uint64_t x = first; x <= last; x++) {
		uint32_t idx = lookup(al, (uint32_t)x);

		if (idx != NIL && al->e[idx].refs++ == 0)
			idle_unlink(al, idx);
	}
	for (uint64_t x = first; x <= last; x++) {
		uint32_t idx = lookup(al, (uint32_t)x);

		if (idx == NIL) {
			add_extent(al, (uint32_t)x);
			idx = lookup(al, (uint32_t)x);
		}
		if (al->e[idx].need_seq > al->durable)
			wait = MAX(wait, al->e[idx].need_seq);
	}
	*wait_seq = wait;
	*need_txn = wait > al->seq;
	return 0;
}

int repl_al_end(struct repl_al *al, uint64_t off, uint64_t len)
{
	uint32_t first, last;
	int ret;

	ret = range_extents(al, off, len, &first, &last);
	if (ret)
		return ret;
	for (uint64_t x = first; x <= last; x++) {
		uint32_t idx = lookup(al, (uint32_t)x);

		if (idx == NIL || al->e[idx].refs == 0)
			return -EINVAL;
	}
	for (uint64_t x = first; x <= last; x++) {
		uint32_t idx = lookup(al, (uint32_t)x);

		if (--al->e[idx].refs == 0)
			idle_append(al, idx);
	}
	return 0;
}

/* ---- transactions ---------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

bool repl_al_txn_pending(const struct repl_al *al)
{
	return al->changed;
}

int repl_al_encode_txn(struct repl_al *al, uint8_t *buf, struct repl_al_txn *txn)
{
	uint32_t cur[REPL_AL_MAX_EXTENTS], n = 0, ne = 0, j = 0;
	uint64_t seq = al->seq + 1;
	unsigned slot = (unsigned)(seq % REPL_AL_RING);

	if (al->n_inflight >= REPL_AL_MAX_INFLIGHT || al->inflight[slot])
		return -EBUSY;
	for (uint32_t i = 0; i < al->max; i++)
		if (al->e[i].in_use)
			cur[n++] = al->e[i].extent;
	qsort(cur, n, sizeof(cur[0]), cmp_u32);
	/* evicted = last \ cur, both ascending */
	for (uint32_t i = 0; i < al->n_last; i++) {
		while (j < n && cur[j] < al->last[i])
			j++;
		if (j == n || cur[j] != al->last[i])
			al->evicted[ne++] = al->last[i];
	}
	if (repl_al_encode_block(buf, &al->uuid, seq, cur, n))
		return -EINVAL; /* cannot happen: cur is sorted and unique */
	memcpy(al->last, cur, n * sizeof(cur[0]));
	al->n_last = n;
	al->seq = seq;
	al->changed = false;
	al->inflight[slot] = seq;
	al->n_inflight++;
	*txn = (struct repl_al_txn){
		.seq = seq, .slot = slot,
		.area_offset = (uint64_t)slot * REPL_AL_BLOCK_SIZE,
		.count = n, .n_evicted = ne, .evicted = al->evicted,
	};
	return 0;
}

int repl_al_txn_done(struct repl_al *al, uint64_t seq, int res)
{
	unsigned slot = (unsigned)(seq % REPL_AL_RING);

	if (seq == 0 || al->inflight[slot] != seq)
		return -EINVAL;
	al->inflight[slot] = 0;
	al->n_inflight--;
	if (res >= 0) {
		/* every transaction carries the full set: a newer one being
		 * durable covers whatever the older ones did */
		al->durable = MAX(al->durable, seq);
		return 0;
	}
	/* Failed. If a newer transaction is encoded, it lists every extent
	 * still active and covers the waiters. Otherwise re-arm the
	 * extents nothing durable lists yet for the next transaction. */
	if (seq == al->seq) {
		for (uint32_t i = 0; i < al->max; i++) {
			struct al_entry *x = &al->e[i];

			if (x->in_use && x->need_seq > al->durable)
				x->need_seq = al->seq + 1;
		}
		al->changed = true;
	}
	return 0;
}

uint64_t repl_al_durable_seq(const struct repl_al *al) { return al->durable; }
uint64_t repl_al_seq(const struct repl_al *al) { return al->seq; }
uint32_t repl_al_max_extents(const struct repl_al *al) { return al->max; }
uint32_t repl_al_active(const struct repl_al *al) { return al->used; }

int repl_al_refcount(const struct repl_al *al, uint32_t extent)
{
	uint32_t idx = lookup(al, extent);

	return idx == NIL ? -ENOENT : (int)al->e[idx].refs;
}
