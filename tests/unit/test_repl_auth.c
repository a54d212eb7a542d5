/* repl_auth.c: the HMAC challenge-response between two peers, driven
 * through the real wire encoding; wrong secret, replayed and reflected
 * challenges, messages out of order; the secret file checks; and that
 * the secret never reaches the log. */
#include <errno.h>
#include <fcntl.h>
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

#include "../../replication/repl_auth.h"
#include "util.h"

#define SECRET "0123456789abcdef-secret"

static struct repl_secret secret_a, secret_b, secret_wrong;

static int setup(void **state)
{
	if (repl_secret_set(&secret_a, SECRET, strlen(SECRET)) ||
	    repl_secret_set(&secret_b, SECRET, strlen(SECRET)) ||
	    repl_secret_set(&secret_wrong, "another-secret-entirely", 23))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	repl_secret_free(&secret_a);
	repl_secret_free(&secret_b);
	repl_secret_free(&secret_wrong);
	return 0;
}

static void nonce_fill(uint8_t *n, uint8_t seed)
{
	for (int i = 0; i < REPL_NONCE_LEN; i++)
		n[i] = (uint8_t)(seed + i * 3 + 1);
}

/* a message through encode + decode, as the peer would see it */
static struct repl_msg wire(const struct repl_msg *m)
{
	uint8_t buf[128];
	struct repl_msg d;
	const char *why = NULL;
	ssize_t n = repl_msg_encode(m, buf, sizeof(buf));

	assert_true(n >= REPL_HDR_LEN);
	assert_int_equal(repl_msg_decode(m->type, buf + REPL_HDR_LEN, (size_t)n - REPL_HDR_LEN, &d, &why), 0);
	return d;
}

struct pair {
	struct repl_auth a, b;
	struct repl_msg ca, cb;   /* challenges */
	struct repl_msg ra, rb;   /* responses */
	struct repl_msg oa, ob;   /* AUTH_OKs */
};

static void start_pair(struct pair *p, const struct repl_secret *sa,
		       const struct repl_secret *sb, uint8_t seed)
{
	uint8_t na[REPL_NONCE_LEN], nb[REPL_NONCE_LEN];

	nonce_fill(na, seed);
	nonce_fill(nb, (uint8_t)(seed + 100));
	assert_int_equal(repl_auth_start(&p->a, false, sa, 1, 2, na, "node-b", &p->ca), 0);
	assert_int_equal(repl_auth_start(&p->b, false, sb, 2, REPL_AUTH_ANY_PEER, nb, "node-a", &p->cb), 0);
	assert_int_equal(p->a.state, REPL_AUTH_WAIT_CHALLENGE);
	assert_int_equal(p->ca.type, REPL_MSG_AUTH_CHALLENGE);
}

static void test_both_sides_authenticate(void **state)
{
	struct pair p;
	struct repl_msg in;

	start_pair(&p, &secret_a, &secret_b, 1);
	in = wire(&p.cb);
	assert_int_equal(repl_auth_recv(&p.a, &in, &p.ra), 1);
	in = wire(&p.ca);
	assert_int_equal(repl_auth_recv(&p.b, &in, &p.rb), 1);
	assert_int_equal(p.ra.type, REPL_MSG_AUTH_RESPONSE);
	in = wire(&p.rb);
	assert_int_equal(repl_auth_recv(&p.a, &in, &p.oa), 1);
	assert_int_equal(p.oa.type, REPL_MSG_AUTH_OK);
	assert_int_equal(p.a.state, REPL_AUTH_WAIT_OK);
	in = wire(&p.ra);
	assert_int_equal(repl_auth_recv(&p.b, &in, &p.ob), 1);
	in = wire(&p.ob);
	assert_int_equal(repl_auth_recv(&p.a, &in, &p.oa), 0);
	in = wire(&p.oa);
	assert_int_equal(repl_auth_recv(&p.b, &in, &p.ob), 0);
	assert_int_equal(p.a.state, REPL_AUTH_DONE);
	assert_int_equal(p.b.state, REPL_AUTH_DONE);
	assert_int_equal(p.b.peer_id, 1);
	assert_int_equal(p.a.peer_id, 2);
	/* anything after DONE is out of order */
	assert_int_equal(repl_auth_recv(&p.a, &in, &p.oa), -EPROTO);
	assert_int_equal(p.a.state, REPL_AUTH_FAILED);
}

