/* csi/attach_nvme.c: what runs without a kernel initiator: target
 * validation and the host identity files (hostnqn/hostid) in a temp dir. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "attach.h"
#include "log.h"

#define NQN "nqn.2026-11.io.urbd:vol-a"
#define PFX "nqn.2014-08.org.nvmexpress:uuid:"

static struct attach_nvme_target good(void)
{
	return (struct attach_nvme_target){ .transport = "tcp", .traddr = "10.0.2.2",
					     .trsvcid = "4420", .subsysnqn = NQN };
}

static void test_validate_ok(void **state)
{
	struct attach_nvme_target t = good();
	assert_int_equal(attach_nvme_target_validate(&t), 0);
	t.transport = NULL; /* defaults to tcp */
	assert_int_equal(attach_nvme_target_validate(&t), 0);
	t.ctrl_loss_tmo = -1; /* forever */
	assert_int_equal(attach_nvme_target_validate(&t), 0);
}

static void test_validate_rejects(void **state)
{
	char longnqn[300];
	memset(longnqn, 'a', sizeof(longnqn) - 1);
	memcpy(longnqn, "nqn.", 4);
	longnqn[sizeof(longnqn) - 1] = '\0';
	struct {
		const char *field, *value;
	} bad[] = {
		{ "transport", "rdma" }, { "traddr", NULL },    { "traddr", "" },
		{ "traddr", "a b" },     { "trsvcid", NULL },   { "trsvcid", "0" },
		{ "trsvcid", "65536" },  { "trsvcid", "44x" },  { "trsvcid", "" },
		{ "nqn", NULL },         { "nqn", "" },         { "nqn", "vol-a" },
		{ "nqn", "nqn.x y" },    { "nqn", longnqn },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct attach_nvme_target t = good();
		if (!strcmp(bad[i].field, "transport"))
			t.transport = bad[i].value;
		else if (!strcmp(bad[i].field, "traddr"))
			t.traddr = bad[i].value;
		else if (!strcmp(bad[i].field, "trsvcid"))
			t.trsvcid = bad[i].value;
		else
			t.subsysnqn = bad[i].value;
		assert_int_equal(attach_nvme_target_validate(&t), -EINVAL);
	}
	struct attach_nvme_target t = good();
	t.ctrl_loss_tmo = -2;
	assert_int_equal(attach_nvme_target_validate(&t), -EINVAL);
	t = good();
	t.keep_alive_tmo = -1;
	assert_int_equal(attach_nvme_target_validate(&t), -EINVAL);
	assert_int_equal(attach_nvme_target_validate(NULL), -EINVAL);
}

/* bad arguments never reach the kernel or libnvme */
static void test_calls_reject_bad_args(void **state)
{
	char dev[64];
	struct attach_nvme_target t = good();
	t.trsvcid = "0";
	assert_int_equal(attach_nvme_connect(&t, dev, sizeof(dev), 10), -EINVAL);
	t = good();
	assert_int_equal(attach_nvme_connect(&t, NULL, 0, 10), -EINVAL);
	assert_int_equal(attach_nvme_find("not-an-nqn", dev, sizeof(dev)), -EINVAL);
	assert_int_equal(attach_nvme_find(NULL, dev, sizeof(dev)), -EINVAL);
	assert_int_equal(attach_nvme_disconnect(""), -EINVAL);
}

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/urbd-test-attach.XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rmtree(const char *d)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
}

static void slurp(const char *dir, const char *name, char *buf, size_t len)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void spit(const char *dir, const char *name, const char *s)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(s, f);
	fclose(f);
}

