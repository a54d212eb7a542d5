/* store.c against a real directory (mkdtemp): locking, create/open/delete,
 * crash-safe superblock updates and the fallbacks when a slot is torn. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "store.h"
#include "util.h"

#define MIB (1ULL << 20)

struct fx {
	char tmp[256];
	char path[300];  /* <tmp>/store: does not exist before store_open */
	struct store *s;
	char err[512];
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	return remove(p);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *base = getenv("TMPDIR");

	if (!fx)
		return -1;
	snprintf(fx->tmp, sizeof(fx->tmp), "%s/urbd-test-store-XXXXXX",
		 base ? base : "/tmp");
	if (!mkdtemp(fx->tmp)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/store", fx->tmp);
	if (store_open(fx->path, &fx->s) != 0) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	store_close(fx->s);
	nftw(fx->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void vpath(struct fx *fx, char *out, size_t n, const char *vol,
		  const char *file)
{
	snprintf(out, n, "%s/volumes/%s%s%s", fx->path, vol, file ? "/" : "",
		 file ? file : "");
}

static off_t file_size(const char *p)
{
	struct stat st;

	if (stat(p, &st) < 0)
		return -1;
	return st.st_size;
}

static bool exists(const char *p)
{
	struct stat st;

	return lstat(p, &st) == 0;
}

static void create(struct fx *fx, const char *name, uint64_t size)
{
	int ret = store_create_volume(fx->s, name, size, fx->err, sizeof(fx->err));

	if (ret)
		fail_msg("create %s: %d %s", name, ret, fx->err);
}

static struct store_volume *open_vol(struct fx *fx, const char *name)
{
	struct store_volume *v = NULL;
	int ret = store_open_volume(fx->s, name, &v, fx->err, sizeof(fx->err));

	if (ret)
		fail_msg("open %s: %d %s", name, ret, fx->err);
	return v;
}

/* XOR one byte of the meta file at `off` */
static void flip_meta_byte(struct fx *fx, const char *vol, off_t off)
{
	char p[512];
	uint8_t b;
	int fd;

	vpath(fx, p, sizeof(p), vol, "meta");
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x10;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static uint64_t raw_slot_seq(struct fx *fx, const char *vol, int slot)
{
	char p[512];
	uint8_t b[8];
	int fd;

	vpath(fx, p, sizeof(p), vol, "meta");
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, 8, (off_t)slot * STORE_SB_SIZE + SB_OFF_SEQ), 8);
	close(fd);
	return get_le64(b);
}

/* ---- the store itself ----------------------------------------------- */

static void test_open_creates_dirs(void **state)
{
	struct fx *fx = *state;
	char p[400];
	struct stat st;

	assert_string_equal(store_path(fx->s), fx->path);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(p, sizeof(p), "%s/volumes", fx->path);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	snprintf(p, sizeof(p), "%s/store.lock", fx->path);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_second_open_is_busy(void **state)
{
	struct fx *fx = *state;
	struct store *s2 = NULL;

	assert_int_equal(store_open(fx->path, &s2), -EBUSY);
	assert_null(s2);
}

static void test_lock_released_on_close(void **state)
{
	struct fx *fx = *state;
	struct store *s2 = NULL;

	store_close(fx->s);
	fx->s = NULL;
	assert_int_equal(store_open(fx->path, &s2), 0);
	assert_non_null(s2);
	fx->s = s2;
}

static void test_open_fails_on_file(void **state)
{
	struct fx *fx = *state;
	struct store *s2 = NULL;
	char p[400];
	int fd;

	snprintf(p, sizeof(p), "%s/not-a-dir", fx->tmp);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(store_open(p, &s2), -ENOTDIR);
	snprintf(p, sizeof(p), "%s/missing-parent/store", fx->tmp);
	assert_int_equal(store_open(p, &s2), -ENOENT);
}

static void test_space(void **state)
{
	struct fx *fx = *state;
	uint64_t free_b = 0, total = 0;

	assert_int_equal(store_space(fx->s, &free_b, &total), 0);
	assert_true(total > 0);
	assert_true(free_b <= total);
}

/* ---- create / open -------------------------------------------------- */

static void test_create_volume_files(void **state)
{
	struct fx *fx = *state;
	struct store_meta m = { .size = 64 * MIB };
	char p[512];

	create(fx, "vol1", 64 * MIB);
	vpath(fx, p, sizeof(p), "vol1", NULL);
	assert_true(exists(p));
	vpath(fx, p, sizeof(p), "vol1", "data");
	assert_int_equal(file_size(p), 64 * MIB);
	store_meta_layout(&m);
	vpath(fx, p, sizeof(p), "vol1", "meta");
	assert_int_equal(file_size(p), m.bm_offset + URBD_MAX_PEERS * m.bm_len_per_peer);
	vpath(fx, p, sizeof(p), ".creating-vol1", NULL);
	assert_false(exists(p));
	/* slot A written with seq 2, slot B the same state at seq 1 */
	assert_int_equal(raw_slot_seq(fx, "vol1", 0), 2);
	assert_int_equal(raw_slot_seq(fx, "vol1", 1), 1);
}

static void test_create_duplicate(void **state)
{
	struct fx *fx = *state;

	create(fx, "dup", 4 * MIB);
	fx->err[0] = '\0';
	assert_int_equal(store_create_volume(fx->s, "dup", 4 * MIB, fx->err,
					     sizeof(fx->err)), -EEXIST);
	assert_non_null(strstr(fx->err, "dup"));
	assert_non_null(strstr(fx->err, "already exists"));
}

static void test_open_volume_reads_meta(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v;
	uint64_t t0 = wall_ns();

	create(fx, "vol2", 8 * MIB);
	v = open_vol(fx, "vol2");
	assert_string_equal(v->name, "vol2");
	assert_string_equal(v->meta.name, "vol2");
	assert_int_equal(v->meta.size, 8 * MIB);
	assert_int_equal(v->meta.seq, 2);
	assert_int_equal(v->meta.flags, STORE_SB_F_CLEAN);
	assert_int_equal(v->meta.block_size, 512);
	assert_int_equal(v->meta.bm_grain, STORE_BM_GRAIN_DEFAULT);
	assert_int_equal(v->meta.al_offset, STORE_AL_OFFSET);
	assert_false(urbd_uuid_is_null(&v->meta.uuid));
	assert_true(v->meta.created_ns > 0 && v->meta.created_ns <= t0 + 1000000000ULL);
	assert_int_equal(v->cur_slot, 0);
	assert_true(v->data_fd >= 0);
	assert_true(v->meta_fd >= 0);
	assert_true(is_pow2(v->dio_align));
	assert_true(v->dio_align <= 4096);
	if (!v->direct)
		assert_int_equal(v->dio_align, 1);
	store_close_volume(v);
}

static void test_volumes_get_distinct_uuids(void **state)
{
	struct fx *fx = *state;
	struct store_volume *a, *b;

	create(fx, "ua", 4 * MIB);
	create(fx, "ub", 4 * MIB);
	a = open_vol(fx, "ua");
	b = open_vol(fx, "ub");
	assert_memory_not_equal(a->meta.uuid.b, b->meta.uuid.b, 16);
	store_close_volume(a);
	store_close_volume(b);
}

static void test_open_missing_volume(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v = NULL;

	assert_int_equal(store_open_volume(fx->s, "nope", &v, fx->err,
					   sizeof(fx->err)), -ENOENT);
	assert_null(v);
	assert_non_null(strstr(fx->err, "nope"));
}

static void test_open_volume_without_meta(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v = NULL;
	char p[512];

	create(fx, "nometa", 4 * MIB);
	vpath(fx, p, sizeof(p), "nometa", "meta");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(store_open_volume(fx->s, "nometa", &v, fx->err,
					   sizeof(fx->err)), -EIO);
	assert_non_null(strstr(fx->err, "cannot open metadata"));
}

static void test_open_volume_short_data(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v = NULL;
	char p[512];

	create(fx, "short", 4 * MIB);
	vpath(fx, p, sizeof(p), "short", "data");
	assert_int_equal(truncate(p, 2 * MIB), 0);
	assert_int_equal(store_open_volume(fx->s, "short", &v, fx->err,
					   sizeof(fx->err)), -EIO);
	assert_non_null(strstr(fx->err, "data file is 2097152 bytes"));
}

static void test_open_volume_wrong_name(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v = NULL;
	char a[512], b[512];

	create(fx, "orig", 4 * MIB);
	vpath(fx, a, sizeof(a), "orig", NULL);
	vpath(fx, b, sizeof(b), "moved", NULL);
	assert_int_equal(rename(a, b), 0);
	assert_int_equal(store_open_volume(fx->s, "moved", &v, fx->err,
					   sizeof(fx->err)), -EIO);
	assert_non_null(strstr(fx->err, "names volume orig"));
}

/* ---- metadata updates ----------------------------------------------- */

static void test_write_meta_alternates(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v;
	struct store_meta m;

	create(fx, "alt", 4 * MIB);
	v = open_vol(fx, "alt");
	m = v->meta;
	m.flags = STORE_SB_F_CLEAN;
	assert_int_equal(store_write_meta(v, &m), 0);
	assert_int_equal(v->cur_slot, 1);
	assert_int_equal(v->meta.seq, 3);
	assert_int_equal(v->meta.flags, STORE_SB_F_CLEAN);
	assert_int_equal(raw_slot_seq(fx, "alt", 0), 2);
	assert_int_equal(raw_slot_seq(fx, "alt", 1), 3);

	m.gen.current = 42;
	assert_int_equal(store_write_meta(v, &m), 0);
	assert_int_equal(v->cur_slot, 0);
	assert_int_equal(v->meta.seq, 4);
	assert_int_equal(raw_slot_seq(fx, "alt", 0), 4);
	assert_int_equal(raw_slot_seq(fx, "alt", 1), 3);

	/* the caller's seq is ignored: always the current one + 1 */
	m.seq = 1000;
	assert_int_equal(store_write_meta(v, &m), 0);
	assert_int_equal(v->meta.seq, 5);
	store_close_volume(v);

	v = open_vol(fx, "alt");
	assert_int_equal(v->meta.seq, 5);
	assert_int_equal(v->cur_slot, 1);
	assert_int_equal(v->meta.gen.current, 42);
	assert_int_equal(v->meta.flags, STORE_SB_F_CLEAN);
	store_close_volume(v);
}

static void test_torn_newest_falls_back(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v;
	struct store_meta m;

	create(fx, "torn", 4 * MIB);
	v = open_vol(fx, "torn");
	m = v->meta;
	m.gen.current = 7;
	assert_int_equal(store_write_meta(v, &m), 0); /* seq 3 in slot B */
	store_close_volume(v);

	flip_meta_byte(fx, "torn", STORE_SB_SIZE + 200);
	v = open_vol(fx, "torn");
	assert_int_equal(v->cur_slot, 0);
	assert_int_equal(v->meta.seq, 2);
	assert_int_equal(v->meta.gen.current, 0);

	/* the next update overwrites the torn slot, not the good one */
	m = v->meta;
	assert_int_equal(store_write_meta(v, &m), 0);
	assert_int_equal(v->cur_slot, 1);
	assert_int_equal(v->meta.seq, 3);
	assert_int_equal(raw_slot_seq(fx, "torn", 0), 2);
	store_close_volume(v);
	v = open_vol(fx, "torn");
	assert_int_equal(v->meta.seq, 3);
	store_close_volume(v);
}

static void test_torn_slot_a_falls_back_to_b(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v;
	struct store_meta m;

	create(fx, "tornb", 4 * MIB);
	v = open_vol(fx, "tornb");
	m = v->meta;
	assert_int_equal(store_write_meta(v, &m), 0); /* B = 3 */
	assert_int_equal(store_write_meta(v, &m), 0); /* A = 4 */
	store_close_volume(v);
	flip_meta_byte(fx, "tornb", 17);
	v = open_vol(fx, "tornb");
	assert_int_equal(v->cur_slot, 1);
	assert_int_equal(v->meta.seq, 3);
	store_close_volume(v);
}

static void test_both_slots_bad(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v = NULL;
	struct store_meta m;

	create(fx, "bad2", 4 * MIB);
	v = open_vol(fx, "bad2");
	m = v->meta;
	assert_int_equal(store_write_meta(v, &m), 0);
	store_close_volume(v);
	v = NULL;
	flip_meta_byte(fx, "bad2", SB_OFF_MAGIC);            /* A: magic */
	flip_meta_byte(fx, "bad2", STORE_SB_SIZE + SB_OFF_SIZE); /* B: CRC */
	assert_int_equal(store_open_volume(fx->s, "bad2", &v, fx->err,
					   sizeof(fx->err)), -EIO);
	assert_null(v);
	assert_non_null(strstr(fx->err, "bad2"));
	assert_non_null(strstr(fx->err, "superblock A: bad magic"));
	assert_non_null(strstr(fx->err, "superblock B: checksum mismatch"));
}

/* a fresh volume already has two copies: a torn A falls back to B */
static void test_fresh_volume_torn_a_falls_back(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v = NULL;

	create(fx, "fresh", 4 * MIB);
	flip_meta_byte(fx, "fresh", 300);
	v = open_vol(fx, "fresh");
	assert_int_equal(v->cur_slot, 1);
	assert_int_equal(v->meta.seq, 1);
	assert_int_equal(v->meta.size, 4 * MIB);
	store_close_volume(v);
}

static void test_truncated_meta_file(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v = NULL;
	char p[512];

	create(fx, "trunc", 4 * MIB);
	vpath(fx, p, sizeof(p), "trunc", "meta");
	assert_int_equal(truncate(p, 100), 0);
	assert_int_equal(store_open_volume(fx->s, "trunc", &v, fx->err,
					   sizeof(fx->err)), -EIO);
	assert_non_null(strstr(fx->err, "superblock A: truncated superblock"));
	assert_non_null(strstr(fx->err, "superblock B: truncated superblock"));
}

/* ---- grow / delete / list ------------------------------------------- */

/* the clean-shutdown flag: set at create, cleared and set with one
 * metadata write each, no write when it already has the wanted value */
static void test_clean_flag(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v;
	uint64_t seq;

	create(fx, "clean", 4 * MIB);
	v = open_vol(fx, "clean");
	assert_true(v->meta.flags & STORE_SB_F_CLEAN);
	seq = v->meta.seq;
	assert_int_equal(store_set_clean(v, true), 0);
	assert_int_equal(v->meta.seq, seq);
	assert_int_equal(store_set_clean(v, false), 0);
	assert_false(v->meta.flags & STORE_SB_F_CLEAN);
	assert_int_equal(v->meta.seq, seq + 1);
	store_close_volume(v);

	/* as after a crash: the flag stays cleared on disk */
	v = open_vol(fx, "clean");
	assert_false(v->meta.flags & STORE_SB_F_CLEAN);
	assert_int_equal(store_set_clean(v, true), 0);
	store_close_volume(v);
	v = open_vol(fx, "clean");
	assert_true(v->meta.flags & STORE_SB_F_CLEAN);
	assert_int_equal(v->meta.seq, seq + 2);
	store_close_volume(v);
}

static void test_grow_volume(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v;
	struct store_meta m = { .size = 256 * MIB };
	char p[512];

	create(fx, "grow", 4 * MIB);
	v = open_vol(fx, "grow");
	assert_int_equal(store_grow_volume(v, 256 * MIB), 0);
	assert_int_equal(v->meta.size, 256 * MIB);
	assert_int_equal(v->meta.seq, 3);
	store_meta_layout(&m);
	assert_int_equal(v->meta.bm_len_per_peer, m.bm_len_per_peer);
	vpath(fx, p, sizeof(p), "grow", "data");
	assert_int_equal(file_size(p), 256 * MIB);
	vpath(fx, p, sizeof(p), "grow", "meta");
	assert_int_equal(file_size(p), m.bm_offset + URBD_MAX_PEERS * m.bm_len_per_peer);
	store_close_volume(v);
	v = open_vol(fx, "grow");
	assert_int_equal(v->meta.size, 256 * MIB);
	store_close_volume(v);
}

static void test_delete_volume(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v = NULL;
	char p[512];

	create(fx, "del", 4 * MIB);
	assert_int_equal(store_delete_volume(fx->s, "del"), 0);
	vpath(fx, p, sizeof(p), "del", NULL);
	assert_false(exists(p));
	vpath(fx, p, sizeof(p), ".deleting-del", NULL);
	assert_false(exists(p));
	assert_int_equal(store_open_volume(fx->s, "del", &v, fx->err,
					   sizeof(fx->err)), -ENOENT);
	/* the name is free again */
	create(fx, "del", 4 * MIB);
}

static void test_delete_missing(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(store_delete_volume(fx->s, "ghost"), -ENOENT);
}

static void make_leftover(struct fx *fx, const char *dir)
{
	char p[512];
	int fd;

	vpath(fx, p, sizeof(p), dir, NULL);
	assert_int_equal(mkdir(p, 0700), 0);
	vpath(fx, p, sizeof(p), dir, "data");
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	vpath(fx, p, sizeof(p), dir, "meta");
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
}

static void test_leftovers_cleaned_at_open(void **state)
{
	struct fx *fx = *state;
	char p[512];
	int fd;

	create(fx, "keep", 4 * MIB);
	make_leftover(fx, ".creating-x");
	make_leftover(fx, ".deleting-y");
	vpath(fx, p, sizeof(p), ".stray-file", NULL);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);

	store_close(fx->s);
	fx->s = NULL;
	assert_int_equal(store_open(fx->path, &fx->s), 0);
	vpath(fx, p, sizeof(p), ".creating-x", NULL);
	assert_false(exists(p));
	vpath(fx, p, sizeof(p), ".deleting-y", NULL);
	assert_false(exists(p));
	vpath(fx, p, sizeof(p), ".stray-file", NULL);
	assert_false(exists(p));
	vpath(fx, p, sizeof(p), "keep", "data");
	assert_true(exists(p));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_list(void **state)
{
	struct fx *fx = *state;
	char **names = NULL;
	size_t n = 99;

	assert_int_equal(store_list(fx->s, &names, &n), 0);
	assert_int_equal(n, 0);
	store_list_free(names, n);

	create(fx, "b-vol", 4 * MIB);
	create(fx, "a-vol", 4 * MIB);
	create(fx, "c.vol", 4 * MIB);
	make_leftover(fx, ".creating-d");
	assert_int_equal(store_list(fx->s, &names, &n), 0);
	assert_int_equal(n, 3);
	qsort(names, n, sizeof(*names), cmp_str);
	assert_string_equal(names[0], "a-vol");
	assert_string_equal(names[1], "b-vol");
	assert_string_equal(names[2], "c.vol");
	store_list_free(names, n);

	/* listing twice gives the same answer (the directory is rewound) */
	assert_int_equal(store_list(fx->s, &names, &n), 0);
	assert_int_equal(n, 3);
	store_list_free(names, n);

	assert_int_equal(store_delete_volume(fx->s, "b-vol"), 0);
	assert_int_equal(store_list(fx->s, &names, &n), 0);
	assert_int_equal(n, 2);
	store_list_free(names, n);
}

static void test_list_many(void **state)
{
	struct fx *fx = *state;
	char **names = NULL, name[16];
	size_t n = 0;

	/* more than the initial array capacity */
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "v%02d", i);
		create(fx, name, 4096);
	}
	assert_int_equal(store_list(fx->s, &names, &n), 0);
	assert_int_equal(n, 20);
	qsort(names, n, sizeof(*names), cmp_str);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "v%02d", i);
		assert_string_equal(names[i], name);
	}
	store_list_free(names, n);
}

