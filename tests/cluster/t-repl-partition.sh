#!/usr/bin/env bash
# Partition the primary from both peers: within the failure detection time
# it stops acknowledging writes (quorum lost: I/O errors, never a silent
# ack); b is promoted with c's vote and takes writes. On heal the old
# primary sees a newer generation and steps down: secondary, outdated, so
# two primaries never accept writes. Every acknowledged write of both
# checker runs reads back through b; a is resynced from b and then a, b
# and c are bit-identical.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip nft qemu-io
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

repl_up a b c
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
checker_bg a w1 3 "$(nbd_uri a)"
checker_wait "$CHK_PID" w1

partition a b
partition a c
_no_quorum() { [ "$(vfield a 'v["replication"]["quorum"]')" = False ]; }
wait_until 10 _no_quorum || fail "a still claims quorum"
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -f -P 0x99 20M 64k' 2>&1) || true
grep -qiE 'error|fail' <<<"$out" || fail "a acknowledged a write without quorum: $out"
log "a without quorum refuses writes: $(grep -iE 'error|fail' <<<"$out" | head -1)"

# refused while c still follows a (until its link to a times out)
_promote_b() { ctl b volume promote "$VOL" >/dev/null 2>&1; }
wait_until 10 _promote_b || fail "promote b: $(ctl b volume promote "$VOL" 2>&1)"
checker_bg b w1 3 "$(nbd_uri b)"
checker_wait "$CHK_PID" w1

heal a b
heal a c
_stepped_down() { [ "$(vfield a 'v["replication"]["role"]')" = secondary ]; }
wait_until 15 _stepped_down || fail "a did not step down: $(vstatus a)"
[ "$(vfield b 'v["replication"]["role"]')" = primary ] || fail "b lost its role"
if in_az a timeout 5 nbdinfo --size "$(nbd_uri a)" >/dev/null 2>&1; then
	fail "a still exports the volume after stepping down"
fi
wait_until 30 up_to_date a || fail "a was not resynced: $(vstatus a)"
wait_until 5 no_pending b
checker_verify b w1
replicas_identical a b c || fail "replicas differ after a's resync"
pass "a lost quorum and refused writes; b promoted; a stepped down on heal and was resynced; a = b = c"
