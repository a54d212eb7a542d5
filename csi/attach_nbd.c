/* csi/attach_nbd.c: NBD attach over the kernel's generic-netlink "nbd"
 * family. The handshake (attach_nbd_hs.c) runs here, in userspace; the
 * negotiated sockets go to the kernel with NBD_CMD_CONNECT
 * (attach_nbd_nl.c), which then owns them: this process may exit.
 *
 * As with NVMe, the kernel is the source of truth. A device is ours when
 * /sys/block/nbdN/backend holds our backend identifier; the kernel removes
 * that file (and sets the size to 0) when the device's last configuration
 * reference goes, i.e. after a disconnect once nobody holds it open.
 * Connects are serialized by a lock file, because the kernel would happily
 * give the same backend a second device.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attach.h"
#include "attach_nbd_hs.h"
#include "attach_nbd_nl.h"
#include "log.h"
#include "nbd/nbd_proto.h"

#include <linux/nbd-netlink.h>

#define TAG "attach"
#define SYS_BLOCK "/sys/block"
#define DEFAULT_TIMEOUT_MS 10000
/* what the kernel's nbd sends at most per request (max_hw_sectors 65536) */
#define KERNEL_MAX_IO (32u << 20)

/* ---- validation and naming --------------------------------------------- */

static bool printable(const char *s)
{
	for (; *s; s++)
		if (!isgraph((unsigned char)*s))
			return false;
	return true;
}

int attach_nbd_target_validate(const struct attach_nbd_target *t)
{
	char id[ATTACH_NBD_BACKEND_MAX];

	if (!t)
		return -EINVAL;
	if (!t->host == !t->unix_path) {
		log_err(TAG, "nbd: give a host or a unix socket path, not %s",
			t->host ? "both" : "neither");
		return -EINVAL;
	}
	if (t->host && (!*t->host || strlen(t->host) > 255 || !printable(t->host) ||
			strchr(t->host, '/'))) {
		log_err(TAG, "nbd: bad host '%s'", t->host);
		return -EINVAL;
	}
	if (t->unix_path && (t->unix_path[0] != '/' || !printable(t->unix_path) ||
			     strlen(t->unix_path) >= 108)) {
		log_err(TAG, "nbd: bad unix socket path '%s' (absolute, < 108 bytes)", t->unix_path);
		return -EINVAL;
	}
	if (t->port) {
		char *end;
		errno = 0;
		long port = strtol(t->port, &end, 10);
		if (t->unix_path || !*t->port || *end || errno || port < 1 || port > 65535) {
			log_err(TAG, "nbd: bad port '%s' (1..65535, TCP only)", t->port);
			return -EINVAL;
		}
	}
	if (!t->export_name || !*t->export_name || strlen(t->export_name) > NBD_NAME_MAX_WIRE ||
	    !printable(t->export_name)) {
		log_err(TAG, "nbd: no or bad export name (printable, no spaces, <= %d bytes)",
			NBD_NAME_MAX_WIRE);
		return -EINVAL;
	}
	if (t->connections < 0 || t->connections > ATTACH_NBD_MAX_CONNECTIONS ||
	    t->timeout_s < -1 || t->dead_conn_timeout_s < 0) {
		log_err(TAG, "nbd: bad connections %d (0..%d), timeout %d or dead-conn timeout %d",
			t->connections, ATTACH_NBD_MAX_CONNECTIONS, t->timeout_s,
			t->dead_conn_timeout_s);
		return -EINVAL;
	}
	if (t->block_size && (t->block_size < 512 || t->block_size > 4096 ||
			      (t->block_size & (t->block_size - 1)))) {
		log_err(TAG, "nbd: block size %u is not a power of two in 512..4096", t->block_size);
		return -EINVAL;
	}
	if (attach_nbd_backend_id(t, id, sizeof(id)) < 0) {
		log_err(TAG, "nbd: backend identifier longer than %d bytes", ATTACH_NBD_BACKEND_MAX - 1);
		return -EINVAL;
	}
	return 0;
}

