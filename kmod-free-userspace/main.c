/* urbd: the storage daemon.
 *
 * With no configuration it keeps its store in ./var/urbd, serves NBD on
 * 127.0.0.1:10809 and its control API on ./var/urbd/control.sock, and
 * creates a 1 GiB volume "demo" when the store is empty. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "nbd/nbd_server.h"
#include "nvmf/nvmf_server.h"
#include "reactor.h"
#include "../replication/repl_auth.h"
#include "../replication/repl_listener.h"
#include "store.h"
#include "util.h"
#include "volmgr_internal.h"

struct config {
	char *store;
	char *nbd_listen;
	char *nbd_unix;
	char *nvmf_listen;
	char *control;
	char *control_tcp;
	char *tls_cert, *tls_key, *tls_ca;
	char *default_volume; /* "name:size" or "none" */
	char *node_id;
	char *zone;
	char *repl_listen, *repl_secret;
	unsigned reactors;
	unsigned poll_us;
};

static const struct option long_opts[] = {
	{ "store", required_argument, NULL, 's' },
	{ "nbd-listen", required_argument, NULL, 'l' },
	{ "nbd-unix", required_argument, NULL, 'u' },
	{ "nvmf-listen", required_argument, NULL, 4 },
	{ "control", required_argument, NULL, 'c' },
	{ "control-tcp", required_argument, NULL, 't' },
	{ "tls-cert", required_argument, NULL, 1 },
	{ "tls-key", required_argument, NULL, 2 },
	{ "tls-ca", required_argument, NULL, 3 },
	{ "default-volume", required_argument, NULL, 'd' },
	{ "node-id", required_argument, NULL, 'n' },
	{ "zone", required_argument, NULL, 'z' },
	{ "repl-listen", required_argument, NULL, 5 },
	{ "repl-secret", required_argument, NULL, 6 },
	{ "reactors", required_argument, NULL, 'r' },
	{ "poll-us", required_argument, NULL, 7 },
	{ "log-level", required_argument, NULL, 'L' },
	{ "config", required_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: urbd [options]\n"
"  --store DIR            replica store directory (default ./var/urbd)\n"
"  --nbd-listen HOST:PORT NBD over TCP (default 127.0.0.1:10809; 'none' to disable)\n"
"  --nbd-unix PATH        NBD over a unix socket (default: none)\n"
"  --nvmf-listen HOST:PORT NVMe/TCP target (e.g. 127.0.0.1:4420; default none)\n"
"  --control PATH         control API unix socket (default STORE/control.sock)\n"
"  --control-tcp ADDR     control API over TCP, needs --tls-cert/--tls-key/--tls-ca\n"
"  --default-volume N:SZ  volume created when the store is empty (default demo:1G;\n"
"                         'none' to create nothing)\n"
"  --node-id ID           this node's name (default: hostname)\n"
"  --zone ZONE            this node's availability zone\n"
"  --repl-listen HOST:PORT replication listener for peers (default none)\n"
"  --repl-secret FILE     shared secret peers prove (mode 0400/0440); needed\n"
"                         for replicated volumes\n"
"  --reactors N           io_uring reactor threads (default: online CPUs)\n"
"  --poll-us N            busy-poll N us after each completion before sleeping\n"
"                         (default 0: sleep at once; see README.md)\n"
"  --log-level LEVEL      err, warn, info (default), debug\n"
"  --config FILE          'key = value' lines; keys are the long option names\n");
}

static int set_opt(struct config *c, int opt, const char *val);

