/* TLS material for the RPC layer: PEM files read into memory and checked
 * with OpenSSL before they are handed to the gRPC core, which would only
 * complain (vaguely) at the first handshake. */
#include "rpc_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "log.h"

/* PEM bundles are a few KiB; anything larger is a wrong path. */
#define PEM_MAX (1u << 20)

static char *read_file(const char *path, const char *tag, const char *what)
{
	struct stat st;
	char *buf = NULL;
	size_t done = 0;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		log_err(tag, "cannot open TLS %s %s: %s", what, path, strerror(err));
		goto out;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > PEM_MAX) {
		err = EINVAL;
		log_err(tag, "TLS %s %s is not a PEM file of 1 byte..1 MiB", what, path);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		err = ENOMEM;
		goto out;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : EIO;
			log_err(tag, "cannot read TLS %s %s: %s", what, path, strerror(err));
			goto out;
		}
		done += (size_t)n;
	}
	buf[done] = '\0';
out:
	if (fd >= 0)
		close(fd);
	if (err) {
		if (buf) {
			OPENSSL_cleanse(buf, (size_t)st.st_size);
			free(buf);
		}
		errno = err;
		return NULL;
	}
	return buf;
}

/* Never prompt on a terminal for a passphrase: encrypted keys are refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

static X509 *parse_cert(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *x;

	if (!bio)
		return NULL;
	x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return x;
}

static int check_pem(const struct rpc_pem *pem, const struct rpc_tls *tls,
		     const char *tag)
{
	X509 *cert = NULL, *ca = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	int ret = -EINVAL;

	cert = parse_cert(pem->cert);
	if (!cert) {
		log_err(tag, "TLS certificate %s: no PEM certificate in it", tls->cert);
		goto out;
	}
	ca = parse_cert(pem->ca);
	if (!ca) {
		log_err(tag, "TLS CA %s: no PEM certificate in it", tls->ca);
		goto out;
	}
	bio = BIO_new_mem_buf(pem->key, -1);
	if (bio)
		key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	if (!key) {
		log_err(tag, "TLS key %s: no unencrypted PEM private key in it", tls->key);
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1) {
		log_err(tag, "TLS key %s does not match certificate %s", tls->key, tls->cert);
		goto out;
	}
	ret = 0;
out:
	/* OpenSSL's error queue is per thread; leave it clean for gRPC. */
	ERR_clear_error();
	EVP_PKEY_free(key);
	BIO_free(bio);
	X509_free(ca);
	X509_free(cert);
	return ret;
}

int rpc_pem_load(struct rpc_pem *pem, const struct rpc_tls *tls, const char *tag)
{
	int ret;

	memset(pem, 0, sizeof(*pem));
	if (!tls || !tls->cert || !tls->key || !tls->ca) {
		log_err(tag, "mutual TLS needs a certificate, a key and a CA file");
		return -EINVAL;
	}
	pem->cert = read_file(tls->cert, tag, "certificate");
	if (pem->cert)
		pem->key = read_file(tls->key, tag, "key");
	if (pem->key)
		pem->ca = read_file(tls->ca, tag, "CA");
	if (!pem->ca) {
		ret = -errno;
		goto fail;
	}
	ret = check_pem(pem, tls, tag);
	if (ret)
		goto fail;
	return 0;
fail:
	rpc_pem_free(pem);
	return ret;
}

void rpc_pem_free(struct rpc_pem *pem)
{
	if (pem->key) {
		OPENSSL_cleanse(pem->key, strlen(pem->key));
		free(pem->key);
	}
	free(pem->cert);
	free(pem->ca);
	memset(pem, 0, sizeof(*pem));
}
