/* The control API (control.c) end to end over its unix socket, with a fake
 * volume manager: argument validation happens before volmgr is called,
 * volmgr's -errno maps to the documented status code and its message is
 * passed through verbatim, and responses carry every volume_info field. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <sys/wait.h>
#include <unistd.h>

#include "control.h"
#include "rpc.h"
#include "urbd/v1/control.pb-c.h"
#include "util.h"
#include "volmgr.h"
#include "../../replication/repl_config.h"
#include "../../replication/repl_volume.h"

/* ---- fake volume manager -------------------------------------------- */

#define FAKE_MAX 16

struct volmgr {
	struct volume_info vols[FAKE_MAX];
	size_t n;
	int calls;              /* volmgr_* calls that reached the fake */
	int inject;             /* next call fails with this -errno ... */
	char inject_msg[128];   /* ... and this message */
	bool last_force;
	uint32_t last_member_id;
	bool last_member_removed, last_replace;
	struct repl_member last_member;
	bool last_rate_set;
	uint64_t last_rate;
};

static struct volmgr fake;

/* Returns the injected error (and consumes it), or 0. */
static int injected(char *err, size_t errlen)
{
	int ret = fake.inject;

	fake.calls++;
	if (ret) {
		if (err)
			snprintf(err, errlen, "%s", fake.inject_msg);
		fake.inject = 0;
	}
	return ret;
}

static struct volume_info *find(const char *name)
{
	for (size_t i = 0; i < fake.n; i++)
		if (strcmp(fake.vols[i].name, name) == 0)
			return &fake.vols[i];
	return NULL;
}

/* a fake call on a volume: the injected error, or -ENOENT for none */
static int enter(const char *name, char *err, size_t errlen)
{
	int ret = injected(err, errlen);

	if (!ret && !find(name)) {
		snprintf(err, errlen, "no volume %s", name);
		ret = -ENOENT;
	}
	return ret;
}

int volmgr_create(struct volmgr *m, const char *name, uint64_t size,
		  char *err, size_t errlen)
{
	struct volume_info *v;
	int ret = injected(err, errlen);

	if (ret)
		return ret;
	if (find(name)) {
		snprintf(err, errlen, "volume %s already exists", name);
		return -EEXIST;
	}
	if (fake.n == FAKE_MAX) {
		snprintf(err, errlen, "store full");
		return -ENOSPC;
	}
	v = &fake.vols[fake.n++];
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	for (int i = 0; i < 16; i++)
		v->uuid.b[i] = (uint8_t)(0x10 + i);
	v->size = size;
	v->block_size = 4096;
	v->state = VOLUME_ONLINE;
	v->reactor = 1;
	v->connections = 2;
	v->created_ns = 1700000000000000000ull;
	v->allocated = 8192;
	v->reads = 1;
	v->writes = 2;
	v->bytes_read = 3;
	v->bytes_written = 4;
	v->flushes = 5;
	v->errors = 6;
	return 0;
}

int volmgr_delete(struct volmgr *m, const char *name, bool force,
		  char *err, size_t errlen)
{
	struct volume_info *v;
	int ret = injected(err, errlen);

	if (ret)
		return ret;
	fake.last_force = force;
	v = find(name);
	if (!v) {
		snprintf(err, errlen, "no volume %s", name);
		return -ENOENT;
	}
	*v = fake.vols[--fake.n];
	return 0;
}

int volmgr_resize(struct volmgr *m, const char *name, uint64_t new_size,
		  char *err, size_t errlen)
{
	struct volume_info *v;
	int ret = injected(err, errlen);

	if (ret)
		return ret;
	v = find(name);
	if (!v) {
		snprintf(err, errlen, "no volume %s", name);
		return -ENOENT;
	}
	if (new_size < v->size) {
		snprintf(err, errlen, "volume %s cannot shrink", name);
		return -EINVAL;
	}
	v->size = new_size;
	return 0;
}

int volmgr_get(struct volmgr *m, const char *name, struct volume_info *out,
	       char *err, size_t errlen)
{
	struct volume_info *v;
	int ret = injected(err, errlen);

	if (ret)
		return ret;
	v = find(name);
	if (!v) {
		snprintf(err, errlen, "no volume %s", name);
		return -ENOENT;
	}
	*out = *v;
	return 0;
}

int volmgr_list(struct volmgr *m, struct volume_info **out, size_t *n,
		char *err, size_t errlen)
{
	int ret = injected(err, errlen);

	if (ret)
		return ret;
	*out = calloc(fake.n ? fake.n : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	memcpy(*out, fake.vols, fake.n * sizeof(**out));
	*n = fake.n;
	return 0;
}

int volmgr_node_info(struct volmgr *m, struct node_info *out)
{
	int ret = injected(NULL, 0);

	if (ret)
		return ret;
	snprintf(out->node_id, sizeof(out->node_id), "node-a");
	snprintf(out->zone, sizeof(out->zone), "eu-west-1a");
	snprintf(out->store_path, sizeof(out->store_path), "/var/lib/urbd");
	snprintf(out->version, sizeof(out->version), "0.1.0");
	out->capacity = 100ull << 30;
	out->free = 60ull << 30;
	out->reactors = 4;
	snprintf(out->nbd_listen, sizeof(out->nbd_listen), "127.0.0.1:10809");
	out->uptime_ns = 42;
	return 0;
}

int volmgr_exports(struct volmgr *m, struct export_info **out, size_t *n)
{
	int ret = injected(NULL, 0);

	if (ret)
		return ret;
	*out = calloc(fake.n ? fake.n : 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < fake.n; i++) {
		snprintf((*out)[i].volume, sizeof((*out)[i].volume), "%s", fake.vols[i].name);
		snprintf((*out)[i].protocol, sizeof((*out)[i].protocol), "nbd");
		snprintf((*out)[i].address, sizeof((*out)[i].address),
			 "nbd://127.0.0.1:10809/%s", fake.vols[i].name);
		(*out)[i].connections = fake.vols[i].connections;
	}
	*n = fake.n;
	return 0;
}

int volmgr_create_replicated(struct volmgr *m, const char *name, uint64_t size,
			     const struct urbd_uuid *uuid, const struct repl_config *rc,
			     bool join, uint32_t bm_grain, char *err, size_t errlen)
{
	struct volume_info *v;
	int ret = volmgr_create(m, name, size, err, errlen);

	if (ret)
		return ret;
	v = find(name);
	if (uuid)
		v->uuid = *uuid;
	v->replicated = true;
	v->repl.local_id = rc->local_id;
	snprintf(v->repl.role, sizeof(v->repl.role), "secondary");
	snprintf(v->repl.disk, sizeof(v->repl.disk), "consistent");
	snprintf(v->repl.ack, sizeof(v->repl.ack), "%s", repl_ack_policy_name(rc->ack));
	snprintf(v->repl.on_no_quorum, sizeof(v->repl.on_no_quorum), "%s",
		 repl_noquorum_name(rc->on_no_quorum));
	v->repl.voters = repl_config_members(rc);
	v->repl.visible = 1;
	v->repl.gen_current = 0xabcdef;
	v->repl.bitmap_grain = bm_grain ? bm_grain : 65536;
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer_status *ps;

		if (!rc->members[i].present || i == rc->local_id)
			continue;
		ps = &v->repl.peers[v->repl.npeers++];
		ps->id = i;
		snprintf(ps->node, sizeof(ps->node), "%s", rc->members[i].node);
		snprintf(ps->addr, sizeof(ps->addr), "%s", rc->members[i].addr);
		ps->diskless = rc->members[i].diskless;
		snprintf(ps->connection, sizeof(ps->connection), "standalone");
	}
	return 0;
}