static void test_wrong_secret_refused_both_ways(void **state)
{
	struct pair p;
	struct repl_msg in, out;

	start_pair(&p, &secret_a, &secret_wrong, 2);
	in = wire(&p.cb);
	assert_int_equal(repl_auth_recv(&p.a, &in, &p.ra), 1);
	in = wire(&p.ca);
	assert_int_equal(repl_auth_recv(&p.b, &in, &p.rb), 1);
	in = wire(&p.rb);
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EACCES);
	assert_int_equal(p.a.state, REPL_AUTH_FAILED);
	assert_int_equal(p.a.reason, REPL_REASON_AUTH_FAILED);
	assert_non_null(strstr(p.a.why, "secret"));
	in = wire(&p.ra);
	assert_int_equal(repl_auth_recv(&p.b, &in, &out), -EACCES);
	/* a failed exchange stays failed, whatever arrives */
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EPROTO);
	assert_int_equal(p.a.reason, REPL_REASON_AUTH_FAILED);
}

/* a response recorded on one connection is worthless on the next */
static void test_replayed_response_refused(void **state)
{
	struct pair old, now;
	struct repl_msg in, out;

	start_pair(&old, &secret_a, &secret_b, 3);
	in = wire(&old.ca);
	assert_int_equal(repl_auth_recv(&old.b, &in, &old.rb), 1);

	start_pair(&now, &secret_a, &secret_b, 4); /* fresh nonces */
	in = wire(&now.cb);
	assert_int_equal(repl_auth_recv(&now.a, &in, &now.ra), 1);
	in = wire(&old.rb);
	assert_int_equal(repl_auth_recv(&now.a, &in, &out), -EACCES);
	/* replaying the old challenge too does not help: a's nonce is new */
	start_pair(&now, &secret_a, &secret_b, 5);
	in = wire(&old.cb);
	assert_int_equal(repl_auth_recv(&now.a, &in, &now.ra), 1);
	in = wire(&old.rb);
	assert_int_equal(repl_auth_recv(&now.a, &in, &out), -EACCES);
}

/* an attacker without the secret echoes our own challenge back at us */
static void test_reflected_challenge_refused(void **state)
{
	struct pair p;
	struct repl_msg in, out;

	start_pair(&p, &secret_a, &secret_b, 6);
	in = wire(&p.ca);
	in.u.auth.node_id = 2; /* claims to be b, echoes a's nonce */
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EPROTO);
	assert_non_null(strstr(p.a.why, "echoed"));

	start_pair(&p, &secret_a, &secret_b, 7);
	in = wire(&p.ca); /* own id too */
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EACCES);
	assert_non_null(strstr(p.a.why, "own node id"));
}

/* Two sessions to the same daemon b: the attacker uses b's answer on
 * session 2 as its own proof on session 1. The MAC binds the prover id,
 * so b's answer does not verify as anybody else's. */
static void test_cross_session_reflection_refused(void **state)
{
	struct repl_auth s1, s2;
	struct repl_msg c1, c2, mchal, resp2, out;
	uint8_t n1[REPL_NONCE_LEN], n2[REPL_NONCE_LEN];

	nonce_fill(n1, 10);
	nonce_fill(n2, 20);
	assert_int_equal(repl_auth_start(&s1, false, &secret_b, 2, REPL_AUTH_ANY_PEER, n1, "m1", &c1), 0);
	assert_int_equal(repl_auth_start(&s2, false, &secret_b, 2, REPL_AUTH_ANY_PEER, n2, "m2", &c2), 0);
	/* session 2: attacker (claiming id 1) sends b's session-1 nonce */
	mchal = c1;
	mchal.u.auth.node_id = 1;
	assert_int_equal(repl_auth_recv(&s2, &mchal, &resp2), 1);
	/* session 1: attacker challenges with b's session-2 nonce and
	 * answers with b's own session-2 response */
	mchal = c2;
	mchal.u.auth.node_id = 1;
	assert_int_equal(repl_auth_recv(&s1, &mchal, &out), 1);
	assert_int_equal(repl_auth_recv(&s1, &resp2, &out), -EACCES);
}