static int load_config_file(struct config *c, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	int lineno = 0;

	if (!f) {
		fprintf(stderr, "urbd: cannot open config %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *k = line, *v, *end;
		const struct option *o;

		lineno++;
		while (*k == ' ' || *k == '\t')
			k++;
		if (*k == '#' || *k == '\n' || *k == '\0')
			continue;
		v = strchr(k, '=');
		if (!v)
			goto bad;
		*v++ = '\0';
		for (end = v + strlen(v); end > v && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'); )
			*--end = '\0';
		while (*v == ' ' || *v == '\t')
			v++;
		for (end = k + strlen(k); end > k && (end[-1] == ' ' || end[-1] == '\t'); )
			*--end = '\0';
		for (o = long_opts; o->name; o++)
			if (strcmp(o->name, k) == 0 && o->has_arg == required_argument &&
			    o->val != 'f')
				break;
		if (!o->name || set_opt(c, o->val, v) < 0)
			goto bad;
	}
	fclose(f);
	return 0;
bad:
	fprintf(stderr, "urbd: %s:%d: not a valid 'key = value' setting\n", path, lineno);
	fclose(f);
	return -1;
}

static int set_opt(struct config *c, int opt, const char *val)
{
	char **dst = NULL;
	int lvl;

	switch (opt) {
	case 's': dst = &c->store; break;
	case 'l': dst = &c->nbd_listen; break;
	case 'u': dst = &c->nbd_unix; break;
	case 'c': dst = &c->control; break;
	case 't': dst = &c->control_tcp; break;
	case 1: dst = &c->tls_cert; break;
	case 2: dst = &c->tls_key; break;
	case 3: dst = &c->tls_ca; break;
	case 4: dst = &c->nvmf_listen; break;
	case 5: dst = &c->repl_listen; break;
	case 6: dst = &c->repl_secret; break;
	case 'd': dst = &c->default_volume; break;
	case 'n': dst = &c->node_id; break;
	case 'z': dst = &c->zone; break;
	case 'r':
		c->reactors = (unsigned)strtoul(val, NULL, 10);
		if (c->reactors < 1 || c->reactors > 64) {
			fprintf(stderr, "urbd: --reactors must be 1..64\n");
			return -1;
		}
		return 0;
	case 7: {
		char *end;
		unsigned long us = strtoul(val, &end, 10);

		if (!*val || *end || us > 10000) {
			fprintf(stderr, "urbd: --poll-us must be 0..10000\n");
			return -1;
		}
		c->poll_us = (unsigned)us;
		return 0;
	}
	case 'L':
		lvl = log_parse_level(val);
		if (lvl < 0) {
			fprintf(stderr, "urbd: unknown log level '%s'\n", val);
			return -1;
		}
		log_set_level(lvl);
		return 0;
	case 'f':
		return load_config_file(c, val);
	default:
		return -1;
	}
	free(*dst);
	*dst = strdup(val);
	return 0;
}

static int create_default_volume(struct volmgr *m, const char *spec)
{
	char name[URBD_NAME_MAX + 1], err[256];
	const char *colon = strchr(spec, ':');
	uint64_t size;
	int ret;

	if (strcmp(spec, "none") == 0)
		return 0;
	if (!colon || (size_t)(colon - spec) > URBD_NAME_MAX ||
	    urbd_parse_size(colon + 1, &size) < 0) {
		log_err("urbd", "--default-volume wants NAME:SIZE, got '%s'", spec);
		return -EINVAL;
	}
	memcpy(name, spec, (size_t)(colon - spec));
	name[colon - spec] = '\0';
	ret = volmgr_create(m, name, size, err, sizeof(err));
	if (ret)
		log_err("urbd", "creating default volume %s: %s", name, err);
	return ret;
}

static char *path_join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		return NULL;
	return p;
}

int main(int argc, char **argv)
{
	struct config cfg = { 0 };
	struct reactor **reactors = NULL;
	struct store *store = NULL;
	struct volmgr *vm = NULL;
	struct nbd_server *nbd = NULL;
	struct nvmf_server *nvmf = NULL;
	struct control_server *ctl = NULL;
	struct control_config ccfg = { 0 };
	struct repl_secret secret = { 0 };
	struct repl_listener *repl = NULL;
	struct volmgr_config vcfg;
	char hostname[64] = "localhost";
	sigset_t sigs;
	int opt, sig, ret = 1;
	unsigned n;

	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
		if (opt == 'V') {
			printf("urbd 0.1.0\n");
			return 0;
		}
		if (opt == '?' || set_opt(&cfg, opt, optarg) < 0) {
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "urbd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!cfg.store)
		cfg.store = strdup("./var/urbd");
	if (!cfg.nbd_listen)
		cfg.nbd_listen = strdup("127.0.0.1:10809");
	if (strcmp(cfg.nbd_listen, "none") == 0)
		cfg.nbd_listen[0] = '\0';
	if (!cfg.control)
		cfg.control = path_join(cfg.store, "control.sock");
	if (!cfg.default_volume)
		cfg.default_volume = strdup("demo:1G");
	gethostname(hostname, sizeof(hostname) - 1);
	if (!cfg.node_id)
		cfg.node_id = strdup(hostname);
	if (!cfg.zone)
		cfg.zone = strdup(getenv("URBD_ZONE") ? getenv("URBD_ZONE") : "");
	n = cfg.reactors ? cfg.reactors : (unsigned)MAX(1L, sysconf(_SC_NPROCESSORS_ONLN));

	/* Signals go to the main thread only: block them before any thread
	 * starts so every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	{ /* ./var may not exist yet */
		char *dup = strdup(cfg.store), *p;

		for (p = dup + 1; (p = strchr(p, '/')); p++) {
			*p = '\0';
			mkdir(dup, 0755);
			*p = '/';
		}
		free(dup);
	}
	if (store_open(cfg.store, &store) < 0)
		goto out;
	reactors = calloc(n, sizeof(*reactors));
	for (unsigned i = 0; i < n; i++) {
		reactors[i] = reactor_new((int)i, 512);
		if (reactors[i])
			reactor_set_poll(reactors[i], cfg.poll_us);
		if (!reactors[i] || reactor_start(reactors[i]) < 0) {
			log_err("urbd", "cannot start reactor %u (is io_uring "
				"available? kernel.io_uring_disabled?)", i);
			goto out;
		}
	}
	if (cfg.repl_secret && repl_secret_load(cfg.repl_secret, &secret) < 0)
		goto out;
	vcfg = (struct volmgr_config){ .node_id = cfg.node_id, .zone = cfg.zone,
		.nbd_listen = cfg.nbd_listen, .nbd_unix = cfg.nbd_unix,
		.repl_secret = cfg.repl_secret ? &secret : NULL };
	if (volmgr_new(store, reactors, n, &vcfg, &vm) < 0)
		goto out;
	volmgr_load(vm);
	if (volmgr_count(vm) == 0 && create_default_volume(vm, cfg.default_volume) < 0)
		goto out;
	{
		struct nbd_server_config ncfg = { .tcp_listen = cfg.nbd_listen,
						  .unix_path = cfg.nbd_unix };

		if (nbd_server_start(reactors[0], &ncfg, &volmgr_nbd_ops, vm, &nbd) < 0)
			goto out;
		if (*cfg.nbd_listen) { /* report the port bound, not a 0 */
			char bound[160];
			const char *colon = strrchr(cfg.nbd_listen, ':');

			snprintf(bound, sizeof(bound), "%.*s:%d",
				 (int)(colon - cfg.nbd_listen), cfg.nbd_listen,
				 nbd_server_port(nbd));
			volmgr_set_frontends(vm, bound, cfg.nbd_unix);
		}
	}
	if (cfg.repl_listen && strcmp(cfg.repl_listen, "none") != 0) {
		int port = 0;

		if (!cfg.repl_secret) {
			log_err("urbd", "--repl-listen needs --repl-secret: peers must prove it");
			goto out;
		}
		ret = repl_listener_start(reactors[0], cfg.repl_listen, volmgr_repl_route, vm,
					  &repl, &port);
		if (ret < 0) {
			log_err("urbd", "replication listener on %s: %s", cfg.repl_listen,
				strerror(-ret));
			ret = 1;
			goto out;
		}
		ret = 1;
		log_info("urbd", "replication listening on %s (port %d)", cfg.repl_listen, port);
	}
	if (cfg.nvmf_listen && strcmp(cfg.nvmf_listen, "none") != 0 &&
	    nvmf_server_start(reactors[0], cfg.nvmf_listen, &volmgr_nbd_ops, vm, &nvmf) < 0)
		goto out;
	ccfg.unix_path = cfg.control;
	ccfg.tcp_listen = cfg.control_tcp;
	ccfg.tls_cert = cfg.tls_cert;
	ccfg.tls_key = cfg.tls_key;
	ccfg.tls_ca = cfg.tls_ca;
	/* some calls wait long (a barrier until a cut-off peer times out, a
	 * delete for it): with two threads, two of those left `volume
	 * status` hanging (t-repl-barrier) */
	ccfg.threads = 6;
	if (control_start(vm, &ccfg, &ctl) < 0)
		goto out;
	log_info("urbd", "ready: node %s zone '%s', store %s, %u reactor(s)%s, "
		 "control %s", cfg.node_id, cfg.zone, cfg.store, n,
		 cfg.poll_us ? " busy-polling" : "", cfg.control);

	sigwait(&sigs, &sig);
	log_info("urbd", "%s: shutting down", strsignal(sig));
	ret = 0;
out:
	if (ctl)
		control_stop(ctl);
	if (nvmf)
		nvmf_server_stop(nvmf);
	if (nbd)
		nbd_server_stop(nbd);
	if (repl)
		repl_listener_stop(repl);
	if (vm)
		volmgr_free(vm);
	for (unsigned i = 0; reactors && i < n; i++)
		reactor_free(reactors[i]);
	free(reactors);
	store_close(store);
	free(cfg.store); free(cfg.nbd_listen); free(cfg.nbd_unix); free(cfg.nvmf_listen); free(cfg.control);
	free(cfg.control_tcp); free(cfg.tls_cert); free(cfg.tls_key); free(cfg.tls_ca);
	free(cfg.default_volume); free(cfg.node_id); free(cfg.zone);
	free(cfg.repl_listen); free(cfg.repl_secret);
	repl_secret_free(&secret);
	if (ret)
		log_err("urbd", "exiting after errors (see above)");
	return ret;
}