static int set_role(const char *name, const char *role, char *err, size_t errlen)
{
	struct volume_info *v;
	int ret = injected(err, errlen);

	if (ret)
		return ret;
	v = find(name);
	if (!v) {
		snprintf(err, errlen, "no volume %s", name);
		return -ENOENT;
	}
	snprintf(v->repl.role, sizeof(v->repl.role), "%s", role);
	return 0;
}

int volmgr_promote(struct volmgr *m, const char *name, bool force, char *err, size_t errlen)
{
	fake.last_force = force;
	return set_role(name, "primary", err, errlen);
}

int volmgr_demote(struct volmgr *m, const char *name, char *err, size_t errlen)
{
	return set_role(name, "secondary", err, errlen);
}

int volmgr_discard_my_data(struct volmgr *m, const char *name, char *err, size_t errlen)
{
	int ret = set_role(name, "secondary", err, errlen);

	if (!ret)
		find(name)->repl.discard_my_data = true;
	return ret;
}

/* membership: the fake keeps the last change for the test to look at */
int volmgr_set_replica(struct volmgr *m, const char *name, uint32_t id,
		       const struct repl_member *mb, bool replace, char *err, size_t errlen)
{
	int ret = enter(name, err, errlen);

	if (ret)
		return ret;
	fake.last_member_id = id;
	fake.last_member_removed = !mb;
	fake.last_replace = replace;
	if (mb)
		fake.last_member = *mb;
	return 0;
}

/* verify: the fake "runs" one and reports a difference on the first peer */
int volmgr_verify(struct volmgr *m, const char *name, uint32_t region, uint64_t rate,
		  bool repair, char *err, size_t errlen)
{
	struct volume_info *v;
	int ret = injected(err, errlen);

	if (ret)
		return ret;
	if (!(v = find(name))) {
		snprintf(err, errlen, "no volume %s", name);
		return -ENOENT;
	}
	if (!strcmp(v->repl.verify.state, "running")) {
		snprintf(err, errlen, "volume %s: a verify is already running", name);
		return -EBUSY;
	}
	snprintf(v->repl.verify.state, sizeof(v->repl.verify.state), "running");
	v->repl.verify.region = region ? region : 1u << 20;
	v->repl.verify.repair = repair;
	v->repl.verify.rate = rate ? rate : 250ull << 20;
	v->repl.verify.total = v->size;
	v->repl.peers[0].verify_in = true;
	v->repl.peers[0].verify_differing = v->repl.verify.region;
	v->repl.peers[0].verify_nlisted = 2;
	v->repl.peers[0].verify_regions[0] = 0;
	v->repl.peers[0].verify_regions[1] = 7ull << 20;
	snprintf(v->repl.peers[1].verify_note, sizeof(v->repl.peers[1].verify_note),
		 "skipped: diskless");
	return 0;
}

int volmgr_set_resync_rate(struct volmgr *m, const char *name, bool set, uint64_t rate,
			   char *err, size_t errlen)
{
	int ret = enter(name, err, errlen);

	if (ret)
		return ret;
	fake.last_rate_set = set;
	fake.last_rate = rate;
	return 0;
}

/* a barrier on "rv": members 0 (n0) and 1 (n1) confirm, 2 (n2) is down */
int volmgr_barrier(struct volmgr *m, const char *name, unsigned timeout_ms,
		   struct repl_bar_result *res, char *err, size_t errlen)
{
	int ret = enter(name, err, errlen);

	if (ret)
		return ret;
	memset(res, 0, sizeof(*res));
	res->epoch = timeout_ms; /* the test reads back the timeout it sent */
	res->ns = 1500000;
	res->members = 0x7;
	res->confirmed = 0x3;
	for (unsigned i = 0; i < 3; i++)
		snprintf(res->node[i], sizeof(res->node[i]), "n%u", i);
	snprintf(res->why[2], sizeof(res->why[2]), "not connected");
	return 0;
}

/* ---- harness -------------------------------------------------------- */

static char tmpdir[64], sock_path[128];
static struct control_server *server;
static struct rpc_client *client;
static char err[512];

static int group_setup(void **state)
{
	struct control_config cfg = { .threads = 2 };
	char target[160];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/urbd-test-control-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", tmpdir);
	cfg.unix_path = sock_path;
	if (control_start(&fake, &cfg, &server))
		return -1;
	snprintf(target, sizeof(target), "unix:%s", sock_path);
	client = rpc_client_new(target, NULL);
	return client ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	rpc_client_free(client);
	control_stop(server);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	rpc_cleanup();
	return system(cmd) == 0 ? 0 : -1;
}

static int reset(void **state)
{
	memset(&fake, 0, sizeof(fake));
	err[0] = '\0';
	return 0;
}

#define CALL(method, req, resp_type, resp)                                    \
	rpc_call(client, "/urbd.v1.Control/" method, &(req)->base,            \
		 &urbd__v1__##resp_type##__descriptor, (ProtobufCMessage **)(resp), \
		 5000, err, sizeof(err))

