/* replication/repl_peerack.c on a replica set built in memory: this
 * member (1) is a secondary of primary 0, with members 2 and 3 to track.
 * No sockets: the links are repl_conn structs with the negotiated
 * features and a state; nothing here sends (the paths that send are
 * proven by tests/cluster/t-repl-peer-ack.sh). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../replication/repl_volume_priv.h"

#define SIZE  (64ull << 20)
#define GRAIN 65536u

struct fx {
	struct store_volume sv;
	struct volume v;
	struct repl_vol rv;
	struct repl_conn conn[4];
};

static const struct repl_state up_follow0 = {
	.role = REPL_ROLE_SECONDARY, .disk_state = REPL_DISK_UP_TO_DATE, .bm_grain = GRAIN,
	.size = SIZE, .gen_current = 0x1111, .following = 1,
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx->sv.meta.bm_grain = GRAIN;
	fx->sv.meta.gen.current = 0x1111;
	fx->v.sv = &fx->sv;
	fx->v.size = SIZE;
	strcpy(fx->v.name, "pv");
	fx->rv.v = &fx->v;
	fx->rv.cfg.local_id = 1;
	fx->rv.role = REPL_ROLE_SECONDARY;
	fx->rv.disk = REPL_DISK_UP_TO_DATE;
	for (unsigned i = 0; i < 4; i++) {
		struct repl_peer *p = &fx->rv.peers[i];

		fx->rv.cfg.members[i].present = true;
		snprintf(fx->rv.cfg.members[i].node, sizeof(fx->rv.cfg.members[i].node),
			 "node-%u", i);
		p->id = i;
		if (i == 1)
			continue;
		p->m = &fx->rv.cfg.members[i];
		p->conn = &fx->conn[i];
		p->live = true;
		p->st = up_follow0;
		p->st.node_id = i;
		fx->conn[i].state = REPL_CONN_LIVE;
		fx->conn[i].features = REPL_FEAT_PEER_ACK;
		fx->conn[i].peer_id = i;
	}
	fx->rv.peers[0].st.role = REPL_ROLE_PRIMARY;
	fx->rv.peers[0].st.following = 0;
	assert_int_equal(repl_pa_new(&fx->rv), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	for (unsigned i = 0; i < 4; i++)
		repl_bitmap_free(fx->rv.peers[i].bm);
	repl_pa_free(&fx->rv);
	free(fx);
	return 0;
}

static void apply(struct fx *fx, uint64_t id, uint64_t off, uint32_t len)
{
	struct repl_msg m = { .type = REPL_MSG_WRITE };

	m.u.io.id = id;
	m.u.io.offset = off;
	m.u.io.length = len;
	repl_pa_applied(&fx->rv, &fx->rv.peers[0], &m);
}

static int peer_ack_sync(struct fx *fx, unsigned from, const uint64_t *ids,
			 const uint32_t *holders, unsigned n, uint32_t in_sync)
{
	static uint8_t ents[16 * REPL_MAX_PEER_ACKS];
	struct repl_msg m = { .type = REPL_MSG_PEER_ACK };
	char why[160] = "";

	for (unsigned i = 0; i < n; i++)
		repl_peer_ack_put(ents, i, ids[i], holders[i]);
	m.u.peer_ack.count = n;
	m.u.peer_ack.in_sync = in_sync;
	m.data = ents;
	m.data_len = 16 * n;
	return repl_pa_on_peer_ack(&fx->rv, &fx->rv.peers[from], &m, why, sizeof(why));
}

static int peer_ack(struct fx *fx, unsigned from, const uint64_t *ids, const uint32_t *holders,
		    unsigned n)
{
	return peer_ack_sync(fx, from, ids, holders, n, 0);
}

/* the primary says 2 and 3 hold all it settled: tracking starts */
static void track(struct fx *fx)
{
	repl_pa_update(&fx->rv); /* following 0 */
	assert_int_equal(peer_ack_sync(fx, 0, NULL, NULL, 0, 0xd), 0);
}

static uint64_t marked_bytes(const struct repl_peer *x)
{
	return x->trk ? repl_bitmap_count(x->trk) * GRAIN : 0;
}

