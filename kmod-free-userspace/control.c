/* The daemon's control API: urbd.v1.Control (proto/urbd/v1/control.proto)
 * served by the generic unary server in common/rpc.h.
 *
 * Every handler checks its arguments itself (names, sizes) before touching
 * the volume manager, so a malformed request never reaches volume code and
 * gets a precise INVALID_ARGUMENT. The volume manager's -errno becomes the
 * status code and its one-line reason the status message, verbatim.
 *
 * Responses are built from malloc'ed memory only (strings strdup'ed or left
 * at their protobuf-c default), so the rpc layer's default free
 * (protobuf_c_message_free_unpacked) releases them, also when a handler
 * fails half-way through building one. */
#include "control.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rpc.h"
#include "urbd/v1/control.pb-c.h"
#include "util.h"
#include "uuid.h"
#include "volmgr.h"
#include "../replication/repl_config.h"
#include "../replication/repl_volume.h"

#define TAG "control"
#define BLOCK 4096u

struct control_server {
	struct volmgr *m;
	struct rpc_server *rpc;
};

/* ---- errors and validation ----------------------------------------- */

/* A volmgr failure: its message is the status message. */
static grpc_status_code volmgr_failed(int ret, const char *why, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", why[0] ? why : strerror(-ret));
	return rpc_status_from_errno(ret);
}

static grpc_status_code no_memory(char *err, size_t errlen)
{
	snprintf(err, errlen, "out of memory building the response");
	return GRPC_STATUS_INTERNAL;
}

static bool check_name(const char *name, char *err, size_t errlen)
{
	if (urbd_name_valid(name))
		return true;
	if (!name[0])
		snprintf(err, errlen, "volume name is empty");
	else
		snprintf(err, errlen, "invalid volume name \"%.*s\": use 1-%d characters "
			 "a-z 0-9 . _ - starting with a letter or digit",
			 URBD_NAME_MAX + 1, name, URBD_NAME_MAX);
	return false;
}

static bool check_size(uint64_t size, char *err, size_t errlen)
{
	if (size == 0)
		snprintf(err, errlen, "size must be greater than 0");
	else if (size % BLOCK)
		snprintf(err, errlen, "size %" PRIu64 " is not a multiple of %u bytes",
			 size, BLOCK);
	else if (size > (uint64_t)INT64_MAX)  /* file offsets are signed */
		snprintf(err, errlen, "size %" PRIu64 " is too large", size);
	else
		return true;
	return false;
}

/* ---- building responses -------------------------------------------- */

static Urbd__V1__VolumeState pb_state(enum volume_state s)
{
	switch (s) {
	case VOLUME_ONLINE: return URBD__V1__VOLUME_STATE__VOLUME_STATE_ONLINE;
	case VOLUME_FAILED: return URBD__V1__VOLUME_STATE__VOLUME_STATE_FAILED;
	}
	return URBD__V1__VOLUME_STATE__VOLUME_STATE_UNSPECIFIED;
}

/* Leaves the protobuf-c default ("" static) for empty strings: the default
 * free skips it, and it saves an allocation. */
static int set_str(char **field, const char *s)
{
	if (!s[0])
		return 0;
	*field = strdup(s);
	return *field ? 0 : -ENOMEM;
}

