/* nvmf_ctrl.c + nvmf_admin.c: asynchronous events (Namespace Attribute
 * Changed and its masking), the Changed Namespace List and Error
 * Information log pages, what Identify Controller advertises for them, the
 * discovery TRADDR of a wildcard listener, the volume's frontend listeners.
 * No sockets: a controller on the stack. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "nvmf/nvmf_ctrl.h"
#include "util.h"
#include "volume.h"

#define AEN_NS_CHANGED 0x040002u /* type 2h, info 00h, log page 04h */

static struct nvmf_ctrl *ctrl_new(void)
{
	struct nvmf_ctrl *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->cntlid = 3;
	c->nr_ioq = NVMF_MAX_IOQ;
	strcpy(c->subnqn, "nqn.2026-11.io.urbd:demo");
	strcpy(c->hostnqn, "nqn.2014-08.org.nvmexpress:uuid:1");
	return c;
}

static void sqe_cdw(uint8_t *s, int n, uint32_t v) { put_le32(s + NVMF_SQE_CDW(n), v); }

static void set_aec(struct nvmf_ctrl *c, uint32_t aec)
{
	uint8_t s[64] = { 0 };
	uint64_t r;

	sqe_cdw(s, 10, NVMF_FEAT_ASYNC_EVENT);
	sqe_cdw(s, 11, aec);
	assert_int_equal(nvmf_set_features(c, s, &r), 0);
}

/* Get Log Page lid, len bytes, with or without RAE */
static uint16_t get_log(struct nvmf_ctrl *c, uint8_t lid, bool rae, uint8_t *buf,
			uint32_t len)
{
	struct nvmf_ns_info ns = { .nsze = 2048, .lba_shift = 9 };
	uint8_t s[64] = { 0 };

	sqe_cdw(s, 10, lid | (rae ? 1u << 15 : 0) | ((len / 4 - 1) << 16));
	assert_int_equal(nvmf_log_page_len(s), len);
	return nvmf_get_log_page(c, &ns, s, NULL, 0, buf, len);
}

static void test_identify_advertises(void **state)
{
	struct nvmf_ctrl *c = ctrl_new();
	struct nvmf_ns_info ns = { .nsze = 2048, .lba_shift = 9 };
	uint8_t s[64] = { 0 }, *b = calloc(1, 4096);

	sqe_cdw(s, 10, NVMF_CNS_CTRL);
	assert_int_equal(nvmf_identify(c, &ns, s, b, 4096), 0);
	assert_int_equal(get_le32(b + 92), 1u << 8);     /* OAES: NS attribute notices */
	assert_int_equal(b[259], NVMF_AERL - 1);         /* AERL, 0's based */
	assert_int_equal(b[262], 63);                    /* ELPE: 64 entries */
	/* the new size shows in Identify Namespace */
	ns.nsze = 4096;
	sqe_cdw(s, 10, NVMF_CNS_NS);
	put_le32(s + 4, 1);
	assert_int_equal(nvmf_identify(c, &ns, s, b, 4096), 0);
	assert_int_equal(get_le64(b + 0), 4096);
	assert_int_equal(get_le64(b + 8), 4096);
	free(b);
	free(c);
}

static void test_aen_needs_aec(void **state)
{
	struct nvmf_ctrl *c = ctrl_new();
	uint8_t b[4096];
	uint32_t dw0 = 0;

	/* AEC bit 8 clear: the log page records the change, no event */
	nvmf_aen_raise(c, NVMF_AEN_NS_ATTR);
	assert_false(nvmf_aen_next(c, &dw0));
	assert_int_equal(get_log(c, NVMF_LOG_CHANGED_NS, false, b, 4096), 0);
	assert_int_equal(get_le32(b), 1);
	assert_int_equal(get_le32(b + 4), 0);
	assert_int_equal(get_log(c, NVMF_LOG_CHANGED_NS, false, b, 4096), 0);
	assert_int_equal(get_le32(b), 0);                /* cleared by the read */
	free(c);
}

