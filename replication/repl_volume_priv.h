/* Internals of the replication layer shared by repl_volume.c (links,
 * write path, roles) and repl_resync.c (the resync source). Everything
 * here belongs to the volume's reactor. */
#ifndef URBD_REPL_VOLUME_PRIV_H
#define URBD_REPL_VOLUME_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "repl_bitmap.h"
#include "repl_config.h"
#include "repl_conn.h"
#include "repl_proto.h"
#include "repl_volume.h"
#include "store.h"
#include "volume.h"

#define HASH_BUCKETS   1024
#define SEC_PAUSE_AT   512  /* secondary: requests in flight before reading pauses */
#define SEC_RESUME_AT  128

struct repl_verify;
struct repl_rd;
struct repl_actlog;
struct repl_bmstore;

struct repl_req {
	struct vol_io sub;          /* the local part */
	struct vol_io *parent;
	struct repl_vol *rv;
	uint64_t id;
	uint64_t start_ns;          /* sent: for the peers' lag */
	uint32_t wait;              /* peers whose ack is due */
	uint32_t sent;              /* peers it was sent to */
	uint32_t cur;               /* ... that were up to date then (not syncing) */
	uint16_t frames[REPL_MAX_NODES]; /* per peer: acks still due (1 MiB frames) */
	uint32_t acked;             /* peers that acked OK */
	bool issued;                /* gone out (repl_vol_issue): not waiting for the log */
	bool local_done, parent_done, held;
	int local_res;
	void *own_buf;              /* ack=majority: the data, kept for laggards */
	struct repl_req *hnext;
	struct repl_req *prev, *next;
	struct repl_req *held_next;
	bool al_begun;              /* holds activity-log references */
	uint8_t al_state;           /* repl_actlog.c: waiting for the log, and why */
	uint64_t al_wait;           /* the transaction it waits for */
	struct repl_req *al_next;
};

struct repl_peer {
	uint32_t id;
	const struct repl_member *m;
	struct repl_conn *conn;     /* handshaking or live; NULL: standalone */
	bool live;                  /* conn passed the STATE exchange */
	bool outdated;              /* misses writes: no WRITEs until it resyncs */
	bool split_brain;
	bool reset_pending;         /* membership changed: forget it once its link is gone */
	struct repl_state st;       /* its last STATE */
	uint64_t next_connect_ns;
	unsigned backoff_ms;
	char why[200];
	/* a link that fails the same way again and again (a wrong secret, a
	 * split brain) is logged once a minute, with a count: conn_quiet */
	char fail_why[200];
	uint64_t fail_logged_ns;
	unsigned fail_repeats;
	uint64_t pending;
	uint64_t lag_ns;            /* its acks' latency: EWMA (1/8) of request -> last ack */
	unsigned sec_inflight;      /* we are its secondary: its requests in flight */
	uint64_t bytes_out, bytes_in;

	/* what it misses (repl_resync.c): one bit per grain, set for every
	 * write-like request that completed locally without its ack;
	 * persisted in its metadata slot (repl_bmstore.c), whose claim
	 * (bm_base when complete, else 0, and bm_fp) is bm_disk_* */
	struct repl_dirty_bitmap *bm;
	uint64_t bm_base;           /* our generation when it left in sync */
	bool bm_complete;           /* bm holds everything it misses since bm_base */
	uint64_t bm_run;            /* our primary run (repl_vol.primary_runs) when it
				     * left us as its primary, else 0 */
	bool syncing;               /* we are its resync source now */
	bool sync_started;          /* its STATE after our RESYNC_START came in */
	unsigned stuck_ticks;       /* timer ticks live, behind, and no resync (resync_stuck) */
	bool await_al;              /* a crashed primary: its AL_EXTENTS decide the resync */
	bool bm_fp;                 /* bm tracks a former primary since our promotion: good
				     * only with its activity log (AL_EXTENTS) */
	bool bm_disk_known;         /* its slot holds the claim below */
	uint64_t bm_disk_base;
	uint32_t bm_disk_flags;
	uint64_t sync_cursor, sync_total, sync_done, sync_started_ns;
	uint64_t sync_last_total, sync_last_done, sync_last_ns; /* the last finished one */
	unsigned sync_inflight;
	uint64_t sync_inflight_bytes;

