/* NBD option haggling, free of sockets: options in, reply bytes out. */
#ifndef URBD_NBD_HANDSHAKE_H
#define URBD_NBD_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct volume;

/* How the frontend finds volumes; implemented by the volume manager. */
struct nbd_export_ops {
	/* a held reference to the named volume ("" = the only volume, if there
	 * is exactly one), or NULL */
	struct volume *(*get)(void *ctx, const char *name);
	void (*put)(void *ctx, struct volume *v);
	/* malloc'ed names of the online volumes */
	int (*list)(void *ctx, char ***names, size_t *n);
};

struct nbd_outbuf {
	uint8_t *data;
	size_t len, cap;
	bool oom;
};
void nbd_out_put(struct nbd_outbuf *o, const void *p, size_t n);
void nbd_out_free(struct nbd_outbuf *o);

struct nbd_session {
	uint32_t client_flags;
	bool structured;          /* NBD_OPT_STRUCTURED_REPLY acked */
	struct volume *vol;       /* held reference after GO/EXPORT_NAME */
	const struct nbd_export_ops *ops;
	void *ops_ctx;
	const char *peer;         /* for log lines; may be NULL */
};

enum nbd_hs_result {
	NBD_HS_CONTINUE,     /* wait for the next option */
	NBD_HS_TRANSMISSION, /* s->vol set: start serving requests */
	NBD_HS_CLOSE,        /* send what is in `out`, then close */
};

/* the 18-byte server greeting */
void nbd_hs_greeting(struct nbd_outbuf *out);
/* client flags (u32); CLOSE if the client is not fixed-newstyle */
enum nbd_hs_result nbd_hs_client_flags(struct nbd_session *s, uint32_t flags,
				       const char **why);
enum nbd_hs_result nbd_hs_option(struct nbd_session *s, uint32_t opt,
				 const uint8_t *data, uint32_t len,
				 struct nbd_outbuf *out);
/* transmission flags urbd advertises for a volume */
uint16_t nbd_transmission_flags(void);

#endif
