/* HMAC-SHA256 challenge-response between replication peers (repl_auth.h).
 *
 * Why the MAC covers both node ids and both nonces: with only the nonce
 * being answered, an attacker who knows no secret can open two
 * connections to the same daemon and make it answer its own challenge
 * (the classic reflection attack). Binding the prover's id, which the
 * verifier requires to be the peer's and never its own, makes a daemon's
 * answers useless as anyone else's proof; binding the prover's own nonce
 * makes each answer specific to one connection pair. A relay between two
 * honest peers is not prevented here (no channel binding): that needs the
 * TLS transport planned in README.md. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "log.h"
#include "repl_auth.h"
#include "util.h"

#define TAG "repl-auth"
static const char auth_label[] = "urbd-repl-auth-v1";

/* ---- the secret ------------------------------------------------------- */

int repl_secret_set(struct repl_secret *s, const void *key, size_t len)
{
	memset(s, 0, sizeof(*s));
	if (len == 0 || len > REPL_SECRET_MAX)
		return -EINVAL;
	s->key = malloc(len);
	if (!s->key)
		return -ENOMEM;
	memcpy(s->key, key, len);
	s->len = len;
	return 0;
}

void repl_secret_free(struct repl_secret *s)
{
	if (s->key) {
		OPENSSL_cleanse(s->key, s->len);
		free(s->key);
	}
	s->key = NULL;
	s->len = 0;
}

int repl_secret_load(const char *path, struct repl_secret *s)
{
	uint8_t buf[REPL_SECRET_MAX + 1];
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int fd, ret;

	memset(s, 0, sizeof(*s));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		log_err(TAG, "secret file %s: %m", path);
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		log_err(TAG, "secret file %s: stat: %m", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		log_err(TAG, "secret file %s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		ret = -EPERM;
		log_err(TAG, "secret file %s: mode %04o is readable or writable by others; "
			"refusing it (chmod o-rw, or defaultMode: 0400 on the Secret volume)",
			path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	for (;;) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			log_err(TAG, "secret file %s: read: %m", path);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf))
			break;
	}
	if (len > REPL_SECRET_MAX) {
		ret = -EFBIG;
		log_err(TAG, "secret file %s: longer than %d bytes", path, REPL_SECRET_MAX);
		goto out;
	}
	/* `echo secret > file` and kubectl --from-file both leave a newline */
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len == 0) {
		ret = -ENODATA;
		log_err(TAG, "secret file %s: empty", path);
		goto out;
	}
	if (len < REPL_SECRET_WEAK)
		log_warn(TAG, "secret file %s: only %zu bytes; use at least %d random bytes",
			 path, len, REPL_SECRET_WEAK);
	ret = repl_secret_set(s, buf, len);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return ret;
}

/* ---- the exchange ------------------------------------------------------ */

const char *repl_auth_state_name(enum repl_auth_state st)
{
	static const char *const n[] = {
		[REPL_AUTH_IDLE] = "idle", [REPL_AUTH_WAIT_CHALLENGE] = "wait-challenge",
		[REPL_AUTH_WAIT_RESPONSE] = "wait-response", [REPL_AUTH_WAIT_OK] = "wait-ok",
		[REPL_AUTH_DONE] = "done", [REPL_AUTH_FAILED] = "failed",
	};
	return (unsigned)st < ARRAY_SIZE(n) ? n[st] : "?";
}

int repl_auth_random_nonce(uint8_t nonce[REPL_NONCE_LEN])
{
	return RAND_bytes(nonce, REPL_NONCE_LEN) == 1 ? 0 : -EIO;
}

int repl_auth_mac(const struct repl_secret *s, uint32_t prover_id,
		  uint32_t verifier_id, const uint8_t verifier_nonce[REPL_NONCE_LEN],
		  const uint8_t prover_nonce[REPL_NONCE_LEN], uint8_t mac[REPL_MAC_LEN])
{
	uint8_t msg[sizeof(auth_label) + 8 + 2 * REPL_NONCE_LEN];
	unsigned int mac_len = 0;
	uint8_t *p = msg;

	memcpy(p, auth_label, sizeof(auth_label)); /* with its NUL: a separator */
	p += sizeof(auth_label);
	put_be32(p, prover_id);
	put_be32(p + 4, verifier_id);
	p += 8;
	memcpy(p, verifier_nonce, REPL_NONCE_LEN);
	memcpy(p + REPL_NONCE_LEN, prover_nonce, REPL_NONCE_LEN);
	if (!HMAC(EVP_sha256(), s->key, (int)s->len, msg, sizeof(msg), mac, &mac_len) ||
	    mac_len != REPL_MAC_LEN)
		return -EIO;
	return 0;
}

static int refuse(struct repl_auth *a, int err, uint32_t reason, const char *why)
{
	a->state = REPL_AUTH_FAILED;
	a->reason = reason;
	a->why = why;
	log_msg(a->quiet ? LOG_LVL_DBG : LOG_LVL_WARN, TAG,
		"peer %s: authentication refused: %s", a->peer_name ? a->peer_name : "?", why);
	return err;
}

