#!/usr/bin/env bash
# The primary's per-peer dirty bitmaps survive its restart (they are on
# disk, replication/repl_bmstore.c), and a primary that crashed resyncs
# only what it may hold alone.
#  1. c is killed while a writes; a is restarted cleanly and promoted
#     again; c returns: the resync moves what c missed (at most 1.1x the
#     regions where c's copy differs from a's), not the whole volume.
#  2. the same, but a is killed (kill -9) mid-write: c's resync is its
#     bitmap plus a's activity-log extents, less than the volume; every
#     acknowledged write is on a.
#  3. a and b are killed at the same moment mid-write (a power cut of two
#     zones); both return and a is promoted: b (restarted while following
#     a: unconfirmed) and c (which lost its primary: unconfirmed) both
#     still have the generation a crashed in, so they differ from a only
#     in a's writes in flight then: each gets a's activity-log extents
#     resynced (c got everything before 2026-12-07); a = b = c.
# Volumes here use a 16 KiB grain (volume create --bitmap-grain).
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip qemu-io
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

GRAIN=16384
repl_up a b c
[ "$(vfield a 'v["replication"]["bitmap_grain"]')" = 65536 ] || fail "default grain is not 64 KiB"
# again with a smaller grain: every member is created with it
for az in a b c; do ctl "$az" volume delete "$VOL" >/dev/null || fail "delete on $az"; done
uuid=
for i in 0 1 2; do
	az=${REPL_AZS[$i]}
	ctl "$az" volume create "$VOL" "$VOL_SIZE" --replicas "$REPL_SPEC" --local-id "$i" \
		${uuid:+--uuid "$uuid"} --bitmap-grain 16K >/dev/null || fail "create on $az"
	[ -n "$uuid" ] || uuid=$(vfield a 'v["uuid"]')
done
for az in a b c; do wait_connected "$az" 2; done
[ "$(vfield a 'v["replication"]["bitmap_grain"]')" = $GRAIN ] || fail "grain not 16 KiB"
out=$(ctl a volume create bad 1M --replicas "$REPL_SPEC" --local-id 0 --bitmap-grain 12K 2>&1) &&
	fail "a 12K grain was accepted"
log "a 12K grain is refused: $out"
size=$(vfield a 'v["size_bytes"]')
size_mb=$((size >> 20))

# differing bytes between c's copy (saved) and a's data file, by grain
missed() {
	local n
	n=$(/usr/bin/python3 "$CHECKER" compare "$1" "$(data_of a)" --region 16K | tail -n 1 |
		"$PY" -c 'import json,sys; print(json.load(sys.stdin)["differing_regions"])')
	echo $((n * GRAIN))
}
kill9() { kill9_in "$1"; }

# ---- 1. clean restart of the primary ---------------------------------------------
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
checker_bg a w1 3 "$(nbd_uri a)"
sleep 1
kill9 c
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "writes failed while c was down"
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x61 20M 1M' \
	-c 'write -P 0x62 30M 16k' -c 'write -P 0x63 40964k 4k' 2>&1) || fail "qemu-io: $out"
cp --sparse=always "$(data_of c)" "$T/c-before"
dirtied=$(missed "$T/c-before")
oos=$(peer_field a 2 out_of_sync_bytes)
[ "$dirtied" -gt 0 ] || fail "c's copy does not differ from a's"
log "c missed $dirtied bytes; a's bitmap for c covers $oos"
stop_urbd_in a          # SIGTERM: a clean stop writes the bitmaps
repl_start a
grep -q "dirty bitmap of peer 2 (node-c) loaded: $oos bytes" "$T/az-a"/urbd.*.log ||
	fail "a did not load c's bitmap ($oos bytes): $(grep -h 'dirty bitmap' "$T/az-a"/urbd.*.log)"
wait_connected a 1
promote_retry a
repl_start c
wait_until 30 up_to_date c || fail "c did not become up-to-date: $(vstatus c)"
moved1=$(peer_field a 2 resync_done_bytes)
log "after a's clean restart, resync to c moved $moved1 bytes; c missed $dirtied"
[ "$moved1" -ge "$dirtied" ] || fail "resync moved $moved1 < dirtied $dirtied: c misses data"
[ "$moved1" -le $((dirtied * 11 / 10)) ] || fail "resync moved $moved1 > 1.1 x dirtied $dirtied"
dirtied1=$dirtied
wait_until 5 no_pending a
checker_verify a w1
replicas_identical a b c || fail "replicas differ after step 1"

