/* csi/attach_nbd*.c without a kernel: target validation, backend
 * identifiers, the handshake parsers and the whole handshake client
 * against a fake NBD server on a socketpair (good replies, refusals,
 * truncated and oversized replies, a silent server), and the netlink
 * messages decoded back attribute by attribute. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/genetlink.h>
#include <linux/nbd-netlink.h>
#include <linux/netlink.h>

#include "attach.h"
#include "attach_nbd_hs.h"
#include "attach_nbd_nl.h"
#include "log.h"
#include "nbd/nbd_proto.h"
#include "util.h"

static struct attach_nbd_target good(void)
{
	return (struct attach_nbd_target){ .host = "10.0.2.2", .port = "10809",
					    .export_name = "vol-a" };
}

/* ---- validation and identifiers ---------------------------------------- */

static void test_validate(void **state)
{
	struct attach_nbd_target t = good();
	assert_int_equal(attach_nbd_target_validate(&t), 0);
	t.port = NULL;
	t.connections = ATTACH_NBD_MAX_CONNECTIONS;
	t.timeout_s = -1;
	t.block_size = 4096;
	assert_int_equal(attach_nbd_target_validate(&t), 0);
	t = (struct attach_nbd_target){ .unix_path = "/run/urbd/nbd.sock", .export_name = "v" };
	assert_int_equal(attach_nbd_target_validate(&t), 0);

	char longname[NBD_NAME_MAX_WIRE + 2];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	struct attach_nbd_target bad[] = {
		{ .port = "10809", .export_name = "v" },                  /* no host */
		{ .host = "h", .unix_path = "/s", .export_name = "v" },    /* both */
		{ .host = "", .export_name = "v" },
		{ .host = "a b", .export_name = "v" },
		{ .host = "a/b", .export_name = "v" },
		{ .host = "h", .port = "0", .export_name = "v" },
		{ .host = "h", .port = "65536", .export_name = "v" },
		{ .host = "h", .port = "80x", .export_name = "v" },
		{ .unix_path = "rel.sock", .export_name = "v" },
		{ .unix_path = "/s", .port = "1", .export_name = "v" },
		{ .host = "h" },
		{ .host = "h", .export_name = "" },
		{ .host = "h", .export_name = "a\nb" },
		{ .host = "h", .export_name = longname },
		{ .host = "h", .export_name = "v", .connections = -1 },
		{ .host = "h", .export_name = "v", .connections = ATTACH_NBD_MAX_CONNECTIONS + 1 },
		{ .host = "h", .export_name = "v", .timeout_s = -2 },
		{ .host = "h", .export_name = "v", .dead_conn_timeout_s = -1 },
		{ .host = "h", .export_name = "v", .block_size = 256 },
		{ .host = "h", .export_name = "v", .block_size = 1536 },
		{ .host = "h", .export_name = "v", .block_size = 8192 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (attach_nbd_target_validate(&bad[i]) != -EINVAL)
			fail_msg("bad target %zu accepted", i);
	}
	assert_int_equal(attach_nbd_target_validate(NULL), -EINVAL);
}

static void test_backend_id(void **state)
{
	char b[ATTACH_NBD_BACKEND_MAX];
	struct attach_nbd_target t = good();

	assert_int_equal(attach_nbd_backend_id(&t, b, sizeof(b)), 0);
	assert_string_equal(b, "urbd:10.0.2.2:10809/vol-a");
	t.port = NULL;
	assert_int_equal(attach_nbd_backend_id(&t, b, sizeof(b)), 0);
	assert_string_equal(b, "urbd:10.0.2.2:10809/vol-a");
	t.host = "fd00::1";
	t.port = "7000";
	assert_int_equal(attach_nbd_backend_id(&t, b, sizeof(b)), 0);
	assert_string_equal(b, "urbd:[fd00::1]:7000/vol-a");
	t = (struct attach_nbd_target){ .unix_path = "/run/u.sock", .export_name = "v" };
	assert_int_equal(attach_nbd_backend_id(&t, b, sizeof(b)), 0);
	assert_string_equal(b, "urbd:unix:/run/u.sock/v");
	/* too long for the buffer, or for the kernel's sysfs page */
	t = good();
	assert_int_equal(attach_nbd_backend_id(&t, b, 10), -ENAMETOOLONG);
	char big[ATTACH_NBD_BACKEND_MAX + 1], out[2 * ATTACH_NBD_BACKEND_MAX];
	memset(big, 'e', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	t.export_name = big;
	assert_int_equal(attach_nbd_backend_id(&t, out, sizeof(out)), -ENAMETOOLONG);
	assert_int_equal(attach_nbd_target_validate(&t), -EINVAL);
}

/* arguments are checked before any socket, netlink or sysfs access */
static void test_calls_reject_bad_args(void **state)
{
	char dev[64];
	struct attach_nbd_target t = good();
	t.port = "0";
	assert_int_equal(attach_nbd_connect(&t, dev, sizeof(dev), 10), -EINVAL);
	t = good();
	assert_int_equal(attach_nbd_connect(&t, NULL, 0, 10), -EINVAL);
	assert_int_equal(attach_nbd_connect(NULL, dev, sizeof(dev), 10), -EINVAL);
	assert_int_equal(attach_nbd_find(NULL, dev, sizeof(dev)), -EINVAL);
	assert_int_equal(attach_nbd_find("", dev, sizeof(dev)), -EINVAL);
	assert_int_equal(attach_nbd_disconnect("/dev/sda", 10), -EINVAL);
	assert_int_equal(attach_nbd_disconnect("/dev/nbd", 10), -EINVAL);
	assert_int_equal(attach_nbd_disconnect("nbd1x", 10), -EINVAL);
	assert_int_equal(attach_nbd_disconnect(NULL, 10), -EINVAL);
	/* a device that does not exist is not connected: nothing to do */
	assert_int_equal(attach_nbd_disconnect("/dev/nbd987654", 10), 0);
	assert_int_equal(attach_nbd_find("urbd:test:1/no-such-backend", dev, sizeof(dev)), -ENOENT);
	assert_string_equal(dev, "");
	assert_int_equal(attach_nbd_disconnect_backend("urbd:test:1/no-such-backend", 10), 0);
}

/* ---- handshake parsers ------------------------------------------------- */

static size_t greeting(uint8_t *b, uint16_t flags)
{
	put_be64(b, NBD_MAGIC);
	put_be64(b + 8, NBD_IHAVEOPT);
	put_be16(b + 16, flags);
	return ATTACH_NBD_GREETING_LEN;
}

static void test_parse_greeting(void **state)
{
	uint8_t b[ATTACH_NBD_GREETING_LEN];
	uint16_t f = 0;

	greeting(b, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	assert_int_equal(attach_nbd_parse_greeting(b, sizeof(b), &f), 0);
	assert_int_equal(f, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	assert_int_equal(attach_nbd_parse_greeting(b, sizeof(b) - 1, &f), -EAGAIN);
	greeting(b, 0); /* plain newstyle: no option haggling we can rely on */
	assert_int_equal(attach_nbd_parse_greeting(b, sizeof(b), &f), -EPROTO);
	greeting(b, NBD_FLAG_FIXED_NEWSTYLE);
	put_be64(b + 8, 0x00420281861253ULL); /* oldstyle's cliserv magic */
	assert_int_equal(attach_nbd_parse_greeting(b, sizeof(b), &f), -EPROTO);
}

static void test_put_go(void **state)
{
	uint8_t b[64];
	ssize_t n = attach_nbd_put_go(b, sizeof(b), "vol-a");

	assert_int_equal(n, 16 + 4 + 5 + 2 + 2);
	assert_true(get_be64(b) == NBD_IHAVEOPT);
	assert_int_equal(get_be32(b + 8), NBD_OPT_GO);
	assert_int_equal(get_be32(b + 12), 4 + 5 + 4);
	/* what the server's own parser makes of it */
	struct nbd_go_req *go = malloc(sizeof(*go));
	assert_non_null(go);
	assert_int_equal(nbd_parse_go(b + 16, (size_t)n - 16, go), 0);
	assert_string_equal(go->name, "vol-a");
	assert_int_equal(go->n_info, 1);
	assert_int_equal(go->info[0], NBD_INFO_BLOCK_SIZE);
	free(go);
	assert_int_equal(attach_nbd_put_go(b, 20, "vol-a"), -EMSGSIZE);
	char *big = malloc(NBD_NAME_MAX_WIRE + 2);
	memset(big, 'n', NBD_NAME_MAX_WIRE + 1);
	big[NBD_NAME_MAX_WIRE + 1] = '\0';
	uint8_t *out = malloc(2 * NBD_NAME_MAX_WIRE);
	assert_int_equal(attach_nbd_put_go(out, 2 * NBD_NAME_MAX_WIRE, big), -EMSGSIZE);
	free(out);
	free(big);
}

static size_t reply_hdr(uint8_t *b, uint32_t opt, uint32_t type, uint32_t len)
{
	put_be64(b, NBD_OPT_REPLY_MAGIC);
	put_be32(b + 8, opt);
	put_be32(b + 12, type);
	put_be32(b + 16, len);
	return NBD_OPT_REPLY_HDR_LEN;
}

static void test_parse_opt_reply(void **state)
{
	uint8_t b[NBD_OPT_REPLY_HDR_LEN];
	struct attach_nbd_opt_reply r;

	reply_hdr(b, NBD_OPT_GO, NBD_REP_INFO, 12);
	assert_int_equal(attach_nbd_parse_opt_reply(b, sizeof(b), NBD_OPT_GO, &r), 0);
	assert_int_equal(r.type, NBD_REP_INFO);
	assert_int_equal(r.length, 12);
	assert_int_equal(attach_nbd_parse_opt_reply(b, 19, NBD_OPT_GO, &r), -EAGAIN);
	assert_int_equal(attach_nbd_parse_opt_reply(b, sizeof(b), NBD_OPT_INFO, &r), -EBADMSG);
	reply_hdr(b, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, ATTACH_NBD_REPLY_MAX);
	assert_int_equal(attach_nbd_parse_opt_reply(b, sizeof(b), NBD_OPT_GO, &r), 0);
	reply_hdr(b, NBD_OPT_GO, NBD_REP_INFO, ATTACH_NBD_REPLY_MAX + 1);
	assert_int_equal(attach_nbd_parse_opt_reply(b, sizeof(b), NBD_OPT_GO, &r), -EMSGSIZE);
	assert_int_equal(r.length, ATTACH_NBD_REPLY_MAX + 1);
	reply_hdr(b, NBD_OPT_GO, NBD_REP_ACK, 0);
	b[0] ^= 1;
	assert_int_equal(attach_nbd_parse_opt_reply(b, sizeof(b), NBD_OPT_GO, &r), -EBADMSG);
}

static size_t info_export(uint8_t *b, uint64_t size, uint16_t flags)
{
	put_be16(b, NBD_INFO_EXPORT);
	put_be64(b + 2, size);
	put_be16(b + 10, flags);
	return 12;
}

static size_t info_bs(uint8_t *b, uint32_t min, uint32_t pref, uint32_t max)
{
	put_be16(b, NBD_INFO_BLOCK_SIZE);
	put_be32(b + 2, min);
	put_be32(b + 6, pref);
	put_be32(b + 10, max);
	return 14;
}

static void test_parse_info(void **state)
{
	uint8_t b[32];
	struct attach_nbd_export e = { 0 };

	assert_int_equal(attach_nbd_parse_info(b, info_export(b, 1ULL << 40, 0x1ed), &e), 0);
	assert_true(e.have_export);
	assert_true(e.size == 1ULL << 40);
	assert_int_equal(e.flags, 0x1ed);
	assert_int_equal(attach_nbd_parse_info(b, info_bs(b, 1, 4096, 32 << 20), &e), 0);
	assert_true(e.have_block_size);
	assert_int_equal(e.min_block, 1);
	assert_int_equal(e.pref_block, 4096);
	assert_int_equal(e.max_block, 32 << 20);
	assert_int_equal(attach_nbd_parse_info(b, info_bs(b, 512, 512, UINT32_MAX), &e), 0);
	/* the spec's rules: powers of two, min <= 64 KiB, pref >= min,
	 * max a multiple of min */
	assert_int_equal(attach_nbd_parse_info(b, info_bs(b, 3, 4096, 4096), &e), -EPROTO);
	assert_int_equal(attach_nbd_parse_info(b, info_bs(b, 0, 4096, 4096), &e), -EPROTO);
	assert_int_equal(attach_nbd_parse_info(b, info_bs(b, 1 << 17, 1 << 17, 1 << 17), &e), -EPROTO);
	assert_int_equal(attach_nbd_parse_info(b, info_bs(b, 4096, 512, 8192), &e), -EPROTO);
	assert_int_equal(attach_nbd_parse_info(b, info_bs(b, 512, 4096, 1000), &e), -EPROTO);
	assert_int_equal(attach_nbd_parse_info(b, info_bs(b, 4096, 4096, 512), &e), -EPROTO);
	/* wrong lengths for known types */
	assert_int_equal(attach_nbd_parse_info(b, 11, &e), -EPROTO);
	info_export(b, 1, 1);
	assert_int_equal(attach_nbd_parse_info(b, 13, &e), -EPROTO);
	assert_int_equal(attach_nbd_parse_info(b, 1, &e), -EPROTO);
	/* NBD_INFO_NAME and unknown types are skipped */
	put_be16(b, NBD_INFO_NAME);
	memcpy(b + 2, "vol", 3);
	assert_int_equal(attach_nbd_parse_info(b, 5, &e), 0);
	put_be16(b, 0x7777);
	assert_int_equal(attach_nbd_parse_info(b, 2, &e), 0);
	assert_true(e.size == 1ULL << 40); /* untouched */
}

static void test_rep_errno(void **state)
{
	assert_int_equal(attach_nbd_rep_errno(NBD_REP_ERR_UNKNOWN), -ENOENT);
	assert_int_equal(attach_nbd_rep_errno(NBD_REP_ERR_POLICY), -EACCES);
	assert_int_equal(attach_nbd_rep_errno(NBD_REP_ERR_UNSUP), -EOPNOTSUPP);
	assert_int_equal(attach_nbd_rep_errno(NBD_REP_ERR_TLS_REQD), -EPROTONOSUPPORT);
	assert_int_equal(attach_nbd_rep_errno(NBD_REP_ERR_SHUTDOWN), -ESHUTDOWN);
	assert_int_equal(attach_nbd_rep_errno(NBD_REP_ERR_TOO_BIG), -E2BIG);
	assert_int_equal(attach_nbd_rep_errno(NBD_REP_FLAG_ERROR | 99), -EPROTO);
	assert_string_equal(attach_nbd_rep_name(NBD_REP_ERR_UNKNOWN), "NBD_REP_ERR_UNKNOWN");
	uint8_t d[NBD_REQUEST_LEN];
	struct nbd_request req;
	assert_int_equal(attach_nbd_put_disc(d, sizeof(d)), NBD_REQUEST_LEN);
	assert_int_equal(nbd_parse_request(d, sizeof(d), &req), 0);
	assert_int_equal(req.type, NBD_CMD_DISC);
	assert_int_equal(attach_nbd_put_disc(d, 10), 0);
	struct nbd_opt_hdr oh;
	assert_int_equal(attach_nbd_put_abort(d, sizeof(d)), NBD_OPT_HDR_LEN);
	assert_int_equal(nbd_parse_opt_hdr(d, NBD_OPT_HDR_LEN, &oh), 0);
	assert_int_equal(oh.option, NBD_OPT_ABORT);
	assert_int_equal(oh.length, 0);
}

/* ---- the handshake against a fake server -------------------------------- */

enum fake_mode {
	FAKE_GOOD,        /* name, export, block size infos, then ACK */
	FAKE_UNKNOWN,     /* NBD_REP_ERR_UNKNOWN with a message */
	FAKE_TRUNCATED,   /* half an option reply header, then close */
	FAKE_TRUNC_INFO,  /* an INFO announcing 12 bytes, 5 sent, close */
	FAKE_OVERSIZED,   /* an INFO announcing 1 MiB */
	FAKE_NO_EXPORT,   /* ACK without NBD_INFO_EXPORT */
	FAKE_WRONG_OPT,   /* a reply to NBD_OPT_LIST */
	FAKE_OLDSTYLE,    /* greeting without FIXED_NEWSTYLE */
	FAKE_SILENT,      /* greeting, then nothing */
	FAKE_BAD_BS,      /* block sizes that break the spec */
};

struct fake {
	int fd;
	enum fake_mode mode;
	uint32_t client_flags; /* what the client sent */
	char name[256];        /* the export it asked for */
	int n_info;
	uint16_t info0;
	bool ok; /* the client's bytes were well formed */
};

static bool rd(int fd, void *b, size_t n)
{
	uint8_t *p = b;
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static void wr(int fd, const void *b, size_t n) { assert_true(write(fd, b, n) == (ssize_t)n); }

static void reply(int fd, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
	uint8_t h[NBD_OPT_REPLY_HDR_LEN];
	wr(fd, h, reply_hdr(h, opt, type, len));
	if (len)
		wr(fd, data, len);
}

static void *fake_server(void *arg)
{
	struct fake *f = arg;
	uint8_t b[512];

	wr(f->fd, b, greeting(b, f->mode == FAKE_OLDSTYLE ? 0 : NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
	if (f->mode == FAKE_OLDSTYLE)
		goto out;
	if (!rd(f->fd, b, 4))
		goto out;
	f->client_flags = get_be32(b);
	if (!rd(f->fd, b, NBD_OPT_HDR_LEN) || get_be64(b) != NBD_IHAVEOPT ||
	    get_be32(b + 8) != NBD_OPT_GO)
		goto out;
	uint32_t len = get_be32(b + 12);
	if (len > sizeof(b) || !rd(f->fd, b, len))
		goto out;
	uint32_t nl = get_be32(b);
	if (nl + 6 > len || nl >= sizeof(f->name))
		goto out;
	memcpy(f->name, b + 4, nl);
	f->n_info = get_be16(b + 4 + nl);
	f->info0 = get_be16(b + 6 + nl);
	f->ok = len == nl + 6 + 2u * (uint32_t)f->n_info;

	uint8_t i[32];
	switch (f->mode) {
	case FAKE_GOOD:
		put_be16(i, NBD_INFO_NAME);
		memcpy(i + 2, "vol-a", 5);
		reply(f->fd, NBD_OPT_GO, NBD_REP_INFO, i, 7);
		reply(f->fd, NBD_OPT_GO, NBD_REP_INFO, i, (uint32_t)info_export(i, 96 << 20, 0x1ed));
		reply(f->fd, NBD_OPT_GO, NBD_REP_INFO, i, (uint32_t)info_bs(i, 1, 4096, 32 << 20));
		reply(f->fd, NBD_OPT_GO, NBD_REP_ACK, NULL, 0);
		/* the client now owns a transmission-phase socket: keep it open
		 * until the client closes, as the kernel would */
		while (read(f->fd, b, sizeof(b)) > 0)
			;
		break;
	case FAKE_UNKNOWN: {
		static const char msg[] = "no such export (volume) on this urbd";
		reply(f->fd, NBD_OPT_GO, NBD_REP_ERR_UNKNOWN, msg, sizeof(msg) - 1);
		break;
	}
	case FAKE_TRUNCATED:
		reply_hdr(b, NBD_OPT_GO, NBD_REP_INFO, 12);
		wr(f->fd, b, 10);
		break;
	case FAKE_TRUNC_INFO:
		reply_hdr(b, NBD_OPT_GO, NBD_REP_INFO, 12);
		wr(f->fd, b, NBD_OPT_REPLY_HDR_LEN);
		wr(f->fd, i, 5);
		break;
	case FAKE_OVERSIZED:
		reply_hdr(b, NBD_OPT_GO, NBD_REP_INFO, 1u << 20);
		wr(f->fd, b, NBD_OPT_REPLY_HDR_LEN);
		break;
	case FAKE_NO_EXPORT:
		reply(f->fd, NBD_OPT_GO, NBD_REP_INFO, i, (uint32_t)info_bs(i, 512, 4096, 1 << 20));
		reply(f->fd, NBD_OPT_GO, NBD_REP_ACK, NULL, 0);
		break;
	case FAKE_WRONG_OPT:
		reply(f->fd, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
		break;
	case FAKE_SILENT:
		while (read(f->fd, b, sizeof(b)) > 0)
			;
		break;
	case FAKE_BAD_BS:
		reply(f->fd, NBD_OPT_GO, NBD_REP_INFO, i, (uint32_t)info_export(i, 1 << 20, 1));
		reply(f->fd, NBD_OPT_GO, NBD_REP_INFO, i, (uint32_t)info_bs(i, 4096, 512, 4096));
		break;
	case FAKE_OLDSTYLE: break;
	}
out:
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

/* runs the client against a fake server in mode; returns its result */
static int run_fake(enum fake_mode mode, struct fake *f, struct attach_nbd_export *e,
		    int timeout_ms)
{
	int sv[2];
	pthread_t th;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(f, 0, sizeof(*f));
	f->fd = sv[1];
	f->mode = mode;
	assert_int_equal(pthread_create(&th, NULL, fake_server, f), 0);
	int rc = attach_nbd_handshake(sv[0], "fake", "vol-a", attach_nbd_now_ms() + (uint64_t)timeout_ms, e);
	close(sv[0]); /* ends FAKE_GOOD's and FAKE_SILENT's read loops */
	assert_int_equal(pthread_join(th, NULL), 0);
	close(sv[1]);
	return rc;
}

static void test_handshake_good(void **state)
{
	struct fake f;
	struct attach_nbd_export e;

	assert_int_equal(run_fake(FAKE_GOOD, &f, &e, 5000), 0);
	assert_true(f.ok);
	assert_string_equal(f.name, "vol-a");
	assert_int_equal(f.n_info, 1);
	assert_int_equal(f.info0, NBD_INFO_BLOCK_SIZE);
	assert_int_equal(f.client_flags, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	assert_true(e.have_export);
	assert_true(e.size == 96 << 20);
	assert_int_equal(e.flags, 0x1ed);
	assert_true(e.have_block_size);
	assert_int_equal(e.min_block, 1);
	assert_int_equal(e.pref_block, 4096);
	assert_int_equal(e.max_block, 32 << 20);
}

/* stderr into a temp file around one call, to check what was logged */
struct capture {
	FILE *f;
	int saved;
};

static void capture_start(struct capture *c)
{
	fflush(stderr);
	c->f = tmpfile();
	assert_non_null(c->f);
	c->saved = dup(2);
	dup2(fileno(c->f), 2);
	log_level = LOG_LVL_ERR;
}

static void capture_end(struct capture *c, char *buf, size_t len)
{
	fflush(stderr);
	log_level = -1;
	dup2(c->saved, 2);
	close(c->saved);
	rewind(c->f);
	size_t n = fread(buf, 1, len - 1, c->f);
	buf[n] = '\0';
	fclose(c->f);
}

static void test_handshake_unknown_export(void **state)
{
	struct fake f;
	struct attach_nbd_export e;
	struct capture c;
	char log[1024];

	capture_start(&c);
	int rc = run_fake(FAKE_UNKNOWN, &f, &e, 5000);
	capture_end(&c, log, sizeof(log));
	assert_int_equal(rc, -ENOENT);
	/* the log line names the export and carries the server's reason */
	assert_non_null(strstr(log, "no export 'vol-a'"));
	assert_non_null(strstr(log, "NBD_REP_ERR_UNKNOWN"));
	assert_non_null(strstr(log, "no such export (volume) on this urbd"));
}

static void test_handshake_bad_replies(void **state)
{
	struct fake f;
	struct attach_nbd_export e;

	assert_int_equal(run_fake(FAKE_TRUNCATED, &f, &e, 5000), -ECONNRESET);
	assert_int_equal(run_fake(FAKE_TRUNC_INFO, &f, &e, 5000), -ECONNRESET);
	assert_int_equal(run_fake(FAKE_OVERSIZED, &f, &e, 5000), -EMSGSIZE);
	assert_int_equal(run_fake(FAKE_NO_EXPORT, &f, &e, 5000), -EPROTO);
	assert_int_equal(run_fake(FAKE_WRONG_OPT, &f, &e, 5000), -EBADMSG);
	assert_int_equal(run_fake(FAKE_OLDSTYLE, &f, &e, 5000), -EPROTO);
	assert_int_equal(run_fake(FAKE_BAD_BS, &f, &e, 5000), -EPROTO);
}

static void test_handshake_timeout(void **state)
{
	struct fake f;
	struct attach_nbd_export e;

	uint64_t t0 = attach_nbd_now_ms();
	assert_int_equal(run_fake(FAKE_SILENT, &f, &e, 200), -ETIMEDOUT);
	uint64_t took = attach_nbd_now_ms() - t0;
	assert_true(took >= 190 && took < 2000);
	assert_true(f.ok); /* the client did ask before waiting */
}

/* ---- netlink messages -------------------------------------------------- */

struct attr {
	uint16_t type;
	const uint8_t *data;
	size_t len;
};

/* the attributes in [p, p+len) into a[]; their count */
static int attrs(const uint8_t *p, size_t len, struct attr *a, int max)
{
	int n = 0;
	while (len >= NLA_HDRLEN && n < max) {
		struct nlattr h;
		memcpy(&h, p, sizeof(h));
		assert_true(h.nla_len >= NLA_HDRLEN && h.nla_len <= len);
		a[n++] = (struct attr){ h.nla_type, p + NLA_HDRLEN, h.nla_len - NLA_HDRLEN };
		size_t step = NLA_ALIGN(h.nla_len);
		if (step >= len)
			break;
		p += step;
		len -= step;
	}
	return n;
}

static const struct attr *find(const struct attr *a, int n, uint16_t type)
{
	for (int i = 0; i < n; i++)
		if ((a[i].type & NLA_TYPE_MASK) == type)
			return &a[i];
	return NULL;
}

static uint64_t u64(const struct attr *a)
{
	uint64_t v;
	assert_non_null(a);
	assert_int_equal(a->len, 8);
	memcpy(&v, a->data, 8);
	return v;
}

static uint32_t u32(const struct attr *a)
{
	uint32_t v;
	assert_non_null(a);
	assert_int_equal(a->len, 4);
	memcpy(&v, a->data, 4);
	return v;
}

/* checks the netlink and genl headers; the attributes' span */
static void headers(const uint8_t *b, int len, uint16_t type, uint32_t seq, uint8_t cmd,
		    const uint8_t **attrs_at, size_t *attrs_len)
{
	struct nlmsghdr nh;
	struct genlmsghdr gh;

	assert_true(len > (int)(NLMSG_HDRLEN + GENL_HDRLEN));
	assert_int_equal(len % 4, 0);
	memcpy(&nh, b, sizeof(nh));
	memcpy(&gh, b + NLMSG_HDRLEN, sizeof(gh));
	assert_int_equal(nh.nlmsg_len, len);
	assert_int_equal(nh.nlmsg_type, type);
	assert_int_equal(nh.nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
	assert_int_equal(nh.nlmsg_seq, seq);
	assert_int_equal(gh.cmd, cmd);
	assert_int_equal(gh.version, 1);
	*attrs_at = b + NLMSG_HDRLEN + GENL_HDRLEN;
	*attrs_len = (size_t)len - NLMSG_HDRLEN - GENL_HDRLEN;
}

static void test_nl_connect_msg(void **state)
{
	uint8_t b[1024];
	int fds[] = { 7, 9 };
	struct attach_nbd_nl_connect c = {
		.size_bytes = 96 << 20, .block_size = 512, .server_flags = 0x1ed, .timeout_s = 30,
		.dead_conn_timeout_s = 0, .fds = fds, .n_fds = 2,
		.backend_id = "urbd:10.0.2.2:10809/vol-a",
	};
	struct attr a[16], socks[4], item[2];
	const uint8_t *p;
	size_t plen;

	int len = attach_nbd_nl_put_connect(b, sizeof(b), 0x1c, 42, &c);
	headers(b, len, 0x1c, 42, NBD_CMD_CONNECT, &p, &plen);
	int n = attrs(p, plen, a, 16);
	assert_int_equal(n, 6);
	assert_true(u64(find(a, n, NBD_ATTR_SIZE_BYTES)) == 96 << 20);
	assert_true(u64(find(a, n, NBD_ATTR_BLOCK_SIZE_BYTES)) == 512);
	assert_true(u64(find(a, n, NBD_ATTR_SERVER_FLAGS)) == 0x1ed);
	assert_true(u64(find(a, n, NBD_ATTR_TIMEOUT)) == 30);
	assert_null(find(a, n, NBD_ATTR_DEAD_CONN_TIMEOUT));
	assert_null(find(a, n, NBD_ATTR_INDEX)); /* the kernel picks the device */
	const struct attr *id = find(a, n, NBD_ATTR_BACKEND_IDENTIFIER);
	assert_non_null(id);
	assert_int_equal(id->len, strlen(c.backend_id) + 1);
	assert_string_equal((const char *)id->data, c.backend_id);
	const struct attr *s = find(a, n, NBD_ATTR_SOCKETS);
	assert_non_null(s);
	assert_true(s->type & NLA_F_NESTED);
	assert_int_equal(attrs(s->data, s->len, socks, 4), 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(socks[i].type, NBD_SOCK_ITEM | NLA_F_NESTED);
		assert_int_equal(attrs(socks[i].data, socks[i].len, item, 2), 1);
		assert_int_equal(item[0].type, NBD_SOCK_FD);
		assert_int_equal(u32(&item[0]), fds[i]);
	}

	/* optional attributes: dead-conn timeout in, timeout and backend out */
	c.timeout_s = -1;
	c.dead_conn_timeout_s = 60;
	c.backend_id = NULL;
	c.n_fds = 1;
	len = attach_nbd_nl_put_connect(b, sizeof(b), 0x1c, 43, &c);
	headers(b, len, 0x1c, 43, NBD_CMD_CONNECT, &p, &plen);
	n = attrs(p, plen, a, 16);
	assert_int_equal(n, 5);
	assert_null(find(a, n, NBD_ATTR_TIMEOUT));
	assert_null(find(a, n, NBD_ATTR_BACKEND_IDENTIFIER));
	assert_true(u64(find(a, n, NBD_ATTR_DEAD_CONN_TIMEOUT)) == 60);
	/* too small a buffer */
	assert_int_equal(attach_nbd_nl_put_connect(b, 64, 0x1c, 44, &c), -EMSGSIZE);
}

static void test_nl_small_msgs(void **state)
{
	uint8_t b[128];
	struct attr a[4];
	const uint8_t *p;
	size_t plen;

	int len = attach_nbd_nl_put_disconnect(b, sizeof(b), 0x1c, 5, 3);
	headers(b, len, 0x1c, 5, NBD_CMD_DISCONNECT, &p, &plen);
	int n = attrs(p, plen, a, 4);
	assert_int_equal(n, 1);
	assert_int_equal(u32(find(a, n, NBD_ATTR_INDEX)), 3);

	len = attach_nbd_nl_put_getfamily(b, sizeof(b), 6, "nbd");
	headers(b, len, GENL_ID_CTRL, 6, CTRL_CMD_GETFAMILY, &p, &plen);
	n = attrs(p, plen, a, 4);
	assert_int_equal(n, 1);
	assert_int_equal(a[0].type, CTRL_ATTR_FAMILY_NAME);
	assert_int_equal(a[0].len, 4);
	assert_string_equal((const char *)a[0].data, "nbd");
	assert_int_equal(attach_nbd_nl_put_getfamily(b, 20, 6, "nbd"), -EMSGSIZE);
}

/* a kernel-side message: header, genl header, one attribute */
static size_t kmsg(uint8_t *b, uint16_t type, uint32_t seq, uint16_t attr, const void *v,
		   uint16_t vlen)
{
	struct nlmsghdr nh = { .nlmsg_type = type, .nlmsg_seq = seq };
	struct genlmsghdr gh = { .cmd = 1, .version = 1 };
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + vlen), .nla_type = attr };
	size_t len = NLMSG_HDRLEN + GENL_HDRLEN + NLA_ALIGN(NLA_HDRLEN + vlen);

	memset(b, 0, len);
	nh.nlmsg_len = (uint32_t)len;
	memcpy(b, &nh, sizeof(nh));
	memcpy(b + NLMSG_HDRLEN, &gh, sizeof(gh));
	memcpy(b + NLMSG_HDRLEN + GENL_HDRLEN, &a, sizeof(a));
	memcpy(b + NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN, v, vlen);
	return len;
}

/* NLMSG_ERROR with error (0: an ack), capped, optionally an ext-ack message */
static size_t kerr(uint8_t *b, uint32_t seq, int error, const char *msg)
{
	struct nlmsghdr nh = { .nlmsg_type = NLMSG_ERROR, .nlmsg_seq = seq,
			       .nlmsg_flags = NLM_F_CAPPED | (msg ? NLM_F_ACK_TLVS : 0) };
	struct nlmsgerr e = { .error = error };
	size_t len = NLMSG_HDRLEN + sizeof(e);

	memset(b, 0, 256);
	memcpy(b + NLMSG_HDRLEN, &e, sizeof(e));
	if (msg) {
		struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + strlen(msg) + 1),
				    .nla_type = NLMSGERR_ATTR_MSG };
		memcpy(b + len, &a, sizeof(a));
		memcpy(b + len + NLA_HDRLEN, msg, strlen(msg) + 1);
		len += NLA_ALIGN(a.nla_len);
	}
	nh.nlmsg_len = (uint32_t)len;
	memcpy(b, &nh, sizeof(nh));
	return len;
}

static void test_nl_parse(void **state)
{
	uint8_t b[1024];
	struct attach_nbd_nl_reply r;
	uint32_t idx = 3;
	uint16_t fam = 0x1c;

	/* connect: the index, then the ack, in one datagram */
	memset(&r, 0, sizeof(r));
	size_t n = kmsg(b, 0x1c, 9, NBD_ATTR_INDEX, &idx, 4);
	n += kerr(b + n, 9, 0, NULL);
	assert_int_equal(attach_nbd_nl_parse(b, n, 9, NBD_ATTR_INDEX, &r), 0);
	assert_true(r.done);
	assert_int_equal(r.error, 0);
	assert_true(r.have_value);
	assert_int_equal(r.value, 3);

	/* the same in two datagrams, with a stray message of another seq */
	memset(&r, 0, sizeof(r));
	n = kmsg(b, 0x1c, 8, NBD_ATTR_INDEX, &fam, 2);
	n += kmsg(b + n, 0x1c, 9, NBD_ATTR_INDEX, &idx, 4);
	assert_int_equal(attach_nbd_nl_parse(b, n, 9, NBD_ATTR_INDEX, &r), 0);
	assert_false(r.done);
	assert_int_equal(r.value, 3);
	n = kerr(b, 9, 0, NULL);
	assert_int_equal(attach_nbd_nl_parse(b, n, 9, NBD_ATTR_INDEX, &r), 0);
	assert_true(r.done);

	/* CTRL_CMD_GETFAMILY's u16 family id */
	memset(&r, 0, sizeof(r));
	n = kmsg(b, GENL_ID_CTRL, 4, CTRL_ATTR_FAMILY_ID, &fam, 2);
	assert_int_equal(attach_nbd_nl_parse(b, n, 4, CTRL_ATTR_FAMILY_ID, &r), 0);
	assert_true(r.have_value);
	assert_int_equal(r.value, 0x1c);

	/* an error with the kernel's extended-ack message */
	memset(&r, 0, sizeof(r));
	n = kerr(b, 9, -EINVAL, "Attribute failed policy validation");
	assert_int_equal(attach_nbd_nl_parse(b, n, 9, NBD_ATTR_INDEX, &r), 0);
	assert_true(r.done);
	assert_int_equal(r.error, -EINVAL);
	assert_string_equal(r.msg, "Attribute failed policy validation");

	/* an error for another request is not ours */
	memset(&r, 0, sizeof(r));
	n = kerr(b, 77, -EBUSY, NULL);
	assert_int_equal(attach_nbd_nl_parse(b, n, 9, NBD_ATTR_INDEX, &r), 0);
	assert_false(r.done);

	/* malformed: a length past the datagram, a runt, an attribute overrun */
	memset(&r, 0, sizeof(r));
	n = kerr(b, 9, 0, NULL);
	assert_int_equal(attach_nbd_nl_parse(b, n - 4, 9, 0, &r), -EBADMSG);
	assert_int_equal(attach_nbd_nl_parse(b, 8, 9, 0, &r), -EBADMSG);
	n = kmsg(b, 0x1c, 9, NBD_ATTR_INDEX, &idx, 4);
	b[NLMSG_HDRLEN + GENL_HDRLEN] = 200; /* nla_len */
	assert_int_equal(attach_nbd_nl_parse(b, n, 9, NBD_ATTR_INDEX, &r), -EBADMSG);
}

int main(void)
{
	log_level = -1; /* the error paths log; keep the test output clean */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_backend_id),
		cmocka_unit_test(test_calls_reject_bad_args),
		cmocka_unit_test(test_parse_greeting),
		cmocka_unit_test(test_put_go),
		cmocka_unit_test(test_parse_opt_reply),
		cmocka_unit_test(test_parse_info),
		cmocka_unit_test(test_rep_errno),
		cmocka_unit_test(test_handshake_good),
		cmocka_unit_test(test_handshake_unknown_export),
		cmocka_unit_test(test_handshake_bad_replies),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_nl_connect_msg),
		cmocka_unit_test(test_nl_small_msgs),
		cmocka_unit_test(test_nl_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
