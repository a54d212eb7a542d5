/* A volume's replica set and replication policy, kept beside its data in
 * <store>/volumes/<name>/replication (absent: the volume is not
 * replicated). Text, one setting per line, written atomically:
 *
 *   local = 0                      this node's member id
 *   ack = all                      all | majority
 *   on-no-quorum = io-error        io-error | suspend-io
 *   resync-rate = 104857600        bytes/s a resync (and a verify by default)
 *                                  reads, 0: no limit; absent: the daemon's
 *                                  default (URBD_RESYNC_RATE_MB, 250 MiB/s)
 *   member 0 = node-a 10.77.0.1:7788
 *   member 1 = node-b 10.77.0.2:7788
 *   member 2 = node-c 10.77.0.3:7788 diskless
 *
 * Member ids are slots 0..REPL_MAX_NODES-1 (the ids on the wire: HELLO,
 * AUTH, STATE); addresses are the members' replication listeners. Every
 * member is a quorum voter; a diskless member (tie-breaker) votes but
 * holds no data. */
#ifndef URBD_REPL_CONFIG_H
#define URBD_REPL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repl_proto.h"

#define REPL_CONFIG_FILE "replication"

enum repl_ack_policy {
	REPL_ACK_ALL,       /* local + every connected peer (DRBD protocol C) */
	REPL_ACK_MAJORITY,  /* local + enough peers for a majority of voters */
};

enum repl_noquorum_policy {
	REPL_NOQ_IO_ERROR,  /* fail writes with EIO while quorum is lost */
	REPL_NOQ_SUSPEND,   /* hold writes until quorum returns */
};

struct repl_member {
	bool present;
	bool diskless;      /* votes, holds no replica */
	char node[64];      /* node name, for humans and logs */
	char addr[128];     /* "host:port" of its replication listener */
};

struct repl_config {
	uint32_t local_id;
	enum repl_ack_policy ack;
	enum repl_noquorum_policy on_no_quorum;
	bool resync_rate_set;       /* else the daemon's default */
	uint64_t resync_rate;       /* bytes/s, 0: no limit */
	struct repl_member members[REPL_MAX_NODES]; /* by member id */
};

const char *repl_ack_policy_name(enum repl_ack_policy a);
const char *repl_noquorum_name(enum repl_noquorum_policy p);
int repl_ack_policy_parse(const char *s, enum repl_ack_policy *out);
int repl_noquorum_parse(const char *s, enum repl_noquorum_policy *out);

/* Members present, voters (= members), and the votes a majority needs. */
unsigned repl_config_members(const struct repl_config *c);
unsigned repl_config_majority(const struct repl_config *c);

/* Checks a complete config: the local member present, at least two
 * members, addresses of the form host:port, names valid. 0 or -EINVAL
 * with the reason in err. */
int repl_config_check(const struct repl_config *c, char *err, size_t errlen);

/* "ID=NODE@HOST:PORT[:diskless],..." (the CLI/API form) into c->members */
int repl_config_parse_members(const char *spec, struct repl_config *c, char *err,
			      size_t errlen);
/* the same form back; -ENOSPC if cap is too small */
int repl_config_format_members(const struct repl_config *c, char *buf, size_t cap);

/* the file's text; pure, for the tests */
int repl_config_parse(const char *text, struct repl_config *c, char *err, size_t errlen);
int repl_config_format(const struct repl_config *c, char *buf, size_t cap);

/* DIR/replication: -ENOENT when the volume is not replicated */
int repl_config_load(const char *dir, struct repl_config *c, char *err, size_t errlen);
/* write to a temporary file, fsync, rename, fsync the directory */
int repl_config_save(const char *dir, const struct repl_config *c);

#endif
