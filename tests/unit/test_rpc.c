/* rpc_server/rpc_client against each other over a real unix socket and a
 * real TCP+mutual-TLS listener, plus raw calls through the gRPC core to
 * send what rpc_client never would (garbage payloads, no client cert). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include "rpc.h"
#include "urbd/v1/control.pb-c.h"
#include "util.h"

#define GET_VOLUME "/urbd.v1.Control/GetVolume"
#define NODE_INFO "/urbd.v1.Control/NodeInfo"

static char tmpdir[64];
static char sock_path[128];
static char target[160];
static struct rpc_server *server;
static struct rpc_client *client;
static int handler_calls;
static int ctx_cookie;

/* GetVolume: "ok" answers, "missing" is NOT_FOUND, "slow" sleeps 3 s. */
static grpc_status_code get_volume(void *ctx, const ProtobufCMessage *req,
				   ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__GetVolumeRequest *r = (const void *)req;
	Urbd__V1__GetVolumeResponse *out;
	Urbd__V1__Volume *v;

	assert_ptr_equal(ctx, &ctx_cookie);
	__atomic_add_fetch(&handler_calls, 1, __ATOMIC_SEQ_CST);
	if (strcmp(r->name, "missing") == 0) {
		snprintf(err, errlen, "volume %s not found", r->name);
		return GRPC_STATUS_NOT_FOUND;
	}
	if (strcmp(r->name, "slow") == 0)
		sleep(3);
	out = malloc(sizeof(*out));
	v = malloc(sizeof(*v));
	assert_non_null(out);
	assert_non_null(v);
	urbd__v1__get_volume_response__init(out);
	urbd__v1__volume__init(v);
	v->name = strdup(r->name);
	v->size_bytes = 1u << 20;
	v->state = URBD__V1__VOLUME_STATE__VOLUME_STATE_ONLINE;
	out->volume = v;
	*resp = &out->base;
	return GRPC_STATUS_OK;
}

/* NodeInfo with a custom free: the strings are static here. */
static grpc_status_code node_info(void *ctx, const ProtobufCMessage *req,
				  ProtobufCMessage **resp, char *err, size_t errlen)
{
	Urbd__V1__NodeInfoResponse *out = malloc(sizeof(*out));
	Urbd__V1__NodeInfo *n = malloc(sizeof(*n));

	urbd__v1__node_info_response__init(out);
	urbd__v1__node_info__init(n);
	n->node_id = (char *)"node-a";
	n->zone = (char *)"zone-1";
	n->reactors = 4;
	out->node = n;
	*resp = &out->base;
	return GRPC_STATUS_OK;
}

static int node_info_frees;

static void node_info_free(void *ctx, ProtobufCMessage *resp)
{
	Urbd__V1__NodeInfoResponse *out = (void *)resp;

	node_info_frees++;
	free(out->node);
	free(out);
}

static const struct rpc_method methods[] = {
	{ GET_VOLUME, &urbd__v1__get_volume_request__descriptor, get_volume, NULL },
	{ NODE_INFO, &urbd__v1__node_info_request__descriptor, node_info, node_info_free },
};

static int start_unix_server(const char *path, struct rpc_server **out)
{
	struct rpc_server_config cfg = {
		.tag = "test", .unix_path = path, .threads = 3, .grace_ms = 300,
	};

	return rpc_server_start(&cfg, methods, ARRAY_SIZE(methods), &ctx_cookie, out);
}

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/urbd-test-rpc-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", tmpdir);
	snprintf(target, sizeof(target), "unix:%s", sock_path);
	if (start_unix_server(sock_path, &server))
		return -1;
	client = rpc_client_new(target, NULL);
	return client ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	rpc_client_free(client);
	rpc_server_stop(server);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		return -1;
	rpc_cleanup();
	return 0;
}

static grpc_status_code get(struct rpc_client *c, const char *name,
			    Urbd__V1__GetVolumeResponse **resp, char *err, size_t errlen)
{
	Urbd__V1__GetVolumeRequest req = URBD__V1__GET_VOLUME_REQUEST__INIT;

	req.name = (char *)name;
	return rpc_call(c, GET_VOLUME, &req.base,
			&urbd__v1__get_volume_response__descriptor,
			(ProtobufCMessage **)resp, 5000, err, errlen);
}

