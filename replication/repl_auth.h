/* Peer authentication: HMAC-SHA256 challenge-response over a shared secret
 * (a Kubernetes Secret mounted as a file). Both sides prove knowledge of
 * the secret before any state or data moves. Pure state machine: the
 * caller supplies the random nonce and moves the messages; see the
 * handshake diagram in replication/README.md.
 *
 * Each side's stream carries, in this order and no other:
 *     AUTH_CHALLENGE (our nonce, our node id)
 *     AUTH_RESPONSE  (HMAC over the peer's challenge, sent once it arrives)
 *     AUTH_OK        (sent once the peer's response verified)
 * so the receiver's states are linear: WAIT_CHALLENGE -> WAIT_RESPONSE ->
 * WAIT_OK -> DONE, with FAILED from anywhere. */
#ifndef URBD_REPL_AUTH_H
#define URBD_REPL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repl_proto.h"

#define REPL_SECRET_MAX   4096
#define REPL_SECRET_WEAK  16       /* shorter secrets work but get a warning */
#define REPL_AUTH_ANY_PEER UINT32_MAX

struct repl_secret {
	uint8_t *key;   /* OPENSSL_cleanse'd on free */
	size_t len;
};

/* Reads the secret file: regular file, not readable or writable by
 * "other" (Kubernetes: defaultMode 0400/0440), 1..REPL_SECRET_MAX bytes
 * after stripping trailing newlines. 0, or -errno with a logged reason
 * (-EPERM: mode too open, -ENODATA: empty, -EFBIG: too long). Symlinks
 * are followed: Secret volumes are ..data/ symlinks. */
int repl_secret_load(const char *path, struct repl_secret *s);
int repl_secret_set(struct repl_secret *s, const void *key, size_t len);
void repl_secret_free(struct repl_secret *s);

enum repl_auth_state {
	REPL_AUTH_IDLE,           /* repl_auth_start not called yet */
	REPL_AUTH_WAIT_CHALLENGE, /* our challenge is out; the peer's is due */
	REPL_AUTH_WAIT_RESPONSE,  /* we answered; the peer's proof is due */
	REPL_AUTH_WAIT_OK,        /* peer proved itself (we sent AUTH_OK); its AUTH_OK is due */
	REPL_AUTH_DONE,           /* both proved: the connection may proceed to STATE */
	REPL_AUTH_FAILED,         /* refused; `why` says why; terminal */
};

struct repl_auth {
	enum repl_auth_state state;
	const struct repl_secret *secret; /* borrowed */
	const char *peer_name;            /* for log lines */
	uint32_t own_id, expected_peer;   /* REPL_AUTH_ANY_PEER: any id but ours */
	uint32_t peer_id;
	uint8_t own_nonce[REPL_NONCE_LEN];
	uint8_t peer_nonce[REPL_NONCE_LEN];
	uint32_t reason;                  /* REPL_REASON_* for the ERROR frame */
	const char *why;
	bool quiet;                       /* a refusal logs at debug level (the same
					   * failure again: its owner counts them);
					   * set by repl_auth_start */
};

const char *repl_auth_state_name(enum repl_auth_state st);

/* Fresh nonce from the OpenSSL CSPRNG: 0 or -EIO. */
int repl_auth_random_nonce(uint8_t nonce[REPL_NONCE_LEN]);

/* Sets up the exchange and fills *challenge (an AUTH_CHALLENGE to send).
 * -EINVAL for an empty secret or an all-zero nonce. */
int repl_auth_start(struct repl_auth *a, bool quiet, const struct repl_secret *secret,
		    uint32_t own_id, uint32_t expected_peer,
		    const uint8_t nonce[REPL_NONCE_LEN], const char *peer_name,
		    struct repl_msg *challenge);

/* Feeds one received AUTH_* message. Returns 1 with *out to send, 0 with
 * nothing to send, -EACCES (wrong secret / wrong peer identity) or
 * -EPROTO (message out of order, reflected challenge) after moving to
 * FAILED and logging the reason; a->reason says what to put in ERROR. */
int repl_auth_recv(struct repl_auth *a, const struct repl_msg *in, struct repl_msg *out);

/* The MAC a prover sends: HMAC-SHA256(secret, "urbd-repl-auth-v1" ||
 * be32 prover_id || be32 verifier_id || verifier's nonce || prover's
 * nonce). Exposed for the tests. 0 or -EIO. */
int repl_auth_mac(const struct repl_secret *s, uint32_t prover_id,
		  uint32_t verifier_id, const uint8_t verifier_nonce[REPL_NONCE_LEN],
		  const uint8_t prover_nonce[REPL_NONCE_LEN], uint8_t mac[REPL_MAC_LEN]);

#endif
