/* nvmf_load: a small NVMe/TCP load generator for urbd's benchmarks.
 *
 * OUR OWN client (not the kernel initiator, not fio): ICReq, Fabrics Connect
 * on an admin queue (CC.EN, Identify controller/namespace, Number of Queues),
 * then N I/O queues (one TCP connection and one thread each) that keep QD
 * Read or Write commands in flight until a fixed number of commands (-n per
 * queue) has completed or -t seconds have passed. Small writes go in-capsule
 * (when they fit the Identify IOCCSZ), larger ones wait for the R2T and are
 * sent as H2CData PDUs of at most the ICResp MAXH2CDATA. No digests.
 * Every command must end with a success CQE (or a C2HData with SUCCESS);
 * any other status, a wrong CID or a short transfer counts as an error and
 * makes the exit status 1.
 *
 *   nvmf_load -a 127.0.0.1 -p 4420 -N nqn.2026-11.io.urbd:bench \
 *             -w randread|randwrite|read|write -b 4096 -d 32 [-q 1] [-n N] [-t S]
 *
 * Prints a human summary on stderr and one "RESULT k=v ..." line on stdout. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HOSTNQN "nqn.2014-08.org.nvmexpress:uuid:6e766d66-6c6f-6164-0000-000000000001"

enum { PDU_ICREQ = 0, PDU_ICRESP = 1, PDU_H2C_TERM = 2, PDU_C2H_TERM = 3, PDU_CMD = 4,
       PDU_RSP = 5, PDU_H2C_DATA = 6, PDU_C2H_DATA = 7, PDU_R2T = 9 };
#define F_DATA_LAST 0x04
#define F_DATA_SUCCESS 0x08
#define SQE_LEN 64
#define CMD_HLEN (8 + SQE_LEN)
#define DATA_HLEN 24
#define HIST_US 200000 /* 1 us buckets up to 200 ms, then one overflow bucket */

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "nvmf_load: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static inline void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- options / shared state ------------------------------------------ */

static const char *o_addr = "127.0.0.1", *o_nqn;
static int o_port = 4420, o_qd = 32, o_queues = 1;
static uint32_t o_bs = 4096;
static uint64_t o_count = 100000; /* per queue */
static double o_time;             /* 0: no limit */
static bool o_random, o_write;

static uint32_t maxh2c, incap_max, lba_shift;
static uint64_t vol_bytes;
static uint16_t cntlid;
static uint8_t *wdata; /* write payload (pattern) */
static uint64_t t_end;
static bool stop; /* -t expired: every queue stops issuing */

/* ---- blocking set-up I/O ----------------------------------------------- */

static void send_all(int fd, const void *b, size_t n)
{
	const uint8_t *p = b;

	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die("send: %s", k < 0 ? strerror(errno) : "0");
		p += k;
		n -= (size_t)k;
	}
}

