#!/usr/bin/env bash
# Peer authentication: c holds a different secret. a and b refuse it (a
# log line on both sides, the reason in `urbdctl volume status`), c never
# gets a connection, and a, b still replicate with quorum 2 of 3. The
# attempts go on (every 2 s) but are not logged each time: a repeated
# failure is logged again after URBD_REPL_RELOG_MS (60 s; 4 s here) with
# the number of attempts it stands for.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip qemu-io
export URBD_REPL_RELOG_MS=4000

printf 'a-different-secret-%s' "$RANDOM" >"$T/other-secret"
chmod 0400 "$T/other-secret"
REPL_SECRET_OF[c]=$T/other-secret
# repl_up waits for every az to see every peer: c never will; do it by hand
cluster_up a b c
printf 'urbd-test-secret-%s' "$RANDOM$RANDOM" >"$REPL_SECRET"
chmod 0400 "$REPL_SECRET"
REPL_AZS=(a b c)
REPL_SPEC="0=node-a@$(az_addr a):$REPL_PORT,1=node-b@$(az_addr b):$REPL_PORT,2=node-c@$(az_addr c):$REPL_PORT"
for az in a b c; do repl_start "$az"; done
ctl a volume create "$VOL" "$VOL_SIZE" --replicas "$REPL_SPEC" --local-id 0 >/dev/null || fail "create a"
uuid=$(vfield a 'v["uuid"]')
ctl b volume create "$VOL" "$VOL_SIZE" --replicas "$REPL_SPEC" --local-id 1 --uuid "$uuid" >/dev/null || fail "create b"
ctl c volume create "$VOL" "$VOL_SIZE" --replicas "$REPL_SPEC" --local-id 2 --uuid "$uuid" >/dev/null || fail "create c"
wait_connected a 1
wait_connected b 1
_refused() { grep -q 'authentication failed' "$T/az-$1"/urbd.*.log; }
wait_until 10 _refused a || fail "a did not log c's failed authentication"
wait_until 10 _refused c || fail "c did not log its failed authentication"
[ "$(peer_conn a 2)" != connected ] || fail "a connected to c with the wrong secret"
# the status keeps the telling reason (the log line comes first: the
# status is updated once the link's last operation has completed)
c_err() { vfield a "[p['error'] for p in v['replication']['peers'] if p['id']==2][0]"; }
_says_auth() { grep -qi 'auth' <<<"$(c_err)"; }
wait_until 5 _says_auth || fail "a's status for c does not say why: '$(c_err)'"
err=$(c_err)
[ "$(vfield a 'v["replication"]["quorum"]')" = True ] || fail "a lost quorum"
ctl a volume promote "$VOL" >/dev/null || fail "promote a with quorum 2 of 3"
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x42 0 1M' 2>&1) ||
	fail "write with c refused: $out"
cmp -s "$(data_of a)" "$(data_of b)" || fail "a and b differ"
log "wrong secret: c refused by a and b ('$err'); a+b replicate with quorum"

# the log: one refusal, then a count of the quiet ones
_counted() { grep -q "peer 2 (node-c): the same failure [0-9]* more time" "$T/az-a"/urbd.*.log; }
wait_until 20 _counted || fail "a never summed up the repeated failures"
line=$(grep -h "peer 2 (node-c): the same failure" "$T/az-a"/urbd.*.log | head -1)
n=$(sed -n 's/.*the same failure \([0-9]*\) more time.*/\1/p' <<<"$line")
refusals=$(grep -h -c 'authentication refused' "$T/az-a"/urbd.*.log | awk '{s += $1} END {print s}')
log "a's log: $refusals 'authentication refused' lines; '$line'"
[ "$n" -ge 1 ] || fail "no repeated attempt counted: $line"
# the first failure, the one that came with the summary, at most one more
# (its attempt may be underway): not one per attempt
[ "$refusals" -le 3 ] || fail "a logged $refusals refusals: every attempt, not a summary"

pass "c with the wrong secret refused by a and b; a+b replicate with quorum; repeats summed up in the log"
