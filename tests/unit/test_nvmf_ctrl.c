/* nvmf_ctrl.c + nvmf_admin.c: registers, features, Identify and log page
 * encodings, the cntlid registry. No sockets: a controller on the stack. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nvmf/nvmf_ctrl.h"
#include "util.h"

static void ctrl_init(struct nvmf_ctrl *c, bool disc)
{
	memset(c, 0, sizeof(*c));
	c->discovery = disc;
	c->cntlid = 7;
	c->nr_ioq = NVMF_MAX_IOQ;
	strcpy(c->subnqn, disc ? NVMF_DISC_NQN : "nqn.2026-11.io.urbd:demo");
	strcpy(c->hostnqn, "nqn.2014-08.org.nvmexpress:uuid:1");
	for (int i = 0; i < 16; i++)
		c->uuid[i] = (uint8_t)(0xa0 + i);
}

static void sqe_cdw(uint8_t *s, int n, uint32_t v) { put_le32(s + NVMF_SQE_CDW(n), v); }

static void test_registers(void **state)
{
	struct nvmf_ctrl c;
	enum nvmf_cc_effect eff;
	uint64_t v;

	ctrl_init(&c, false);
	assert_int_equal(nvmf_prop_get(&c, NVMF_PROP_CAP, 8, &v), 0);
	assert_int_equal(v & 0xffff, NVMF_MAX_QD - 1);
	assert_true(v & (1ULL << 37));
	assert_int_equal(nvmf_prop_get(&c, NVMF_PROP_CAP, 4, &v), NVMF_INVALID_FIELD | NVMF_DNR);
	assert_int_equal(nvmf_prop_get(&c, NVMF_PROP_VS, 4, &v), 0);
	assert_int_equal(v, 0x00010300);
	assert_int_equal(nvmf_prop_set(&c, NVMF_PROP_CC, 4, 0x460001, &eff), 0);
	assert_int_equal(eff, NVMF_CC_ENABLED);
	assert_int_equal(c.csts, NVMF_CSTS_RDY);
	assert_int_equal(nvmf_prop_set(&c, NVMF_PROP_CC, 4, 0x460001 | (1u << 14), &eff), 0);
	assert_int_equal(eff, NVMF_CC_SHUTDOWN);
	assert_int_equal((c.csts >> 2) & 3, NVMF_SHST_OCCURRING);
	assert_int_equal(nvmf_prop_set(&c, NVMF_PROP_CSTS, 4, 0, &eff), NVMF_INVALID_FIELD | NVMF_DNR);
	assert_int_equal(nvmf_prop_set(&c, NVMF_PROP_CC, 4, 0, &eff), 0);
	assert_int_equal(eff, NVMF_CC_DISABLED);
	assert_int_equal(c.csts, 0);
}

static void test_features(void **state)
{
	struct nvmf_ctrl c;
	uint8_t s[64] = { 0 };
	uint64_t r;

	ctrl_init(&c, false);
	sqe_cdw(s, 10, NVMF_FEAT_NUM_QUEUES);
	sqe_cdw(s, 11, (63u << 16) | 63);
	assert_int_equal(nvmf_set_features(&c, s, &r), 0);
	assert_int_equal(r, ((NVMF_MAX_IOQ - 1u) << 16) | (NVMF_MAX_IOQ - 1u));
	assert_int_equal(c.nr_ioq, NVMF_MAX_IOQ);
	assert_int_equal(nvmf_set_features(&c, s, &r), NVMF_CMD_SEQ_ERROR | NVMF_DNR);
	sqe_cdw(s, 10, NVMF_FEAT_KATO);
	sqe_cdw(s, 11, 15000);
	assert_int_equal(nvmf_set_features(&c, s, &r), 0);
	assert_int_equal(nvmf_get_features(&c, s, &r), 0);
	assert_int_equal(r, 15000);
	sqe_cdw(s, 10, NVMF_FEAT_ASYNC_EVENT | (1u << 31)); /* save */
	assert_int_equal(nvmf_set_features(&c, s, &r), NVMF_FEATURE_NOT_SAVEABLE | NVMF_DNR);
	sqe_cdw(s, 10, 0x04); /* temperature threshold: not supported */
	assert_int_equal(nvmf_get_features(&c, s, &r), NVMF_INVALID_FIELD | NVMF_DNR);
}

