/* Generation identifiers (repl_volume.c): who is behind, who diverged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store_format.h"
#include "../../replication/repl_volume.h"

static struct store_generations gen(uint64_t cur, uint64_t bm, uint64_t h0, uint64_t h1)
{
	return (struct store_generations){ cur, bm, { h0, h1 } };
}

static void test_same(void **state)
{
	struct store_generations a = gen(5, 0, 0, 0), b = gen(5, 3, 0, 0);

	assert_int_equal(repl_gen_compare(&a, &b), REPL_GEN_SAME);
}

/* a primary that wrote without a peer rotated: the peer's current is in
 * its past, whichever slot holds it */
static void test_behind_and_ahead(void **state)
{
	struct store_generations p = gen(9, 5, 3, 1);

	for (uint64_t old = 5; old; old = old == 5 ? 3 : old == 3 ? 1 : 0) {
		struct store_generations s = gen(old, 0, 0, 0);

		assert_int_equal(repl_gen_compare(&p, &s), REPL_GEN_LOCAL_NEWER);
		assert_int_equal(repl_gen_compare(&s, &p), REPL_GEN_PEER_NEWER);
	}
}

/* both moved on from the same generation: split brain, never merged */
static void test_split_brain(void **state)
{
	struct store_generations a = gen(11, 5, 0, 0), b = gen(12, 5, 0, 0);
	struct store_generations c = gen(13, 7, 5, 0);

	assert_int_equal(repl_gen_compare(&a, &b), REPL_GEN_SPLIT_BRAIN);
	assert_int_equal(repl_gen_compare(&b, &a), REPL_GEN_SPLIT_BRAIN);
	assert_int_equal(repl_gen_compare(&a, &c), REPL_GEN_SPLIT_BRAIN);
}

static void test_unrelated(void **state)
{
	struct store_generations a = gen(11, 0, 0, 0), b = gen(12, 0, 0, 0);

	assert_int_equal(repl_gen_compare(&a, &b), REPL_GEN_UNRELATED);
	/* zeroes never match anything: a fresh, unset history is no ancestor */
	a = gen(11, 0, 0, 0);
	b = gen(12, 0, 0, 0);
	assert_int_equal(repl_gen_compare(&a, &b), REPL_GEN_UNRELATED);
}

/* a member that joined (`create --join`) has generation 0: behind
 * everybody, whatever their history */
static void test_joined_member_is_behind(void **state)
{
	struct store_generations j = gen(0, 0, 0, 0), p = gen(9, 5, 3, 1);

	assert_int_equal(repl_gen_compare(&p, &j), REPL_GEN_LOCAL_NEWER);
	assert_int_equal(repl_gen_compare(&j, &p), REPL_GEN_PEER_NEWER);
	assert_int_equal(repl_gen_compare(&j, &j), REPL_GEN_SAME);
}

/* rotate: the first rotation keeps the old current as the bitmap
 * generation (what the absent peers still have); later ones push into
 * history, so peers at any of them still compare as "behind" */
static void test_rotate(void **state)
{
	struct store_generations g = gen(5, 0, 0, 0), peer_at_5 = gen(5, 0, 0, 0);
	struct store_generations peer_at_9;

	repl_gen_rotate(&g, 9);
	assert_int_equal(g.current, 9);
	assert_int_equal(g.bitmap, 5);
	peer_at_9 = g;
	repl_gen_rotate(&g, 13);
	assert_int_equal(g.current, 13);
	assert_int_equal(g.bitmap, 5);
	assert_int_equal(g.history[0], 9);
	assert_int_equal(repl_gen_compare(&g, &peer_at_5), REPL_GEN_LOCAL_NEWER);
	assert_int_equal(repl_gen_compare(&g, &peer_at_9), REPL_GEN_LOCAL_NEWER);
	assert_int_equal(repl_gen_compare(&peer_at_9, &g), REPL_GEN_PEER_NEWER);
	/* the partition case: both sides rotated from 9 independently */
	peer_at_9 = gen(9, 5, 0, 0);
	repl_gen_rotate(&peer_at_9, 21);
	assert_int_equal(repl_gen_compare(&g, &peer_at_9), REPL_GEN_SPLIT_BRAIN);
	assert_string_equal(repl_gen_cmp_name(REPL_GEN_SPLIT_BRAIN), "split-brain");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same),
		cmocka_unit_test(test_behind_and_ahead),
		cmocka_unit_test(test_split_brain),
		cmocka_unit_test(test_unrelated),
		cmocka_unit_test(test_joined_member_is_behind),
		cmocka_unit_test(test_rotate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