	/* repl_peerack.c: what it lacks of the primary's writes, tracked
	 * while we both follow one (trk, valid since both were up to date);
	 * its report of unconfirmed writes (rep); bm_trk: bm came from trk
	 * at our promotion (an unconfirmed member then owes its report) */
	struct repl_dirty_bitmap *trk, *rep;
	bool trk_valid, rep_valid, rep_building, rep_unknown;
	bool bm_trk, await_report;
	uint64_t trk_base;          /* our generation when tracking began */
	uint64_t trk_gens[3];       /* bm_trk: the generations it may come back with */
	unsigned trk_ngens;

	/* a crashed primary's activity log as its AL_EXTENTS said, with its
	 * bitmaps' extents (REPL_AL_F_COVERS), kept for a promotion of ours
	 * (repl_actlog_mark_peer_log); al_gen: its generation then, 0: none
	 * (or not COVERS) */
	uint8_t *al_wire;
	uint32_t al_count;
	uint64_t al_gen;
};

struct repl_vol {
	struct vol_backend b;       /* b.next: the local store */
	struct volume *v;
	struct repl_config cfg;
	const struct repl_secret *secret;
	struct repl_peer peers[REPL_MAX_NODES];
	enum repl_role role;
	enum repl_disk_state disk;
	int primary_flag;           /* atomic mirror of role for other threads */
	uint64_t primary_runs;      /* times this process became primary */
	uint64_t next_id;
	struct repl_req *hash[HASH_BUCKETS];
	struct repl_req *inflight;  /* list, for overlap checks */
	unsigned ninflight;
	struct vol_io *blocked, **blocked_tail;     /* waiting for an overlap */
	struct vol_io *suspended, **suspended_tail; /* waiting for quorum */
	struct reactor_timer timer;
	bool timer_pending, stopping, had_quorum;
	bool need_rotate;           /* a current member left while we were primary */
	bool discard_my_data;       /* split brain: the operator gave up this side */
	bool force_quorum;          /* promote --force: write alone until a peer is back */
	/* generation barrier: after a rotation, writes complete only once
	 * enough peers confirmed (FLUSH_ACK after the STATE) that they hold
	 * the new generation: a write acknowledged without a member is then
	 * always on a quorum that knows it (repl_volume.c) */
	bool barrier_pending;
	uint64_t barrier_id;
	uint32_t barrier_wait, barrier_acked;
	struct store_generations barrier_prev;
	struct repl_req *held;      /* complete, waiting for the barrier */
	unsigned conns;             /* connections not yet freed */
	uint64_t writes_replicated;
	struct repl_sync_req *syncs;  /* resync reads/sends in flight, all peers */
	uint64_t sync_next_id;
	uint64_t resync_rate;       /* bytes/s, 0: unlimited */
	int64_t resync_tokens;
	/* what the control plane reads: published by the reactor on every
	 * change and every timer tick, so no control call ever waits for the
	 * reactor while holding the volume manager's lock */
	struct repl_verify *verify;  /* the running or last online verify (repl_verify.c) */
	struct repl_rd *reads;       /* diskless primary: reads at peers (repl_read.c) */
	struct repl_actlog *actlog;  /* the activity log (repl_actlog.c); NULL: diskless */
	struct repl_bmstore *bmstore; /* the bitmaps on disk (repl_bmstore.c); NULL: diskless */
	struct repl_pa *pa;          /* peer acks and tracking (repl_peerack.c) */
	struct repl_bar *bar;        /* BARRIER runs and epochs (repl_barrier.c) */
	pthread_mutex_t status_lock;
	struct repl_vol_status status;
};




struct repl_sync_req;

static inline const char *vname(const struct repl_vol *rv) { return rv->v->name; }

/* A token bucket refilled every timer tick of ms: rate bytes/s (0: no
 * limit), at most one tick of burst. A transfer larger than a tick's
 * worth runs it into debt, so the rate holds on average. */
static inline void repl_tokens_refill(int64_t *tokens, uint64_t rate, unsigned ms)
{
	int64_t add = (int64_t)(rate * ms / 1000);

	if (rate)
		*tokens = *tokens + add < add ? *tokens + add : add;
}

