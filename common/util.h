/* Small helpers shared by every module: arithmetic with overflow checks,
 * alignment, byte order, and a few macros. Header-only on purpose: each
 * helper is a line or two and is tested in tests/unit/test_util.c. */
#ifndef URBD_UTIL_H
#define URBD_UTIL_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))
#define UNUSED __attribute__((unused))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* true when a + b overflowed; *sum is then undefined */
static inline bool add_overflows_u64(uint64_t a, uint64_t b, uint64_t *sum)
{
	return __builtin_add_overflow(a, b, sum);
}

static inline bool is_pow2(uint64_t x) { return x && !(x & (x - 1)); }
/* align must be a power of two */
static inline uint64_t align_down(uint64_t x, uint64_t align) { return x & ~(align - 1); }
static inline uint64_t align_up(uint64_t x, uint64_t align) { return (x + align - 1) & ~(align - 1); }
static inline bool is_aligned(uint64_t x, uint64_t align) { return (x & (align - 1)) == 0; }

/* Unaligned-safe big/little-endian loads and stores for wire and disk
 * formats: parsers take (const uint8_t *, size_t) and never cast. */
static inline uint16_t get_be16(const void *p) { uint16_t v; memcpy(&v, p, 2); return be16toh(v); }
static inline uint32_t get_be32(const void *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }
static inline uint64_t get_be64(const void *p) { uint64_t v; memcpy(&v, p, 8); return be64toh(v); }
static inline void put_be16(void *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static inline void put_be32(void *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static inline void put_be64(void *p, uint64_t v) { v = htobe64(v); memcpy(p, &v, 8); }
static inline uint16_t get_le16(const void *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t get_le32(const void *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t get_le64(const void *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static inline void put_le16(void *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void put_le32(void *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void put_le64(void *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

/* Volume names double as NBD export names, NQN suffixes and directory
 * names: [a-z0-9][a-z0-9._-]{0,62}, which also covers Kubernetes PV names. */
#define URBD_NAME_MAX 63
bool urbd_name_valid(const char *name);

/* Parses "1G", "512M", "4096", "1GiB" (binary units). 0 or -EINVAL/-ERANGE. */
int urbd_parse_size(const char *s, uint64_t *out);
/* Formats bytes as "1.0 GiB"; returns buf. */
char *urbd_format_size(uint64_t bytes, char *buf, size_t len);

uint64_t now_ns(void); /* CLOCK_MONOTONIC */
uint64_t wall_ns(void); /* CLOCK_REALTIME */

#endif
