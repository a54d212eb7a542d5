/* csi/attach_nbd_hs.c: NBD handshake client (see attach_nbd_hs.h).
 *
 *   S: "NBDMAGIC" "IHAVEOPT" u16 handshake flags
 *   C: u32 client flags
 *   C: "IHAVEOPT" u32 NBD_OPT_GO u32 len | u32 namelen, name, u16 1, u16 NBD_INFO_BLOCK_SIZE
 *   S: reply* until NBD_REP_ACK (then transmission) or NBD_REP_ERR_* (refused)
 *
 * proto.md "Option haggling"; NBD_INFO_EXPORT is mandatory before the ACK.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "attach_nbd_hs.h"
#include "log.h"
#include "nbd/nbd_proto.h"
#include "util.h"

#define TAG "attach"
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_FLAG_ERROR | 8u) /* not in nbd_proto.h */

uint64_t attach_nbd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- pure parsers and encoders ----------------------------------------- */

int attach_nbd_parse_greeting(const uint8_t *buf, size_t len, uint16_t *hs_flags)
{
	if (len < ATTACH_NBD_GREETING_LEN)
		return -EAGAIN;
	if (get_be64(buf) != NBD_MAGIC || get_be64(buf + 8) != NBD_IHAVEOPT)
		return -EPROTO;
	*hs_flags = get_be16(buf + 16);
	if (!(*hs_flags & NBD_FLAG_FIXED_NEWSTYLE))
		return -EPROTO;
	return 0;
}

ssize_t attach_nbd_put_go(uint8_t *out, size_t cap, const char *export_name)
{
	size_t n = strlen(export_name);
	size_t payload = 4 + n + 2 + 2;

	if (n > NBD_NAME_MAX_WIRE || cap < NBD_OPT_HDR_LEN + payload)
		return -EMSGSIZE;
	put_be64(out, NBD_IHAVEOPT);
	put_be32(out + 8, NBD_OPT_GO);
	put_be32(out + 12, (uint32_t)payload);
	uint8_t *p = out + NBD_OPT_HDR_LEN;
	put_be32(p, (uint32_t)n);
	memcpy(p + 4, export_name, n);
	put_be16(p + 4 + n, 1);
	put_be16(p + 6 + n, NBD_INFO_BLOCK_SIZE);
	return (ssize_t)(NBD_OPT_HDR_LEN + payload);
}

int attach_nbd_parse_opt_reply(const uint8_t *buf, size_t len, uint32_t option,
			       struct attach_nbd_opt_reply *r)
{
	if (len < NBD_OPT_REPLY_HDR_LEN)
		return -EAGAIN;
	if (get_be64(buf) != NBD_OPT_REPLY_MAGIC)
		return -EBADMSG;
	r->option = get_be32(buf + 8);
	r->type = get_be32(buf + 12);
	r->length = get_be32(buf + 16);
	if (r->option != option)
		return -EBADMSG;
	if (r->length > ATTACH_NBD_REPLY_MAX)
		return -EMSGSIZE;
	return 0;
}

static bool pow2(uint32_t x) { return x && !(x & (x - 1)); }

int attach_nbd_parse_info(const uint8_t *buf, size_t len, struct attach_nbd_export *e)
{
	if (len < 2)
		return -EPROTO;
	switch (get_be16(buf)) {
	case NBD_INFO_EXPORT:
		if (len != 12)
			return -EPROTO;
		e->size = get_be64(buf + 2);
		e->flags = get_be16(buf + 10);
		e->have_export = true;
		return 0;
	case NBD_INFO_BLOCK_SIZE: {
		if (len != 14)
			return -EPROTO;
		uint32_t min = get_be32(buf + 2), pref = get_be32(buf + 6), max = get_be32(buf + 10);
		/* proto.md "Block size constraints" */
		if (!pow2(min) || min > 65536 || !pow2(pref) || pref < min ||
		    (max != UINT32_MAX && (max < min || max % min != 0)))
			return -EPROTO;
		e->min_block = min;
		e->pref_block = pref;
		e->max_block = max;
		e->have_block_size = true;
		return 0;
	}
	default:
		return 0; /* NBD_INFO_NAME, _DESCRIPTION, or newer */
	}
}