# ---- 2. the primary crashes ---------------------------------------------------------
kill9 c
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x64 50M 2M' \
	-c 'write -P 0x65 60M 16k' 2>&1) || fail "qemu-io: $out"
checker_bg a w2 30 "$(nbd_uri a)" --io-timeout 5
sleep 2.5              # past a bitmap flush (once a second)
kill9 a
checker_wait "$CHK_PID" w2 3
[ "$(chk_field w2 acked)" -gt 100 ] || fail "checker w2: too few writes acknowledged"
cp --sparse=always "$(data_of c)" "$T/c-before"
repl_start a
grep -q "dirty bitmap of peer 2 (node-c) loaded: .* ([1-9][0-9]* activity-log extents added)" \
	"$T/az-a"/urbd.*.log || fail "a did not load c's bitmap with its log's extents"
ext=$(grep -ho 'dirty bitmap of peer 2 (node-c) loaded: .*' "$T/az-a"/urbd.*.log | tail -1 |
	sed -n 's/.*(\([0-9]*\) activity-log extents added).*/\1/p')
wait_connected a 1
promote_retry a
dirtied=$(missed "$T/c-before")
repl_start c
wait_until 30 up_to_date c || fail "c did not become up-to-date: $(vstatus c)"
moved2=$(peer_field a 2 resync_done_bytes)
log "after a's crash: resync to c moved $moved2 bytes of $size; c missed $dirtied; a logged $ext extents of 4 MiB"
[ "$moved2" -ge "$dirtied" ] || fail "resync moved $moved2 < dirtied $dirtied"
[ "$moved2" -le $((dirtied * 11 / 10 + ext * 4194304)) ] ||
	fail "resync moved $moved2 > 1.1 x dirtied + the logged extents"
[ "$moved2" -lt "$size" ] || fail "a full resync after the crash ($moved2 bytes)"
wait_until 30 up_to_date b || fail "b did not become up-to-date: $(vstatus b)"
wait_until 5 no_pending a
checker_verify a w2
replicas_identical a b c || fail "replicas differ after step 2"

# ---- 3. two zones lose power at once --------------------------------------------
checker_bg c w3 30 "$(nbd_uri a)" --io-timeout 5
sleep 2.5
kill9_in b a
checker_wait "$CHK_PID" w3 3
[ "$(chk_field w3 acked)" -gt 100 ] || fail "checker w3: too few writes acknowledged"
repl_start a
repl_start b
wait_connected a 2
promote_retry a
wait_until 30 up_to_date b || fail "b did not become up-to-date: $(vstatus b)"
wait_until 30 up_to_date c || fail "c did not become up-to-date: $(vstatus c)"
moved3=$(peer_field a 1 resync_done_bytes)
ext3=$(grep -ho 'was primary at a crash: [0-9]* activity-log extents' "$T/az-a"/urbd.*.log | tail -1 |
	awk '{print $6}')
log "after a and b crashed together: b resynced $moved3 bytes ($ext3 logged extents), c $(peer_field a 2 resync_done_bytes)"
[ "$moved3" -gt 0 ] && [ "$moved3" -le $((ext3 * 4194304)) ] ||
	fail "b's resync moved $moved3 bytes, want a's $ext3 logged extents at most"
c3=$(peer_field a 2 resync_done_bytes)
[ "$c3" -le $((ext3 * 4194304)) ] || fail "c's resync moved $c3 bytes, want a's $ext3 logged extents at most"
wait_until 5 no_pending a
checker_verify a w3
replicas_identical a b c || fail "replicas differ after step 3"
pass "bitmaps survive the primary's restart: c resynced $moved1 bytes of ${size_mb} MiB after a clean restart ($dirtied1 missed), $moved2 after a crash ($dirtied missed, $ext logged extents); a+b crash: b resynced $moved3, c $c3 (a's log); a = b = c"