static void test_allocated_is_sparse(void **state)
{
	struct fx *fx = *state;
	struct store_volume *v;

	create(fx, "sparse", 64 * MIB);
	v = open_vol(fx, "sparse");
	assert_true(store_volume_allocated(v) < 64 * MIB);
	store_close_volume(v);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_creates_dirs),
		T(test_second_open_is_busy),
		T(test_lock_released_on_close),
		T(test_open_fails_on_file),
		T(test_space),
		T(test_create_volume_files),
		T(test_create_duplicate),
		T(test_open_volume_reads_meta),
		T(test_volumes_get_distinct_uuids),
		T(test_open_missing_volume),
		T(test_open_volume_without_meta),
		T(test_open_volume_short_data),
		T(test_open_volume_wrong_name),
		T(test_write_meta_alternates),
		T(test_torn_newest_falls_back),
		T(test_torn_slot_a_falls_back_to_b),
		T(test_both_slots_bad),
		T(test_fresh_volume_torn_a_falls_back),
		T(test_truncated_meta_file),
		T(test_clean_flag),
		T(test_grow_volume),
		T(test_delete_volume),
		T(test_delete_missing),
		T(test_leftovers_cleaned_at_open),
		T(test_list),
		T(test_list_many),
		T(test_allocated_is_sparse),
	};
#undef T

	log_level = -1; /* the error paths log on purpose; keep the output readable */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