/* tracking starts on the primary's word (PEER_ACK's in-sync set), not on
 * what the members say of themselves, and stops when they turn out to be
 * resync targets or we are behind */
static void test_tracking_starts(void **state)
{
	struct fx *fx = *state;

	repl_pa_update(&fx->rv);
	assert_false(fx->rv.peers[2].trk_valid); /* their STATEs alone: no */
	track(fx);
	assert_true(fx->rv.peers[2].trk_valid);
	assert_true(fx->rv.peers[3].trk_valid);
	assert_false(fx->rv.peers[0].trk_valid); /* the primary itself: never */
	assert_int_equal(fx->rv.peers[2].trk_base, 0x1111);
	/* a member the primary does not name is not tracked */
	fx->rv.peers[2].trk_valid = fx->rv.peers[3].trk_valid = false;
	assert_int_equal(peer_ack_sync(fx, 0, NULL, NULL, 0, 0x8), 0);
	assert_false(fx->rv.peers[2].trk_valid);
	assert_true(fx->rv.peers[3].trk_valid);
	/* not while we are behind */
	fx->rv.disk = REPL_DISK_OUTDATED;
	repl_pa_update(&fx->rv);
	assert_false(fx->rv.peers[3].trk_valid);
	assert_int_equal(peer_ack_sync(fx, 0, NULL, NULL, 0, 0xc), 0);
	assert_false(fx->rv.peers[2].trk_valid);
	fx->rv.disk = REPL_DISK_UP_TO_DATE;
	track(fx);
	/* stopped for a member that turns out to be a resync target */
	fx->rv.peers[3].st.disk_state = REPL_DISK_INCONSISTENT;
	repl_pa_update(&fx->rv);
	assert_true(fx->rv.peers[2].trk_valid);
	assert_false(fx->rv.peers[3].trk_valid);
	/* a primary without the feature: no ring, no tracking */
	fx->conn[0].features = 0;
	repl_pa_primary_lost(&fx->rv, &fx->rv.peers[0], false);
	fx->rv.peers[2].trk_valid = false;
	repl_pa_update(&fx->rv);
	assert_int_equal(peer_ack_sync(fx, 0, NULL, NULL, 0, 0xc), 0);
	assert_false(fx->rv.peers[2].trk_valid);
}

/* a PEER_ACK marks each tracked member it leaves out; the rest of the ring
 * goes to everyone when the primary is lost */
static void test_peer_ack_marks_and_spill(void **state)
{
	struct fx *fx = *state;
	uint64_t ids[2] = { 10, 11 };
	uint32_t holders[2] = { 0x7, 0xb }; /* 10: not on 3; 11: not on 2 */

	track(fx);
	apply(fx, 10, 0, 4096);
	apply(fx, 11, 1 << 20, 8192);
	apply(fx, 12, 5 << 20, 4096);
	assert_int_equal(peer_ack(fx, 0, ids, holders, 2), 0);
	assert_int_equal(marked_bytes(&fx->rv.peers[2]), GRAIN);
	assert_true(repl_bitmap_test_range(fx->rv.peers[2].trk, 1 << 20, 8192));
	assert_int_equal(marked_bytes(&fx->rv.peers[3]), GRAIN);
	assert_true(repl_bitmap_test_range(fx->rv.peers[3].trk, 0, 4096));
	/* a PEER_ACK naming ids we never got changes nothing */
	ids[0] = 99;
	holders[0] = 0x1;
	assert_int_equal(peer_ack(fx, 0, ids, holders, 1), 0);
	assert_int_equal(marked_bytes(&fx->rv.peers[2]), GRAIN);
	/* 12 never settled: on any subset, so everyone's */
	repl_pa_primary_lost(&fx->rv, &fx->rv.peers[0], true);
	assert_int_equal(marked_bytes(&fx->rv.peers[2]), 2 * GRAIN);
	assert_int_equal(marked_bytes(&fx->rv.peers[3]), 2 * GRAIN);
	assert_true(repl_bitmap_test_range(fx->rv.peers[2].trk, 5 << 20, 4096));
	/* frozen between primaries: tracking stays valid for our promotion */
	fx->rv.peers[0].live = false;
	repl_pa_update(&fx->rv);
	assert_true(fx->rv.peers[2].trk_valid);
}

