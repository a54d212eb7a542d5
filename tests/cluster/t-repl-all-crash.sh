#!/usr/bin/env bash
# Every daemon killed at once (kill -9 of a, b and c in one signal call: a
# power loss of all three AZs) while a, the primary, has writes in flight
# that reached b and not c (a's link to c is cut, so c never gets them;
# within the link timeout nobody notices, and nothing is acknowledged).
# b and c restarted uncleanly while following a: each may hold writes of
# a's that others lack, and neither remembers which (their rings were in
# memory). Each persisted that it followed a primary, so each comes back
# "unconfirmed" (lost track).
#  0. (first) a member stopped in order while following forgets it: b,
#     stopped cleanly, restarted with no primary and killed, is not
#     unconfirmed.
#  1. a stays down and b is promoted with c: without a's activity log b
#     cannot know what c differs in, so c is resynced entirely rather
#     than trusted for its equal generation (before 2026-12-07 c was
#     resynced in 0 bytes and b and c differed in the writes c never got:
#     tried). a, back later, is resynced from b.
#  2. the same crash with all three back, and b promoted: a, the crashed
#     primary, sends its activity log on every link (AL_EXTENTS); b keeps
#     it, and since a, b and c all still have the generation a crashed in
#     and a followed nobody since, any two of them differ only in a's
#     writes then in flight: a and c are resynced in those extents.
#  3. the same crash, and a, the old primary, is promoted: b and c are
#     resynced in its logged extents (its own log this time).
#  4. only a and b are killed (c lives on and loses a: unconfirmed), and
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
# promote_resync P X Y: P promoted, X and Y resynced by it (a member
# that lived on says "up to date" before its resync starts: P's view of
# the resync decides)
_synced() { [ "$(peer_field "$1" "$(member_id "$2")" syncing)" = False ] && up_to_date "$2"; }
promote_resync() {
	local p=$1 az
	shift
	promote_retry "$p"
	for az in "$@"; do wait_until 60 _synced "$p" "$az" || fail "$az was not resynced: $(vstatus "$az")"; done
	wait_until 5 no_pending "$p"
}
# all_checked P NAME: checker NAME's acks read back through P; a = b = c
all_checked() {
	checker_verify "$1" "$2"
	replicas_identical a b c || fail "replicas differ after the resync"
}
size=$(vfield a 'v["size_bytes"]')

# ext: how many extents a's log recovered at its last restart
last_ext() { grep -ho 'was primary at a crash: [0-9]* activity-log extents' "$T/az-a"/urbd.*.log | tail -1 | awk '{print $6}'; }
# within_log WHAT BYTES: more than nothing, at most a's logged extents
within_log() {
	[ "$2" -gt 0 ] && [ "$2" -le $((ext * 4194304)) ] && [ "$2" -lt "$size" ] ||
		fail "$1 resynced in $2 bytes: want a's $ext logged extents at most"
}

# ---- 0. a clean stop forgets that it followed: b stopped in order while
# a is primary, a demoted meanwhile, b started (no primary to follow)
# and then killed: b comes back consistent, not unconfirmed
promote_retry a
stop_urbd_in b
ctl a volume demote "$VOL" >/dev/null || fail "demote a"
repl_start b
wait_connected b 2
kill9_in b
repl_start b
wait_connected b 2
grep -q 'restarted uncleanly while following a primary' "$T/az-b"/urbd.*.log &&
	fail "b came back unconfirmed though it followed nobody since its clean stop"
[ "$(vfield b 'v["replication"]["unconfirmed"]')" = False ] || fail "b is unconfirmed: $(vstatus b)"

# ---- 1. a stays down, b promoted: c entirely
promote_retry a
CRASHES=0 UP="b c" KILL="a b c" NCONN=1
crash_all a w1
promote_resync b c
c1=$(resynced_by b c)
log "1. a down, resynced by b: c $c1 of $size bytes"
[ "$c1" = "$size" ] || fail "b resynced c in $c1 bytes of $size: it cannot know what c lacks"
repl_start a
wait_connected b 2
wait_until 60 _synced b a || fail "a was not resynced: $(vstatus a)"
wait_until 5 no_pending b
all_checked b w1

# log_phase NAME P: from a as primary (b demoted first), crash_all, then
# P promoted: each other member resynced within a's logged extents
# (R[az]: how much)
declare -A R=()
log_phase() {
	local name=$1 p=$2 az others=()
	for az in a b c; do [ "$az" = "$p" ] || others+=("$az"); done
	ctl b volume demote "$VOL" >/dev/null || fail "demote b"
	promote_retry a
	crash_all a "$name"
	promote_resync "$p" "${others[@]}"
	ext=$(last_ext)
	for az in "${others[@]}"; do R[$az]=$(resynced_by "$p" "$az"); done
	log "$name: resynced by $p: ${others[0]} ${R[${others[0]}]}, ${others[1]} ${R[${others[1]}]} of $size bytes ($ext logged extents on a)"
	for az in "${others[@]}"; do within_log "$az" "${R[$az]}"; done
	all_checked "$p" "$name"
}

# ---- 2. all back, b promoted: a's log, which a sends b, bounds it
UP="a b c" NCONN=2
log_phase w2 b
a2=${R[a]} c2=${R[c]}
grep -q "peer 0 (node-a) crashed as primary: resyncing its" "$T/az-b"/urbd.*.log ||
	fail "b did not use a's activity log"

# ---- 3. a, the old primary, promoted: its logged extents only
log_phase w3 a
b3=${R[b]} c3=${R[c]}

# ---- 4. a and b killed, b stays down: a promoted with c alone rotates at once
UP=a KILL="a b" NCONN=1
crash_all a w4
grep -q 'unconfirmed: the next primary' "$T/az-c"/urbd.*.log || fail "c did not lose a uncleanly"
promote_resync a c
ext=$(last_ext)
c4=$(resynced_by a c)
log "4. a promoted with c only: c resynced $c4 bytes ($ext logged extents)"
within_log c "$c4"
checker_verify a w4
qio=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x5b 24M 1M' 2>&1) || fail "qemu-io: $qio"
repl_start b
wait_connected a 2
wait_until 60 _synced a b || fail "b was not resynced: $(vstatus b)"
wait_until 5 no_pending a
b4=$(resynced_by a b)
log "4. b back: resynced $b4 bytes from a's bitmap"
[ "$b4" -gt 0 ] && [ "$b4" -lt "$size" ] || fail "b resynced in $b4 bytes: want a's bitmap for it"
[ "$(grep -c 'restarted uncleanly while following a primary' "$T/az-b"/urbd.*.log | awk -F: '{s += $NF} END {print s}')" -ge "$CRASHES" ] ||
	fail "b did not come back unconfirmed"
all_checked a w4
pass "all three killed with writes in flight on b only: (1) a down, b promoted: c entirely ($c1); (2) b promoted with a back: a $a2, c $c2 (a's log); (3) a promoted: b $b3, c $c3 (its log); (4) a promoted with c alone: c $c4, b back later $b4; acks verified; a = b = c"
