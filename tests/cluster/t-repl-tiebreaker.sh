#!/usr/bin/env bash
# Two replicas (a, b) and a diskless tie-breaker (c): c votes and keeps the
# newest generation, holds no data, and cannot be promoted.
#   1. kill -9 of the primary a mid-write: b is promoted with c's vote;
#      every acknowledged write is on b; a returns as secondary and is
#      resynced from b's bitmap plus its own activity log; a = b
#   2. partition of the primary b from a and c: b refuses writes; a is
#      promoted with c's vote; on heal b steps down and is resynced
#   3. the case a tie-breaker is for: a (primary) loses b but keeps c and
#      writes on. c takes a's new generation, so b, which missed those
#      writes, is outdated even once a is unreachable: promoting b is
#      refused, nothing acknowledged is lost. On heal b is resynced from
#      a's bitmap.
# c's data file never gets a block.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip nft qemu-io
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

REPL_DISKLESS=c
repl_up a b c
[ "$(vfield c 'v["replication"]["disk_state"]')" = diskless ] || fail "c is not diskless: $(vstatus c)"
[ "$(peer_field a 2 diskless)" = True ] || fail "a does not see c as diskless"
out=$(ctl c volume promote "$VOL" 2>&1) && fail "the tie-breaker was promoted"
grep -q diskless <<<"$out" || fail "promote c refused without saying why: $out"

# ---- 1. kill -9 of the primary ------------------------------------------------
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
checker_bg c w1 7 "$(nbd_uri a),$(nbd_uri b)" --reconnect-seconds 20 --io-timeout 5
sleep 2
t0=$(date +%s%N)
kill9_in a
promote_retry b
t1=$(date +%s%N)
log "1: killed a; b promoted with c's vote $(((t1 - t0) / 1000000)) ms after the kill"
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 reconnects)" -ge 1 ] || fail "the checker never moved to b"
checker_verify b w1
repl_start a
wait_until 30 up_to_date a || fail "a did not become up-to-date: $(vstatus a)"
moved=$(peer_field b 0 resync_done_bytes)
[ "$moved" -gt 0 ] && [ "$moved" -lt "$(vfield b 'v["size_bytes"]')" ] ||
	fail "a's resync moved $moved bytes: want its activity log and b's writes, not all"
wait_until 5 no_pending b
replicas_identical b a || fail "a and b differ after a's resync"

# ---- 2. partition of the primary b ------------------------------------------
partition b a
partition b c
_no_quorum_b() { [ "$(vfield b 'v["replication"]["quorum"]')" = False ]; }
wait_until 10 _no_quorum_b || fail "b still claims quorum"
out=$(in_az b timeout 30 qemu-io -f raw "$(nbd_uri b)" -c 'write -f -P 0x99 20M 64k' 2>&1) || true
grep -qiE 'error|fail' <<<"$out" || fail "b acknowledged a write without quorum: $out"
promote_retry a
checker_bg a w1 3 "$(nbd_uri a)"
checker_wait "$CHK_PID" w1
heal b a
heal b c
_b_down() { [ "$(vfield b 'v["replication"]["role"]')" = secondary ]; }
wait_until 15 _b_down || fail "b did not step down: $(vstatus b)"
wait_until 30 up_to_date b || fail "b was not resynced: $(vstatus b)"
wait_until 5 no_pending a
checker_verify a w1
replicas_identical a b || fail "a and b differ after b's resync"
log "2: b without quorum refused writes; a promoted with c; b stepped down and was resynced"

# ---- 3. a keeps c, loses b: b must not take over ------------------------------
gen_before=$(vfield c 'v["replication"]["generation"]')
partition a b
checker_bg a w1 3 "$(nbd_uri a)"
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "a (with c) failed writes after losing b"
gen_a=$(vfield a 'v["replication"]["generation"]')
[ "$gen_a" != "$gen_before" ] || fail "a kept its generation while writing without b"
[ "$(vfield c 'v["replication"]["generation"]')" = "$gen_a" ] ||
	fail "c did not take a's new generation"
_b_outdated() { [ "$(vfield b 'v["replication"]["disk_state"]')" = outdated ]; }
wait_until 10 _b_outdated || fail "b, which missed writes, is not outdated: $(vstatus b)"
# a gone from everybody's view (a kill -9 would do the same, but would
# also lose a's in-memory bitmap for b: persisted bitmaps are a later step)
partition a c
_c_free() { [ "$(vfield c 'sum(p["connection"]=="connected" for p in v["replication"]["peers"])')" = 1 ]; }
wait_until 10 _c_free || fail "c still sees a"
out=$(ctl b volume promote "$VOL" 2>&1) && fail "b, missing acknowledged writes, was promoted"
log "3: a wrote with c's vote; b outdated; with a unreachable b refused: $out"
heal a c
heal a b
wait_connected a 2
[ "$(vfield a 'v["replication"]["role"]')" = primary ] || fail "a lost its role"
wait_until 30 up_to_date b || fail "b was not resynced: $(vstatus b)"
moved=$(peer_field a 1 resync_done_bytes)
[ "$moved" -lt "$(vfield a 'v["size_bytes"]')" ] || fail "b's resync was a full one ($moved bytes)"
wait_until 5 no_pending a
checker_verify a w1
replicas_identical a b || fail "a and b differ after b's resync"
alloc=$(stat -c %b "$(data_of c)")
[ "$alloc" = 0 ] || fail "the tie-breaker's data file holds $alloc blocks"
pass "tie-breaker: b promoted with c after kill -9 of a; a promoted with c after b's partition; b outdated by c's generation and refused with a gone; resyncs; c holds no data"