static void test_success(void **state)
{
	Urbd__V1__GetVolumeResponse *resp;
	char err[256];

	assert_int_equal(get(client, "ok", &resp, err, sizeof(err)), GRPC_STATUS_OK);
	assert_non_null(resp->volume);
	assert_string_equal(resp->volume->name, "ok");
	assert_int_equal(resp->volume->size_bytes, 1u << 20);
	assert_int_equal(resp->volume->state, URBD__V1__VOLUME_STATE__VOLUME_STATE_ONLINE);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_custom_free(void **state)
{
	Urbd__V1__NodeInfoRequest req = URBD__V1__NODE_INFO_REQUEST__INIT;
	Urbd__V1__NodeInfoResponse *resp;
	int before = node_info_frees;
	char err[256];

	assert_int_equal(rpc_call(client, NODE_INFO, &req.base,
				  &urbd__v1__node_info_response__descriptor,
				  (ProtobufCMessage **)&resp, 5000, err, sizeof(err)),
			 GRPC_STATUS_OK);
	assert_string_equal(resp->node->node_id, "node-a");
	assert_string_equal(resp->node->zone, "zone-1");
	assert_int_equal(resp->node->reactors, 4);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	assert_int_equal(node_info_frees, before + 1);
}

static void test_handler_error(void **state)
{
	Urbd__V1__GetVolumeResponse *resp = (void *)1;
	char err[256];

	assert_int_equal(get(client, "missing", &resp, err, sizeof(err)),
			 GRPC_STATUS_NOT_FOUND);
	assert_null(resp);
	assert_string_equal(err, "volume missing not found");
}

static void test_unknown_method(void **state)
{
	Urbd__V1__GetVolumeRequest req = URBD__V1__GET_VOLUME_REQUEST__INIT;
	ProtobufCMessage *resp;
	int before = handler_calls;
	char err[256];

	assert_int_equal(rpc_call(client, "/urbd.v1.Control/NoSuchThing", &req.base,
				  &urbd__v1__get_volume_response__descriptor, &resp,
				  5000, err, sizeof(err)),
			 GRPC_STATUS_UNIMPLEMENTED);
	assert_non_null(strstr(err, "NoSuchThing"));
	assert_int_equal(handler_calls, before);
}

/* A unary call through the core API with an arbitrary payload. */
static grpc_status_code raw_call(grpc_channel *ch, const char *method,
				 const void *payload, size_t len,
				 char *details, size_t dlen)
{
	grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
	grpc_slice body = grpc_slice_from_copied_buffer(payload, len);
	grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1), *recv = NULL;
	grpc_metadata_array imd, tmd;
	grpc_slice det = grpc_empty_slice();
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
					     gpr_time_from_millis(5000, GPR_TIMESPAN));
	grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
						   grpc_slice_from_static_string(method),
						   NULL, deadline, NULL);
	grpc_op ops[6];
	grpc_event ev;

	grpc_metadata_array_init(&imd);
	grpc_metadata_array_init(&tmd);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &det;
	assert_int_equal(grpc_call_start_batch(call, ops, 6, (void *)1, NULL), GRPC_CALL_OK);
	ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	assert_int_equal(ev.type, GRPC_OP_COMPLETE);
	snprintf(details, dlen, "%.*s", (int)GRPC_SLICE_LENGTH(det),
		 (const char *)GRPC_SLICE_START_PTR(det));
	grpc_slice_unref(det);
	grpc_slice_unref(body);
	grpc_byte_buffer_destroy(send);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_metadata_array_destroy(&imd);
	grpc_metadata_array_destroy(&tmd);
	grpc_call_unref(call);
	grpc_completion_queue_shutdown(cq);
	grpc_completion_queue_destroy(cq);
	return status;
}