static void test_peer_ack_only_from_the_primary(void **state)
{
	struct fx *fx = *state;
	uint64_t id = 1;
	uint32_t h = 0x3;

	repl_pa_update(&fx->rv);
	assert_int_equal(peer_ack(fx, 2, &id, &h, 1), -EBADMSG);
	fx->rv.role = REPL_ROLE_PRIMARY;
	assert_int_equal(peer_ack(fx, 0, &id, &h, 1), -EBADMSG);
}

/* the promoted member's claims: tracked bits, plus an unconfirmed
 * member's report, for the generation it had */
static void test_promotion_claims(void **state)
{
	struct fx *fx = *state;
	struct repl_peer *c = &fx->rv.peers[2], *d = &fx->rv.peers[3];
	uint64_t id = 20;
	uint32_t h = 0x3; /* on 0 and 1 only */

	track(fx);
	apply(fx, 20, 8 << 20, 4096);
	assert_int_equal(peer_ack(fx, 0, &id, &h, 1), 0);
	fx->rv.peers[0].live = false;
	repl_pa_primary_lost(&fx->rv, &fx->rv.peers[0], true);
	fx->rv.role = REPL_ROLE_PRIMARY;
	fx->rv.primary_runs = 1;
	repl_pa_promoted(&fx->rv);
	assert_true(c->bm_trk && c->bm_complete);
	assert_int_equal(c->bm_base, 0x1111);
	assert_int_equal(c->bm_run, 1);
	assert_int_equal(repl_bitmap_count(c->bm), 1);
	assert_false(c->trk_valid);
	/* not unconfirmed: the claim holds as it is */
	assert_true(repl_pa_claim(&fx->rv, c));
	/* unconfirmed without a report: no claim (a full resync) */
	d->st.flags = REPL_STATE_F_UNCONFIRMED;
	assert_false(repl_pa_claim(&fx->rv, d));
	/* a generation we never had since the tracking began: no claim */
	c->st.gen_current = 0x2222;
	assert_false(repl_pa_claim(&fx->rv, c));
}

/* the generations a tracked member may come back with: ours since the
 * tracking began, not older ones */
static void test_claim_generations(void **state)
{
	struct fx *fx = *state;
	struct repl_peer *c = &fx->rv.peers[2];

	fx->sv.meta.gen.history[0] = 0x0fff;
	track(fx);                               /* at 0x1111 */
	fx->sv.meta.gen.history[1] = 0x0fff;     /* the primary rotated twice since */
	fx->sv.meta.gen.history[0] = 0x1111;
	fx->sv.meta.gen.current = 0x3333;
	fx->rv.peers[0].live = false;
	repl_pa_primary_lost(&fx->rv, &fx->rv.peers[0], true);
	fx->rv.role = REPL_ROLE_PRIMARY;
	c->live = false;                         /* away: its last STATE said 0x1111 */
	repl_pa_promoted(&fx->rv);
	assert_int_equal(c->trk_ngens, 2);
	assert_int_equal(c->bm_base, 0x1111);
	assert_true(repl_pa_rebase(c, 0x3333));  /* it followed the last rotation */
	assert_int_equal(c->bm_base, 0x3333);
	assert_true(repl_pa_rebase(c, 0x1111));
	assert_false(repl_pa_rebase(c, 0x0fff)); /* older than the tracking: no */
}

static int report(struct fx *fx, unsigned from, uint64_t total, uint64_t first, uint32_t flags,
		  const uint8_t *chunk, uint32_t len)
{
	struct repl_msg m = { .type = REPL_MSG_BITMAP };
	char why[160] = "";

	m.u.bitmap.total_bits = total;
	m.u.bitmap.first_bit = first;
	m.u.bitmap.flags = flags;
	m.data = chunk;
	m.data_len = len;
	return repl_pa_on_report(&fx->rv, &fx->rv.peers[from], &m, why, sizeof(why));
}

/* a report in the sender's grain lands as byte ranges in ours; UNKNOWN and
 * malformed ones are what they are */
