/* Unary gRPC client over the gRPC C core (see rpc.h).
 *
 * One channel per client; each call gets its own completion queue and one
 * batch holding every op of a unary call, so rpc_call needs no locking and
 * the deadline given to the core bounds how long it can take. Calls are
 * fail-fast (no wait_for_ready): when nothing listens on the target the
 * core fails the call with UNAVAILABLE as soon as the connect fails. */
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "log.h"
#include "rpc_priv.h"
#include "util.h"

#define DEFAULT_TIMEOUT_MS 10000u

struct rpc_client {
	grpc_channel *channel;
	char *target;
};

static grpc_channel_credentials *tls_credentials(const struct rpc_tls *tls)
{
	grpc_ssl_pem_key_cert_pair pair;
	grpc_channel_credentials *creds;
	struct rpc_pem pem;
	int ret;

	ret = rpc_pem_load(&pem, tls, "rpc");
	if (ret) {
		errno = -ret;
		return NULL;
	}
	pair.private_key = pem.key;
	pair.cert_chain = pem.cert;
	creds = grpc_ssl_credentials_create(pem.ca, &pair, NULL, NULL);
	rpc_pem_free(&pem);
	if (!creds)
		errno = EINVAL;
	return creds;
}

struct rpc_client *rpc_client_new(const char *target, const struct rpc_tls *tls)
{
	grpc_channel_credentials *creds;
	grpc_arg arg;
	grpc_channel_args args = { .num_args = 0, .args = &arg };
	struct rpc_client *c;

	if (!target || !*target) {
		errno = EINVAL;
		return NULL;
	}
	rpc_init();
	c = calloc(1, sizeof(*c));
	if (!c || !(c->target = strdup(target))) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}
	creds = tls ? tls_credentials(tls) : grpc_insecure_credentials_create();
	if (!creds) {
		int err = errno ? errno : EINVAL;

		free(c->target);
		free(c);
		errno = err;
		return NULL;
	}
	if (tls && tls->server_name) {
		arg.type = GRPC_ARG_STRING;
		arg.key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
		arg.value.string = (char *)tls->server_name;
		args.num_args = 1;
	}
	c->channel = grpc_channel_create(target, creds, &args);
	grpc_channel_credentials_release(creds);
	if (!c->channel) {
		free(c->target);
		free(c);
		errno = EINVAL;
		return NULL;
	}
	return c;
}

void rpc_client_free(struct rpc_client *c)
{
	if (!c)
		return;
	grpc_channel_destroy(c->channel);
	free(c->target);
	free(c);
}

const char *rpc_client_target(const struct rpc_client *c)
{
	return c->target;
}

/* Everything one unary call owns, so one function can release it. */
struct unary {
	grpc_completion_queue *cq;
	grpc_call *call;
	grpc_byte_buffer *send, *recv;
	grpc_metadata_array initial_md, trailing_md;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
};

static void unary_release(struct unary *u)
{
	if (u->call)
		grpc_call_unref(u->call);
	if (u->send)
		grpc_byte_buffer_destroy(u->send);
	if (u->recv)
		grpc_byte_buffer_destroy(u->recv);
	grpc_metadata_array_destroy(&u->initial_md);
	grpc_metadata_array_destroy(&u->trailing_md);
	grpc_slice_unref(u->details);
	gpr_free((void *)u->error_string);
	grpc_completion_queue_shutdown(u->cq);
	while (grpc_completion_queue_next(u->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
					  NULL).type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(u->cq);
}

static grpc_call_error unary_start(struct unary *u)
{
	grpc_op ops[6];

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = u->send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->initial_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &u->recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &u->trailing_md;
	ops[5].data.recv_status_on_client.status = &u->status;
	ops[5].data.recv_status_on_client.status_details = &u->details;
	ops[5].data.recv_status_on_client.error_string = &u->error_string;
	return grpc_call_start_batch(u->call, ops, ARRAY_SIZE(ops), u, NULL);
}

static void set_msg(char *errmsg, size_t errlen, const struct unary *u)
{
	size_t len = GRPC_SLICE_LENGTH(u->details);

	if (!errlen)
		return;
	if (len)
		snprintf(errmsg, errlen, "%.*s", (int)len,
			 (const char *)GRPC_SLICE_START_PTR(u->details));
	else if (u->error_string)
		snprintf(errmsg, errlen, "%s", u->error_string);
	else
		snprintf(errmsg, errlen, "%s", rpc_status_name(u->status));
}

grpc_status_code rpc_call(struct rpc_client *c, const char *method,
			  const ProtobufCMessage *req,
			  const ProtobufCMessageDescriptor *resp_desc,
			  ProtobufCMessage **resp, unsigned timeout_ms,
			  char *errmsg, size_t errlen)
{
	struct unary u;
	gpr_timespec deadline;
	grpc_event ev;

	*resp = NULL;
	if (errlen)
		errmsg[0] = '\0';
	memset(&u, 0, sizeof(u));
	u.details = grpc_empty_slice();
	grpc_metadata_array_init(&u.initial_md);
	grpc_metadata_array_init(&u.trailing_md);
	u.cq = grpc_completion_queue_create_for_next(NULL);
	deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
				gpr_time_from_millis(timeout_ms ? timeout_ms
							       : DEFAULT_TIMEOUT_MS,
						     GPR_TIMESPAN));
	u.call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS,
					  u.cq, grpc_slice_from_static_string(method),
					  NULL, deadline, NULL);
	u.send = rpc_encode(req);
	if (unary_start(&u) != GRPC_CALL_OK) {
		snprintf(errmsg, errlen, "%s: cannot start call", method);
		u.status = GRPC_STATUS_INTERNAL;
		goto out;
	}
	/* The core enforces the deadline, so this returns by then. */
	ev = grpc_completion_queue_next(u.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
		snprintf(errmsg, errlen, "%s: call failed locally", method);
		u.status = GRPC_STATUS_INTERNAL;
		goto out;
	}
	if (u.status != GRPC_STATUS_OK) {
		set_msg(errmsg, errlen, &u);
		goto out;
	}
	*resp = u.recv ? rpc_decode(u.recv, resp_desc) : NULL;
	if (!*resp) {
		snprintf(errmsg, errlen, "%s: response is not a valid %s", method,
			 resp_desc->name);
		u.status = GRPC_STATUS_INTERNAL;
	}
out:
	unary_release(&u);
	return u.status;
}
