/* NVMe-oF controllers (private to the NVMe/TCP frontend).
 *
 * A controller is created by a Connect on an admin queue (qid 0) and lives
 * on the reactor of that queue: the volume's reactor for an I/O subsystem
 * (nqn.2026-11.io.urbd:<volume>), the acceptor for the discovery subsystem.
 * I/O queues attach to it by cntlid. It goes away with its admin queue
 * (closed by the host, a fatal transport error, keep-alive expiry, or the
 * volume being detached), taking its I/O queues with it.
 *
 * The register/property/feature/identify/log logic here is free of
 * sockets: tests drive it with a struct nvmf_ctrl on the stack. */
#ifndef URBD_NVMF_CTRL_H
#define URBD_NVMF_CTRL_H

#include <stdbool.h>
#include <stdint.h>

#include "nvmf_proto.h"

struct volume;
struct nvmf_conn;
struct nvmf_cmd;

#define NVMF_MAX_QD        128          /* entries per submission queue (MQES + 1) */
#define NVMF_MAX_IOQ       16           /* I/O queues per controller */
#define NVMF_INCAPSULE     8192         /* in-capsule data bytes, every queue */
#define NVMF_MAXH2CDATA    (128u << 10)
#define NVMF_MDTS_SHIFT    8            /* 2^8 x 4 KiB = 1 MiB per command */
#define NVMF_MAX_XFER      (4096u << NVMF_MDTS_SHIFT)
#define NVMF_AERL          4            /* AERs held per controller */
#define NVMF_ELPE          63           /* Error Information log: 64 entries (0's based) */
#define NVMF_ERR_ENTRIES   (NVMF_ELPE + 1)
#define NVMF_KAS_100MS     10           /* keep-alive granularity: 1 s */
#define NVMF_MAX_CNTLID    0xffef
#define NVMF_FW_REV        "0.1.0"
#define NVMF_MODEL         "urbd"

/* What Identify and the log pages say; filled from the volume on its
 * reactor, or by tests. */
struct nvmf_ns_info {
	uint64_t nsze;            /* blocks */
	uint32_t lba_shift;       /* 9 or 12 */
	uint8_t uuid[16];         /* the volume's UUID: NGUID, UUID, serial */
	uint64_t bytes_read, bytes_written, reads, writes; /* SMART */
};

/* Asynchronous events this target sends (NVMe Base 1.4 section 5.2). Each
 * is one bit in aen_pending / aen_masked. */
enum nvmf_aen {
	NVMF_AEN_NS_ATTR,            /* Notice 2h/00h: Namespace Attribute Changed,
				      * log page 04h, enabled by AEC bit 8 */
	NVMF_AEN_COUNT,
};

/* One Error Information log entry (log page 01h), host byte order. */
struct nvmf_err_entry {
	uint64_t count;              /* 0: entry unused */
	uint16_t sqid, cid;
	uint16_t status;             /* NVMF_ST() | NVMF_DNR form */
	uint16_t ploc;               /* parameter error location, 0xffff: none */
	uint64_t lba;
	uint32_t nsid;
};

struct nvmf_ctrl {
	uint16_t cntlid;
	bool discovery;
	struct volume *vol;          /* NULL for discovery; holds a reference */
	char subnqn[NVMF_NQN_MAX + 1];
	char hostnqn[NVMF_NQN_MAX + 1];
	uint8_t hostid[16];
	uint8_t uuid[16];
	uint32_t cc, csts;
	uint32_t kato_ms;            /* 0: no keep-alive */
	uint64_t last_ka_ns;
	uint32_t aec;                /* Asynchronous Event Configuration */
	uint16_t nr_ioq;             /* I/O queues granted (1-based) */
	bool nr_ioq_set;             /* Number of Queues may be set only once */
	bool ns_changed;             /* Changed Namespace List has an entry */
	/* events waiting for an AER; events reported and masked until the
	 * host reads their log page without RAE (one bit per nvmf_aen) */
	uint32_t aen_pending, aen_masked;
	uint64_t err_count;          /* errors recorded; the newest entry is */
	struct nvmf_err_entry errs[NVMF_ERR_ENTRIES]; /* errs[(err_count-1) % N] */
	struct nvmf_conn *admin;
	struct nvmf_conn *ioq[NVMF_MAX_IOQ + 1]; /* [1..nr_ioq] */
	struct nvmf_cmd *aer[NVMF_AERL];
	unsigned n_aer;
	bool shutting_down;          /* CC.SHN set: a flush runs before SHST=complete */
	bool registered;
	unsigned refs;               /* queues attached */
};

/* ---- registers (Property Get/Set) ---- */
uint64_t nvmf_cap(void);
/* 0 or NVMe status; *val the property */
uint16_t nvmf_prop_get(const struct nvmf_ctrl *c, uint32_t ofst, unsigned size,
		       uint64_t *val);