int attach_nbd_backend_id(const struct attach_nbd_target *t, char *buf, size_t len)
{
	int n;

	if (t->unix_path)
		n = snprintf(buf, len, "urbd:unix:%s/%s", t->unix_path, t->export_name);
	else
		n = snprintf(buf, len, strchr(t->host, ':') ? "urbd:[%s]:%s/%s" : "urbd:%s:%s/%s",
			     t->host, t->port ? t->port : ATTACH_NBD_DEFAULT_PORT, t->export_name);
	if (n < 0 || (size_t)n >= len || n >= ATTACH_NBD_BACKEND_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- sysfs ------------------------------------------------------------- */

/* the first line of /sys/block/NAME/ATTR, trimmed; -errno (ENOENT: no file) */
static int sysfs_read(const char *name, const char *attr, char *buf, size_t len)
{
	char p[128];
	snprintf(p, sizeof(p), SYS_BLOCK "/%s/%s", name, attr);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int rc = n < 0 ? -errno : 0;
	close(fd);
	if (rc < 0)
		return rc;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static uint64_t sysfs_sectors(const char *name)
{
	char b[32];
	return sysfs_read(name, "size", b, sizeof(b)) == 0 ? strtoull(b, NULL, 10) : 0;
}

/* "nbd<digits>" */
static bool nbd_name(const char *s)
{
	if (strncmp(s, "nbd", 3) != 0 || !s[3])
		return false;
	for (s += 3; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* configured: the kernel holds sockets or a configuration for it (backend
 * and pid files exist only then; a disconnected device has size 0) */
static bool configured(const char *name)
{
	char b[8];
	return sysfs_read(name, "backend", b, sizeof(b)) != -ENOENT ||
	       sysfs_read(name, "pid", b, sizeof(b)) != -ENOENT || sysfs_sectors(name) > 0;
}

int attach_nbd_find(const char *backend_id, char *dev, size_t devlen)
{
	char b[ATTACH_NBD_BACKEND_MAX + 2];
	int rc = -ENOENT;

	if (!backend_id || !*backend_id || !dev || devlen == 0)
		return -EINVAL;
	dev[0] = '\0';
	DIR *d = opendir(SYS_BLOCK);
	if (!d) {
		rc = -errno;
		log_err(TAG, "open " SYS_BLOCK ": %s", strerror(errno));
		return rc;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!nbd_name(de->d_name) || sysfs_read(de->d_name, "backend", b, sizeof(b)) < 0 ||
		    strcmp(b, backend_id) != 0)
			continue;
		if (snprintf(dev, devlen, "/dev/%s", de->d_name) >= (int)devlen) {
			rc = -ENAMETOOLONG;
			dev[0] = '\0';
		} else {
			rc = 0;
		}
		break;
	}
	closedir(d);
	return rc;
}

/* ---- connect ----------------------------------------------------------- */

/* the kernel takes 512..PAGE_SIZE; the server's minimum is what I/O must
 * be aligned to, so the smallest legal size that honours it is the most
 * compatible choice */
static int choose_block_size(const struct attach_nbd_target *t, const struct attach_nbd_export *e,
			     const char *peer, uint32_t *bs)
{
	uint32_t min = e->have_block_size ? e->min_block : 1;

	*bs = t->block_size ? t->block_size : (min > 512 ? min : 512);
	if (*bs < min || *bs > 4096) {
		log_err(TAG, "%s: export '%s' needs %u-byte blocks; the kernel's nbd takes %s",
			peer, t->export_name, min,
			*bs > 4096 ? "at most 4096" : "that or more (--block-size)");
		return -EOPNOTSUPP;
	}
	if (e->size == 0 || e->size % *bs != 0) {
		/* the kernel would show a device of size 0 (never usable) or
		 * hide the tail: neither is the volume the caller asked for */
		log_err(TAG, "%s: export '%s' has %llu bytes, not a multiple of the %u-byte block",
			peer, t->export_name, (unsigned long long)e->size, *bs);
		return -EINVAL;
	}
	if (e->have_block_size && e->max_block < KERNEL_MAX_IO)
		log_warn(TAG, "%s: export '%s' takes at most %u bytes per request, the kernel "
			 "may send %u", peer, t->export_name, e->max_block, KERNEL_MAX_IO);
	return 0;
}

/* n sockets through the handshake; the first decides how many the server
 * allows. fds[] holds the negotiated ones (in transmission), -1 elsewhere. */
static int negotiate(const struct attach_nbd_target *t, const char *peer, int fds[], int *n,
		     struct attach_nbd_export *e, uint64_t deadline_ms)
{
	struct attach_nbd_export other;
	int rc;

	for (int i = 0; i < *n; i++) {
		fds[i] = attach_nbd_dial(t, deadline_ms);
		if (fds[i] < 0)
			return fds[i];
		rc = attach_nbd_handshake(fds[i], peer, t->export_name, deadline_ms,
					  i == 0 ? e : &other);
		if (rc < 0) {
			attach_nbd_abandon(fds[i], false);
			fds[i] = -1;
			return rc;
		}
		if (i == 0 && *n > 1 && !(e->flags & NBD_FLAG_CAN_MULTI_CONN)) {
			log_warn(TAG, "%s: export '%s' does not allow multiple connections; using 1",
				 peer, t->export_name);
			*n = 1;
		}
		if (i > 0 && (other.size != e->size || other.flags != e->flags)) {
			log_err(TAG, "%s: export '%s' changed between connections (size %llu/%llu, "
				"flags 0x%x/0x%x)", peer, t->export_name,
				(unsigned long long)e->size, (unsigned long long)other.size, e->flags,
				other.flags);
			return -EPROTO;
		}
	}
	return 0;
}

/* NBD_CMD_CONNECT with the negotiated sockets: the new device's index */
static int kernel_connect(int sock, uint16_t family, const struct attach_nbd_target *t,
			  const char *id, const char *peer, const struct attach_nbd_export *e,
			  uint32_t bs, const int fds[], int n, uint32_t *index, uint64_t deadline_ms)
{
	uint8_t msg[1024];
	struct attach_nbd_nl_reply r;
	struct attach_nbd_nl_connect c = {
		.size_bytes = e->size,
		.block_size = bs,
		.server_flags = e->flags,
		.timeout_s = t->timeout_s == 0 ? ATTACH_NBD_DEFAULT_TIMEOUT_S : t->timeout_s,
		.dead_conn_timeout_s = t->dead_conn_timeout_s,
		.fds = fds,
		.n_fds = n,
		.backend_id = id,
	};

	uint32_t seq = attach_nbd_nl_seq();
	int len = attach_nbd_nl_put_connect(msg, sizeof(msg), family, seq, &c);
	if (len < 0) {
		log_err(TAG, "%s: NBD_CMD_CONNECT does not fit in %zu bytes", id, sizeof(msg));
		return len;
	}
	int rc = attach_nbd_nl_call(sock, msg, (size_t)len, seq, NBD_ATTR_INDEX, &r, deadline_ms);
	if (rc < 0)
		return rc;
	if (r.error < 0 || !r.have_value) {
		rc = r.error < 0 ? r.error : -EBADMSG;
		log_err(TAG, "%s: kernel NBD_CMD_CONNECT: %s%s%s", id,
			r.error < 0 ? strerror(-r.error) : "no NBD_ATTR_INDEX in the reply",
			r.msg[0] ? ": " : "", r.msg);
		if (rc == -EPERM)
			log_err(TAG, "%s: connecting nbd devices needs CAP_SYS_ADMIN", id);
		return rc;
	}
	*index = r.value;
	log_info(TAG, "%s: nbd%u connected to %s, %llu bytes, %u-byte blocks, flags 0x%x, "
		 "%d connection(s)", id, r.value, peer, (unsigned long long)e->size, bs, e->flags, n);
	return 0;
}

static int kernel_disconnect(const char *name, uint32_t index, uint64_t deadline_ms)
{
	uint8_t msg[64];
	struct attach_nbd_nl_reply r;
	uint16_t family;

	int sock = attach_nbd_nl_open();
	if (sock < 0)
		return sock;
	int rc = attach_nbd_nl_family(sock, &family, deadline_ms);
	if (rc < 0)
		goto out;
	uint32_t seq = attach_nbd_nl_seq();
	int len = attach_nbd_nl_put_disconnect(msg, sizeof(msg), family, seq, index);
	rc = len < 0 ? len : attach_nbd_nl_call(sock, msg, (size_t)len, seq, 0, &r, deadline_ms);
	if (rc == 0 && r.error < 0) {
		rc = r.error;
		log_err(TAG, "%s: kernel NBD_CMD_DISCONNECT: %s%s%s", name, strerror(-rc),
			r.msg[0] ? ": " : "", r.msg);
	}
out:
	close(sock);
	return rc;
}

/* the kernel sets the size before NBD_CMD_CONNECT returns, but the device
 * node is devtmpfs's (or udev's) business */
static int wait_usable(const char *name, char *dev, size_t devlen, uint64_t deadline_ms)
{
	struct stat st;

	if (snprintf(dev, devlen, "/dev/%s", name) >= (int)devlen)
		return -ENAMETOOLONG;
	for (;;) {
		if (sysfs_sectors(name) > 0 && stat(dev, &st) == 0 && S_ISBLK(st.st_mode))
			return 0;
		if (attach_nbd_now_ms() >= deadline_ms)
			return -ETIMEDOUT;
		usleep(20 * 1000);
	}
}

/* an exclusive lock on ATTACH_NBD_LOCK_PATH by deadline; the fd, or -1 when
 * there is nowhere to put it (then connects are not serialized) */
static int lock_connects(uint64_t deadline_ms)
{
	int fd = open(ATTACH_NBD_LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_warn(TAG, "open %s: %s; connects are not serialized", ATTACH_NBD_LOCK_PATH,
			 strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			log_warn(TAG, "lock %s: %s", ATTACH_NBD_LOCK_PATH, strerror(errno));
			break;
		}
		if (attach_nbd_now_ms() >= deadline_ms) {
			close(fd);
			return -ETIMEDOUT;
		}
		usleep(20 * 1000);
	}
	return fd;
}

int attach_nbd_connect(const struct attach_nbd_target *t, char *dev, size_t devlen,
		       int timeout_ms)
{
	char id[ATTACH_NBD_BACKEND_MAX], peer[300], name[32];
	int fds[ATTACH_NBD_MAX_CONNECTIONS];
	struct attach_nbd_export e;
	uint32_t index = 0, bs = 0;
	int n = t && t->connections > 0 ? t->connections : 1, lockfd = -1, sock = -1, rc;
	uint16_t family;

	for (int i = 0; i < ATTACH_NBD_MAX_CONNECTIONS; i++)
		fds[i] = -1;
	if (attach_nbd_target_validate(t) < 0 || !dev || devlen == 0)
		return -EINVAL;
	uint64_t deadline = attach_nbd_now_ms() +
			    (uint64_t)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);
	attach_nbd_backend_id(t, id, sizeof(id));
	if (t->unix_path)
		snprintf(peer, sizeof(peer), "unix:%s", t->unix_path);
	else
		snprintf(peer, sizeof(peer), "%s:%s", t->host, t->port ? t->port : ATTACH_NBD_DEFAULT_PORT);

	if (attach_nbd_find(id, dev, devlen) == 0) {
		log_info(TAG, "%s: already connected as %s", id, dev);
		return 0;
	}
	lockfd = lock_connects(deadline);
	if (lockfd == -ETIMEDOUT) {
		log_err(TAG, "%s: another attach held %s for %d ms", id, ATTACH_NBD_LOCK_PATH,
			timeout_ms);
		return -ETIMEDOUT;
	}
	/* under the lock: another attach may have finished meanwhile */
	if (attach_nbd_find(id, dev, devlen) == 0) {
		log_info(TAG, "%s: already connected as %s", id, dev);
		rc = 0;
		goto out;
	}
	/* no nbd module, no permission: found out before the server sees us */
	sock = attach_nbd_nl_open();
	if (sock < 0) {
		rc = sock;
		goto out;
	}
	rc = attach_nbd_nl_family(sock, &family, deadline);
	if (rc == 0)
		rc = negotiate(t, peer, fds, &n, &e, deadline);
	if (rc == 0)
		rc = choose_block_size(t, &e, peer, &bs);
	if (rc == 0)
		rc = kernel_connect(sock, family, t, id, peer, &e, bs, fds, n, &index, deadline);
	if (rc < 0)
		goto out;
	/* the kernel holds its own references to the sockets now */
	for (int i = 0; i < n; i++) {
		close(fds[i]);
		fds[i] = -1;
	}
	snprintf(name, sizeof(name), "nbd%u", index);
	rc = wait_usable(name, dev, devlen, deadline);
	if (rc < 0) {
		log_err(TAG, "%s: /dev/%s not usable after %d ms: %s; disconnecting it", id, name,
			timeout_ms, strerror(-rc));
		kernel_disconnect(name, index, attach_nbd_now_ms() + 2000);
		dev[0] = '\0';
	}
out:
	for (int i = 0; i < ATTACH_NBD_MAX_CONNECTIONS; i++)
		attach_nbd_abandon(fds[i], true);
	if (sock >= 0)
		close(sock);
	if (lockfd >= 0)
		close(lockfd);
	return rc;
}

/* ---- disconnect -------------------------------------------------------- */

int attach_nbd_disconnect(const char *dev, int timeout_ms)
{
	char b[16];

	if (!dev)
		return -EINVAL;
	const char *name = strncmp(dev, "/dev/", 5) == 0 ? dev + 5 : dev;
	if (!nbd_name(name) || strlen(name) > 12) {
		log_err(TAG, "'%s' is not an nbd device (/dev/nbdN)", dev);
		return -EINVAL;
	}
	uint32_t index = (uint32_t)strtoul(name + 3, NULL, 10);
	uint64_t deadline = attach_nbd_now_ms() +
			    (uint64_t)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS);

	if (sysfs_read(name, "size", b, sizeof(b)) == -ENOENT || !configured(name)) {
		log_info(TAG, "%s: not connected", name);
		return 0;
	}
	int rc = kernel_disconnect(name, index, deadline);
	if (rc < 0)
		return rc;
	while (configured(name)) {
		if (attach_nbd_now_ms() >= deadline) {
			log_err(TAG, "%s: still configured %d ms after NBD_CMD_DISCONNECT: held "
				"open (mounted?)", name, timeout_ms);
			return -EBUSY;
		}
		usleep(20 * 1000);
	}
	log_info(TAG, "%s: disconnected", name);
	return 0;
}

int attach_nbd_disconnect_backend(const char *backend_id, int timeout_ms)
{
	char dev[64];
	int rc, n = 0;

	/* one at a time: a second device with the same backend (made by hand)
	 * is found once the first is gone */
	while ((rc = attach_nbd_find(backend_id, dev, sizeof(dev))) == 0) {
		rc = attach_nbd_disconnect(dev, timeout_ms);
		if (rc < 0)
			return rc;
		if (++n >= 64) {
			log_err(TAG, "%s: still attached after %d disconnects", backend_id, n);
			return -EBUSY;
		}
	}
	if (rc != -ENOENT)
		return rc;
	if (n == 0)
		log_info(TAG, "%s: not connected", backend_id);
	return 0;
}
