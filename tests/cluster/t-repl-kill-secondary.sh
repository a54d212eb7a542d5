#!/usr/bin/env bash
# kill -9 a secondary while the checker writes through the primary: writes
# go on without an error, the primary starts a new generation and marks
# what c misses in c's dirty bitmap. While c is down its copy is compared
# with a's, 64 KiB region by region: that is what c missed ("dirtied").
# c restarts, comes back outdated, and the primary resyncs it from the
# bitmap while a second checker run keeps writing: the bytes moved are the
# dirtied ones (at most 1.1x), c ends up-to-date, every acknowledged write
# of both runs reads back, and a, b and c are bit-identical.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip qemu-io
/usr/bin/python3 -c 'import nbd' 2>/dev/null || skip "python3-libnbd missing"

repl_up a b c
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
gen0=$(vfield a 'v["replication"]["generation"]')
checker_bg a w1 5 "$(nbd_uri a)"
sleep 2
kill9_in c
log "killed c (kill -9) mid-write"
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "writes failed while c was down"
[ "$(chk_field w1 acked)" -gt 100 ] || fail "too few writes acknowledged"
gap=$(chk_field w1 max_ack_gap_s)
log "no write failed; longest pause between acknowledgements ${gap}s"
# and a few known writes outside the checker's 16 MiB, one unaligned
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x61 20M 1M' \
	-c 'write -P 0x62 30M 64k' -c 'write -P 0x63 40964k 4k' 2>&1) || fail "qemu-io: $out"
[ "$(vfield a 'v["replication"]["generation"]')" != "$gen0" ] ||
	fail "the primary kept its generation while writing without c"

cp --sparse=always "$(data_of c)" "$T/c-before"
nd=$(/usr/bin/python3 "$CHECKER" compare "$T/c-before" "$(data_of a)" --region 64K |
	grep -c '^DIFF' || true)
dirtied=$((nd * 65536))
[ "$dirtied" -gt 0 ] || fail "c's copy does not differ from a's"
oos=$(peer_field a 2 out_of_sync_bytes)
log "c missed $nd regions of 64 KiB ($dirtied bytes); a's bitmap for c covers $oos bytes"

repl_start c
checker_bg a w1 3 "$(nbd_uri a)"
wait_until 30 up_to_date c || fail "c did not become up-to-date: $(vstatus c)"
checker_wait "$CHK_PID" w1
wait_until 10 up_to_date c || fail "c fell behind again"
moved=$(peer_field a 2 resync_done_bytes)
total=$(peer_field a 2 resync_total_bytes)
log "resync to c: moved $moved bytes (bitmap $total), dirtied $dirtied"
[ "$moved" -ge "$dirtied" ] || fail "resync moved $moved < dirtied $dirtied: c misses data"
[ "$moved" -le $((dirtied * 11 / 10)) ] || fail "resync moved $moved > 1.1 x dirtied $dirtied"
[ "$(peer_field a 2 outdated)" = False ] || fail "a still sees c as outdated"

wait_until 5 no_pending a
checker_verify a w1
replicas_identical a b c || fail "replicas differ after the resync"
# c is a full member again: it can take over
ctl a volume demote "$VOL" >/dev/null || fail "demote a"
promote_retry c
checker_verify c w1
pass "c killed mid-write: 0 failed writes (max pause ${gap}s); resync moved $moved of $dirtied dirtied bytes; a = b = c"