static void test_aen_mask_until_log_read(void **state)
{
	struct nvmf_ctrl *c = ctrl_new();
	uint8_t b[4096];
	uint32_t dw0 = 0;

	set_aec(c, 1u << 8);
	assert_false(nvmf_aen_next(c, &dw0));            /* nothing happened yet */
	/* no AER outstanding: remembered, delivered to the next one */
	nvmf_aen_raise(c, NVMF_AEN_NS_ATTR);
	assert_true(nvmf_aen_next(c, &dw0));
	assert_int_equal(dw0, AEN_NS_CHANGED);
	assert_false(nvmf_aen_next(c, &dw0));            /* delivered once */
	/* masked: further changes are only in the log page */
	nvmf_aen_raise(c, NVMF_AEN_NS_ATTR);
	assert_false(nvmf_aen_next(c, &dw0));
	/* a read with RAE keeps the mask and the entry */
	assert_int_equal(get_log(c, NVMF_LOG_CHANGED_NS, true, b, 4096), 0);
	assert_int_equal(get_le32(b), 1);
	nvmf_aen_raise(c, NVMF_AEN_NS_ATTR);
	assert_false(nvmf_aen_next(c, &dw0));
	/* other log pages do not unmask it */
	assert_int_equal(get_log(c, NVMF_LOG_ERROR, false, b, 4096), 0);
	nvmf_aen_raise(c, NVMF_AEN_NS_ATTR);
	assert_false(nvmf_aen_next(c, &dw0));
	/* read without RAE: entry cleared, the event may come again */
	assert_int_equal(get_log(c, NVMF_LOG_CHANGED_NS, false, b, 4096), 0);
	assert_int_equal(get_le32(b), 1);
	assert_int_equal(get_log(c, NVMF_LOG_CHANGED_NS, false, b, 4096), 0);
	assert_int_equal(get_le32(b), 0);
	assert_false(nvmf_aen_next(c, &dw0));
	nvmf_aen_raise(c, NVMF_AEN_NS_ATTR);
	assert_true(nvmf_aen_next(c, &dw0));
	assert_int_equal(dw0, AEN_NS_CHANGED);
	free(c);
}

static void test_aen_coalesced(void **state)
{
	struct nvmf_ctrl *c = ctrl_new();
	uint32_t dw0 = 0;

	set_aec(c, 1u << 8);
	nvmf_aen_raise(c, NVMF_AEN_NS_ATTR);
	nvmf_aen_raise(c, NVMF_AEN_NS_ATTR);             /* coalesced */
	assert_true(nvmf_aen_next(c, &dw0));
	assert_false(nvmf_aen_next(c, &dw0));
	/* bits we cannot send are not kept */
	set_aec(c, 0xffffffffu);
	assert_int_equal(c->aec, (1u << 8) | (1u << 31));
	free(c);
}

