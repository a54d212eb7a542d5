/* Peer protocol codec: frame headers, per-message decode/validate/encode
 * and the resumable frame parser. Pure functions over bytes (fuzzed by
 * tests/fuzz/fuzz_repl_proto.c); the wire layout is in repl_proto.h.
 *
 * Decoding is two steps with one rule set: extract() copies a message's
 * fields out of the wire struct (rejecting non-zero reserved fields), then
 * validate() checks the host-order message. The encoders call the same
 * validate() first, so urbd never sends what it would itself reject, and
 * anything that decodes re-encodes to the identical bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "repl_proto.h"
#include "util.h"

/* ---- names ------------------------------------------------------------- */

struct msg_desc {
	const char *name;
	uint32_t min, max;      /* payload bytes, checked before extract() */
	uint32_t body;          /* fixed body; the rest is data or text */
	int (*extract)(const uint8_t *p, size_t len, struct repl_msg *m, const char **why);
	void (*emit)(const struct repl_msg *m, uint8_t *body);
};

static const struct msg_desc *desc_of(uint16_t type);

const char *repl_msg_name(uint16_t type)
{
	const struct msg_desc *d = desc_of(type);

	return d ? d->name : "?";
}

#define NAME_OF(tab, v) ((v) < ARRAY_SIZE(tab) && (tab)[v] ? (tab)[v] : "?")

const char *repl_role_name(unsigned role)
{
	static const char *const n[] = {
		[REPL_ROLE_UNKNOWN] = "unknown", [REPL_ROLE_SECONDARY] = "secondary",
		[REPL_ROLE_PRIMARY] = "primary",
	};
	return NAME_OF(n, role);
}

const char *repl_disk_state_name(unsigned ds)
{
	static const char *const n[] = {
		[REPL_DISK_DISKLESS] = "diskless", [REPL_DISK_ATTACHING] = "attaching",
		[REPL_DISK_INCONSISTENT] = "inconsistent", [REPL_DISK_OUTDATED] = "outdated",
		[REPL_DISK_CONSISTENT] = "consistent", [REPL_DISK_UP_TO_DATE] = "up-to-date",
	};
	return NAME_OF(n, ds);
}

const char *repl_reason_name(unsigned reason)
{
	static const char *const n[] = {
		[REPL_REASON_NONE] = "none", [REPL_REASON_PROTOCOL] = "protocol-error",
		[REPL_REASON_VERSION] = "no-common-version",
		[REPL_REASON_AUTH_FAILED] = "auth-failed",
		[REPL_REASON_UUID_MISMATCH] = "volume-uuid-mismatch",
		[REPL_REASON_SIZE_MISMATCH] = "size-mismatch",
		[REPL_REASON_SPLIT_BRAIN] = "split-brain",
		[REPL_REASON_TWO_PRIMARIES] = "two-primaries",
		[REPL_REASON_TIMEOUT] = "timeout", [REPL_REASON_IO_ERROR] = "io-error",
		[REPL_REASON_SHUTDOWN] = "shutdown", [REPL_REASON_ADMIN] = "admin",
	};
	return NAME_OF(n, reason);
}

const char *repl_status_name(unsigned status)
{
	static const char *const n[] = {
		[REPL_ST_OK] = "ok", [REPL_ST_IO] = "io-error", [REPL_ST_NOSPC] = "no-space",
		[REPL_ST_INVAL] = "invalid", [REPL_ST_NOTSUP] = "not-supported",
		[REPL_ST_ROFS] = "read-only",
	};
	return NAME_OF(n, status);
}

uint32_t repl_status_from_errno(int err)
{
	switch (err) {
	case 0: return REPL_ST_OK;
	case -ENOSPC: return REPL_ST_NOSPC;
	case -EINVAL: return REPL_ST_INVAL;
	case -EOPNOTSUPP: return REPL_ST_NOTSUP;
	case -EROFS: return REPL_ST_ROFS;
	default: return REPL_ST_IO;
	}
}

int repl_status_to_errno(uint32_t status)
{
	switch (status) {
	case REPL_ST_OK: return 0;
	case REPL_ST_NOSPC: return -ENOSPC;
	case REPL_ST_INVAL: return -EINVAL;
	case REPL_ST_NOTSUP: return -EOPNOTSUPP;
	case REPL_ST_ROFS: return -EROFS;
	default: return -EIO;
	}
}

/* ---- validation (shared by decode and encode) ------------------------- */

#define BAD(msg) do { *why = (msg); return -EBADMSG; } while (0)

