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

# away_and_back BYTES QEMU-IO-ARGS...: a (primary of $VOL) writes while c
# is stopped; c returns and must be resynced in exactly BYTES; a = b = c
away_and_back() {
	local want=$1 out moved
	shift
	stop_urbd_in c
	out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" "$@" 2>&1) || fail "qemu-io: $out"
	repl_start c
	wait_until 30 up_to_date c || fail "$VOL: c was not resynced: $(vstatus c)"
	moved=$(peer_field a 2 resync_done_bytes)
	[ "$moved" = "$want" ] || fail "$VOL: c's resync moved $moved bytes, not $want"
	wait_until 5 no_pending a
	replicas_identical a b c || fail "$VOL: replicas differ after c's resync"
	log "$VOL: c resynced in $moved bytes"
}

REPL_CREATE_ARGS="--bitmap-grain 4M" repl_up a b c
[ "$(vfield a 'v["replication"]["bitmap_grain"]')" = $((4 << 20)) ] || fail "grain not 4 MiB"
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
# three 4 MiB grains
away_and_back $((12 << 20)) -c 'write -P 0x61 5M 1M' -c 'write -P 0x62 20M 64k' \
	-c 'write -P 0x63 41M 4k'

# 64 KiB grains, 8 MiB in one piece: coalesced transfers
repl_create v2 64M
VOL=v2
ctl a volume promote v2 >/dev/null || fail "promote v2 on a"
away_and_back $((8 << 20)) -c 'write -P 0x64 16M 8M'
pass "4 MiB grains: 12 MiB resynced for 3 grains (1 MiB frames); 64 KiB grains: 8 MiB resynced; a = b = c"
