#!/usr/bin/env bash
# A forced split brain: a is cut from b and c; its operator forces it to
# write alone (`promote --force`), while b is promoted with c's vote and
# takes the checker's writes. On heal both sides detect the split brain
# from the generations and refuse to connect (status says so on both); the
# data is not merged: a still holds its own write, b does not. The
# explicit resolution on a (demote, `volume discard-my-data`) makes a
# take b as newer: a full resync, after which a = b = c, a's forced write
# is gone and every write b acknowledged reads back.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip nft qemu-io
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

repl_up a b c
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
checker_bg a w1 2 "$(nbd_uri a)"
checker_wait "$CHK_PID" w1

partition a b
partition a c
_no_quorum() { [ "$(vfield a 'v["replication"]["quorum"]')" = False ]; }
wait_until 10 _no_quorum || fail "a still claims quorum"
ctl a volume promote "$VOL" --force >/dev/null || fail "forced promote on a"
[ "$(vfield a 'v["replication"]["forced"]')" = True ] || fail "a does not say it is forced"
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -f -P 0xee 40M 1M' 2>&1) ||
	fail "forced a could not write: $out"
grep -qiE 'error|fail' <<<"$out" && fail "forced a could not write: $out"
# refused while c still follows a (until its link to a times out)
_promote_b() { ctl b volume promote "$VOL" >/dev/null 2>&1; }
wait_until 10 _promote_b || fail "promote b: $(ctl b volume promote "$VOL" 2>&1)"
checker_bg b w1 2 "$(nbd_uri b)"
checker_wait "$CHK_PID" w1

heal a b
heal a c
_split() {
	[ "$(peer_conn a 1)" = split-brain ] && [ "$(peer_conn b 0)" = split-brain ]
}
wait_until 15 _split || fail "no split brain detected: a sees b $(peer_conn a 1), b sees a $(peer_conn b 0)"
grep -q 'split brain' "$T/az-a"/urbd.*.log || fail "a did not log the split brain"
err=$(peer_field b 0 error)
grep -q 'split brain' <<<"$err" || fail "b's status does not say why: $err"
# not merged: each side keeps its own
out=$(in_az a timeout 30 qemu-io -f raw -r "$(nbd_uri a)" -c 'read -P 0xee 40M 1M' 2>&1)
grep -qiE 'fail|error' <<<"$out" && fail "a lost its own write before any resolution: $out"
out=$(in_az b timeout 30 qemu-io -f raw -r "$(nbd_uri b)" -c 'read -P 0 40M 1M' 2>&1)
grep -qiE 'fail|error' <<<"$out" && fail "a's forced write reached b: $out"
log "split brain detected on both sides ('$err'); nothing merged"

# the resolution: a gives up its changes
ctl a volume discard-my-data "$VOL" >/dev/null 2>"$T/err" && fail "discard accepted on a primary"
grep -q 'demote' "$T/err" || fail "refusal does not say to demote: $(cat "$T/err")"
ctl a volume demote "$VOL" >/dev/null || fail "demote a"
ctl a volume discard-my-data "$VOL" >/dev/null || fail "discard-my-data on a"
wait_until 30 up_to_date a || fail "a was not resynced: $(vstatus a)"
_ab_connected() { [ "$(peer_conn b 0)" = connected ]; }
wait_until 5 _ab_connected || fail "b and a not connected after the resolution: $(peer_conn b 0)"
moved=$(peer_field b 0 resync_done_bytes)
[ "$moved" = "$(vfield b 'v["size_bytes"]')" ] || fail "a's resync moved $moved bytes, not the whole volume"
wait_until 5 no_pending b
replicas_identical a b c || fail "replicas differ after the resolution"
out=$(in_az b timeout 30 qemu-io -f raw "$(nbd_uri b)" -c 'read -P 0 40M 1M' 2>&1)
grep -qiE 'fail|error' <<<"$out" && fail "a's discarded write is visible: $out"
checker_verify b w1
pass "split brain detected and refused on both sides; discard-my-data on a: full resync ($moved bytes); a = b = c"
