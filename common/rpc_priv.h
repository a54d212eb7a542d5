/* Private to common/rpc_*.c: what server and client share. */
#ifndef URBD_RPC_PRIV_H
#define URBD_RPC_PRIV_H

#include <grpc/grpc.h>

#include "rpc.h"

/* PEM contents as NUL-terminated strings, the form the gRPC core wants. */
struct rpc_pem {
	char *cert;
	char *key;   /* secret: wiped on free, never logged */
	char *ca;
};

/* Reads the three files and checks with OpenSSL that the certificates
 * parse and that the key matches the certificate, so a bad path or a
 * mismatched pair fails at start-up with a clear message rather than at
 * the first handshake. 0 or -errno (logged under tag). */
int rpc_pem_load(struct rpc_pem *pem, const struct rpc_tls *tls, const char *tag);
void rpc_pem_free(struct rpc_pem *pem);

/* protobuf-c message <-> gRPC byte buffer; NULL if it does not decode */
grpc_byte_buffer *rpc_encode(const ProtobufCMessage *msg);
ProtobufCMessage *rpc_decode(grpc_byte_buffer *bb,
			     const ProtobufCMessageDescriptor *desc);

#endif
