/* repl_config.c: the replica-set file and the CLI/API member list. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../replication/repl_config.h"

static const char *good =
	"# comment\n"
	"local = 1\n"
	"ack = majority\n"
	"on-no-quorum = suspend-io\n"
	"resync-rate = 104857600\n"
	"member 0 = node-a 10.77.0.1:7788\n"
	"member 1 = node-b 10.77.0.2:7788\n"
	"member 2 = node-c 10.77.0.3:7788 diskless\n";

static void test_parse_format_round_trip(void **state)
{
	struct repl_config c, d;
	char err[256], text[4096];

	assert_int_equal(repl_config_parse(good, &c, err, sizeof(err)), 0);
	assert_int_equal(c.local_id, 1);
	assert_int_equal(c.ack, REPL_ACK_MAJORITY);
	assert_int_equal(c.on_no_quorum, REPL_NOQ_SUSPEND);
	assert_true(c.resync_rate_set);
	assert_int_equal(c.resync_rate, 100u << 20);
	assert_true(c.members[2].diskless);
	assert_string_equal(c.members[0].addr, "10.77.0.1:7788");
	assert_int_equal(repl_config_members(&c), 3);
	assert_int_equal(repl_config_majority(&c), 2);
	assert_int_equal(repl_config_format(&c, text, sizeof(text)), 0);
	assert_int_equal(repl_config_parse(text, &d, err, sizeof(err)), 0);
	assert_memory_equal(&c, &d, sizeof(c));
	/* no resync-rate line: the daemon's default, and none is written */
	assert_int_equal(repl_config_parse("local = 0\nmember 0 = a 1.2.3.4:1\n"
					   "member 1 = b 1.2.3.5:1\n", &c, err, sizeof(err)), 0);
	assert_false(c.resync_rate_set);
	assert_int_equal(repl_config_format(&c, text, sizeof(text)), 0);
	assert_null(strstr(text, "resync-rate"));
	/* 0: no limit, kept as set */
	assert_int_equal(repl_config_parse("local = 0\nresync-rate = 0\nmember 0 = a 1.2.3.4:1\n"
					   "member 1 = b 1.2.3.5:1\n", &c, err, sizeof(err)), 0);
	assert_true(c.resync_rate_set);
	assert_int_equal(c.resync_rate, 0);
	assert_int_equal(repl_config_format(&c, text, sizeof(text)), 0);
	assert_non_null(strstr(text, "resync-rate = 0\n"));
}

static void expect_bad(const char *text, const char *why)
{
	struct repl_config c;
	char err[256] = "";

	assert_int_equal(repl_config_parse(text, &c, err, sizeof(err)), -EINVAL);
	if (!strstr(err, why))
		fail_msg("'%s' does not contain '%s'", err, why);
}

static void test_parse_errors(void **state)
{
	expect_bad("member 0 = a 1.2.3.4:1\nmember 1 = b 1.2.3.5:1\n", "no 'local");
	expect_bad("local = 0\nresync-rate = 10M\nmember 0 = a 1.2.3.4:1\n", "line 2");
	expect_bad("local = 0\nresync-rate = -1\nmember 0 = a 1.2.3.4:1\n", "line 2");
	expect_bad("local = 2\nmember 0 = a 1.2.3.4:1\nmember 1 = b 1.2.3.5:1\n", "not in the replica set");
	expect_bad("local = 0\nmember 0 = a 1.2.3.4:1\n", "at least 2");
	expect_bad("local = 0\nmember 0 = a 1.2.3.4:1\nmember 0 = b 1.2.3.5:1\n", "line 3");
	expect_bad("local = 0\nmember 0 = a 1.2.3.4:1\nmember 1 = b nowhere\n", "not host:port");
	expect_bad("local = 0\nmember 0 = a 1.2.3.4:1\nmember 1 = b 1.2.3.5:99999\n", "not host:port");
	expect_bad("local = 0\nmember 0 = a 1.2.3.4:1\nmember 1 = b 1.2.3.5:1 tiny\n", "line 3");
	expect_bad("local = 0\nmember 0 = a 1.2.3.4:1 diskless\nmember 1 = b 1.2.3.5:1 diskless\n",
		   "every member is diskless");
	expect_bad("local = 0\nack = some\nmember 0 = a 1.2.3.4:1\nmember 1 = b 1.2.3.5:1\n", "line 2");
	expect_bad("local = 0\nmember 8 = a 1.2.3.4:1\n", "line 2");
	expect_bad("local = 0\nbogus = 1\n", "line 2");
	expect_bad("local = 0\nmember 0 = a/x 1.2.3.4:1\nmember 1 = b 1.2.3.5:1\n", "invalid node name");
}

static void test_members_spec(void **state)
{
	struct repl_config c = { .local_id = 0 };
	char err[256], back[512];

	assert_int_equal(repl_config_parse_members("0=a@10.0.0.1:7788,2=c@[fd00::3]:7788:diskless,"
						   "1=b@10.0.0.2:7788", &c, err, sizeof(err)), 0);
	assert_true(c.members[2].diskless);
	assert_string_equal(c.members[2].addr, "[fd00::3]:7788");
	assert_int_equal(repl_config_check(&c, err, sizeof(err)), 0);
	assert_int_equal(repl_config_format_members(&c, back, sizeof(back)), 0);
	assert_string_equal(back, "0=a@10.0.0.1:7788,1=b@10.0.0.2:7788,2=c@[fd00::3]:7788:diskless");
	assert_int_equal(repl_config_parse_members("0=a@h:1,0=b@h:2", &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(repl_config_parse_members("0=a", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(repl_config_parse_members("x=a@h:1", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(repl_config_parse_members("9=a@h:1", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(repl_config_parse_members("0=a@10.0.0.1:7788,1=b@10.0.0.2:7788", &c, err, sizeof(err)), 0);
	assert_int_equal(repl_config_format_members(&c, back, 8), -ENOSPC);
}

static void test_save_load(void **state)
{
	char dir[] = "/tmp/urbd-test-replconf-XXXXXX", err[256], path[600];
	struct repl_config c, d;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(repl_config_load(dir, &d, err, sizeof(err)), -ENOENT);
	assert_int_equal(repl_config_parse(good, &c, err, sizeof(err)), 0);
	assert_int_equal(repl_config_save(dir, &c), 0);
	assert_int_equal(repl_config_load(dir, &d, err, sizeof(err)), 0);
	assert_memory_equal(&c, &d, sizeof(c));
	snprintf(path, sizeof(path), "%s/%s", dir, REPL_CONFIG_FILE);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_format_round_trip),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_members_spec),
		cmocka_unit_test(test_save_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
