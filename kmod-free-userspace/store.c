#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct store {
	char *path;
	int dirfd;   /* <store> */
	int voldir;  /* <store>/volumes */
	int lockfd;
};

const char *store_path(const struct store *s) { return s->path; }

static int fsync_dir(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

/* The files a volume directory may hold: its data, its metadata, and the
 * replica-set file of a replicated volume. Nothing else is ever there. */
static const char *const volume_files[] = { "data", "meta", "replication",
					    "replication.tmp" };

static void unlink_volume_files(int dfd)
{
	for (size_t i = 0; i < ARRAY_SIZE(volume_files); i++)
		unlinkat(dfd, volume_files[i], 0);
}

/* leftovers of a crash in the middle of create or delete */
static DIR *open_voldir(struct store *s)
{
	int fd = dup(s->voldir);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d && fd >= 0)
		close(fd);
	if (d)
		rewinddir(d);
	return d;
}

static void clean_leftovers(struct store *s)
{
	DIR *d = open_voldir(s);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] != '.' || strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0)
			continue;
		log_warn("store", "removing leftover %s/volumes/%s from an "
			 "interrupted create/delete", s->path, e->d_name);
		unlinkat(s->voldir, e->d_name, 0);
		{
			int fd = openat(s->voldir, e->d_name, O_DIRECTORY);

			if (fd >= 0) {
				unlink_volume_files(fd);
				close(fd);
			}
		}
		unlinkat(s->voldir, e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

int store_open(const char *path, struct store **out)
{
	struct store *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->dirfd = s->voldir = s->lockfd = -1;
	s->path = strdup(path);
	if (!s->path) {
		ret = -ENOMEM;
		goto fail;
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		log_err("store", "cannot create store directory %s: %m", path);
		goto fail;
	}
	s->dirfd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (s->dirfd < 0) {
		ret = -errno;
		log_err("store", "cannot open store %s: %m", path);
		goto fail;
	}
	s->lockfd = openat(s->dirfd, "store.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		log_err("store", "store %s is in use by another urbd (lock %s/store.lock): %m",
			path, path);
		goto fail;
	}
	if (mkdirat(s->dirfd, "volumes", 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		goto fail;
	}
	s->voldir = openat(s->dirfd, "volumes", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (s->voldir < 0) {
		ret = -errno;
		goto fail;
	}
	clean_leftovers(s);
	*out = s;
	return 0;
fail:
	store_close(s);
	return ret;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->voldir >= 0)
		close(s->voldir);
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->path);
	free(s);
}

int store_space(struct store *s, uint64_t *free_bytes, uint64_t *total)
{
	struct statvfs st;

	if (fstatvfs(s->dirfd, &st) < 0)
		return -errno;
	*free_bytes = (uint64_t)st.f_bavail * st.f_frsize;
	*total = (uint64_t)st.f_blocks * st.f_frsize;
	return 0;
}

