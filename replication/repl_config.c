/* Replica-set configuration: parse, check, format, atomic save. */
#include "repl_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

const char *repl_ack_policy_name(enum repl_ack_policy a)
{
	return a == REPL_ACK_MAJORITY ? "majority" : "all";
}

const char *repl_noquorum_name(enum repl_noquorum_policy p)
{
	return p == REPL_NOQ_SUSPEND ? "suspend-io" : "io-error";
}

int repl_ack_policy_parse(const char *s, enum repl_ack_policy *out)
{
	if (strcmp(s, "all") == 0)
		*out = REPL_ACK_ALL;
	else if (strcmp(s, "majority") == 0)
		*out = REPL_ACK_MAJORITY;
	else
		return -EINVAL;
	return 0;
}

int repl_noquorum_parse(const char *s, enum repl_noquorum_policy *out)
{
	if (strcmp(s, "io-error") == 0)
		*out = REPL_NOQ_IO_ERROR;
	else if (strcmp(s, "suspend-io") == 0)
		*out = REPL_NOQ_SUSPEND;
	else
		return -EINVAL;
	return 0;
}

unsigned repl_config_members(const struct repl_config *c)
{
	unsigned n = 0;

	for (unsigned i = 0; i < REPL_MAX_NODES; i++)
		n += c->members[i].present;
	return n;
}

unsigned repl_config_majority(const struct repl_config *c)
{
	return repl_config_members(c) / 2 + 1;
}

static bool addr_valid(const char *a)
{
	const char *colon = strrchr(a, ':');
	char *end;
	long port;

	if (!colon || colon == a || strchr(a, ' '))
		return false;
	port = strtol(colon + 1, &end, 10);
	return *end == '\0' && port > 0 && port < 65536;
}

static bool node_valid(const char *n)
{
	if (!*n || strlen(n) >= 64)
		return false;
	for (; *n; n++)
		if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
		      (*n >= '0' && *n <= '9') || *n == '-' || *n == '.' || *n == '_'))
			return false;
	return true;
}

int repl_config_check(const struct repl_config *c, char *err, size_t errlen)
{
	unsigned n = repl_config_members(c);

	if (c->local_id >= REPL_MAX_NODES || !c->members[c->local_id].present) {
		snprintf(err, errlen, "the local member id %u is not in the replica set",
			 c->local_id);
		return -EINVAL;
	}
	if (n < 2) {
		snprintf(err, errlen, "a replica set needs at least 2 members, got %u", n);
		return -EINVAL;
	}
	{
		unsigned disked = 0;

		for (unsigned i = 0; i < REPL_MAX_NODES; i++)
			disked += c->members[i].present && !c->members[i].diskless;
		if (!disked) {
			snprintf(err, errlen, "every member is diskless: at least one must hold "
				 "the data");
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const struct repl_member *m = &c->members[i];

		if (!m->present)
			continue;
		if (!node_valid(m->node)) {
			snprintf(err, errlen, "member %u: invalid node name '%.64s'", i, m->node);
			return -EINVAL;
		}
		if (!addr_valid(m->addr)) {
			snprintf(err, errlen, "member %u (%s): address '%.128s' is not host:port",
				 i, m->node, m->addr);
			return -EINVAL;
		}
	}
	return 0;
}

/* "ID=NODE@HOST:PORT[:diskless]" */
static int parse_one(char *tok, struct repl_config *c, char *err, size_t errlen)
{
	char *eq = strchr(tok, '='), *at, *end;
	struct repl_member *m;
	unsigned long id;
	size_t l;

	if (!eq || !(at = strchr(eq, '@')))
		goto bad;
	*eq = '\0';
	id = strtoul(tok, &end, 10);
	if (end == tok || *end || id >= REPL_MAX_NODES)
		goto bad;
	m = &c->members[id];
	if (m->present) {
		snprintf(err, errlen, "member id %lu given twice", id);
		return -EINVAL;
	}
	*at = '\0';
	l = strlen(at + 1);
	if (l > 9 && strcmp(at + 1 + l - 9, ":diskless") == 0) {
		m->diskless = true;
		at[1 + l - 9] = '\0';
	}
	if (strlen(eq + 1) >= sizeof(m->node) || strlen(at + 1) >= sizeof(m->addr))
		goto bad;
	strcpy(m->node, eq + 1);
	strcpy(m->addr, at + 1);
	m->present = true;
	return 0;
bad:
	snprintf(err, errlen, "replica '%.80s': expected ID=NODE@HOST:PORT[:diskless]", tok);
	return -EINVAL;
}

int repl_config_parse_members(const char *spec, struct repl_config *c, char *err,
			      size_t errlen)
{
	char *copy = strdup(spec), *save = NULL, *tok;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	memset(c->members, 0, sizeof(c->members));
	for (tok = strtok_r(copy, ",", &save); tok && !ret; tok = strtok_r(NULL, ",", &save))
		ret = parse_one(tok, c, err, errlen);
	free(copy);
	return ret;
}

int repl_config_format_members(const struct repl_config *c, char *buf, size_t cap)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const struct repl_member *m = &c->members[i];
		int n;

		if (!m->present)
			continue;
		n = snprintf(buf + off, cap - off, "%s%u=%s@%s%s", off ? "," : "", i,
			     m->node, m->addr, m->diskless ? ":diskless" : "");
		if (n < 0 || (size_t)n >= cap - off)
			return -ENOSPC;
		off += (size_t)n;
	}
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int parse_line(char *line, struct repl_config *c, char *err, size_t errlen)
{
	char *eq = strchr(line, '='), *k, *v, *end;
	unsigned long id;

	if (!eq)
		return -EINVAL;
	*eq = '\0';
	k = trim(line);
	v = trim(eq + 1);
	if (strcmp(k, "local") == 0) {
		id = strtoul(v, &end, 10);
		if (end == v || *end || id >= REPL_MAX_NODES)
			return -EINVAL;
		c->local_id = (uint32_t)id;
		return 0;
	}
	if (strcmp(k, "ack") == 0)
		return repl_ack_policy_parse(v, &c->ack);
	if (strcmp(k, "on-no-quorum") == 0)
		return repl_noquorum_parse(v, &c->on_no_quorum);
	if (strcmp(k, "resync-rate") == 0) {
		unsigned long long r;

		errno = 0;
		r = strtoull(v, &end, 10);
		if (end == v || *end || errno || *v == '-')
			return -EINVAL;
		c->resync_rate_set = true;
		c->resync_rate = r;
		return 0;
	}
	if (strncmp(k, "member ", 7) == 0) {
		struct repl_member *m;
		char node[64], addr[128], extra[16] = "";
		int n;

		id = strtoul(k + 7, &end, 10);
		if (end == k + 7 || *end || id >= REPL_MAX_NODES || c->members[id].present)
			return -EINVAL;
		n = sscanf(v, "%63s %127s %15s", node, addr, extra);
		if (n < 2 || (n == 3 && strcmp(extra, "diskless")))
			return -EINVAL;
		m = &c->members[id];
		m->present = true;
		m->diskless = n == 3;
		strcpy(m->node, node);
		strcpy(m->addr, addr);
		return 0;
	}
	return -EINVAL;
}

