/* nbd_handshake.c: option negotiation without sockets. A fake
 * nbd_export_ops serves two hand-built volumes and counts get/put so that
 * reference handling is checked along with the reply bytes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "nbd/nbd_handshake.h"
#include "nbd/nbd_proto.h"
#include "util.h"
#include "volume.h"

/* ---- fake volume manager -------------------------------------------- */

struct fake {
	struct volume vols[2];
	size_t n_online;        /* vols[0..n_online) are visible */
	int gets, puts;         /* successful get()s and put()s */
	int list_fail;          /* list() returns this if non-zero */
};

static struct volume *fake_get(void *ctx, const char *name)
{
	struct fake *f = ctx;

	/* "" means the only volume, if there is exactly one */
	if (name[0] == '\0') {
		if (f->n_online != 1)
			return NULL;
		f->gets++;
		return &f->vols[0];
	}
	for (size_t i = 0; i < f->n_online; i++) {
		if (strcmp(f->vols[i].name, name) == 0) {
			f->gets++;
			return &f->vols[i];
		}
	}
	return NULL;
}

static void fake_put(void *ctx, struct volume *v)
{
	struct fake *f = ctx;

	assert_true(v == &f->vols[0] || v == &f->vols[1]);
	f->puts++;
	assert_true(f->puts <= f->gets);
}

static int fake_list(void *ctx, char ***names, size_t *n)
{
	struct fake *f = ctx;
	char **v;

	if (f->list_fail)
		return f->list_fail;
	v = calloc(f->n_online ? f->n_online : 1, sizeof(*v));
	assert_non_null(v);
	for (size_t i = 0; i < f->n_online; i++)
		v[i] = strdup(f->vols[i].name);
	*names = v;
	*n = f->n_online;
	return 0;
}

static const struct nbd_export_ops fake_ops = {
	.get = fake_get,
	.put = fake_put,
	.list = fake_list,
};

struct fx {
	struct fake f;
	struct nbd_session s;
	struct nbd_outbuf out;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	strcpy(fx->f.vols[0].name, "alpha");
	fx->f.vols[0].size = 1ULL << 30;
	fx->f.vols[0].align = 512;
	strcpy(fx->f.vols[1].name, "beta-2");
	fx->f.vols[1].size = 3ULL << 40;
	fx->f.vols[1].align = 8192;
	fx->f.n_online = 2;
	fx->s.ops = &fake_ops;
	fx->s.ops_ctx = &fx->f;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	/* a reference held by the session is the caller's to drop */
	if (fx->s.vol)
		fake_put(&fx->f, fx->s.vol);
	assert_int_equal(fx->f.gets, fx->f.puts);
	nbd_out_free(&fx->out);
	free(fx);
	return 0;
}

/* ---- reply parsing -------------------------------------------------- */

struct rep {
	uint32_t opt, type, len;
	const uint8_t *data;
};

/* splits fx->out into option replies; fails on anything malformed */
static size_t parse_replies(struct fx *fx, struct rep *r, size_t max)
{
	size_t pos = 0, n = 0;

	assert_false(fx->out.oom);
	while (pos < fx->out.len) {
		assert_true(n < max);
		assert_true(fx->out.len - pos >= NBD_OPT_REPLY_HDR_LEN);
		assert_true(get_be64(fx->out.data + pos) == NBD_OPT_REPLY_MAGIC);
		r[n].opt = get_be32(fx->out.data + pos + 8);
		r[n].type = get_be32(fx->out.data + pos + 12);
		r[n].len = get_be32(fx->out.data + pos + 16);
		r[n].data = fx->out.data + pos + NBD_OPT_REPLY_HDR_LEN;
		pos += NBD_OPT_REPLY_HDR_LEN;
		assert_true(fx->out.len - pos >= r[n].len);
		pos += r[n].len;
		n++;
	}
	return n;
}

static enum nbd_hs_result opt(struct fx *fx, uint32_t o, const void *data,
			      uint32_t len)
{
	static const uint8_t none[1];

	return nbd_hs_option(&fx->s, o, data ? data : none, len, &fx->out);
}

