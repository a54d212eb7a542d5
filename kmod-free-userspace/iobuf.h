/* Aligned I/O buffers for O_DIRECT, recycled per thread by power-of-two
 * size class so the data path does not hit malloc for every request. */
#ifndef URBD_IOBUF_H
#define URBD_IOBUF_H

#include <stddef.h>

#define IOBUF_ALIGN 4096
#define IOBUF_MAX (32u << 20)

/* NULL with errno = ENOMEM, or len > IOBUF_MAX (EINVAL) */
void *iobuf_get(size_t len);
/* len must be the length passed to iobuf_get */
void iobuf_put(void *buf, size_t len);
/* frees this thread's cached buffers */
void iobuf_trim(void);

#endif