static void test_expected_peer_id_enforced(void **state)
{
	struct pair p;
	struct repl_msg in, out;

	start_pair(&p, &secret_a, &secret_b, 8);
	in = wire(&p.cb);
	in.u.auth.node_id = 3; /* a expects 2 */
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EACCES);
	assert_non_null(strstr(p.a.why, "configured peer"));
}

/* the response must be bound to the claimed id: changing it breaks it */
static void test_response_bound_to_identity(void **state)
{
	struct pair p;
	struct repl_msg in, out;

	start_pair(&p, &secret_a, &secret_b, 9);
	p.b.own_id = 2;
	in = wire(&p.ca);
	assert_int_equal(repl_auth_recv(&p.b, &in, &p.rb), 1);
	in = wire(&p.cb);
	in.u.auth.node_id = 2;
	assert_int_equal(repl_auth_recv(&p.a, &in, &p.ra), 1);
	p.rb.mac[0] ^= 1;
	in = wire(&p.rb);
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EACCES);
}

static void test_out_of_order(void **state)
{
	struct pair p;
	struct repl_msg in, out;

	start_pair(&p, &secret_a, &secret_b, 11);
	memset(&in, 0, sizeof(in));
	in.type = REPL_MSG_AUTH_RESPONSE; /* before any challenge */
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EPROTO);
	assert_int_equal(p.a.reason, REPL_REASON_PROTOCOL);

	start_pair(&p, &secret_a, &secret_b, 12);
	in.type = REPL_MSG_AUTH_OK;
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EPROTO);

	start_pair(&p, &secret_a, &secret_b, 13);
	in = wire(&p.cb);
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), 1);
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EPROTO); /* second challenge */

	start_pair(&p, &secret_a, &secret_b, 14);
	in.type = REPL_MSG_PING; /* not an auth message at all */
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EPROTO);

	memset(&p.a, 0, sizeof(p.a)); /* never started */
	in.type = REPL_MSG_AUTH_CHALLENGE;
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EPROTO);
}

static void test_start_errors(void **state)
{
	struct repl_auth a;
	struct repl_msg c;
	struct repl_secret none = { 0 };
	uint8_t n[REPL_NONCE_LEN] = { 0 };

	assert_int_equal(repl_auth_start(&a, false, &secret_a, 1, 2, n, "x", &c), -EINVAL);
	nonce_fill(n, 1);
	assert_int_equal(repl_auth_start(&a, false, &none, 1, 2, n, "x", &c), -EINVAL);
	assert_int_equal(repl_auth_start(&a, false, NULL, 1, 2, n, "x", &c), -EINVAL);
	assert_int_equal(repl_auth_start(&a, false, &secret_a, 1, 1, n, "x", &c), -EINVAL);
	assert_int_equal(a.state, REPL_AUTH_FAILED);
	assert_int_equal(repl_auth_random_nonce(n), 0);
	assert_string_equal(repl_auth_state_name(REPL_AUTH_WAIT_OK), "wait-ok");
	assert_string_equal(repl_auth_state_name((enum repl_auth_state)99), "?");
}

/* fixed vector, computed with Python's hmac module */
static void test_mac_known_answer(void **state)
{
	static const uint8_t want[32] = {
		0x4d, 0xfb, 0xc5, 0x78, 0xf5, 0x84, 0xb2, 0x9e, 0x65, 0xb1, 0x61,
		0xa8, 0x28, 0x40, 0x7d, 0xc3, 0x30, 0xd6, 0xff, 0x15, 0x88, 0x1c,
		0x45, 0x72, 0x4b, 0xf3, 0x83, 0xfc, 0x4f, 0x1c, 0x69, 0x16,
	};
	uint8_t vn[32], pn[32], mac[32];

	for (int i = 0; i < 32; i++) {
		vn[i] = (uint8_t)i;
		pn[i] = (uint8_t)(32 + i);
	}
	assert_int_equal(repl_auth_mac(&secret_a, 1, 2, vn, pn, mac), 0);
	assert_memory_equal(mac, want, 32);
}

/* ---- the secret file --------------------------------------------------- */

static char tmpdir[64];