static void test_error_log(void **state)
{
	struct nvmf_ctrl *c = ctrl_new();
	uint8_t s[64] = { 0 }, *b = calloc(1, 4096);

	/* no errors: every entry invalid (count 0) */
	assert_int_equal(get_log(c, NVMF_LOG_ERROR, false, b, 4096), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(get_le64(b + i * 64), 0);

	/* a read past the end on qid 2, cid 0x1234, nsid 1, SLBA 0x1_0000_0005 */
	s[0] = NVMF_IO_READ;
	put_le16(s + 2, 0x1234);
	put_le32(s + 4, 1);
	put_le64(s + NVMF_SQE_CDW(10), 0x100000005ULL);
	nvmf_err_record(c, 2, s, NVMF_LBA_RANGE | NVMF_DNR);
	/* then an admin command with an unknown log page */
	memset(s, 0, sizeof(s));
	s[0] = NVMF_ADM_GET_LOG_PAGE;
	put_le16(s + 2, 7);
	nvmf_err_record(c, 0, s, NVMF_INVALID_LOG_PAGE | NVMF_DNR);

	assert_int_equal(get_log(c, NVMF_LOG_ERROR, false, b, 4096), 0);
	/* newest first */
	assert_int_equal(get_le64(b + 0), 2);
	assert_int_equal(get_le16(b + 8), 0);
	assert_int_equal(get_le16(b + 10), 7);
	assert_int_equal(get_le16(b + 12), (0x109 << 1) | 0x8000);
	assert_int_equal(get_le16(b + 14), 40);          /* CDW10: the LID */
	assert_int_equal(get_le64(b + 16), 0);
	assert_int_equal(get_le64(b + 64), 1);
	assert_int_equal(get_le16(b + 64 + 8), 2);
	assert_int_equal(get_le16(b + 64 + 10), 0x1234);
	assert_int_equal(get_le16(b + 64 + 12), (0x80 << 1) | 0x8000);
	assert_int_equal(get_le16(b + 64 + 14), 40);     /* SLBA */
	assert_int_equal(get_le64(b + 64 + 16), 0x100000005ULL);
	assert_int_equal(get_le32(b + 64 + 24), 1);
	assert_int_equal(get_le64(b + 128), 0);          /* no third entry */

	/* a host asking for one entry gets the newest */
	memset(b, 0xee, 64);
	assert_int_equal(get_log(c, NVMF_LOG_ERROR, false, b, 64), 0);
	assert_int_equal(get_le64(b), 2);
	free(b);
	free(c);
}

static void test_error_log_wraps(void **state)
{
	struct nvmf_ctrl *c = ctrl_new();
	uint8_t s[64] = { 0 }, *b = calloc(1, 4096);

	s[0] = NVMF_IO_WRITE;
	for (unsigned i = 1; i <= 100; i++) {
		put_le16(s + 2, (uint16_t)i);
		nvmf_err_record(c, 1, s, NVMF_INVALID_FIELD | NVMF_DNR);
	}
	assert_int_equal(get_log(c, NVMF_LOG_ERROR, false, b, 4096), 0);
	/* the 64 newest: counts 100 down to 37 */
	for (unsigned i = 0; i < 64; i++) {
		assert_int_equal(get_le64(b + i * 64), 100 - i);
		assert_int_equal(get_le16(b + i * 64 + 10), 100 - i);
		assert_int_equal(get_le16(b + i * 64 + 14), 0xffff); /* no one field */
	}
	/* LPO into the page: entry 1 onwards */
	{
		struct nvmf_ns_info ns = { .nsze = 1, .lba_shift = 9 };
		uint8_t q[64] = { 0 };

		sqe_cdw(q, 10, NVMF_LOG_ERROR | ((64 / 4 - 1) << 16));
		sqe_cdw(q, 12, 64);
		assert_int_equal(nvmf_get_log_page(c, &ns, q, NULL, 0, b, 64), 0);
		assert_int_equal(get_le64(b), 99);
	}
	free(b);
	free(c);
}

static void test_disc_port_wildcard(void **state)
{
	struct nvmf_disc_port any4 = { .traddr = "0.0.0.0", .trsvcid = "4420" };
	struct nvmf_disc_port any6 = { .ipv6 = true, .traddr = "::", .trsvcid = "4420" };
	struct nvmf_disc_port fixed = { .traddr = "127.0.0.1", .trsvcid = "4420" };
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	struct nvmf_disc_port out;

	inet_pton(AF_INET, "192.0.2.7", &in.sin_addr);
	nvmf_disc_port_local(&any4, (struct sockaddr *)&in, &out);
	assert_string_equal(out.traddr, "192.0.2.7");
	assert_string_equal(out.trsvcid, "4420");
	assert_false(out.ipv6);
	/* a dual-stack listener reached over IPv4 reports IPv4 */
	inet_pton(AF_INET6, "::ffff:198.51.100.1", &in6.sin6_addr);
	nvmf_disc_port_local(&any6, (struct sockaddr *)&in6, &out);
	assert_string_equal(out.traddr, "198.51.100.1");
	assert_false(out.ipv6);
	inet_pton(AF_INET6, "2001:db8::5", &in6.sin6_addr);
	nvmf_disc_port_local(&any6, (struct sockaddr *)&in6, &out);
	assert_string_equal(out.traddr, "2001:db8::5");
	assert_true(out.ipv6);
	/* a listener bound to one address keeps it */
	nvmf_disc_port_local(&fixed, (struct sockaddr *)&in, &out);
	assert_string_equal(out.traddr, "127.0.0.1");
	assert_false(nvmf_disc_port_is_wildcard(&fixed));
	assert_true(nvmf_disc_port_is_wildcard(&any6));
}

/* volume.h listeners, as nvmf uses them: every listener told once even
 * when a callback unlinks others (closing an admin queue closes its I/O
 * queues) or itself. */
struct probe {
	struct vol_listener l;
	struct volume *v;
	int detached, resized;
	uint64_t old;
	struct probe *kill;         /* unlinked by this one's on_detach */
};

static void probe_detach(struct vol_listener *l, struct volume *v)
{
	struct probe *p = container_of(l, struct probe, l);

	p->detached++;
	if (p->kill)
		volume_unlisten(v, &p->kill->l);
	volume_unlisten(v, l);
}

static void probe_resize(struct vol_listener *l, struct volume *v, uint64_t old)
{
	struct probe *p = container_of(l, struct probe, l);

	p->resized++;
	p->old = old;
}

static void test_volume_listeners(void **state)
{
	struct volume v;
	struct probe p[4];

	memset(&v, 0, sizeof(v));
	memset(p, 0, sizeof(p));
	for (int i = 0; i < 4; i++) {
		p[i].l.on_detach = probe_detach;
		p[i].l.on_resize = probe_resize;
		volume_listen(&v, &p[i].l);
	}
	v.size = 8192;
	volume_notify(&v, false, 4096);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(p[i].resized, 1);
		assert_int_equal(p[i].old, 4096);
		assert_int_equal(p[i].detached, 0);
	}
	volume_unlisten(&v, &p[2].l);
	volume_unlisten(&v, &p[2].l);  /* twice: harmless */
	p[3].kill = &p[1];               /* p[3] is told first (head) */
	volume_notify(&v, true, 0);
	assert_int_equal(p[3].detached, 1);
	assert_int_equal(p[1].detached, 0); /* unlinked before its turn */
	assert_int_equal(p[0].detached, 1);
	assert_int_equal(p[2].detached, 0);
	assert_null(v.listeners);
	volume_notify(&v, false, 0);    /* nobody left */
	assert_int_equal(p[0].resized, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identify_advertises),
		cmocka_unit_test(test_aen_needs_aec),
		cmocka_unit_test(test_aen_mask_until_log_read),
		cmocka_unit_test(test_aen_coalesced),
		cmocka_unit_test(test_error_log),
		cmocka_unit_test(test_error_log_wraps),
		cmocka_unit_test(test_disc_port_wildcard),
		cmocka_unit_test(test_volume_listeners),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