static grpc_status_code create(const char *name, uint64_t size)
{
	Urbd__V1__CreateVolumeRequest req = URBD__V1__CREATE_VOLUME_REQUEST__INIT;
	Urbd__V1__CreateVolumeResponse *resp = NULL;
	grpc_status_code st;

	req.name = (char *)name;
	req.size_bytes = size;
	st = CALL("CreateVolume", &req, create_volume_response, &resp);
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	return st;
}

static grpc_status_code get(const char *name, Urbd__V1__GetVolumeResponse **resp)
{
	Urbd__V1__GetVolumeRequest req = URBD__V1__GET_VOLUME_REQUEST__INIT;

	req.name = (char *)name;
	return CALL("GetVolume", &req, get_volume_response, resp);
}

static grpc_status_code del(const char *name, bool force)
{
	Urbd__V1__DeleteVolumeRequest req = URBD__V1__DELETE_VOLUME_REQUEST__INIT;
	Urbd__V1__DeleteVolumeResponse *resp = NULL;
	grpc_status_code st;

	req.name = (char *)name;
	req.force = force;
	st = CALL("DeleteVolume", &req, delete_volume_response, &resp);
	if (resp)
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	return st;
}

static grpc_status_code resize(const char *name, uint64_t size)
{
	Urbd__V1__ResizeVolumeRequest req = URBD__V1__RESIZE_VOLUME_REQUEST__INIT;
	Urbd__V1__ResizeVolumeResponse *resp = NULL;
	grpc_status_code st;

	req.name = (char *)name;
	req.new_size_bytes = size;
	st = CALL("ResizeVolume", &req, resize_volume_response, &resp);
	if (resp) {
		assert_int_equal(resp->volume->size_bytes, size);
		protobuf_c_message_free_unpacked(&resp->base, NULL);
	}
	return st;
}

/* ---- tests ---------------------------------------------------------- */

static void test_create_returns_volume(void **state)
{
	Urbd__V1__CreateVolumeRequest req = URBD__V1__CREATE_VOLUME_REQUEST__INIT;
	Urbd__V1__CreateVolumeResponse *resp;
	Urbd__V1__Volume *v;

	req.name = (char *)"demo";
	req.size_bytes = 1ull << 30;
	assert_int_equal(CALL("CreateVolume", &req, create_volume_response, &resp),
			 GRPC_STATUS_OK);
	v = resp->volume;
	assert_non_null(v);
	assert_string_equal(v->name, "demo");
	assert_string_equal(v->uuid, "10111213-1415-1617-1819-1a1b1c1d1e1f");
	assert_int_equal(v->size_bytes, 1ull << 30);
	assert_int_equal(v->block_size, 4096);
	assert_int_equal(v->state, URBD__V1__VOLUME_STATE__VOLUME_STATE_ONLINE);
	assert_string_equal(v->error, "");
	assert_int_equal(v->reactor, 1);
	assert_int_equal(v->connections, 2);
	assert_int_equal(v->created_unix_ns, 1700000000000000000ull);
	assert_int_equal(v->allocated_bytes, 8192);
	assert_int_equal(v->reads, 1);
	assert_int_equal(v->writes, 2);
	assert_int_equal(v->bytes_read, 3);
	assert_int_equal(v->bytes_written, 4);
	assert_int_equal(v->flushes, 5);
	assert_int_equal(v->errors, 6);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_exists_and_missing(void **state)
{
	Urbd__V1__GetVolumeResponse *resp = NULL;

	assert_int_equal(create("demo", 4096), GRPC_STATUS_OK);
	assert_int_equal(create("demo", 4096), GRPC_STATUS_ALREADY_EXISTS);
	assert_string_equal(err, "volume demo already exists");
	assert_int_equal(get("nope", &resp), GRPC_STATUS_NOT_FOUND);
	assert_null(resp);
	assert_string_equal(err, "no volume nope");
	assert_int_equal(del("nope", false), GRPC_STATUS_NOT_FOUND);
	assert_int_equal(resize("nope", 8192), GRPC_STATUS_NOT_FOUND);
}

/* volmgr's -errno -> status, message verbatim, for every method */
static void test_errno_mapping(void **state)
{
	static const struct { int err; grpc_status_code code; } map[] = {
		{ -EINVAL, GRPC_STATUS_INVALID_ARGUMENT },
		{ -EEXIST, GRPC_STATUS_ALREADY_EXISTS },
		{ -ENOENT, GRPC_STATUS_NOT_FOUND },
		{ -ENOSPC, GRPC_STATUS_RESOURCE_EXHAUSTED },
		{ -EBUSY, GRPC_STATUS_FAILED_PRECONDITION },
		{ -EIO, GRPC_STATUS_INTERNAL },
		{ -ENOMEM, GRPC_STATUS_INTERNAL },
		{ -EROFS, GRPC_STATUS_INTERNAL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		char msg[64];

		snprintf(msg, sizeof(msg), "injected failure %zu", i);
		fake.inject = map[i].err;
		snprintf(fake.inject_msg, sizeof(fake.inject_msg), "%s", msg);
		assert_int_equal(create("demo", 4096), map[i].code);
		assert_string_equal(err, msg);
	}
	assert_int_equal(fake.n, 0);

	assert_int_equal(create("demo", 4096), GRPC_STATUS_OK);
	fake.inject = -EBUSY;
	snprintf(fake.inject_msg, sizeof(fake.inject_msg), "volume demo has 2 clients");
	assert_int_equal(del("demo", false), GRPC_STATUS_FAILED_PRECONDITION);
	assert_string_equal(err, "volume demo has 2 clients");
	fake.inject = -ENOSPC;
	snprintf(fake.inject_msg, sizeof(fake.inject_msg), "store has 1 GiB free");
	assert_int_equal(resize("demo", 1ull << 40), GRPC_STATUS_RESOURCE_EXHAUSTED);
	assert_string_equal(err, "store has 1 GiB free");
	/* an empty reason falls back to strerror */
	fake.inject = -EIO;
	fake.inject_msg[0] = '\0';
	assert_int_equal(create("other", 4096), GRPC_STATUS_INTERNAL);
	assert_string_equal(err, strerror(EIO));
}

static void test_name_validation(void **state)
{
	static const char *const bad[] = {
		"", "Demo", "-demo", ".demo", "_x", "a/b", "a b", "a\nb", "../etc",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 64 */
	};
	Urbd__V1__GetVolumeResponse *resp = NULL;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(create(bad[i], 4096), GRPC_STATUS_INVALID_ARGUMENT);
		assert_non_null(strstr(err, "volume name"));
		assert_int_equal(get(bad[i], &resp), GRPC_STATUS_INVALID_ARGUMENT);
		assert_int_equal(del(bad[i], true), GRPC_STATUS_INVALID_ARGUMENT);
		assert_int_equal(resize(bad[i], 8192), GRPC_STATUS_INVALID_ARGUMENT);
	}
	assert_int_equal(fake.calls, 0);
	/* 63 characters is the limit, and it is fine */
	assert_int_equal(create("a23456789012345678901234567890123456789012345678901234567890123",
				4096), GRPC_STATUS_OK);
}

static void test_size_validation(void **state)
{
	static const uint64_t bad[] = { 0, 1, 4095, 4097, 1000000, UINT64_MAX,
					(1ull << 63) + 4096 };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(create("demo", bad[i]), GRPC_STATUS_INVALID_ARGUMENT);
		assert_int_equal(resize("demo", bad[i]), GRPC_STATUS_INVALID_ARGUMENT);
	}
	assert_int_equal(fake.calls, 0);
	assert_int_equal(create("demo", 4097), GRPC_STATUS_INVALID_ARGUMENT);
	assert_string_equal(err, "size 4097 is not a multiple of 4096 bytes");
	assert_int_equal(create("demo", 0), GRPC_STATUS_INVALID_ARGUMENT);
	assert_string_equal(err, "size must be greater than 0");
}

