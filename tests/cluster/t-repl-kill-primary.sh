#!/usr/bin/env bash
# kill -9 the primary while the checker writes: b (another AZ) is promoted
# with c's vote, the checker reconnects to b and goes on, and every write
# the checker saw acknowledged reads back through b. The old primary
# returns as a secondary whose generation is behind (never a second
# primary); its unacknowledged tail is discarded by a full resync from b,
# and then a, b and c are bit-identical.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

repl_up a b c
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
checker_bg c w1 8 "$(nbd_uri a),$(nbd_uri b)" --reconnect-seconds 20 --io-timeout 5
sleep 2.5
t0=$(date +%s%N)
kill -KILL "${URBD_PIDS[a]}"
unset "URBD_PIDS[a]"
_promote_b() { ctl b volume promote "$VOL" >/dev/null 2>&1; }
wait_until 10 _promote_b || fail "b could not be promoted: $(ctl b volume promote "$VOL" 2>&1)"
t1=$(date +%s%N)
log "killed a; b promoted $(((t1 - t0) / 1000000)) ms after the kill"
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 reconnects)" -ge 1 ] || fail "the checker never moved to b"
checker_verify b w1

repl_start a
wait_connected b 2
[ "$(vfield a 'v["replication"]["role"]')" = secondary ] || fail "a came back as $(vfield a 'v["replication"]["role"]')"
[ "$(vfield b 'v["replication"]["role"]')" = primary ] || fail "b lost its role"
ctl a volume promote "$VOL" >/dev/null 2>&1 && fail "a was promoted while b is primary"
# a may hold writes nobody acknowledged: a full resync from b, never a merge
wait_until 30 up_to_date a || fail "a did not become up-to-date: $(vstatus a)"
moved=$(peer_field b 0 resync_done_bytes)
[ "$moved" = "$(vfield b 'v["size_bytes"]')" ] || fail "a's resync moved $moved bytes, not the whole volume"
wait_until 5 no_pending b
replicas_identical a b c || fail "replicas differ after a's resync"
checker_verify b w1
pass "primary killed; b promoted in $(((t1 - t0) / 1000000)) ms; all acknowledged writes on b; a back as secondary, fully resynced; a = b = c"
