#!/usr/bin/env bash
# kill -9 the primary while the checker writes: b (another AZ) is promoted
# with c's vote, the checker reconnects to b and goes on, and every write
# the checker saw acknowledged reads back through b. The old primary
# returns as a secondary whose generation is behind: outdated, never a
# second primary. b and c are bit-identical.
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
[ "$(vfield a 'v["replication"]["disk_state"]')" = outdated ] || fail "a is not outdated"
[ "$(vfield b 'v["replication"]["role"]')" = primary ] || fail "b lost its role"
ctl a volume promote "$VOL" >/dev/null 2>&1 && fail "a was promoted while b is primary"
replicas_identical b c || fail "b and c differ"
pass "primary killed; b promoted in $(((t1 - t0) / 1000000)) ms; all acknowledged writes on b; a outdated secondary"
