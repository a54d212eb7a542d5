#!/usr/bin/env bash
# kill -9 the primary while the checker writes: b (another AZ) is promoted
# with c's vote, the checker reconnects to b and goes on, and every write
# the checker saw acknowledged reads back through b. The old primary
# returns as a secondary whose generation is behind (never a second
# primary). It crashed as primary: its activity log names the extents it
# may hold that b lacks (its unacknowledged tail); b resyncs those plus
# what it wrote since its promotion, not the whole volume, and then a, b
# and c are bit-identical. A second writer (fio at QD32 into 32-48 MiB,
# which nobody writes after the failover) makes sure that tail exists
# where only the activity log can name it. c, the other secondary, is
# resynced only in what b tracked and c reported as possibly different. Before all that, a first term
# of a as primary (then demoted and restarted) leaves log blocks of other
# extents in the ring.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip fio
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

repl_up a b c
# an earlier term of a as primary, outside the tail's extents: its log
# blocks stay in the ring; the next term must continue their sequence
# (else the next recovery picks the stale set, which lacks the tail)
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
cmds=()
# zeroes (WRITE_ZEROES is logged like a write): the checker's blocks may hold them
for e in 0 1 2 3 4 5 6 7 12 13 14 15; do cmds+=(-c "write -z $((e * 4))M 4k"); done
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" "${cmds[@]}" 2>&1) || fail "qemu-io: $out"
ctl a volume demote "$VOL" >/dev/null || fail "demote a"
stop_urbd_in a
repl_start a
wait_connected a 2
promote_retry a
checker_bg c w1 8 "$(nbd_uri a),$(nbd_uri b)" --reconnect-seconds 20 --io-timeout 5
bg_in_az c "$T/tail.out" fio --name=tail --ioengine=nbd --uri="$(nbd_uri a)" --rw=randwrite \
	--bs=4k --iodepth=32 --offset=32M --size=16M --time_based --runtime=30
TAIL_PID=$BG_PID
sleep 2.5
t0=$(date +%s%N)
kill9_in a
_promote_b() { ctl b volume promote "$VOL" >/dev/null 2>&1; }
wait_until 10 _promote_b || fail "b could not be promoted: $(ctl b volume promote "$VOL" 2>&1)"
t1=$(date +%s%N)
log "killed a; b promoted $(((t1 - t0) / 1000000)) ms after the kill"
kill -TERM "$TAIL_PID" 2>/dev/null || true
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 reconnects)" -ge 1 ] || fail "the checker never moved to b"
checker_verify b w1

# c lost its primary too ("unconfirmed"): b tracked what c may lack while
# both were secondaries (PEER_ACKs), c reported what it may hold that b
# lacks (the requests of a's it applied that no PEER_ACK named), and b
# resyncs c in those grains only, not the whole volume
size=$(vfield b 'v["size_bytes"]')
wait_until 30 up_to_date c || fail "c did not become up-to-date: $(vstatus c)"
c_moved=$(peer_field b 2 resync_done_bytes)
grep -q 'peer 2 (node-c) is unconfirmed: its report adds' "$T/az-b"/urbd.*.log ||
	fail "b did not merge c's report of unconfirmed writes"
[ "$c_moved" -lt $((size / 4)) ] || fail "c's resync moved $c_moved of $size bytes: a full resync"
log "c's resync after the failover: $c_moved of $size bytes ($(grep -ho 'peer 2 (node-c) is unconfirmed: its report adds.*' "$T/az-b"/urbd.*.log | tail -1))"

repl_start a
wait_connected b 2
[ "$(vfield a 'v["replication"]["role"]')" = secondary ] || fail "a came back as $(vfield a 'v["replication"]["role"]')"
[ "$(vfield b 'v["replication"]["role"]')" = primary ] || fail "b lost its role"
ctl a volume promote "$VOL" >/dev/null 2>&1 && fail "a was promoted while b is primary"
# a may hold writes nobody acknowledged: a full resync from b, never a merge
wait_until 30 up_to_date a || fail "a did not become up-to-date: $(vstatus a)"
moved=$(peer_field b 0 resync_done_bytes)
[ "$moved" -gt 0 ] && [ "$moved" -lt "$size" ] ||
	fail "a's resync moved $moved bytes of $size: want its activity-log extents and b's writes"
grep -q 'was primary at a crash: [1-9]' "$T/az-a"/urbd.*.log || fail "a recovered no activity log"
log "a's resync: $moved of $size bytes ($(grep -ho 'was primary at a crash: [0-9]* activity-log extents ([0-9]* MiB)' "$T/az-a"/urbd.*.log | tail -1))"
wait_until 5 no_pending b
replicas_identical a b c || fail "replicas differ after a's resync"
checker_verify b w1
pass "primary killed; b promoted in $(((t1 - t0) / 1000000)) ms; all acknowledged writes on b; c resynced $c_moved bytes (tracked + reported); a back as secondary, resynced $moved of $size bytes (activity log + b's writes); a = b = c"