static void test_report(void **state)
{
	struct fx *fx = *state;
	struct repl_peer *c = &fx->rv.peers[2];
	uint8_t chunk[16] = { 0 };
	uint64_t total = SIZE / (16 * 1024); /* c's grain: 16 KiB */

	track(fx); /* tracked since before it lost the primary */
	assert_true(c->trk_valid);
	c->st.bm_grain = 16 * 1024;
	c->st.flags = REPL_STATE_F_UNCONFIRMED;
	chunk[0] = 0x01;        /* c's bit 0: bytes [0, 16K) */
	chunk[15] = 0x80;       /* bit 127: [127 * 16K, 128 * 16K), in our grain 31 */
	assert_int_equal(report(fx, 2, total, 0, 0, chunk, 16), 0);
	assert_false(c->rep_valid); /* not the last chunk yet */
	memset(chunk, 0, sizeof(chunk));
	assert_int_equal(report(fx, 2, total, total - 64, REPL_BM_F_LAST, chunk, 8), 0);
	assert_true(c->rep_valid);
	assert_int_equal(repl_bitmap_count(c->rep), 2);
	assert_true(repl_bitmap_test_bit(c->rep, 0));
	assert_true(repl_bitmap_test_bit(c->rep, 31));
	/* the claim merges it */
	fx->rv.peers[0].live = false;
	repl_pa_primary_lost(&fx->rv, &fx->rv.peers[0], true);
	fx->rv.role = REPL_ROLE_PRIMARY;
	repl_pa_promoted(&fx->rv);
	assert_true(repl_pa_claim(&fx->rv, c));
	assert_int_equal(repl_bitmap_count(c->bm), 2);
	/* UNKNOWN: no usable report */
	assert_int_equal(report(fx, 2, total, total - 64, REPL_BM_F_LAST | REPL_BM_F_UNKNOWN,
				chunk, 8), 0);
	assert_false(c->rep_valid);
	/* a total that does not fit its size and grain */
	assert_int_equal(report(fx, 2, total + 64, 0, REPL_BM_F_LAST, chunk, 8), -EBADMSG);
	/* the STATE that says it is confirmed again drops the report */
	assert_int_equal(report(fx, 2, total, total - 64, REPL_BM_F_LAST, chunk, 8), 0);
	assert_true(c->rep_valid);
	{
		struct repl_state s = c->st;

		s.flags = 0;
		repl_pa_peer_state(&fx->rv, c, &s);
	}
	assert_false(c->rep_valid);
	/* without the feature on the link: a protocol error */
	fx->conn[2].features = 0;
	assert_int_equal(report(fx, 2, total, total - 64, REPL_BM_F_LAST, chunk, 8), -EBADMSG);
}

/* the ring is bounded: overflowing it stops tracking (full resyncs), never
 * a wrong claim */
static void test_ring_overflow(void **state)
{
	struct fx *fx = *state;

	track(fx);
	for (uint64_t id = 1; id <= 8192; id++)
		apply(fx, id, (id % 1000) * 4096, 4096);
	assert_true(fx->rv.peers[2].trk_valid);
	apply(fx, 8193, 0, 4096);
	assert_false(fx->rv.peers[2].trk_valid);
	assert_false(fx->rv.peers[3].trk_valid);
	repl_pa_update(&fx->rv); /* stays off until the next primary */
	assert_false(fx->rv.peers[2].trk_valid);
}

/* the primary's side: settled requests queue up and are due with the next
 * request when enough are queued or little is in flight */
static void test_primary_queue(void **state)
{
	struct fx *fx = *state;

	fx->rv.role = REPL_ROLE_PRIMARY;
	assert_false(repl_pa_due(&fx->rv, 1));
	repl_pa_settled(&fx->rv, 1, 0x3);
	assert_true(repl_pa_due(&fx->rv, 1));   /* QD1: every time */
	assert_false(repl_pa_due(&fx->rv, 8)); /* busy: wait for 16 */
	for (uint64_t id = 2; id <= 16; id++)
		repl_pa_settled(&fx->rv, id, 0x3);
	assert_true(repl_pa_due(&fx->rv, 8));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tracking_starts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_ack_marks_and_spill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_ack_only_from_the_primary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_promotion_claims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_generations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_primary_queue, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
