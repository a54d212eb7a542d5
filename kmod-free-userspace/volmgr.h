/* The volume manager: the daemon's set of volumes and their owning
 * reactors. Its functions are the control plane's only way in; they are
 * thread-safe (a mutex serialises control operations) and called from gRPC
 * threads. Data-path state belongs to each volume's reactor; the manager
 * changes it only by posting a message to that reactor and waiting.
 *
 * All functions return 0 or -errno and, on error, write a one-line reason
 * for a human into err (which the control API returns verbatim):
 *   -EINVAL  bad name or size          -EEXIST  name taken
 *   -ENOENT  no such volume            -ENOSPC  store too small
 *   -EBUSY   volume in use (clients)   -EIO     store I/O or corrupt metadata
 */
#ifndef URBD_VOLMGR_H
#define URBD_VOLMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uuid.h"
#include "util.h"
#include "../replication/repl_volume.h"

struct volmgr;

enum volume_state {
	VOLUME_ONLINE,   /* open and served */
	VOLUME_FAILED,   /* metadata unreadable/corrupt: refused, reason in `error` */
};

struct volume_info {
	char name[URBD_NAME_MAX + 1];
	struct urbd_uuid uuid;
	uint64_t size;          /* bytes */
	uint32_t block_size;    /* logical block size exported to clients */
	enum volume_state state;
	char error[256];        /* why a FAILED volume is refused */
	int reactor;            /* owning reactor index, -1 if not online */
	unsigned connections;   /* frontend connections open now */
	uint64_t created_ns;    /* wall clock */
	uint64_t allocated;     /* bytes the data file occupies on the store */
	/* counters since the daemon started */
	uint64_t reads, writes, bytes_read, bytes_written, flushes, errors;
	bool replicated;        /* has a replica set: `repl` is filled in */
	struct repl_vol_status repl;
};

struct node_info {
	char node_id[64];
	char zone[64];
	char store_path[256];
	char version[32];
	uint64_t capacity;      /* store filesystem total bytes */
	uint64_t free;          /* bytes available to urbd on the store */
	unsigned reactors;
	char nbd_listen[128];   /* "127.0.0.1:10809" or "" */
	char nbd_unix[256];     /* unix socket path or "" */
	uint64_t uptime_ns;
};

struct export_info {
	char volume[URBD_NAME_MAX + 1];
	char protocol[16];      /* "nbd" */
	char address[400];      /* "nbd://127.0.0.1:10809/demo" or "nbd+unix:///demo?socket=…" */
	unsigned connections;
};

int volmgr_create(struct volmgr *m, const char *name, uint64_t size,
		  char *err, size_t errlen);
/* One replica of a replicated volume: every member is created with the
 * same uuid and replica set (rc, local_id differing). A set created
 * together starts identical (all zeroes): no initial sync.
 * uuid NULL: a fresh one (the first member; the others get its uuid). */
int volmgr_create_replicated(struct volmgr *m, const char *name, uint64_t size,
			     const struct urbd_uuid *uuid, const struct repl_config *rc,
			     bool join, uint32_t bm_grain, char *err, size_t errlen);
/* join: a new member of an existing set (uuid required): generation 0 and
 * inconsistent until the primary's full sync. bm_grain: bytes per bit of
 * the per-peer dirty bitmaps (0: 64 KiB), checked by the caller */
/* membership of a replicated volume (repl_vol_member_sync), persisted in
 * its replication file before it takes effect: mb NULL removes id */
int volmgr_set_replica(struct volmgr *m, const char *name, uint32_t id,
		       const struct repl_member *mb, bool replace, char *err, size_t errlen);
/* role changes (replicated volumes; -EINVAL for the others) */
int volmgr_promote(struct volmgr *m, const char *name, bool force, char *err, size_t errlen);
int volmgr_demote(struct volmgr *m, const char *name, char *err, size_t errlen);
int volmgr_discard_my_data(struct volmgr *m, const char *name, char *err, size_t errlen);
/* a replicated volume's resync rate (bytes/s, 0: no limit), or with
 * set false the daemon's default; persisted in its replica set first */
int volmgr_set_resync_rate(struct volmgr *m, const char *name, bool set, uint64_t rate,
			   char *err, size_t errlen);
struct repl_bar_result;
/* a BARRIER on a replicated volume's primary (repl_vol_barrier_sync) */
int volmgr_barrier(struct volmgr *m, const char *name, unsigned timeout_ms,
		   struct repl_bar_result *res, char *err, size_t errlen);
/* online verify of a replicated volume (repl_vol_verify_sync) */
int volmgr_verify(struct volmgr *m, const char *name, uint32_t region, uint64_t rate,
		  bool repair, char *err, size_t errlen);
/* force: disconnect frontend clients first instead of failing with -EBUSY */
int volmgr_delete(struct volmgr *m, const char *name, bool force,
		  char *err, size_t errlen);
/* grow only; new size a multiple of 4096 */
int volmgr_resize(struct volmgr *m, const char *name, uint64_t new_size,
		  char *err, size_t errlen);
int volmgr_get(struct volmgr *m, const char *name, struct volume_info *out,
	       char *err, size_t errlen);
/* *out is malloc'ed (free() it); sorted by name */
int volmgr_list(struct volmgr *m, struct volume_info **out, size_t *n,
		char *err, size_t errlen);
int volmgr_node_info(struct volmgr *m, struct node_info *out);
/* *out malloc'ed; one entry per online volume per frontend */
int volmgr_exports(struct volmgr *m, struct export_info **out, size_t *n);

#endif