int repl_config_parse(const char *text, struct repl_config *c, char *err, size_t errlen)
{
	char *copy = strdup(text), *save = NULL, *line;
	int lineno = 0, ret = 0;
	bool have_local = false;

	if (!copy)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *t = trim(line);

		lineno++;
		if (!*t || *t == '#')
			continue;
		have_local |= strncmp(t, "local", 5) == 0;
		if (parse_line(t, c, err, errlen)) {
			snprintf(err, errlen, "replication config line %d: not a valid setting",
				 lineno);
			ret = -EINVAL;
			break;
		}
	}
	free(copy);
	if (!ret && !have_local) {
		snprintf(err, errlen, "replication config: no 'local = ID' line");
		ret = -EINVAL;
	}
	return ret ? ret : repl_config_check(c, err, errlen);
}

int repl_config_format(const struct repl_config *c, char *buf, size_t cap)
{
	size_t off;
	int n;

	n = snprintf(buf, cap, "# urbd replica set (written by urbd; edit with urbdctl)\n"
		     "local = %u\nack = %s\non-no-quorum = %s\n", c->local_id,
		     repl_ack_policy_name(c->ack), repl_noquorum_name(c->on_no_quorum));
	if (n < 0 || (size_t)n >= cap)
		return -ENOSPC;
	off = (size_t)n;
	if (c->resync_rate_set) {
		n = snprintf(buf + off, cap - off, "resync-rate = %llu\n",
			     (unsigned long long)c->resync_rate);
		if (n < 0 || (size_t)n >= cap - off)
			return -ENOSPC;
		off += (size_t)n;
	}
	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		const struct repl_member *m = &c->members[i];

		if (!m->present)
			continue;
		n = snprintf(buf + off, cap - off, "member %u = %s %s%s\n", i, m->node,
			     m->addr, m->diskless ? " diskless" : "");
		if (n < 0 || (size_t)n >= cap - off)
			return -ENOSPC;
		off += (size_t)n;
	}
	return 0;
}

int repl_config_load(const char *dir, struct repl_config *c, char *err, size_t errlen)
{
	char path[512], text[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, REPL_CONFIG_FILE);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0 || n == (ssize_t)sizeof(text) - 1) {
		snprintf(err, errlen, "cannot read %s: %s", path,
			 n < 0 ? strerror(errno) : "too long");
		return n < 0 ? -EIO : -EFBIG;
	}
	text[n] = '\0';
	return repl_config_parse(text, c, err, errlen);
}

int repl_config_save(const char *dir, const struct repl_config *c)
{
	char path[512], tmp[520], text[4096];
	int fd, ret;
	size_t len;

	ret = repl_config_format(c, text, sizeof(text));
	if (ret)
		return ret;
	len = strlen(text);
	snprintf(path, sizeof(path), "%s/%s", dir, REPL_CONFIG_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
		ret = errno ? -errno : -EIO;
		close(fd);
		unlink(tmp);
		return ret;
	}
	close(fd);
	if (rename(tmp, path) < 0)
		return -errno;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}
