#include "iobuf.h"

#include <errno.h>
#include <stdlib.h>

#define NCLASS 14 /* 4 KiB << 0 .. 4 KiB << 13 = 32 MiB */
/* Each reactor keeps up to this many bytes of freed buffers. A queue of
 * large writes (QD8 x 1 MiB) must recycle its buffers: a fresh 1 MiB
 * buffer costs page faults and zeroing on first touch, which profiling
 * showed at ~15% of the 1 MiB write path when only 4 were kept. The
 * budget still bounds what one burst of huge requests can pin. */
#define CACHE_BYTES (64u << 20)

struct freebuf {
	struct freebuf *next;
};

static __thread struct freebuf *freelist[NCLASS];
static __thread size_t cached_bytes;

static int size_class(size_t len)
{
	size_t sz = IOBUF_ALIGN;
	int c = 0;

	while (sz < len) {
		sz <<= 1;
		c++;
	}
	return c;
}

void *iobuf_get(size_t len)
{
	int c;
	void *p;

	if (len > IOBUF_MAX) {
		errno = EINVAL;
		return NULL;
	}
	c = size_class(len ? len : 1);
	if (freelist[c]) {
		p = freelist[c];
		freelist[c] = freelist[c]->next;
		cached_bytes -= (size_t)IOBUF_ALIGN << c;
		return p;
	}
	if (posix_memalign(&p, IOBUF_ALIGN, (size_t)IOBUF_ALIGN << c)) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void iobuf_put(void *buf, size_t len)
{
	int c;

	if (!buf)
		return;
	c = size_class(len ? len : 1);
	if (cached_bytes + ((size_t)IOBUF_ALIGN << c) > CACHE_BYTES) {
		free(buf);
		return;
	}
	((struct freebuf *)buf)->next = freelist[c];
	freelist[c] = buf;
	cached_bytes += (size_t)IOBUF_ALIGN << c;
}

void iobuf_trim(void)
{
	for (int c = 0; c < NCLASS; c++) {
		while (freelist[c]) {
			struct freebuf *f = freelist[c];

			freelist[c] = f->next;
			free(f);
		}
	}
	cached_bytes = 0;
}
