#!/usr/bin/env bash
# kill -9 a secondary while the checker writes through the primary: writes
# go on without an error or a pause longer than the failure detection, the
# primary starts a new generation, and the restarted secondary comes back
# as a connected but outdated replica (it missed writes) that refuses to
# be promoted. Every acknowledged write reads back, and the two replicas
# that stayed are bit-identical. (The outdated one catches up once resync
# lands: issue 3.)
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

repl_up a b c
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
gen0=$(vfield a 'v["replication"]["generation"]')
checker_bg a w1 6 "$(nbd_uri a)"
sleep 2
kill -KILL "${URBD_PIDS[c]}"
unset "URBD_PIDS[c]"
log "killed c (kill -9) mid-write"
sleep 1.5
repl_start c
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "writes failed while c was down"
[ "$(chk_field w1 acked)" -gt 100 ] || fail "too few writes acknowledged"
gap=$(chk_field w1 max_ack_gap_s)
log "no write failed; longest pause between acknowledgements ${gap}s"

wait_connected a 2
[ "$(vfield a 'v["replication"]["generation"]')" != "$gen0" ] ||
	fail "the primary kept its generation after losing c"
[ "$(vfield c 'v["replication"]["disk_state"]')" = outdated ] ||
	fail "c is not outdated: $(vstatus c)"
[ "$(vfield a "[p['outdated'] for p in v['replication']['peers'] if p['id']==2][0]")" = True ] ||
	fail "a does not see c as outdated"
ctl a volume demote "$VOL" >/dev/null || fail "demote a"
ctl c volume promote "$VOL" >/dev/null 2>"$T/err" && fail "outdated c was promoted"
grep -q 'outdated' "$T/err" || fail "promote refusal does not say why: $(cat "$T/err")"
ctl a volume promote "$VOL" >/dev/null || fail "promote a again"
checker_verify a w1
replicas_identical a b || fail "a and b differ"
pass "c killed mid-write: 0 failed writes (max pause ${gap}s); c back outdated, not promotable; a = b"