/* bytes per dirty-bitmap bit of this volume (chosen at create) */
static inline uint32_t repl_vol_grain(const struct repl_vol *rv)
{
	return rv->v->sv->meta.bm_grain ? rv->v->sv->meta.bm_grain : STORE_BM_GRAIN_DEFAULT;
}

static inline bool is_write_like(enum vol_op op)
{
	return op == VOL_WRITE || op == VOL_TRIM || op == VOL_WRITE_ZEROES;
}

static inline bool overlaps(uint64_t a, uint64_t al, uint64_t b, uint64_t bl)
{
	return a < b + bl && b < a + al;
}

/* repl_volume.c */
void repl_vol_publish(struct repl_vol *rv);
/* persists a superblock flag: 1 written, 0 already so, -errno */
int repl_vol_sb_flag(struct repl_vol *rv, uint32_t flag, bool on);
bool repl_vol_writes_overlap(struct repl_vol *rv, uint64_t off, uint64_t len);
void repl_vol_pump_blocked(struct repl_vol *rv);
/* a live peer is primary */
bool repl_vol_live_primary(const struct repl_vol *rv);
/* why member p (present) is not a live member with current data: diskless,
 * not connected, resyncing, outdated; NULL when it is one */
const char *repl_peer_not_current(const struct repl_peer *p);
/* a request from peer p on link c that we serve as its secondary (or
 * verify peer) starts / ends: bounds what one link keeps in flight */
void repl_sec_io_start(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c);
void repl_sec_io_done(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c);
/* A local read on behalf of peer p's request `id` (READ_REQ, VERIFY_REQ):
 * done(s, res) runs when it completed and must end with
 * repl_sec_read_end(s, keep_buf) (keep_buf: the buffer was handed on). */
struct repl_sec_read {
	struct vol_io io;
	struct repl_vol *rv;
	struct repl_peer *p;
	struct repl_conn *c;
	uint64_t id;
	void (*done)(struct repl_sec_read *s, int res);
};
int repl_sec_read_start(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c,
			const struct repl_msg *m,
			void (*done)(struct repl_sec_read *s, int res));
void repl_sec_read_end(struct repl_sec_read *s, bool keep_buf);

/* repl_resync.c: the source side */
/* p's dirty bitmap, allocated on first use; NULL when out of memory */
struct repl_dirty_bitmap *repl_resync_bitmap(struct repl_vol *rv, struct repl_peer *p);
/* a resync of p (live, behind us, we are primary): from p->bm when it is
 * complete since the generation p still has, else everything */
void repl_resync_start(struct repl_vol *rv, struct repl_peer *p, uint64_t peer_gen);
/* RESYNC_ACK from p */
int repl_resync_on_ack(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
		       char *why, size_t whylen);
/* stop being p's source (p gone, or we are no longer primary) */
void repl_resync_stop(struct repl_vol *rv, struct repl_peer *p, bool peer_gone);
/* more work when tokens or an overlap freed up */
void repl_resync_pump_all(struct repl_vol *rv);
void repl_resync_tick(struct repl_vol *rv, unsigned ms);
/* a resync read/send of an overlapping range is in flight */
bool repl_resync_overlaps(struct repl_vol *rv, uint64_t off, uint64_t len);
/* a write-like request done locally: mark it for every peer that did not ack */
void repl_resync_mark(struct repl_vol *rv, uint64_t off, uint64_t len, uint32_t acked);
void repl_resync_free(struct repl_vol *rv);
/* from our promotion on, p (absent, primary when it left) is tracked in a
 * fresh complete bitmap based on our generation before the rotation */
void repl_resync_track_former_primary(struct repl_vol *rv, struct repl_peer *p);
/* mark a range in p's dirty bitmap (verify --repair) */
void repl_resync_mark_peer(struct repl_vol *rv, struct repl_peer *p, uint64_t off, uint64_t len);

void repl_vol_issue(struct repl_vol *rv, struct repl_req *q);

/* repl_actlog.c: the activity log on the write path, and a crashed
 * primary's return */
