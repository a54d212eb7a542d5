#!/usr/bin/env bash
# A diskless primary loses its last up-to-date member in the middle of a
# resync: c (diskless) is primary, b (back from a kill -9) is being
# resynced from a at 2 MiB/s, and a is cut off from c.
#   - c's writes now fail with I/O errors: b alone is a resync target
#     (inconsistent) and could not serve them ("no up-to-date member
#     holds it"), though c keeps quorum with b; b's resync stops, there
#     is nothing to read from
#   - on heal, a is current again and b's resync resumes from it; the
#     writes that failed while a was away reached b and not a: a's bitmap
#     marks them, and once b is up to date c resyncs those grains to a
#     from b (before: a stayed "up to date" with them marked, for good)
#   - every acknowledged write reads back through c; a = b
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip nft
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

REPL_DISKLESS=c
repl_up a b c
# a primary with data first makes a and b up to date (they start consistent)
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
ctl a volume demote "$VOL" >/dev/null || fail "demote a"
promote_retry c
kill9_in b
# b misses the checker's first second (its 16 MiB of blocks): the resync,
# at 2 MiB/s, outlasts the cut below
ctl c volume set "$VOL" --resync-rate 2M >/dev/null || fail "set the resync rate on c"
checker_bg c w1 12 "$(nbd_uri c)"
sleep 1
repl_start b
_b_syncing() { [ "$(peer_field c 1 syncing)" = True ] && [ "$(peer_field c 1 resync_done_bytes)" -gt 0 ]; }
wait_until 10 _b_syncing || fail "c does not resync b: $(vstatus c)"
partition a c
_a_gone() { [ "$(peer_field c 0 connection)" != connected ]; }
wait_until 10 _a_gone || fail "c still sees a"
[ "$(vfield c 'v["replication"]["quorum"]')" = True ] || fail "c lost quorum (it has b)"
sleep 1.5
grep -q "failed: no up-to-date member holds it" "$T/az-c/urbd."*.log ||
	fail "c's log does not say why its writes fail"
grep -q "resync to peer 1 (node-b) stopped at" "$T/az-c/urbd."*.log ||
	fail "c's log does not show b's resync stopped"
lost=$(peer_field c 0 out_of_sync_bytes)
[ "$lost" -gt 0 ] || fail "c marked nothing for a: $(vstatus c)"
heal a c
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" -gt 0 ] || fail "no write failed while a was away"
[ "$(chk_field w1 acked)" -gt 100 ] || fail "too few writes acknowledged"
ctl c volume set "$VOL" --resync-rate default >/dev/null || fail "resync rate back to the default"
_all_back() {
	[ "$(peer_field c 1 disk_state)" = up-to-date ] && [ "$(peer_field c 1 syncing)" = False ] &&
		[ "$(peer_field c 0 disk_state)" = up-to-date ] && [ "$(peer_field c 0 syncing)" = False ] &&
		[ "$(peer_field c 0 outdated)" = False ] && [ "$(peer_field c 1 outdated)" = False ] &&
		[ "$(peer_field c 0 out_of_sync_bytes)" = 0 ] && [ "$(peer_field c 1 out_of_sync_bytes)" = 0 ]
}
wait_until 30 _all_back || fail "a and b are not both up to date with nothing marked: $(ctl c volume status "$VOL")"
grep -q "peer 0 (node-a) lacks [0-9]* grain(s) of writes that failed while it was away: resyncing them from another" \
	"$T/az-c/urbd."*.log || fail "c's log does not show a resynced from b"
wait_until 5 no_pending c
checker_verify c w1
cmp "$(data_of a)" "$(data_of b)" || fail "a and b differ"
pass "diskless c lost a mid-resync of b: $(chk_field w1 errors) writes failed (no up-to-date member), $(chk_field w1 acked) acknowledged; a back: b's resync resumed, then a's $lost marked bytes came from b; every ack verified; a = b"