static Urbd__V1__Replication *replication_pb(const struct repl_vol_status *st)
{
	Urbd__V1__Replication *r = calloc(1, sizeof(*r));
	char gen[24];

	if (!r)
		return NULL;
	urbd__v1__replication__init(r);
	r->local_id = st->local_id;
	r->quorum = st->quorum;
	r->voters = st->voters;
	r->visible = st->visible;
	r->writes_replicated = st->writes_replicated;
	r->discard_my_data = st->discard_my_data;
	r->forced = st->forced;
	r->unconfirmed = st->unconfirmed;
	r->bitmap_grain = st->bitmap_grain;
	r->resync_rate_bytes = st->resync_rate;
	r->resync_rate_set = st->resync_rate_set;
	snprintf(gen, sizeof(gen), "%016llx", (unsigned long long)st->gen_current);
	if (set_str(&r->role, st->role) || set_str(&r->disk_state, st->disk) ||
	    set_str(&r->ack, st->ack) || set_str(&r->on_no_quorum, st->on_no_quorum) ||
	    set_str(&r->generation, gen))
		goto fail;
	r->peers = calloc(st->npeers ? st->npeers : 1, sizeof(*r->peers));
	if (!r->peers)
		goto fail;
	for (unsigned i = 0; i < st->npeers; i++) {
		const struct repl_peer_status *ps = &st->peers[i];
		Urbd__V1__Peer *p = calloc(1, sizeof(*p));

		if (!p)
			goto fail;
		urbd__v1__peer__init(p);
		r->peers[r->n_peers++] = p;
		p->id = ps->id;
		p->diskless = ps->diskless;
		p->pending = ps->pending;
		p->lag_ns = ps->lag_ns;
		p->outdated = ps->outdated;
		p->tracked = ps->tracked;
		p->bytes_sent = ps->bytes_out;
		p->bytes_received = ps->bytes_in;
		p->syncing = ps->syncing;
		p->out_of_sync_bytes = ps->out_of_sync;
		p->resync_total_bytes = ps->resync_total;
		p->resync_done_bytes = ps->resync_done;
		p->resync_elapsed_ns = ps->resync_ns;
		p->verify_compared = ps->verify_in;
		p->verify_compared_bytes = ps->verify_compared;
		p->verify_differing_bytes = ps->verify_differing;
		if (ps->verify_nlisted) {
			p->verify_differing_offsets = calloc(ps->verify_nlisted, sizeof(uint64_t));
			if (!p->verify_differing_offsets)
				goto fail;
			p->n_verify_differing_offsets = ps->verify_nlisted;
			memcpy(p->verify_differing_offsets, ps->verify_regions,
			       ps->verify_nlisted * sizeof(uint64_t));
		}
		if (set_str(&p->node, ps->node) || set_str(&p->address, ps->addr) ||
		    set_str(&p->connection, ps->connection) || set_str(&p->role, ps->role) ||
		    set_str(&p->disk_state, ps->disk) || set_str(&p->error, ps->error) ||
		    set_str(&p->verify_note, ps->verify_note))
			goto fail;
	}
	if (st->verify.state[0]) {
		Urbd__V1__Verify *v = calloc(1, sizeof(*v));

		if (!v)
			goto fail;
		urbd__v1__verify__init(v);
		r->verify = v;
		v->region_bytes = st->verify.region;
		v->rate_bytes = st->verify.rate;
		v->repair = st->verify.repair;
		v->total_bytes = st->verify.total;
		v->done_bytes = st->verify.done;
		v->elapsed_ns = st->verify.ns;
		if (set_str(&v->state, st->verify.state) || set_str(&v->error, st->verify.error))
			goto fail;
	}
	return r;
fail:
	protobuf_c_message_free_unpacked(&r->base, NULL);
	return NULL;
}

static Urbd__V1__Volume *volume_pb(const struct volume_info *vi)
{
	Urbd__V1__Volume *v = malloc(sizeof(*v));
	char uuid[URBD_UUID_STR_LEN];

	if (!v)
		return NULL;
	urbd__v1__volume__init(v);
	urbd_uuid_format(&vi->uuid, uuid);
	v->size_bytes = vi->size;
	v->block_size = vi->block_size;
	v->state = pb_state(vi->state);
	v->reactor = vi->reactor;
	v->connections = vi->connections;
	v->created_unix_ns = vi->created_ns;
	v->allocated_bytes = vi->allocated;
	v->reads = vi->reads;
	v->writes = vi->writes;
	v->bytes_read = vi->bytes_read;
	v->bytes_written = vi->bytes_written;
	v->flushes = vi->flushes;
	v->errors = vi->errors;
	if (set_str(&v->name, vi->name) || set_str(&v->uuid, uuid) ||
	    set_str(&v->error, vi->error) ||
	    (vi->replicated && !(v->replication = replication_pb(&vi->repl)))) {
		protobuf_c_message_free_unpacked(&v->base, NULL);
		return NULL;
	}
	return v;
}

