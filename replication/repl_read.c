/* Reads over the peer links: a diskless primary (diskless attach) reads
 * from a member holding the data, and that member serves them.
 *
 *   primary (diskless)          READ_REQ(id, off, len <= 1 MiB) per frame,
 *                               to the up-to-date peer with the least
 *                               pending; READ_REPLY data into the client's
 *                               buffer; done when every frame is in
 *   peer gone                   the read starts over on another up-to-date
 *                               peer, or fails with EIO when none is left
 *   member with data            repl_read_serve: read locally, answer with
 *                               the data (the link releases the buffer once
 *                               it is sent)
 *
 * Ordering: a read overlapping a write in flight waits for it (the write
 * path's blocked queue), so a read after an acknowledged write sees it on
 * whichever peer serves it (with ack=all every connected peer has it;
 * with ack=majority the request stays in flight until the laggard acked). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"
#include "log.h"
#include "repl_volume_priv.h"
#include "util.h"

struct repl_rd {
	struct vol_io *io;
	uint64_t id;                /* frame k has id + k */
	uint32_t peer;              /* member asked */
	uint32_t frames, due;       /* frames sent, replies still due */
	unsigned tries;             /* peers it was sent to */
	int res;
	struct repl_rd *next;
};

static uint32_t nframes(uint32_t len)
{
	return (len + REPL_MAX_DATA - 1) / REPL_MAX_DATA;
}

/* up to date, holding data, live: may serve reads */
static struct repl_peer *pick(struct repl_vol *rv, int avoid)
{
	struct repl_peer *best = NULL;

	for (unsigned i = 0; i < REPL_MAX_NODES; i++) {
		struct repl_peer *p = &rv->peers[i];

		if (!p->m || repl_peer_not_current(p) ||
		    p->st.disk_state != REPL_DISK_UP_TO_DATE || (int)i == avoid)
			continue;
		if (!best || p->pending < best->pending)
			best = p;
	}
	return best;
}

bool repl_read_source(struct repl_vol *rv)
{
	return pick(rv, -1) != NULL;
}

bool repl_read_source_besides(struct repl_vol *rv, uint32_t id)
{
	return pick(rv, (int)id) != NULL;
}

static int send_frames(struct repl_vol *rv, struct repl_rd *r, struct repl_peer *p)
{
	struct vol_io *io = r->io;

	r->peer = p->id;
	r->frames = nframes(io->len);
	r->id = rv->next_id + 1;
	rv->next_id += r->frames;
	r->due = 0;
	for (uint32_t k = 0; k < r->frames; k++) {
		struct repl_msg m = { .type = REPL_MSG_READ_REQ };
		uint32_t off = k * REPL_MAX_DATA;

		m.u.io.id = r->id + k;
		m.u.io.offset = io->off + off;
		m.u.io.length = MIN(REPL_MAX_DATA, io->len - off);
		if (repl_conn_send(p->conn, &m))
			return -EPIPE;
		r->due++;
		p->pending++;
	}
	return 0;
}

