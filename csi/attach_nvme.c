/* csi/attach_nvme.c: NVMe/TCP attach through libnvme (the kernel's
 * nvme-tcp does the I/O; this file only connects, finds and disconnects).
 *
 * The kernel is the source of truth: nothing is remembered between calls.
 * Every call scans the sysfs topology afresh, which is what makes connect
 * and disconnect idempotent across processes and restarts of the plugin.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <libnvme.h>

#include "attach.h"
#include "log.h"

#define TAG "attach"
#define UUID_NQN_PREFIX "nqn.2014-08.org.nvmexpress:uuid:"
#define DEFAULT_CTRL_LOSS_TMO 600

/* ---- host identity ------------------------------------------------------ */

/* A version 4 UUID from getrandom(2): no OpenSSL in this binary, which
 * runs in minimal node images. */
static int uuid_generate(char out[ATTACH_HOSTID_LEN])
{
	uint8_t b[16];
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, ATTACH_HOSTID_LEN,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
	return 0;
}

/* 8-4-4-4-12 hex digits at the start of s */
static bool uuid_prefix(const char *s)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return s[36] == '\0';
}

/* read_line PATH: the first line, trimmed; -ENOENT when missing or empty */
static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char line[512];
	int rc = -ENOENT;
	if (fgets(line, sizeof(line), f)) {
		size_t n = strcspn(line, "\r\n");
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			n--;
		line[n] = '\0';
		if (n >= len) {
			log_err(TAG, "%s: %zu bytes, at most %zu allowed", path, n, len - 1);
			rc = -ENAMETOOLONG;
		} else if (n > 0) {
			memcpy(buf, line, n + 1);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

/* Written to a temporary file and renamed: a crash never leaves a
 * half-written identity that would make the host a stranger to its targets. */
static int write_atomic(const char *dir, const char *name, const char *value)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	int rc = 0;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = mkstemp(tmp);
	if (fd < 0) {
		rc = -errno;
		log_err(TAG, "create %s: %s", tmp, strerror(errno));
		return rc;
	}
	size_t n = strlen(value);
	if (fchmod(fd, 0644) < 0 || write(fd, value, n) != (ssize_t)n || write(fd, "\n", 1) != 1 ||
	    fsync(fd) < 0) {
		rc = errno ? -errno : -EIO;
		log_err(TAG, "write %s: %s", tmp, strerror(-rc));
		close(fd);
		unlink(tmp);
		return rc;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		rc = -errno;
		log_err(TAG, "rename %s -> %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return rc;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	log_info(TAG, "created %s: %s", path, value);
	return 0;
}

int attach_nvme_host_identity(const char *dir, char *hostnqn, size_t nqnlen, char *hostid,
			      size_t idlen)
{
	char p[PATH_MAX];
	int rc, lockfd = -1;

	if (!dir || !*dir || !hostnqn || !hostid || nqnlen < sizeof(UUID_NQN_PREFIX) + 36 ||
	    idlen < ATTACH_HOSTID_LEN)
		return -EINVAL;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		log_err(TAG, "mkdir %s: %s", dir, strerror(errno));
		return rc;
	}
	/* two first-time attaches at once must not invent two identities */
	lockfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0) {
		rc = -errno;
		log_err(TAG, "lock %s: %s", dir, strerror(errno));
		goto out;
	}

	snprintf(p, sizeof(p), "%s/hostid", dir);
	int id_rc = read_line(p, hostid, idlen);
	snprintf(p, sizeof(p), "%s/hostnqn", dir);
	int nqn_rc = read_line(p, hostnqn, nqnlen);
	if ((id_rc < 0 && id_rc != -ENOENT) || (nqn_rc < 0 && nqn_rc != -ENOENT)) {
		rc = id_rc < 0 && id_rc != -ENOENT ? id_rc : nqn_rc;
		log_err(TAG, "read host identity in %s: %s", dir, strerror(-rc));
		goto out;
	}
	if (id_rc == -ENOENT) {
		const char *s = nqn_rc == 0 ? strstr(hostnqn, ":uuid:") : NULL;

		if (s && uuid_prefix(s + 6)) {
			snprintf(hostid, idlen, "%s", s + 6);
		} else {
			rc = uuid_generate(hostid);
			if (rc < 0) {
				log_err(TAG, "getrandom: %s", strerror(-rc));
				goto out;
			}
		}
		rc = write_atomic(dir, "hostid", hostid);
		if (rc < 0)
			goto out;
	}
	if (nqn_rc == -ENOENT) {
		snprintf(hostnqn, nqnlen, UUID_NQN_PREFIX "%s", hostid);
		rc = write_atomic(dir, "hostnqn", hostnqn);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}

/* ---- validation --------------------------------------------------------- */

static bool printable(const char *s)
{
	for (; *s; s++)
		if (!isgraph((unsigned char)*s))
			return false;
	return true;
}

static int validate_nqn(const char *nqn)
{
	if (!nqn || !*nqn) {
		log_err(TAG, "no subsystem NQN");
		return -EINVAL;
	}
	if (strlen(nqn) >= ATTACH_NQN_MAX || strncmp(nqn, "nqn.", 4) != 0 || !printable(nqn)) {
		log_err(TAG, "'%s' is not an NQN (nqn.YYYY-MM.domain:name, < %d bytes)", nqn,
			ATTACH_NQN_MAX);
		return -EINVAL;
	}
	return 0;
}

int attach_nvme_target_validate(const struct attach_nvme_target *t)
{
	if (!t)
		return -EINVAL;
	if (t->transport && strcmp(t->transport, "tcp") != 0) {
		log_err(TAG, "transport '%s' not supported (only tcp)", t->transport);
		return -EINVAL;
	}
	if (!t->traddr || !*t->traddr || strlen(t->traddr) > 255 || !printable(t->traddr)) {
		log_err(TAG, "no or bad target address");
		return -EINVAL;
	}
	char *end;
	errno = 0;
	long port = t->trsvcid ? strtol(t->trsvcid, &end, 10) : 0;
	if (!t->trsvcid || !*t->trsvcid || *end || errno || port < 1 || port > 65535) {
		log_err(TAG, "bad target port '%s' (1..65535)", t->trsvcid ? t->trsvcid : "");
		return -EINVAL;
	}
	if (t->ctrl_loss_tmo < -1 || t->keep_alive_tmo < 0) {
		log_err(TAG, "bad timeouts: ctrl_loss_tmo %d, keep_alive_tmo %d", t->ctrl_loss_tmo,
			t->keep_alive_tmo);
		return -EINVAL;
	}
	return validate_nqn(t->subsysnqn);
}

/* ---- topology ----------------------------------------------------------- */

static nvme_root_t scan(void)
{
	/* libnvme logs through this stream; LOG_ERR keeps probing noise out */
	nvme_root_t r = nvme_create_root(stderr, LOG_ERR);
	if (!r) {
		log_err(TAG, "libnvme: create root: %s", strerror(errno));
		return NULL;
	}
	if (nvme_scan_topology(r, NULL, NULL) < 0) {
		int e = errno;
		if (e == ENOENT) {
			/* no /sys/class/nvme-subsystem: nvme-core not loaded, so
			 * nothing is connected; an empty tree says just that */
			nvme_free_tree(r);
			r = nvme_create_root(stderr, LOG_ERR);
			if (r)
				return r;
			e = errno;
		}
		log_err(TAG, "libnvme: scan topology: %s", strerror(e));
		nvme_free_tree(r);
		errno = e;
		return NULL;
	}
	return r;
}

static bool is_blockdev(const char *name, char *dev, size_t devlen)
{
	struct stat st;
	if (!name || snprintf(dev, devlen, "/dev/%s", name) >= (int)devlen)
		return false;
	return stat(dev, &st) == 0 && S_ISBLK(st.st_mode);
}

/* The namespace block device of subsysnqn. With native multipath the
 * device hangs off the subsystem (the path devices nvmeXcYnZ are hidden);
 * without it, off the controller. urbd exports one namespace per volume. */
static int lookup_dev(nvme_root_t r, const char *subsysnqn, char *dev, size_t devlen)
{
	nvme_host_t h;
	nvme_subsystem_t s;
	nvme_ctrl_t c;
	nvme_ns_t n;

	nvme_for_each_host(r, h) {
		nvme_for_each_subsystem(h, s) {
			const char *sn = nvme_subsystem_get_nqn(s);
			if (!sn || strcmp(sn, subsysnqn) != 0)
				continue;
			nvme_subsystem_for_each_ns(s, n) {
				if (is_blockdev(nvme_ns_get_name(n), dev, devlen))
					return 0;
			}
			nvme_subsystem_for_each_ctrl(s, c) {
				nvme_ctrl_for_each_ns(c, n) {
					if (is_blockdev(nvme_ns_get_name(n), dev, devlen))
						return 0;
				}
			}
		}
	}
	return -ENOENT;
}

int attach_nvme_find(const char *subsysnqn, char *dev, size_t devlen)
{
	if (validate_nqn(subsysnqn) < 0 || !dev || devlen == 0)
		return -EINVAL;
	nvme_root_t r = scan();
	if (!r)
		return -errno;
	int rc = lookup_dev(r, subsysnqn, dev, devlen);
	nvme_free_tree(r);
	if (rc < 0)
		dev[0] = '\0';
	return rc;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* libnvme reports connect failures as its own codes (>= 1000); callers
 * get a plain errno */
static int connect_errno(int e)
{
	switch (e) {
	case ENVME_CONNECT_ALREADY: return -EALREADY;
	case ENVME_CONNECT_CONNREFUSED: return -ECONNREFUSED;
	case ENVME_CONNECT_OPEN: return -ENODEV; /* no /dev/nvme-fabrics: nvme-tcp not loaded */
	case ENVME_CONNECT_INVAL:
	case ENVME_CONNECT_INVAL_TR:
	case ENVME_CONNECT_TRADDR:
	case ENVME_CONNECT_RESOLVE:
	case ENVME_CONNECT_ADDRFAM: return -EINVAL;
	case ENVME_CONNECT_ADDRINUSE: return -EADDRINUSE;
	case ENVME_CONNECT_OPNOTSUPP: return -EOPNOTSUPP;
	default: return e >= ENVME_CONNECT_RESOLVE ? -EIO : -e;
	}
}

int attach_nvme_connect(const struct attach_nvme_target *t, char *dev, size_t devlen,
			int timeout_ms)
{
	char hostnqn[ATTACH_NQN_MAX], hostid[ATTACH_HOSTID_LEN];
	char ctrl_name[64] = "";
	struct nvme_fabrics_config cfg;
	nvme_root_t r = NULL;
	int rc;

	rc = attach_nvme_target_validate(t);
	if (rc < 0 || !dev || devlen == 0)
		return -EINVAL;
	if (attach_nvme_find(t->subsysnqn, dev, devlen) == 0) {
		log_info(TAG, "%s: already connected as %s", t->subsysnqn, dev);
		return 0;
	}
	rc = attach_nvme_host_identity(ATTACH_NVME_CONF_DIR, hostnqn, sizeof(hostnqn), hostid,
				       sizeof(hostid));
	if (rc < 0)
		return rc;

	r = scan();
	if (!r)
		return -errno;
	nvme_host_t h = nvme_lookup_host(r, hostnqn, hostid);
	nvme_ctrl_t c = h ? nvme_create_ctrl(r, t->subsysnqn, "tcp", t->traddr, NULL, NULL,
					     t->trsvcid)
			  : NULL;
	if (!c) {
		rc = errno ? -errno : -ENOMEM;
		log_err(TAG, "%s: libnvme: create controller: %s", t->subsysnqn, strerror(-rc));
		goto out;
	}
	nvmf_default_config(&cfg);
	cfg.ctrl_loss_tmo = t->ctrl_loss_tmo ? t->ctrl_loss_tmo : DEFAULT_CTRL_LOSS_TMO;
	if (t->keep_alive_tmo)
		cfg.keep_alive_tmo = t->keep_alive_tmo;
	if (nvmf_add_ctrl(h, c, &cfg) < 0) {
		int e = errno;
		rc = connect_errno(e);
		nvme_free_ctrl(c);
		/* EALREADY: another attach won the race; its device is ours too */
		if (rc != -EALREADY) {
			log_err(TAG, "%s: connect to %s:%s: %s", t->subsysnqn, t->traddr, t->trsvcid,
				e >= ENVME_CONNECT_RESOLVE ? nvme_errno_to_string(e) : strerror(e));
			goto out;
		}
	} else {
		snprintf(ctrl_name, sizeof(ctrl_name), "%s", nvme_ctrl_get_name(c) ?: "?");
		log_info(TAG, "%s: connected controller %s to %s:%s (hostnqn %s)", t->subsysnqn,
			 ctrl_name, t->traddr, t->trsvcid, hostnqn);
	}
	nvme_free_tree(r);
	r = NULL;

	/* the namespace scan runs asynchronously after the connect returns */
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		rc = attach_nvme_find(t->subsysnqn, dev, devlen);
		if (rc == 0 || rc != -ENOENT)
			break;
		if (now_ms() >= deadline) {
			rc = -ETIMEDOUT;
			log_err(TAG, "%s: controller %s has no namespace block device after %d ms",
				t->subsysnqn, ctrl_name, timeout_ms);
			break;
		}
		usleep(50 * 1000);
	}
out:
	if (r)
		nvme_free_tree(r);
	return rc;
}

int attach_nvme_disconnect(const char *subsysnqn)
{
	nvme_host_t h;
	nvme_subsystem_t s;
	nvme_ctrl_t c, _c;
	int rc = 0, n = 0;

	if (validate_nqn(subsysnqn) < 0)
		return -EINVAL;
	nvme_root_t r = scan();
	if (!r)
		return -errno;
	nvme_for_each_host(r, h) {
		nvme_for_each_subsystem(h, s) {
			const char *sn = nvme_subsystem_get_nqn(s);
			if (!sn || strcmp(sn, subsysnqn) != 0)
				continue;
			nvme_subsystem_for_each_ctrl_safe(s, c, _c) {
				char name[64];
				snprintf(name, sizeof(name), "%s", nvme_ctrl_get_name(c) ?: "?");
				if (nvme_disconnect_ctrl(c) < 0 && errno != ENOENT) {
					rc = -errno;
					log_err(TAG, "%s: disconnect %s: %s", subsysnqn, name,
						strerror(errno));
				} else {
					n++;
					log_info(TAG, "%s: disconnected %s", subsysnqn, name);
				}
			}
		}
	}
	nvme_free_tree(r);
	if (rc == 0 && n == 0)
		log_info(TAG, "%s: not connected", subsysnqn);
	return rc;
}
