/* csi/attach_nbd_nl.c: generic netlink for the kernel's nbd driver (see
 * attach_nbd_nl.h). Netlink integers are host byte order; every header
 * and attribute is padded to 4 bytes (NLMSG_ALIGN / NLA_ALIGN).
 *
 * NBD_CMD_CONNECT (drivers/block/nbd.c, nbd_genl_connect): without
 * NBD_ATTR_INDEX the kernel takes a free device or creates one, and its
 * reply carries NBD_ATTR_INDEX (u32). NBD_ATTR_SIZE_BYTES and
 * NBD_ATTR_SOCKETS are required; the other u64 attributes are optional.
 * Both commands need CAP_SYS_ADMIN.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>

#include "attach_nbd_hs.h"
#include "attach_nbd_nl.h"
#include "log.h"
#include "util.h"

#define TAG "attach"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

/* ---- message building -------------------------------------------------- */

struct nlw {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;
};

static void *reserve(struct nlw *w, size_t n)
{
	size_t padded = NLA_ALIGN(n);
	if (w->overflow || w->cap - w->len < padded) {
		w->overflow = true;
		return NULL;
	}
	void *p = w->buf + w->len;
	memset(p, 0, padded);
	w->len += padded;
	return p;
}

static void put_hdr(struct nlw *w, uint16_t type, uint32_t seq, uint8_t cmd)
{
	struct nlmsghdr nh = { .nlmsg_type = type, .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK,
			       .nlmsg_seq = seq };
	/* the controller and nbd are both at version 1 */
	struct genlmsghdr gh = { .cmd = cmd, .version = 1 };
	void *p = reserve(w, NLMSG_HDRLEN);
	if (p)
		memcpy(p, &nh, sizeof(nh));
	p = reserve(w, GENL_HDRLEN);
	if (p)
		memcpy(p, &gh, sizeof(gh));
}

static void put_attr(struct nlw *w, uint16_t type, const void *data, size_t n)
{
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + n), .nla_type = type };
	if (NLA_HDRLEN + n > UINT16_MAX) {
		w->overflow = true;
		return;
	}
	uint8_t *p = reserve(w, NLA_HDRLEN + n);
	if (!p)
		return;
	memcpy(p, &a, sizeof(a));
	if (n)
		memcpy(p + NLA_HDRLEN, data, n);
}

static void put_u32(struct nlw *w, uint16_t type, uint32_t v) { put_attr(w, type, &v, 4); }
static void put_u64(struct nlw *w, uint16_t type, uint64_t v) { put_attr(w, type, &v, 8); }

/* a nest's start: its offset, for nest_end to write the length */
static size_t nest_start(struct nlw *w, uint16_t type)
{
	size_t off = w->len;
	put_attr(w, type | NLA_F_NESTED, NULL, 0);
	return off;
}

static void nest_end(struct nlw *w, size_t off)
{
	if (w->overflow)
		return;
	uint16_t n = (uint16_t)MIN(w->len - off, (size_t)UINT16_MAX);
	if (w->len - off > UINT16_MAX)
		w->overflow = true;
	memcpy(w->buf + off, &n, sizeof(n)); /* nla_len is the first field */
}

static int finish(struct nlw *w)
{
	if (w->overflow || w->len > UINT32_MAX)
		return -EMSGSIZE;
	uint32_t n = (uint32_t)w->len;
	memcpy(w->buf, &n, sizeof(n)); /* nlmsg_len is the first field */
	return (int)n;
}

int attach_nbd_nl_put_getfamily(uint8_t *buf, size_t cap, uint32_t seq, const char *name)
{
	struct nlw w = { .buf = buf, .cap = cap };
	put_hdr(&w, GENL_ID_CTRL, seq, CTRL_CMD_GETFAMILY);
	put_attr(&w, CTRL_ATTR_FAMILY_NAME, name, strlen(name) + 1);
	return finish(&w);
}

