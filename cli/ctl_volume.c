/* urbdctl volume create|list|status|resize|delete */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "util.h"
#include "../replication/repl_config.h"

#define BLOCK 4096u

#define METHOD(m) "/urbd.v1.Control/" m

/* SIZE on the command line; checked here so a typo never reaches the
 * daemon. 0 or an exit code. */
static int parse_size_arg(const char *s, uint64_t *out)
{
	int ret = urbd_parse_size(s, out);

	if (ret == -ERANGE)
		return ctl_usage_error("size '%s' is too large", s);
	if (ret)
		return ctl_usage_error("invalid size '%s': use bytes or a K/M/G/T/P "
				       "suffix, e.g. 4096, 512M, 1G", s);
	if (*out == 0)
		return ctl_usage_error("size must be greater than 0");
	if (*out % BLOCK && s[strspn(s, "0123456789")] == '\0')
		return ctl_usage_error("size %s is not a multiple of %u bytes", s, BLOCK);
	if (*out % BLOCK)
		return ctl_usage_error("size %s (%" PRIu64 " bytes) is not a multiple "
				       "of %u bytes", s, *out, BLOCK);
	return 0;
}

/* A call that answers { Volume volume = 1; }: the volume as JSON with
 * --json, else the human line; frees resp. */
static int volume_answer(struct ctl *c, ProtobufCMessage *resp, const Urbd__V1__Volume *v,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int volume_answer(struct ctl *c, ProtobufCMessage *resp, const Urbd__V1__Volume *v,
			 const char *fmt, ...)
{
	int ret = CTL_EXIT_OK;
	va_list ap;

	if (c->json && v) {
		ret = ctl_json_print(ctl_json_volume(v));
	} else if (!c->json) {
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
	}
	protobuf_c_message_free_unpacked(resp, NULL);
	return ret;
}

static int need_args(int argc, int n, const char *syntax)
{
	if (argc != n)
		return ctl_usage_error("usage: urbdctl %s", syntax);
	return 0;
}

/* "37% 12.0 MiB/32.0 MiB 80.0 MiB/s eta 1s", "done 32.0 MiB in 0.4s", "-" */
static void resync_text(const Urbd__V1__Peer *p, char *buf, size_t len)
{
	char a[32], b[32], r[32];
	double secs = p->resync_elapsed_ns / 1e9;
	double rate = secs > 0 ? p->resync_done_bytes / secs : 0;

	if (!p->resync_total_bytes && !p->syncing) {
		snprintf(buf, len, "-");
	} else if (p->syncing) {
		uint64_t left = p->resync_total_bytes > p->resync_done_bytes ?
				p->resync_total_bytes - p->resync_done_bytes : 0;

		snprintf(buf, len, "%u%% %s/%s %s/s eta %.0fs",
			 p->resync_total_bytes ?
			 (unsigned)(100 * p->resync_done_bytes / p->resync_total_bytes) : 0,
			 urbd_format_size(p->resync_done_bytes, a, sizeof(a)),
			 urbd_format_size(p->resync_total_bytes, b, sizeof(b)),
			 urbd_format_size((uint64_t)rate, r, sizeof(r)),
			 rate > 0 ? left / rate : 0.0);
	} else {
		snprintf(buf, len, "done %s in %.1fs",
			 urbd_format_size(p->resync_done_bytes, a, sizeof(a)), secs);
	}
}

/* The verify run of a status: one line for the run, one per peer. */
static void print_verify(const Urbd__V1__Replication *r, FILE *f)
{
	const Urbd__V1__Verify *vf = r->verify;
	char a[32], b[32], rg[32], rt[48] = "no rate limit";

	if (vf->rate_bytes) {
		char sz[32];

		snprintf(rt, sizeof(rt), "at most %s/s",
			 urbd_format_size(vf->rate_bytes, sz, sizeof(sz)));
	}
	fprintf(f, "Verify:        %s, %s of %s in %s regions, %.1fs, %s%s%s%s\n", vf->state,
		urbd_format_size(vf->done_bytes, a, sizeof(a)),
		urbd_format_size(vf->total_bytes, b, sizeof(b)),
		urbd_format_size(vf->region_bytes, rg, sizeof(rg)), vf->elapsed_ns / 1e9, rt,
		vf->repair ? ", repairing" : "", vf->error[0] ? ": " : "", vf->error);
	for (size_t i = 0; i < r->n_peers; i++) {
		const Urbd__V1__Peer *p = r->peers[i];

		if (!p->verify_compared) {
			fprintf(f, "  peer %u (%s): %s\n", p->id, p->node,
				p->verify_note[0] ? p->verify_note : "not compared");
			continue;
		}
		fprintf(f, "  peer %u (%s): %s compared, ", p->id, p->node,
			urbd_format_size(p->verify_compared_bytes, a, sizeof(a)));
		if (!p->verify_differing_bytes)
			fprintf(f, "identical");
		else
			fprintf(f, "%s DIFFER (%" PRIu64 " regions)",
				urbd_format_size(p->verify_differing_bytes, b, sizeof(b)),
				p->verify_differing_bytes / (vf->region_bytes ? vf->region_bytes : 1));
		if (p->verify_note[0])
			fprintf(f, "; %s", p->verify_note);
		fprintf(f, "\n");
		if (p->n_verify_differing_offsets) {
			fprintf(f, "    differing regions at:");
			for (size_t k = 0; k < p->n_verify_differing_offsets; k++)
				fprintf(f, " %" PRIu64, p->verify_differing_offsets[k]);
			fprintf(f, "%s\n", p->n_verify_differing_offsets * (uint64_t)vf->region_bytes <
				p->verify_differing_bytes ? " ..." : "");
		}
	}
}

static void print_volume(const Urbd__V1__Volume *v)
{
	char a[32], b[32], t[32];

	printf("Name:          %s\n", v->name);
	printf("UUID:          %s\n", v->uuid);
	printf("State:         %s\n", ctl_state_name(v->state));
	if (v->error[0])
		printf("Error:         %s\n", v->error);
	printf("Size:          %s (%" PRIu64 " bytes)\n",
	       urbd_format_size(v->size_bytes, a, sizeof(a)), v->size_bytes);
	printf("Allocated:     %s\n", urbd_format_size(v->allocated_bytes, a, sizeof(a)));
	printf("Block size:    %" PRIu32 "\n", v->block_size);
	printf("Created:       %s\n", ctl_format_time(v->created_unix_ns, t, sizeof(t)));
	if (v->reactor >= 0)
		printf("Reactor:       %" PRId32 "\n", v->reactor);
	else
		printf("Reactor:       -\n");
	printf("Connections:   %" PRIu32 "\n", v->connections);
	printf("Reads:         %" PRIu64 " (%s)\n", v->reads,
	       urbd_format_size(v->bytes_read, a, sizeof(a)));
	printf("Writes:        %" PRIu64 " (%s)\n", v->writes,
	       urbd_format_size(v->bytes_written, b, sizeof(b)));
	printf("Flushes:       %" PRIu64 "\n", v->flushes);
	printf("I/O errors:    %" PRIu64 "\n", v->errors);
	if (v->replication) {
		const Urbd__V1__Replication *r = v->replication;
		struct ctl_table pt;

		printf("Replication:   member %" PRIu32 ", %s, disk %s\n", r->local_id, r->role,
		       r->disk_state);
		printf("Quorum:        %s (%" PRIu32 " of %" PRIu32 " voters visible)\n",
		       r->quorum ? "yes" : "NO", r->visible, r->voters);
		printf("Policy:        ack=%s on-no-quorum=%s, bitmap grain %s\n", r->ack,
		       r->on_no_quorum, urbd_format_size(r->bitmap_grain, a, sizeof(a)));
		if (r->resync_rate_bytes)
			printf("Resync rate:   %s/s%s\n",
			       urbd_format_size(r->resync_rate_bytes, a, sizeof(a)),
			       r->resync_rate_set ? "" : " (the daemon's default)");
		else
			printf("Resync rate:   no limit%s\n",
			       r->resync_rate_set ? "" : " (the daemon's default)");
		printf("Generation:    %s\n", r->generation);
		printf("Replicated:    %" PRIu64 " writes\n", r->writes_replicated);
		if (r->forced)
			printf("Forced:        promoted with --force; no peer seen since\n");
		if (r->discard_my_data)
			printf("Discarding:    this replica's data, at the next split-brain peer\n");
		if (r->unconfirmed)
			printf("Unconfirmed:   lost its primary uncleanly, or crashed while following "
			       "it; the next primary resyncs what it may differ in\n");
		ctl_table_init(&pt, 11, "  PEER", "NODE", "ADDRESS", "CONNECTION", "ROLE", "DISK",
			       "PENDING", "LAG", "OUT-OF-SYNC", "RESYNC", "LAST ERROR");
		for (size_t i = 0; i < r->n_peers; i++) {
			const Urbd__V1__Peer *p = r->peers[i];
			char id[16], pend[24], disk[32], oos[32], rs[96], lag[24];

			snprintf(id, sizeof(id), "  %" PRIu32, p->id);
			snprintf(pend, sizeof(pend), "%" PRIu64, p->pending);
			snprintf(disk, sizeof(disk), "%s%s", p->diskless ? "diskless/" : "",
				 p->disk_state);
			resync_text(p, rs, sizeof(rs));
			if (p->lag_ns)
				snprintf(lag, sizeof(lag), "%.2fms", p->lag_ns / 1e6);
			else
				snprintf(lag, sizeof(lag), "-");
			ctl_table_add(&pt, id, p->node, p->address, p->connection, p->role, disk,
				      pend, lag, urbd_format_size(p->out_of_sync_bytes, oos, sizeof(oos)),
				      rs, p->error[0] ? p->error : "-");
		}
		ctl_table_print(&pt);
		ctl_table_free(&pt);
		if (r->verify)
			print_verify(r, stdout);
	}
}

/* --replicas and friends into the request (the strings stay in c/argv) */
static int replica_args(struct ctl *c, Urbd__V1__CreateVolumeRequest *req,
			Urbd__V1__Replica *reps, Urbd__V1__Replica **ptrs,
			struct repl_config *rc)
{
	char err[256];

	if (!c->replicas) {
		if (c->uuid || c->ack || c->on_no_quorum || c->local_id >= 0 || c->join ||
		    c->bitmap_grain)
			return ctl_usage_error("--uuid, --local-id, --ack, --on-no-quorum, --join "
					       "and --bitmap-grain need --replicas");
		return 0;
	}
	if (c->join && !c->uuid)
		return ctl_usage_error("--join needs --uuid (the set's uuid)");
	req->join = c->join;
	if (c->bitmap_grain) {
		uint64_t v;

		if (urbd_parse_size(c->bitmap_grain, &v) || v < 4096 || v > (16u << 20) ||
		    (v & (v - 1)))
			return ctl_usage_error("--bitmap-grain '%s': a power of two from 4K to 16M",
					       c->bitmap_grain);
		req->bitmap_grain = (uint32_t)v;
	}
	if (c->local_id < 0)
		return ctl_usage_error("--replicas needs --local-id (which member this is)");
	memset(rc, 0, sizeof(*rc));
	rc->local_id = (uint32_t)c->local_id;
	if (repl_config_parse_members(c->replicas, rc, err, sizeof(err)) ||
	    repl_config_check(rc, err, sizeof(err)))
		return ctl_usage_error("%s", err);
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		if (!rc->members[i].present)
			continue;
		urbd__v1__replica__init(&reps[req->n_replicas]);
		reps[req->n_replicas].id = i;
		reps[req->n_replicas].node = rc->members[i].node;
		reps[req->n_replicas].address = rc->members[i].addr;
		reps[req->n_replicas].diskless = rc->members[i].diskless;
		ptrs[req->n_replicas] = &reps[req->n_replicas];
		req->n_replicas++;
	}
	req->replicas = ptrs;
	req->local_id = (uint32_t)c->local_id;
	if (c->uuid)
		req->uuid = (char *)c->uuid;
	if (c->ack)
		req->ack = (char *)c->ack;
	if (c->on_no_quorum)
		req->on_no_quorum = (char *)c->on_no_quorum;
	return 0;
}