int repl_auth_start(struct repl_auth *a, bool quiet, const struct repl_secret *secret,
		    uint32_t own_id, uint32_t expected_peer,
		    const uint8_t nonce[REPL_NONCE_LEN], const char *peer_name,
		    struct repl_msg *challenge)
{
	static const uint8_t zeroes[REPL_NONCE_LEN];

	memset(a, 0, sizeof(*a));
	a->quiet = quiet;
	a->peer_name = peer_name;
	if (!secret || !secret->key || secret->len == 0)
		return refuse(a, -EINVAL, REPL_REASON_AUTH_FAILED, "no shared secret configured");
	if (!memcmp(nonce, zeroes, REPL_NONCE_LEN))
		return refuse(a, -EINVAL, REPL_REASON_AUTH_FAILED, "all-zero local nonce");
	if (expected_peer == own_id)
		return refuse(a, -EINVAL, REPL_REASON_AUTH_FAILED, "peer id equals own id");
	a->secret = secret;
	a->own_id = own_id;
	a->expected_peer = expected_peer;
	memcpy(a->own_nonce, nonce, REPL_NONCE_LEN);
	memset(challenge, 0, sizeof(*challenge));
	challenge->type = REPL_MSG_AUTH_CHALLENGE;
	challenge->u.auth.alg = REPL_AUTH_HMAC_SHA256;
	challenge->u.auth.node_id = own_id;
	memcpy(challenge->nonce, nonce, REPL_NONCE_LEN);
	a->state = REPL_AUTH_WAIT_CHALLENGE;
	return 0;
}

static int on_challenge(struct repl_auth *a, const struct repl_msg *in, struct repl_msg *out)
{
	uint32_t id = in->u.auth.node_id;

	if (in->u.auth.alg != REPL_AUTH_HMAC_SHA256)
		return refuse(a, -EPROTO, REPL_REASON_AUTH_FAILED, "unsupported auth algorithm");
	if (id == a->own_id)
		return refuse(a, -EACCES, REPL_REASON_AUTH_FAILED,
			      "peer claims our own node id (reflected challenge?)");
	if (a->expected_peer != REPL_AUTH_ANY_PEER && id != a->expected_peer)
		return refuse(a, -EACCES, REPL_REASON_AUTH_FAILED,
			      "peer node id is not the configured peer");
	if (!CRYPTO_memcmp(in->nonce, a->own_nonce, REPL_NONCE_LEN))
		return refuse(a, -EPROTO, REPL_REASON_AUTH_FAILED,
			      "peer echoed our challenge (reflection)");
	a->peer_id = id;
	memcpy(a->peer_nonce, in->nonce, REPL_NONCE_LEN);
	memset(out, 0, sizeof(*out));
	out->type = REPL_MSG_AUTH_RESPONSE;
	if (repl_auth_mac(a->secret, a->own_id, a->peer_id, a->peer_nonce,
			  a->own_nonce, out->mac))
		return refuse(a, -EIO, REPL_REASON_AUTH_FAILED, "HMAC computation failed");
	a->state = REPL_AUTH_WAIT_RESPONSE;
	return 1;
}

static int on_response(struct repl_auth *a, const struct repl_msg *in, struct repl_msg *out)
{
	uint8_t want[REPL_MAC_LEN];
	int same;

	if (repl_auth_mac(a->secret, a->peer_id, a->own_id, a->own_nonce,
			  a->peer_nonce, want))
		return refuse(a, -EIO, REPL_REASON_AUTH_FAILED, "HMAC computation failed");
	same = !CRYPTO_memcmp(want, in->mac, REPL_MAC_LEN);
	OPENSSL_cleanse(want, sizeof(want));
	if (!same)
		return refuse(a, -EACCES, REPL_REASON_AUTH_FAILED,
			      "wrong response to our challenge (shared secrets differ)");
	memset(out, 0, sizeof(*out));
	out->type = REPL_MSG_AUTH_OK;
	a->state = REPL_AUTH_WAIT_OK;
	return 1;
}

int repl_auth_recv(struct repl_auth *a, const struct repl_msg *in, struct repl_msg *out)
{
	switch (a->state) {
	case REPL_AUTH_WAIT_CHALLENGE:
		if (in->type == REPL_MSG_AUTH_CHALLENGE)
			return on_challenge(a, in, out);
		break;
	case REPL_AUTH_WAIT_RESPONSE:
		if (in->type == REPL_MSG_AUTH_RESPONSE)
			return on_response(a, in, out);
		break;
	case REPL_AUTH_WAIT_OK:
		if (in->type == REPL_MSG_AUTH_OK) {
			a->state = REPL_AUTH_DONE;
			log_info(TAG, "peer %s (node %u): authenticated",
				 a->peer_name ? a->peer_name : "?", a->peer_id);
			return 0;
		}
		break;
	case REPL_AUTH_FAILED: /* terminal: logged once, when it failed */
		return -EPROTO;
	default:
		break;
	}
	return refuse(a, -EPROTO, REPL_REASON_PROTOCOL, "message out of order during authentication");
}