int attach_nbd_rep_errno(uint32_t type)
{
	switch (type) {
	case NBD_REP_ERR_UNKNOWN: return -ENOENT;
	case NBD_REP_ERR_POLICY: return -EACCES;
	case NBD_REP_ERR_UNSUP: return -EOPNOTSUPP;
	case NBD_REP_ERR_PLATFORM: return -EOPNOTSUPP;
	case NBD_REP_ERR_TLS_REQD: return -EPROTONOSUPPORT;
	case NBD_REP_ERR_INVALID: return -EINVAL;
	case NBD_REP_ERR_BLOCK_SIZE_REQD: return -EINVAL;
	case NBD_REP_ERR_SHUTDOWN: return -ESHUTDOWN;
	case NBD_REP_ERR_TOO_BIG: return -E2BIG;
	default: return -EPROTO;
	}
}

const char *attach_nbd_rep_name(uint32_t type)
{
	switch (type) {
	case NBD_REP_ACK: return "NBD_REP_ACK";
	case NBD_REP_SERVER: return "NBD_REP_SERVER";
	case NBD_REP_INFO: return "NBD_REP_INFO";
	case NBD_REP_META_CONTEXT: return "NBD_REP_META_CONTEXT";
	case NBD_REP_ERR_UNSUP: return "NBD_REP_ERR_UNSUP";
	case NBD_REP_ERR_POLICY: return "NBD_REP_ERR_POLICY";
	case NBD_REP_ERR_INVALID: return "NBD_REP_ERR_INVALID";
	case NBD_REP_ERR_PLATFORM: return "NBD_REP_ERR_PLATFORM";
	case NBD_REP_ERR_TLS_REQD: return "NBD_REP_ERR_TLS_REQD";
	case NBD_REP_ERR_UNKNOWN: return "NBD_REP_ERR_UNKNOWN";
	case NBD_REP_ERR_SHUTDOWN: return "NBD_REP_ERR_SHUTDOWN";
	case NBD_REP_ERR_BLOCK_SIZE_REQD: return "NBD_REP_ERR_BLOCK_SIZE_REQD";
	case NBD_REP_ERR_TOO_BIG: return "NBD_REP_ERR_TOO_BIG";
	default: return type & NBD_REP_FLAG_ERROR ? "unknown NBD_REP_ERR" : "unknown NBD_REP";
	}
}

size_t attach_nbd_put_disc(uint8_t *out, size_t cap)
{
	if (cap < NBD_REQUEST_LEN)
		return 0;
	memset(out, 0, NBD_REQUEST_LEN);
	put_be32(out, NBD_REQUEST_MAGIC);
	put_be16(out + 6, NBD_CMD_DISC);
	return NBD_REQUEST_LEN;
}

/* ---- bounded socket I/O ------------------------------------------------ */