static int write_full(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int build_volume_dir(struct store *s, const char *tmp,
			    const struct store_meta *m, const char *extra_name,
			    const char *extra_text)
{
	uint8_t sb[STORE_SB_SIZE];
	int dfd, fd, ret;

	if (mkdirat(s->voldir, tmp, 0700) < 0)
		return -errno;
	dfd = openat(s->voldir, tmp, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fd = openat(dfd, "data", O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)m->size) < 0 || fsync(fd) < 0) {
		ret = -errno;
		goto out;
	}
	close(fd);
	fd = openat(dfd, "meta", O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	/* slot A holds seq m->seq; slot B the same state one seq older, so a
	 * volume never depends on a single copy of its superblock */
	store_meta_encode(m, sb);
	ret = write_full(fd, sb, sizeof(sb), 0);
	if (!ret) {
		struct store_meta older = *m;

		older.seq = m->seq - 1;
		store_meta_encode(&older, sb);
		ret = write_full(fd, sb, sizeof(sb), STORE_SB_SIZE);
	}
	if (!ret && ftruncate(fd, (off_t)(m->bm_offset +
					 URBD_MAX_PEERS * m->bm_len_per_peer)) < 0)
		ret = -errno;
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (!ret && extra_name) {
		close(fd);
		fd = openat(dfd, extra_name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (fd < 0)
			ret = -errno;
		else if ((ret = write_full(fd, extra_text, strlen(extra_text), 0)) == 0 &&
			 fsync(fd) < 0)
			ret = -errno;
	}
	if (!ret)
		ret = fsync_dir(dfd);
out:
	if (fd >= 0)
		close(fd);
	close(dfd);
	return ret;
}

int store_create_volume(struct store *s, const char *name, uint64_t size,
			char *err, size_t errlen)
{
	return store_create_volume_ex(s, name, size, NULL, NULL, NULL, err, errlen);
}

int store_volume_dir(const struct store *s, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/volumes/%s", s->path, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int store_create_volume_ex(struct store *s, const char *name, uint64_t size,
			   const struct store_create_opts *o, const char *extra_name,
			   const char *extra_text, char *err, size_t errlen)
{
	struct store_meta m = { 0 };
	char tmp[96];
	struct stat st;
	int ret;

	/* the name becomes a directory name: never trust callers with it */
	if (!urbd_name_valid(name) || size == 0 || size % STORE_BLOCK_SIZE) {
		snprintf(err, errlen, "invalid volume name or size");
		return -EINVAL;
	}
	if (fstatat(s->voldir, name, &st, 0) == 0) {
		snprintf(err, errlen, "volume %s already exists", name);
		return -EEXIST;
	}
	m.seq = 2;
	m.flags = STORE_SB_F_CLEAN; /* nothing written yet: nothing to recover */
	ret = 0;
	if (o && !urbd_uuid_is_null(&o->uuid))
		m.uuid = o->uuid;
	else
		ret = urbd_uuid_generate(&m.uuid);
	if (o) {
		m.gen = o->gen;
		m.disk_state = o->disk_state;
		m.bm_grain = o->bm_grain;
	}
	if (ret) {
		snprintf(err, errlen, "cannot generate a UUID");
		return ret;
	}
	snprintf(m.name, sizeof(m.name), "%s", name);
	m.size = size;
	m.block_size = 512;
	m.created_ns = wall_ns();
	store_meta_layout(&m);

	snprintf(tmp, sizeof(tmp), ".creating-%s", name);
	ret = build_volume_dir(s, tmp, &m, extra_name, extra_text);
	if (!ret && renameat(s->voldir, tmp, s->voldir, name) < 0)
		ret = -errno;
	if (!ret)
		ret = fsync_dir(s->voldir);
	if (ret) {
		snprintf(err, errlen, "cannot create volume %s in %s: %s", name,
			 s->path, strerror(-ret));
		log_err("store", "%s", err);
		int dfd = openat(s->voldir, tmp, O_DIRECTORY | O_RDONLY);

		if (dfd >= 0) {
			unlink_volume_files(dfd);
			if (extra_name)
				unlinkat(dfd, extra_name, 0);
			close(dfd);
		}
		unlinkat(s->voldir, tmp, AT_REMOVEDIR);
	}
	return ret;
}

/* The DIO alignment the filesystem asks for (statx STATX_DIOALIGN, Linux
 * 6.1+). glibc 2.36's struct statx predates the field, so read it from the
 * kernel's layout: stx_dio_offset_align is the u32 at byte 156. */
static uint32_t dio_alignment(int fd)
{
	uint8_t buf[256] = { 0 };
	uint32_t mask, align;

	if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, 0x2000u /* DIOALIGN */,
		    buf) < 0)
		return 4096;
	memcpy(&mask, buf, 4);
	memcpy(&align, buf + 156, 4);
	if (!(mask & 0x2000u) || !align || !is_pow2(align) || align > 4096)
		return 4096;
	return align;
}

static int read_slots(struct store_volume *v, char *err, size_t errlen)
{
	uint8_t a[STORE_SB_SIZE], b[STORE_SB_SIZE];
	enum store_meta_err why_a, why_b;
	ssize_t na, nb;

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	na = pread(v->meta_fd, a, sizeof(a), 0);
	nb = pread(v->meta_fd, b, sizeof(b), STORE_SB_SIZE);
	if (na < 0 || nb < 0)
		return -errno;
	v->cur_slot = store_meta_pick(a, b, sizeof(a), &v->meta, &why_a, &why_b);
	v->opened_clean = v->cur_slot >= 0 && (v->meta.flags & STORE_SB_F_CLEAN);
	/* the slots were zero-filled above: say "truncated" when they were */
	if (why_a != STORE_META_OK && na < SB_OFF_CRC + 4)
		why_a = STORE_META_SHORT;
	if (why_b != STORE_META_OK && nb < SB_OFF_CRC + 4)
		why_b = STORE_META_SHORT;
	if (v->cur_slot < 0) {
		snprintf(err, errlen, "metadata of volume %s is unusable: "
			 "superblock A: %s; superblock B: %s", v->name,
			 store_meta_err_name(why_a), store_meta_err_name(why_b));
		return -EIO;
	}
	if (why_a != STORE_META_OK && why_a != STORE_META_ZERO)
		log_warn("store", "volume %s: superblock A: %s; using B (seq %llu)",
			 v->name, store_meta_err_name(why_a),
			 (unsigned long long)v->meta.seq);
	if (why_b != STORE_META_OK && why_b != STORE_META_ZERO)
		log_warn("store", "volume %s: superblock B: %s; using A (seq %llu)",
			 v->name, store_meta_err_name(why_b),
			 (unsigned long long)v->meta.seq);
	if (strcmp(v->meta.name, v->name) != 0) {
		snprintf(err, errlen, "metadata of volume %s names volume %s",
			 v->name, v->meta.name);
		return -EIO;
	}
	return 0;
}

int store_open_volume(struct store *s, const char *name,
		      struct store_volume **out, char *err, size_t errlen)
{
	struct store_volume *v = calloc(1, sizeof(*v));
	struct stat st;
	int dfd = -1, ret;

