#!/usr/bin/env bash
# A blip: the primary is cut off from both peers for a few seconds while
# the checker writes, and nobody is promoted meanwhile. Its writes fail
# (no quorum: I/O errors, never an acknowledgement), and those that were
# in flight reached its own disk and maybe one peer.
#   1. the checker stops during the blip: on heal both peers come back
#      with the primary's generation; the one that lacks the failed
#      writes is resynced from its bitmap (a few grains, not the volume).
#      At b43681f, in 14 runs: 4 ended with a full resync of one peer
#      (its bitmap's base was a generation a failed barrier had dropped),
#      7 with no resync at all and that peer's copy differing from a's in
#      2-8 grains of 64 KiB, 3 with nothing left to differ.
#      Its first writes after that start no new generation: b and c are
#      back in step, and nothing was acknowledged without them.
#   2. the checker writes through the heal: no full resync either, and a
#      peer that connects while writes it did not get are in flight is
#      resynced in them too. (At b43681f both peers got full resyncs here,
#      6 runs of 6: a peer's STATE with the generation of the barrier
#      after the heal came before its FLUSH_ACK moved the bitmap's base
#      along. With only the fixes for 1. and that, one run in two ended with
#      a peer that missed an acknowledged write and claimed to be up to
#      date: the races this half is for. Timing decides whether a run
#      meets them, so this half is a randomized check.)
# Both: every acknowledged write reads back, a = b = c, no full resync.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip nft
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

_no_quorum() { [ "$(vfield a 'v["replication"]["quorum"]')" = False ]; }
# cut_off: a loses b and c at once, until it sees it has no quorum
cut_off() {
	partition a b
	partition a c
	wait_until 10 _no_quorum || fail "a still claims quorum"
}
rejoin() {
	heal a b
	heal a c
}
no_full_resync() {
	if grep -q "from everything" "$T/az-a/urbd."*.log; then
		fail "a resynced a peer entirely: $(grep 'resync to' "$T/az-a/urbd."*.log)"
	fi
}

repl_up a b c
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
# 1. the checker stops while a is cut off: what the peers get resynced
# afterwards is the blip's alone
checker_bg a w1 5 "$(nbd_uri a)"
sleep 1.5
cut_off
checker_wait "$CHK_PID" w1
rejoin
[ "$(chk_field w1 errors)" -gt 0 ] || fail "no write failed during the blip"
[ "$(chk_field w1 acked)" -gt 100 ] || fail "too few writes acknowledged"
_back() { up_to_date b && up_to_date c && [ "$(vfield a 'v["replication"]["quorum"]')" = True ] &&
	[ "$(peer_field a 1 syncing)" = False ] && [ "$(peer_field a 2 syncing)" = False ] &&
	[ "$(peer_field a 1 outdated)" = False ] && [ "$(peer_field a 2 outdated)" = False ]; }
wait_until 30 _back || fail "b and c are not back in sync: $(vstatus a)"
for z in b c; do
	[ "$(vfield "$z" 'v["replication"]["role"]')" = secondary ] || fail "$z is not a secondary"
done
[ "$(vfield a 'v["replication"]["role"]')" = primary ] || fail "a is no longer primary"
# what each peer got: grains of the failed writes, never the whole volume
size=$(vfield a 'v["size_bytes"]')
moved=0
for id in 1 2; do
	t=$(peer_field a "$id" resync_total_bytes)
	[ "$t" -lt $((size / 8)) ] || fail "peer $id got $t bytes resynced of $size: a full resync"
	moved=$((moved + t))
done
[ "$moved" -gt 0 ] || fail "no peer was resynced for the failed writes ($(vstatus a))"
grep -q "is back with our generation but lacks [0-9]* grain(s) of our writes" \
	"$T/az-a/urbd."*.log || fail "a's log does not say why it resyncs a peer of its generation"
no_full_resync
wait_until 5 no_pending a
checker_verify a w1
replicas_identical a b c || fail "replicas differ after the blip"
log "blip 1: $(chk_field w1 errors) writes failed; on heal $moved bytes resynced (bitmap, volume $size); a = b = c"

# 2. again, with the checker writing on through the heal
n_rot=$(cat "$T/az-a/urbd."*.log | grep -c "writing without every member" || true)
checker_bg a w2 6 "$(nbd_uri a)"
sleep 1.5
# b and c lack nothing since blip 1: the first writes start no generation
# (before 2026-12-07 the first one did, and a barrier with it)
n_now=$(cat "$T/az-a/urbd."*.log | grep -c "writing without every member" || true)
[ "$n_now" = "$n_rot" ] || fail "a started a generation for members that were back in step"
grep -q "every member is back in step: no new generation needed" "$T/az-a/urbd."*.log ||
	fail "a's log does not say it owes no new generation"
cut_off
sleep 1
rejoin
checker_wait "$CHK_PID" w2
[ "$(chk_field w2 errors)" -gt 0 ] || fail "no write failed during blip 2"
wait_until 30 _back || fail "b and c are not back in sync after blip 2: $(vstatus a)"
no_full_resync
wait_until 5 no_pending a
checker_verify a w2
replicas_identical a b c || fail "replicas differ after blip 2"
pass "a cut off from both peers twice: $(chk_field w1 errors) + $(chk_field w2 errors) writes failed; blip 1 resynced $moved bytes (bitmap, volume $size); every acknowledged write reads back; a = b = c"