/* waits for `events` on fd until the deadline: 0, -ETIMEDOUT or -errno */
static int wait_fd(int fd, short events, uint64_t deadline_ms)
{
	for (;;) {
		uint64_t now = attach_nbd_now_ms();
		if (now >= deadline_ms)
			return -ETIMEDOUT;
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, (int)MIN(deadline_ms - now, (uint64_t)INT32_MAX));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* all len bytes or -errno; a peer that closes is -ECONNRESET */
static int xfer(int fd, void *buf, size_t len, bool out, uint64_t deadline_ms)
{
	uint8_t *p = buf;
	while (len > 0) {
		int rc = wait_fd(fd, out ? POLLOUT : POLLIN, deadline_ms);
		if (rc < 0)
			return rc;
		ssize_t n = out ? send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT)
				: recv(fd, p, len, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int set_blocking(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, on ? fl & ~O_NONBLOCK : fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* non-blocking connect bounded by the deadline; the socket is left
 * blocking, which is how the kernel's nbd driver expects to get it */
static int dial_addr(const struct sockaddr *sa, socklen_t salen, uint64_t deadline_ms)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (connect(fd, sa, salen) < 0) {
		if (errno != EINPROGRESS) {
			rc = -errno;
			goto out;
		}
		rc = wait_fd(fd, POLLOUT, deadline_ms);
		if (rc < 0)
			goto out;
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err) {
			rc = -err;
			goto out;
		}
	}
	if (sa->sa_family != AF_UNIX) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
	rc = set_blocking(fd, true);
out:
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int attach_nbd_dial(const struct attach_nbd_target *t, uint64_t deadline_ms)
{
	if (t->unix_path) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		if (strlen(t->unix_path) >= sizeof(sun.sun_path))
			return -ENAMETOOLONG;
		memcpy(sun.sun_path, t->unix_path, strlen(t->unix_path) + 1);
		int fd = dial_addr((struct sockaddr *)&sun, sizeof(sun), deadline_ms);
		if (fd < 0)
			log_err(TAG, "connect to unix:%s: %s", t->unix_path, strerror(-fd));
		return fd;
	}

	const char *port = t->port ? t->port : ATTACH_NBD_DEFAULT_PORT;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG };
	struct addrinfo *res = NULL;
	int g = getaddrinfo(t->host, port, &hints, &res);
	if (g != 0) {
		log_err(TAG, "resolve %s:%s: %s", t->host, port,
			g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
		return g == EAI_NONAME ? -EHOSTUNREACH : -EIO;
	}
	int fd = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = dial_addr(ai->ai_addr, ai->ai_addrlen, deadline_ms);
		if (fd >= 0 || fd == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		log_err(TAG, "connect to %s:%s: %s", t->host, port, strerror(-fd));
	return fd;
}

/* ---- the handshake ----------------------------------------------------- */

static int send_go(int fd, const char *peer, const char *export_name, uint16_t hs_flags,
		   uint64_t deadline_ms)
{
	uint8_t cflags[4];
	uint8_t go[NBD_OPT_HDR_LEN + 4 + NBD_NAME_MAX_WIRE + 4];

	/* NO_ZEROES only matters after NBD_OPT_EXPORT_NAME; echo it anyway */
	put_be32(cflags, NBD_FLAG_C_FIXED_NEWSTYLE | (hs_flags & NBD_FLAG_NO_ZEROES ?
						       NBD_FLAG_C_NO_ZEROES : 0));
	ssize_t n = attach_nbd_put_go(go, sizeof(go), export_name);
	if (n < 0) {
		log_err(TAG, "%s: export name of %zu bytes is too long", peer, strlen(export_name));
		return (int)n;
	}
	int rc = xfer(fd, cflags, sizeof(cflags), true, deadline_ms);
	if (rc == 0)
		rc = xfer(fd, go, (size_t)n, true, deadline_ms);
	if (rc < 0)
		log_err(TAG, "%s: send NBD_OPT_GO: %s", peer, strerror(-rc));
	return rc;
}

/* an NBD_REP_ERR_* reply: its message (UTF-8, maybe empty) goes in the log */
static int refused(const char *peer, const char *export_name,
		   const struct attach_nbd_opt_reply *r, const uint8_t *msg)
{
	int rc = attach_nbd_rep_errno(r->type);
	int mlen = (int)r->length;

	if (r->type == NBD_REP_ERR_UNKNOWN)
		log_err(TAG, "%s: no export '%s' on this server (%s%s%.*s)", peer, export_name,
			attach_nbd_rep_name(r->type), mlen ? ": " : "", mlen, (const char *)msg);
	else
		log_err(TAG, "%s: export '%s': NBD_OPT_GO refused: %s (0x%08x)%s%.*s", peer,
			export_name, attach_nbd_rep_name(r->type), r->type, mlen ? ": " : "",
			mlen, (const char *)msg);
	return rc;
}

int attach_nbd_handshake(int fd, const char *peer, const char *export_name,
			 uint64_t deadline_ms, struct attach_nbd_export *e)
{
	uint8_t hdr[NBD_OPT_REPLY_HDR_LEN], payload[ATTACH_NBD_REPLY_MAX + 1];
	struct attach_nbd_opt_reply r;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = xfer(fd, hdr, ATTACH_NBD_GREETING_LEN, false, deadline_ms);
	if (rc < 0) {
		log_err(TAG, "%s: read greeting: %s", peer, strerror(-rc));
		return rc;
	}
	rc = attach_nbd_parse_greeting(hdr, ATTACH_NBD_GREETING_LEN, &e->hs_flags);
	if (rc < 0) {
		log_err(TAG, "%s: not a fixed-newstyle NBD server (greeting %016llx %016llx %04x)",
			peer, (unsigned long long)get_be64(hdr), (unsigned long long)get_be64(hdr + 8),
			get_be16(hdr + 16));
		return rc;
	}
	rc = send_go(fd, peer, export_name, e->hs_flags, deadline_ms);
	if (rc < 0)
		return rc;

	for (int i = 0; i < ATTACH_NBD_REPLIES_MAX; i++) {
		rc = xfer(fd, hdr, sizeof(hdr), false, deadline_ms);
		if (rc < 0) {
			log_err(TAG, "%s: export '%s': read NBD_OPT_GO reply: %s", peer, export_name,
				strerror(-rc));
			return rc;
		}
		rc = attach_nbd_parse_opt_reply(hdr, sizeof(hdr), NBD_OPT_GO, &r);
		if (rc == -EMSGSIZE) {
			log_err(TAG, "%s: export '%s': %s reply of %u bytes (at most %d accepted)",
				peer, export_name, attach_nbd_rep_name(r.type), r.length,
				ATTACH_NBD_REPLY_MAX);
			return rc;
		}
		if (rc < 0) {
			log_err(TAG, "%s: export '%s': bad option reply header (magic %016llx, option %u)",
				peer, export_name, (unsigned long long)get_be64(hdr), get_be32(hdr + 8));
			return rc;
		}
		rc = xfer(fd, payload, r.length, false, deadline_ms);
		if (rc < 0) {
			log_err(TAG, "%s: export '%s': read %s payload: %s", peer, export_name,
				attach_nbd_rep_name(r.type), strerror(-rc));
			return rc;
		}
		if (r.type & NBD_REP_FLAG_ERROR)
			return refused(peer, export_name, &r, payload);
		switch (r.type) {
		case NBD_REP_INFO:
			rc = attach_nbd_parse_info(payload, r.length, e);
			if (rc < 0) {
				log_err(TAG, "%s: export '%s': malformed NBD_REP_INFO (type %u, %u bytes)",
					peer, export_name, r.length >= 2 ? get_be16(payload) : 0,
					r.length);
				return rc;
			}
			break;
		case NBD_REP_ACK:
			if (!e->have_export) {
				log_err(TAG, "%s: export '%s': NBD_REP_ACK without NBD_INFO_EXPORT",
					peer, export_name);
				return -EPROTO;
			}
			return 0;
		default:
			log_err(TAG, "%s: export '%s': unexpected %s (%u) to NBD_OPT_GO", peer,
				export_name, attach_nbd_rep_name(r.type), r.type);
			return -EPROTO;
		}
	}
	log_err(TAG, "%s: export '%s': no NBD_REP_ACK after %d replies", peer, export_name,
		ATTACH_NBD_REPLIES_MAX);
	return -EPROTO;
}

size_t attach_nbd_put_abort(uint8_t *out, size_t cap)
{
	if (cap < NBD_OPT_HDR_LEN)
		return 0;
	put_be64(out, NBD_IHAVEOPT);
	put_be32(out + 8, NBD_OPT_ABORT);
	put_be32(out + 12, 0);
	return NBD_OPT_HDR_LEN;
}

void attach_nbd_abandon(int fd, bool transmission)
{
	uint8_t b[NBD_REQUEST_LEN];

	if (fd < 0)
		return;
	size_t n = transmission ? attach_nbd_put_disc(b, sizeof(b)) : attach_nbd_put_abort(b, sizeof(b));
	/* best effort: a full send buffer or a dead peer is no reason to wait
	 * (and the spec lets a client close without reading ABORT's ack) */
	(void)!send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}