/* The volume as it is now, for Create/Resize/Get responses. */
static grpc_status_code get_volume_pb(struct volmgr *m, const char *name,
				      Urbd__V1__Volume **out, char *err, size_t errlen)
{
	struct volume_info *vi = calloc(1, sizeof(*vi));  /* ~400 bytes, off-stack */
	char why[256] = "";
	grpc_status_code code = GRPC_STATUS_OK;
	int ret;

	if (!vi)
		return no_memory(err, errlen);
	ret = volmgr_get(m, name, vi, why, sizeof(why));
	if (ret)
		code = volmgr_failed(ret, why, err, errlen);
	else if (!(*out = volume_pb(vi)))
		code = no_memory(err, errlen);
	free(vi);
	return code;
}

/* ---- handlers ------------------------------------------------------- *
 * A handler attaches its response to *resp before filling it: if it fails
 * half-way, the rpc layer frees the partial message. */

static grpc_status_code node_info(void *ctx, const ProtobufCMessage *req,
				  ProtobufCMessage **resp, char *err, size_t errlen)
{
	struct control_server *s = ctx;
	Urbd__V1__NodeInfoResponse *out;
	Urbd__V1__NodeInfo *n;
	struct node_info ni;
	int ret;

	memset(&ni, 0, sizeof(ni));
	ret = volmgr_node_info(s->m, &ni);
	if (ret)
		return volmgr_failed(ret, "", err, errlen);
	if (!(out = malloc(sizeof(*out))))
		return no_memory(err, errlen);
	urbd__v1__node_info_response__init(out);
	*resp = &out->base;
	if (!(n = out->node = malloc(sizeof(*n))))
		return no_memory(err, errlen);
	urbd__v1__node_info__init(n);
	n->capacity_bytes = ni.capacity;
	n->free_bytes = ni.free;
	n->reactors = ni.reactors;
	n->uptime_ns = ni.uptime_ns;
	if (set_str(&n->node_id, ni.node_id) || set_str(&n->zone, ni.zone) ||
	    set_str(&n->store_path, ni.store_path) || set_str(&n->version, ni.version) ||
	    set_str(&n->nbd_listen, ni.nbd_listen) || set_str(&n->nbd_unix, ni.nbd_unix))
		return no_memory(err, errlen);
	return GRPC_STATUS_OK;
}

/* a Replica of the API into a member: 0, or -EINVAL with the reason */
static int member_of(const Urbd__V1__Replica *x, struct repl_member *mb, char *err,
		     size_t errlen)
{
	if (x->id >= REPL_MAX_NODES || strlen(x->node) >= sizeof(mb->node) ||
	    strlen(x->address) >= sizeof(mb->addr)) {
		snprintf(err, errlen, "replica %u: id must be 0..%d, node and address short "
			 "enough", x->id, REPL_MAX_NODES - 1);
		return -EINVAL;
	}
	memset(mb, 0, sizeof(*mb));
	mb->present = true;
	mb->diskless = x->diskless;
	strcpy(mb->node, x->node);
	strcpy(mb->addr, x->address);
	return 0;
}

