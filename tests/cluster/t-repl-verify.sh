#!/usr/bin/env bash
# Online verify (`urbdctl volume verify`): the primary compares its data
# with every up-to-date peer's by SHA-256 digests of regions.
#   - identical replicas verify clean, also while the checker writes
#     and at a --rate that makes it take its time
#     through the primary (no false differences from writes in flight)
#   - a 4 KiB block corrupted behind urbd's back in c's data file and
#     another in b's are found: exactly those regions, per peer, exit 6
#   - a secondary refuses to verify while a primary is up
#   - --repair resyncs exactly the differing regions; verify is then
#     clean, and the data files are identical (cmp)
#   - with nobody primary, a secondary verifies
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip qemu-io dd
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

CHK_BLOCKS=1024 # 4 MiB of stamped blocks
repl_up a b c
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x11 16M 4M' \
	-c 'write -P 0x22 21M 1M' -c 'write -P 0x33 40M 2M' -c 'write -z 50M 1M' 2>&1) ||
	fail "qemu-io: $out"
wait_until 5 no_pending a

out=$(ctl a volume verify "$VOL" 2>&1) || fail "verify of identical replicas exited $?: $out"
[ "$(grep -c 'identical' <<<"$out")" = 2 ] || fail "verify did not report both peers identical: $out"
log "clean verify: $(head -n 1 <<<"$out")"
t_free=$(ctl a --json volume status "$VOL" | "$PY" -c 'import json,sys; v=json.load(sys.stdin)["replication"]["verify"]; print(v["elapsed_ns"])')

# a rate limit: 64 MiB at 32 MiB/s takes at least 1.8 s (one 200 ms tick
# of burst up front), whatever the disk could do
js=$(ctl a --json volume verify "$VOL" --rate 32M) || fail "verify --rate 32M exited $?"
read -r rate el <<<"$("$PY" -c 'import json,sys; v=json.load(sys.stdin)["replication"]["verify"]; print(v["rate_bytes"], v["elapsed_ns"])' <<<"$js")"
[ "$rate" = $((32 << 20)) ] || fail "verify --rate 32M ran with rate_bytes $rate"
[ "$el" -ge 1700000000 ] || fail "verify --rate 32M of 64 MiB took only $el ns"
grep -q 'at most 32.0 MiB/s' <<<"$(ctl a volume status "$VOL")" || fail "status does not show the verify's rate"
rc=0
out=$(ctl a volume verify "$VOL" --rate 100K 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "verify --rate 100K exited $rc, want 2 (usage): $out"
log "verify rate limit: 64 MiB in $((el / 1000000)) ms at --rate 32M ($((t_free / 1000000)) ms at the default rate)"

# under load: regions wait for the writes in flight and writes for them.
# The checker's 4 MiB are hot enough that without that ordering about one
# run in three reports a false difference (tried): ten runs must be clean
checker_bg a w1 8 "$(nbd_uri a)"
sleep 1
for i in $(seq 10); do
	out=$(ctl a volume verify "$VOL" --region 64K 2>&1) ||
		fail "verify $i under writes exited $?: $out"
	grep -q 'done, 64.0 MiB of 64.0 MiB' <<<"$out" || fail "verify under writes incomplete: $out"
done
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "writes failed during the verify"
log "verify while writing: clean ($(chk_field w1 acked) writes acknowledged meanwhile)"

# corrupt one 4 KiB block in c's copy and one in b's, behind urbd's back
wait_until 5 no_pending a
head -c 4096 /dev/urandom >"$T/junk"
dd if="$T/junk" of="$(data_of c)" bs=4096 seek=$(((3 * 1048576 + 8192) / 4096)) \
	conv=notrunc oflag=direct status=none || fail "dd c"
dd if="$T/junk" of="$(data_of b)" bs=4096 seek=$((60 * 1048576 / 4096)) \
	conv=notrunc oflag=direct status=none || fail "dd b"
rc=0
out=$(ctl a volume verify "$VOL" --region 64K 2>&1) || rc=$?
[ "$rc" = 6 ] || fail "verify of corrupted replicas exited $rc, want 6: $out"
rc=0
js=$(ctl a --json volume verify "$VOL" --region 64K) || rc=$?
[ "$rc" = 6 ] || fail "--json verify exited $rc"
got=$("$PY" -c '
import json,sys
v=json.load(sys.stdin)["replication"]
print(" ".join("%d:%d:%s" % (p["id"], p["verify_differing_bytes"],
    ",".join(map(str, p["verify_differing_offsets"]))) for p in v["peers"]))' <<<"$js")
[ "$got" = "1:65536:62914560 2:65536:3145728" ] || fail "differences reported: '$got'"
log "corruption found: $(grep DIFFER <<<"$out" | tr -s ' ' | paste -sd';')"

rc=0
out=$(ctl b volume verify "$VOL" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q 'primary on another member' <<<"$out" ||
	fail "a secondary verified while a is primary (exit $rc): $out"

# repair: the regions go to b and c by a bitmap resync
rc=0
out=$(ctl a volume verify "$VOL" --region 64K --repair 2>&1) || rc=$?
[ "$rc" = 6 ] || fail "verify --repair exited $rc: $out"
_repaired() {
	[ "$(vfield a 'sum(p["syncing"] or p["outdated"] for p in v["replication"]["peers"])')" = 0 ] &&
		up_to_date b && up_to_date c
}
wait_until 20 _repaired || fail "repair did not finish: $(vstatus a)"
for id in 1 2; do
	moved=$(peer_field a $id resync_done_bytes)
	[ "$moved" = 65536 ] || fail "repair of member $id moved $moved bytes, want 65536"
done
out=$(ctl a volume verify "$VOL" 2>&1) || fail "verify after repair exited $?: $out"
wait_until 5 no_pending a
replicas_identical a b c || fail "data files differ after the repair"
checker_verify a w1
log "repair resent 64 KiB to b and to c; verify clean; a = b = c"

# nobody primary: a secondary verifies (nothing writes)
ctl a volume demote "$VOL" >/dev/null || fail "demote a"
_b_verifies() { ctl b volume verify "$VOL" >"$T/vb.out" 2>&1; }
wait_until 10 _b_verifies || fail "verify on b with nobody primary: $(cat "$T/vb.out")"
pass "verify: clean, clean 10x under writes, finds 2 corrupted blocks exactly, repair resyncs 64 KiB each, a = b = c"
