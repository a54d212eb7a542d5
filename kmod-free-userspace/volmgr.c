/* The volume manager. Control-plane threads serialise on `lock`; the data
 * path never takes it. A volume's data-path fields (size, stats,
 * connection list) belong to its reactor: changes go through
 * reactor_call(); reads of counters from here are advisory snapshots. */
#include "volmgr.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "nbd/nbd_server.h"
#include "reactor.h"
#include "../replication/repl_config.h"
#include "../replication/repl_volume.h"
#include "store.h"
#include "volmgr_internal.h"
#include "volume.h"

struct vm_entry {
	struct vm_entry *next;
	char name[URBD_NAME_MAX + 1];
	enum volume_state state;
	char error[256];
	struct volume *vol;  /* ONLINE only */
	struct repl_vol *rv; /* replicated volumes only */
	/* control calls that wait long (a barrier) run without `lock`, with
	 * the entry pinned: whoever takes it down marks it dying, so nothing
	 * new starts on it, and waits until no call holds it (`idle`) */
	unsigned calls;
	bool dying;
};

struct volmgr {
	pthread_mutex_t lock;
	pthread_cond_t idle;      /* an entry's last pinned call ended */
	struct store *store;
	struct reactor **reactors;
	unsigned nr_reactors;
	unsigned next_reactor;
	struct vm_entry *entries; /* sorted by name */
	struct volmgr_config cfg;
	char nbd_listen[128];
	char nbd_unix[256];
	uint64_t started_ns;
	/* Replicated volumes by uuid, for the replication listener. Its own
	 * lock, never held across a reactor_call: the listener runs on a
	 * reactor, and control calls hold `lock` while they wait for
	 * reactors. */
	pthread_mutex_t route_lock;
	struct vm_route *routes;
	/* Guards the entry list for the frontends' lookups (nbd_get/list run
	 * on reactor 0's thread). Taken inside `lock` for every change, and
	 * never held across a reactor_call: control calls hold `lock` while
	 * they wait for reactors, so a reactor must never wait for `lock`. */
	pthread_mutex_t list_lock;
};

struct vm_route {
	struct vm_route *next;
	uint8_t uuid[16];
	struct repl_vol *rv;
	struct reactor *r;
};

static void route_add(struct volmgr *m, const uint8_t uuid[16], struct repl_vol *rv,
		      struct reactor *r)
{
	struct vm_route *x = calloc(1, sizeof(*x));

	if (!x)
		return; /* the volume then refuses peers: logged by the listener */
	memcpy(x->uuid, uuid, 16);
	x->rv = rv;
	x->r = r;
	pthread_mutex_lock(&m->route_lock);
	x->next = m->routes;
	m->routes = x;
	pthread_mutex_unlock(&m->route_lock);
}

/* after this, no new adopt for rv is posted; earlier ones are queued on
 * its reactor ahead of anything the caller posts next */
static void route_del(struct volmgr *m, struct repl_vol *rv)
{
	pthread_mutex_lock(&m->route_lock);
	for (struct vm_route **pp = &m->routes; *pp; pp = &(*pp)->next)
		if ((*pp)->rv == rv) {
			struct vm_route *x = *pp;

			*pp = x->next;
			free(x);
			break;
		}
	pthread_mutex_unlock(&m->route_lock);
}

#define URBD_VERSION "0.1.0"

int volmgr_new(struct store *store, struct reactor **reactors, unsigned n,
	       const struct volmgr_config *cfg, struct volmgr **out)
{
	struct volmgr *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->idle, NULL);
	pthread_mutex_init(&m->route_lock, NULL);
	pthread_mutex_init(&m->list_lock, NULL);
	m->store = store;
	m->reactors = reactors;
	m->nr_reactors = n;
	m->cfg = *cfg;
	volmgr_set_frontends(m, cfg->nbd_listen, cfg->nbd_unix);
	m->started_ns = now_ns();
	*out = m;
	return 0;
}

