/* urbdctl: the admin CLI over the urbd control API (proto/urbd/v1). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"

#define DEFAULT_SOCKET "./var/urbd/control.sock"
#define DEFAULT_TIMEOUT_MS 10000u

static const char usage_text[] =
	"usage: urbdctl [OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"Commands:\n"
	"  volume create NAME SIZE       create a volume (SIZE: 4096, 512M, 1G, 2TiB;\n"
	"                                a multiple of 4096 bytes); a replica of a\n"
	"                                replicated volume with:\n"
	"      --replicas ID=NODE@HOST:PORT[:diskless],...   the replica set\n"
	"      --local-id ID             which member this daemon is\n"
	"      --uuid UUID               the volume's uuid (from the first member)\n"
	"      --ack all|majority        --on-no-quorum io-error|suspend-io\n"
	"      --join                    a new member of an existing set (after\n"
	"                                add-replica on the others): fully synced\n"
	"      --bitmap-grain SIZE       bytes per dirty-bitmap bit (4K..16M, a\n"
	"                                power of two; default 64K)\n"
	"  volume add-replica NAME ID=NODE@HOST:PORT[:diskless] [--replace]\n"
	"                                on every current member: a new member\n"
	"                                (--replace: a new node in a taken slot)\n"
	"  volume remove-replica NAME ID on every remaining member\n"
	"  volume promote NAME [--force] make this replica the primary (--force:\n"
	"                                without quorum)\n"
	"  volume demote NAME            make it a secondary again\n"
	"  volume discard-my-data NAME   split brain: give up this (secondary)\n"
	"                                replica's changes; it is resynced from\n"
	"                                the peer it is split from\n"
	"  volume verify NAME            compare the replicas online, region by\n"
	"                                region (SHA-256), on the primary; waits\n"
	"                                and reports differing regions\n"
	"      --region SIZE             bytes per region, 4K..1M (default 1M)\n"
	"      --repair                  resync differing regions from the primary\n"
	"      --rate SIZE               read at most SIZE per second on each\n"
	"                                replica, 1M..1T (default: the resync rate)\n"
	"      --no-wait                 start it and return (result: volume status)\n"
	"  volume set NAME --resync-rate SIZE|unlimited|default\n"
	"                                this member's resync read rate per second\n"
	"                                (1M..1T; default: URBD_RESYNC_RATE_MB or\n"
	"                                250M), saved in the replica set; set it on\n"
	"                                every member (the primary's is used)\n"
	"  volume barrier NAME           on the primary: wait until every live,\n"
	"                                up-to-date replica has everything written\n"
	"                                so far on stable storage; lists them, and\n"
	"                                why the others are left out\n"
	"  volume list                   list volumes\n"
	"  volume status NAME            show one volume in detail\n"
	"  volume resize NAME SIZE       grow a volume to SIZE\n"
	"  volume delete NAME [--force]  delete a volume; --force disconnects its\n"
	"                                clients instead of refusing\n"
	"  node info                     node id, zone, store capacity, listeners\n"
	"  export list                   volumes served to clients, with addresses\n"
	"  help                          this text\n"
	"\n"
	"Options:\n"
	"  -s, --socket PATH       control socket (default: $URBD_SOCKET, else\n"
	"                          " DEFAULT_SOCKET ")\n"
	"  -e, --endpoint H:P      reach the daemon over TCP with mutual TLS instead;\n"
	"                          needs all of:\n"
	"      --tls-cert FILE     client certificate (PEM)\n"
	"      --tls-key FILE      client private key (PEM, unencrypted)\n"
	"      --tls-ca FILE       CA that signed the daemon's certificate\n"
	"      --tls-server-name N name to check the daemon's certificate against\n"
	"  -j, --json              JSON output (sizes in bytes, times in ns)\n"
	"  -t, --timeout MS        give up after MS milliseconds (default 10000)\n"
	"  -h, --help              this text\n"
	"  -V, --version           print the version\n"
	"\n"
	"Exit status:\n"
	"  0  success\n"
	"  1  the daemon reported an error (message on stderr)\n"
	"  2  usage error (nothing was sent to the daemon)\n"
	"  3  the daemon is not reachable (not running, no permission, timeout)\n"
	"  4  not found (no such volume)\n"
	"  5  already exists\n"
	"  6  volume verify: the replicas differ\n";

int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("urbdctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'urbdctl --help'.\n", stderr);
	return CTL_EXIT_USAGE;
}

/* The channel is made on first use so that usage errors never need it. */
static int connect_client(struct ctl *c)
{
	if (c->client)
		return CTL_EXIT_OK;
	c->client = rpc_client_new(c->target, c->use_tls ? &c->tls : NULL);
	if (!c->client) {
		/* rpc_pem_load has logged which TLS file is wrong */
		fprintf(stderr, "urbdctl: cannot set up a connection to %s: %s\n",
			c->target, strerror(errno));
		return c->use_tls ? CTL_EXIT_USAGE : CTL_EXIT_ERROR;
	}
	return CTL_EXIT_OK;
}

