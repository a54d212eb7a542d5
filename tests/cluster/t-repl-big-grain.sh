#!/usr/bin/env bash
# Bitmap grains larger than a frame (--bitmap-grain 4M; RESYNC_DATA carries
# at most 1 MiB): c is killed, a writes into three grains, c returns and
# is resynced in exactly those three 4 MiB grains, sent as 1 MiB frames;
# a = b = c. Then small grains coalesce: a volume with 64 KiB grains gets
# 8 MiB written in one piece while c is away, and c's resync of those 128
# grains moves 8 MiB (in transfers of up to 1 MiB, not 64 KiB each).
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip qemu-io

REPL_CREATE_ARGS="--bitmap-grain 4M" repl_up a b c
[ "$(vfield a 'v["replication"]["bitmap_grain"]')" = $((4 << 20)) ] || fail "grain not 4 MiB"
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
stop_urbd_in c
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x61 5M 1M' \
	-c 'write -P 0x62 20M 64k' -c 'write -P 0x63 41M 4k' 2>&1) || fail "qemu-io: $out"
repl_start c
wait_until 30 up_to_date c || fail "c was not resynced with 4 MiB grains: $(vstatus c)"
moved=$(peer_field a 2 resync_done_bytes)
[ "$moved" = $((12 << 20)) ] || fail "c's resync moved $moved bytes, not the 3 grains of 4 MiB"
wait_until 5 no_pending a
replicas_identical a b c || fail "replicas differ after a resync in 4 MiB grains"
log "4 MiB grains: c resynced in $moved bytes (3 grains)"

# 64 KiB grains, 8 MiB in one piece: coalesced transfers
ctl a volume create v2 64M --replicas "$REPL_SPEC" --local-id 0 >/dev/null || fail "create v2 on a"
uuid=$(ctl a --json volume status v2 | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
for i in 1 2; do
	az=$([ $i = 1 ] && echo b || echo c)
	ctl "$az" volume create v2 64M --replicas "$REPL_SPEC" --local-id $i --uuid "$uuid" >/dev/null ||
		fail "create v2 on $az"
done
VOL=v2
wait_connected a 2
ctl a volume promote v2 >/dev/null || fail "promote v2 on a"
stop_urbd_in c
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x64 16M 8M' 2>&1) ||
	fail "qemu-io: $out"
repl_start c
wait_until 30 up_to_date c || fail "c was not resynced: $(vstatus c)"
moved=$(peer_field a 2 resync_done_bytes)
[ "$moved" = $((8 << 20)) ] || fail "v2: c's resync moved $moved bytes, not 8 MiB"
wait_until 5 no_pending a
replicas_identical a b c || fail "v2 replicas differ"
pass "4 MiB grains: 12 MiB resynced for 3 grains (1 MiB frames); 64 KiB grains: 8 MiB resynced; a = b = c"
