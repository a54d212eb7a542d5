/* urbd-attach: attach urbd volumes as local block devices (csi/attach.h).
 *
 *   urbd-attach nvme connect --traddr A --trsvcid P --nqn N [--ctrl-loss-tmo S]
 *                            [--keep-alive-tmo S] [--timeout-ms MS]
 *   urbd-attach nvme find --nqn N
 *   urbd-attach nvme disconnect --nqn N
 *
 * connect and find print the block device (/dev/nvmeXnY) on stdout.
 * Exit status: 0 done, 1 failed (or find: not connected), 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
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

int main(int argc, char **argv)
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

	log_set_level(LOG_LVL_WARN);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	if (argc < 3)
		return usage(argc < 2 ? "missing transport (nvme)" : "missing verb");
	const char *transport = argv[1], *verb = argv[2];
	if (strcmp(transport, "nvme") != 0)
		return usage(strcmp(transport, "nbd") == 0 ? "nbd is not implemented yet"
							    : "unknown transport (nvme)");
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