static void test_list_resize_delete(void **state)
{
	Urbd__V1__ListVolumesRequest lreq = URBD__V1__LIST_VOLUMES_REQUEST__INIT;
	Urbd__V1__ListVolumesResponse *list;
	Urbd__V1__GetVolumeResponse *resp = NULL;

	assert_int_equal(CALL("ListVolumes", &lreq, list_volumes_response, &list),
			 GRPC_STATUS_OK);
	assert_int_equal(list->n_volumes, 0);
	protobuf_c_message_free_unpacked(&list->base, NULL);

	assert_int_equal(create("a", 4096), GRPC_STATUS_OK);
	assert_int_equal(create("b", 8192), GRPC_STATUS_OK);
	assert_int_equal(create("c", 1ull << 30), GRPC_STATUS_OK);
	assert_int_equal(CALL("ListVolumes", &lreq, list_volumes_response, &list),
			 GRPC_STATUS_OK);
	assert_int_equal(list->n_volumes, 3);
	assert_string_equal(list->volumes[0]->name, "a");
	assert_string_equal(list->volumes[1]->name, "b");
	assert_int_equal(list->volumes[1]->size_bytes, 8192);
	assert_string_equal(list->volumes[2]->name, "c");
	protobuf_c_message_free_unpacked(&list->base, NULL);

	assert_int_equal(resize("b", 1ull << 20), GRPC_STATUS_OK);
	assert_int_equal(resize("b", 4096), GRPC_STATUS_INVALID_ARGUMENT); /* shrink */
	assert_string_equal(err, "volume b cannot shrink");

	assert_int_equal(del("b", true), GRPC_STATUS_OK);
	assert_true(fake.last_force);
	assert_int_equal(del("a", false), GRPC_STATUS_OK);
	assert_false(fake.last_force);
	assert_int_equal(get("b", &resp), GRPC_STATUS_NOT_FOUND);
	assert_int_equal(get("c", &resp), GRPC_STATUS_OK);
	assert_int_equal(resp->volume->size_bytes, 1ull << 30);
	protobuf_c_message_free_unpacked(&resp->base, NULL);

	fake.inject = -EIO;
	snprintf(fake.inject_msg, sizeof(fake.inject_msg), "store unreadable");
	assert_int_equal(CALL("ListVolumes", &lreq, list_volumes_response, &list),
			 GRPC_STATUS_INTERNAL);
	assert_string_equal(err, "store unreadable");
}