static struct vm_entry *find(struct volmgr *m, const char *name)
{
	for (struct vm_entry *e = m->entries; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static void insert_sorted(struct volmgr *m, struct vm_entry *e)
{
	struct vm_entry **pp = &m->entries;

	pthread_mutex_lock(&m->list_lock);
	while (*pp && strcmp((*pp)->name, e->name) < 0)
		pp = &(*pp)->next;
	e->next = *pp;
	*pp = e;
	pthread_mutex_unlock(&m->list_lock);
}

/* lock held: no call pins e any more, and none will (it is dying); the
 * lock is let go while waiting */
static void wait_unpinned(struct volmgr *m, struct vm_entry *e)
{
	e->dying = true;
	while (e->calls)
		pthread_cond_wait(&m->idle, &m->lock);
}

static void unpin(struct volmgr *m, struct vm_entry *e)
{
	pthread_mutex_lock(&m->lock);
	if (--e->calls == 0)
		pthread_cond_broadcast(&m->idle);
	pthread_mutex_unlock(&m->lock);
}

static void unlink_entry(struct volmgr *m, struct vm_entry *e)
{
	pthread_mutex_lock(&m->list_lock);
	for (struct vm_entry **pp = &m->entries; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	pthread_mutex_unlock(&m->list_lock);
}

static int free_volume_on_reactor(void *arg)
{
	volume_free(arg);
	return 0;
}

/* A volume with a replica set (its directory holds a "replication" file)
 * gets the replication layer; without a shared secret it cannot talk to
 * its peers, and is refused rather than served unreplicated. */
static int attach_replication(struct volmgr *m, struct vm_entry *e, char *err,
			      size_t errlen)
{
	struct repl_config rc;
	char dir[512];
	int ret;

	if (store_volume_dir(m->store, e->name, dir, sizeof(dir)))
		return 0;
	ret = repl_config_load(dir, &rc, err, errlen);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return -EIO;
	if (!m->cfg.repl_secret) {
		snprintf(err, errlen, "volume %s is replicated but the daemon has no "
			 "replication secret (--repl-secret)", e->name);
		return -EINVAL;
	}
	e->rv = repl_vol_new(e->vol, &rc, m->cfg.repl_secret);
	if (!e->rv) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	route_add(m, e->vol->sv->meta.uuid.b, e->rv, e->vol->r);
	return 0;
}

/* opens a volume from the store and puts it online (lock held) */
static int bring_online(struct volmgr *m, const char *name, char *err,
			size_t errlen)
{
	struct vm_entry *e = calloc(1, sizeof(*e));
	struct store_volume *sv;
	struct reactor *r;
	int ret;

	if (!e)
		return -ENOMEM;
	snprintf(e->name, sizeof(e->name), "%s", name);
	ret = store_open_volume(m->store, name, &sv, e->error, sizeof(e->error));
	if (ret) {
		e->state = VOLUME_FAILED;
		log_err("volmgr", "volume %s refused: %s", name, e->error);
		snprintf(err, errlen, "%s", e->error);
		insert_sorted(m, e);
		return ret;
	}
	if (!(sv->meta.flags & STORE_SB_F_CLEAN))
		log_warn("volmgr", "volume %s was not shut down cleanly (crash or "
			 "kill -9): acknowledged writes are on disk; unflushed "
			 "ones may not be", name);
	if (store_set_clean(sv, false) < 0) {
		snprintf(e->error, sizeof(e->error), "cannot write the metadata "
			 "of volume %s", name);
		e->state = VOLUME_FAILED;
		store_close_volume(sv);
		snprintf(err, errlen, "%s", e->error);
		insert_sorted(m, e);
		return -EIO;
	}
	/* shard volumes over reactors round-robin */
	r = m->reactors[m->next_reactor++ % m->nr_reactors];
	e->vol = volume_new(r, sv);
	if (!e->vol) {
		store_close_volume(sv);
		free(e);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = attach_replication(m, e, err, errlen);
	if (ret) {
		e->state = VOLUME_FAILED;
		snprintf(e->error, sizeof(e->error), "%s", err);
		log_err("volmgr", "volume %s refused: %s", name, err);
		reactor_call(r, free_volume_on_reactor, e->vol);
		e->vol = NULL;
		store_close_volume(sv);
		insert_sorted(m, e);
		return ret;
	}
	e->state = VOLUME_ONLINE;
	insert_sorted(m, e);
	log_info("volmgr", "volume %s online: %llu bytes on reactor %d%s", name,
		 (unsigned long long)sv->meta.size, reactor_id(r),
		 sv->direct ? "" : " (buffered I/O)");
	return 0;
}

void volmgr_set_frontends(struct volmgr *m, const char *nbd_listen,
			  const char *nbd_unix)
{
	pthread_mutex_lock(&m->lock);
	snprintf(m->nbd_listen, sizeof(m->nbd_listen), "%s", nbd_listen ? nbd_listen : "");
	snprintf(m->nbd_unix, sizeof(m->nbd_unix), "%s", nbd_unix ? nbd_unix : "");
	pthread_mutex_unlock(&m->lock);
}

int volmgr_load(struct volmgr *m)
{
	char **names;
	size_t n;
	int online = 0, ret;
	char err[256];

	ret = store_list(m->store, &names, &n);
	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < n; i++)
		if (bring_online(m, names[i], err, sizeof(err)) == 0)
			online++;
	pthread_mutex_unlock(&m->lock);
	store_list_free(names, n);
	return online;
}

size_t volmgr_count(struct volmgr *m)
{
	size_t n = 0;

	pthread_mutex_lock(&m->lock);
	for (struct vm_entry *e = m->entries; e; e = e->next)
		n++;
	pthread_mutex_unlock(&m->lock);
	return n;
}

static int check_size(uint64_t size, char *err, size_t errlen)
{
	if (size == 0 || size % STORE_BLOCK_SIZE) {
		snprintf(err, errlen, "size %llu is not a positive multiple of %d",
			 (unsigned long long)size, STORE_BLOCK_SIZE);
		return -EINVAL;
	}
	return 0;
}

static int check_space(struct volmgr *m, uint64_t need, char *err, size_t errlen)
{
	uint64_t free_b, total;
	char a[32], b[32];

	if (store_space(m->store, &free_b, &total) == 0 && need > free_b) {
		snprintf(err, errlen, "not enough space in the store: %s asked, %s free",
			 urbd_format_size(need, a, sizeof(a)),
			 urbd_format_size(free_b, b, sizeof(b)));
		return -ENOSPC;
	}
	return 0;
}

int volmgr_create(struct volmgr *m, const char *name, uint64_t size,
		  char *err, size_t errlen)
{
	int ret;

	if (!urbd_name_valid(name)) {
		snprintf(err, errlen, "invalid volume name '%.64s': use 1-63 of "
			 "[a-z0-9._-], starting with a letter or digit", name);
		return -EINVAL;
	}
	ret = check_size(size, err, errlen);
	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	if (find(m, name)) {
		snprintf(err, errlen, "volume %s already exists", name);
		ret = -EEXIST;
		goto out;
	}
	ret = check_space(m, size, err, errlen);
	if (!ret)
		ret = store_create_volume(m->store, name, size, err, errlen);
	if (!ret)
		ret = bring_online(m, name, err, errlen);
	if (!ret)
		log_info("volmgr", "created volume %s (%llu bytes)", name,
			 (unsigned long long)size);
out:
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int volmgr_create_replicated(struct volmgr *m, const char *name, uint64_t size,
			     const struct urbd_uuid *uuid, const struct repl_config *rc,
			     bool join, uint32_t bm_grain, char *err, size_t errlen)
{
	struct store_create_opts o = { .bm_grain = bm_grain };
	char text[4096];
	int ret;

	if (!urbd_name_valid(name)) {
		snprintf(err, errlen, "invalid volume name '%.64s'", name);
		return -EINVAL;
	}
	ret = check_size(size, err, errlen);
	if (!ret)
		ret = repl_config_check(rc, err, errlen);
	if (ret)
		return ret;
	if (!m->cfg.repl_secret) {
		snprintf(err, errlen, "this daemon has no replication secret (--repl-secret): "
			 "it cannot hold replicated volumes");
		return -EINVAL;
	}
	if (uuid)
		o.uuid = *uuid;
	else if (urbd_uuid_generate(&o.uuid)) {
		snprintf(err, errlen, "cannot generate a UUID");
		return -EIO;
	}
	/* every member starts from the same generation, derived from the
	 * uuid: a set created together is identical (all zeroes). One that
	 * joins later has none and is inconsistent: the primary syncs it
	 * completely */
	if (join && !uuid) {
		snprintf(err, errlen, "joining an existing replica set needs its uuid");
		return -EINVAL;
	}
	if (join) {
		o.disk_state = REPL_DISK_INCONSISTENT;
	} else {
		memcpy(&o.gen.current, o.uuid.b, sizeof(o.gen.current));
		o.gen.current |= 1;
	}
	ret = repl_config_format(rc, text, sizeof(text));
	if (ret) {
		snprintf(err, errlen, "replica set too large");
		return ret;
	}
	pthread_mutex_lock(&m->lock);
	if (find(m, name)) {
		snprintf(err, errlen, "volume %s already exists", name);
		ret = -EEXIST;
		goto out;
	}
	ret = check_space(m, size, err, errlen);
	if (!ret)
		ret = store_create_volume_ex(m->store, name, size, &o, REPL_CONFIG_FILE, text,
					     err, errlen);
	if (!ret)
		ret = bring_online(m, name, err, errlen);
	if (!ret)
		log_info("volmgr", "created volume %s (%llu bytes), member %u of %u",
			 name, (unsigned long long)size, rc->local_id, repl_config_members(rc));
out:
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* the entry of a replicated, online volume, or an error (lock held) */
static struct vm_entry *find_replicated(struct volmgr *m, const char *name, int *ret,
					char *err, size_t errlen)
{
	struct vm_entry *e = find(m, name);

	*ret = 0;
	if (!e) {
		snprintf(err, errlen, "volume %s not found", name);
		*ret = -ENOENT;
	} else if (e->dying) {
		snprintf(err, errlen, "volume %s is being taken down", name);
		*ret = -EBUSY;
	} else if (e->state != VOLUME_ONLINE) {
		snprintf(err, errlen, "volume %s is not online: %s", name, e->error);
		*ret = -EIO;
	} else if (!e->rv) {
		snprintf(err, errlen, "volume %s is not replicated: it is always primary "
			 "here", name);
		*ret = -EINVAL;
	}
	return *ret ? NULL : e;
}

enum role_op { ROLE_PROMOTE, ROLE_DEMOTE, ROLE_DISCARD, ROLE_VERIFY };

/* force: promote --force and verify --repair; region, rate: verify */
static int role_change(struct volmgr *m, const char *name, enum role_op op, bool force,
		       uint32_t region, uint64_t rate, char *err, size_t errlen)
{
	struct vm_entry *e;
	int ret;

	pthread_mutex_lock(&m->lock);
	e = find_replicated(m, name, &ret, err, errlen);
	if (e && op == ROLE_PROMOTE)
		ret = repl_vol_promote_sync(e->rv, force, err, errlen);
	else if (e && op == ROLE_DEMOTE)
		ret = repl_vol_demote_sync(e->rv, err, errlen);
	else if (e && op == ROLE_VERIFY)
		ret = repl_vol_verify_sync(e->rv, region, rate, force, err, errlen);
	else if (e)
		ret = repl_vol_discard_sync(e->rv, err, errlen);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

/* a volume's replica set into its file (before it takes effect) */
static int save_set(struct volmgr *m, const char *name, const struct repl_config *nc,
		    char *err, size_t errlen)
{
	char dir[4096];
	int ret;

	if ((ret = store_volume_dir(m->store, name, dir, sizeof(dir))) == 0 &&
	    (ret = repl_config_save(dir, nc)) != 0)
		snprintf(err, errlen, "cannot save the replica set of %s: %s", name,
			 strerror(-ret));
	return ret;
}

int volmgr_set_replica(struct volmgr *m, const char *name, uint32_t id,
		       const struct repl_member *mb, bool replace, char *err, size_t errlen)
{
	struct repl_config nc;
	struct vm_entry *e;
	int ret;

	pthread_mutex_lock(&m->lock);
	e = find_replicated(m, name, &ret, err, errlen);
	/* check, persist, then change the running volume: a restart in
	 * between finds the new set, which the others have too */
	if (e)
		ret = repl_vol_member_sync(e->rv, id, mb, replace, false, &nc, err, errlen);
	if (e && !ret)
		ret = save_set(m, name, &nc, err, errlen);
	if (e && !ret)
		ret = repl_vol_member_sync(e->rv, id, mb, replace, true, NULL, err, errlen);
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int volmgr_verify(struct volmgr *m, const char *name, uint32_t region, uint64_t rate,
		  bool repair, char *err, size_t errlen)
{
	return role_change(m, name, ROLE_VERIFY, repair, region, rate, err, errlen);
}

int volmgr_set_resync_rate(struct volmgr *m, const char *name, bool set, uint64_t rate,
			   char *err, size_t errlen)
{
	struct repl_config nc;
	struct vm_entry *e;
	int ret;

	pthread_mutex_lock(&m->lock);
	e = find_replicated(m, name, &ret, err, errlen);
	if (e) {
		/* persisted first: a restart keeps what was answered */
		repl_vol_config_sync(e->rv, &nc);
		nc.resync_rate_set = set;
		nc.resync_rate = set ? rate : 0;
		if (!(ret = save_set(m, name, &nc, err, errlen)))
			repl_vol_resync_rate_sync(e->rv, set, rate);
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int volmgr_barrier(struct volmgr *m, const char *name, unsigned timeout_ms,
		   struct repl_bar_result *res, char *err, size_t errlen)
{
	struct vm_entry *e;
	int ret;

	pthread_mutex_lock(&m->lock);
	e = find_replicated(m, name, &ret, err, errlen);
	if (e)
		e->calls++;
	pthread_mutex_unlock(&m->lock);
	if (!e)
		return ret;
	/* it may wait for a peer's ack until the peer times out: other
	 * control calls (status above all) go on meanwhile */
	ret = repl_vol_barrier_sync(e->rv, timeout_ms, res, err, errlen);
	unpin(m, e);
	return ret;
}

int volmgr_promote(struct volmgr *m, const char *name, bool force, char *err, size_t errlen)
{
	return role_change(m, name, ROLE_PROMOTE, force, 0, 0, err, errlen);
}

int volmgr_demote(struct volmgr *m, const char *name, char *err, size_t errlen)
{
	return role_change(m, name, ROLE_DEMOTE, false, 0, 0, err, errlen);
}

int volmgr_discard_my_data(struct volmgr *m, const char *name, char *err, size_t errlen)
{
	return role_change(m, name, ROLE_DISCARD, false, 0, 0, err, errlen);
}

struct adopt_arg {
	struct repl_vol *rv;
	int fd;
	struct repl_features f;
	struct repl_msg hello;
	char addr[64];
};

static void adopt_on_reactor(void *arg)
{
	struct adopt_arg *a = arg;

	repl_vol_adopt(a->rv, a->fd, &a->f, &a->hello, a->addr);
	free(a);
}

int volmgr_repl_route(void *ctx, int fd, const struct repl_features *f,
		      const struct repl_msg *hello, const char *peer_addr)
{
	struct volmgr *m = ctx;
	struct adopt_arg *a;
	int ret = -ENOENT;

	pthread_mutex_lock(&m->route_lock);
	for (struct vm_route *e = m->routes; e; e = e->next) {
		if (memcmp(e->uuid, hello->u.hello.volume_uuid, 16))
			continue;
		a = calloc(1, sizeof(*a));
		if (!a)
			break;
		a->rv = e->rv;
		a->fd = fd;
		a->f = *f;
		a->hello = *hello;
		snprintf(a->addr, sizeof(a->addr), "%s", peer_addr);
		/* posted under the lock: a take-down of this volume queues its
		 * stop behind this message */
		if (reactor_post(e->r, adopt_on_reactor, a) == 0)
			ret = 0;
		else
			free(a);
		break;
	}
	pthread_mutex_unlock(&m->route_lock);
	if (ret)
		close(fd);
	return ret;
}

static int disconnect_on_reactor(void *arg)
{
	unsigned n = nbd_volume_disconnect_all(arg); /* sets v->detaching */

	volume_notify(arg, true, 0); /* frontend listeners (nvmf) */
	return (int)n;
}

static int free_on_reactor(void *arg)
{
	struct volume *v = arg;

	volume_free(v);
	return 0;
}

/* Takes an online volume down: frontends closed, in-flight I/O drained,
 * volume freed on its reactor. Lock held; e already unlinked. */
static void take_down(struct volmgr *m, struct volume *v, struct repl_vol *rv)
{
	struct store_volume *sv = v->sv;
	struct reactor *r = v->r;

	if (rv) {
		route_del(m, rv);
		repl_vol_stop_sync(rv);
	}

	reactor_call(r, disconnect_on_reactor, v);
	/* connections drop their references once their I/O has drained;
	 * a connection still negotiating drops its own when it adopts */
	for (int i = 0; i < 10000 && __atomic_load_n(&v->refs, __ATOMIC_ACQUIRE); i++) {
		if (i % 100 == 99)
			reactor_call(r, disconnect_on_reactor, v);
		usleep(1000);
	}
	if (__atomic_load_n(&v->refs, __ATOMIC_ACQUIRE))
		log_err("volmgr", "volume %s: frontends did not let go in 10 s; "
			"leaking it rather than freeing memory in use", v->name);
	else
		reactor_call(r, free_on_reactor, v);
	/* everything completed is on disk after this flush: mark it clean */
	if (fdatasync(sv->data_fd) == 0)
		store_set_clean(sv, true);
	store_close_volume(sv);
}

int volmgr_delete(struct volmgr *m, const char *name, bool force,
		  char *err, size_t errlen)
{
	struct vm_entry *e;
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	e = find(m, name);
	if (!e) {
		snprintf(err, errlen, "volume %s not found", name);
		ret = -ENOENT;
		goto out;
	}
	if (e->dying) {
		snprintf(err, errlen, "volume %s is being taken down already", name);
		ret = -EBUSY;
		goto out;
	}
	wait_unpinned(m, e);
	if (e->state == VOLUME_ONLINE && !force &&
	    __atomic_load_n(&e->vol->refs, __ATOMIC_ACQUIRE)) {
		e->dying = false;
		snprintf(err, errlen, "volume %s is in use by %d frontend "
			 "connection(s); disconnect them or use --force", name,
			 __atomic_load_n(&e->vol->refs, __ATOMIC_ACQUIRE));
		ret = -EBUSY;
		goto out;
	}
	unlink_entry(m, e);
	if (e->state == VOLUME_ONLINE)
		take_down(m, e->vol, e->rv);
	ret = store_delete_volume(m->store, name);
	if (ret)
		snprintf(err, errlen, "removing volume %s from the store: %s",
			 name, strerror(-ret));
	else
		log_info("volmgr", "deleted volume %s", name);
	free(e);
out:
	pthread_mutex_unlock(&m->lock);
	return ret;
}

struct resize_arg {
	struct volume *v;
	uint64_t size;
};

static int set_size_on_reactor(void *arg)
{
	struct resize_arg *a = arg;
	uint64_t old = a->v->size;

	a->v->size = a->size;
	volume_notify(a->v, false, old); /* frontends tell their hosts */
	return 0;
}

int volmgr_resize(struct volmgr *m, const char *name, uint64_t new_size,
		  char *err, size_t errlen)
{
	struct vm_entry *e;
	struct resize_arg a;
	int ret;

	ret = check_size(new_size, err, errlen);
	if (ret)
		return ret;
	pthread_mutex_lock(&m->lock);
	e = find(m, name);
	if (!e || e->state != VOLUME_ONLINE) {
		snprintf(err, errlen, e ? "volume %s is not online: %s" :
			 "volume %s not found", name, e ? e->error : "");
		ret = e ? -EIO : -ENOENT;
		goto out;
	}
	if (new_size < e->vol->sv->meta.size) {
		snprintf(err, errlen, "volume %s is %llu bytes: shrinking is not "
			 "supported", name, (unsigned long long)e->vol->sv->meta.size);
		ret = -EINVAL;
		goto out;
	}
	if (new_size == e->vol->sv->meta.size)
		goto out;
	ret = check_space(m, new_size - e->vol->sv->meta.size, err, errlen);
	if (ret)
		goto out;
	if (e->rv) {
		/* every member, the primary last: repl_vol_resize_sync */
		ret = repl_vol_resize_sync(e->rv, new_size, err, errlen);
		if (!ret)
			log_info("volmgr", "volume %s resized to %llu bytes", name,
				 (unsigned long long)new_size);
		goto out;
	}
	ret = store_grow_volume(e->vol->sv, new_size);
	if (ret) {
		snprintf(err, errlen, "growing volume %s: %s", name, strerror(-ret));
		goto out;
	}
	a.v = e->vol;
	a.size = new_size;
	reactor_call(e->vol->r, set_size_on_reactor, &a);
	log_info("volmgr", "volume %s resized to %llu bytes", name,
		 (unsigned long long)new_size);
out:
	pthread_mutex_unlock(&m->lock);
	return ret;
}

static void fill_info(const struct vm_entry *e, struct volume_info *vi)
{
	memset(vi, 0, sizeof(*vi));
	snprintf(vi->name, sizeof(vi->name), "%s", e->name);
	vi->state = e->state;
	vi->reactor = -1;
	snprintf(vi->error, sizeof(vi->error), "%s", e->error);
	if (e->state != VOLUME_ONLINE)
		return;
	vi->uuid = e->vol->sv->meta.uuid;
	vi->size = e->vol->sv->meta.size;
	vi->block_size = e->vol->sv->meta.block_size;
	vi->reactor = reactor_id(e->vol->r);
	vi->connections = (unsigned)__atomic_load_n(&e->vol->refs, __ATOMIC_ACQUIRE);
	vi->created_ns = e->vol->sv->meta.created_ns;
	vi->allocated = store_volume_allocated(e->vol->sv);
	vi->reads = e->vol->stats.reads;
	vi->writes = e->vol->stats.writes;
	vi->bytes_read = e->vol->stats.bytes_read;
	vi->bytes_written = e->vol->stats.bytes_written;
	vi->flushes = e->vol->stats.flushes;
	vi->errors = e->vol->stats.errors;
	if (e->rv) {
		vi->replicated = true;
		repl_vol_status_sync(e->rv, &vi->repl);
	}
}

int volmgr_get(struct volmgr *m, const char *name, struct volume_info *out,
	       char *err, size_t errlen)
{
	struct vm_entry *e;
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	e = find(m, name);
	if (e)
		fill_info(e, out);
	else {
		snprintf(err, errlen, "volume %s not found", name);
		ret = -ENOENT;
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int volmgr_list(struct volmgr *m, struct volume_info **out, size_t *n,
		char *err, size_t errlen)
{
	size_t cnt = 0, i = 0;
	struct volume_info *v;

	pthread_mutex_lock(&m->lock);
	for (struct vm_entry *e = m->entries; e; e = e->next)
		cnt++;
	v = calloc(cnt ? cnt : 1, sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (struct vm_entry *e = m->entries; e; e = e->next)
		fill_info(e, &v[i++]);
	pthread_mutex_unlock(&m->lock);
	*out = v;
	*n = cnt;
	return 0;
}

int volmgr_node_info(struct volmgr *m, struct node_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->node_id, sizeof(out->node_id), "%s", m->cfg.node_id ? m->cfg.node_id : "");
	snprintf(out->zone, sizeof(out->zone), "%s", m->cfg.zone ? m->cfg.zone : "");
	snprintf(out->store_path, sizeof(out->store_path), "%s", store_path(m->store));
	snprintf(out->version, sizeof(out->version), "%s", URBD_VERSION);
	pthread_mutex_lock(&m->lock);
	snprintf(out->nbd_listen, sizeof(out->nbd_listen), "%s", m->nbd_listen);
	snprintf(out->nbd_unix, sizeof(out->nbd_unix), "%s", m->nbd_unix);
	pthread_mutex_unlock(&m->lock);
	store_space(m->store, &out->free, &out->capacity);
	out->reactors = m->nr_reactors;
	out->uptime_ns = now_ns() - m->started_ns;
	return 0;
}

int volmgr_exports(struct volmgr *m, struct export_info **out, size_t *n)
{
	size_t cnt = 0, i = 0, per = 0;
	struct export_info *x;

	pthread_mutex_lock(&m->lock);
	per = (*m->nbd_listen ? 1 : 0) + (*m->nbd_unix ? 1 : 0);
	for (struct vm_entry *e = m->entries; e; e = e->next)
		cnt += e->state == VOLUME_ONLINE ? per : 0;
	x = calloc(cnt ? cnt : 1, sizeof(*x));
	if (!x) {
		pthread_mutex_unlock(&m->lock);
		return -ENOMEM;
	}
	for (struct vm_entry *e = m->entries; e; e = e->next) {
		unsigned conns;

		if (e->state != VOLUME_ONLINE)
			continue;
		conns = (unsigned)__atomic_load_n(&e->vol->refs, __ATOMIC_ACQUIRE);
		if (*m->nbd_listen) {
			snprintf(x[i].volume, sizeof(x[i].volume), "%s", e->name);
			snprintf(x[i].protocol, sizeof(x[i].protocol), "nbd");
			snprintf(x[i].address, sizeof(x[i].address), "nbd://%s/%s",
				 m->nbd_listen, e->name);
			x[i++].connections = conns;
		}
		if (*m->nbd_unix) {
			snprintf(x[i].volume, sizeof(x[i].volume), "%s", e->name);
			snprintf(x[i].protocol, sizeof(x[i].protocol), "nbd");
			snprintf(x[i].address, sizeof(x[i].address),
				 "nbd+unix:///%s?socket=%s", e->name, m->nbd_unix);
			x[i++].connections = conns;
		}
	}
	pthread_mutex_unlock(&m->lock);
	*out = x;
	*n = i;
	return 0;
}

void volmgr_shutdown(struct volmgr *m)
{
	pthread_mutex_lock(&m->lock);
	while (m->entries) {
		struct vm_entry *e = m->entries;

		wait_unpinned(m, e);
		unlink_entry(m, e);
		if (e->state == VOLUME_ONLINE)
			take_down(m, e->vol, e->rv);
		free(e);
	}
	pthread_mutex_unlock(&m->lock);
}

void volmgr_free(struct volmgr *m)
{
	if (!m)
		return;
	volmgr_shutdown(m);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->idle);
	pthread_mutex_destroy(&m->route_lock);
	pthread_mutex_destroy(&m->list_lock);
	free(m);
}

/* ---- the NBD frontend's view of the volumes ------------------------- */

static struct volume *nbd_get(void *ctx, const char *name)
{
	struct volmgr *m = ctx;
	struct vm_entry *e = NULL, *only = NULL;
	unsigned online = 0;
	struct volume *v = NULL;

	pthread_mutex_lock(&m->list_lock);
	for (struct vm_entry *it = m->entries; it; it = it->next)
		if (it->state == VOLUME_ONLINE) {
			online++;
			only = it;
		}
	/* the default export "" is the volume, when there is just one */
	e = name[0] ? find(m, name) : (online == 1 ? only : NULL);
	if (e && e->state == VOLUME_ONLINE && !e->vol->detaching &&
	    (!e->rv || repl_vol_is_primary(e->rv))) {
		v = e->vol;
		__atomic_add_fetch(&v->refs, 1, __ATOMIC_ACQ_REL);
	}
	pthread_mutex_unlock(&m->list_lock);
	return v;
}

static void nbd_put(void *ctx, struct volume *v)
{
	__atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL);
}

static int nbd_list(void *ctx, char ***names, size_t *n)
{
	struct volmgr *m = ctx;
	size_t cnt = 0, i = 0;
	char **v;

	pthread_mutex_lock(&m->list_lock);
	for (struct vm_entry *e = m->entries; e; e = e->next)
		cnt += e->state == VOLUME_ONLINE;
	v = calloc(cnt ? cnt : 1, sizeof(*v));
	for (struct vm_entry *e = m->entries; v && e; e = e->next)
		if (e->state == VOLUME_ONLINE)
			v[i++] = strdup(e->name);
	pthread_mutex_unlock(&m->list_lock);
	if (!v)
		return -ENOMEM;
	*names = v;
	*n = i;
	return 0;
}

const struct nbd_export_ops volmgr_nbd_ops = {
	.get = nbd_get,
	.put = nbd_put,
	.list = nbd_list,
};
