/* libFuzzer: the NBD handshake (nbd_handshake.c) fed a client's byte stream.
 *
 * Input: u32 client flags (big-endian), then options, each a u32 option
 * number and a u32 length (big-endian) followed by that many bytes of data
 * (capped by what is left of the input). Each option's data is copied into
 * a buffer of exactly its length so ASan sees any overread.
 *
 * Invariants checked:
 *  - every reply to an option other than EXPORT_NAME is a well-formed run
 *    of option replies (magic, echoed option, lengths adding up) ending in
 *    ACK or an error;
 *  - EXPORT_NAME answers 10 or 134 bytes on success and nothing on failure;
 *  - a session that continues holds no reference; one that enters
 *    transmission holds exactly one, released here at the end;
 *  - no volume's reference count ever goes negative or leaks. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nbd/nbd_handshake.h"
#include "nbd/nbd_proto.h"
#include "util.h"
#include "volume.h"

#define CHECK(c)                                                         \
	do {                                                             \
		if (!(c)) {                                              \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", \
				#c, __FILE__, __LINE__);                 \
			abort();                                         \
		}                                                        \
	} while (0)

#define N_VOLS 3

static struct volume vols[N_VOLS];
static int refs[N_VOLS];
static size_t n_online;

static int vol_index(const struct volume *v)
{
	for (int i = 0; i < N_VOLS; i++)
		if (v == &vols[i])
			return i;
	return -1;
}

static struct volume *fake_get(void *ctx, const char *name)
{
	if (name[0] == '\0') {
		if (n_online != 1)
			return NULL;
		refs[0]++;
		return &vols[0];
	}
	for (size_t i = 0; i < n_online; i++) {
		if (strcmp(vols[i].name, name) == 0) {
			refs[i]++;
			return &vols[i];
		}
	}
	return NULL;
}

static void fake_put(void *ctx, struct volume *v)
{
	int i = vol_index(v);

	CHECK(i >= 0);
	refs[i]--;
	CHECK(refs[i] >= 0);
}

static int fake_list(void *ctx, char ***names, size_t *n)
{
	char **v = calloc(n_online + 1, sizeof(*v));

	if (!v)
		return -12;
	for (size_t i = 0; i < n_online; i++)
		v[i] = strdup(vols[i].name);
	*names = v;
	*n = n_online;
	return 0;
}

static const struct nbd_export_ops ops = {
	.get = fake_get,
	.put = fake_put,
	.list = fake_list,
};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_level = -1; /* refusals are logged: keep the fuzzer quiet */
	strcpy(vols[0].name, "vol0");
	vols[0].size = 1ULL << 30;
	vols[0].align = 512;
	strcpy(vols[1].name, "a");
	vols[1].size = 4096;
	vols[1].align = 4096;
	strcpy(vols[2].name, "pvc-0123456789abcdef0123456789abcdef0123456789abcdef0123456789a");
	vols[2].size = UINT64_MAX & ~4095ULL;
	vols[2].align = 8192;
	return 0;
}

/* walks the option replies in out; returns the type of the last one */
static uint32_t check_replies(const struct nbd_outbuf *out, uint32_t opt)
{
	size_t pos = 0;
	uint32_t type = 0;

	CHECK(out->len >= NBD_OPT_REPLY_HDR_LEN);
	while (pos < out->len) {
		uint32_t len;

		CHECK(out->len - pos >= NBD_OPT_REPLY_HDR_LEN);
		CHECK(get_be64(out->data + pos) == NBD_OPT_REPLY_MAGIC);
		CHECK(get_be32(out->data + pos + 8) == opt);
		type = get_be32(out->data + pos + 12);
		len = get_be32(out->data + pos + 16);
		pos += NBD_OPT_REPLY_HDR_LEN;
		CHECK(out->len - pos >= len);
		if (type == NBD_REP_ACK)
			CHECK(len == 0);
		if (type == NBD_REP_INFO)
			CHECK(len >= 2);
		pos += len;
	}
	CHECK(type == NBD_REP_ACK || (type & NBD_REP_FLAG_ERROR));
	return type;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nbd_session s = { .ops = &ops };
	struct nbd_outbuf out = { 0 };
	enum nbd_hs_result res;
	const char *why = NULL;
	size_t pos = 4;

	if (size < 4)
		return 0;
	/* the top bits of the flags word also pick how many volumes exist */
	n_online = data[0] % (N_VOLS + 1);
	nbd_hs_greeting(&out);
	CHECK(out.len == 18 && !out.oom);
	nbd_out_free(&out);

	res = nbd_hs_client_flags(&s, get_be32(data) & 0x00ffffffu, &why);
	if (res == NBD_HS_CLOSE) {
		CHECK(why != NULL);
		goto done;
	}
	CHECK(res == NBD_HS_CONTINUE);

	while (size - pos >= 8) {
		uint32_t opt = get_be32(data + pos);
		uint32_t len = get_be32(data + pos + 4);
		uint8_t *buf;
		size_t before = out.len;

		pos += 8;
		if (len > size - pos)
			len = (uint32_t)(size - pos);
		buf = malloc(len ? len : 1);
		CHECK(buf != NULL);
		memcpy(buf, data + pos, len);
		pos += len;

		res = nbd_hs_option(&s, opt, buf, len, &out);
		free(buf);
		CHECK(before == 0);
		CHECK(!out.oom);

		if (opt == NBD_OPT_EXPORT_NAME) {
			if (res == NBD_HS_TRANSMISSION)
				CHECK(out.len == 10 || out.len == 134);
			else
				CHECK(res == NBD_HS_CLOSE && out.len == 0);
		} else {
			uint32_t last = check_replies(&out, opt);

			if (res == NBD_HS_TRANSMISSION)
				CHECK(opt == NBD_OPT_GO && last == NBD_REP_ACK);
			if (res == NBD_HS_CLOSE)
				CHECK(opt == NBD_OPT_ABORT);
		}
		nbd_out_free(&out);

		if (res == NBD_HS_TRANSMISSION) {
			int i = vol_index(s.vol);

			CHECK(i >= 0 && refs[i] == 1);
			break;
		}
		CHECK(s.vol == NULL);
		for (int i = 0; i < N_VOLS; i++)
			CHECK(refs[i] == 0);
		if (res == NBD_HS_CLOSE)
			break;
	}
done:
	if (s.vol)
		fake_put(NULL, s.vol);
	for (int i = 0; i < N_VOLS; i++)
		CHECK(refs[i] == 0);
	nbd_out_free(&out);
	return 0;
}