static void test_garbage_request(void **state)
{
	/* field 1 with wire type 7 (invalid), then a truncated varint */
	static const uint8_t garbage[] = { 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t valid[] = { 0x0a, 0x02, 'o', 'k' }; /* name = "ok" */
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	grpc_channel *ch = grpc_channel_create(target, creds, NULL);
	int before = handler_calls;
	char details[256];

	assert_int_equal(raw_call(ch, GET_VOLUME, garbage, sizeof(garbage),
				  details, sizeof(details)),
			 GRPC_STATUS_INVALID_ARGUMENT);
	assert_non_null(strstr(details, "not a valid urbd.v1.GetVolumeRequest"));
	assert_int_equal(handler_calls, before);
	/* the same channel and server still serve a well-formed call */
	assert_int_equal(raw_call(ch, GET_VOLUME, valid, sizeof(valid),
				  details, sizeof(details)), GRPC_STATUS_OK);
	assert_int_equal(handler_calls, before + 1);
	grpc_channel_destroy(ch);
	grpc_channel_credentials_release(creds);
}

static void test_socket_mode(void **state)
{
	struct stat st;

	assert_int_equal(stat(sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_second_server_refused(void **state)
{
	struct rpc_server *second = NULL;
	Urbd__V1__GetVolumeResponse *resp;
	struct stat before, after;
	char err[256];

	assert_int_equal(stat(sock_path, &before), 0);
	assert_int_equal(start_unix_server(sock_path, &second), -EADDRINUSE);
	assert_null(second);
	/* the live server's socket was not unlinked and still answers */
	assert_int_equal(stat(sock_path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(get(client, "ok", &resp, err, sizeof(err)), GRPC_STATUS_OK);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_missing_socket_fails_fast(void **state)
{
	char t[200], err[256];
	Urbd__V1__GetVolumeResponse *resp;
	struct rpc_client *c;
	uint64_t start;

	snprintf(t, sizeof(t), "unix:%s/nobody-here.sock", tmpdir);
	c = rpc_client_new(t, NULL);
	assert_non_null(c);
	start = now_ns();
	assert_int_equal(get(c, "ok", &resp, err, sizeof(err)), GRPC_STATUS_UNAVAILABLE);
	assert_true(now_ns() - start < 2000000000ull);
	assert_true(err[0] != '\0');
	rpc_client_free(c);
}

static void test_deadline(void **state)
{
	Urbd__V1__GetVolumeRequest req = URBD__V1__GET_VOLUME_REQUEST__INIT;
	ProtobufCMessage *resp = (void *)1;
	uint64_t start = now_ns();
	char err[256];

	req.name = (char *)"slow";
	assert_int_equal(rpc_call(client, GET_VOLUME, &req.base,
				  &urbd__v1__get_volume_response__descriptor, &resp,
				  300, err, sizeof(err)),
			 GRPC_STATUS_DEADLINE_EXCEEDED);
	assert_null(resp);
	assert_true(now_ns() - start < 1500000000ull);
	/* the handler is still sleeping on one worker; the others serve */
	test_success(state);
}

static void *hammer(void *arg)
{
	struct rpc_client *c = arg;
	long failures = 0;

	for (int i = 0; i < 50; i++) {
		Urbd__V1__GetVolumeResponse *resp;
		char err[256];

		if (get(c, "ok", &resp, err, sizeof(err)) != GRPC_STATUS_OK)
			failures++;
		else
			protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	return (void *)failures;
}

static void test_concurrent_calls(void **state)
{
	pthread_t th[8];

	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hammer, client), 0);
	for (int i = 0; i < 8; i++) {
		void *failures;

		pthread_join(th[i], &failures);
		assert_int_equal((long)failures, 0);
	}
}

struct slow_arg {
	struct rpc_client *c;
	grpc_status_code status;
};

static void *slow_call(void *arg)
{
	struct slow_arg *a = arg;
	Urbd__V1__GetVolumeResponse *resp = NULL;
	char err[256];

	a->status = get(a->c, "slow", &resp, err, sizeof(err));
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	return NULL;
}

/* Stop must not wait for idle clients or for a handler to finish
 * answering; it cancels after the grace period. */
static void test_stop_with_clients(void **state)
{
	char path[128], t[160];
	struct rpc_server *s;
	struct rpc_client *idle, *busy;
	struct slow_arg arg;
	Urbd__V1__GetVolumeResponse *resp;
	char err[256];
	pthread_t th;
	uint64_t start;

	snprintf(path, sizeof(path), "%s/stop.sock", tmpdir);
	snprintf(t, sizeof(t), "unix:%s", path);
	assert_int_equal(start_unix_server(path, &s), 0);
	idle = rpc_client_new(t, NULL);
	busy = rpc_client_new(t, NULL);
	assert_int_equal(get(idle, "ok", &resp, err, sizeof(err)), GRPC_STATUS_OK);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	arg.c = busy;
	assert_int_equal(pthread_create(&th, NULL, slow_call, &arg), 0);
	usleep(300 * 1000);
	start = now_ns();
	rpc_server_stop(s);
	/* the handler's 3 s sleep is not cancellable; the rest must be quick */
	assert_true(now_ns() - start < 3500000000ull);
	pthread_join(th, NULL);
	assert_int_not_equal(arg.status, GRPC_STATUS_OK);
	assert_int_equal(access(path, F_OK), -1);
	/* and the path can be served again */
	assert_int_equal(start_unix_server(path, &s), 0);
	rpc_server_stop(s);
	rpc_client_free(idle);
	rpc_client_free(busy);
}

static void test_config_errors(void **state)
{
	struct rpc_server_config none = { .tag = "test" };
	struct rpc_server_config plain_tcp = { .tag = "test", .tcp_listen = "127.0.0.1:0" };
	struct rpc_server_config long_path = { .tag = "test" };
	char longp[200];
	struct rpc_server *s = NULL;

	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	long_path.unix_path = longp;
	assert_int_equal(rpc_server_start(&none, methods, 2, NULL, &s), -EINVAL);
	assert_int_equal(rpc_server_start(&plain_tcp, methods, 2, NULL, &s), -EINVAL);
	assert_int_equal(rpc_server_start(&long_path, methods, 2, NULL, &s), -ENAMETOOLONG);
	assert_null(s);
	assert_string_equal(rpc_status_name(GRPC_STATUS_NOT_FOUND), "NOT_FOUND");
	assert_int_equal(rpc_status_from_errno(-EBUSY), GRPC_STATUS_FAILED_PRECONDITION);
	assert_int_equal(rpc_status_from_errno(-EIO), GRPC_STATUS_INTERNAL);
}

/* ---- TCP with mutual TLS ------------------------------------------ */

/* Throwaway PKI made with the openssl CLI: a CA, a server cert for
 * 127.0.0.1/localhost, a client cert, and a client cert from another CA. */
static int make_pki(const char *dir)
{
	static const char *const script =
		"set -e; cd '%s'; exec >openssl.log 2>&1;"
		"k='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';"
		"for ca in ca rogue; do openssl req -x509 $k -keyout $ca.key -out $ca.crt"
		" -days 1 -subj /CN=urbd-test-$ca"
		" -addext basicConstraints=critical,CA:TRUE"
		" -addext keyUsage=critical,keyCertSign,cRLSign; done;"
		"printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
		"extendedKeyUsage=serverAuth\\n' >server.ext;"
		"printf 'extendedKeyUsage=clientAuth\\n' >client.ext;"
		"sign() { openssl req $k -keyout $1.key -out $1.csr -subj /CN=$1;"
		" openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -CAcreateserial"
		" -days 1 -extfile $3.ext -out $1.crt; };"
		"sign server ca server; sign client ca client; sign intruder rogue client";
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), script, dir);
	return system(cmd);
}

static grpc_status_code tls_get(const char *t, const struct rpc_tls *tls)
{
	Urbd__V1__GetVolumeResponse *resp = NULL;
	struct rpc_client *c = rpc_client_new(t, tls);
	grpc_status_code st;
	char err[256];

	assert_non_null(c);
	st = get(c, "ok", &resp, err, sizeof(err));
	if (resp) {
		assert_string_equal(resp->volume->name, "ok");
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	rpc_client_free(c);
	return st;
}

static char *read_text(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	long n;

	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	return buf;
}

static void test_tls_mutual(void **state)
{
	char dir[128], f[8][160], t[64], details[256];
	struct rpc_tls server_tls, client_tls, rogue_tls;
	struct rpc_server_config cfg = { .tag = "test-tls", .threads = 2, .grace_ms = 300 };
	grpc_channel_credentials *creds;
	struct rpc_server *s;
	grpc_channel *ch;
	char *ca_pem;

	if (system("command -v openssl >/dev/null 2>&1") != 0)
		skip();
	snprintf(dir, sizeof(dir), "%s/pki", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(make_pki(dir), 0);
	snprintf(f[0], sizeof(f[0]), "%s/ca.crt", dir);
	snprintf(f[1], sizeof(f[1]), "%s/server.crt", dir);
	snprintf(f[2], sizeof(f[2]), "%s/server.key", dir);
	snprintf(f[3], sizeof(f[3]), "%s/client.crt", dir);
	snprintf(f[4], sizeof(f[4]), "%s/client.key", dir);
	snprintf(f[5], sizeof(f[5]), "%s/intruder.crt", dir);
	snprintf(f[6], sizeof(f[6]), "%s/intruder.key", dir);
	server_tls = (struct rpc_tls){ .cert = f[1], .key = f[2], .ca = f[0] };
	client_tls = (struct rpc_tls){ .cert = f[3], .key = f[4], .ca = f[0] };
	rogue_tls = (struct rpc_tls){ .cert = f[5], .key = f[6], .ca = f[0] };

	/* a key that does not match its certificate is refused at start */
	cfg.tcp_listen = "127.0.0.1:0";
	cfg.tls = &(struct rpc_tls){ .cert = f[1], .key = f[4], .ca = f[0] };
	assert_int_equal(rpc_server_start(&cfg, methods, ARRAY_SIZE(methods),
					  &ctx_cookie, &s), -EINVAL);

	/* TCP listener added, then the unix one fails: unwinds cleanly */
	cfg.tls = &server_tls;
	cfg.unix_path = "/nonexistent-dir/control.sock";
	assert_int_equal(rpc_server_start(&cfg, methods, ARRAY_SIZE(methods),
					  &ctx_cookie, &s), -ENOENT);
	cfg.unix_path = NULL;

	assert_int_equal(rpc_server_start(&cfg, methods, ARRAY_SIZE(methods),
					  &ctx_cookie, &s), 0);
	assert_true(rpc_server_tcp_port(s) > 0);
	snprintf(t, sizeof(t), "127.0.0.1:%d", rpc_server_tcp_port(s));

	assert_int_equal(tls_get(t, &client_tls), GRPC_STATUS_OK);
	/* server name override: dial by IP, check the cert's DNS name */
	client_tls.server_name = "localhost";
	assert_int_equal(tls_get(t, &client_tls), GRPC_STATUS_OK);
	/* a client certificate from a CA the server does not trust */
	assert_int_not_equal(tls_get(t, &rogue_tls), GRPC_STATUS_OK);

	/* no client certificate at all: the core API, since rpc_client
	 * insists on one */
	ca_pem = read_text(f[0]);
	creds = grpc_ssl_credentials_create(ca_pem, NULL, NULL, NULL);
	ch = grpc_channel_create(t, creds, NULL);
	assert_int_not_equal(raw_call(ch, GET_VOLUME, "\x0a\x02ok", 4, details,
				      sizeof(details)), GRPC_STATUS_OK);
	grpc_channel_destroy(ch);
	grpc_channel_credentials_release(creds);
	free(ca_pem);

	/* and plaintext against the TLS port fails too */
	creds = grpc_insecure_credentials_create();
	ch = grpc_channel_create(t, creds, NULL);
	assert_int_not_equal(raw_call(ch, GET_VOLUME, "\x0a\x02ok", 4, details,
				      sizeof(details)), GRPC_STATUS_OK);
	grpc_channel_destroy(ch);
	grpc_channel_credentials_release(creds);

	/* still serving the good client after all that */
	assert_int_equal(tls_get(t, &client_tls), GRPC_STATUS_OK);
	rpc_server_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_success),
		cmocka_unit_test(test_custom_free),
		cmocka_unit_test(test_handler_error),
		cmocka_unit_test(test_unknown_method),
		cmocka_unit_test(test_garbage_request),
		cmocka_unit_test(test_socket_mode),
		cmocka_unit_test(test_second_server_refused),
		cmocka_unit_test(test_missing_socket_fails_fast),
		cmocka_unit_test(test_concurrent_calls),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_stop_with_clients),
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_tls_mutual),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