static void test_failed_volume(void **state)
{
	Urbd__V1__GetVolumeResponse *resp;

	assert_int_equal(create("broken", 4096), GRPC_STATUS_OK);
	fake.vols[0].state = VOLUME_FAILED;
	fake.vols[0].reactor = -1;
	snprintf(fake.vols[0].error, sizeof(fake.vols[0].error), "superblock CRC mismatch");
	assert_int_equal(get("broken", &resp), GRPC_STATUS_OK);
	assert_int_equal(resp->volume->state, URBD__V1__VOLUME_STATE__VOLUME_STATE_FAILED);
	assert_int_equal(resp->volume->reactor, -1);
	assert_string_equal(resp->volume->error, "superblock CRC mismatch");
	protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void test_node_info_and_exports(void **state)
{
	Urbd__V1__NodeInfoRequest nreq = URBD__V1__NODE_INFO_REQUEST__INIT;
	Urbd__V1__ListExportsRequest ereq = URBD__V1__LIST_EXPORTS_REQUEST__INIT;
	Urbd__V1__NodeInfoResponse *node;
	Urbd__V1__ListExportsResponse *ex;

	assert_int_equal(CALL("NodeInfo", &nreq, node_info_response, &node), GRPC_STATUS_OK);
	assert_string_equal(node->node->node_id, "node-a");
	assert_string_equal(node->node->zone, "eu-west-1a");
	assert_string_equal(node->node->store_path, "/var/lib/urbd");
	assert_string_equal(node->node->version, "0.1.0");
	assert_int_equal(node->node->capacity_bytes, 100ull << 30);
	assert_int_equal(node->node->free_bytes, 60ull << 30);
	assert_int_equal(node->node->reactors, 4);
	assert_string_equal(node->node->nbd_listen, "127.0.0.1:10809");
	assert_string_equal(node->node->nbd_unix, "");
	assert_int_equal(node->node->uptime_ns, 42);
	protobuf_c_message_free_unpacked(&node->base, NULL);

	assert_int_equal(create("x", 4096), GRPC_STATUS_OK);
	assert_int_equal(CALL("ListExports", &ereq, list_exports_response, &ex),
			 GRPC_STATUS_OK);
	assert_int_equal(ex->n_exports, 1);
	assert_string_equal(ex->exports[0]->volume, "x");
	assert_string_equal(ex->exports[0]->protocol, "nbd");
	assert_string_equal(ex->exports[0]->address, "nbd://127.0.0.1:10809/x");
	assert_int_equal(ex->exports[0]->connections, 2);
	protobuf_c_message_free_unpacked(&ex->base, NULL);

	fake.inject = -EIO;
	assert_int_equal(CALL("NodeInfo", &nreq, node_info_response, &node),
			 GRPC_STATUS_INTERNAL);
	assert_string_equal(err, strerror(EIO));
}

static void test_start_errors(void **state)
{
	struct control_config none = { .unix_path = NULL };
	struct control_config same = { .unix_path = sock_path };
	struct control_config tcp_no_tls = { .unix_path = "/tmp/x.sock",
					     .tcp_listen = "127.0.0.1:0" };
	struct control_server *s = NULL;

	assert_int_equal(control_start(&fake, &none, &s), -EINVAL);
	assert_int_equal(control_start(&fake, &same, &s), -EADDRINUSE);
	assert_int_equal(control_start(&fake, &tcp_no_tls, &s), -EINVAL);
	assert_null(s);
	control_stop(NULL);
}


/* ---- urbdctl against this server ------------------------------------ */

static char cli_out[8192], cli_err[2048];

static void slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

/* Runs urbdctl with args against the test socket; returns its exit code. */
static int urbdctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* $URBDCTL, else $URBD_BUILD/urbdctl, else build/urbdctl */
static const char *urbdctl_path(void)
{
	static char path[256];

	if (getenv("URBDCTL"))
		return getenv("URBDCTL");
	snprintf(path, sizeof(path), "%s/urbdctl",
		 getenv("URBD_BUILD") ? getenv("URBD_BUILD") : "build");
	return path;
}

static int urbdctl(const char *fmt, ...)
{
	const char *bin = urbdctl_path();
	char args[512], cmd[1024], out[128], errf[128];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(out, sizeof(out), "%s/cli.out", tmpdir);
	snprintf(errf, sizeof(errf), "%s/cli.err", tmpdir);
	snprintf(cmd, sizeof(cmd), "URBD_SOCKET='%s' '%s' %s >'%s' 2>'%s'",
		 sock_path, bin, args, out, errf);
	st = system(cmd);
	slurp(out, cli_out, sizeof(cli_out));
	slurp(errf, cli_err, sizeof(cli_err));
	if (getenv("TEST_VERBOSE"))   /* to eyeball the human output */
		fprintf(stderr, "$ urbdctl %s\n%s%s", args, cli_out, cli_err);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static uint32_t rep_grain; /* the next create_rep's bitmap_grain */

static grpc_status_code create_rep(const char *uuid, const char *ack, uint32_t dup_id,
				   Urbd__V1__CreateVolumeResponse **resp)
{
	Urbd__V1__CreateVolumeRequest req = URBD__V1__CREATE_VOLUME_REQUEST__INIT;
	Urbd__V1__Replica r[3], *rp[3];
	static const char *const nodes[] = { "na", "nb", "nc" };
	static const char *const addrs[] = { "10.0.0.1:7788", "10.0.0.2:7788", "10.0.0.3:7788" };

	for (uint32_t i = 0; i < 3; i++) {
		urbd__v1__replica__init(&r[i]);
		r[i].id = i == 2 ? dup_id : i;
		r[i].node = (char *)nodes[i];
		r[i].address = (char *)addrs[i];
		r[i].diskless = i == 2;
		rp[i] = &r[i];
	}
	req.name = (char *)"rv";
	req.size_bytes = 1 << 20;
	req.n_replicas = 3;
	req.replicas = rp;
	req.local_id = 1;
	if (uuid)
		req.uuid = (char *)uuid;
	if (ack)
		req.ack = (char *)ack;
	req.bitmap_grain = rep_grain;
	return CALL("CreateVolume", &req, create_volume_response, resp);
}

/* replicated create: the replica set reaches volmgr, the response carries
 * the replication status; bad policies, uuids and duplicate ids are
 * INVALID_ARGUMENT before volmgr is called; promote/demote map refusals
 * to FAILED_PRECONDITION with volmgr's reason */
static void test_replication_calls(void **state)
{
	Urbd__V1__CreateVolumeResponse *resp = NULL;
	Urbd__V1__PromoteVolumeRequest preq = URBD__V1__PROMOTE_VOLUME_REQUEST__INIT;
	Urbd__V1__PromoteVolumeResponse *presp = NULL;
	Urbd__V1__DemoteVolumeRequest dreq = URBD__V1__DEMOTE_VOLUME_REQUEST__INIT;
	Urbd__V1__DemoteVolumeResponse *dresp = NULL;
	const Urbd__V1__Replication *r;

	assert_int_equal(create_rep(NULL, "sometimes", 2, &resp), GRPC_STATUS_INVALID_ARGUMENT);
	assert_int_equal(create_rep("not-a-uuid", NULL, 2, &resp), GRPC_STATUS_INVALID_ARGUMENT);
	assert_int_equal(create_rep(NULL, NULL, 0, &resp), GRPC_STATUS_INVALID_ARGUMENT);
	assert_int_equal(create_rep(NULL, NULL, 9, &resp), GRPC_STATUS_INVALID_ARGUMENT);
	/* bitmap grains: powers of two from 4 KiB to 16 MiB */
	for (unsigned i = 0; i < 4; i++) {
		static const uint32_t bad[] = { 2048, 12288, 32u << 20, 65537 };

		rep_grain = bad[i];
		assert_int_equal(create_rep(NULL, NULL, 2, &resp), GRPC_STATUS_INVALID_ARGUMENT);
	}
	assert_int_equal(fake.calls, 0);
	rep_grain = 16384;
	assert_int_equal(create_rep("01234567-89ab-4cde-8f01-23456789abcd", "majority", 2, &resp),
			 GRPC_STATUS_OK);
	rep_grain = 0;
	r = resp->volume->replication;
	assert_int_equal(r->bitmap_grain, 16384);
	assert_non_null(r);
	assert_string_equal(resp->volume->uuid, "01234567-89ab-4cde-8f01-23456789abcd");
	assert_int_equal(r->local_id, 1);
	assert_string_equal(r->role, "secondary");
	assert_string_equal(r->ack, "majority");
	assert_string_equal(r->generation, "0000000000abcdef");
	assert_int_equal(r->voters, 3);
	assert_int_equal(r->n_peers, 2);
	assert_string_equal(r->peers[0]->node, "na");
	assert_string_equal(r->peers[1]->address, "10.0.0.3:7788");
	assert_true(r->peers[1]->diskless);
	protobuf_c_message_free_unpacked(&resp->base, NULL);

	preq.name = (char *)"rv";
	preq.force = true;
	assert_int_equal(CALL("PromoteVolume", &preq, promote_volume_response, &presp),
			 GRPC_STATUS_OK);
	assert_string_equal(presp->volume->replication->role, "primary");
	assert_true(fake.last_force);
	protobuf_c_message_free_unpacked(&presp->base, NULL);
	presp = NULL;
	fake.inject = -EAGAIN;
	snprintf(fake.inject_msg, sizeof(fake.inject_msg), "volume rv: no quorum here");
	assert_int_equal(CALL("PromoteVolume", &preq, promote_volume_response, &presp),
			 GRPC_STATUS_FAILED_PRECONDITION);
	assert_string_equal(err, "volume rv: no quorum here");
	dreq.name = (char *)"nope";
	assert_int_equal(CALL("DemoteVolume", &dreq, demote_volume_response, &dresp),
			 GRPC_STATUS_NOT_FOUND);
	dreq.name = (char *)"rv";
	assert_int_equal(CALL("DemoteVolume", &dreq, demote_volume_response, &dresp),
			 GRPC_STATUS_OK);
	assert_string_equal(dresp->volume->replication->role, "secondary");
	protobuf_c_message_free_unpacked(&dresp->base, NULL);
	{
		Urbd__V1__DiscardMyDataRequest xreq = URBD__V1__DISCARD_MY_DATA_REQUEST__INIT;
		Urbd__V1__DiscardMyDataResponse *xresp = NULL;

		xreq.name = (char *)"rv";
		fake.inject = -EBUSY;
		snprintf(fake.inject_msg, sizeof(fake.inject_msg), "volume rv is primary here");
		assert_int_equal(CALL("DiscardMyData", &xreq, discard_my_data_response, &xresp),
				 GRPC_STATUS_FAILED_PRECONDITION);
		assert_string_equal(err, "volume rv is primary here");
		assert_int_equal(CALL("DiscardMyData", &xreq, discard_my_data_response, &xresp),
				 GRPC_STATUS_OK);
		assert_true(xresp->volume->replication->discard_my_data);
		protobuf_c_message_free_unpacked(&xresp->base, NULL);
	}
	{
		Urbd__V1__VerifyVolumeRequest vreq = URBD__V1__VERIFY_VOLUME_REQUEST__INIT;
		Urbd__V1__VerifyVolumeResponse *vresp = NULL;
		const Urbd__V1__Verify *vf;
		const Urbd__V1__Peer *p0;
		unsigned before = fake.calls;

		vreq.name = (char *)"rv";
		vreq.region_bytes = 3000; /* not a power of two */
		assert_int_equal(CALL("VerifyVolume", &vreq, verify_volume_response, &vresp),
				 GRPC_STATUS_INVALID_ARGUMENT);
		assert_non_null(strstr(err, "region_bytes 3000"));
		vreq.region_bytes = 2u << 20; /* too large */
		assert_int_equal(CALL("VerifyVolume", &vreq, verify_volume_response, &vresp),
				 GRPC_STATUS_INVALID_ARGUMENT);
		vreq.region_bytes = 65536;
		vreq.rate_bytes = (1u << 20) - 1; /* below 1 MiB/s */
		assert_int_equal(CALL("VerifyVolume", &vreq, verify_volume_response, &vresp),
				 GRPC_STATUS_INVALID_ARGUMENT);
		assert_non_null(strstr(err, "rate_bytes 1048575"));
		vreq.rate_bytes = (1ull << 40) + 1; /* above 1 TiB/s */
		assert_int_equal(CALL("VerifyVolume", &vreq, verify_volume_response, &vresp),
				 GRPC_STATUS_INVALID_ARGUMENT);
		assert_int_equal(fake.calls, before); /* refused before volmgr */
		vreq.rate_bytes = 32u << 20;
		vreq.repair = true;
		assert_int_equal(CALL("VerifyVolume", &vreq, verify_volume_response, &vresp),
				 GRPC_STATUS_OK);
		vf = vresp->volume->replication->verify;
		assert_non_null(vf);
		assert_string_equal(vf->state, "running");
		assert_int_equal(vf->region_bytes, 65536);
		assert_int_equal(vf->rate_bytes, 32u << 20); /* passed through */
		assert_true(vf->repair);
		assert_int_equal(vf->total_bytes, vresp->volume->size_bytes);
		p0 = vresp->volume->replication->peers[0];
		assert_true(p0->verify_compared);
		assert_int_equal(p0->verify_differing_bytes, 65536);
		assert_int_equal(p0->n_verify_differing_offsets, 2);
		assert_int_equal(p0->verify_differing_offsets[1], 7ull << 20);
		assert_string_equal(vresp->volume->replication->peers[1]->verify_note,
				    "skipped: diskless");
		protobuf_c_message_free_unpacked(&vresp->base, NULL);
		vresp = NULL;
		assert_int_equal(CALL("VerifyVolume", &vreq, verify_volume_response, &vresp),
				 GRPC_STATUS_FAILED_PRECONDITION);
		assert_non_null(strstr(err, "already running"));
		vreq.name = (char *)"nope";
		assert_int_equal(CALL("VerifyVolume", &vreq, verify_volume_response, &vresp),
				 GRPC_STATUS_NOT_FOUND);
	}
	{
		Urbd__V1__SetVolumeOptionsRequest sreq = URBD__V1__SET_VOLUME_OPTIONS_REQUEST__INIT;
		Urbd__V1__SetVolumeOptionsResponse *sresp = NULL;
		unsigned before = fake.calls;

		sreq.name = (char *)"rv";
		assert_int_equal(CALL("SetVolumeOptions", &sreq, set_volume_options_response, &sresp),
				 GRPC_STATUS_INVALID_ARGUMENT); /* nothing to set */
		sreq.resync_rate = (char *)"100K"; /* below 1M */
		assert_int_equal(CALL("SetVolumeOptions", &sreq, set_volume_options_response, &sresp),
				 GRPC_STATUS_INVALID_ARGUMENT);
		assert_non_null(strstr(err, "resync_rate '100K'"));
		sreq.resync_rate = (char *)"fast";
		assert_int_equal(CALL("SetVolumeOptions", &sreq, set_volume_options_response, &sresp),
				 GRPC_STATUS_INVALID_ARGUMENT);
		assert_int_equal(fake.calls, before);
		sreq.resync_rate = (char *)"64M";
		assert_int_equal(CALL("SetVolumeOptions", &sreq, set_volume_options_response, &sresp),
				 GRPC_STATUS_OK);
		assert_non_null(sresp->volume);
		assert_true(fake.last_rate_set);
		assert_int_equal(fake.last_rate, 64u << 20);
		protobuf_c_message_free_unpacked(&sresp->base, NULL);
		sresp = NULL;
		sreq.resync_rate = (char *)"unlimited";
		assert_int_equal(CALL("SetVolumeOptions", &sreq, set_volume_options_response, &sresp),
				 GRPC_STATUS_OK);
		assert_true(fake.last_rate_set);
		assert_int_equal(fake.last_rate, 0);
		protobuf_c_message_free_unpacked(&sresp->base, NULL);
		sresp = NULL;
		sreq.resync_rate = (char *)"default";
		assert_int_equal(CALL("SetVolumeOptions", &sreq, set_volume_options_response, &sresp),
				 GRPC_STATUS_OK);
		assert_false(fake.last_rate_set);
		protobuf_c_message_free_unpacked(&sresp->base, NULL);
		sresp = NULL;
		fake.inject = -EINVAL;
		snprintf(fake.inject_msg, sizeof(fake.inject_msg), "volume rv is not replicated");
		assert_int_equal(CALL("SetVolumeOptions", &sreq, set_volume_options_response, &sresp),
				 GRPC_STATUS_FAILED_PRECONDITION);
		sreq.name = (char *)"nope";
		assert_int_equal(CALL("SetVolumeOptions", &sreq, set_volume_options_response, &sresp),
				 GRPC_STATUS_NOT_FOUND);
	}
	{
		Urbd__V1__BarrierVolumeRequest breq = URBD__V1__BARRIER_VOLUME_REQUEST__INIT;
		Urbd__V1__BarrierVolumeResponse *bresp = NULL;
		unsigned before = fake.calls;

		breq.name = (char *)"rv";
		breq.timeout_ms = 600001;
		assert_int_equal(CALL("BarrierVolume", &breq, barrier_volume_response, &bresp),
				 GRPC_STATUS_INVALID_ARGUMENT);
		assert_non_null(strstr(err, "timeout_ms 600001"));
		assert_int_equal(fake.calls, before);
		breq.timeout_ms = 0; /* the default */
		assert_int_equal(CALL("BarrierVolume", &breq, barrier_volume_response, &bresp),
				 GRPC_STATUS_OK);
		assert_int_equal(bresp->epoch, 10000);
		assert_int_equal(bresp->elapsed_ns, 1500000);
		assert_int_equal(bresp->n_confirmed, 2);
		assert_string_equal(bresp->confirmed[0], "n0");
		assert_string_equal(bresp->confirmed[1], "n1");
		assert_int_equal(bresp->n_left_out, 1);
		assert_string_equal(bresp->left_out[0], "n2: not connected");
		protobuf_c_message_free_unpacked(&bresp->base, NULL);
		bresp = NULL;
		fake.inject = -EROFS;
		snprintf(fake.inject_msg, sizeof(fake.inject_msg), "volume rv is secondary here");
		assert_int_equal(CALL("BarrierVolume", &breq, barrier_volume_response, &bresp),
				 GRPC_STATUS_FAILED_PRECONDITION);
		assert_string_equal(err, "volume rv is secondary here");
		fake.inject = -ETIMEDOUT;
		snprintf(fake.inject_msg, sizeof(fake.inject_msg), "barrier 3 not confirmed");
		assert_int_equal(CALL("BarrierVolume", &breq, barrier_volume_response, &bresp),
				 GRPC_STATUS_DEADLINE_EXCEEDED);
		breq.name = (char *)"nope";
		assert_int_equal(CALL("BarrierVolume", &breq, barrier_volume_response, &bresp),
				 GRPC_STATUS_NOT_FOUND);
	}
	{
		Urbd__V1__AddReplicaRequest areq = URBD__V1__ADD_REPLICA_REQUEST__INIT;
		Urbd__V1__AddReplicaResponse *aresp = NULL;
		Urbd__V1__RemoveReplicaRequest rreq = URBD__V1__REMOVE_REPLICA_REQUEST__INIT;
		Urbd__V1__RemoveReplicaResponse *rresp = NULL;
		Urbd__V1__Replica rep = URBD__V1__REPLICA__INIT;
		unsigned before = fake.calls;

		areq.name = (char *)"rv";
		assert_int_equal(CALL("AddReplica", &areq, add_replica_response, &aresp),
				 GRPC_STATUS_INVALID_ARGUMENT); /* no replica */
		areq.replica = &rep;
		rep.id = 8;
		rep.node = (char *)"nd";
		rep.address = (char *)"10.0.0.4:7788";
		assert_int_equal(CALL("AddReplica", &areq, add_replica_response, &aresp),
				 GRPC_STATUS_INVALID_ARGUMENT); /* id out of range */
		assert_int_equal(fake.calls, before);
		rep.id = 3;
		rep.diskless = true;
		areq.replace = true;
		assert_int_equal(CALL("AddReplica", &areq, add_replica_response, &aresp),
				 GRPC_STATUS_OK);
		assert_non_null(aresp->volume);
		assert_int_equal(fake.last_member_id, 3);
		assert_false(fake.last_member_removed);
		assert_true(fake.last_replace);
		assert_string_equal(fake.last_member.node, "nd");
		assert_string_equal(fake.last_member.addr, "10.0.0.4:7788");
		assert_true(fake.last_member.diskless);
		protobuf_c_message_free_unpacked(&aresp->base, NULL);
		aresp = NULL;
		fake.inject = -EEXIST;
		snprintf(fake.inject_msg, sizeof(fake.inject_msg), "member id 3 is taken");
		assert_int_equal(CALL("AddReplica", &areq, add_replica_response, &aresp),
				 GRPC_STATUS_FAILED_PRECONDITION);
		assert_string_equal(err, "member id 3 is taken");
		rreq.name = (char *)"rv";
		rreq.id = 9;
		assert_int_equal(CALL("RemoveReplica", &rreq, remove_replica_response, &rresp),
				 GRPC_STATUS_INVALID_ARGUMENT);
		rreq.id = 2;
		assert_int_equal(CALL("RemoveReplica", &rreq, remove_replica_response, &rresp),
				 GRPC_STATUS_OK);
		assert_true(fake.last_member_removed);
		assert_int_equal(fake.last_member_id, 2);
		protobuf_c_message_free_unpacked(&rresp->base, NULL);
		rresp = NULL;
		fake.inject = -ENXIO;
		snprintf(fake.inject_msg, sizeof(fake.inject_msg), "volume rv has no member 2");
		assert_int_equal(CALL("RemoveReplica", &rreq, remove_replica_response, &rresp),
				 GRPC_STATUS_FAILED_PRECONDITION);
		rreq.name = (char *)"nope";
		assert_int_equal(CALL("RemoveReplica", &rreq, remove_replica_response, &rresp),
				 GRPC_STATUS_NOT_FOUND);
	}
}

static void test_urbdctl(void **state)
{
	const char *bin = urbdctl_path();
	struct json_object *root, *vols, *v, *x;

	if (access(bin, X_OK) != 0) {
		fprintf(stderr, "SKIP: %s not built (make build/urbdctl)\n", bin);
		skip();
	}
	assert_int_equal(urbdctl("volume create demo 1G"), 0);
	assert_string_equal(cli_out, "created volume demo (1.0 GiB)\n");
	assert_int_equal(urbdctl("volume create demo 1G"), 5);
	assert_string_equal(cli_err, "urbdctl: volume demo already exists\n");
	assert_int_equal(urbdctl("volume status nope"), 4);
	assert_string_equal(cli_err, "urbdctl: no volume nope\n");

	/* usage errors never reach the daemon */
	fake.calls = 0;
	assert_int_equal(urbdctl("volume create x 1000"), 2);
	assert_non_null(strstr(cli_err, "not a multiple of 4096"));
	assert_int_equal(urbdctl("volume create x"), 2);
	assert_int_equal(urbdctl("volume frobnicate"), 2);
	assert_int_equal(urbdctl("node info --force"), 2);
	assert_int_equal(fake.calls, 0);

	assert_int_equal(urbdctl("volume list"), 0);
	assert_non_null(strstr(cli_out, "NAME"));
	assert_non_null(strstr(cli_out, "demo"));
	assert_non_null(strstr(cli_out, "1.0 GiB"));
	assert_int_equal(urbdctl("--json volume list"), 0);
	root = json_tokener_parse(cli_out);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "volumes", &vols));
	assert_int_equal(json_object_array_length(vols), 1);
	v = json_object_array_get_idx(vols, 0);
	assert_true(json_object_object_get_ex(v, "size_bytes", &x));
	assert_int_equal(json_object_get_uint64(x), 1ull << 30);
	assert_true(json_object_object_get_ex(v, "state", &x));
	assert_string_equal(json_object_get_string(x), "online");
	json_object_put(root);

	assert_int_equal(urbdctl("volume status demo"), 0);
	assert_non_null(strstr(cli_out, "10111213-1415-1617-1819-1a1b1c1d1e1f"));
	assert_int_equal(urbdctl("volume resize demo 2G --json"), 0);
	root = json_tokener_parse(cli_out);
	assert_true(json_object_object_get_ex(root, "size_bytes", &x));
	assert_int_equal(json_object_get_uint64(x), 2ull << 30);
	json_object_put(root);

	/* barrier: who confirmed, who is left out and why */
	assert_int_equal(urbdctl("volume barrier demo"), 0);
	assert_string_equal(cli_out, "volume demo: barrier 10000 on stable storage at n0, n1 "
				     "(1.50 ms)\n  left out: n2: not connected\n");
	assert_int_equal(urbdctl("--json volume barrier demo"), 0);
	root = json_tokener_parse(cli_out);
	assert_non_null(root);
	assert_true(json_object_object_get_ex(root, "confirmed", &x));
	assert_int_equal(json_object_array_length(x), 2);
	assert_true(json_object_object_get_ex(root, "left_out", &x));
	assert_string_equal(json_object_get_string(json_object_array_get_idx(x, 0)),
			    "n2: not connected");
	json_object_put(root);
	assert_int_equal(urbdctl("volume barrier"), 2);
	/* set: checked before the call, then the daemon's answer */
	fake.calls = 0;
	assert_int_equal(urbdctl("volume set demo"), 2);
	assert_int_equal(urbdctl("volume set demo --resync-rate 10K"), 2);
	assert_int_equal(fake.calls, 0);
	assert_int_equal(urbdctl("volume set demo --resync-rate 32M"), 0);
	assert_string_equal(cli_out, "volume demo: resync rate 32M\n");
	assert_int_equal(fake.last_rate, 32u << 20);

	assert_int_equal(urbdctl("node info"), 0);
	assert_non_null(strstr(cli_out, "eu-west-1a"));
	assert_int_equal(urbdctl("export list --json"), 0);
	assert_non_null(strstr(cli_out, "\"nbd://127.0.0.1:10809/demo\""));

	fake.inject = -EBUSY;
	snprintf(fake.inject_msg, sizeof(fake.inject_msg), "volume demo has 2 clients");
	assert_int_equal(urbdctl("volume delete demo"), 1);
	assert_non_null(strstr(cli_err, "urbdctl: volume demo has 2 clients\n"));
	assert_non_null(strstr(cli_err, "--force"));
	assert_int_equal(urbdctl("volume delete demo --force"), 0);
	assert_true(fake.last_force);

	assert_int_equal(urbdctl("--socket %s/none.sock volume list", tmpdir), 3);
	assert_non_null(strstr(cli_err, "is the daemon running?"));
	assert_int_equal(urbdctl("--version"), 0);
	assert_int_equal(urbdctl("--help"), 0);
	assert_non_null(strstr(cli_out, "Exit status"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_create_returns_volume, reset),
		cmocka_unit_test_setup(test_exists_and_missing, reset),
		cmocka_unit_test_setup(test_errno_mapping, reset),
		cmocka_unit_test_setup(test_name_validation, reset),
		cmocka_unit_test_setup(test_size_validation, reset),
		cmocka_unit_test_setup(test_list_resize_delete, reset),
		cmocka_unit_test_setup(test_failed_volume, reset),
		cmocka_unit_test_setup(test_node_info_and_exports, reset),
		cmocka_unit_test_setup(test_start_errors, reset),
		cmocka_unit_test_setup(test_urbdctl, reset),
		cmocka_unit_test_setup(test_replication_calls, reset),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