/* GO/INFO payload: name, then the info requests */
static size_t go_payload(uint8_t *b, const char *name, size_t n_info,
			 const uint16_t *info)
{
	size_t l = strlen(name), pos;

	put_be32(b, (uint32_t)l);
	memcpy(b + 4, name, l);
	pos = 4 + l;
	put_be16(b + pos, (uint16_t)n_info);
	pos += 2;
	for (size_t i = 0; i < n_info; i++, pos += 2)
		put_be16(b + pos, info[i]);
	return pos;
}

static enum nbd_hs_result go(struct fx *fx, uint32_t o, const char *name,
			     size_t n_info, const uint16_t *info)
{
	uint8_t b[256];
	size_t n = go_payload(b, name, n_info, info);

	return opt(fx, o, b, (uint32_t)n);
}

/* an error reply carries a human-readable message */
static void assert_error_reply(const struct rep *r, uint32_t o, uint32_t type)
{
	assert_int_equal(r->opt, o);
	assert_int_equal(r->type, type);
	assert_true(r->type & NBD_REP_FLAG_ERROR);
	assert_true(r->len > 0);
	for (uint32_t i = 0; i < r->len; i++)
		assert_true(r->data[i] >= 0x20 && r->data[i] < 0x7f);
}

static void assert_info_export(const struct rep *r, uint32_t o, uint64_t size)
{
	assert_int_equal(r->opt, o);
	assert_int_equal(r->type, NBD_REP_INFO);
	assert_int_equal(r->len, 12);
	assert_int_equal(get_be16(r->data), NBD_INFO_EXPORT);
	assert_true(get_be64(r->data + 2) == size);
	assert_int_equal(get_be16(r->data + 10), nbd_transmission_flags());
}

static void assert_ack(const struct rep *r, uint32_t o)
{
	assert_int_equal(r->opt, o);
	assert_int_equal(r->type, NBD_REP_ACK);
	assert_int_equal(r->len, 0);
}

/* ---- greeting and client flags -------------------------------------- */