enum nvmf_cc_effect { NVMF_CC_NONE, NVMF_CC_ENABLED, NVMF_CC_DISABLED, NVMF_CC_SHUTDOWN };
/* updates cc/csts; the caller acts on the effect (abort AERs, flush) */
uint16_t nvmf_prop_set(struct nvmf_ctrl *c, uint32_t ofst, unsigned size,
		       uint64_t val, enum nvmf_cc_effect *eff);

/* ---- admin commands that complete at once ---- */
struct nvmf_admin_out {
	uint16_t status;
	uint64_t result;             /* CQE dw0/dw1 */
};
/* Identify into buf (4096 bytes, zeroed by the caller) */
void nvmf_identify_ctrl(const struct nvmf_ctrl *c, uint16_t mqes_plus1, uint8_t *buf);
void nvmf_identify_ns(const struct nvmf_ns_info *ns, uint8_t *buf);
void nvmf_identify_active_ns(uint32_t after_nsid, uint8_t *buf);
void nvmf_identify_ns_desc(const struct nvmf_ns_info *ns, uint8_t *buf);
uint16_t nvmf_identify(const struct nvmf_ctrl *c, const struct nvmf_ns_info *ns,
		       const uint8_t *sqe, uint8_t *buf, uint32_t len);
uint16_t nvmf_get_features(struct nvmf_ctrl *c, const uint8_t *sqe, uint64_t *res);
uint16_t nvmf_set_features(struct nvmf_ctrl *c, const uint8_t *sqe, uint64_t *res);

/* the log page bytes [lpo, lpo + len) into buf; disc_log/disc_len is the
 * discovery log for a discovery controller */
uint16_t nvmf_get_log_page(struct nvmf_ctrl *c, const struct nvmf_ns_info *ns,
			   const uint8_t *sqe, const uint8_t *disc_log,
			   uint32_t disc_len, uint8_t *buf, uint32_t len);
/* transfer length a Get Log Page asks for, in bytes */
uint32_t nvmf_log_page_len(const uint8_t *sqe);

/* Discovery Log Page with one entry per volume name; malloc'ed, *len set */
struct nvmf_disc_port {
	bool ipv6;
	char traddr[64];
	char trsvcid[16];
};
struct sockaddr;
bool nvmf_disc_port_is_wildcard(const struct nvmf_disc_port *port);
/* *out = the listener's port; when it is bound to 0.0.0.0 or ::, TRADDR
 * (and ADRFAM) come from local, the connection's own address (an
 * IPv4-mapped IPv6 address is reported as IPv4). */
void nvmf_disc_port_local(const struct nvmf_disc_port *listen,
			  const struct sockaddr *local, struct nvmf_disc_port *out);
uint8_t *nvmf_disc_log_build(const struct nvmf_disc_port *port, char **names,
			     size_t n, uint32_t *len);

/* ---- asynchronous events and the error log (pure) ---- */
/* An event happened (its log page is updated first). Not reported when the
 * host disabled it in Async Event Configuration or the same event awaits
 * its log page read; otherwise pending until an AER takes it. */
void nvmf_aen_raise(struct nvmf_ctrl *c, enum nvmf_aen ev);
/* The next pending, unmasked event for an AER: true with the completion's
 * dword 0 (type 2:0, info 15:8, log page 23:16); the event is masked. */
bool nvmf_aen_next(struct nvmf_ctrl *c, uint32_t *dw0);
/* Get Log Page lid was read: without RAE, events reported through that
 * page are unmasked. */
void nvmf_aen_log_read(struct nvmf_ctrl *c, uint8_t lid, bool rae);
/* Records a command completed with an error status (qid: its queue). */
void nvmf_err_record(struct nvmf_ctrl *c, uint16_t qid, const uint8_t *sqe,
		     uint16_t status);
/* Error Information log: NVMF_ERR_ENTRIES entries of 64 bytes, newest
 * first, into buf (zeroed by the caller) */
void nvmf_err_log(const struct nvmf_ctrl *c, uint8_t *buf);

/* ---- the cntlid registry (any thread) ---- */
/* assigns c->cntlid; 0 or -ENOSPC */
int nvmf_ctrl_register(struct nvmf_ctrl *c);
void nvmf_ctrl_unregister(struct nvmf_ctrl *c);
/* Is there a controller cntlid for this subsystem and host? When found and
 * on_reactor_of is set, *out is the controller: only valid to use on the
 * controller's own reactor. 0, -ENOENT (no such controller), -EPERM (other
 * subsystem or host). *vol (if set) is read under the registry lock, so a
 * caller can check that the controller lives on its reactor. */
int nvmf_ctrl_lookup(uint16_t cntlid, const char *subnqn, const char *hostnqn,
		     struct nvmf_ctrl **out, struct volume **vol);

#endif