static int volume_create(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__CreateVolumeRequest req = URBD__V1__CREATE_VOLUME_REQUEST__INIT;
	Urbd__V1__CreateVolumeResponse *resp;
	Urbd__V1__Replica reps[REPL_MAX_NODES], *ptrs[REPL_MAX_NODES];
	struct repl_config rc;
	char sz[32];
	int ret;

	if ((ret = need_args(argc, 2, "volume create NAME SIZE [--replicas ...]")) ||
	    (ret = parse_size_arg(argv[1], &req.size_bytes)) ||
	    (ret = replica_args(c, &req, reps, ptrs, &rc)))
		return ret;
	req.name = argv[0];
	ret = ctl_call(c, METHOD("CreateVolume"), &req.base,
		       &urbd__v1__create_volume_response__descriptor,
		       (ProtobufCMessage **)&resp);
	if (ret)
		return ret;
	return volume_answer(c, &resp->base, resp->volume, "created volume %s (%s)%s%s", req.name,
			     urbd_format_size(req.size_bytes, sz, sizeof(sz)),
			     resp->volume && req.n_replicas ? ", uuid " : "",
			     resp->volume && req.n_replicas ? resp->volume->uuid : "");
}

static int volume_list(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__ListVolumesRequest req = URBD__V1__LIST_VOLUMES_REQUEST__INIT;
	Urbd__V1__ListVolumesResponse *resp;
	struct json_object *arr, *root;
	struct ctl_table t;
	int ret;

	if ((ret = need_args(argc, 0, "volume list")))
		return ret;
	ret = ctl_call(c, METHOD("ListVolumes"), &req.base,
		       &urbd__v1__list_volumes_response__descriptor,
		       (ProtobufCMessage **)&resp);
	if (ret)
		return ret;
	if (c->json) {
		root = json_object_new_object();
		arr = json_object_new_array();
		for (size_t i = 0; root && arr && i < resp->n_volumes; i++)
			json_object_array_add(arr, ctl_json_volume(resp->volumes[i]));
		if (root && arr)
			json_object_object_add(root, "volumes", arr);
		ret = ctl_json_print(root);
		goto out;
	}
	ctl_table_init(&t, 6, "NAME", "SIZE", "ALLOCATED", "STATE", "CONNS", "UUID");
	for (size_t i = 0; i < resp->n_volumes; i++) {
		const Urbd__V1__Volume *v = resp->volumes[i];
		char size[32], alloc[32], conns[16];

		snprintf(conns, sizeof(conns), "%" PRIu32, v->connections);
		ctl_table_add(&t, v->name, urbd_format_size(v->size_bytes, size, sizeof(size)),
			      urbd_format_size(v->allocated_bytes, alloc, sizeof(alloc)),
			      ctl_state_name(v->state), conns, v->uuid);
	}
	ctl_table_print(&t);
	ctl_table_free(&t);
out:
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

static int get_volume(struct ctl *c, const char *name, Urbd__V1__GetVolumeResponse **resp);

static int volume_status(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__GetVolumeResponse *resp;
	int ret;

	if ((ret = need_args(argc, 1, "volume status NAME")) ||
	    (ret = get_volume(c, argv[0], &resp)))
		return ret;
	if (c->json)
		ret = ctl_json_print(ctl_json_volume(resp->volume));
	else
		print_volume(resp->volume);
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

static int volume_resize(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__ResizeVolumeRequest req = URBD__V1__RESIZE_VOLUME_REQUEST__INIT;
	Urbd__V1__ResizeVolumeResponse *resp;
	char sz[32];
	int ret;

	if ((ret = need_args(argc, 2, "volume resize NAME SIZE")) ||
	    (ret = parse_size_arg(argv[1], &req.new_size_bytes)))
		return ret;
	req.name = argv[0];
	ret = ctl_call(c, METHOD("ResizeVolume"), &req.base,
		       &urbd__v1__resize_volume_response__descriptor,
		       (ProtobufCMessage **)&resp);
	if (ret)
		return ret;
	return volume_answer(c, &resp->base, resp->volume, "resized volume %s to %s", req.name,
			     urbd_format_size(req.new_size_bytes, sz, sizeof(sz)));
}

static int volume_delete(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__DeleteVolumeRequest req = URBD__V1__DELETE_VOLUME_REQUEST__INIT;
	Urbd__V1__DeleteVolumeResponse *resp;
	struct json_object *o;
	int ret;

	if ((ret = need_args(argc, 1, "volume delete NAME [--force]")))
		return ret;
	req.name = argv[0];
	req.force = c->force;
	ret = ctl_call(c, METHOD("DeleteVolume"), &req.base,
		       &urbd__v1__delete_volume_response__descriptor,
		       (ProtobufCMessage **)&resp);
	if (ret) {
		if (c->status == GRPC_STATUS_FAILED_PRECONDITION && !c->force)
			fprintf(stderr, "urbdctl: (if the volume is in use, --force "
				"disconnects its clients)\n");
		return ret;
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	if (!c->json) {
		printf("deleted volume %s\n", req.name);
		return CTL_EXIT_OK;
	}
	o = json_object_new_object();
	if (o)
		json_object_object_add(o, "deleted", json_object_new_string(req.name));
	return ctl_json_print(o);
}

/* promote, demote and discard-my-data: requests { name [, force] } and
 * responses { Volume volume = 1; } of one shape */
struct role_cmd {
	const char *method, *usage;
	const char *done_before, *done_after; /* the human answer around the name */
	const ProtobufCMessageDescriptor *req, *resp;
};

_Static_assert(offsetof(Urbd__V1__DemoteVolumeRequest, name) ==
	       offsetof(Urbd__V1__PromoteVolumeRequest, name), "role requests differ");
_Static_assert(offsetof(Urbd__V1__DiscardMyDataRequest, name) ==
	       offsetof(Urbd__V1__PromoteVolumeRequest, name), "role requests differ");
_Static_assert(offsetof(Urbd__V1__DemoteVolumeResponse, volume) ==
	       offsetof(Urbd__V1__PromoteVolumeResponse, volume), "role responses differ");
_Static_assert(offsetof(Urbd__V1__DiscardMyDataResponse, volume) ==
	       offsetof(Urbd__V1__PromoteVolumeResponse, volume), "role responses differ");

static const struct role_cmd role_promote = {
	METHOD("PromoteVolume"), "volume promote NAME [--force]", "promoted volume ", "",
	&urbd__v1__promote_volume_request__descriptor,
	&urbd__v1__promote_volume_response__descriptor,
}, role_demote = {
	METHOD("DemoteVolume"), "volume demote NAME", "demoted volume ", "",
	&urbd__v1__demote_volume_request__descriptor,
	&urbd__v1__demote_volume_response__descriptor,
}, role_discard = {
	METHOD("DiscardMyData"), "volume discard-my-data NAME",
	"volume ", ": this replica's data will be discarded and resynced from the peer it "
	"is split from",
	&urbd__v1__discard_my_data_request__descriptor,
	&urbd__v1__discard_my_data_response__descriptor,
};

static int volume_role(struct ctl *c, int argc, char **argv, const struct role_cmd *rc)
{
	Urbd__V1__PromoteVolumeRequest req; /* the largest of the three */
	ProtobufCMessage *resp;
	const Urbd__V1__Volume *v;
	int ret;

	if ((ret = need_args(argc, 1, rc->usage)))
		return ret;
	protobuf_c_message_init(rc->req, &req);
	req.name = argv[0];
	if (rc == &role_promote)
		req.force = c->force;
	ret = ctl_call(c, rc->method, &req.base, rc->resp, &resp);
	if (ret)
		return ret;
	v = ((Urbd__V1__PromoteVolumeResponse *)resp)->volume;
	return volume_answer(c, resp, v, "%s%s%s", rc->done_before, argv[0], rc->done_after);
}

static int volume_promote(struct ctl *c, int argc, char **argv)
{
	return volume_role(c, argc, argv, &role_promote);
}

static int volume_demote(struct ctl *c, int argc, char **argv)
{
	return volume_role(c, argc, argv, &role_demote);
}

static int volume_discard(struct ctl *c, int argc, char **argv)
{
	return volume_role(c, argc, argv, &role_discard);
}

/* add-replica NAME ID=NODE@HOST:PORT[:diskless] [--replace], remove-replica NAME ID:
 * on every current member */
static int volume_add_replica(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__AddReplicaRequest req = URBD__V1__ADD_REPLICA_REQUEST__INIT;
	Urbd__V1__Replica rep = URBD__V1__REPLICA__INIT;
	Urbd__V1__AddReplicaResponse *resp;
	struct repl_config rc = { 0 };
	char err[256];
	unsigned n = 0;
	int ret;

	if ((ret = need_args(argc, 2, "volume add-replica NAME ID=NODE@HOST:PORT[:diskless] "
			     "[--replace]")))
		return ret;
	if (repl_config_parse_members(argv[1], &rc, err, sizeof(err)))
		return ctl_usage_error("%s", err);
	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		if (rc.members[i].present) {
			rep.id = i;
			rep.node = rc.members[i].node;
			rep.address = rc.members[i].addr;
			rep.diskless = rc.members[i].diskless;
			n++;
		}
	if (n != 1)
		return ctl_usage_error("add-replica takes one replica, got %u", n);
	req.name = argv[0];
	req.replica = &rep;
	req.replace = c->replace;
	ret = ctl_call(c, METHOD("AddReplica"), &req.base,
		       &urbd__v1__add_replica_response__descriptor, (ProtobufCMessage **)&resp);
	if (ret)
		return ret;
	return volume_answer(c, &resp->base, resp->volume, "volume %s: member %u %s %s (%s)",
			     argv[0], rep.id, c->replace ? "replaced by" : "added:", rep.node,
			     rep.address);
}

static int volume_remove_replica(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__RemoveReplicaRequest req = URBD__V1__REMOVE_REPLICA_REQUEST__INIT;
	Urbd__V1__RemoveReplicaResponse *resp;
	char *end;
	unsigned long id;
	int ret;

	if ((ret = need_args(argc, 2, "volume remove-replica NAME ID")))
		return ret;
	id = strtoul(argv[1], &end, 10);
	if (end == argv[1] || *end || id >= REPL_MAX_NODES)
		return ctl_usage_error("member id '%s': 0..%d", argv[1], REPL_MAX_NODES - 1);
	req.name = argv[0];
	req.id = (uint32_t)id;
	ret = ctl_call(c, METHOD("RemoveReplica"), &req.base,
		       &urbd__v1__remove_replica_response__descriptor,
		       (ProtobufCMessage **)&resp);
	if (ret)
		return ret;
	return volume_answer(c, &resp->base, resp->volume, "volume %s: member %lu removed",
			     argv[0], id);
}

static int get_volume(struct ctl *c, const char *name, Urbd__V1__GetVolumeResponse **resp)
{
	Urbd__V1__GetVolumeRequest req = URBD__V1__GET_VOLUME_REQUEST__INIT;
	int ret;

	req.name = (char *)name;
	ret = ctl_call(c, METHOD("GetVolume"), &req.base,
		       &urbd__v1__get_volume_response__descriptor, (ProtobufCMessage **)resp);
	if (!ret && !(*resp)->volume) {
		fprintf(stderr, "urbdctl: the daemon sent no volume\n");
		protobuf_c_message_free_unpacked(&(*resp)->base, NULL);
		ret = CTL_EXIT_ERROR;
	}
	return ret;
}

/* verify: start, then (unless --no-wait) poll the status until the run
 * ends; exit 0 identical, CTL_EXIT_DIFFERS, or CTL_EXIT_ERROR when the
 * run failed */
static int volume_verify(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__VerifyVolumeRequest req = URBD__V1__VERIFY_VOLUME_REQUEST__INIT;
	Urbd__V1__VerifyVolumeResponse *vresp;
	Urbd__V1__GetVolumeResponse *resp = NULL;
	const Urbd__V1__Replication *r;
	int ret;

	if ((ret = need_args(argc, 1, "volume verify NAME [--region SIZE] [--rate SIZE] "
			     "[--repair] [--no-wait]")))
		return ret;
	if (c->region) {
		uint64_t v;

		if (urbd_parse_size(c->region, &v) || !v || (v & (v - 1)) || v < 4096 ||
		    v > (1u << 20))
			return ctl_usage_error("--region '%s': a power of two from 4K to 1M",
					       c->region);
		req.region_bytes = (uint32_t)v;
	}
	if (c->rate) {
		uint64_t v;

		/* the daemon checks it too (REPL_VERIFY_RATE_MIN/MAX) */
		if (urbd_parse_size(c->rate, &v) || v < (1ull << 20) || v > (1ull << 40))
			return ctl_usage_error("--rate '%s': bytes per second, 1M..1T", c->rate);
		req.rate_bytes = v;
	}
	req.name = argv[0];
	req.repair = c->repair;
	ret = ctl_call(c, METHOD("VerifyVolume"), &req.base,
		       &urbd__v1__verify_volume_response__descriptor,
		       (ProtobufCMessage **)&vresp);
	if (ret)
		return ret;
	protobuf_c_message_free_unpacked(&vresp->base, NULL);
	if (c->no_wait) {
		if (!c->json)
			printf("verify of volume %s started; see urbdctl volume status %s\n",
			       argv[0], argv[0]);
		return CTL_EXIT_OK;
	}
	for (;;) {
		struct timespec ts = { 0, 200 * 1000000L };

		if ((ret = get_volume(c, argv[0], &resp)))
			return ret;
		r = resp->volume->replication;
		if (!r || !r->verify || strcmp(r->verify->state, "running"))
			break;
		protobuf_c_message_free_unpacked(&resp->base, NULL);
		nanosleep(&ts, NULL);
	}
	if (!r || !r->verify) {
		fprintf(stderr, "urbdctl: volume %s has no verify result (daemon restarted?)\n",
			argv[0]);
		ret = CTL_EXIT_ERROR;
	} else {
		uint64_t differ = 0;

		for (size_t i = 0; i < r->n_peers; i++)
			differ += r->peers[i]->verify_differing_bytes;
		if (c->json)
			ret = ctl_json_print(ctl_json_volume(resp->volume));
		else
			print_verify(r, stdout);
		if (strcmp(r->verify->state, "done")) {
			fprintf(stderr, "urbdctl: verify of %s failed: %s\n", argv[0],
				r->verify->error);
			ret = CTL_EXIT_ERROR;
		} else if (differ) {
			ret = CTL_EXIT_DIFFERS;
		}
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

/* set NAME --resync-rate SIZE|unlimited|default */
static int volume_set(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__SetVolumeOptionsRequest req = URBD__V1__SET_VOLUME_OPTIONS_REQUEST__INIT;
	Urbd__V1__SetVolumeOptionsResponse *resp;
	uint64_t v;
	int ret;

	if ((ret = need_args(argc, 1, "volume set NAME --resync-rate SIZE|unlimited|default")))
		return ret;
	if (!c->resync_rate)
		return ctl_usage_error("volume set: nothing to set (--resync-rate)");
	if (strcmp(c->resync_rate, "unlimited") && strcmp(c->resync_rate, "default") &&
	    (urbd_parse_size(c->resync_rate, &v) || v < (1ull << 20) || v > (1ull << 40)))
		return ctl_usage_error("--resync-rate '%s': bytes per second, 1M..1T, 'unlimited' "
				       "or 'default'", c->resync_rate);
	req.name = argv[0];
	req.resync_rate = (char *)c->resync_rate;
	ret = ctl_call(c, METHOD("SetVolumeOptions"), &req.base,
		       &urbd__v1__set_volume_options_response__descriptor,
		       (ProtobufCMessage **)&resp);
	if (ret)
		return ret;
	return volume_answer(c, &resp->base, resp->volume, "volume %s: resync rate %s", argv[0],
			     c->resync_rate);
}

/* barrier: a point every live, up-to-date replica confirmed as on stable
 * storage; exit 0 (the members left out are listed, not an error) */
static int volume_barrier(struct ctl *c, int argc, char **argv)
{
	Urbd__V1__BarrierVolumeRequest req = URBD__V1__BARRIER_VOLUME_REQUEST__INIT;
	Urbd__V1__BarrierVolumeResponse *resp;
	int ret;

	if ((ret = need_args(argc, 1, "volume barrier NAME")))
		return ret;
	req.name = argv[0];
	ret = ctl_call(c, METHOD("BarrierVolume"), &req.base,
		       &urbd__v1__barrier_volume_response__descriptor, (ProtobufCMessage **)&resp);
	if (ret)
		return ret;
	if (c->json) {
		struct json_object *o = json_object_new_object(), *ok = json_object_new_array(),
				   *out = json_object_new_array();

		if (o && ok && out) {
			for (size_t i = 0; i < resp->n_confirmed; i++)
				json_object_array_add(ok, json_object_new_string(resp->confirmed[i]));
			for (size_t i = 0; i < resp->n_left_out; i++)
				json_object_array_add(out, json_object_new_string(resp->left_out[i]));
			json_object_object_add(o, "epoch", json_object_new_uint64(resp->epoch));
			json_object_object_add(o, "confirmed", ok);
			json_object_object_add(o, "left_out", out);
			json_object_object_add(o, "elapsed_ns", json_object_new_uint64(resp->elapsed_ns));
			ok = out = NULL;
		}
		json_object_put(ok);
		json_object_put(out);
		ret = ctl_json_print(o);
	} else {
		printf("volume %s: barrier %" PRIu64 " on stable storage at", argv[0], resp->epoch);
		for (size_t i = 0; i < resp->n_confirmed; i++)
			printf("%s %s", i ? "," : "", resp->confirmed[i]);
		printf(" (%.2f ms)\n", resp->elapsed_ns / 1e6);
		for (size_t i = 0; i < resp->n_left_out; i++)
			printf("  left out: %s\n", resp->left_out[i]);
	}
	protobuf_c_message_free_unpacked(&resp->base, NULL);
	return ret;
}

int ctl_cmd_volume(struct ctl *c, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ctl *c, int argc, char **argv);
	} sub[] = {
		{ "create", volume_create }, { "list", volume_list },
		{ "ls", volume_list }, { "status", volume_status },
		{ "resize", volume_resize }, { "delete", volume_delete },
		{ "rm", volume_delete }, { "promote", volume_promote },
		{ "demote", volume_demote }, { "discard-my-data", volume_discard },
		{ "verify", volume_verify }, { "add-replica", volume_add_replica },
		{ "remove-replica", volume_remove_replica }, { "barrier", volume_barrier },
		{ "set", volume_set },
	};

	if (argc < 1)
		return ctl_usage_error("usage: urbdctl volume create|list|status|resize|delete ...");
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++)
		if (strcmp(argv[0], sub[i].name) == 0)
			return sub[i].fn(c, argc - 1, argv + 1);
	return ctl_usage_error("unknown volume command '%s'", argv[0]);
}
