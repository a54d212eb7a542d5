#!/usr/bin/env bash
# Diskless attach: c holds no replica but is promoted and serves the
# volume; reads go to a or b over the peer links (READ_REQ/READ_REPLY),
# writes to both.
#   - a pattern written through a reads back through c (qemu-io), and the
#     checker writes through c: a = b, every acknowledged write reads back
#     through c, c's data file holds no block
#   - kill -9 of b while the checker writes through c: c goes on with a
#     (reads fail over to a), nothing acknowledged is lost
#   - b returns behind while the checker writes through c: c resyncs it,
#     reading the grains at a; a = b, every acknowledged write reads back
#   - verify on diskless c (a the reference): clean, then finds a block
#     corrupted in b's copy; --repair refused there; a is promoted after c
#     steps down and repairs it
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip qemu-io
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

REPL_DISKLESS=c
repl_up a b c
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x5a 20M 3M' \
	-c 'write -P 0x6b 40M 64k' 2>&1) || fail "qemu-io a: $out"
ctl a volume demote "$VOL" >/dev/null || fail "demote a"
promote_retry c
[ "$(vfield c 'v["replication"]["disk_state"]')" = diskless ] || fail "c is not diskless"
out=$(in_az c timeout 30 qemu-io -f raw "$(nbd_uri c)" -c 'read -P 0x5a 20M 3M' \
	-c 'read -P 0x6b 40M 64k' -c 'read -P 0 50M 1M' 2>&1) || fail "reads through c: $out"
grep -qiE 'fail|error|mismatch' <<<"$out" && fail "reads through c: $out"
log "diskless c serves a's data (3 MiB + 64 KiB patterns, zeroes)"

checker_bg c w1 7 "$(nbd_uri c)"
sleep 3
kill9_in b
log "killed b (kill -9) mid-write through c"
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "writes through c failed when b died"
[ "$(chk_field w1 acked)" -gt 100 ] || fail "too few writes acknowledged"
checker_verify c w1
log "c went on with a: $(chk_field w1 acked) writes, max pause $(chk_field w1 max_ack_gap_s)s"

# b returns behind while the checker writes through c: the diskless
# primary resyncs it, reading the grains at a (the only up-to-date member),
# at 8 MiB/s (set on c at run time, saved in its replica set): b's 16 MiB
# take 2 s under the checker's writes
ctl c volume set "$VOL" --resync-rate 8M >/dev/null || fail "set the resync rate on c"
[ "$(vfield c 'v["replication"]["resync_rate_bytes"]')" = $((8 << 20)) ] ||
	fail "c's status does not show the 8M resync rate: $(vstatus c)"
grep -q "^resync-rate = $((8 << 20))$" "$T/az-c/store/volumes/$VOL/replication" ||
	fail "c's replica set does not keep the resync rate"
grep -q "Resync rate:   8.0 MiB/s$" <<<"$(ctl c volume status "$VOL")" ||
	fail "volume status does not show the resync rate: $(ctl c volume status "$VOL")"
checker_bg c w2 8 "$(nbd_uri c)"
sleep 1
repl_start b
_b_synced() {
	[ "$(peer_field c 1 disk_state)" = up-to-date ] && [ "$(peer_field c 1 syncing)" = False ] &&
		[ "$(peer_field c 1 resync_done_bytes)" -gt 0 ]
}
wait_until 30 _b_synced || fail "c did not resync b: $(vstatus c)"
moved=$(peer_field c 1 resync_done_bytes)
el=$(peer_field c 1 resync_elapsed_ns)
[ "$el" -ge 1500000000 ] || fail "b's resync took $el ns: not long enough to overlap the writes"
grep -q "resync to peer 1 (node-b).*read at up-to-date members" "$T/az-c/urbd."*.log ||
	fail "c's log does not show a resync read at a"
checker_wait "$CHK_PID" w2
[ "$(chk_field w2 errors)" = 0 ] || fail "writes through c failed during b's resync"
wait_until 5 no_pending c
checker_verify c w2
# (verify runs on a primary with data: after the handover below)
cmp "$(data_of a)" "$(data_of b)" || fail "a and b differ after c resynced b"
log "c resynced b from a: $moved bytes in $((el / 1000000)) ms; $(chk_field w2 acked) writes through c meanwhile"

# verify from the diskless primary: a (lowest id) is the reference, b is
# compared with it; a block corrupted in b's copy behind urbd's back is
# found; --repair is refused (no side is the truth by itself)
out=$(ctl c volume verify "$VOL" 2>&1) || fail "verify on diskless c exited $?: $out"
grep -q "(node-b): .* compared, identical" <<<"$out" && grep -q "(node-a): the reference" <<<"$out" ||
	fail "verify on diskless c: $out"
head -c 4096 /dev/urandom >"$T/junk"
dd if="$T/junk" of="$(data_of b)" bs=4096 seek=$((50 * 1048576 / 4096)) conv=notrunc \
	oflag=direct status=none || fail "dd b"
rc=0
out=$(ctl c volume verify "$VOL" --region 64K 2>&1) || rc=$?
[ "$rc" = 6 ] && grep -q "differing regions at: $((50 * 1048576))$" <<<"$out" ||
	fail "verify on c did not find b's corrupted block (exit $rc): $out"
rc=0
out=$(ctl c volume verify "$VOL" --repair 2>&1) || rc=$?
[ "$rc" != 0 ] && grep -q "diskless" <<<"$out" || fail "verify --repair on diskless c: exit $rc: $out"
log "verify on diskless c against a: clean, then b's corrupted 64 KiB region at 50 MiB found; --repair refused"
ctl c volume set "$VOL" --resync-rate default >/dev/null || fail "resync rate back to the default"
[ "$(vfield c 'v["replication"]["resync_rate_bytes"]')" = $((250 << 20)) ] &&
	[ "$(vfield c 'v["replication"]["resync_rate_set"]')" = False ] ||
	fail "c's resync rate is not the default again: $(vstatus c)"
grep -q "^resync-rate" "$T/az-c/store/volumes/$VOL/replication" && fail "c's replica set still has a rate"

# and a primary with data takes over as before
ctl c volume demote "$VOL" >/dev/null || fail "demote c"
promote_retry a
wait_until 10 up_to_date b || fail "b is not up to date under a: $(vstatus a)"
# a primary with data repairs b's corrupted block from its own
rc=0
out=$(ctl a volume verify "$VOL" --region 64K --repair 2>&1) || rc=$?
[ "$rc" = 6 ] || fail "verify --repair on a exited $rc: $out"
_repaired() { [ "$(peer_field a 1 outdated)" = False ] && up_to_date b; }
wait_until 20 _repaired || fail "repair did not finish: $(vstatus a)"
wait_until 5 no_pending a
checker_verify a w2
replicas_identical a b || fail "a and b differ"
alloc=$(stat -c %b "$(data_of c)")
[ "$alloc" = 0 ] || fail "the diskless member's data file holds $alloc blocks"
pass "diskless attach: c served reads from peers and wrote to both; b killed, c went on with a; c resynced b ($moved bytes read at a) under writes; verify from c found b's corrupted block, a repaired it; a = b; c holds no data"
