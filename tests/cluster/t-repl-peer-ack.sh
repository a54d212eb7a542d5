#!/usr/bin/env bash
# Peer acks (replication/repl_peerack.c): after the primary dies, the member
# promoted next resyncs the others only where they may differ from it,
# because every secondary tracked what each other member lacks (PEER_ACK)
# and a member that lost its primary uncleanly reports what it may hold
# that the others lack.
#
#  1. a primary; b stops receiving from a (one-way drop: a's writes reach
#     c, not b, and stall unacknowledged); a is killed; b is promoted. c
#     holds writes b lacks: only c's report names them, and b's resync of
#     c must overwrite them (else b and c differ). A partial resync.
#  2. b primary; c is cut off from b (not from a) while b writes 4 MiB
#     with a; b is killed; a is promoted: c is resynced in what a tracked
#     c missed (the 4 MiB and what was in flight), not entirely.
#  3. a primary; c is cut off from a while a writes; a is killed and c is
#     restarted before b's promotion: c lost track of its unconfirmed
#     writes (it says UNKNOWN), so b resyncs c completely.
#  4. b, the primary, dies idle: a promoted resyncs c in 0 bytes, and c
#     still receives a's writes afterwards (the 0-byte resync finishes
#     before c's own "inconsistent" STATE arrives, which must not mark c
#     outdated again).
# Every phase ends with `volume verify` and cmp of the live replicas; the
# checker's acknowledged writes read back through each new primary.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip nft qemu-io
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

# in AZ, drop every packet that comes from FROM (one direction only)
drop_from() {
	in_az "$1" nft -f - <<EOF || fail "nft in az $1"
table inet urbd_oneway {
	chain in { type filter hook input priority 0; policy accept; ip saddr $(az_addr "$2") drop; }
}
EOF
}
undrop() { in_az "$1" nft delete table inet urbd_oneway 2>/dev/null || true; }
# the bytes the last resync of member ID moved, as the primary PRIM says
resynced() { peer_field "$1" "$2" resync_done_bytes; }
kill_az() { kill9_in "$1"; }

repl_up a b c
size=$(vfield a 'v["size_bytes"]')

# ---- 1: c holds writes b lacks ----------------------------------------------------------
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
checker_bg c w1 30 "$(nbd_uri a)" --io-timeout 5
sleep 1.5
drop_from b a
sleep 0.4 # a's writes go on to c; b gets none of them (nor acks them)
kill_az a
_c_lost_a() { [ "$(vfield c 'v["replication"]["unconfirmed"]')" = True ]; }
wait_until 5 _c_lost_a || fail "c did not notice a's death"
undrop b
promote_retry b
checker_wait "$CHK_PID" w1 3
wait_until 30 up_to_date c || fail "c was not resynced: $(vstatus c)"
wait_until 5 no_pending b
grep -q 'peer 2 (node-c) is unconfirmed: its report adds' "$T/az-b"/urbd.*.log ||
	fail "b did not merge c's report"
told=$(grep -ho 'told rv peer 1 (node-b[^)]*): [0-9]* grain' "$T/az-c"/urbd.*.log | tail -1 |
	sed 's/.*: \([0-9]*\) grain/\1/')
[ "${told:-0}" -gt 0 ] || fail "c reported no unconfirmed writes to b"
moved1=$(resynced b 2)
[ "$moved1" -gt 0 ] && [ "$moved1" -lt $((size / 2)) ] ||
	fail "c's resync moved $moved1 of $size bytes: want the tracked and reported grains only"