static void recv_all(int fd, void *b, size_t n)
{
	uint8_t *p = b;

	while (n) {
		ssize_t k = recv(fd, p, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die("recv: %s", k < 0 ? strerror(errno) : "connection closed by target");
		p += k;
		n -= (size_t)k;
	}
}

/* one whole PDU into buf (at most cap bytes); returns its type */
static int recv_pdu(int fd, uint8_t *buf, size_t cap)
{
	uint32_t plen;

	recv_all(fd, buf, 8);
	plen = get32(buf + 4);
	if (plen < 8 || plen > cap)
		die("set-up PDU type %u of %u bytes", buf[0], plen);
	recv_all(fd, buf + 8, plen - 8);
	if (buf[0] == PDU_C2H_TERM)
		die("target sent C2HTermReq: FES %u FEI %u", get16(buf + 8), get32(buf + 10));
	return buf[0];
}

static int tcp_connect(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o_port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0 || inet_pton(AF_INET, o_addr, &sa.sin_addr) != 1)
		die("bad address %s", o_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect %s:%d: %s", o_addr, o_port, strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static uint32_t icreq(int fd)
{
	uint8_t p[128] = { PDU_ICREQ, 0, 128, 0 }, r[256];

	put32(p + 4, 128);
	/* PFV 0, HPDA 0, no digests, MAXR2T 0 (one outstanding R2T) */
	send_all(fd, p, sizeof(p));
	if (recv_pdu(fd, r, sizeof(r)) != PDU_ICRESP)
		die("expected ICResp, got PDU type %u", r[0]);
	if (get16(r + 8) != 0 || r[11] != 0)
		die("ICResp: PFV %u digests %u", get16(r + 8), r[11]);
	return get32(r + 12);
}

/* one synchronous command; returns the status field (0 = success) */
static uint16_t sync_cmd(int fd, uint8_t *sqe, const void *incap, uint32_t incap_len,
			 uint8_t *rdata, uint32_t rlen, uint64_t *result)
{
	static uint8_t buf[16384];
	uint8_t pdu[CMD_HLEN];
	uint16_t cid = get16(sqe + 2);
	uint32_t got = 0;

	pdu[0] = PDU_CMD;
	pdu[1] = 0;
	pdu[2] = CMD_HLEN;
	pdu[3] = incap_len ? CMD_HLEN : 0;
	put32(pdu + 4, CMD_HLEN + incap_len);
	memcpy(pdu + 8, sqe, SQE_LEN);
	send_all(fd, pdu, sizeof(pdu));
	if (incap_len)
		send_all(fd, incap, incap_len);
	for (;;) {
		int t = recv_pdu(fd, buf, sizeof(buf));

		if (t == PDU_C2H_DATA) {
			uint32_t off = get32(buf + 12), len = get32(buf + 16), pdo = buf[3];

			if (get16(buf + 8) != cid || off + len > rlen)
				die("set-up C2HData for cid %u off %u len %u", get16(buf + 8), off, len);
			memcpy(rdata + off, buf + pdo, len);
			got += len;
			if (buf[1] & F_DATA_SUCCESS)
				return got == rlen ? 0 : 0xffff;
			continue;
		}
		if (t != PDU_RSP)
			die("set-up: unexpected PDU type %d", t);
		if (get16(buf + 8 + 12) != cid)
			die("set-up: response for cid %u, wanted %u", get16(buf + 20), cid);
		if (result)
			*result = get64(buf + 8);
		return (get16(buf + 8 + 14) >> 1) & 0x7fff;
	}
}

static void sqe_init(uint8_t *s, uint8_t opc, uint16_t cid, uint32_t nsid)
{
	memset(s, 0, SQE_LEN);
	s[0] = opc;
	s[1] = 0x40; /* PSDT: SGL */
	put16(s + 2, cid);
	put32(s + 4, nsid);
}

static void sgl_incapsule(uint8_t *s, uint32_t len)
{
	put64(s + 24, 0);
	put32(s + 32, len);
	s[39] = 0x01; /* data block, offset */
}

static void sgl_transport(uint8_t *s, uint32_t len)
{
	put64(s + 24, 0);
	put32(s + 32, len);
	s[39] = 0x5A; /* transport data block */
}

static uint16_t fabrics_connect(int fd, uint16_t qid, uint16_t sqsize, uint16_t want_cntlid,
				uint16_t *got)
{
	uint8_t s[SQE_LEN], d[1024] = { 0 };
	uint64_t res = 0;
	uint16_t st;

	for (int i = 0; i < 16; i++)
		d[i] = (uint8_t)(0x6e + i);
	put16(d + 16, want_cntlid);
	snprintf((char *)d + 256, 256, "%s", o_nqn);
	snprintf((char *)d + 512, 256, "%s", HOSTNQN);
	sqe_init(s, 0x7f, 1, 0);
	s[4] = 0x01; /* fctype Connect */
	sgl_incapsule(s, sizeof(d));
	put16(s + 42, qid);
	put16(s + 44, sqsize);
	st = sync_cmd(fd, s, d, sizeof(d), NULL, 0, &res);
	if (got)
		*got = (uint16_t)res;
	return st;
}

/* ---- the admin queue --------------------------------------------------- */

static int admin_setup(void)
{
	int fd = tcp_connect();
	uint8_t s[SQE_LEN], id[4096];
	uint64_t res;
	uint16_t st;
	uint32_t ioccsz, mdts_bytes;
	uint8_t mdts;

	maxh2c = icreq(fd);
	if ((st = fabrics_connect(fd, 0, 31, 0xffff, &cntlid)))
		die("admin Connect to %s: status 0x%x", o_nqn, st);
	/* Property Set CC: EN, IOSQES 6, IOCQES 4 */
	sqe_init(s, 0x7f, 2, 0);
	s[4] = 0x00;
	put32(s + 44, 0x14);
	put64(s + 48, (6u << 16) | (4u << 20) | 1u);
	if ((st = sync_cmd(fd, s, NULL, 0, NULL, 0, NULL)))
		die("Property Set CC.EN: status 0x%x", st);
	for (int i = 0;; i++) {
		sqe_init(s, 0x7f, 3, 0);
		s[4] = 0x04;
		put32(s + 44, 0x1c);
		if ((st = sync_cmd(fd, s, NULL, 0, NULL, 0, &res)))
			die("Property Get CSTS: status 0x%x", st);
		if (res & 1)
			break;
		if (i > 500)
			die("CSTS.RDY never set");
		usleep(10000);
	}
	sqe_init(s, 0x06, 4, 0);
	put32(s + 40, 1); /* CNS 1: controller */
	sgl_transport(s, sizeof(id));
	if ((st = sync_cmd(fd, s, NULL, 0, id, sizeof(id), NULL)))
		die("Identify controller: status 0x%x", st);
	ioccsz = get32(id + 1792);
	mdts = id[77];
	incap_max = ioccsz * 16 > SQE_LEN ? ioccsz * 16 - SQE_LEN : 0;
	mdts_bytes = mdts ? 4096u << mdts : UINT32_MAX;
	sqe_init(s, 0x06, 5, 1);
	put32(s + 40, 0); /* CNS 0: namespace 1 */
	sgl_transport(s, sizeof(id));
	if ((st = sync_cmd(fd, s, NULL, 0, id, sizeof(id), NULL)))
		die("Identify namespace: status 0x%x", st);
	lba_shift = id[128 + 4 * (id[26] & 0xf) + 2];
	vol_bytes = get64(id) << lba_shift;
	sqe_init(s, 0x09, 6, 0);
	put32(s + 40, 0x07); /* Number of Queues */
	put32(s + 44, (uint32_t)(o_queues - 1) | ((uint32_t)(o_queues - 1) << 16));
	if ((st = sync_cmd(fd, s, NULL, 0, NULL, 0, &res)))
		die("Set Features Number of Queues: status 0x%x", st);
	if ((int)(res & 0xffff) + 1 < o_queues || (int)(res >> 16) + 1 < o_queues)
		die("target granted %u/%u I/O queues, wanted %d", (unsigned)(res & 0xffff) + 1,
		    (unsigned)(res >> 16) + 1, o_queues);
	fprintf(stderr, "nvmf_load: %s controller %u: MAXH2CDATA %u, IOCCSZ %u (in-capsule <= %u), "
		"MDTS %u (%u bytes), namespace %" PRIu64 " MiB, LBA %u bytes\n", o_nqn, cntlid,
		maxh2c, ioccsz, incap_max, mdts, mdts_bytes, vol_bytes >> 20, 1u << lba_shift);
	if (o_bs > mdts_bytes || o_bs % (1u << lba_shift) || o_bs > vol_bytes)
		die("block size %u does not fit MDTS/LBA size/volume", o_bs);
	if (maxh2c < 4096)
		die("MAXH2CDATA %u below 4096", maxh2c);
	return fd;
}

/* ---- I/O queues -------------------------------------------------------- */

struct slot {
	uint64_t t0;
	uint32_t c2h_got;
	bool busy;
};

struct ioq {
	pthread_t th;
	int fd, qid;
	struct slot *slot;
	uint16_t *free_cid;
	int n_free, inflight;
	uint64_t issued, done, errors, bytes;
	uint64_t rng, seq, lo, hi;
	uint64_t *hist, lat_sum;
	/* output batch */
	struct iovec *iov;
	int n_iov, max_iov;
	uint8_t *arena;
	size_t arena_used, arena_cap;
	/* input */
	uint8_t *rbuf;
	size_t rh, rt, rcap;
	uint64_t skip;
	char err[160];
};

static void qerr(struct ioq *q, const char *fmt, ...)
{
	va_list ap;

	q->errors++;
	if (q->err[0])
		return;
	va_start(ap, fmt);
	vsnprintf(q->err, sizeof(q->err), fmt, ap);
	va_end(ap);
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void flush(struct ioq *q)
{
	struct iovec *v = q->iov;
	int n = q->n_iov;

	while (n) {
		ssize_t k = writev(q->fd, v, n > IOV_MAX ? IOV_MAX : n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die("qid %d: writev: %s", q->qid, k < 0 ? strerror(errno) : "0");
		while (n && (size_t)k >= v->iov_len) {
			k -= (ssize_t)v->iov_len;
			v++;
			n--;
		}
		if (n && k) {
			v->iov_base = (uint8_t *)v->iov_base + k;
			v->iov_len -= (size_t)k;
		}
	}
	q->n_iov = 0;
	q->arena_used = 0;
}

static void out(struct ioq *q, const void *p, size_t len)
{
	if (q->n_iov == q->max_iov)
		flush(q);
	q->iov[q->n_iov].iov_base = (void *)p;
	q->iov[q->n_iov++].iov_len = len;
}

static uint8_t *arena(struct ioq *q, size_t len)
{
	uint8_t *p;

	if (q->arena_used + len > q->arena_cap)
		flush(q);
	p = q->arena + q->arena_used;
	q->arena_used += len;
	return p;
}

static bool may_issue(struct ioq *q)
{
	if (q->issued >= o_count || __atomic_load_n(&stop, __ATOMIC_RELAXED))
		return false;
	if (t_end && (q->issued & 15) == 0 && now_ns() >= t_end) {
		__atomic_store_n(&stop, true, __ATOMIC_RELAXED);
		return false;
	}
	return q->n_free > 0;
}

static void issue(struct ioq *q)
{
	uint16_t cid = q->free_cid[--q->n_free];
	struct slot *sl = &q->slot[cid];
	uint64_t off, span = q->hi - q->lo;
	uint32_t nlb = o_bs >> lba_shift;
	uint8_t *p = arena(q, CMD_HLEN), *s = p + 8;
	bool incap = o_write && o_bs <= incap_max;

	if (o_random) {
		off = q->lo + (xorshift(&q->rng) % (span / o_bs)) * o_bs;
	} else {
		if (q->seq + o_bs > q->hi)
			q->seq = q->lo;
		off = q->seq;
		q->seq += o_bs;
	}
	p[0] = PDU_CMD;
	p[1] = 0;
	p[2] = CMD_HLEN;
	p[3] = incap ? CMD_HLEN : 0;
	put32(p + 4, CMD_HLEN + (incap ? o_bs : 0));
	sqe_init(s, o_write ? 0x01 : 0x02, cid, 1);
	if (incap)
		sgl_incapsule(s, o_bs);
	else
		sgl_transport(s, o_bs);
	put64(s + 40, off >> lba_shift);
	put32(s + 48, nlb - 1);
	out(q, p, CMD_HLEN);
	if (incap)
		out(q, wdata, o_bs);
	sl->busy = true;
	sl->c2h_got = 0;
	sl->t0 = now_ns();
	q->issued++;
	q->inflight++;
}

static void complete(struct ioq *q, uint16_t cid, uint16_t status)
{
	struct slot *sl = &q->slot[cid];
	uint64_t lat = now_ns() - sl->t0, us = lat / 1000;

	if (status)
		qerr(q, "cid %u: status 0x%x (SCT %u SC 0x%02x)", cid, status,
		     (status >> 8) & 7, status & 0xff);
	else if (!o_write && sl->c2h_got != o_bs)
		qerr(q, "cid %u: read returned %u of %u bytes", cid, sl->c2h_got, o_bs);
	else
		q->bytes += o_bs;
	sl->busy = false;
	q->free_cid[q->n_free++] = cid;
	q->inflight--;
	q->done++;
	q->lat_sum += lat;
	q->hist[us < HIST_US ? us : HIST_US]++;
}

static struct slot *slot_of(struct ioq *q, uint16_t cid)
{
	if (cid >= o_qd || !q->slot[cid].busy) {
		qerr(q, "PDU for cid %u which is not in flight", cid);
		return NULL;
	}
	return &q->slot[cid];
}

static void on_r2t(struct ioq *q, const uint8_t *h)
{
	uint16_t cid = get16(h + 8), ttag = get16(h + 10);
	uint32_t off = get32(h + 12), len = get32(h + 16);

	if (!slot_of(q, cid))
		return;
	if (!o_write || (uint64_t)off + len > o_bs || !len) {
		qerr(q, "cid %u: R2T offset %u length %u", cid, off, len);
		return;
	}
	while (len) {
		uint32_t k = len < maxh2c ? len : maxh2c;
		uint8_t *p = arena(q, DATA_HLEN);

		memset(p, 0, DATA_HLEN);
		p[0] = PDU_H2C_DATA;
		p[1] = k == len ? F_DATA_LAST : 0;
		p[2] = DATA_HLEN;
		p[3] = DATA_HLEN;
		put32(p + 4, DATA_HLEN + k);
		put16(p + 8, cid);
		put16(p + 10, ttag);
		put32(p + 12, off);
		put32(p + 16, k);
		out(q, p, DATA_HLEN);
		out(q, wdata + off, k);
		off += k;
		len -= k;
	}
}

/* parse what is in rbuf; false on a fatal protocol problem */
static bool parse(struct ioq *q)
{
	for (;;) {
		size_t avail = q->rt - q->rh;
		const uint8_t *h = q->rbuf + q->rh;
		uint32_t hlen, plen;

		if (q->skip) {
			size_t k = avail < q->skip ? avail : q->skip;

			q->rh += k;
			q->skip -= k;
			if (q->skip)
				return true;
			continue;
		}
		if (avail < 8)
			return true;
		hlen = h[2];
		plen = get32(h + 4);
		if (h[0] == PDU_C2H_TERM) {
			if (avail < plen && plen <= q->rcap)
				return true;
			qerr(q, "target sent C2HTermReq: FES %u FEI %u", get16(h + 8), get32(h + 10));
			return false;
		}
		if (h[1] & 3) {
			qerr(q, "digest flags 0x%x though none were negotiated", h[1]);
			return false;
		}
		if (hlen < 8 || plen < hlen) {
			qerr(q, "bad PDU header: type %u hlen %u plen %u", h[0], hlen, plen);
			return false;
		}
		if (avail < hlen)
			return true;
		switch (h[0]) {
		case PDU_RSP:
			if (slot_of(q, get16(h + 20)))
				complete(q, get16(h + 20), (get16(h + 22) >> 1) & 0x7fff);
			break;
		case PDU_C2H_DATA: {
			uint16_t cid = get16(h + 8);
			uint32_t off = get32(h + 12), len = get32(h + 16);
			struct slot *sl = slot_of(q, cid);

			if (!sl)
				break;
			if (o_write || off != sl->c2h_got || (uint64_t)off + len > o_bs ||
			    h[3] + len > plen)
				qerr(q, "cid %u: C2HData offset %u length %u", cid, off, len);
			sl->c2h_got += len;
			if (h[1] & F_DATA_SUCCESS)
				complete(q, cid, 0);
			break;
		}
		case PDU_R2T:
			on_r2t(q, h);
			break;
		default:
			qerr(q, "unexpected PDU type %u", h[0]);
			return false;
		}
		q->rh += hlen;
		q->skip = plen - hlen; /* data (discarded; counted above) */
	}
}

static void *ioq_run(void *arg)
{
	struct ioq *q = arg;

	while (may_issue(q))
		issue(q);
	flush(q);
	while (q->inflight) {
		ssize_t k;

		if (q->rh == q->rt) {
			q->rh = q->rt = 0;
		} else if (q->rt == q->rcap) {
			memmove(q->rbuf, q->rbuf + q->rh, q->rt - q->rh);
			q->rt -= q->rh;
			q->rh = 0;
		}
		k = recv(q->fd, q->rbuf + q->rt, q->rcap - q->rt, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			qerr(q, "recv: %s", k < 0 ? strerror(errno) : "connection closed by target");
			break;
		}
		q->rt += (size_t)k;
		if (!parse(q))
			break;
		while (may_issue(q))
			issue(q);
		flush(q);
	}
	if (q->inflight)
		q->errors += (uint64_t)q->inflight;
	return NULL;
}

static void usage(void)
{
	fprintf(stderr, "usage: nvmf_load -N SUBNQN [-a ADDR] [-p PORT] [-w randread|randwrite|read|write]\n"
		"                 [-b BYTES] [-d QD] [-q QUEUES] [-n COMMANDS_PER_QUEUE] [-t SECONDS]\n");
	exit(2);
}

static uint64_t parse_size(const char *s)
{
	char *e;
	uint64_t v = strtoull(s, &e, 0);

	switch (*e) {
	case 'k': case 'K': return v << 10;
	case 'm': case 'M': return v << 20;
	case 'g': case 'G': return v << 30;
	}
	return v;
}

int main(int argc, char **argv)
{
	struct ioq *qs;
	uint64_t t0, t1, done = 0, errors = 0, bytes = 0, latsum = 0, *hist, acc = 0, p99 = 0;
	const char *wl = "randread";
	int c, afd;
	double secs;

	while ((c = getopt(argc, argv, "a:p:N:w:b:d:q:n:t:h")) != -1) {
		switch (c) {
		case 'a': o_addr = optarg; break;
		case 'p': o_port = atoi(optarg); break;
		case 'N': o_nqn = optarg; break;
		case 'w': wl = optarg; break;
		case 'b': o_bs = (uint32_t)parse_size(optarg); break;
		case 'd': o_qd = atoi(optarg); break;
		case 'q': o_queues = atoi(optarg); break;
		case 'n': o_count = parse_size(optarg); break;
		case 't': o_time = atof(optarg); break;
		default: usage();
		}
	}
	if (!o_nqn || o_qd < 1 || o_qd > 127 || o_queues < 1 || o_queues > 64 || !o_bs)
		usage();
	if (!strcmp(wl, "randread")) o_random = true;
	else if (!strcmp(wl, "randwrite")) o_random = o_write = true;
	else if (!strcmp(wl, "write")) o_write = true;
	else if (strcmp(wl, "read")) usage();

	afd = admin_setup();
	if (posix_memalign((void **)&wdata, 4096, o_bs))
		die("out of memory");
	for (uint32_t i = 0; i < o_bs; i++)
		wdata[i] = (uint8_t)(i * 131 + 7);
	qs = calloc((size_t)o_queues, sizeof(*qs));
	for (int i = 0; i < o_queues; i++) {
		struct ioq *q = &qs[i];
		uint16_t got;
		uint16_t st;
		uint64_t region = (vol_bytes / (uint64_t)o_queues) / o_bs * o_bs;
		size_t pieces = o_bs / maxh2c + 2;

		q->qid = i + 1;
		q->fd = tcp_connect();
		if (icreq(q->fd) != maxh2c)
			die("qid %d: MAXH2CDATA differs from the admin queue's", q->qid);
		if ((st = fabrics_connect(q->fd, (uint16_t)q->qid, (uint16_t)o_qd, cntlid, &got)))
			die("I/O queue %d Connect: status 0x%x", q->qid, st);
		q->slot = calloc((size_t)o_qd, sizeof(*q->slot));
		q->free_cid = calloc((size_t)o_qd, sizeof(*q->free_cid));
		for (int k = 0; k < o_qd; k++)
			q->free_cid[q->n_free++] = (uint16_t)(o_qd - 1 - k);
		q->max_iov = o_qd * (int)(2 + 2 * pieces) + 16;
		q->iov = calloc((size_t)q->max_iov, sizeof(*q->iov));
		q->arena_cap = (size_t)o_qd * (CMD_HLEN + DATA_HLEN * pieces) + 256;
		q->arena = malloc(q->arena_cap);
		q->rcap = 256 * 1024;
		q->rbuf = malloc(q->rcap);
		q->hist = calloc(HIST_US + 1, sizeof(*q->hist));
		q->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)q->qid << 32) ^ now_ns();
		q->lo = region * (uint64_t)i;
		q->hi = q->lo + region;
		q->seq = q->lo;
		if (!q->slot || !q->free_cid || !q->iov || !q->arena || !q->rbuf || !q->hist ||
		    region < o_bs)
			die("out of memory / volume too small");
	}
	t0 = now_ns();
	if (o_time > 0)
		t_end = t0 + (uint64_t)(o_time * 1e9);
	for (int i = 0; i < o_queues; i++)
		if (pthread_create(&qs[i].th, NULL, ioq_run, &qs[i]))
			die("pthread_create failed");
	for (int i = 0; i < o_queues; i++)
		pthread_join(qs[i].th, NULL);
	t1 = now_ns();
	hist = calloc(HIST_US + 1, sizeof(*hist));
	for (int i = 0; i < o_queues; i++) {
		struct ioq *q = &qs[i];

		done += q->done;
		errors += q->errors;
		bytes += q->bytes;
		latsum += q->lat_sum;
		for (int k = 0; k <= HIST_US; k++)
			hist[k] += q->hist[k];
		if (q->err[0])
			fprintf(stderr, "nvmf_load: qid %d: %s (%" PRIu64 " errors)\n", q->qid,
				q->err, q->errors);
		close(q->fd);
	}
	for (int k = 0; k <= HIST_US; k++) {
		acc += hist[k];
		if (acc * 100 >= done * 99) {
			p99 = (uint64_t)k + 1; /* upper edge of the 1 us bucket */
			break;
		}
	}
	close(afd);
	secs = (double)(t1 - t0) / 1e9;
	fprintf(stderr, "nvmf_load: %s bs %u qd %d x %d queue(s): %" PRIu64 " commands in %.2f s, "
		"%.0f IOPS, %.1f MiB/s, latency mean %.1f us p99 %" PRIu64 " us, %" PRIu64 " errors\n",
		wl, o_bs, o_qd, o_queues, done, secs, (double)done / secs,
		(double)bytes / secs / 1048576.0, done ? (double)latsum / (double)done / 1000.0 : 0.0,
		p99, errors);
	printf("RESULT ios=%" PRIu64 " secs=%.3f iops=%.0f mibps=%.1f lat_mean_us=%.1f "
	       "lat_p99_us=%" PRIu64 " errors=%" PRIu64 "\n", done, secs, (double)done / secs,
	       (double)bytes / secs / 1048576.0,
	       done ? (double)latsum / (double)done / 1000.0 : 0.0, p99, errors);
	return errors ? 1 : 0;
}
