#!/usr/bin/env bash
# Membership changes while the checker writes through the primary:
#   add     rv lives on a and b; `add-replica` on both and `create --join`
#           on c: c starts inconsistent with no generation and is fully
#           synced while writes go on; the new set survives a restart
#   replace b dies for good (kill -9, store gone); a new node takes slot 1
#           (`add-replica --replace` on a and c, `create --join` on the
#           new b): full sync
#   remove  c leaves (`remove-replica` on a and b, delete on c): 2 voters,
#           a keeps quorum and writes
#   refused taken slot without --replace, the local member, fewer than 2
# After each step: every acknowledged write reads back, verify is clean,
# the data files are identical.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip qemu-io
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

cluster_up a b c
printf 'urbd-test-secret-%s' "$RANDOM$RANDOM" >"$REPL_SECRET"
chmod 0400 "$REPL_SECRET"
REPL_AZS=(a b c)
for az in a b c; do repl_start "$az"; done
ma="0=node-a@$(az_addr a):$REPL_PORT"
mb="1=node-b@$(az_addr b):$REPL_PORT"
mc="2=node-c@$(az_addr c):$REPL_PORT"
ctl a volume create "$VOL" "$VOL_SIZE" --replicas "$ma,$mb" --local-id 0 >/dev/null || fail "create a"
uuid=$(vfield a 'v["uuid"]')
ctl b volume create "$VOL" "$VOL_SIZE" --replicas "$ma,$mb" --local-id 1 --uuid "$uuid" \
	>/dev/null || fail "create b"
wait_connected a 1
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
size=$(vfield a 'v["size_bytes"]')

# ---- add c ------------------------------------------------------------------
checker_bg a w1 6 "$(nbd_uri a)"
sleep 1
for az in a b; do
	ctl "$az" volume add-replica "$VOL" "$mc" >/dev/null || fail "add-replica c on $az"
done
ctl c volume create "$VOL" "$VOL_SIZE" --replicas "$ma,$mb,$mc" --local-id 2 --uuid "$uuid" \
	--join >/dev/null || fail "create --join on c"
[ "$(vfield a 'v["replication"]["voters"]')" = 3 ] || fail "a does not count 3 voters"
wait_until 30 up_to_date c || fail "c was not synced: $(vstatus c)"
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "writes failed while c joined"
moved=$(peer_field a 2 resync_done_bytes)
[ "$moved" = "$size" ] || fail "c's sync moved $moved bytes, not all $size"
wait_until 5 no_pending a
checker_verify a w1
replicas_identical a b c || fail "a, b, c differ after c joined"
log "add: c joined while writing, fully synced ($moved bytes)"
stop_urbd_in b
repl_start b
wait_connected b 2
[ "$(vfield b 'v["replication"]["voters"]')" = 3 ] || fail "b forgot the new set on restart"

# ---- refusals ------------------------------------------------------------------
out=$(ctl a volume add-replica "$VOL" "2=node-x@$(az_addr c):$REPL_PORT" 2>&1) &&
	fail "a taken slot was overwritten without --replace"
grep -q 'taken' <<<"$out" || fail "taken slot refused without the reason: $out"
out=$(ctl a volume remove-replica "$VOL" 0 2>&1) && fail "a removed itself"
grep -q 'this node' <<<"$out" || fail "self-removal refused without the reason: $out"

# ---- replace b: dead for good, a new node in slot 1 ------------------------------
kill9_in b
rm -rf "$T/az-b/store"
checker_bg a w1 4 "$(nbd_uri a)"
mb2="1=node-b2@$(az_addr b):$REPL_PORT"
for az in a c; do
	ctl "$az" volume add-replica "$VOL" "$mb2" --replace >/dev/null || fail "replace b on $az"
done
repl_start b
ctl b volume create "$VOL" "$VOL_SIZE" --replicas "$ma,$mb2,$mc" --local-id 1 --uuid "$uuid" \
	--join >/dev/null || fail "create --join on the new b"
wait_until 30 up_to_date b || fail "the new b was not synced: $(vstatus b)"
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "writes failed while b was replaced"
[ "$(peer_field a 1 node)" = node-b2 ] || fail "a does not know node-b2"
moved=$(peer_field a 1 resync_done_bytes)
[ "$moved" = "$size" ] || fail "the new b's sync moved $moved bytes, not all $size"
wait_until 5 no_pending a
checker_verify a w1
replicas_identical a b c || fail "a, b, c differ after b was replaced"
log "replace: node-b2 in slot 1, fully synced ($moved bytes)"

# ---- remove c ------------------------------------------------------------------
for az in a b; do
	ctl "$az" volume remove-replica "$VOL" 2 >/dev/null || fail "remove c on $az"
done
ctl c volume delete "$VOL" --force >/dev/null || fail "delete on c"
[ "$(vfield a 'v["replication"]["voters"]')" = 2 ] || fail "a still counts $(vfield a 'v["replication"]["voters"]') voters"
[ "$(vfield a 'v["replication"]["quorum"]')" = True ] || fail "a lost quorum after removing c"
out=$(ctl a volume remove-replica "$VOL" 1 2>&1) && fail "a set of 1 member was made"
grep -q 'at least 2' <<<"$out" || fail "removal below 2 refused without the reason: $out"
checker_bg a w1 2 "$(nbd_uri a)"
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "writes failed after c left"
wait_until 5 no_pending a
checker_verify a w1
replicas_identical a b || fail "a and b differ after c left"
pass "membership: c added (full sync while writing), b replaced by node-b2 (full sync), c removed; refusals with reasons; a = b (= c)"