checker_verify b w1
replicas_identical b c || fail "b and c differ after c's resync (c's report not applied?)"
# and c gets b's writes again: a short resync must not leave it marked
# outdated on b by its own stale "inconsistent" STATE (t-repl-chaos found)
after_resync_write() {
	local p=$1 s=$2 out
	[ "$(peer_field "$p" "$(member_id "$s")" outdated)" = False ] ||
		fail "$p still takes $s as outdated after its resync"
	out=$(in_az "$p" timeout 30 qemu-io -f raw "$(nbd_uri "$p")" -c 'write -P 0x77 60M 1M' 2>&1) ||
		fail "write through $p: $out"
	wait_until 5 no_pending "$p"
}
after_resync_write b c
replicas_identical b c || fail "c missed b's write after its resync"
log "1: c reported $told grain(s) b lacked; c resynced $moved1 of $size bytes; b = c"

# ---- 2: c away while b writes; b dies; a promoted ---------------------------------------
repl_start a
wait_until 30 up_to_date a || fail "a did not come back up to date: $(vstatus a)"
wait_connected a 2
partition b c
_c_outdated() { [ "$(vfield c 'v["replication"]["disk_state"]')" = outdated ]; }
out=$(in_az b timeout 30 qemu-io -f raw "$(nbd_uri b)" -c 'write -P 0x5c 8M 4M' 2>&1) ||
	fail "write through b: $out"
wait_until 10 _c_outdated || fail "c not outdated by b's writes: $(vstatus c)"
kill_az b
heal b c
promote_retry a
wait_until 30 up_to_date c || fail "c was not resynced: $(vstatus c)"
wait_until 5 no_pending a
moved2=$(resynced a 2)
[ "$moved2" -ge $((4 << 20)) ] && [ "$moved2" -le $((6 << 20)) ] ||
	fail "c's resync moved $moved2 bytes: want the 4 MiB it missed (+ grains in flight)"
replicas_identical a c || fail "a and c differ after c's resync"
after_resync_write a c
replicas_identical a c || fail "c missed a's write after its resync"
log "2: c away for 4 MiB of b's writes; a promoted resynced c with $moved2 bytes; a = c"

# ---- 3: c restarts before the promotion: its report is UNKNOWN --------------------------
repl_start b
wait_until 30 up_to_date b || fail "b did not come back up to date: $(vstatus b)"
wait_connected a 2
partition a c
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x3a 20M 1M' 2>&1) ||
	fail "write through a: $out"
wait_until 10 _c_outdated || fail "c not outdated by a's writes: $(vstatus c)"
kill_az a
heal a c
stop_urbd_in c
repl_start c
wait_connected c 1
promote_retry b
wait_until 30 up_to_date c || fail "c was not resynced: $(vstatus c)"
grep -q 'unconfirmed writes are unknown' "$T/az-c"/urbd.*.log || fail "c did not report UNKNOWN"
moved3=$(resynced b 2)
[ "$moved3" = "$size" ] || fail "c lost track of its writes but was resynced $moved3 of $size bytes"
wait_until 5 no_pending b
replicas_identical b c || fail "b and c differ"
repl_start a
wait_until 30 up_to_date a || fail "a did not come back: $(vstatus a)"
wait_until 5 no_pending b
replicas_identical b a c || fail "a, b, c differ at the end"

# ---- 4: an idle primary dies: the claims are empty, c's resync moves 0 bytes -----------
# and finishes before c's own "inconsistent" STATE reaches a; c must still
# get a's next writes (it did not, before sync_settling: a kept c outdated)
_tracked() { [ "$(peer_field a 2 tracked)" = True ]; }
wait_until 10 _tracked || fail "a does not track c (no PEER_ACK naming c in sync?)"
kill_az b
promote_retry a
wait_until 30 up_to_date c || fail "c was not resynced: $(vstatus c)"
moved4=$(resynced a 2)
[ "$moved4" = 0 ] || fail "an idle failover resynced c with $moved4 bytes"
after_resync_write a c
replicas_identical a c || fail "c missed a's write after a 0-byte resync"
pass "c's report overwrote writes b lacked ($moved1 bytes); c away: $moved2 bytes for 4 MiB missed; c restarted: UNKNOWN, full $moved3; idle failover: 0 bytes, c current; a = b = c"