int attach_nbd_nl_put_connect(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
			      const struct attach_nbd_nl_connect *c)
{
	struct nlw w = { .buf = buf, .cap = cap };
	put_hdr(&w, family, seq, NBD_CMD_CONNECT);
	put_u64(&w, NBD_ATTR_SIZE_BYTES, c->size_bytes);
	put_u64(&w, NBD_ATTR_BLOCK_SIZE_BYTES, c->block_size);
	put_u64(&w, NBD_ATTR_SERVER_FLAGS, c->server_flags);
	if (c->timeout_s >= 0)
		put_u64(&w, NBD_ATTR_TIMEOUT, (uint64_t)c->timeout_s);
	if (c->dead_conn_timeout_s > 0)
		put_u64(&w, NBD_ATTR_DEAD_CONN_TIMEOUT, (uint64_t)c->dead_conn_timeout_s);
	if (c->backend_id)
		put_attr(&w, NBD_ATTR_BACKEND_IDENTIFIER, c->backend_id, strlen(c->backend_id) + 1);
	size_t socks = nest_start(&w, NBD_ATTR_SOCKETS);
	for (int i = 0; i < c->n_fds; i++) {
		size_t item = nest_start(&w, NBD_SOCK_ITEM);
		put_u32(&w, NBD_SOCK_FD, (uint32_t)c->fds[i]);
		nest_end(&w, item);
	}
	nest_end(&w, socks);
	return finish(&w);
}

int attach_nbd_nl_put_disconnect(uint8_t *buf, size_t cap, uint16_t family, uint32_t seq,
				 uint32_t index)
{
	struct nlw w = { .buf = buf, .cap = cap };
	put_hdr(&w, family, seq, NBD_CMD_DISCONNECT);
	put_u32(&w, NBD_ATTR_INDEX, index);
	return finish(&w);
}

/* ---- reply parsing ----------------------------------------------------- */

