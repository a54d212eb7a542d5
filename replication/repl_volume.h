/* A replicated volume: the replication layer of the volume's backend chain
 * (frontend -> volume -> repl -> local store) plus its peer connections,
 * role, disk state, generations and quorum. Runs on the volume's reactor;
 * the control plane reaches it through the *_sync calls (reactor_call).
 *
 * Writes on the primary: local write and WRITE to every connected peer in
 * parallel; completion when the local write and the acks the policy needs
 * are in, and only while the primary has quorum. Overlapping writes are
 * serialised (a write waits for every overlapping one to be acknowledged
 * by every replica), so replicas apply them in the same order. */
#ifndef URBD_REPL_VOLUME_H
#define URBD_REPL_VOLUME_H

#include <stdbool.h>
#include <stdint.h>

#include "repl_auth.h"
#include "repl_config.h"
#include "repl_proto.h"

struct volume;
struct repl_vol;

/* Inserts the replication layer on top of v's chain (v->top) and starts
 * connecting to the peers. secret is borrowed for the daemon's lifetime. */
struct repl_vol *repl_vol_new(struct volume *v, const struct repl_config *cfg,
			      const struct repl_secret *secret);

/* on the volume's reactor: a routed incoming connection (fd is taken) */
void repl_vol_adopt(struct repl_vol *rv, int fd, const struct repl_features *f,
		    const struct repl_msg *hello, const char *peer_addr);

/* thread-safe reads for frontends: may it be exported now? */
bool repl_vol_is_primary(const struct repl_vol *rv);

#define REPL_VERIFY_LISTED 32

struct repl_peer_status {
	uint32_t id;
	char node[64], addr[128];
	bool diskless;
	char connection[24];       /* repl_conn_state_name, or "standalone" */
	char role[16], disk[16];   /* the peer's, as it last told us */
	char error[200];           /* why the last connection ended / was refused */
	uint64_t pending;          /* requests waiting for its ack */
	uint64_t lag_ns;           /* its acks' latency (EWMA), 0 before the first */
	bool outdated;             /* known to miss writes: needs a resync */
	bool tracked;              /* we track what it lacks (repl_peerack.c) */
	bool syncing;              /* we are resyncing it now */
	uint64_t out_of_sync;      /* bytes its dirty bitmap covers */
	uint64_t resync_total, resync_done, resync_ns; /* this or the last resync */
	uint64_t bytes_out, bytes_in;
	/* the running or last online verify */
	bool verify_in;            /* compared in it */
	char verify_note[64];      /* why skipped, or why it left the run */
	uint64_t verify_compared, verify_differing; /* bytes */
	unsigned verify_nlisted;
	uint64_t verify_regions[REPL_VERIFY_LISTED]; /* offsets of the first differing regions */
};

struct repl_verify_status {
	char state[16];            /* "" never run, running, done, failed */
	char error[160];           /* why it failed */
	uint32_t region;           /* bytes per compared region */
	uint64_t rate;             /* its read limit, bytes/s; 0: none */
	bool repair;
	uint64_t total, done, ns;
};

struct repl_vol_status {
	uint32_t local_id;
	char role[16], disk[16];
	bool quorum;
	unsigned voters, visible;  /* members, and those we see (us included) */
	char ack[16], on_no_quorum[16];
	uint64_t gen_current, gen_bitmap;
	unsigned npeers;
	struct repl_peer_status peers[REPL_MAX_NODES];
	uint64_t writes_replicated;
	bool discard_my_data;      /* waiting to be resynced over a split brain */
	bool forced;               /* promoted with --force, no peer since */
	bool unconfirmed;          /* lost its primary uncleanly, or crashed following
				    * it (STORE_SB_F_UNCONFIRMED) */
	uint32_t bitmap_grain;     /* bytes per dirty-bitmap bit */
	uint64_t resync_rate;      /* bytes/s, 0: no limit */
	bool resync_rate_set;      /* from the replica set's file, else the default */
	struct repl_verify_status verify;
};

/* Control plane (blocking; from any thread but the volume's reactor).
 * 0 or -errno with a reason in err:
 *   promote: -EAGAIN no quorum, -EBUSY another primary is connected,
 *            -ESTALE this replica is outdated/inconsistent
 *   demote:  -EBUSY frontends still attached (without force) */