static int unreachable(const struct ctl *c, const char *detail)
{
	if (c->socket_path && access(c->socket_path, F_OK) == 0 &&
	    access(c->socket_path, R_OK | W_OK) < 0 && errno == EACCES) {
		fprintf(stderr, "urbdctl: cannot reach urbd at %s: permission denied "
			"(the control socket is root-only)\n", c->target);
		return CTL_EXIT_UNREACHABLE;
	}
	fprintf(stderr, "urbdctl: cannot reach urbd at %s: is the daemon running?\n",
		c->target);
	/* over TCP the cause is as often TLS as a stopped daemon: say which */
	if (!c->socket_path && detail[0])
		fprintf(stderr, "urbdctl: (%s)\n", detail);
	return CTL_EXIT_UNREACHABLE;
}

int ctl_call(struct ctl *c, const char *method, const ProtobufCMessage *req,
	     const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp)
{
	char msg[1024];
	grpc_status_code st;
	int ret;

	ret = connect_client(c);
	if (ret)
		return ret;
	st = rpc_call(c->client, method, req, resp_desc, resp, c->timeout_ms,
		      msg, sizeof(msg));
	c->status = st;
	switch (st) {
	case GRPC_STATUS_OK:
		return CTL_EXIT_OK;
	case GRPC_STATUS_UNAVAILABLE:
		return unreachable(c, msg);
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		fprintf(stderr, "urbdctl: urbd at %s did not answer within %u ms\n",
			c->target, c->timeout_ms);
		return CTL_EXIT_UNREACHABLE;
	case GRPC_STATUS_NOT_FOUND:
		fprintf(stderr, "urbdctl: %s\n", msg);
		return CTL_EXIT_NOT_FOUND;
	case GRPC_STATUS_ALREADY_EXISTS:
		fprintf(stderr, "urbdctl: %s\n", msg);
		return CTL_EXIT_EXISTS;
	case GRPC_STATUS_UNIMPLEMENTED:
		fprintf(stderr, "urbdctl: this urbd does not support %s (older "
			"version?): %s\n", method, msg);
		return CTL_EXIT_ERROR;
	default:
		fprintf(stderr, "urbdctl: %s\n", msg);
		return CTL_EXIT_ERROR;
	}
}

