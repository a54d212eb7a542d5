#include "nbd_handshake.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nbd_proto.h"
#include "util.h"
#include "volume.h"

void nbd_out_put(struct nbd_outbuf *o, const void *p, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n > o->cap) {
		size_t cap = MAX(o->cap * 2, o->len + n + 256);
		uint8_t *d = realloc(o->data, cap);

		if (!d) {
			o->oom = true;
			return;
		}
		o->data = d;
		o->cap = cap;
	}
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

void nbd_out_free(struct nbd_outbuf *o)
{
	free(o->data);
	memset(o, 0, sizeof(*o));
}

void nbd_hs_greeting(struct nbd_outbuf *out)
{
	uint8_t g[18];

	put_be64(g, NBD_MAGIC);
	put_be64(g + 8, NBD_IHAVEOPT);
	put_be16(g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	nbd_out_put(out, g, sizeof(g));
}

enum nbd_hs_result nbd_hs_client_flags(struct nbd_session *s, uint32_t flags,
				       const char **why)
{
	if (!(flags & NBD_FLAG_C_FIXED_NEWSTYLE)) {
		*why = "client does not speak fixed newstyle";
		return NBD_HS_CLOSE;
	}
	if (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		*why = "unknown client flags";
		return NBD_HS_CLOSE;
	}
	s->client_flags = flags;
	return NBD_HS_CONTINUE;
}

uint16_t nbd_transmission_flags(void)
{
	/* Multi-conn is true: every connection of a volume is served by one
	 * reactor over one data file, so a FLUSH on any connection covers
	 * writes completed on all of them. */
	return NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH | NBD_FLAG_SEND_FUA |
	       NBD_FLAG_SEND_TRIM | NBD_FLAG_SEND_WRITE_ZEROES |
	       NBD_FLAG_SEND_DF | NBD_FLAG_CAN_MULTI_CONN;
}

static void reply(struct nbd_outbuf *out, uint32_t opt, uint32_t type,
		  const void *data, uint32_t len)
{
	uint8_t h[NBD_OPT_REPLY_HDR_LEN];

	nbd_put_opt_reply_hdr(h, opt, type, len);
	nbd_out_put(out, h, sizeof(h));
	if (len)
		nbd_out_put(out, data, len);
}

static void reply_err(const struct nbd_session *s, struct nbd_outbuf *out,
		      uint32_t opt, uint32_t type, const char *msg)
{
	log_info("nbd", "%s: %s refused: %s", s->peer ? s->peer : "client",
		 nbd_opt_name(opt), msg);
	reply(out, opt, type, msg, (uint32_t)strlen(msg));
}

static void info_export(struct nbd_outbuf *out, uint32_t opt,
			const struct volume *v)
{
	uint8_t b[12];

	put_be16(b, NBD_INFO_EXPORT);
	put_be64(b + 2, v->size);
	put_be16(b + 10, nbd_transmission_flags());
	reply(out, opt, NBD_REP_INFO, b, sizeof(b));
}

static void info_block_size(struct nbd_outbuf *out, uint32_t opt,
			    const struct volume *v)
{
	uint8_t b[14];

	/* any alignment works (unaligned requests are bounced), but the
	 * backend's alignment is what is fast */
	put_be16(b, NBD_INFO_BLOCK_SIZE);
	put_be32(b + 2, 1);
	put_be32(b + 6, MAX(v->align, 4096u));
	put_be32(b + 10, NBD_MAX_PAYLOAD);
	reply(out, opt, NBD_REP_INFO, b, sizeof(b));
}

static enum nbd_hs_result opt_info_go(struct nbd_session *s, uint32_t opt,
				      const uint8_t *data, uint32_t len,
				      struct nbd_outbuf *out)
{
	struct nbd_go_req *go = malloc(sizeof(*go));
	struct volume *v;
	enum nbd_hs_result res = NBD_HS_CONTINUE;

	if (!go) {
		out->oom = true;
		return NBD_HS_CLOSE;
	}
	if (nbd_parse_go(data, len, go) < 0) {
		reply_err(s, out, opt, NBD_REP_ERR_INVALID, "malformed request");
		goto out;
	}
	v = s->ops->get(s->ops_ctx, go->name);
	if (!v) {
		reply_err(s, out, opt, NBD_REP_ERR_UNKNOWN,
			  "no such export (volume) on this urbd");
		goto out;
	}
	info_export(out, opt, v);
	for (unsigned i = 0; i < go->n_info; i++) {
		if (go->info[i] == NBD_INFO_BLOCK_SIZE) {
			info_block_size(out, opt, v);
		} else if (go->info[i] == NBD_INFO_NAME) {
			uint8_t b[2 + URBD_NAME_MAX];
			size_t n = strlen(v->name);

			put_be16(b, NBD_INFO_NAME);
			memcpy(b + 2, v->name, n);
			reply(out, opt, NBD_REP_INFO, b, (uint32_t)(2 + n));
		} else if (go->info[i] == NBD_INFO_DESCRIPTION) {
			static const char d[] = "urbd volume";
			uint8_t b[2 + sizeof(d)];

			put_be16(b, NBD_INFO_DESCRIPTION);
			memcpy(b + 2, d, sizeof(d) - 1);
			reply(out, opt, NBD_REP_INFO, b, (uint32_t)(1 + sizeof(d)));
		}
	}
	reply(out, opt, NBD_REP_ACK, NULL, 0);
	if (opt == NBD_OPT_GO) {
		s->vol = v;
		res = NBD_HS_TRANSMISSION;
	} else {
		s->ops->put(s->ops_ctx, v);
	}
out:
	free(go);
	return res;
}

static enum nbd_hs_result opt_export_name(struct nbd_session *s,
					  const uint8_t *data, uint32_t len,
					  struct nbd_outbuf *out)
{
	char name[NBD_NAME_MAX_WIRE + 1];
	uint8_t b[10 + 124] = { 0 };
	struct volume *v;

	/* no error reply exists for this option: failure means disconnect */
	if (len > NBD_NAME_MAX_WIRE || memchr(data, '\0', len))
		return NBD_HS_CLOSE;
	memcpy(name, data, len);
	name[len] = '\0';
	v = s->ops->get(s->ops_ctx, name);
	if (!v) {
		log_info("nbd", "%s: NBD_OPT_EXPORT_NAME: no export '%.64s'",
			 s->peer ? s->peer : "client", name);
		return NBD_HS_CLOSE;
	}
	put_be64(b, v->size);
	put_be16(b + 8, nbd_transmission_flags());
	nbd_out_put(out, b, (s->client_flags & NBD_FLAG_C_NO_ZEROES) ? 10 : sizeof(b));
	s->vol = v;
	return NBD_HS_TRANSMISSION;
}

static void opt_list(struct nbd_session *s, uint32_t opt, uint32_t len,
		     struct nbd_outbuf *out)
{
	char **names = NULL;
	size_t n = 0;

	if (len) {
		reply_err(s, out, opt, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
		return;
	}
	if (s->ops->list(s->ops_ctx, &names, &n) < 0) {
		reply_err(s, out, opt, NBD_REP_ERR_SHUTDOWN, "cannot list volumes");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint8_t b[4 + URBD_NAME_MAX + 1];
		size_t l = strnlen(names[i], URBD_NAME_MAX);

		put_be32(b, (uint32_t)l);
		memcpy(b + 4, names[i], l);
		reply(out, opt, NBD_REP_SERVER, b, (uint32_t)(4 + l));
		free(names[i]);
	}
	free(names);
	reply(out, opt, NBD_REP_ACK, NULL, 0);
}

enum nbd_hs_result nbd_hs_option(struct nbd_session *s, uint32_t opt,
				 const uint8_t *data, uint32_t len,
				 struct nbd_outbuf *out)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(s, data, len, out);
	case NBD_OPT_ABORT:
		reply(out, opt, NBD_REP_ACK, NULL, 0);
		return NBD_HS_CLOSE;
	case NBD_OPT_LIST:
		opt_list(s, opt, len, out);
		return NBD_HS_CONTINUE;
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(s, opt, data, len, out);
	case NBD_OPT_STRUCTURED_REPLY:
		if (len) {
			reply_err(s, out, opt, NBD_REP_ERR_INVALID, "takes no data");
		} else {
			s->structured = true;
			reply(out, opt, NBD_REP_ACK, NULL, 0);
		}
		return NBD_HS_CONTINUE;
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		/* no metadata contexts are offered: an empty answer */
		if (!s->structured)
			reply_err(s, out, opt, NBD_REP_ERR_INVALID,
				  "structured replies not negotiated");
		else
			reply(out, opt, NBD_REP_ACK, NULL, 0);
		return NBD_HS_CONTINUE;
	case NBD_OPT_STARTTLS:
		reply_err(s, out, opt, NBD_REP_ERR_UNSUP,
			  "TLS is not offered on the node-local NBD export");
		return NBD_HS_CONTINUE;
	default:
		reply_err(s, out, opt, NBD_REP_ERR_UNSUP, "option not supported");
		return NBD_HS_CONTINUE;
	}
}
