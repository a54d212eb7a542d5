#include "iobuf.h"

#include <errno.h>
#include <stdlib.h>

#define NCLASS 14 /* 4 KiB << 0 .. 4 KiB << 13 = 32 MiB */
/* Keep few large buffers: the cache exists for the small, hot sizes and
 * must not pin tens of MiB per reactor after one burst of big writes. */
static const unsigned cache_cap[NCLASS] = {
	256, 128, 64, 64, 32, 16, 8, 8, 4, 2, 1, 1, 1, 1,
};

struct freebuf {
	struct freebuf *next;
};

static __thread struct freebuf *freelist[NCLASS];
static __thread unsigned cached[NCLASS];

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
		cached[c]--;
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
	if (cached[c] >= cache_cap[c]) {
		free(buf);
		return;
	}
	((struct freebuf *)buf)->next = freelist[c];
	freelist[c] = buf;
	cached[c]++;
}

void iobuf_trim(void)
{
	for (int c = 0; c < NCLASS; c++) {
		while (freelist[c]) {
			struct freebuf *f = freelist[c];

			freelist[c] = f->next;
			free(f);
		}
		cached[c] = 0;
	}
}