int repl_actlog_open(struct repl_vol *rv);
void repl_actlog_free(struct repl_vol *rv);
/* a write-like request must wait for the log (it is issued later) */
bool repl_actlog_hold(struct repl_vol *rv, struct repl_req *q);
void repl_actlog_end(struct repl_vol *rv, struct repl_req *q);
void repl_actlog_tick(struct repl_vol *rv);
unsigned repl_actlog_busy(const struct repl_vol *rv);
int repl_actlog_resize(struct repl_vol *rv, uint64_t size);
/* we crashed as primary and no resync or promotion settled it since */
bool repl_actlog_crashed(const struct repl_vol *rv);
void repl_actlog_settled(struct repl_vol *rv, const char *why);
/* after our STATE on a new link: our log's extents, if we crashed */
void repl_actlog_send(struct repl_vol *rv, struct repl_conn *c);
/* AL_EXTENTS from a crashed primary: used now if it came back behind us,
 * kept in any case (p->al_*) */
int repl_actlog_on_extents(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
			   char *why, size_t whylen);
/* once the bitmaps are loaded: the extents AL_EXTENTS sends with COVERS */
void repl_actlog_cover_bitmaps(struct repl_vol *rv);
/* forget p's kept extents (it left, or says it did not crash) */
void repl_actlog_peer_forget(struct repl_peer *p);
/* x's kept extents into p's bitmap, cleared first: how many, -1 when
 * there is no bitmap for p */
int repl_actlog_mark_peer_log(struct repl_vol *rv, const struct repl_peer *x,
			      struct repl_peer *p);

/* the bitmaps' flush before an evicting transaction is durable */
void repl_actlog_bm_flushed(struct repl_vol *rv);
/* our recovered extents into p's bitmap (rule 5): how many, -1 when the
 * log was unreadable, 0 when we did not crash as primary */
int repl_actlog_mark_recovered(struct repl_vol *rv, struct repl_peer *p);

/* repl_bmstore.c: the per-peer dirty bitmaps on disk */
int repl_bmstore_open(struct repl_vol *rv);
void repl_bmstore_free(struct repl_vol *rv);
/* start a flush (or ask for one after the one in flight): the flush
 * number to wait for with repl_bmstore_flushed, 0 when nothing to write */
uint64_t repl_bmstore_flush(struct repl_vol *rv);
bool repl_bmstore_flushed(const struct repl_vol *rv, uint64_t seq);
/* something in memory is not on disk yet */
bool repl_bmstore_dirty(struct repl_vol *rv);
void repl_bmstore_tick(struct repl_vol *rv);
/* stopping: flushes what is left; nonzero while a flush is in flight */
unsigned repl_bmstore_busy(struct repl_vol *rv);
/* a new term: superblock flags on/off written with BM_VALID cleared;
 * a term as primary (WAS_PRIMARY on) sets it again after its first flush */
int repl_bmstore_new_term(struct repl_vol *rv, uint32_t flags_on, uint32_t flags_off);
void repl_bmstore_resized(struct repl_vol *rv);
/* promoted: bitmaps loaded at start are kept only if no other primary
 * wrote since (the generation is the one they were loaded with) */
void repl_bmstore_promoted(struct repl_vol *rv);

/* repl_read.c: a diskless primary reads from a peer with data */
bool repl_read_source(struct repl_vol *rv);
/* ... and one that is not member id */
bool repl_read_source_besides(struct repl_vol *rv, uint32_t id);
void repl_read_start(struct repl_vol *rv, struct vol_io *io);
int repl_read_on_reply(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
		       char *why, size_t whylen);
void repl_read_peer_gone(struct repl_vol *rv, struct repl_peer *p);
/* READ_REQ from the primary */
int repl_read_serve(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c,
		    const struct repl_msg *m, char *why, size_t whylen);

