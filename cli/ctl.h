/* urbdctl internals: global options, the call helper that turns a gRPC
 * status into the documented exit code, and output helpers. */
#ifndef URBD_CTL_H
#define URBD_CTL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "rpc.h"
#include "urbd/v1/control.pb-c.h"

#ifndef URBD_VERSION
#define URBD_VERSION "0.1.0"
#endif

/* Exit codes scripts can rely on; documented in `urbdctl --help`. */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_ERROR = 1,       /* the daemon reported an error */
	CTL_EXIT_USAGE = 2,       /* bad command line; nothing was sent */
	CTL_EXIT_UNREACHABLE = 3, /* daemon not running / not answering */
	CTL_EXIT_NOT_FOUND = 4,
	CTL_EXIT_EXISTS = 5,
	CTL_EXIT_DIFFERS = 6,     /* volume verify: replicas differ */
};

struct ctl {
	const char *target;       /* "unix:PATH" or "HOST:PORT" */
	const char *socket_path;  /* for unix targets, else NULL */
	struct rpc_tls tls;
	bool use_tls;
	bool json;
	bool force;
	/* volume create of a replica */
	const char *replicas, *uuid, *ack, *on_no_quorum, *bitmap_grain;
	int local_id;             /* -1: not given */
	/* volume verify */
	const char *region, *rate;
	/* volume set */
	const char *resync_rate;
	bool repair, no_wait;
	/* membership */
	bool join, replace;
	unsigned timeout_ms;
	struct rpc_client *client; /* connected on first call */
	grpc_status_code status;   /* of the last ctl_call */
};

/* One control call. Returns CTL_EXIT_OK with *resp set, or the exit code
 * for the failure after printing "urbdctl: <why>" on stderr. */
int ctl_call(struct ctl *c, const char *method, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp);
/* Prints "urbdctl: <msg>" and a hint to stderr; returns CTL_EXIT_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int ctl_cmd_volume(struct ctl *c, int argc, char **argv);
int ctl_cmd_node(struct ctl *c, int argc, char **argv);
int ctl_cmd_export(struct ctl *c, int argc, char **argv);

/* ---- output (ctl_output.c) ---- */

/* A left-aligned text table: add rows, print once. */
#define CTL_TABLE_MAX_COLS 16
struct ctl_table {
	unsigned ncols;
	unsigned nrows;
	char **cells;             /* nrows * ncols, strdup'ed */
};
/* ncols header cells follow; -EINVAL beyond CTL_TABLE_MAX_COLS */
int ctl_table_init(struct ctl_table *t, unsigned ncols, ...);
/* ncols strings follow; copied */
int ctl_table_add(struct ctl_table *t, ...);
void ctl_table_print(const struct ctl_table *t);
void ctl_table_free(struct ctl_table *t);

/* Prints the object pretty (and frees it). CTL_EXIT_OK or CTL_EXIT_ERROR. */
int ctl_json_print(struct json_object *obj);
struct json_object *ctl_json_volume(const Urbd__V1__Volume *v);
const char *ctl_state_name(Urbd__V1__VolumeState s);
char *ctl_format_time(uint64_t unix_ns, char *buf, size_t len);
char *ctl_format_duration(uint64_t ns, char *buf, size_t len);

#endif