static void test_identity_created_and_persisted(void **state)
{
	char *base = tmpdir(), dir[256], nqn[ATTACH_NQN_MAX], id[ATTACH_HOSTID_LEN];
	char nqn2[ATTACH_NQN_MAX], id2[ATTACH_HOSTID_LEN], file[512];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/etc/nvme", base); /* parent exists, dir not */
	snprintf(file, sizeof(file), "%s/etc", base);
	assert_int_equal(mkdir(file, 0755), 0);
	assert_int_equal(attach_nvme_host_identity(dir, nqn, sizeof(nqn), id, sizeof(id)), 0);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(id[14], '4'); /* version 4 */
	assert_string_equal(nqn + strlen(PFX), id);
	assert_memory_equal(nqn, PFX, strlen(PFX));
	slurp(dir, "hostnqn", file, sizeof(file));
	assert_int_equal(strlen(file), strlen(nqn) + 1);
	assert_memory_equal(file, nqn, strlen(nqn));
	assert_int_equal(file[strlen(nqn)], '\n');
	slurp(dir, "hostid", file, sizeof(file));
	assert_memory_equal(file, id, 36);
	snprintf(file, sizeof(file), "%s/hostnqn", dir);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	/* a second call reads, never regenerates */
	assert_int_equal(attach_nvme_host_identity(dir, nqn2, sizeof(nqn2), id2, sizeof(id2)), 0);
	assert_string_equal(nqn, nqn2);
	assert_string_equal(id, id2);
	rmtree(base);
	free(base);
}

static void test_identity_existing_kept(void **state)
{
	char *dir = tmpdir(), nqn[ATTACH_NQN_MAX], id[ATTACH_HOSTID_LEN];

	/* a non-uuid hostnqn an admin wrote is kept; hostid gets a fresh uuid */
	spit(dir, "hostnqn", "nqn.2020-01.com.example:node-7\n");
	assert_int_equal(attach_nvme_host_identity(dir, nqn, sizeof(nqn), id, sizeof(id)), 0);
	assert_string_equal(nqn, "nqn.2020-01.com.example:node-7");
	assert_int_equal(strlen(id), 36);
	rmtree(dir);
	free(dir);

	/* a uuid hostnqn without hostid: the hostid is that uuid */
	dir = tmpdir();
	spit(dir, "hostnqn", PFX "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9\n");
	assert_int_equal(attach_nvme_host_identity(dir, nqn, sizeof(nqn), id, sizeof(id)), 0);
	assert_string_equal(id, "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9");
	rmtree(dir);
	free(dir);

	/* hostid only: hostnqn derived from it; an empty file counts as missing */
	dir = tmpdir();
	spit(dir, "hostid", "11111111-2222-4333-8444-555555555555\n");
	spit(dir, "hostnqn", "\n");
	assert_int_equal(attach_nvme_host_identity(dir, nqn, sizeof(nqn), id, sizeof(id)), 0);
	assert_string_equal(nqn, PFX "11111111-2222-4333-8444-555555555555");
	rmtree(dir);
	free(dir);
}

static void test_identity_errors(void **state)
{
	char *dir = tmpdir(), nqn[ATTACH_NQN_MAX], id[ATTACH_HOSTID_LEN], big[400], p[300];

	assert_int_equal(attach_nvme_host_identity(dir, nqn, 10, id, sizeof(id)), -EINVAL);
	assert_int_equal(attach_nvme_host_identity(dir, nqn, sizeof(nqn), id, 8), -EINVAL);
	assert_int_equal(attach_nvme_host_identity("", nqn, sizeof(nqn), id, sizeof(id)), -EINVAL);
	/* an over-long hostnqn is an error, not silently truncated */
	memset(big, 'n', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = '\0';
	spit(dir, "hostnqn", big);
	assert_int_equal(attach_nvme_host_identity(dir, nqn, sizeof(nqn), id, sizeof(id)),
			 -ENAMETOOLONG);
	/* the directory's parent is a file */
	snprintf(p, sizeof(p), "%s/hostnqn/sub", dir);
	assert_int_equal(attach_nvme_host_identity(p, nqn, sizeof(nqn), id, sizeof(id)), -ENOTDIR);
	rmtree(dir);
	free(dir);
}

int main(void)
{
	log_level = -1; /* the error paths log; keep the test output clean */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validate_ok),
		cmocka_unit_test(test_validate_rejects),
		cmocka_unit_test(test_calls_reject_bad_args),
		cmocka_unit_test(test_identity_created_and_persisted),
		cmocka_unit_test(test_identity_existing_kept),
		cmocka_unit_test(test_identity_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