/* the attributes in [p, p+len): `want` into r; -EBADMSG if one overruns */
static int scan_attrs(const uint8_t *p, size_t len, uint16_t want, struct attach_nbd_nl_reply *r)
{
	while (len >= NLA_HDRLEN) {
		struct nlattr a;
		memcpy(&a, p, sizeof(a));
		if (a.nla_len < NLA_HDRLEN || a.nla_len > len)
			return -EBADMSG;
		size_t n = a.nla_len - NLA_HDRLEN;
		if ((a.nla_type & NLA_TYPE_MASK) == want && (n == 2 || n == 4)) {
			uint16_t v16;
			uint32_t v32;
			if (n == 2) {
				memcpy(&v16, p + NLA_HDRLEN, 2);
				v32 = v16;
			} else {
				memcpy(&v32, p + NLA_HDRLEN, 4);
			}
			r->value = v32;
			r->have_value = true;
		}
		size_t step = NLA_ALIGN(a.nla_len);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return 0;
}

/* NLMSG_ERROR: nlmsgerr, then with NLM_F_ACK_TLVS the extended-ack
 * attributes (the request is not echoed: NETLINK_CAP_ACK) */
static int parse_error(const struct nlmsghdr *nh, const uint8_t *p, size_t len,
		       struct attach_nbd_nl_reply *r)
{
	struct nlmsgerr e;
	if (len < sizeof(e))
		return -EBADMSG;
	memcpy(&e, p, sizeof(e));
	r->done = true;
	r->error = e.error;
	if (!(nh->nlmsg_flags & NLM_F_ACK_TLVS))
		return 0;
	size_t off = sizeof(e);
	if (!(nh->nlmsg_flags & NLM_F_CAPPED))
		off += e.msg.nlmsg_len >= sizeof(e.msg) ? e.msg.nlmsg_len - sizeof(e.msg) : 0;
	off = NLMSG_ALIGN(off);
	while (off + NLA_HDRLEN <= len) {
		struct nlattr a;
		memcpy(&a, p + off, sizeof(a));
		if (a.nla_len < NLA_HDRLEN || a.nla_len > len - off)
			break;
		if ((a.nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
			size_t n = MIN((size_t)a.nla_len - NLA_HDRLEN, sizeof(r->msg) - 1);
			memcpy(r->msg, p + off + NLA_HDRLEN, n);
			r->msg[n] = '\0';
			r->msg[strcspn(r->msg, "\n")] = '\0';
		}
		off += NLA_ALIGN(a.nla_len);
	}
	return 0;
}

int attach_nbd_nl_parse(const uint8_t *buf, size_t len, uint32_t seq, uint16_t attr,
			struct attach_nbd_nl_reply *r)
{
	while (len >= NLMSG_HDRLEN) {
		struct nlmsghdr nh;
		memcpy(&nh, buf, sizeof(nh));
		if (nh.nlmsg_len < NLMSG_HDRLEN || nh.nlmsg_len > len)
			return -EBADMSG;
		const uint8_t *p = buf + NLMSG_HDRLEN;
		size_t n = nh.nlmsg_len - NLMSG_HDRLEN;
		if (nh.nlmsg_seq == seq) {
			int rc = 0;
			if (nh.nlmsg_type == NLMSG_ERROR)
				rc = parse_error(&nh, p, n, r);
			else if (nh.nlmsg_type == NLMSG_DONE)
				r->done = true;
			else if (nh.nlmsg_type >= NLMSG_MIN_TYPE) {
				if (n < GENL_HDRLEN)
					return -EBADMSG;
				rc = scan_attrs(p + GENL_HDRLEN, n - GENL_HDRLEN, attr, r);
			}
			if (rc < 0)
				return rc;
		}
		size_t step = NLMSG_ALIGN(nh.nlmsg_len);
		if (step >= len)
			break;
		buf += step;
		len -= step;
	}
	return len > 0 && len < NLMSG_HDRLEN ? -EBADMSG : 0;
}

/* ---- the socket -------------------------------------------------------- */

uint32_t attach_nbd_nl_seq(void)
{
	static uint32_t seq;
	if (!seq)
		seq = (uint32_t)attach_nbd_now_ms() ^ ((uint32_t)getpid() << 16);
	return ++seq;
}

int attach_nbd_nl_open(void)
{
	int one = 1;
	int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (s < 0) {
		int rc = -errno;
		log_err(TAG, "netlink socket: %s", strerror(errno));
		return rc;
	}
	/* kernel error strings ("Attribute failed policy validation") in the
	 * log; an older kernel without them is fine */
	setsockopt(s, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	setsockopt(s, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	return s;
}

int attach_nbd_nl_call(int sock, const uint8_t *msg, size_t len, uint32_t seq, uint16_t attr,
		       struct attach_nbd_nl_reply *r, uint64_t deadline_ms)
{
	uint8_t buf[ATTACH_NBD_NL_BUF];
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };

	memset(r, 0, sizeof(*r));
	if (sendto(sock, msg, len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		int rc = -errno;
		log_err(TAG, "netlink send: %s", strerror(errno));
		return rc;
	}
	while (!r->done) {
		uint64_t now = attach_nbd_now_ms();
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int n = now < deadline_ms ? poll(&p, 1, (int)MIN(deadline_ms - now, (uint64_t)INT32_MAX))
					  : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int rc = n == 0 ? -ETIMEDOUT : -errno;
			log_err(TAG, "netlink: no answer from the kernel: %s", strerror(-rc));
			return rc;
		}
		ssize_t got = recv(sock, buf, sizeof(buf), MSG_TRUNC);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			int rc = -errno;
			log_err(TAG, "netlink recv: %s", strerror(errno));
			return rc;
		}
		if ((size_t)got > sizeof(buf) ||
		    attach_nbd_nl_parse(buf, (size_t)got, seq, attr, r) < 0) {
			log_err(TAG, "netlink: malformed or truncated reply (%zd bytes)", got);
			return -EBADMSG;
		}
	}
	return 0;
}

int attach_nbd_nl_family(int sock, uint16_t *family, uint64_t deadline_ms)
{
	uint8_t msg[64];
	struct attach_nbd_nl_reply r;
	uint32_t seq = attach_nbd_nl_seq();
	int n = attach_nbd_nl_put_getfamily(msg, sizeof(msg), seq, NBD_GENL_FAMILY_NAME);
	if (n < 0)
		return n;
	int rc = attach_nbd_nl_call(sock, msg, (size_t)n, seq, CTRL_ATTR_FAMILY_ID, &r, deadline_ms);
	if (rc < 0)
		return rc;
	if (r.error == -ENOENT) {
		log_err(TAG, "no generic netlink family \"%s\": the nbd module is not loaded "
			"(modprobe nbd)", NBD_GENL_FAMILY_NAME);
		return -ENODEV;
	}
	if (r.error < 0 || !r.have_value) {
		rc = r.error < 0 ? r.error : -EBADMSG;
		log_err(TAG, "netlink CTRL_CMD_GETFAMILY %s: %s", NBD_GENL_FAMILY_NAME,
			r.error < 0 ? strerror(-r.error) : "no family id in the reply");
		return rc;
	}
	*family = (uint16_t)r.value;
	return 0;
}