static bool zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static int check_range(uint64_t off, uint32_t len, uint32_t max, const char **why)
{
	uint64_t end;

	if (len == 0)
		BAD("zero length");
	if (len > max)
		BAD("length too large");
	if (!is_aligned(off, REPL_SECTOR) || !is_aligned(len, REPL_SECTOR))
		BAD("offset or length not 512-byte aligned");
	if (add_overflows_u64(off, len, &end))
		BAD("offset + length overflows");
	return 0;
}

static int check_data_crc(uint32_t flags, uint32_t crc, const uint8_t *data,
			  uint32_t len, const char **why)
{
	if (!(flags & REPL_IO_F_DATA_CRC)) {
		if (crc)
			BAD("data_crc set without the DATA_CRC flag");
		return 0;
	}
	if (crc32c(0, data, len) != crc)
		BAD("data CRC mismatch");
	return 0;
}

static int validate_bitmap(const struct repl_msg *m, const char **why)
{
	const struct repl_bitmap *b = &m->u.bitmap;
	uint64_t bits = (uint64_t)m->data_len * 8, end, aligned_total;

	if (b->total_bits == 0 || b->total_bits > (1ull << 40))
		BAD("bitmap total_bits out of range");
	if (b->flags & ~REPL_BM_F_KNOWN)
		BAD("unknown bitmap flags");
	if (m->data_len == 0 || m->data_len % 8 || m->data_len > REPL_MAX_BITMAP)
		BAD("bitmap chunk not a non-zero multiple of 8 bytes");
	if (b->first_bit % 64)
		BAD("bitmap first_bit not a multiple of 64");
	aligned_total = align_up(b->total_bits, 64);
	if (b->first_bit >= aligned_total || bits > aligned_total - b->first_bit)
		BAD("bitmap chunk past total_bits");
	end = b->first_bit + bits;
	if ((b->flags & REPL_BM_F_LAST) && end != aligned_total)
		BAD("last bitmap chunk does not end the bitmap");
	if ((b->flags & REPL_BM_F_UNKNOWN) &&
	    (!(b->flags & REPL_BM_F_LAST) || !zero(m->data, m->data_len)))
		BAD("UNKNOWN bitmap chunk that is not a last, all-zero one");
	if (end > b->total_bits) { /* the chunk holds the tail: padding bits zero */
		uint64_t pad_from = b->total_bits - b->first_bit;

		for (uint64_t i = pad_from; i < bits; i++)
			if (m->data[i / 8] & (1u << (i % 8)))
				BAD("bitmap bits set past total_bits");
	}
	return 0;
}