static void write_file(const char *name, const char *content, size_t len, mode_t mode, char *path)
{
	int fd;

	snprintf(path, 128, "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_secret_file(void **state)
{
	struct repl_secret s;
	char path[128], link[160];
	static char big[REPL_SECRET_MAX + 2];

	strcpy(tmpdir, "/tmp/urbd-test-secret.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));

	write_file("ok", SECRET "\n", strlen(SECRET) + 1, 0400, path);
	assert_int_equal(repl_secret_load(path, &s), 0);
	assert_int_equal(s.len, strlen(SECRET));
	assert_memory_equal(s.key, SECRET, s.len);
	repl_secret_free(&s);
	assert_null(s.key);

	/* Kubernetes mounts the key as a symlink into ..data/ */
	snprintf(link, sizeof(link), "%s/link", tmpdir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(repl_secret_load(link, &s), 0);
	repl_secret_free(&s);
	unlink(link);
	unlink(path);

	write_file("grp", "s3cr3t-group-readable\r\n", 23, 0440, path);
	assert_int_equal(repl_secret_load(path, &s), 0);
	assert_int_equal(s.len, 21);
	repl_secret_free(&s);
	unlink(path);

	write_file("world", SECRET, strlen(SECRET), 0644, path);
	assert_int_equal(repl_secret_load(path, &s), -EPERM);
	assert_null(s.key);
	unlink(path);
	write_file("worldw", SECRET, strlen(SECRET), 0602, path);
	assert_int_equal(repl_secret_load(path, &s), -EPERM);
	unlink(path);

	write_file("empty", "", 0, 0600, path);
	assert_int_equal(repl_secret_load(path, &s), -ENODATA);
	unlink(path);
	write_file("nl", "\n\n", 2, 0600, path);
	assert_int_equal(repl_secret_load(path, &s), -ENODATA);
	unlink(path);

	memset(big, 'b', sizeof(big));
	write_file("big", big, REPL_SECRET_MAX + 1, 0600, path);
	assert_int_equal(repl_secret_load(path, &s), -EFBIG);
	unlink(path);
	write_file("max", big, REPL_SECRET_MAX, 0600, path);
	assert_int_equal(repl_secret_load(path, &s), 0);
	assert_int_equal(s.len, REPL_SECRET_MAX);
	repl_secret_free(&s);
	unlink(path);

	write_file("short", "abc", 3, 0600, path); /* works, with a warning */
	assert_int_equal(repl_secret_load(path, &s), 0);
	repl_secret_free(&s);
	unlink(path);

	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(repl_secret_load(path, &s), -ENOENT);
	chmod(tmpdir, 0700);
	assert_int_equal(repl_secret_load(tmpdir, &s), -EINVAL); /* a directory */
	assert_int_equal(rmdir(tmpdir), 0);

	assert_int_equal(repl_secret_set(&s, "", 0), -EINVAL);
	assert_int_equal(repl_secret_set(&s, big, REPL_SECRET_MAX + 1), -EINVAL);
}

/* every refusal logs a reason, never the secret */
static void test_secret_never_logged(void **state)
{
	char logpath[] = "/tmp/urbd-test-authlog.XXXXXX";
	int fd = mkstemp(logpath), saved;
	struct pair p;
	struct repl_msg in, out;
	char text[8192];
	ssize_t n;

	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	start_pair(&p, &secret_a, &secret_wrong, 30);
	in = wire(&p.cb);
	repl_auth_recv(&p.a, &in, &p.ra);
	in = wire(&p.ca);
	repl_auth_recv(&p.b, &in, &p.rb);
	in = wire(&p.rb);
	assert_int_equal(repl_auth_recv(&p.a, &in, &out), -EACCES);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	unlink(logpath);
	assert_true(n > 0);
	text[n] = 0;
	assert_non_null(strstr(text, "peer node-b: authentication refused"));
	assert_null(strstr(text, SECRET));
	assert_null(strstr(text, "another-secret"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_both_sides_authenticate),
		cmocka_unit_test(test_wrong_secret_refused_both_ways),
		cmocka_unit_test(test_replayed_response_refused),
		cmocka_unit_test(test_reflected_challenge_refused),
		cmocka_unit_test(test_cross_session_reflection_refused),
		cmocka_unit_test(test_expected_peer_id_enforced),
		cmocka_unit_test(test_response_bound_to_identity),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_mac_known_answer),
		cmocka_unit_test(test_secret_file),
		cmocka_unit_test(test_secret_never_logged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
