/* urbd-attach: attach urbd volumes as local block devices (csi/attach.h).
 *
 *   urbd-attach nvme connect --traddr A --trsvcid P --nqn N [--ctrl-loss-tmo S]
 *                            [--keep-alive-tmo S] [--timeout-ms MS]
 *   urbd-attach nvme find --nqn N
 *   urbd-attach nvme disconnect --nqn N
 *   urbd-attach nbd connect (--host H [--port P] | --unix PATH) --export E
 *                           [--connections N] [--timeout S] [--dead-conn-timeout S]
 *                           [--block-size B] [--timeout-ms MS]
 *   urbd-attach nbd find (--host H [--port P] | --unix PATH) --export E | --backend ID
 *   urbd-attach nbd disconnect (--host H [--port P] | --unix PATH) --export E
 *                              | --backend ID | --device /dev/nbdN  [--timeout-ms MS]
 *
 * connect and find print the block device (/dev/nvmeXnY, /dev/nbdN) on
 * stdout. Exit status: 0 done, 1 failed (or find: not connected), 2 usage
 * error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach.h"
#include "log.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
	"usage: urbd-attach nvme connect --traddr ADDR --trsvcid PORT --nqn NQN\n"
	"                        [--ctrl-loss-tmo S] [--keep-alive-tmo S] [--timeout-ms MS]\n"
	"       urbd-attach nvme find --nqn NQN\n"
	"       urbd-attach nvme disconnect --nqn NQN\n"
	"       urbd-attach nbd connect (--host HOST [--port PORT] | --unix PATH) --export NAME\n"
	"                        [--connections N] [--timeout S] [--dead-conn-timeout S]\n"
	"                        [--block-size BYTES] [--timeout-ms MS]\n"
	"       urbd-attach nbd find (--host HOST [--port PORT] | --unix PATH) --export NAME\n"
	"                        | --backend ID\n"
	"       urbd-attach nbd disconnect (--host HOST [--port PORT] | --unix PATH) --export NAME\n"
	"                        | --backend ID | --device /dev/nbdN  [--timeout-ms MS]\n"
	"       [-v|--verbose] before or after the verb: info logging\n"
	"connect and find print the block device. Exit status: 0 done, 1 failed\n"
	"(find: not connected), 2 usage error.\n";

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "urbd-attach: %s\n", why);
	fputs(usage_text, stderr);
	return EXIT_USAGE;
}

static int parse_int(const char *s, int min, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < min || v > 1000000000)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int nvme_main(int argc, char **argv, const char *verb)
{
	static const struct option opts[] = {
		{ "traddr", required_argument, NULL, 'a' },
		{ "trsvcid", required_argument, NULL, 's' },
		{ "nqn", required_argument, NULL, 'n' },
		{ "ctrl-loss-tmo", required_argument, NULL, 'l' },
		{ "keep-alive-tmo", required_argument, NULL, 'k' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct attach_nvme_target t = { .transport = "tcp" };
	int timeout_ms = 10000, c;
	char dev[64];

	optind = 3;
	while ((c = getopt_long(argc, argv, "a:s:n:l:k:t:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'a': t.traddr = optarg; break;
		case 's': t.trsvcid = optarg; break;
		case 'n': t.subsysnqn = optarg; break;
		case 'l':
			if (parse_int(optarg, -1, &t.ctrl_loss_tmo) < 0)
				return usage("bad --ctrl-loss-tmo");
			break;
		case 'k':
			if (parse_int(optarg, 0, &t.keep_alive_tmo) < 0)
				return usage("bad --keep-alive-tmo");
			break;
		case 't':
			if (parse_int(optarg, 0, &timeout_ms) < 0)
				return usage("bad --timeout-ms");
			break;
		case 'v': log_set_level(LOG_LVL_INFO); break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: return usage(NULL);
		}
	}
	if (optind < argc)
		return usage("unexpected argument");
	if (!t.subsysnqn)
		return usage("--nqn is required");

	int rc;
	if (!strcmp(verb, "connect")) {
		if (!t.traddr || !t.trsvcid)
			return usage("connect needs --traddr and --trsvcid");
		if (attach_nvme_target_validate(&t) < 0)
			return EXIT_USAGE;
		rc = attach_nvme_connect(&t, dev, sizeof(dev), timeout_ms);
	} else if (!strcmp(verb, "find")) {
		if (t.traddr || t.trsvcid)
			return usage("find takes only --nqn");
		rc = attach_nvme_find(t.subsysnqn, dev, sizeof(dev));
		if (rc == -ENOENT) {
			fprintf(stderr, "urbd-attach: %s: not connected\n", t.subsysnqn);
			return EXIT_FAIL;
		}
	} else if (!strcmp(verb, "disconnect")) {
		if (t.traddr || t.trsvcid)
			return usage("disconnect takes only --nqn");
		rc = attach_nvme_disconnect(t.subsysnqn);
		if (rc == 0)
			return EXIT_OK;
	} else {
		return usage("unknown verb (connect, find, disconnect)");
	}
	/* connect's arguments were validated above: its EINVAL is the kernel's */
	if (rc == -EINVAL && strcmp(verb, "connect") != 0)
		return EXIT_USAGE;
	if (rc < 0) {
		fprintf(stderr, "urbd-attach: nvme %s %s: %s\n", verb, t.subsysnqn, strerror(-rc));
		return EXIT_FAIL;
	}
	printf("%s\n", dev);
	return EXIT_OK;
}

