/* The replica store: a directory holding one subdirectory per volume,
 *   <store>/volumes/<name>/data   the volume's bytes (O_DIRECT, sparse)
 *   <store>/volumes/<name>/meta   superblocks + AL + bitmaps (store_format.h)
 * plus <store>/store.lock (flock: one daemon per store).
 * Creation builds the directory under a temporary name and renames it into
 * place, so a crash never leaves a half-created volume that looks real.
 * These calls are control-plane (blocking); the data path uses the fds. */
#ifndef URBD_STORE_H
#define URBD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store_format.h"

struct store;

struct store_volume {
	char name[64];
	int data_fd;          /* O_DIRECT unless the filesystem refuses it */
	int meta_fd;
	struct store_meta meta;
	int cur_slot;         /* slot holding `meta` */
	uint32_t dio_align;   /* offset/length alignment the data fd needs */
	bool direct;          /* data_fd is O_DIRECT */
	bool opened_clean;    /* STORE_SB_F_CLEAN was set when it was opened */
};

/* creates the directory if missing; 0 or -errno (-EBUSY: another daemon) */
int store_open(const char *path, struct store **out);
void store_close(struct store *s);
const char *store_path(const struct store *s);

int store_create_volume(struct store *s, const char *name, uint64_t size,
			char *err, size_t errlen);
/* What a replica of a replicated volume shares with its peers: the
 * volume's identity and its starting generations. */
struct store_create_opts {
	struct urbd_uuid uuid;        /* null: a fresh one */
	struct store_generations gen;
	uint32_t disk_state;          /* replication: e.g. inconsistent for a joining member */
	uint32_t bm_grain;            /* replication: bytes per dirty-bitmap bit, a power
				       * of two >= 4096 (0: STORE_BM_GRAIN_DEFAULT) */
};
/* store_create_volume with a given identity, and one more file written in
 * the volume's directory before it appears (NULL: none). */
int store_create_volume_ex(struct store *s, const char *name, uint64_t size,
			   const struct store_create_opts *o, const char *extra_name,
			   const char *extra_text, char *err, size_t errlen);
/* "<store>/volumes/<name>" */
int store_volume_dir(const struct store *s, const char *name, char *buf, size_t len);
/* -EIO with the reason in err when the metadata is unusable */
int store_open_volume(struct store *s, const char *name,
		      struct store_volume **out, char *err, size_t errlen);
void store_close_volume(struct store_volume *v);
int store_delete_volume(struct store *s, const char *name);
/* names of every volume directory, malloc'ed array of malloc'ed strings */
int store_list(struct store *s, char ***names, size_t *n);
void store_list_free(char **names, size_t n);

/* writes m into the other slot with seq+1 and makes it durable */
int store_write_meta(struct store_volume *v, const struct store_meta *m);
/* Records whether the volume is shut down cleanly: cleared when it comes
 * online, set when it goes offline in order, so a crash is known at the
 * next start. 0 or -errno. */
int store_set_clean(struct store_volume *v, bool clean);
/* grows the data file and records the new size */
int store_grow_volume(struct store_volume *v, uint64_t new_size);

/* bytes free for urbd on the store filesystem, and its total size */
int store_space(struct store *s, uint64_t *free_bytes, uint64_t *total);
/* bytes the data file occupies */
uint64_t store_volume_allocated(const struct store_volume *v);

#endif
