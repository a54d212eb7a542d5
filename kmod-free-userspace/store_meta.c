#include <string.h>

#include "crc32c.h"
#include "store_format.h"
#include "util.h"

const char *store_meta_err_name(enum store_meta_err e)
{
	switch (e) {
	case STORE_META_OK: return "ok";
	case STORE_META_SHORT: return "truncated superblock";
	case STORE_META_ZERO: return "superblock never written";
	case STORE_META_BAD_MAGIC: return "bad magic";
	case STORE_META_BAD_VERSION: return "unsupported version";
	case STORE_META_BAD_CRC: return "checksum mismatch (torn or corrupt)";
	case STORE_META_BAD_FIELD: return "impossible field value";
	}
	return "unknown";
}

/* Sizing rationale at the top of store_format.h: a peer slot holds the
 * bitmap blocks the volume needs (repl_bitmap_bytes_per_peer()), rounded up
 * to a power of two so that growing within the bucket moves nothing. */
void store_meta_layout(struct store_meta *m)
{
	uint64_t bits, blocks, reserve = 1;

	if (!m->bm_grain)
		m->bm_grain = STORE_BM_GRAIN_DEFAULT;
	bits = m->size / m->bm_grain + (m->size % m->bm_grain != 0);
	blocks = bits / STORE_BM_BITS_PER_BLOCK +
		 (bits % STORE_BM_BITS_PER_BLOCK != 0);
	while (reserve < blocks)
		reserve <<= 1;
	m->al_offset = STORE_AL_OFFSET;
	m->al_len = STORE_AL_LEN;
	m->bm_offset = m->al_offset + m->al_len;
	m->bm_len_per_peer = blocks ? reserve * STORE_MD_BLOCK_SIZE : 0;
}

void store_meta_encode(const struct store_meta *m, uint8_t *buf)
{
	memset(buf, 0, STORE_SB_SIZE);
	put_le64(buf + SB_OFF_MAGIC, STORE_META_MAGIC);
	put_le32(buf + SB_OFF_VERSION, STORE_META_VERSION);
	put_le32(buf + SB_OFF_HDR_LEN, SB_HDR_LEN);
	put_le64(buf + SB_OFF_SEQ, m->seq);
	memcpy(buf + SB_OFF_UUID, m->uuid.b, 16);
	memcpy(buf + SB_OFF_NAME, m->name, strnlen(m->name, 63));
	put_le64(buf + SB_OFF_SIZE, m->size);
	put_le32(buf + SB_OFF_BLOCK_SIZE, m->block_size);
	put_le32(buf + SB_OFF_FLAGS, m->flags);
	put_le64(buf + SB_OFF_CREATED, m->created_ns);
	put_le64(buf + SB_OFF_GEN + 0, m->gen.current);
	put_le64(buf + SB_OFF_GEN + 8, m->gen.bitmap);
	put_le64(buf + SB_OFF_GEN + 16, m->gen.history[0]);
	put_le64(buf + SB_OFF_GEN + 24, m->gen.history[1]);
	put_le32(buf + SB_OFF_DISK_STATE, m->disk_state);
	put_le32(buf + SB_OFF_BM_GRAIN, m->bm_grain);
	put_le64(buf + SB_OFF_AL_OFFSET, m->al_offset);
	put_le64(buf + SB_OFF_AL_LEN, m->al_len);
	put_le64(buf + SB_OFF_BM_OFFSET, m->bm_offset);
	put_le64(buf + SB_OFF_BM_LEN, m->bm_len_per_peer);
	put_le32(buf + SB_OFF_CRC, crc32c(0, buf, SB_HDR_LEN));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

enum store_meta_err store_meta_decode(const uint8_t *buf, size_t len,
				      struct store_meta *m)
{
	if (len < SB_OFF_CRC + 4)
		return STORE_META_SHORT;
	if (all_zero(buf, SB_OFF_CRC + 4))
		return STORE_META_ZERO;
	if (get_le64(buf + SB_OFF_MAGIC) != STORE_META_MAGIC)
		return STORE_META_BAD_MAGIC;
	/* the CRC comes before the version check so that a corrupt version
	 * field is reported as corruption, not as a newer format */
	if (get_le32(buf + SB_OFF_CRC) != crc32c(0, buf, SB_HDR_LEN))
		return STORE_META_BAD_CRC;
	if (get_le32(buf + SB_OFF_VERSION) != STORE_META_VERSION ||
	    get_le32(buf + SB_OFF_HDR_LEN) != SB_HDR_LEN)
		return STORE_META_BAD_VERSION;

	memset(m, 0, sizeof(*m));
	m->seq = get_le64(buf + SB_OFF_SEQ);
	memcpy(m->uuid.b, buf + SB_OFF_UUID, 16);
	memcpy(m->name, buf + SB_OFF_NAME, 64);
	m->size = get_le64(buf + SB_OFF_SIZE);
	m->block_size = get_le32(buf + SB_OFF_BLOCK_SIZE);
	m->flags = get_le32(buf + SB_OFF_FLAGS);
	m->created_ns = get_le64(buf + SB_OFF_CREATED);
	m->gen.current = get_le64(buf + SB_OFF_GEN + 0);
	m->gen.bitmap = get_le64(buf + SB_OFF_GEN + 8);
	m->gen.history[0] = get_le64(buf + SB_OFF_GEN + 16);
	m->gen.history[1] = get_le64(buf + SB_OFF_GEN + 24);
	m->disk_state = get_le32(buf + SB_OFF_DISK_STATE);
	m->bm_grain = get_le32(buf + SB_OFF_BM_GRAIN);
	m->al_offset = get_le64(buf + SB_OFF_AL_OFFSET);
	m->al_len = get_le64(buf + SB_OFF_AL_LEN);
	m->bm_offset = get_le64(buf + SB_OFF_BM_OFFSET);
	m->bm_len_per_peer = get_le64(buf + SB_OFF_BM_LEN);

	/* everything must re-encode to the same bytes: garbage after the
	 * name or in the reserved area means this is not our superblock */
	if (m->name[63] != '\0' || !urbd_name_valid(m->name) ||
	    !all_zero(buf + SB_OFF_NAME + strlen(m->name), 64 - strlen(m->name)) ||
	    !all_zero(buf + SB_OFF_RESERVED, SB_HDR_LEN - SB_OFF_RESERVED) ||
	    m->al_len > UINT64_MAX - m->al_offset ||
	    m->size == 0 || !is_aligned(m->size, STORE_BLOCK_SIZE) ||
	    !is_pow2(m->block_size) || m->block_size < 512 ||
	    m->block_size > STORE_BLOCK_SIZE || !is_pow2(m->bm_grain) ||
	    m->bm_grain < STORE_BLOCK_SIZE || m->al_offset < STORE_AL_OFFSET ||
	    m->bm_offset < m->al_offset + m->al_len)
		return STORE_META_BAD_FIELD;
	return STORE_META_OK;
}

int store_meta_pick(const uint8_t *slot_a, const uint8_t *slot_b, size_t len,
		    struct store_meta *m, enum store_meta_err *why_a,
		    enum store_meta_err *why_b)
{
	struct store_meta a, b;

	*why_a = store_meta_decode(slot_a, len, &a);
	*why_b = store_meta_decode(slot_b, len, &b);
	if (*why_a == STORE_META_OK &&
	    (*why_b != STORE_META_OK || a.seq >= b.seq)) {
		*m = a;
		return 0;
	}
	if (*why_b == STORE_META_OK) {
		*m = b;
		return 1;
	}
	return -1;
}
