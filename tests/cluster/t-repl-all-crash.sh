#!/usr/bin/env bash
# Every daemon killed at once (kill -9 of a, b and c in one signal call: a
# power loss of all three AZs) while a, the primary, has writes in flight
# that reached b and not c (a's link to c is cut, so c never gets them;
# within the link timeout nobody notices, and nothing is acknowledged).
# b and c restarted uncleanly while following a: each may hold writes of
# a's that others lack, and neither remembers which (their rings were in
# memory). Each persisted that it followed a primary, so each comes back
# "unconfirmed" (lost track).
#  1. b is promoted: it does not know what c or a differ in, so it
#     resyncs both entirely rather than trusting c's equal generation
#     (before 2026-12-07 c was resynced in 0 bytes and b and c differed
#     in the writes c never got: tried).
#  2. the same crash again, and a, the old primary, is promoted: b and c
#     still have the generation a crashed in, so they differ from a only
#     in a's writes then in flight, which its activity log names: each is
#     resynced in those extents, not entirely.
#  3. only a and b are killed (c lives on and loses a: unconfirmed), and
#     b stays down: a, promoted with c alone, starts a new generation at
#     once (the barrier of a promotion without every member); c is still
#     resynced in a's logged extents only (its generation is compared
#     with the one a crashed in, not the new one: else everything). b,
#     back later and unconfirmed (lost track), is resynced from a's
#     bitmap for it (loaded at a's start, with the logged extents, plus
#     a's writes since), not entirely: a was the primary it followed.
# Every acknowledged write of the checker (before each cut) reads back
# through the new primary; a = b = c after each.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip nft fio qemu-io
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

repl_up a b c
# crash_all PRIMARY NAME: the checker writes through PRIMARY, PRIMARY is
# cut from c, fio's writes reach b and wait for c, then all three are
# killed at once and restarted (unconfirmed: checked)
crash_all() {
	local p=$1 name=$2 az
	checker_bg "$p" "$name" 2 "$(nbd_uri "$p")"
	checker_wait "$CHK_PID" "$name"
	# a's writes reach b, then wait for c's acknowledgement (ack=all)
	# until the link times out (URBD_REPL_TIMEOUT_MS, 1 s here); kill before
	partition "$p" c
	bg_in_az "$p" "$T/tail.out" fio --name=tail --ioengine=nbd --uri="$(nbd_uri "$p")" \
		--rw=randwrite --bs=64k --iodepth=16 --offset=40M --size=16M --time_based --runtime=10
	TAIL_PID=$BG_PID
	sleep 0.4
	# the writes must be stuck, not failed: the primary still counts c as connected
	[ "$(peer_field "$p" 2 connection)" = connected ] ||
		fail "the link to c timed out too early: $(vstatus "$p")"
	# shellcheck disable=SC2086 # KILL: words
	kill9_in $KILL
	CRASHES=$((CRASHES + 1))
	kill -TERM "$TAIL_PID" 2>/dev/null || true
	wait_until 10 _gone "$TAIL_PID" || fail "fio did not stop"
	heal "$p" c
	# b really holds writes c lacks (else this test proves nothing)
	cmp -s "$(data_of b)" "$(data_of c)" && fail "b and c are identical after the crash: no write was in flight"
	log "after the crash: b and c differ ($(cmp "$(data_of b)" "$(data_of c)" | head -1 | awk '{print $NF, $(NF-1), $(NF-2)}'))"
	for az in $UP; do repl_start "$az"; done
	for az in $UP; do wait_connected "$az" "$NCONN"; done
	for az in $UP; do
		[ "$az" != "$p" ] || continue
		[ "$(grep -c 'restarted uncleanly while following a primary' "$T/az-$az"/urbd.*.log | awk -F: '{s += $NF} END {print s}')" -ge "$CRASHES" ] ||
			fail "$az did not come back unconfirmed"
	done
}
# resynced_by P AZ: what P resynced to AZ
resynced_by() { peer_field "$1" "$(member_id "$2")" resync_done_bytes; }
# promote_resync P X Y: P promoted, X and Y resynced by it
promote_resync() {
	local p=$1 az
	shift
	promote_retry "$p"
	for az in "$@"; do wait_until 60 up_to_date "$az" || fail "$az was not resynced: $(vstatus "$az")"; done
	wait_until 5 no_pending "$p"
}
# all_checked P NAME: checker NAME's acks read back through P; a = b = c
all_checked() {
	checker_verify "$1" "$2"
	replicas_identical a b c || fail "replicas differ after the resync"
}
size=$(vfield a 'v["size_bytes"]')

# ---- 1. b promoted: a and c entirely
promote_retry a
CRASHES=0 UP="a b c" KILL="a b c" NCONN=2
crash_all a w1
promote_resync b a c
a1=$(resynced_by b a) c1=$(resynced_by b c)
log "1. resynced by b: a $a1, c $c1 of $size bytes"
[ "$c1" = "$size" ] || fail "b resynced c in $c1 bytes of $size: it cannot know what c lacks"
all_checked b w1

# ---- 2. a, the old primary, promoted: its logged extents only
ctl b volume demote "$VOL" >/dev/null || fail "demote b"
promote_retry a
crash_all a w2
promote_resync a b c
ext=$(grep -ho 'was primary at a crash: [0-9]* activity-log extents' "$T/az-a"/urbd.*.log | tail -1 | awk '{print $6}')
b2=$(resynced_by a b) c2=$(resynced_by a c)
log "2. resynced by a: b $b2, c $c2 of $size bytes ($ext logged extents)"
for v in "$b2" "$c2"; do
	[ "$v" -le $((ext * 4194304)) ] && [ "$v" -lt "$size" ] ||
		fail "a resynced $v bytes: want its $ext logged extents at most"
done
[ "$c2" -gt 0 ] || fail "c, which lacks a's last writes, was not resynced"
all_checked a w2

# ---- 3. a and b killed, b stays down: a promoted with c alone rotates at once
UP=a KILL="a b" NCONN=1
crash_all a w3
grep -q 'unconfirmed: the next primary' "$T/az-c"/urbd.*.log || fail "c did not lose a uncleanly"
promote_resync a c
c3=$(resynced_by a c)
log "3. a promoted with c only: c resynced $c3 bytes"
[ "$c3" -gt 0 ] && [ "$c3" -lt "$size" ] || fail "c resynced in $c3 bytes: want a's logged extents"
checker_verify a w3
qio=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x5b 24M 1M' 2>&1) || fail "qemu-io: $qio"
repl_start b
wait_connected a 2
wait_until 60 up_to_date b || fail "b was not resynced: $(vstatus b)"
wait_until 5 no_pending a
b3=$(resynced_by a b)
log "3. b back: resynced $b3 bytes from a's bitmap"
[ "$b3" -gt 0 ] && [ "$b3" -lt "$size" ] || fail "b resynced in $b3 bytes: want a's bitmap for it"
[ "$(grep -c 'restarted uncleanly while following a primary' "$T/az-b"/urbd.*.log | awk -F: '{s += $NF} END {print s}')" -ge 3 ] ||
	fail "b did not come back unconfirmed"
all_checked a w3
pass "all three killed with writes in flight on b only: b promoted resynced a ($a1) and c ($c1) entirely; a promoted resynced b ($b2) and c ($c2) in its $ext logged extents; a promoted with c alone resynced c $c3, b back later $b3; acks verified; a = b = c"