static void test_greeting(void **state)
{
	struct fx *fx = *state;

	nbd_hs_greeting(&fx->out);
	assert_int_equal(fx->out.len, 18);
	assert_memory_equal(fx->out.data, "NBDMAGIC", 8);
	assert_memory_equal(fx->out.data + 8, "IHAVEOPT", 8);
	assert_int_equal(get_be16(fx->out.data + 16),
			 NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
}

static void test_client_flags_ok(void **state)
{
	struct fx *fx = *state;
	const char *why = NULL;

	assert_int_equal(nbd_hs_client_flags(&fx->s, NBD_FLAG_C_FIXED_NEWSTYLE, &why),
			 NBD_HS_CONTINUE);
	assert_int_equal(fx->s.client_flags, NBD_FLAG_C_FIXED_NEWSTYLE);
	assert_int_equal(nbd_hs_client_flags(&fx->s, NBD_FLAG_C_FIXED_NEWSTYLE |
					     NBD_FLAG_C_NO_ZEROES, &why),
			 NBD_HS_CONTINUE);
	assert_int_equal(fx->s.client_flags,
			 NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
	assert_null(why);
}

static void test_client_flags_not_fixed_newstyle(void **state)
{
	struct fx *fx = *state;
	const char *why = NULL;

	assert_int_equal(nbd_hs_client_flags(&fx->s, 0, &why), NBD_HS_CLOSE);
	assert_non_null(strstr(why, "fixed newstyle"));
	why = NULL;
	assert_int_equal(nbd_hs_client_flags(&fx->s, NBD_FLAG_C_NO_ZEROES, &why),
			 NBD_HS_CLOSE);
	assert_non_null(why);
}

static void test_client_flags_unknown_bits(void **state)
{
	struct fx *fx = *state;
	const char *why = NULL;

	assert_int_equal(nbd_hs_client_flags(&fx->s, NBD_FLAG_C_FIXED_NEWSTYLE |
					     (1u << 2), &why), NBD_HS_CLOSE);
	assert_non_null(strstr(why, "unknown client flags"));
	assert_int_equal(nbd_hs_client_flags(&fx->s, 0xffffffffu, &why), NBD_HS_CLOSE);
	assert_int_equal(fx->s.client_flags, 0);
}

/* ---- LIST ----------------------------------------------------------- */

static void test_list_both(void **state)
{
	struct fx *fx = *state;
	struct rep r[8];

	assert_int_equal(opt(fx, NBD_OPT_LIST, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 8), 3);
	assert_int_equal(r[0].opt, NBD_OPT_LIST);
	assert_int_equal(r[0].type, NBD_REP_SERVER);
	assert_int_equal(r[0].len, 4 + 5);
	assert_int_equal(get_be32(r[0].data), 5);
	assert_memory_equal(r[0].data + 4, "alpha", 5);
	assert_int_equal(r[1].type, NBD_REP_SERVER);
	assert_int_equal(r[1].len, 4 + 6);
	assert_int_equal(get_be32(r[1].data), 6);
	assert_memory_equal(r[1].data + 4, "beta-2", 6);
	assert_ack(&r[2], NBD_OPT_LIST);
	assert_int_equal(fx->f.gets, 0);
}

static void test_list_empty(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	fx->f.n_online = 0;
	assert_int_equal(opt(fx, NBD_OPT_LIST, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_ack(&r[0], NBD_OPT_LIST);
}

static void test_list_with_data(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(opt(fx, NBD_OPT_LIST, "x", 1), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_LIST, NBD_REP_ERR_INVALID);
}

static void test_list_fails(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	fx->f.list_fail = -ENOMEM;
	assert_int_equal(opt(fx, NBD_OPT_LIST, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_LIST, NBD_REP_ERR_SHUTDOWN);
}

/* ---- GO / INFO ------------------------------------------------------ */

static void test_go_known(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(go(fx, NBD_OPT_GO, "beta-2", 0, NULL), NBD_HS_TRANSMISSION);
	assert_int_equal(parse_replies(fx, r, 4), 2);
	assert_info_export(&r[0], NBD_OPT_GO, 3ULL << 40);
	assert_ack(&r[1], NBD_OPT_GO);
	assert_ptr_equal(fx->s.vol, &fx->f.vols[1]);
	assert_int_equal(fx->f.gets, 1);
	assert_int_equal(fx->f.puts, 0); /* the session holds it */
}

static void test_go_block_size(void **state)
{
	struct fx *fx = *state;
	uint16_t info[] = { NBD_INFO_BLOCK_SIZE };
	struct rep r[4];

	assert_int_equal(go(fx, NBD_OPT_GO, "alpha", 1, info), NBD_HS_TRANSMISSION);
	assert_int_equal(parse_replies(fx, r, 4), 3);
	assert_info_export(&r[0], NBD_OPT_GO, 1ULL << 30);
	assert_int_equal(r[1].type, NBD_REP_INFO);
	assert_int_equal(r[1].len, 14);
	assert_int_equal(get_be16(r[1].data), NBD_INFO_BLOCK_SIZE);
	assert_int_equal(get_be32(r[1].data + 2), 1);         /* minimum */
	assert_int_equal(get_be32(r[1].data + 6), 4096);      /* preferred */
	assert_int_equal(get_be32(r[1].data + 10), 32u << 20); /* maximum */
	assert_ack(&r[2], NBD_OPT_GO);
	assert_ptr_equal(fx->s.vol, &fx->f.vols[0]);
}

static void test_go_block_size_follows_backend(void **state)
{
	struct fx *fx = *state;
	uint16_t info[] = { NBD_INFO_BLOCK_SIZE };
	struct rep r[4];

	/* vols[1] needs 8 KiB alignment: that is what is fast */
	assert_int_equal(go(fx, NBD_OPT_GO, "beta-2", 1, info), NBD_HS_TRANSMISSION);
	assert_int_equal(parse_replies(fx, r, 4), 3);
	assert_int_equal(get_be32(r[1].data + 6), 8192);
	assert_true(get_be32(r[1].data + 6) >= 4096);
	assert_true(is_pow2(get_be32(r[1].data + 6)));
}

static void test_go_name_and_description(void **state)
{
	struct fx *fx = *state;
	uint16_t info[] = { NBD_INFO_NAME, NBD_INFO_DESCRIPTION, 77 /* unknown */ };
	struct rep r[6];

	assert_int_equal(go(fx, NBD_OPT_GO, "alpha", 3, info), NBD_HS_TRANSMISSION);
	assert_int_equal(parse_replies(fx, r, 6), 4);
	assert_info_export(&r[0], NBD_OPT_GO, 1ULL << 30);
	assert_int_equal(r[1].type, NBD_REP_INFO);
	assert_int_equal(get_be16(r[1].data), NBD_INFO_NAME);
	assert_int_equal(r[1].len, 2 + 5);
	assert_memory_equal(r[1].data + 2, "alpha", 5);
	assert_int_equal(r[2].type, NBD_REP_INFO);
	assert_int_equal(get_be16(r[2].data), NBD_INFO_DESCRIPTION);
	assert_int_equal(r[2].len, 2 + strlen("urbd volume"));
	assert_memory_equal(r[2].data + 2, "urbd volume", strlen("urbd volume"));
	/* an unknown info request is ignored, as the spec allows */
	assert_ack(&r[3], NBD_OPT_GO);
}

static void test_info_releases_reference(void **state)
{
	struct fx *fx = *state;
	uint16_t info[] = { NBD_INFO_BLOCK_SIZE };
	struct rep r[4];

	assert_int_equal(go(fx, NBD_OPT_INFO, "alpha", 1, info), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 3);
	assert_info_export(&r[0], NBD_OPT_INFO, 1ULL << 30);
	assert_int_equal(get_be16(r[1].data), NBD_INFO_BLOCK_SIZE);
	assert_ack(&r[2], NBD_OPT_INFO);
	assert_null(fx->s.vol);
	assert_int_equal(fx->f.gets, 1);
	assert_int_equal(fx->f.puts, 1);
}

static void test_info_then_go(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(go(fx, NBD_OPT_INFO, "beta-2", 0, NULL), NBD_HS_CONTINUE);
	assert_int_equal(go(fx, NBD_OPT_GO, "alpha", 0, NULL), NBD_HS_TRANSMISSION);
	assert_ptr_equal(fx->s.vol, &fx->f.vols[0]);
	assert_int_equal(fx->f.gets, 2);
	assert_int_equal(fx->f.puts, 1);
}

static void test_go_unknown(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(go(fx, NBD_OPT_GO, "gamma", 0, NULL), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_GO, NBD_REP_ERR_UNKNOWN);
	assert_null(fx->s.vol);
	assert_int_equal(fx->f.gets, 0);
}

static void test_info_unknown(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(go(fx, NBD_OPT_INFO, "ALPHA", 0, NULL), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_INFO, NBD_REP_ERR_UNKNOWN);
}

static void test_go_default_name_one_volume(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	fx->f.n_online = 1;
	assert_int_equal(go(fx, NBD_OPT_GO, "", 0, NULL), NBD_HS_TRANSMISSION);
	assert_int_equal(parse_replies(fx, r, 4), 2);
	assert_info_export(&r[0], NBD_OPT_GO, 1ULL << 30);
	assert_ptr_equal(fx->s.vol, &fx->f.vols[0]);
}

static void test_go_default_name_two_volumes(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(go(fx, NBD_OPT_GO, "", 0, NULL), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_GO, NBD_REP_ERR_UNKNOWN);
	assert_null(fx->s.vol);
}

static void test_go_malformed(void **state)
{
	struct fx *fx = *state;
	uint8_t b[32];
	size_t n = go_payload(b, "alpha", 0, NULL);
	struct rep r[4];

	put_be32(b, 40); /* name length past the end */
	assert_int_equal(opt(fx, NBD_OPT_GO, b, (uint32_t)n), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_GO, NBD_REP_ERR_INVALID);
	assert_int_equal(fx->f.gets, 0);
}

static void test_go_empty_payload(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(opt(fx, NBD_OPT_GO, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_GO, NBD_REP_ERR_INVALID);
}

/* ---- STRUCTURED_REPLY and meta contexts ----------------------------- */

static void test_structured_reply(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(opt(fx, NBD_OPT_STRUCTURED_REPLY, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_ack(&r[0], NBD_OPT_STRUCTURED_REPLY);
	assert_true(fx->s.structured);
}

static void test_structured_reply_with_data(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(opt(fx, NBD_OPT_STRUCTURED_REPLY, "ab", 2), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_STRUCTURED_REPLY, NBD_REP_ERR_INVALID);
	assert_false(fx->s.structured);
}

static void test_set_meta_context_before_structured(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(opt(fx, NBD_OPT_SET_META_CONTEXT, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_SET_META_CONTEXT, NBD_REP_ERR_INVALID);
}

static void test_list_meta_context_before_structured(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(opt(fx, NBD_OPT_LIST_META_CONTEXT, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_error_reply(&r[0], NBD_OPT_LIST_META_CONTEXT, NBD_REP_ERR_INVALID);
}

static void test_meta_context_after_structured(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(opt(fx, NBD_OPT_STRUCTURED_REPLY, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(opt(fx, NBD_OPT_SET_META_CONTEXT, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(opt(fx, NBD_OPT_LIST_META_CONTEXT, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 4), 3);
	assert_ack(&r[1], NBD_OPT_SET_META_CONTEXT); /* no contexts: just ACK */
	assert_ack(&r[2], NBD_OPT_LIST_META_CONTEXT);
}

/* ---- unsupported, ABORT --------------------------------------------- */

static void test_unknown_options_unsupported(void **state)
{
	struct fx *fx = *state;
	static const uint32_t opts[] = { 0, NBD_OPT_PEEK_EXPORT, NBD_OPT_STARTTLS,
					 NBD_OPT_EXTENDED_HEADERS, 12, 999,
					 0x80000000u, 0xffffffffu };
	struct rep r[16];

	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		assert_int_equal(opt(fx, opts[i], "zz", 2), NBD_HS_CONTINUE);
	assert_int_equal(parse_replies(fx, r, 16), ARRAY_SIZE(opts));
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		assert_error_reply(&r[i], opts[i], NBD_REP_ERR_UNSUP);
}

static void test_abort(void **state)
{
	struct fx *fx = *state;
	struct rep r[4];

	assert_int_equal(opt(fx, NBD_OPT_ABORT, NULL, 0), NBD_HS_CLOSE);
	assert_int_equal(parse_replies(fx, r, 4), 1);
	assert_ack(&r[0], NBD_OPT_ABORT);
	assert_null(fx->s.vol);
}

/* ---- EXPORT_NAME ---------------------------------------------------- */

static void test_export_name_known(void **state)
{
	struct fx *fx = *state;

	fx->s.client_flags = NBD_FLAG_C_FIXED_NEWSTYLE;
	assert_int_equal(opt(fx, NBD_OPT_EXPORT_NAME, "beta-2", 6), NBD_HS_TRANSMISSION);
	assert_int_equal(fx->out.len, 10 + 124);
	assert_true(get_be64(fx->out.data) == 3ULL << 40);
	assert_int_equal(get_be16(fx->out.data + 8), nbd_transmission_flags());
	for (size_t i = 10; i < fx->out.len; i++)
		assert_int_equal(fx->out.data[i], 0);
	assert_ptr_equal(fx->s.vol, &fx->f.vols[1]);
	assert_int_equal(fx->f.gets, 1);
	assert_int_equal(fx->f.puts, 0);
}

static void test_export_name_no_zeroes(void **state)
{
	struct fx *fx = *state;

	fx->s.client_flags = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;
	assert_int_equal(opt(fx, NBD_OPT_EXPORT_NAME, "alpha", 5), NBD_HS_TRANSMISSION);
	assert_int_equal(fx->out.len, 10);
	assert_true(get_be64(fx->out.data) == 1ULL << 30);
	assert_ptr_equal(fx->s.vol, &fx->f.vols[0]);
}

static void test_export_name_default(void **state)
{
	struct fx *fx = *state;

	fx->f.n_online = 1;
	assert_int_equal(opt(fx, NBD_OPT_EXPORT_NAME, NULL, 0), NBD_HS_TRANSMISSION);
	assert_ptr_equal(fx->s.vol, &fx->f.vols[0]);
}

static void test_export_name_unknown(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(opt(fx, NBD_OPT_EXPORT_NAME, "gamma", 5), NBD_HS_CLOSE);
	assert_int_equal(fx->out.len, 0); /* no error reply exists */
	assert_null(fx->s.vol);
	assert_int_equal(fx->f.gets, 0);
}

static void test_export_name_with_nul(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(opt(fx, NBD_OPT_EXPORT_NAME, "alpha\0x", 7), NBD_HS_CLOSE);
	assert_int_equal(fx->out.len, 0);
	assert_int_equal(fx->f.gets, 0);
}

static void test_export_name_too_long(void **state)
{
	struct fx *fx = *state;
	uint8_t *name = malloc(NBD_NAME_MAX_WIRE + 1);

	memset(name, 'a', NBD_NAME_MAX_WIRE + 1);
	assert_int_equal(opt(fx, NBD_OPT_EXPORT_NAME, name, NBD_NAME_MAX_WIRE + 1),
			 NBD_HS_CLOSE);
	assert_int_equal(fx->out.len, 0);
	/* the longest allowed is merely unknown */
	assert_int_equal(opt(fx, NBD_OPT_EXPORT_NAME, name, NBD_NAME_MAX_WIRE),
			 NBD_HS_CLOSE);
	free(name);
}

/* ---- sequences, flags, buffer --------------------------------------- */

static void test_errors_then_go(void **state)
{
	struct fx *fx = *state;
	struct rep r[8];

	assert_int_equal(opt(fx, 99, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(go(fx, NBD_OPT_GO, "nope", 0, NULL), NBD_HS_CONTINUE);
	assert_int_equal(opt(fx, NBD_OPT_LIST, NULL, 0), NBD_HS_CONTINUE);
	assert_int_equal(go(fx, NBD_OPT_GO, "alpha", 0, NULL), NBD_HS_TRANSMISSION);
	assert_int_equal(parse_replies(fx, r, 8), 7);
	assert_int_equal(r[0].type, NBD_REP_ERR_UNSUP);
	assert_int_equal(r[1].type, NBD_REP_ERR_UNKNOWN);
	assert_int_equal(r[4].type, NBD_REP_ACK);
	assert_info_export(&r[5], NBD_OPT_GO, 1ULL << 30);
	assert_ack(&r[6], NBD_OPT_GO);
}

static void test_transmission_flags(void **state)
{
	uint16_t f = nbd_transmission_flags();

	assert_true(f & NBD_FLAG_HAS_FLAGS);
	assert_true(f & NBD_FLAG_SEND_FLUSH);
	assert_true(f & NBD_FLAG_SEND_FUA);
	assert_true(f & NBD_FLAG_SEND_TRIM);
	assert_true(f & NBD_FLAG_SEND_WRITE_ZEROES);
	assert_true(f & NBD_FLAG_SEND_DF);
	assert_true(f & NBD_FLAG_CAN_MULTI_CONN);
	assert_false(f & NBD_FLAG_READ_ONLY);
	assert_false(f & NBD_FLAG_ROTATIONAL);
}

static void test_outbuf_grows(void **state)
{
	struct nbd_outbuf o = { 0 };
	uint8_t chunk[1000];

	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	for (int i = 0; i < 100; i++)
		nbd_out_put(&o, chunk, sizeof(chunk));
	assert_false(o.oom);
	assert_int_equal(o.len, 100 * sizeof(chunk));
	assert_true(o.cap >= o.len);
	assert_memory_equal(o.data + 99 * sizeof(chunk), chunk, sizeof(chunk));
	nbd_out_free(&o);
	assert_null(o.data);
	assert_int_equal(o.len, 0);
	assert_int_equal(o.cap, 0);
}

static void test_outbuf_oom_sticky(void **state)
{
	struct nbd_outbuf o = { 0 };

	o.oom = true;
	nbd_out_put(&o, "abc", 3);
	assert_int_equal(o.len, 0);
	assert_null(o.data);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_greeting),
		T(test_client_flags_ok),
		T(test_client_flags_not_fixed_newstyle),
		T(test_client_flags_unknown_bits),
		T(test_list_both),
		T(test_list_empty),
		T(test_list_with_data),
		T(test_list_fails),
		T(test_go_known),
		T(test_go_block_size),
		T(test_go_block_size_follows_backend),
		T(test_go_name_and_description),
		T(test_info_releases_reference),
		T(test_info_then_go),
		T(test_go_unknown),
		T(test_info_unknown),
		T(test_go_default_name_one_volume),
		T(test_go_default_name_two_volumes),
		T(test_go_malformed),
		T(test_go_empty_payload),
		T(test_structured_reply),
		T(test_structured_reply_with_data),
		T(test_set_meta_context_before_structured),
		T(test_list_meta_context_before_structured),
		T(test_meta_context_after_structured),
		T(test_unknown_options_unsupported),
		T(test_abort),
		T(test_export_name_known),
		T(test_export_name_no_zeroes),
		T(test_export_name_default),
		T(test_export_name_unknown),
		T(test_export_name_with_nul),
		T(test_export_name_too_long),
		T(test_errors_then_go),
		T(test_transmission_flags),
		T(test_outbuf_grows),
		T(test_outbuf_oom_sticky),
	};
#undef T

	log_level = LOG_LVL_WARN; /* refusals are logged at info */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