static int validate(const struct repl_msg *m, const char **why)
{
	const struct repl_io *io = &m->u.io;

	switch (m->type) {
	case REPL_MSG_FEATURES:
		if (m->u.features.proto_min == 0 ||
		    m->u.features.proto_min > m->u.features.proto_max)
			BAD("protocol version range empty or zero");
		return 0;
	case REPL_MSG_AUTH_CHALLENGE:
		if (m->u.auth.alg != REPL_AUTH_HMAC_SHA256)
			BAD("unknown auth algorithm");
		if (zero(m->nonce, sizeof(m->nonce)))
			BAD("all-zero auth nonce");
		return 0;
	case REPL_MSG_HELLO:
		if (m->u.hello.from_id >= REPL_MAX_NODES || m->u.hello.to_id >= REPL_MAX_NODES)
			BAD("member id out of range");
		if (m->u.hello.from_id == m->u.hello.to_id)
			BAD("hello from a member to itself");
		if (zero(m->u.hello.volume_uuid, 16))
			BAD("all-zero volume uuid");
		return 0;
	case REPL_MSG_STATE: {
		const struct repl_state *s = &m->u.state;

		if (s->role != REPL_ROLE_SECONDARY && s->role != REPL_ROLE_PRIMARY)
			BAD("unknown role");
		if (s->disk_state >= REPL_DISK_END)
			BAD("unknown disk state");
		if (s->flags & ~REPL_STATE_F_KNOWN)
			BAD("unknown state flags");
		if (s->disk_state == REPL_DISK_DISKLESS ? s->bm_grain != 0
		    : (!is_pow2(s->bm_grain) || s->bm_grain < 4096))
			BAD("bitmap grain not a power of two >= 4096 (0 when diskless)");
		if (!is_aligned(s->size, REPL_SECTOR))
			BAD("volume size not a multiple of 512");
		if (s->following > REPL_MAX_NODES)
			BAD("followed primary id out of range");
		return 0;
	}
	case REPL_MSG_BITMAP:
		return validate_bitmap(m, why);
	case REPL_MSG_WRITE:
	case REPL_MSG_RESYNC_DATA: {
		uint32_t ok = REPL_IO_F_DATA_CRC |
			      (m->type == REPL_MSG_WRITE ? REPL_IO_F_FUA : 0);

		if (io->flags & ~ok)
			BAD("flags not allowed for this message");
		if (io->length != m->data_len)
			BAD("length field disagrees with the frame length");
		if (check_range(io->offset, io->length, REPL_MAX_DATA, why))
			return -EBADMSG;
		return check_data_crc(io->flags, io->data_crc, m->data, m->data_len, why);
	}
	case REPL_MSG_TRIM:
	case REPL_MSG_WRITE_ZEROES:
	case REPL_MSG_READ_REQ: {
		uint32_t ok = m->type == REPL_MSG_TRIM ? REPL_IO_F_FUA
			    : m->type == REPL_MSG_READ_REQ ? REPL_IO_F_RESYNC
			    : REPL_IO_F_FUA | REPL_IO_F_NO_HOLE;

		if (io->flags & ~ok)
			BAD("flags not allowed for this message");
		if (io->data_crc)
			BAD("data_crc on a message without data");
		return check_range(io->offset, io->length,
				   m->type == REPL_MSG_READ_REQ ? REPL_MAX_DATA : REPL_MAX_RANGE, why);
	}
	case REPL_MSG_WRITE_ACK: case REPL_MSG_FLUSH_ACK: case REPL_MSG_TRIM_ACK:
	case REPL_MSG_WRITE_ZEROES_ACK: case REPL_MSG_BARRIER_ACK: case REPL_MSG_RESYNC_ACK:
		if (m->u.ack.status >= REPL_ST_END)
			BAD("unknown ack status");
		return 0;
	case REPL_MSG_AL_EXTENTS: {
		uint32_t prev = 0;

		if (m->u.al.flags & ~REPL_AL_F_KNOWN)
			BAD("unknown AL flags");
		if (m->u.al.count > REPL_MAX_AL_EXTENTS || m->data_len != 4 * m->u.al.count)
			BAD("extent count disagrees with the frame length");
		if ((m->u.al.flags & REPL_AL_F_UNKNOWN) && m->u.al.count)
			BAD("extents listed with UNKNOWN");
		for (uint32_t i = 0; i < m->u.al.count; i++) {
			uint32_t e = get_be32(m->data + 4 * i);

			if (i && e <= prev)
				BAD("extents not strictly ascending");
			prev = e;
		}
		return 0;
	}
	case REPL_MSG_PEER_ACK:
		if (m->u.peer_ack.count > REPL_MAX_PEER_ACKS)
			BAD("peer-ack count out of range");
		if (m->u.peer_ack.in_sync >> REPL_MAX_NODES)
			BAD("peer-ack in-sync set names a member id out of range");
		if (m->data_len != sizeof(struct repl_wire_peer_ack_entry) * m->u.peer_ack.count)
			BAD("peer-ack count disagrees with the frame length");
		for (uint32_t i = 0; i < m->u.peer_ack.count; i++) {
			const struct repl_wire_peer_ack_entry *e = (const void *)(m->data + 16 * i);

			if (!zero(&e->reserved, sizeof(e->reserved)))
				BAD("peer-ack entry reserved field not zero");
			if (be32_get(&e->peers) >> REPL_MAX_NODES)
				BAD("peer-ack names a member id out of range");
		}
		return 0;
	case REPL_MSG_VERIFY_REQ:
		if (io->flags)
			BAD("flags not allowed for this message");
		if (io->data_crc)
			BAD("data_crc on a message without data");
		return check_range(io->offset, io->length, REPL_MAX_DATA, why);
	case REPL_MSG_VERIFY_REPLY: {
		const struct repl_digest *d = &m->u.digest;

		if (d->status >= REPL_ST_END)
			BAD("unknown verify status");
		if (d->alg != REPL_DIGEST_SHA256)
			BAD("unknown digest algorithm");
		if (d->status != REPL_ST_OK && !zero(d->digest, sizeof(d->digest)))
			BAD("failed verify reply carries a digest");
		return 0;
	}
	case REPL_MSG_READ_REPLY: {
		const struct repl_read_reply *r = &m->u.read_reply;

		if (r->status >= REPL_ST_END)
			BAD("unknown read status");
		if (r->flags & ~REPL_IO_F_DATA_CRC)
			BAD("flags not allowed for this message");
		if (r->status != REPL_ST_OK) {
			if (m->data_len || r->flags || r->data_crc)
				BAD("failed read reply carries data");
			return 0;
		}
		if (m->data_len == 0 || !is_aligned(m->data_len, REPL_SECTOR))
			BAD("read reply data not a non-zero multiple of 512");
		return check_data_crc(r->flags, r->data_crc, m->data, m->data_len, why);
	}
	case REPL_MSG_ERROR:
	case REPL_MSG_DISCONNECT:
		if (m->u.error.reason >= REPL_REASON_END)
			BAD("unknown reason");
		for (const char *c = m->u.error.text; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				BAD("error text not printable ASCII");
		if (m->type == REPL_MSG_DISCONNECT && m->u.error.text[0])
			BAD("DISCONNECT carries no text");
		return 0;
	default: /* AUTH_RESPONSE, AUTH_OK, FLUSH, BARRIER, PING, PONG: any value */
		return 0;
	}
}

/* ---- extract / emit per wire struct ---------------------------------------- */

static int x_features(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_features *w = (const void *)p;

	m->u.features.proto_min = be32_get(&w->proto_min);
	m->u.features.proto_max = be32_get(&w->proto_max);
	m->u.features.features = be64_get(&w->features);
	memcpy(m->u.features.reserved, w->reserved, sizeof(w->reserved));
	return 0;
}

static void e_features(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_features *w = (void *)p;

	be32_set(&w->proto_min, m->u.features.proto_min);
	be32_set(&w->proto_max, m->u.features.proto_max);
	be64_set(&w->features, m->u.features.features);
	memcpy(w->reserved, m->u.features.reserved, sizeof(w->reserved));
}

static int x_challenge(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_auth_challenge *w = (const void *)p;

	m->u.auth.alg = be32_get(&w->alg);
	m->u.auth.node_id = be32_get(&w->node_id);
	memcpy(m->nonce, w->nonce, sizeof(m->nonce));
	return 0;
}

static void e_challenge(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_auth_challenge *w = (void *)p;

	be32_set(&w->alg, m->u.auth.alg);
	be32_set(&w->node_id, m->u.auth.node_id);
	memcpy(w->nonce, m->nonce, sizeof(w->nonce));
}

static int x_hello(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_hello *w = (const void *)p;

	memcpy(m->u.hello.volume_uuid, w->volume_uuid, 16);
	m->u.hello.from_id = be32_get(&w->from_id);
	m->u.hello.to_id = be32_get(&w->to_id);
	return 0;
}

static void e_hello(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_hello *w = (void *)p;

	memcpy(w->volume_uuid, m->u.hello.volume_uuid, 16);
	be32_set(&w->from_id, m->u.hello.from_id);
	be32_set(&w->to_id, m->u.hello.to_id);
}

static int x_response(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	memcpy(m->mac, p, REPL_MAC_LEN);
	return 0;
}

static void e_response(const struct repl_msg *m, uint8_t *p) { memcpy(p, m->mac, REPL_MAC_LEN); }

static int x_none(const uint8_t *p, size_t len, struct repl_msg *m, const char **why) { return 0; }
static void e_none(const struct repl_msg *m, uint8_t *p) {}

static int x_state(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_state *w = (const void *)p;
	struct repl_state *s = &m->u.state;

	s->role = w->role;
	s->disk_state = w->disk_state;
	s->flags = be16_get(&w->flags);
	s->bm_grain = be32_get(&w->bm_grain);
	s->size = be64_get(&w->size);
	memcpy(s->volume_uuid, w->volume_uuid, sizeof(s->volume_uuid));
	s->gen_current = be64_get(&w->gen_current);
	s->gen_bitmap = be64_get(&w->gen_bitmap);
	s->gen_history[0] = be64_get(&w->gen_history[0]);
	s->gen_history[1] = be64_get(&w->gen_history[1]);
	s->node_id = be32_get(&w->node_id);
	s->following = be32_get(&w->following);
	return 0;
}

static void e_state(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_state *w = (void *)p;
	const struct repl_state *s = &m->u.state;

	w->role = s->role;
	w->disk_state = s->disk_state;
	be16_set(&w->flags, s->flags);
	be32_set(&w->bm_grain, s->bm_grain);
	be64_set(&w->size, s->size);
	memcpy(w->volume_uuid, s->volume_uuid, sizeof(w->volume_uuid));
	be64_set(&w->gen_current, s->gen_current);
	be64_set(&w->gen_bitmap, s->gen_bitmap);
	be64_set(&w->gen_history[0], s->gen_history[0]);
	be64_set(&w->gen_history[1], s->gen_history[1]);
	be32_set(&w->node_id, s->node_id);
	be32_set(&w->following, s->following);
}

static int x_bitmap(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_bitmap *w = (const void *)p;

	if (!zero(&w->reserved, sizeof(w->reserved)))
		BAD("reserved field not zero");
	m->u.bitmap.total_bits = be64_get(&w->total_bits);
	m->u.bitmap.first_bit = be64_get(&w->first_bit);
	m->u.bitmap.flags = be32_get(&w->flags);
	return 0;
}

static void e_bitmap(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_bitmap *w = (void *)p;

	be64_set(&w->total_bits, m->u.bitmap.total_bits);
	be64_set(&w->first_bit, m->u.bitmap.first_bit);
	be32_set(&w->flags, m->u.bitmap.flags);
}

static int x_write(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_write *w = (const void *)p;

	if (!zero(&w->reserved, sizeof(w->reserved)))
		BAD("reserved field not zero");
	m->u.io.id = be64_get(&w->id);
	m->u.io.offset = be64_get(&w->offset);
	m->u.io.length = be32_get(&w->length);
	m->u.io.flags = be32_get(&w->flags);
	m->u.io.data_crc = be32_get(&w->data_crc);
	return 0;
}

static void e_write(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_write *w = (void *)p;

	be64_set(&w->id, m->u.io.id);
	be64_set(&w->offset, m->u.io.offset);
	be32_set(&w->length, m->u.io.length);
	be32_set(&w->flags, m->u.io.flags);
	be32_set(&w->data_crc, m->u.io.data_crc);
}

static int x_range(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_range *w = (const void *)p;

	m->u.io.id = be64_get(&w->id);
	m->u.io.offset = be64_get(&w->offset);
	m->u.io.length = be32_get(&w->length);
	m->u.io.flags = be32_get(&w->flags);
	m->u.io.data_crc = 0;
	return 0;
}

static void e_range(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_range *w = (void *)p;

	be64_set(&w->id, m->u.io.id);
	be64_set(&w->offset, m->u.io.offset);
	be32_set(&w->length, m->u.io.length);
	be32_set(&w->flags, m->u.io.flags);
}

static int x_ack(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_ack *w = (const void *)p;

	if (!zero(&w->reserved, sizeof(w->reserved)))
		BAD("reserved field not zero");
	m->u.ack.id = be64_get(&w->id);
	m->u.ack.status = be32_get(&w->status);
	return 0;
}

static void e_ack(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_ack *w = (void *)p;

	be64_set(&w->id, m->u.ack.id);
	be32_set(&w->status, m->u.ack.status);
}

static int x_u64(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	m->u.value = be64_get((const struct be64 *)p);
	return 0;
}

static void e_u64(const struct repl_msg *m, uint8_t *p) { be64_set((struct be64 *)p, m->u.value); }

static int x_read_reply(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_read_reply *w = (const void *)p;

	if (!zero(&w->reserved, sizeof(w->reserved)))
		BAD("reserved field not zero");
	m->u.read_reply.id = be64_get(&w->id);
	m->u.read_reply.status = be32_get(&w->status);
	m->u.read_reply.flags = be32_get(&w->flags);
	m->u.read_reply.data_crc = be32_get(&w->data_crc);
	return 0;
}

static void e_read_reply(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_read_reply *w = (void *)p;

	be64_set(&w->id, m->u.read_reply.id);
	be32_set(&w->status, m->u.read_reply.status);
	be32_set(&w->flags, m->u.read_reply.flags);
	be32_set(&w->data_crc, m->u.read_reply.data_crc);
}

static int x_al(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_al_extents *w = (const void *)p;

	m->u.al.count = be32_get(&w->count);
	m->u.al.flags = be32_get(&w->flags);
	return 0;
}

static int x_peer_ack(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_peer_ack *w = (const void *)p;

	m->u.peer_ack.count = be32_get(&w->count);
	m->u.peer_ack.in_sync = be32_get(&w->in_sync);
	return 0;
}

static void e_peer_ack(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_peer_ack *w = (void *)p;

	be32_set(&w->count, m->u.peer_ack.count);
	be32_set(&w->in_sync, m->u.peer_ack.in_sync);
}

void repl_peer_ack_entry(const struct repl_msg *m, uint32_t i, uint64_t *id, uint32_t *peers)
{
	const struct repl_wire_peer_ack_entry *e = (const void *)(m->data + 16 * i);

	*id = be64_get(&e->id);
	*peers = be32_get(&e->peers);
}

void repl_peer_ack_put(uint8_t *data, uint32_t i, uint64_t id, uint32_t peers)
{
	struct repl_wire_peer_ack_entry *e = (void *)(data + 16 * i);

	be64_set(&e->id, id);
	be32_set(&e->peers, peers);
	memset(&e->reserved, 0, sizeof(e->reserved));
}

static void e_al(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_al_extents *w = (void *)p;

	be32_set(&w->count, m->u.al.count);
	be32_set(&w->flags, m->u.al.flags);
}

static int x_digest(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_digest *w = (const void *)p;

	m->u.digest.id = be64_get(&w->id);
	m->u.digest.status = be32_get(&w->status);
	m->u.digest.alg = be32_get(&w->alg);
	memcpy(m->u.digest.digest, w->digest, sizeof(w->digest));
	return 0;
}

static void e_digest(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_digest *w = (void *)p;

	be64_set(&w->id, m->u.digest.id);
	be32_set(&w->status, m->u.digest.status);
	be32_set(&w->alg, m->u.digest.alg);
	memcpy(w->digest, m->u.digest.digest, sizeof(w->digest));
}

static int x_error(const uint8_t *p, size_t len, struct repl_msg *m, const char **why)
{
	const struct repl_wire_error *w = (const void *)p;
	size_t n = len - sizeof(*w);

	if (!zero(&w->reserved, sizeof(w->reserved)))
		BAD("reserved field not zero");
	m->u.error.reason = be32_get(&w->reason);
	if (memchr(p + sizeof(*w), 0, n))
		BAD("error text contains NUL");
	memcpy(m->u.error.text, p + sizeof(*w), n);
	m->u.error.text[n] = 0;
	return 0;
}

static void e_error(const struct repl_msg *m, uint8_t *p)
{
	struct repl_wire_error *w = (void *)p;

	be32_set(&w->reason, m->u.error.reason); /* the text is data: see encode */
}

/* The dispatch table: payload bounds are checked before extract() runs. */
#define D(t, n, lo, hi, b, x, e) [t] = { n, lo, hi, b, x, e }
#define ACK(t, n) D(t, n, 16, 16, 16, x_ack, e_ack)
static const struct msg_desc msg_table[REPL_MSG_TYPE_END] = {
	D(REPL_MSG_FEATURES, "FEATURES", 32, 32, 32, x_features, e_features),
	D(REPL_MSG_AUTH_CHALLENGE, "AUTH_CHALLENGE", 40, 40, 40, x_challenge, e_challenge),
	D(REPL_MSG_AUTH_RESPONSE, "AUTH_RESPONSE", 32, 32, 32, x_response, e_response),
	D(REPL_MSG_AUTH_OK, "AUTH_OK", 0, 0, 0, x_none, e_none),
	D(REPL_MSG_HELLO, "HELLO", 24, 24, 24, x_hello, e_hello),
	D(REPL_MSG_STATE, "STATE", 72, 72, 72, x_state, e_state),
	D(REPL_MSG_BITMAP, "BITMAP", 24 + 8, 24 + REPL_MAX_BITMAP, 24, x_bitmap, e_bitmap),
	D(REPL_MSG_AL_EXTENTS, "AL_EXTENTS", 8, 8 + 4 * REPL_MAX_AL_EXTENTS, 8, x_al, e_al),
	D(REPL_MSG_WRITE, "WRITE", 32 + REPL_SECTOR, 32 + REPL_MAX_DATA, 32, x_write, e_write),
	ACK(REPL_MSG_WRITE_ACK, "WRITE_ACK"),
	D(REPL_MSG_FLUSH, "FLUSH", 8, 8, 8, x_u64, e_u64),
	ACK(REPL_MSG_FLUSH_ACK, "FLUSH_ACK"),
	D(REPL_MSG_TRIM, "TRIM", 24, 24, 24, x_range, e_range),
	ACK(REPL_MSG_TRIM_ACK, "TRIM_ACK"),
	D(REPL_MSG_WRITE_ZEROES, "WRITE_ZEROES", 24, 24, 24, x_range, e_range),
	ACK(REPL_MSG_WRITE_ZEROES_ACK, "WRITE_ZEROES_ACK"),
	D(REPL_MSG_BARRIER, "BARRIER", 8, 8, 8, x_u64, e_u64),
	D(REPL_MSG_PEER_ACK, "PEER_ACK", 8, 8 + 16 * REPL_MAX_PEER_ACKS, 8, x_peer_ack,
	  e_peer_ack),
	ACK(REPL_MSG_BARRIER_ACK, "BARRIER_ACK"),
	D(REPL_MSG_READ_REQ, "READ_REQ", 24, 24, 24, x_range, e_range),
	D(REPL_MSG_READ_REPLY, "READ_REPLY", 24, 24 + REPL_MAX_DATA, 24, x_read_reply, e_read_reply),
	D(REPL_MSG_RESYNC_DATA, "RESYNC_DATA", 32 + REPL_SECTOR, 32 + REPL_MAX_DATA, 32, x_write, e_write),
	ACK(REPL_MSG_RESYNC_ACK, "RESYNC_ACK"),
	D(REPL_MSG_RESYNC_START, "RESYNC_START", 8, 8, 8, x_u64, e_u64),
	D(REPL_MSG_RESYNC_DONE, "RESYNC_DONE", 8, 8, 8, x_u64, e_u64),
	D(REPL_MSG_VERIFY_REQ, "VERIFY_REQ", 24, 24, 24, x_range, e_range),
	D(REPL_MSG_VERIFY_REPLY, "VERIFY_REPLY", 48, 48, 48, x_digest, e_digest),
	D(REPL_MSG_PING, "PING", 8, 8, 8, x_u64, e_u64),
	D(REPL_MSG_PONG, "PONG", 8, 8, 8, x_u64, e_u64),
	D(REPL_MSG_ERROR, "ERROR", 8, 8 + REPL_MAX_ERROR_TEXT, 8, x_error, e_error),
	D(REPL_MSG_DISCONNECT, "DISCONNECT", 8, 8, 8, x_error, e_error),
};

static const struct msg_desc *desc_of(uint16_t type)
{
	if (type >= REPL_MSG_TYPE_END || !msg_table[type].name)
		return NULL;
	return &msg_table[type];
}

int repl_msg_bounds(uint16_t type, uint32_t *min, uint32_t *max)
{
	const struct msg_desc *d = desc_of(type);

	if (!d)
		return -EBADMSG;
	*min = d->min;
	*max = d->max;
	return 0;
}

static bool has_data(uint16_t type)
{
	return type == REPL_MSG_WRITE || type == REPL_MSG_RESYNC_DATA ||
	       type == REPL_MSG_READ_REPLY || type == REPL_MSG_BITMAP ||
	       type == REPL_MSG_AL_EXTENTS || type == REPL_MSG_PEER_ACK;
}

/* ---- header ------------------------------------------------------------- */

int repl_hdr_decode(const uint8_t *buf, size_t len, struct repl_hdr *h, const char **why)
{
	const struct repl_wire_hdr *w = (const void *)buf;
	const struct msg_desc *d;

	if (len < REPL_HDR_LEN)
		return -EAGAIN;
	if (be32_get(&w->magic) != REPL_MAGIC_V1)
		BAD("bad frame magic");
	if (crc32c(0, buf, REPL_HDR_CRC_LEN) != be32_get(&w->hdr_crc))
		BAD("frame header CRC mismatch");
	h->type = be16_get(&w->type);
	h->flags = be16_get(&w->flags);
	h->length = be32_get(&w->length);
	if (h->flags)
		BAD("unknown frame flags");
	d = desc_of(h->type);
	if (!d)
		BAD("unknown message type");
	if (h->length < d->min || h->length > d->max)
		BAD("payload length out of bounds for the message type");
	return 0;
}

void repl_hdr_encode(uint8_t *buf, uint16_t type, uint32_t length)
{
	struct repl_wire_hdr *w = (void *)buf;

	be32_set(&w->magic, REPL_MAGIC_V1);
	be16_set(&w->type, type);
	be16_set(&w->flags, 0);
	be32_set(&w->length, length);
	be32_set(&w->hdr_crc, crc32c(0, buf, REPL_HDR_CRC_LEN));
}

/* ---- messages ---------------------------------------------------------- */

int repl_msg_decode(uint16_t type, const uint8_t *payload, size_t len,
		    struct repl_msg *m, const char **why)
{
	const struct msg_desc *d = desc_of(type);
	int ret;

	if (!d)
		BAD("unknown message type");
	if (len < d->min || len > d->max)
		BAD("payload length out of bounds for the message type");
	memset(m, 0, sizeof(*m));
	m->type = type;
	ret = d->extract(payload, len, m, why);
	if (ret)
		return ret;
	if (has_data(type)) {
		m->data = payload + d->body;
		m->data_len = (uint32_t)(len - d->body);
	}
	return validate(m, why);
}

ssize_t repl_msg_payload_len(const struct repl_msg *m)
{
	const struct msg_desc *d = desc_of(m->type);
	size_t n;

	if (!d)
		return -EINVAL;
	n = d->body;
	if (has_data(m->type))
		n += m->data_len;
	else if (m->type == REPL_MSG_ERROR)
		n += strnlen(m->u.error.text, sizeof(m->u.error.text));
	if (n < d->min || n > d->max)
		return -EINVAL;
	return (ssize_t)n;
}

ssize_t repl_msg_encode_head(const struct repl_msg *m, uint8_t *buf, size_t cap)
{
	const struct msg_desc *d = desc_of(m->type);
	const char *why;
	ssize_t plen = repl_msg_payload_len(m);

	if (plen < 0 || !d)
		return -EINVAL;
	if (m->type == REPL_MSG_ERROR && m->u.error.text[REPL_MAX_ERROR_TEXT])
		return -EINVAL;
	if (validate(m, &why))
		return -EINVAL;
	if (cap < REPL_HDR_LEN + d->body)
		return -ENOSPC;
	memset(buf, 0, REPL_HDR_LEN + d->body);
	repl_hdr_encode(buf, m->type, (uint32_t)plen);
	d->emit(m, buf + REPL_HDR_LEN);
	return REPL_HDR_LEN + d->body;
}

ssize_t repl_msg_encode(const struct repl_msg *m, uint8_t *buf, size_t cap)
{
	ssize_t head, plen = repl_msg_payload_len(m);

	if (plen < 0)
		return -EINVAL;
	if (cap < REPL_HDR_LEN + (size_t)plen)
		return -ENOSPC;
	head = repl_msg_encode_head(m, buf, cap);
	if (head < 0)
		return head;
	if (m->type == REPL_MSG_ERROR)
		memcpy(buf + head, m->u.error.text, (size_t)plen - (size_t)(head - REPL_HDR_LEN));
	else if (has_data(m->type) && m->data_len)
		memcpy(buf + head, m->data, m->data_len);
	return REPL_HDR_LEN + plen;
}

int repl_features_agree(const struct repl_features *local,
			const struct repl_features *peer, uint32_t *version,
			uint64_t *features)
{
	uint32_t lo = MAX(local->proto_min, peer->proto_min);
	uint32_t hi = MIN(local->proto_max, peer->proto_max);

	if (lo > hi || lo == 0)
		return -EPROTONOSUPPORT;
	*version = hi;
	*features = local->features & peer->features;
	return 0;
}

/* ---- resumable parser ----------------------------------------------------- */

void repl_parser_init(struct repl_parser *p)
{
	memset(p, 0, sizeof(*p));
	p->state = REPL_PARSE_HEADER;
}

void repl_parser_free(struct repl_parser *p)
{
	free(p->buf);
	p->buf = NULL;
	p->cap = 0;
}

static int parse_error(struct repl_parser *p, const char *what, const char *why)
{
	p->state = REPL_PARSE_ERROR;
	snprintf(p->why, sizeof(p->why), "frame %llu (%s): %s",
		 (unsigned long long)p->frames + 1, what, why);
	return -EBADMSG;
}

int repl_parser_feed(struct repl_parser *p, const uint8_t *in, size_t len,
		     size_t *consumed, struct repl_msg *m)
{
	size_t used = 0, n;
	const char *why = NULL;

	*consumed = 0;
	for (;;) {
		switch (p->state) {
		case REPL_PARSE_ERROR:
			return -EBADMSG;
		case REPL_PARSE_HEADER:
			n = MIN(len - used, REPL_HDR_LEN - p->have);
			memcpy(p->hdr_buf + p->have, in + used, n);
			p->have += n;
			used += n;
			*consumed = used;
			if (p->have < REPL_HDR_LEN)
				return 0;
			if (repl_hdr_decode(p->hdr_buf, REPL_HDR_LEN, &p->hdr, &why))
				return parse_error(p, "header", why);
			if (p->hdr.length > p->cap) {
				uint8_t *nb = realloc(p->buf, p->hdr.length);

				if (!nb)
					return -ENOMEM;
				p->buf = nb;
				p->cap = p->hdr.length;
			}
			p->have = 0;
			p->state = REPL_PARSE_PAYLOAD;
			break;
		case REPL_PARSE_PAYLOAD:
			n = MIN(len - used, p->hdr.length - p->have);
			if (n)
				memcpy(p->buf + p->have, in + used, n);
			p->have += n;
			used += n;
			*consumed = used;
			if (p->have < p->hdr.length)
				return 0;
			if (repl_msg_decode(p->hdr.type, p->buf, p->hdr.length, m, &why))
				return parse_error(p, repl_msg_name(p->hdr.type), why);
			p->frames++;
			p->have = 0;
			p->state = REPL_PARSE_HEADER;
			return 1;
		}
	}
}