int repl_vol_promote_sync(struct repl_vol *rv, bool force, char *err, size_t errlen);
int repl_vol_demote_sync(struct repl_vol *rv, char *err, size_t errlen);
void repl_vol_status_sync(struct repl_vol *rv, struct repl_vol_status *st);
/* split-brain resolution on the side whose changes are given up: it takes
 * the next split-brain peer as newer and gets a full resync from it.
 * -EBUSY while primary. */
int repl_vol_discard_sync(struct repl_vol *rv, char *err, size_t errlen);
/* online verify (repl_verify.c): compares this member's data with every
 * connected, up-to-date peer's by region digests, in the background; the
 * result is in the status. region 0: 1 MiB. repair (primary only): the
 * differing regions are resynced from here afterwards. -EBUSY running
 * already or another member is primary, -EAGAIN no peer to compare with,
 * -ESTALE this member is not up to date, -EINVAL bad region. rate: the
 * run's read limit in bytes/s per replica (0: the volume's resync rate,
 * URBD_RESYNC_RATE_MB; the same token bucket logic, its own bucket). */
#define REPL_VERIFY_RATE_MIN (1ull << 20)
#define REPL_VERIFY_RATE_MAX (1ull << 40)
int repl_vol_verify_sync(struct repl_vol *rv, uint32_t region, uint64_t rate, bool repair,
			 char *err, size_t errlen);
/* Membership (on every current member): member id gets m (add; replace:
 * a new node in a taken slot, which forgets everything about the old
 * one), or m NULL (remove). apply false only checks and fills *out with
 * the resulting replica set (to persist it first); apply true changes the
 * running volume: the slot's link is closed, a new member is connected
 * and, behind, fully resynced by the primary. -EEXIST slot taken (no
 * replace), -ENXIO no such member, -EBUSY the local member, -EINVAL the
 * set would be invalid (fewer than 2 members, ...). */
int repl_vol_member_sync(struct repl_vol *rv, uint32_t id, const struct repl_member *m,
			 bool replace, bool apply, struct repl_config *out, char *err,
			 size_t errlen);
/* BARRIER (repl_barrier.c): a point in the write stream; waits (at most
 * timeout_ms) until every member with data that is live and up to date
 * confirmed everything before it as on stable storage, or left */
struct repl_bar_result {
	uint64_t epoch;
	uint64_t ns;                /* start to the last confirmation */
	uint32_t members;           /* member ids in the replica set */
	uint32_t confirmed;         /* ... that confirmed (this one included) */
	char node[REPL_MAX_NODES][64];
	char why[REPL_MAX_NODES][48]; /* the others: why not */
};
int repl_vol_barrier_sync(struct repl_vol *rv, unsigned timeout_ms, struct repl_bar_result *res,
			  char *err, size_t errlen);
/* the replica set as it runs now */
void repl_vol_config_sync(struct repl_vol *rv, struct repl_config *out);
/* the resync rate: set (bytes/s, 0: no limit), or back to the default;
 * a resync or verify under way takes it at the next tick */
void repl_vol_resync_rate_sync(struct repl_vol *rv, bool set, uint64_t rate);
/* grows this member to size (store, dirty bitmaps, frontends, STATE):
 * every member, the primary last (-EBUSY while a connected member holding
 * data is smaller) */
int repl_vol_resize_sync(struct repl_vol *rv, uint64_t size, char *err, size_t errlen);
/* closes every connection and stops reconnecting; then waits (bounded)
 * until they are gone. The layer itself is freed with the volume. */
void repl_vol_stop_sync(struct repl_vol *rv);

/* ---- pure helpers (tested) ----------------------------------------------- */
enum repl_gen_cmp {
	REPL_GEN_SAME,          /* same current generation: in sync */
	REPL_GEN_LOCAL_NEWER,   /* the peer's current is in our past: it is behind */
	REPL_GEN_PEER_NEWER,    /* ours is in the peer's past: we are behind */
	REPL_GEN_SPLIT_BRAIN,   /* both moved on from a common past */
	REPL_GEN_UNRELATED,     /* no common generation */
};
const char *repl_gen_cmp_name(enum repl_gen_cmp c);
struct store_generations;
enum repl_gen_cmp repl_gen_compare(const struct store_generations *local,
				   const struct store_generations *peer);
/* a new current generation (on promote or losing a peer while primary) */
void repl_gen_rotate(struct store_generations *g, uint64_t fresh);

#endif
