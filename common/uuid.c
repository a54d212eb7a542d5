#include "uuid.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

int urbd_uuid_generate(struct urbd_uuid *u)
{
	if (RAND_bytes(u->b, sizeof(u->b)) != 1)
		return -EIO;
	u->b[6] = (uint8_t)((u->b[6] & 0x0f) | 0x40); /* version 4 */
	u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	return 0;
}

void urbd_uuid_format(const struct urbd_uuid *u, char out[URBD_UUID_STR_LEN])
{
	char *p = out;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		p += sprintf(p, "%02x", u->b[i]);
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int urbd_uuid_parse(const char *s, struct urbd_uuid *u)
{
	int i = 0;

	if (strlen(s) != 36)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		int pos = (int)(p - s), hi, lo;

		if (pos == 8 || pos == 13 || pos == 18 || pos == 23) {
			if (*p != '-')
				return -EINVAL;
			continue;
		}
		hi = hexval(p[0]);
		lo = hexval(p[1]);
		if (hi < 0 || lo < 0 || i >= 16)
			return -EINVAL;
		u->b[i++] = (uint8_t)(hi << 4 | lo);
		p++;
	}
	return i == 16 ? 0 : -EINVAL;
}

bool urbd_uuid_is_null(const struct urbd_uuid *u)
{
	static const struct urbd_uuid zero;

	return memcmp(u, &zero, sizeof(zero)) == 0;
}