/* nbd: the target from --host/--port/--unix/--export, or --backend ID
 * for find and disconnect, or --device for disconnect */
static int nbd_main(int argc, char **argv, const char *verb)
{
	static const struct option opts[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "unix", required_argument, NULL, 'u' },
		{ "export", required_argument, NULL, 'e' },
		{ "connections", required_argument, NULL, 'C' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "dead-conn-timeout", required_argument, NULL, 'D' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "backend", required_argument, NULL, 'B' },
		{ "device", required_argument, NULL, 'd' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct attach_nbd_target t = { 0 };
	const char *backend = NULL, *device = NULL;
	char id[ATTACH_NBD_BACKEND_MAX], dev[64];
	int timeout_ms = 10000, bs = 0, c, rc;
	bool tuned = false; /* a connect-only option was given */

	optind = 3;
	while ((c = getopt_long(argc, argv, "H:p:u:e:C:T:D:b:B:d:t:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'H': t.host = optarg; break;
		case 'p': t.port = optarg; break;
		case 'u': t.unix_path = optarg; break;
		case 'e': t.export_name = optarg; break;
		case 'B': backend = optarg; break;
		case 'd': device = optarg; break;
		case 'C':
			if (parse_int(optarg, 1, &t.connections) < 0)
				return usage("bad --connections");
			tuned = true;
			break;
		case 'T':
			if (parse_int(optarg, -1, &t.timeout_s) < 0)
				return usage("bad --timeout");
			tuned = true;
			break;
		case 'D':
			if (parse_int(optarg, 0, &t.dead_conn_timeout_s) < 0)
				return usage("bad --dead-conn-timeout");
			tuned = true;
			break;
		case 'b':
			if (parse_int(optarg, 512, &bs) < 0)
				return usage("bad --block-size");
			t.block_size = (unsigned)bs;
			tuned = true;
			break;
		case 't':
			if (parse_int(optarg, 0, &timeout_ms) < 0)
				return usage("bad --timeout-ms");
			break;
		case 'v': log_set_level(LOG_LVL_INFO); break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		default: return usage(NULL);
		}
	}
	if (optind < argc)
		return usage("unexpected argument");
	bool by_target = t.host || t.port || t.unix_path || t.export_name;
	if ((by_target ? 1 : 0) + (backend ? 1 : 0) + (device ? 1 : 0) != 1)
		return usage("name the volume once: --host/--unix with --export, --backend, or "
			     "--device (disconnect)");
	if (by_target) {
		if (!t.export_name || (!t.host && !t.unix_path))
			return usage("--export and --host (or --unix) go together");
		if (attach_nbd_target_validate(&t) < 0)
			return EXIT_USAGE;
		attach_nbd_backend_id(&t, id, sizeof(id));
		backend = id;
	}
	if (tuned && strcmp(verb, "connect") != 0)
		return usage("--connections, --timeout, --dead-conn-timeout and --block-size are "
			     "for connect");

	if (!strcmp(verb, "connect")) {
		if (!by_target)
			return usage("connect needs --host (or --unix) and --export");
		rc = attach_nbd_connect(&t, dev, sizeof(dev), timeout_ms);
	} else if (!strcmp(verb, "find")) {
		if (device)
			return usage("find takes a target or --backend");
		rc = attach_nbd_find(backend, dev, sizeof(dev));
		if (rc == -ENOENT) {
			fprintf(stderr, "urbd-attach: %s: not connected\n", backend);
			return EXIT_FAIL;
		}
	} else if (!strcmp(verb, "disconnect")) {
		rc = device ? attach_nbd_disconnect(device, timeout_ms)
			    : attach_nbd_disconnect_backend(backend, timeout_ms);
		if (rc == 0)
			return EXIT_OK;
		if (rc == -EINVAL && device)
			return EXIT_USAGE;
	} else {
		return usage("unknown verb (connect, find, disconnect)");
	}
	if (rc < 0) {
		fprintf(stderr, "urbd-attach: nbd %s %s: %s\n", verb, device ? device : backend,
			strerror(-rc));
		return EXIT_FAIL;
	}
	printf("%s\n", dev);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	log_set_level(LOG_LVL_WARN);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	/* -v between the transport and the verb: drop it, the verb is argv[2] */
	while (argc >= 3 && (!strcmp(argv[2], "-v") || !strcmp(argv[2], "--verbose"))) {
		log_set_level(LOG_LVL_INFO);
		memmove(&argv[2], &argv[3], (size_t)(argc - 2) * sizeof(*argv)); /* with NULL */
		argc--;
	}
	if (argc < 3)
		return usage(argc < 2 ? "missing transport (nvme, nbd)" : "missing verb");
	if (!strcmp(argv[1], "nvme"))
		return nvme_main(argc, argv, argv[2]);
	if (!strcmp(argv[1], "nbd"))
		return nbd_main(argc, argv, argv[2]);
	return usage("unknown transport (nvme, nbd)");
}