/* repl_peerack.c (the design is at its top) */
struct repl_pa;
int repl_pa_new(struct repl_vol *rv);
void repl_pa_free(struct repl_vol *rv);
/* primary: request `id` settled, held by the members in `holders` */
void repl_pa_settled(struct repl_vol *rv, uint64_t id, uint32_t holders);
/* primary: the queue should leave with the next request (inflight: ours) */
bool repl_pa_due(const struct repl_vol *rv, unsigned inflight);
/* primary: send the queued PEER_ACK to every live peer */
void repl_pa_flush(struct repl_vol *rv);
/* secondary: a WRITE/TRIM/WRITE_ZEROES of primary p is being applied */
void repl_pa_applied(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m);
int repl_pa_on_peer_ack(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
			char *why, size_t whylen);
/* secondary: our primary p is gone; unclean: without a goodbye */
void repl_pa_primary_lost(struct repl_vol *rv, struct repl_peer *p, bool unclean);
/* roles, disk states or links changed: start or stop tracking */
void repl_pa_update(struct repl_vol *rv);
void repl_pa_reset_peer(struct repl_vol *rv, struct repl_peer *x);
void repl_pa_resized(struct repl_vol *rv);
/* our report of unconfirmed writes, to one link / every live one */
void repl_pa_report_send(struct repl_vol *rv, struct repl_conn *c);
void repl_pa_report_all(struct repl_vol *rv);
/* we are confirmed again (resynced, or promoted): nothing to report */
void repl_pa_confirmed(struct repl_vol *rv);
int repl_pa_on_report(struct repl_vol *rv, struct repl_peer *x, const struct repl_msg *m,
		      char *why, size_t whylen);
void repl_pa_peer_state(struct repl_vol *rv, struct repl_peer *x, const struct repl_state *s);
void repl_pa_peer_gone(struct repl_vol *rv, struct repl_peer *x);
/* promotion: tracked members get their dirty bitmaps (claims) */
void repl_pa_promoted(struct repl_vol *rv);
/* promotion: x's claim holds for the generation it has now (an
 * unconfirmed x's report merged in) */
bool repl_pa_claim(struct repl_vol *rv, struct repl_peer *x);
/* x's claim from tracking covers generation gen (one we had since the
 * tracking began): its bitmap is based on it now */
bool repl_pa_rebase(struct repl_peer *x, uint64_t gen);
/* a primary meets x again: wait for x's report before its resync */
bool repl_pa_await(struct repl_vol *rv, struct repl_peer *x, const struct repl_state *s);

/* repl_barrier.c (the design is at its top) */
struct repl_epoch;
/* secondary: a write from the primary joins the open epoch (NULL: not
 * counted, out of memory); it was applied */
struct repl_epoch *repl_bar_sec_io(struct repl_vol *rv);
void repl_bar_sec_io_done(struct repl_vol *rv, struct repl_epoch *e);
int repl_bar_on_barrier(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c,
			const struct repl_msg *m, char *why, size_t whylen);
/* primary: BARRIER_ACK; a local write completed; a peer is gone */
int repl_bar_on_ack(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
		    char *why, size_t whylen);
void repl_bar_local_done(struct repl_vol *rv);
void repl_bar_peer_gone(struct repl_vol *rv, struct repl_peer *p);
void repl_bar_free(struct repl_vol *rv);

/* repl_verify.c */
#define REPL_VERIFY_REGION_DEFAULT (1u << 20)
/* rate: bytes/s read per replica, 0: the volume's resync rate */
int repl_verify_start(struct repl_vol *rv, uint32_t region, uint64_t rate, bool repair,
		      char *err, size_t errlen);
/* a region in flight, or waiting for its turn, overlaps: the write waits */
bool repl_verify_overlaps(struct repl_vol *rv, uint64_t off, uint64_t len);
unsigned repl_verify_inflight(const struct repl_vol *rv);
void repl_verify_pump(struct repl_vol *rv);
/* the timer: the rate's tokens, then pump */
void repl_verify_tick(struct repl_vol *rv, unsigned ms);
void repl_verify_peer_gone(struct repl_vol *rv, struct repl_peer *p);
int repl_verify_on_reply(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
			 char *why, size_t whylen);
/* VERIFY_REQ from p: read, digest, answer */
int repl_verify_serve(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c,
		      const struct repl_msg *m, char *why, size_t whylen);
void repl_verify_status(const struct repl_vol *rv, struct repl_vol_status *st);
void repl_verify_free(struct repl_vol *rv);

#endif