static void test_identify(void **state)
{
	struct nvmf_ctrl c;
	struct nvmf_ns_info ns = { .nsze = 2048, .lba_shift = 9 };
	uint8_t s[64] = { 0 }, *b = calloc(1, 4096);

	ctrl_init(&c, false);
	memcpy(ns.uuid, c.uuid, 16);
	sqe_cdw(s, 10, NVMF_CNS_CTRL);
	assert_int_equal(nvmf_identify(&c, &ns, s, b, 4096), 0);
	assert_memory_equal(b + 24, "urbd    ", 8);
	assert_memory_equal(b + 4, "a0a1a2a3a4a5a6a7a8a9", 20);
	assert_int_equal(get_le16(b + 78), 7);
	assert_int_equal(b[77], NVMF_MDTS_SHIFT);
	assert_int_equal(get_le32(b + 536) & 3, 1);      /* SGLs supported */
	assert_int_equal(get_le32(b + 1792), (64 + 8192) / 16);
	assert_int_equal(get_le32(b + 516), 1);          /* NN */
	assert_int_equal(b[111], 1);
	assert_string_equal((char *)b + 768, "nqn.2026-11.io.urbd:demo");
	sqe_cdw(s, 10, NVMF_CNS_NS);
	put_le32(s + 4, 1);
	assert_int_equal(nvmf_identify(&c, &ns, s, b, 4096), 0);
	assert_int_equal(get_le64(b), 2048);
	assert_int_equal(b[130], 9);
	assert_memory_equal(b + 104, c.uuid, 16);
	put_le32(s + 4, 2);
	assert_int_equal(nvmf_identify(&c, &ns, s, b, 4096), NVMF_INVALID_NS | NVMF_DNR);
	sqe_cdw(s, 10, NVMF_CNS_NS_DESC);
	put_le32(s + 4, 1);
	assert_int_equal(nvmf_identify(&c, &ns, s, b, 4096), 0);
	assert_int_equal(b[0], 2);
	assert_int_equal(b[20], 3);
	assert_memory_equal(b + 24, c.uuid, 16);
	sqe_cdw(s, 10, NVMF_CNS_ACTIVE_NS);
	put_le32(s + 4, 0);
	assert_int_equal(nvmf_identify(&c, &ns, s, b, 4096), 0);
	assert_int_equal(get_le32(b), 1);
	assert_int_equal(get_le32(b + 4), 0);
	sqe_cdw(s, 10, 0x06);
	assert_int_equal(nvmf_identify(&c, &ns, s, b, 4096), NVMF_INVALID_FIELD | NVMF_DNR);
	assert_int_equal(nvmf_identify(&c, &ns, s, b, 512), NVMF_SGL_INVALID_DATA_LEN | NVMF_DNR);
	free(b);
}

static void test_log_pages(void **state)
{
	struct nvmf_ctrl c, d;
	struct nvmf_ns_info ns = { .nsze = 2048, .lba_shift = 9, .bytes_read = 1024000 };
	struct nvmf_disc_port port = { .traddr = "127.0.0.1", .trsvcid = "4420" };
	char *names[] = { "demo", "db" };
	uint8_t s[64] = { 0 }, b[4096], *disc;
	uint32_t dlen;

	ctrl_init(&c, false);
	sqe_cdw(s, 10, NVMF_LOG_SMART | ((512 / 4 - 1) << 16));
	assert_int_equal(nvmf_log_page_len(s), 512);
	assert_int_equal(nvmf_get_log_page(&c, &ns, s, NULL, 0, b, 512), 0);
	assert_int_equal(get_le64(b + 32), 2); /* 2000 units of 512 bytes -> 2 */
	sqe_cdw(s, 10, NVMF_LOG_DISCOVERY | (255u << 16));
	assert_int_equal(nvmf_get_log_page(&c, &ns, s, NULL, 0, b, 1024),
			 NVMF_INVALID_LOG_PAGE | NVMF_DNR);
	sqe_cdw(s, 10, 0x7f);
	assert_int_equal(nvmf_get_log_page(&c, &ns, s, NULL, 0, b, 4),
			 NVMF_INVALID_LOG_PAGE | NVMF_DNR);

	ctrl_init(&d, true);
	disc = nvmf_disc_log_build(&port, names, 2, &dlen);
	assert_int_equal(dlen, 3 * 1024);
	sqe_cdw(s, 10, NVMF_LOG_DISCOVERY | (255u << 16));
	sqe_cdw(s, 12, 1024); /* LPO: the first entry */
	assert_int_equal(nvmf_get_log_page(&d, NULL, s, disc, dlen, b, 1024), 0);
	assert_int_equal(b[0], 3);                          /* TCP */
	assert_int_equal(b[2], 2);                          /* NVM subsystem */
	assert_memory_equal(b + 32, "4420", 4);
	assert_string_equal((char *)b + 256, "nqn.2026-11.io.urbd:demo");
	assert_memory_equal(b + 512, "127.0.0.1", 9);
	assert_int_equal(get_le64(disc + 8), 2);
	sqe_cdw(s, 12, 2); /* not dword aligned */
	assert_int_equal(nvmf_get_log_page(&d, NULL, s, disc, dlen, b, 1024),
			 NVMF_INVALID_FIELD | NVMF_DNR);
	free(disc);
}

static void test_registry(void **state)
{
	struct nvmf_ctrl a, b, *out = NULL;
	struct volume *v = NULL;

	ctrl_init(&a, false);
	ctrl_init(&b, false);
	a.vol = (struct volume *)&a;
	assert_int_equal(nvmf_ctrl_register(&a), 0);
	assert_int_equal(nvmf_ctrl_register(&b), 0);
	assert_int_not_equal(a.cntlid, b.cntlid);
	assert_int_equal(nvmf_ctrl_lookup(a.cntlid, a.subnqn, a.hostnqn, &out, &v), 0);
	assert_ptr_equal(out, &a);
	assert_ptr_equal(v, &a);
	assert_int_equal(nvmf_ctrl_lookup(a.cntlid, a.subnqn, "nqn.other", NULL, NULL), -EPERM);
	nvmf_ctrl_unregister(&a);
	assert_int_equal(nvmf_ctrl_lookup(a.cntlid, a.subnqn, a.hostnqn, NULL, NULL), -ENOENT);
	assert_int_equal(nvmf_ctrl_lookup(0, a.subnqn, a.hostnqn, NULL, NULL), -ENOENT);
	nvmf_ctrl_unregister(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registers),
		cmocka_unit_test(test_features),
		cmocka_unit_test(test_identify),
		cmocka_unit_test(test_log_pages),
		cmocka_unit_test(test_registry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