enum { OPT_TLS_CERT = 256, OPT_TLS_KEY, OPT_TLS_CA, OPT_TLS_NAME, OPT_REPLICAS,
       OPT_LOCAL_ID, OPT_UUID, OPT_ACK, OPT_NOQ, OPT_REGION, OPT_REPAIR, OPT_NO_WAIT,
       OPT_JOIN, OPT_REPLACE, OPT_GRAIN, OPT_RATE, OPT_RESYNC_RATE };

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "endpoint", required_argument, NULL, 'e' },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "tls-ca", required_argument, NULL, OPT_TLS_CA },
	{ "tls-server-name", required_argument, NULL, OPT_TLS_NAME },
	{ "replicas", required_argument, NULL, OPT_REPLICAS },
	{ "local-id", required_argument, NULL, OPT_LOCAL_ID },
	{ "uuid", required_argument, NULL, OPT_UUID },
	{ "ack", required_argument, NULL, OPT_ACK },
	{ "on-no-quorum", required_argument, NULL, OPT_NOQ },
	{ "region", required_argument, NULL, OPT_REGION },
	{ "repair", no_argument, NULL, OPT_REPAIR },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "resync-rate", required_argument, NULL, OPT_RESYNC_RATE },
	{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
	{ "join", no_argument, NULL, OPT_JOIN },
	{ "replace", no_argument, NULL, OPT_REPLACE },
	{ "bitmap-grain", required_argument, NULL, OPT_GRAIN },
	{ "json", no_argument, NULL, 'j' },
	{ "timeout", required_argument, NULL, 't' },
	{ "force", no_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int parse_timeout(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > 3600000ul || s[0] == '-')
		return ctl_usage_error("invalid --timeout '%s': milliseconds, 1..3600000", s);
	*out = (unsigned)v;
	return 0;
}

/* -1: keep going; otherwise the exit code. */
static int parse_options(struct ctl *c, int argc, char **argv,
			 const char **socket_opt, const char **endpoint)
{
	int opt, ret;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":s:e:jt:fhV", long_opts, NULL)) != -1) {
		switch (opt) {
		case 's': *socket_opt = optarg; break;
		case 'e': *endpoint = optarg; break;
		case OPT_TLS_CERT: c->tls.cert = optarg; break;
		case OPT_TLS_KEY: c->tls.key = optarg; break;
		case OPT_TLS_CA: c->tls.ca = optarg; break;
		case OPT_TLS_NAME: c->tls.server_name = optarg; break;
		case OPT_REPLICAS: c->replicas = optarg; break;
		case OPT_UUID: c->uuid = optarg; break;
		case OPT_ACK: c->ack = optarg; break;
		case OPT_NOQ: c->on_no_quorum = optarg; break;
		case OPT_REGION: c->region = optarg; break;
		case OPT_RATE: c->rate = optarg; break;
		case OPT_RESYNC_RATE: c->resync_rate = optarg; break;
		case OPT_REPAIR: c->repair = true; break;
		case OPT_NO_WAIT: c->no_wait = true; break;
		case OPT_JOIN: c->join = true; break;
		case OPT_REPLACE: c->replace = true; break;
		case OPT_GRAIN: c->bitmap_grain = optarg; break;
		case OPT_LOCAL_ID: {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (end == optarg || *end || v < 0 || v > 7)
				return ctl_usage_error("--local-id must be 0..7");
			c->local_id = (int)v;
			break;
		}
		case 'j': c->json = true; break;
		case 'f': c->force = true; break;
		case 't':
			ret = parse_timeout(optarg, &c->timeout_ms);
			if (ret)
				return ret;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return CTL_EXIT_OK;
		case 'V':
			printf("urbdctl %s\n", URBD_VERSION);
			return CTL_EXIT_OK;
		case ':':
			return ctl_usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			/* optopt names a bad short option; for a bad long one
			 * getopt has already stepped past it */
			if (optopt)
				return ctl_usage_error("unknown option '-%c'", optopt);
			return ctl_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	return -1;
}

/* Where to connect: --socket, --endpoint (+TLS), $URBD_SOCKET, default. */
static int resolve_target(struct ctl *c, const char *socket_opt,
			  const char *endpoint, char *buf, size_t len)
{
	bool any_tls = c->tls.cert || c->tls.key || c->tls.ca || c->tls.server_name;

	if (socket_opt && endpoint)
		return ctl_usage_error("--socket and --endpoint exclude each other");
	if (endpoint) {
		if (!c->tls.cert || !c->tls.key || !c->tls.ca)
			return ctl_usage_error("--endpoint needs --tls-cert, --tls-key "
					       "and --tls-ca (the TCP API is mutual TLS only)");
		c->target = endpoint;
		c->use_tls = true;
		return 0;
	}
	if (any_tls)
		return ctl_usage_error("--tls-* options only apply with --endpoint");
	c->socket_path = socket_opt ? socket_opt : getenv("URBD_SOCKET");
	if (!c->socket_path || !c->socket_path[0])
		c->socket_path = DEFAULT_SOCKET;
	if ((size_t)snprintf(buf, len, "unix:%s", c->socket_path) >= len)
		return ctl_usage_error("socket path too long: %s", c->socket_path);
	c->target = buf;
	return 0;
}

static int dispatch(struct ctl *c, int argc, char **argv)
{
	const char *cmd = argv[0];

	if (c->force && !(strcmp(cmd, "volume") == 0 && argc > 1 &&
			  (strcmp(argv[1], "delete") == 0 || strcmp(argv[1], "rm") == 0 ||
			   strcmp(argv[1], "promote") == 0)))
		return ctl_usage_error("--force only applies to 'volume delete' and "
				       "'volume promote'");
	if ((c->replicas || c->uuid || c->ack || c->on_no_quorum || c->local_id >= 0) &&
	    !(strcmp(cmd, "volume") == 0 && argc > 1 && strcmp(argv[1], "create") == 0))
		return ctl_usage_error("--replicas, --local-id, --uuid, --ack and "
				       "--on-no-quorum only apply to 'volume create'");
	if (strcmp(cmd, "volume") == 0)
		return ctl_cmd_volume(c, argc - 1, argv + 1);
	if (strcmp(cmd, "node") == 0)
		return ctl_cmd_node(c, argc - 1, argv + 1);
	if (strcmp(cmd, "export") == 0)
		return ctl_cmd_export(c, argc - 1, argv + 1);
	return ctl_usage_error("unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
	struct ctl c = { .timeout_ms = DEFAULT_TIMEOUT_MS, .local_id = -1 };
	const char *socket_opt = NULL, *endpoint = NULL;
	char target[PATH_MAX + 8];
	int ret;

	/* The CLI reports failures itself, in its own words; the library
	 * logs (gRPC's included, see rpc_init) only matter when debugging. */
	log_set_level(getenv("URBDCTL_DEBUG") ? LOG_LVL_DBG : LOG_LVL_ERR);
	ret = parse_options(&c, argc, argv, &socket_opt, &endpoint);
	if (ret >= 0)
		return ret;
	if (optind >= argc)
		return ctl_usage_error("no command given");
	if (strcmp(argv[optind], "help") == 0) {
		fputs(usage_text, stdout);
		return CTL_EXIT_OK;
	}
	ret = resolve_target(&c, socket_opt, endpoint, target, sizeof(target));
	if (ret)
		return ret;
	ret = dispatch(&c, argc - optind, argv + optind);
	rpc_client_free(c.client);
	return ret;
}