	if (!v)
		return -ENOMEM;
	v->data_fd = v->meta_fd = -1;
	snprintf(v->name, sizeof(v->name), "%s", name);
	dfd = openat(s->voldir, name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dfd < 0) {
		ret = -errno;
		snprintf(err, errlen, "volume %s: %s", name, strerror(errno));
		goto fail;
	}
	v->meta_fd = openat(dfd, "meta", O_RDWR | O_CLOEXEC);
	if (v->meta_fd < 0) {
		ret = -EIO;
		snprintf(err, errlen, "volume %s: cannot open metadata: %s", name,
			 strerror(errno));
		goto fail;
	}
	ret = read_slots(v, err, errlen);
	if (ret)
		goto fail;
	v->direct = true;
	v->data_fd = openat(dfd, "data", O_RDWR | O_DIRECT | O_CLOEXEC);
	if (v->data_fd < 0 && errno == EINVAL) {
		/* e.g. a filesystem without O_DIRECT: still correct, since
		 * flush and FUA map to fdatasync/RWF_DSYNC, just cached */
		log_warn("store", "volume %s: O_DIRECT refused by the store's "
			 "filesystem; using buffered I/O", name);
		v->direct = false;
		v->data_fd = openat(dfd, "data", O_RDWR | O_CLOEXEC);
	}
	if (v->data_fd < 0 || fstat(v->data_fd, &st) < 0) {
		ret = -EIO;
		snprintf(err, errlen, "volume %s: cannot open data file: %s",
			 name, strerror(errno));
		goto fail;
	}
	if ((uint64_t)st.st_size < v->meta.size) {
		ret = -EIO;
		snprintf(err, errlen, "volume %s: data file is %lld bytes, "
			 "metadata says %llu", name, (long long)st.st_size,
			 (unsigned long long)v->meta.size);
		goto fail;
	}
	v->dio_align = v->direct ? dio_alignment(v->data_fd) : 1;
	close(dfd);
	*out = v;
	return 0;
fail:
	if (dfd >= 0)
		close(dfd);
	store_close_volume(v);
	return ret;
}

void store_close_volume(struct store_volume *v)
{
	if (!v)
		return;
	if (v->data_fd >= 0)
		close(v->data_fd);
	if (v->meta_fd >= 0)
		close(v->meta_fd);
	free(v);
}

int store_write_meta(struct store_volume *v, const struct store_meta *m)
{
	uint8_t sb[STORE_SB_SIZE];
	struct store_meta next = *m;
	int slot = v->cur_slot ^ 1, ret;

	next.seq = v->meta.seq + 1;
	store_meta_encode(&next, sb);
	ret = write_full(v->meta_fd, sb, sizeof(sb), (off_t)slot * STORE_SB_SIZE);
	if (!ret && fdatasync(v->meta_fd) < 0)
		ret = -errno;
	if (ret) {
		log_err("store", "volume %s: metadata write failed: %s", v->name,
			strerror(-ret));
		return ret;
	}
	v->meta = next;
	v->cur_slot = slot;
	return 0;
}

int store_grow_volume(struct store_volume *v, uint64_t new_size)
{
	struct store_meta m = v->meta;

	if (ftruncate(v->data_fd, (off_t)new_size) < 0 || fdatasync(v->data_fd) < 0)
		return -errno;
	m.size = new_size;
	store_meta_layout(&m);
	if (ftruncate(v->meta_fd, (off_t)(m.bm_offset +
					  URBD_MAX_PEERS * m.bm_len_per_peer)) < 0)
		return -errno;
	return store_write_meta(v, &m);
}

int store_delete_volume(struct store *s, const char *name)
{
	char tmp[96];
	int dfd;

	snprintf(tmp, sizeof(tmp), ".deleting-%s", name);
	/* rename first: after a crash the leftover is cleaned, never reopened */
	if (renameat(s->voldir, name, s->voldir, tmp) < 0)
		return -errno;
	dfd = openat(s->voldir, tmp, O_DIRECTORY | O_RDONLY);
	if (dfd >= 0) {
		unlink_volume_files(dfd);
		close(dfd);
	}
	if (unlinkat(s->voldir, tmp, AT_REMOVEDIR) < 0)
		return -errno;
	return fsync_dir(s->voldir);
}

int store_list(struct store *s, char ***names, size_t *n)
{
	DIR *d = open_voldir(s);
	struct dirent *e;
	char **v = NULL;
	size_t cnt = 0, cap = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (cnt == cap) {
			char **nv = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));

			if (!nv)
				goto nomem;
			v = nv;
		}
		if (!(v[cnt] = strdup(e->d_name)))
			goto nomem;
		cnt++;
	}
	closedir(d);
	*names = v;
	*n = cnt;
	return 0;
nomem:
	closedir(d);
	store_list_free(v, cnt);
	return -ENOMEM;
}

void store_list_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

uint64_t store_volume_allocated(const struct store_volume *v)
{
	struct stat st;

	if (fstat(v->data_fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

int store_set_clean(struct store_volume *v, bool clean)
{
	struct store_meta m = v->meta;

	if (!!(m.flags & STORE_SB_F_CLEAN) == clean)
		return 0;
	m.flags = clean ? (m.flags | STORE_SB_F_CLEAN) : (m.flags & ~STORE_SB_F_CLEAN);
	return store_write_meta(v, &m);
}
