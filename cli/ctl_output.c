/* urbdctl output: aligned tables for people, JSON (json-c) for scripts.
 * JSON carries raw numbers (bytes, ns) and stable key names; tables carry
 * humanised sizes and times and may change. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

static int table_push(struct ctl_table *t, va_list ap)
{
	char **cells = realloc(t->cells, (size_t)(t->nrows + 1) * t->ncols * sizeof(*cells));

	if (!cells)
		return -ENOMEM;
	t->cells = cells;
	for (unsigned i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);

		cells[t->nrows * t->ncols + i] = strdup(s ? s : "");
	}
	t->nrows++;
	return 0;
}

int ctl_table_init(struct ctl_table *t, unsigned ncols, ...)
{
	va_list ap;
	int ret;

	memset(t, 0, sizeof(*t));
	if (ncols == 0 || ncols > CTL_TABLE_MAX_COLS)
		return -EINVAL;
	t->ncols = ncols;
	va_start(ap, ncols);
	ret = table_push(t, ap);
	va_end(ap);
	return ret;
}

int ctl_table_add(struct ctl_table *t, ...)
{
	va_list ap;
	int ret;

	va_start(ap, t);
	ret = table_push(t, ap);
	va_end(ap);
	return ret;
}

static const char *cell(const struct ctl_table *t, unsigned r, unsigned c)
{
	const char *s = t->cells[r * t->ncols + c];

	return s ? s : "?";   /* strdup failed: show something, keep columns */
}

void ctl_table_print(const struct ctl_table *t)
{
	size_t width[CTL_TABLE_MAX_COLS] = { 0 };

	for (unsigned r = 0; r < t->nrows; r++)
		for (unsigned c = 0; c < t->ncols; c++) {
			size_t n = strlen(cell(t, r, c));

			if (n > width[c])
				width[c] = n;
		}
	for (unsigned r = 0; r < t->nrows; r++) {
		for (unsigned c = 0; c < t->ncols; c++) {
			/* no trailing blanks after the last column */
			if (c + 1 == t->ncols)
				printf("%s\n", cell(t, r, c));
			else
				printf("%-*s  ", (int)width[c], cell(t, r, c));
		}
	}
}

void ctl_table_free(struct ctl_table *t)
{
	for (size_t i = 0; i < (size_t)t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

int ctl_json_print(struct json_object *obj)
{
	const char *s;

	if (!obj) {
		fprintf(stderr, "urbdctl: out of memory building JSON\n");
		return CTL_EXIT_ERROR;
	}
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
					   JSON_C_TO_STRING_NOSLASHESCAPE);
	printf("%s\n", s);
	json_object_put(obj);
	return CTL_EXIT_OK;
}

const char *ctl_state_name(Urbd__V1__VolumeState s)
{
	switch (s) {
	case URBD__V1__VOLUME_STATE__VOLUME_STATE_ONLINE: return "online";
	case URBD__V1__VOLUME_STATE__VOLUME_STATE_FAILED: return "failed";
	default: return "unknown";
	}
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static void add_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v ? v : ""));
}

