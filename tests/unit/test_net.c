/* common/net.c: address parsing, resolution, listening sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <netinet/in.h>

#include "net.h"

static void test_split(void **state)
{
	char host[32];
	const char *port;

	assert_int_equal(urbd_split_hostport("10.0.0.1:7788", host, sizeof(host), &port), 0);
	assert_string_equal(host, "10.0.0.1");
	assert_string_equal(port, "7788");
	assert_int_equal(urbd_split_hostport("[fd00::1]:4420", host, sizeof(host), &port), 0);
	assert_string_equal(host, "fd00::1");
	assert_string_equal(port, "4420");
	assert_int_equal(urbd_split_hostport(":10809", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(urbd_split_hostport("nocolon", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(urbd_split_hostport("a-very-long-host-name-that-does-not-fit:1", host,
					     sizeof(host), &port), -EINVAL);
}

static void test_resolve(void **state)
{
	struct sockaddr_storage sa;
	socklen_t len;

	assert_int_equal(urbd_resolve("127.0.0.1:7788", false, &sa, &len), 0);
	assert_int_equal(sa.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), 7788);
	assert_int_equal(urbd_resolve("[::1]:9", false, &sa, &len), 0);
	assert_int_equal(sa.ss_family, AF_INET6);
	/* a dialer needs a host; a listener may take any */
	assert_int_equal(urbd_resolve(":7788", false, &sa, &len), -EINVAL);
	assert_int_equal(urbd_resolve(":7788", true, &sa, &len), 0);
	assert_int_equal(urbd_resolve("127.0.0.1:", false, &sa, &len), -EINVAL);
	assert_int_equal(urbd_resolve("127.0.0.1", false, &sa, &len), -EINVAL);
}

static void test_listen(void **state)
{
	int fd = urbd_listen_tcp("127.0.0.1:0", 8), fd2, port;
	char spec[32];

	assert_true(fd >= 0);
	port = urbd_sock_port(fd);
	assert_true(port > 0);
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	fd2 = urbd_listen_tcp(spec, 8);
	assert_int_equal(fd2, -EADDRINUSE);
	close(fd);
	assert_int_equal(urbd_listen_tcp("127.0.0.1:notaport", 8), -EINVAL);
	assert_int_equal(urbd_sock_port(-1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_listen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
