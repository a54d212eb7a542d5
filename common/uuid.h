#ifndef URBD_UUID_H
#define URBD_UUID_H

#include <stdbool.h>
#include <stdint.h>

struct urbd_uuid {
	uint8_t b[16];
};

#define URBD_UUID_STR_LEN 37 /* 36 chars + NUL */

/* random (version 4) UUID from OpenSSL's CSPRNG; 0 or -EIO */
int urbd_uuid_generate(struct urbd_uuid *u);
void urbd_uuid_format(const struct urbd_uuid *u, char out[URBD_UUID_STR_LEN]);
int urbd_uuid_parse(const char *s, struct urbd_uuid *u);
bool urbd_uuid_is_null(const struct urbd_uuid *u);

#endif