struct json_object *ctl_json_volume(const Urbd__V1__Volume *v)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	add_str(o, "name", v->name);
	add_str(o, "uuid", v->uuid);
	add_u64(o, "size_bytes", v->size_bytes);
	add_u64(o, "block_size", v->block_size);
	add_str(o, "state", ctl_state_name(v->state));
	add_str(o, "error", v->error);
	json_object_object_add(o, "reactor", json_object_new_int(v->reactor));
	add_u64(o, "connections", v->connections);
	add_u64(o, "created_unix_ns", v->created_unix_ns);
	add_u64(o, "allocated_bytes", v->allocated_bytes);
	add_u64(o, "reads", v->reads);
	add_u64(o, "writes", v->writes);
	add_u64(o, "bytes_read", v->bytes_read);
	add_u64(o, "bytes_written", v->bytes_written);
	add_u64(o, "flushes", v->flushes);
	add_u64(o, "errors", v->errors);
	if (v->replication) {
		const Urbd__V1__Replication *r = v->replication;
		struct json_object *ro = json_object_new_object(), *peers = json_object_new_array();

		if (!ro || !peers)
			return o;
		add_u64(ro, "local_id", r->local_id);
		add_str(ro, "role", r->role);
		add_str(ro, "disk_state", r->disk_state);
		json_object_object_add(ro, "quorum", json_object_new_boolean(r->quorum));
		add_u64(ro, "voters", r->voters);
		add_u64(ro, "visible", r->visible);
		add_str(ro, "ack", r->ack);
		add_str(ro, "on_no_quorum", r->on_no_quorum);
		add_str(ro, "generation", r->generation);
		add_u64(ro, "writes_replicated", r->writes_replicated);
		json_object_object_add(ro, "discard_my_data",
				       json_object_new_boolean(r->discard_my_data));
		json_object_object_add(ro, "forced", json_object_new_boolean(r->forced));
		json_object_object_add(ro, "unconfirmed", json_object_new_boolean(r->unconfirmed));
		json_object_object_add(ro, "bitmap_grain", json_object_new_int64(r->bitmap_grain));
		add_u64(ro, "resync_rate_bytes", r->resync_rate_bytes);
		json_object_object_add(ro, "resync_rate_set",
				       json_object_new_boolean(r->resync_rate_set));
		for (size_t i = 0; i < r->n_peers; i++) {
			const Urbd__V1__Peer *p = r->peers[i];
			struct json_object *po = json_object_new_object();

			if (!po)
				continue;
			add_u64(po, "id", p->id);
			add_str(po, "node", p->node);
			add_str(po, "address", p->address);
			json_object_object_add(po, "diskless", json_object_new_boolean(p->diskless));
			add_str(po, "connection", p->connection);
			add_str(po, "role", p->role);
			add_str(po, "disk_state", p->disk_state);
			add_str(po, "error", p->error);
			add_u64(po, "pending", p->pending);
			add_u64(po, "lag_ns", p->lag_ns);
			json_object_object_add(po, "outdated", json_object_new_boolean(p->outdated));
			json_object_object_add(po, "tracked", json_object_new_boolean(p->tracked));
			add_u64(po, "bytes_sent", p->bytes_sent);
			add_u64(po, "bytes_received", p->bytes_received);
			json_object_object_add(po, "syncing", json_object_new_boolean(p->syncing));
			add_u64(po, "out_of_sync_bytes", p->out_of_sync_bytes);
			add_u64(po, "resync_total_bytes", p->resync_total_bytes);
			add_u64(po, "resync_done_bytes", p->resync_done_bytes);
			add_u64(po, "resync_elapsed_ns", p->resync_elapsed_ns);
			if (r->verify) {
				struct json_object *offs = json_object_new_array();

				json_object_object_add(po, "verify_compared",
						       json_object_new_boolean(p->verify_compared));
				add_str(po, "verify_note", p->verify_note);
				add_u64(po, "verify_compared_bytes", p->verify_compared_bytes);
				add_u64(po, "verify_differing_bytes", p->verify_differing_bytes);
				for (size_t k = 0; offs && k < p->n_verify_differing_offsets; k++)
					json_object_array_add(offs, json_object_new_uint64(
						p->verify_differing_offsets[k]));
				json_object_object_add(po, "verify_differing_offsets", offs);
			}
			json_object_array_add(peers, po);
		}
		json_object_object_add(ro, "peers", peers);
		if (r->verify) {
			const Urbd__V1__Verify *vf = r->verify;
			struct json_object *vo = json_object_new_object();

			if (vo) {
				add_str(vo, "state", vf->state);
				add_str(vo, "error", vf->error);
				add_u64(vo, "region_bytes", vf->region_bytes);
				add_u64(vo, "rate_bytes", vf->rate_bytes);
				json_object_object_add(vo, "repair", json_object_new_boolean(vf->repair));
				add_u64(vo, "total_bytes", vf->total_bytes);
				add_u64(vo, "done_bytes", vf->done_bytes);
				add_u64(vo, "elapsed_ns", vf->elapsed_ns);
				json_object_object_add(ro, "verify", vo);
			}
		}
		json_object_object_add(o, "replication", ro);
	}
	return o;
}

char *ctl_format_time(uint64_t unix_ns, char *buf, size_t len)
{
	time_t t = (time_t)(unix_ns / 1000000000ull);
	struct tm tm;

	if (!unix_ns || !gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
	return buf;
}

char *ctl_format_duration(uint64_t ns, char *buf, size_t len)
{
	uint64_t s = ns / 1000000000ull;

	if (s >= 86400)
		snprintf(buf, len, "%" PRIu64 "d %" PRIu64 "h %" PRIu64 "m",
			 s / 86400, s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(buf, len, "%" PRIu64 "h %" PRIu64 "m %" PRIu64 "s",
			 s / 3600, s % 3600 / 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRIu64 "s", s);
	return buf;
}