static void finish(struct repl_vol *rv, struct repl_rd *r)
{
	for (struct repl_rd **pp = &rv->reads; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	r->io->chain_done(r->io, r->res);
	free(r);
}

/* (again) on some peer; completes the read with EIO when none can */
static void dispatch(struct repl_vol *rv, struct repl_rd *r, int avoid)
{
	for (;;) {
		struct repl_peer *p = ++r->tries <= 2 * REPL_MAX_NODES ? pick(rv, avoid) : NULL;

		if (!p) {
			log_rl(LOG_LVL_WARN, "repl", "%s: read off=%llu failed: no up-to-date "
			       "replica connected", vname(rv), (unsigned long long)r->io->off);
			r->res = -EIO;
			finish(rv, r);
			return;
		}
		if (send_frames(rv, r, p) == 0)
			return;
		/* the link is going: its frames are settled by peer_gone */
		p->pending -= r->due;
		repl_conn_close(p->conn, REPL_REASON_NONE, "cannot queue a READ_REQ");
		avoid = (int)p->id;
	}
}

void repl_read_start(struct repl_vol *rv, struct vol_io *io)
{
	struct repl_rd *r = calloc(1, sizeof(*r));

	if (!r) {
		io->chain_done(io, -ENOMEM);
		return;
	}
	r->io = io;
	r->next = rv->reads;
	rv->reads = r;
	dispatch(rv, r, -1);
}

int repl_read_on_reply(struct repl_vol *rv, struct repl_peer *p, const struct repl_msg *m,
		       char *why, size_t whylen)
{
	const struct repl_read_reply *rr = &m->u.read_reply;
	struct repl_rd *r;
	uint64_t k;
	uint32_t off, len;

	for (r = rv->reads; r; r = r->next)
		if (r->peer == p->id && rr->id >= r->id && rr->id < r->id + r->frames && r->due)
			break;
	if (!r) {
		snprintf(why, whylen, "READ_REPLY for id %llu that was not asked of this peer",
			 (unsigned long long)rr->id);
		return -EBADMSG;
	}
	k = rr->id - r->id;
	off = (uint32_t)k * REPL_MAX_DATA;
	len = MIN(REPL_MAX_DATA, r->io->len - off);
	if (rr->status == REPL_ST_OK && m->data_len != len) {
		snprintf(why, whylen, "READ_REPLY of %u bytes for a read of %u", m->data_len, len);
		return -EBADMSG;
	}
	r->due--;
	p->pending--;
	if (rr->status == REPL_ST_OK)
		memcpy((uint8_t *)r->io->buf + off, m->data, len);
	else if (!r->res)
		r->res = repl_status_to_errno(rr->status);
	if (!r->due) {
		if (r->res && r->res != -EIO) {
			finish(rv, r);
		} else if (r->res) {
			/* that replica failed it: another one may not */
			log_warn("repl", "%s: peer %u (%s) failed a read off=%llu: trying another",
				 vname(rv), p->id, p->m->node, (unsigned long long)r->io->off);
			r->res = 0;
			dispatch(rv, r, (int)p->id);
		} else {
			finish(rv, r);
		}
	}
	return 0;
}

void repl_read_peer_gone(struct repl_vol *rv, struct repl_peer *p)
{
	for (struct repl_rd *r = rv->reads, *next; r; r = next) {
		next = r->next;
		if (r->peer != p->id || !r->due)
			continue;
		p->pending -= r->due;
		r->due = 0;
		r->res = 0;
		dispatch(rv, r, (int)p->id);
	}
}

/* ---- the member with data ------------------------------------------------------ */

static void release_buf(const uint8_t *data, uint32_t len)
{
	iobuf_put((void *)data, len);
}

static void serve_done(struct repl_sec_read *s, int res)
{
	struct vol_io *io = &s->io;
	struct repl_msg m = { .type = REPL_MSG_READ_REPLY };
	bool handed_on = false;

	m.u.read_reply.id = s->id;
	m.u.read_reply.status = repl_status_from_errno(res < 0 ? res : 0);
	if (res >= 0) {
		m.data = io->buf;
		m.data_len = io->len;
	} else {
		log_rl(LOG_LVL_WARN, "repl", "%s: read off=%llu for the primary failed: %s",
		       vname(s->rv), (unsigned long long)io->off, strerror(-res));
	}
	if (s->c->state == REPL_CONN_LIVE)
		handed_on = repl_conn_send_owned(s->c, &m, res >= 0 ? release_buf : NULL) == 0 &&
			    res >= 0;
	repl_sec_read_end(s, handed_on);
}

int repl_read_serve(struct repl_vol *rv, struct repl_peer *p, struct repl_conn *c,
		    const struct repl_msg *m, char *why, size_t whylen)
{
	if (p->st.role != REPL_ROLE_PRIMARY || rv->role == REPL_ROLE_PRIMARY) {
		snprintf(why, whylen, "READ_REQ from a peer that is not the primary");
		return -EBADMSG;
	}
	if (m->u.io.offset + m->u.io.length > rv->v->size) {
		snprintf(why, whylen, "READ_REQ off=%llu len=%u past the end (%llu)",
			 (unsigned long long)m->u.io.offset, m->u.io.length,
			 (unsigned long long)rv->v->size);
		return -EBADMSG;
	}
	if (rv->disk != REPL_DISK_UP_TO_DATE) {
		struct repl_msg r = { .type = REPL_MSG_READ_REPLY };

		/* only current data is served: the primary asks another */
		r.u.read_reply.id = m->u.io.id;
		r.u.read_reply.status = REPL_ST_IO;
		repl_conn_send(c, &r);
		return 0;
	}
	if (repl_sec_read_start(rv, p, c, m, serve_done)) {
		snprintf(why, whylen, "out of memory");
		return -EBADMSG;
	}
	return 0;
}