static grpc_status_code create_replicated(struct control_server *s,
					   const Urbd__V1__CreateVolumeRequest *r,
					   char *err, size_t errlen)
{
	struct repl_config rc = { .local_id = r->local_id };
	struct urbd_uuid uuid;
	char why[256] = "";
	int ret;

	if ((r->ack[0] && repl_ack_policy_parse(r->ack, &rc.ack)) ||
	    (r->on_no_quorum[0] && repl_noquorum_parse(r->on_no_quorum, &rc.on_no_quorum))) {
		snprintf(err, errlen, "ack must be all|majority, on_no_quorum io-error|suspend-io");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (r->uuid[0] && urbd_uuid_parse(r->uuid, &uuid)) {
		snprintf(err, errlen, "uuid \"%.40s\" is not a UUID", r->uuid);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	for (size_t i = 0; i < r->n_replicas; i++) {
		const Urbd__V1__Replica *x = r->replicas[i];

		if (x->id < REPL_MAX_NODES && rc.members[x->id].present) {
			snprintf(err, errlen, "replica %zu: id %u twice", i, x->id);
			return GRPC_STATUS_INVALID_ARGUMENT;
		}
		if (member_of(x, &rc.members[x->id < REPL_MAX_NODES ? x->id : 0], err, errlen))
			return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (r->bitmap_grain && (r->bitmap_grain < 4096 || r->bitmap_grain > (16u << 20) ||
				(r->bitmap_grain & (r->bitmap_grain - 1)))) {
		snprintf(err, errlen, "bitmap_grain %u: a power of two from 4096 to 16 MiB "
			 "(0: 64 KiB)", r->bitmap_grain);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	ret = volmgr_create_replicated(s->m, r->name, r->size_bytes, r->uuid[0] ? &uuid : NULL,
				       &rc, r->join, r->bitmap_grain, why, sizeof(why));
	return ret ? volmgr_failed(ret, why, err, errlen) : GRPC_STATUS_OK;
}

static grpc_status_code create_volume(void *ctx, const ProtobufCMessage *req,
				      ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__CreateVolumeRequest *r = (const void *)req;
	struct control_server *s = ctx;
	Urbd__V1__CreateVolumeResponse *out;
	char why[256] = "";
	int ret;

	if (!check_name(r->name, err, errlen) || !check_size(r->size_bytes, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	if (r->n_replicas) {
		grpc_status_code code = create_replicated(s, r, err, errlen);

		if (code != GRPC_STATUS_OK)
			return code;
		ret = 0;
	} else {
		ret = volmgr_create(s->m, r->name, r->size_bytes, why, sizeof(why));
	}
	if (ret)
		return volmgr_failed(ret, why, err, errlen);
	log_dbg(TAG, "created volume %s, %" PRIu64 " bytes", r->name, r->size_bytes);
	if (!(out = malloc(sizeof(*out))))
		return no_memory(err, errlen);
	urbd__v1__create_volume_response__init(out);
	*resp = &out->base;
	if (get_volume_pb(s->m, r->name, &out->volume, err, errlen) == GRPC_STATUS_OK)
		return GRPC_STATUS_OK;
	/* Created is created: if it is gone already (a racing delete), say
	 * what was made rather than report a failure. */
	err[0] = '\0';
	if (!(out->volume = malloc(sizeof(*out->volume))))
		return no_memory(err, errlen);
	urbd__v1__volume__init(out->volume);
	out->volume->size_bytes = r->size_bytes;
	if (set_str(&out->volume->name, r->name))
		return no_memory(err, errlen);
	return GRPC_STATUS_OK;
}

static grpc_status_code list_volumes(void *ctx, const ProtobufCMessage *req,
				     ProtobufCMessage **resp, char *err, size_t errlen)
{
	struct control_server *s = ctx;
	Urbd__V1__ListVolumesResponse *out;
	struct volume_info *list = NULL;
	grpc_status_code code = GRPC_STATUS_OK;
	char why[256] = "";
	size_t n = 0;
	int ret;

	ret = volmgr_list(s->m, &list, &n, why, sizeof(why));
	if (ret)
		return volmgr_failed(ret, why, err, errlen);
	if (!(out = malloc(sizeof(*out)))) {
		code = no_memory(err, errlen);
		goto out;
	}
	urbd__v1__list_volumes_response__init(out);
	*resp = &out->base;
	if (n && !(out->volumes = calloc(n, sizeof(*out->volumes)))) {
		code = no_memory(err, errlen);
		goto out;
	}
	/* n_volumes counts only built entries, so a partial list frees right */
	for (size_t i = 0; i < n; i++) {
		if (!(out->volumes[i] = volume_pb(&list[i]))) {
			code = no_memory(err, errlen);
			goto out;
		}
		out->n_volumes = i + 1;
	}
out:
	free(list);
	return code;
}

static grpc_status_code get_volume(void *ctx, const ProtobufCMessage *req,
				   ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__GetVolumeRequest *r = (const void *)req;
	struct control_server *s = ctx;
	Urbd__V1__GetVolumeResponse *out;

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	if (!(out = malloc(sizeof(*out))))
		return no_memory(err, errlen);
	urbd__v1__get_volume_response__init(out);
	*resp = &out->base;
	return get_volume_pb(s->m, r->name, &out->volume, err, errlen);
}

static grpc_status_code resize_volume(void *ctx, const ProtobufCMessage *req,
				      ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__ResizeVolumeRequest *r = (const void *)req;
	struct control_server *s = ctx;
	Urbd__V1__ResizeVolumeResponse *out;
	char why[256] = "";
	int ret;

	if (!check_name(r->name, err, errlen) ||
	    !check_size(r->new_size_bytes, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	ret = volmgr_resize(s->m, r->name, r->new_size_bytes, why, sizeof(why));
	if (ret)
		return volmgr_failed(ret, why, err, errlen);
	log_dbg(TAG, "resized volume %s to %" PRIu64 " bytes", r->name, r->new_size_bytes);
	if (!(out = malloc(sizeof(*out))))
		return no_memory(err, errlen);
	urbd__v1__resize_volume_response__init(out);
	*resp = &out->base;
	return get_volume_pb(s->m, r->name, &out->volume, err, errlen);
}

static grpc_status_code delete_volume(void *ctx, const ProtobufCMessage *req,
				      ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__DeleteVolumeRequest *r = (const void *)req;
	struct control_server *s = ctx;
	Urbd__V1__DeleteVolumeResponse *out;
	char why[256] = "";
	int ret;

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	ret = volmgr_delete(s->m, r->name, r->force, why, sizeof(why));
	if (ret)
		return volmgr_failed(ret, why, err, errlen);
	log_dbg(TAG, "deleted volume %s%s", r->name, r->force ? " (forced)" : "");
	if (!(out = malloc(sizeof(*out))))
		return no_memory(err, errlen);
	urbd__v1__delete_volume_response__init(out);
	*resp = &out->base;
	return GRPC_STATUS_OK;
}

static Urbd__V1__Export *export_pb(const struct export_info *ei)
{
	Urbd__V1__Export *e = malloc(sizeof(*e));

	if (!e)
		return NULL;
	urbd__v1__export__init(e);
	e->connections = ei->connections;
	if (set_str(&e->volume, ei->volume) || set_str(&e->protocol, ei->protocol) ||
	    set_str(&e->address, ei->address)) {
		protobuf_c_message_free_unpacked(&e->base, NULL);
		return NULL;
	}
	return e;
}

static grpc_status_code list_exports(void *ctx, const ProtobufCMessage *req,
				     ProtobufCMessage **resp, char *err, size_t errlen)
{
	struct control_server *s = ctx;
	Urbd__V1__ListExportsResponse *out;
	struct export_info *list = NULL;
	grpc_status_code code = GRPC_STATUS_OK;
	size_t n = 0;
	int ret;

	ret = volmgr_exports(s->m, &list, &n);
	if (ret)
		return volmgr_failed(ret, "", err, errlen);
	if (!(out = malloc(sizeof(*out)))) {
		code = no_memory(err, errlen);
		goto out;
	}
	urbd__v1__list_exports_response__init(out);
	*resp = &out->base;
	if (n && !(out->exports = calloc(n, sizeof(*out->exports)))) {
		code = no_memory(err, errlen);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!(out->exports[i] = export_pb(&list[i]))) {
			code = no_memory(err, errlen);
			goto out;
		}
		out->n_exports = i + 1;
	}
out:
	free(list);
	return code;
}

static grpc_status_code role_failed(int ret, const char *why, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s", why[0] ? why : strerror(-ret));
	if (ret == -EAGAIN || ret == -ESTALE || ret == -EBUSY || ret == -EINVAL ||
	    ret == -EEXIST || ret == -ENXIO || ret == -EROFS)
		return GRPC_STATUS_FAILED_PRECONDITION;
	return rpc_status_from_errno(ret);
}

/* The role calls all answer { Volume volume = 1; }: one shape for the three. */
_Static_assert(offsetof(Urbd__V1__DemoteVolumeResponse, volume) ==
	       offsetof(Urbd__V1__PromoteVolumeResponse, volume), "role responses differ");
_Static_assert(offsetof(Urbd__V1__DiscardMyDataResponse, volume) ==
	       offsetof(Urbd__V1__PromoteVolumeResponse, volume), "role responses differ");
_Static_assert(offsetof(Urbd__V1__AddReplicaResponse, volume) ==
	       offsetof(Urbd__V1__PromoteVolumeResponse, volume), "role responses differ");
_Static_assert(offsetof(Urbd__V1__RemoveReplicaResponse, volume) ==
	       offsetof(Urbd__V1__PromoteVolumeResponse, volume), "role responses differ");
_Static_assert(offsetof(Urbd__V1__VerifyVolumeResponse, volume) ==
	       offsetof(Urbd__V1__PromoteVolumeResponse, volume), "role responses differ");
_Static_assert(offsetof(Urbd__V1__SetVolumeOptionsResponse, volume) ==
	       offsetof(Urbd__V1__PromoteVolumeResponse, volume), "role responses differ");

static grpc_status_code role_call(struct control_server *s, const char *name, int ret,
				  const char *why, const ProtobufCMessageDescriptor *rd,
				  ProtobufCMessage **resp, char *err, size_t errlen)
{
	Urbd__V1__PromoteVolumeResponse *out;

	if (ret)
		return ret == -ENOENT ? volmgr_failed(ret, why, err, errlen)
				      : role_failed(ret, why, err, errlen);
	if (!(out = malloc(rd->sizeof_message)))
		return no_memory(err, errlen);
	protobuf_c_message_init(rd, out);
	*resp = &out->base;
	return get_volume_pb(s->m, name, &out->volume, err, errlen);
}

static grpc_status_code promote_volume(void *ctx, const ProtobufCMessage *req,
				       ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__PromoteVolumeRequest *r = (const void *)req;
	struct control_server *s = ctx;
	char why[256] = "";

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	return role_call(s, r->name, volmgr_promote(s->m, r->name, r->force, why, sizeof(why)),
			 why, &urbd__v1__promote_volume_response__descriptor, resp, err, errlen);
}

static grpc_status_code demote_volume(void *ctx, const ProtobufCMessage *req,
				      ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__DemoteVolumeRequest *r = (const void *)req;
	struct control_server *s = ctx;
	char why[256] = "";

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	return role_call(s, r->name, volmgr_demote(s->m, r->name, why, sizeof(why)),
			 why, &urbd__v1__demote_volume_response__descriptor, resp, err, errlen);
}

static grpc_status_code discard_my_data(void *ctx, const ProtobufCMessage *req,
					 ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__DiscardMyDataRequest *r = (const void *)req;
	struct control_server *s = ctx;
	char why[256] = "";

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	return role_call(s, r->name, volmgr_discard_my_data(s->m, r->name, why, sizeof(why)),
			 why, &urbd__v1__discard_my_data_response__descriptor, resp, err, errlen);
}

static grpc_status_code verify_volume(void *ctx, const ProtobufCMessage *req,
				      ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__VerifyVolumeRequest *r = (const void *)req;
	struct control_server *s = ctx;
	char why[256] = "";

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	if (r->region_bytes && (r->region_bytes & (r->region_bytes - 1) ||
				r->region_bytes < 4096 || r->region_bytes > (1u << 20))) {
		snprintf(err, errlen, "region_bytes %u is not a power of two between 4096 and "
			 "1048576", r->region_bytes);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (r->rate_bytes && (r->rate_bytes < REPL_VERIFY_RATE_MIN || r->rate_bytes > REPL_VERIFY_RATE_MAX)) {
		snprintf(err, errlen, "rate_bytes %llu is outside 1 MiB/s .. 1 TiB/s (0: the "
			 "volume's resync rate)", (unsigned long long)r->rate_bytes);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	return role_call(s, r->name,
			 volmgr_verify(s->m, r->name, r->region_bytes, r->rate_bytes, r->repair, why,
					       sizeof(why)),
			 why, &urbd__v1__verify_volume_response__descriptor, resp, err, errlen);
}

static grpc_status_code set_volume_options(void *ctx, const ProtobufCMessage *req,
					   ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__SetVolumeOptionsRequest *r = (const void *)req;
	struct control_server *s = ctx;
	char why[256] = "";
	uint64_t rate = 0;
	bool set = true;
	int ret;

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	if (!r->resync_rate || !r->resync_rate[0]) {
		snprintf(err, errlen, "no option to set (resync_rate)");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (!strcmp(r->resync_rate, "default")) {
		set = false;
	} else if (strcmp(r->resync_rate, "unlimited") &&
		   (urbd_parse_size(r->resync_rate, &rate) || rate < (1ull << 20) ||
		    rate > (1ull << 40))) {
		snprintf(err, errlen, "resync_rate '%s': a size per second from 1M to 1T, "
			 "'unlimited' or 'default'", r->resync_rate);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	ret = volmgr_set_resync_rate(s->m, r->name, set, rate, why, sizeof(why));
	return role_call(s, r->name, ret, why, &urbd__v1__set_volume_options_response__descriptor,
			 resp, err, errlen);
}

static grpc_status_code barrier_volume(void *ctx, const ProtobufCMessage *req,
				       ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__BarrierVolumeRequest *r = (const void *)req;
	struct control_server *s = ctx;
	Urbd__V1__BarrierVolumeResponse *out;
	struct repl_bar_result res;
	char why[256] = "";
	unsigned n = 0;
	int ret;

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	if (r->timeout_ms > 600000) {
		snprintf(err, errlen, "timeout_ms %u is over 600000", r->timeout_ms);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	ret = volmgr_barrier(s->m, r->name, r->timeout_ms ? r->timeout_ms : 10000, &res, why,
			     sizeof(why));
	if (ret)
		return ret == -ENOENT ? volmgr_failed(ret, why, err, errlen)
				      : role_failed(ret, why, err, errlen);
	if (!(out = malloc(sizeof(*out))))
		return no_memory(err, errlen);
	urbd__v1__barrier_volume_response__init(out);
	*resp = &out->base;
	out->epoch = res.epoch;
	out->elapsed_ns = res.ns;
	n = (unsigned)__builtin_popcount(res.members);
	out->confirmed = calloc(n ? n : 1, sizeof(char *));
	out->left_out = calloc(n ? n : 1, sizeof(char *));
	if (!out->confirmed || !out->left_out)
		return no_memory(err, errlen);
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		char line[160];

		if (!(res.members & (1u << i)))
			continue;
		if (res.confirmed & (1u << i)) {
			if (!(out->confirmed[out->n_confirmed] = strdup(res.node[i])))
				return no_memory(err, errlen);
			out->n_confirmed++;
			continue;
		}
		snprintf(line, sizeof(line), "%s: %s", res.node[i],
			 res.why[i][0] ? res.why[i] : "no answer");
		if (!(out->left_out[out->n_left_out] = strdup(line)))
			return no_memory(err, errlen);
		out->n_left_out++;
	}
	return GRPC_STATUS_OK;
}

static grpc_status_code add_replica(void *ctx, const ProtobufCMessage *req,
				    ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__AddReplicaRequest *r = (const void *)req;
	struct control_server *s = ctx;
	struct repl_member mb;
	char why[256] = "";

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	if (!r->replica) {
		snprintf(err, errlen, "no replica given");
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	if (member_of(r->replica, &mb, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	return role_call(s, r->name, volmgr_set_replica(s->m, r->name, r->replica->id, &mb,
							r->replace, why, sizeof(why)),
			 why, &urbd__v1__add_replica_response__descriptor, resp, err, errlen);
}

static grpc_status_code remove_replica(void *ctx, const ProtobufCMessage *req,
				       ProtobufCMessage **resp, char *err, size_t errlen)
{
	const Urbd__V1__RemoveReplicaRequest *r = (const void *)req;
	struct control_server *s = ctx;
	char why[256] = "";

	if (!check_name(r->name, err, errlen))
		return GRPC_STATUS_INVALID_ARGUMENT;
	if (r->id >= REPL_MAX_NODES) {
		snprintf(err, errlen, "member id %u out of range (0..%d)", r->id, REPL_MAX_NODES - 1);
		return GRPC_STATUS_INVALID_ARGUMENT;
	}
	return role_call(s, r->name, volmgr_set_replica(s->m, r->name, r->id, NULL, false, why,
							sizeof(why)),
			 why, &urbd__v1__remove_replica_response__descriptor, resp, err, errlen);
}

/* ---- server --------------------------------------------------------- */

#define METHOD(name, req, fn) \
	{ "/urbd.v1.Control/" name, &urbd__v1__##req##__descriptor, fn, NULL }

static const struct rpc_method control_methods[] = {
	METHOD("NodeInfo", node_info_request, node_info),
	METHOD("CreateVolume", create_volume_request, create_volume),
	METHOD("ListVolumes", list_volumes_request, list_volumes),
	METHOD("GetVolume", get_volume_request, get_volume),
	METHOD("ResizeVolume", resize_volume_request, resize_volume),
	METHOD("DeleteVolume", delete_volume_request, delete_volume),
	METHOD("ListExports", list_exports_request, list_exports),
	METHOD("PromoteVolume", promote_volume_request, promote_volume),
	METHOD("DemoteVolume", demote_volume_request, demote_volume),
	METHOD("DiscardMyData", discard_my_data_request, discard_my_data),
	METHOD("VerifyVolume", verify_volume_request, verify_volume),
	METHOD("BarrierVolume", barrier_volume_request, barrier_volume),
	METHOD("SetVolumeOptions", set_volume_options_request, set_volume_options),
	METHOD("AddReplica", add_replica_request, add_replica),
	METHOD("RemoveReplica", remove_replica_request, remove_replica),
};

int control_start(struct volmgr *m, const struct control_config *cfg,
		  struct control_server **out)
{
	struct rpc_tls tls = { .cert = cfg->tls_cert, .key = cfg->tls_key,
			       .ca = cfg->tls_ca };
	struct rpc_server_config rc = {
		.tag = TAG,
		.unix_path = cfg->unix_path,
		.tcp_listen = cfg->tcp_listen,
		.tls = cfg->tcp_listen ? &tls : NULL,
		.threads = cfg->threads,
	};
	struct control_server *s;
	int ret;

	if (!cfg->unix_path || !cfg->unix_path[0]) {
		log_err(TAG, "no control socket path configured");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = m;
	ret = rpc_server_start(&rc, control_methods, ARRAY_SIZE(control_methods), s,
			       &s->rpc);
	if (ret) {
		free(s);
		return ret;
	}
	*out = s;
	return 0;
}

void control_stop(struct control_server *s)
{
	if (!s)
		return;
	rpc_server_stop(s->rpc);
	free(s);
}
