#!/usr/bin/env bash
# A full store filesystem: the store lives on a 64 MiB ext4 loop mount.
# A volume bigger than the free space is refused at creation. With a 48 MiB
# (sparse) volume and the rest of the filesystem taken by a dummy file,
# writes to unallocated parts of the volume fail with ENOSPC ("No space left
# on device") at the client, urbd keeps running and still serves reads of
# what was written before; after the dummy file is deleted, writes succeed
# again. Unmounts and detaches the loop device even on failure.
source "$(dirname "$0")/lib.sh"

require_root
require_dev /dev/loop-control
require_cmd mkfs.ext4 losetup mount umount mountpoint fallocate df qemu-io
MB=$((1024 * 1024))

FSDIR=$T/storefs
mkdir -p "$FSDIR"
LOOP=
fs_cleanup() {
	if mountpoint -q "$FSDIR"; then
		umount "$FSDIR" || umount -l "$FSDIR"
	fi
	if [ -n "$LOOP" ]; then
		losetup -d "$LOOP" || true
		LOOP=
	fi
}
on_exit fs_cleanup
truncate -s 64M "$T/fs.img"
mkfs.ext4 -q -F -m 0 "$T/fs.img" || fail "mkfs.ext4 failed"
LOOP=$(losetup -f --show "$T/fs.img") || fail "losetup failed"
mount -t ext4 "$LOOP" "$FSDIR" || fail "mounting the store filesystem failed"
avail() { df -B1 --output=avail "$FSDIR" | tail -n 1 | tr -d ' '; }
log "store filesystem on $LOOP: $(avail) bytes free"

# ---- a volume larger than the free space is refused --------------------
rc=0
timeout 20 "$URBD_BIN" --store "$FSDIR/toobig" --nbd-listen none --nbd-unix "$T/toobig.sock" \
	--control "$T/toobig.ctl" --default-volume big:1G >"$T/toobig.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || {
	cat "$T/toobig.log" >&2
	fail "a 1 GiB volume on a 64 MiB filesystem: urbd exit status $rc, want a refusal"
}
grep -qiE 'big.*(not enough space|no space)' "$T/toobig.log" || {
	cat "$T/toobig.log" >&2
	fail "no clear log line refusing the oversized volume"
}
[ ! -e "$FSDIR/toobig/volumes/big" ] || fail "the refused volume left a directory behind"
rm -rf "$FSDIR/toobig"
log "1 GiB volume refused: $(grep -m1 -iE 'space' "$T/toobig.log" | cut -c14-)"

# ---- fill the filesystem under a served volume -----------------------------
URBD_STORE=$FSDIR/store
start_urbd --default-volume fill:48M
qio_ok "$(uri_tcp fill)" "write -P 0x31 0 $MB" "write -P 0x32 $((47 * MB)) $MB" "flush"
used0=$(du -B1 -s "$FSDIR/store/volumes/fill/data" | cut -f1)
[ "$used0" -lt $((16 * MB)) ] || fail "the volume data file is not sparse ($used0 bytes used)"

# take all the rest: fallocate most, then dd until ENOSPC (bounded by size)
fallocate -l $(($(avail) - 256 * 1024)) "$FSDIR/dummy1" || fail "fallocate failed"
dd if=/dev/zero of="$FSDIR/dummy2" bs=4096 count=$((4 * MB / 4096)) conv=fsync 2>/dev/null || true
sync
[ "$(avail)" -lt 65536 ] || fail "could not fill the store filesystem ($(avail) bytes free)"
log "store filesystem full: $(avail) bytes free"

# writes into unallocated parts of the volume fail with ENOSPC
nospace=0
for off in $((8 * MB)) $((16 * MB)) $((24 * MB)) $((32 * MB)); do
	out=$(qio "$(uri_tcp fill)" "write -P 0x44 $off $((4 * MB))" "flush") && {
		echo "$out" >&2
		fail "a 4 MiB write at $off on a full store succeeded"
	}
	if grep -q 'No space left on device' <<<"$out"; then
		nospace=$((nospace + 1))
	else
		echo "$out" >&2
		fail "write at $off on a full store failed, but not with ENOSPC (No space left on device)"
	fi
	assert_alive "after a write on a full store"
done
log "4 writes on the full store: all failed with ENOSPC"
# FUA writes too
out=$(qio "$(uri_unix fill)" "write -f -P 0x45 $((40 * MB)) $((2 * MB))") &&
	fail "a FUA write on a full store succeeded"
grep -q 'No space left on device' <<<"$out" || {
	echo "$out" >&2
	fail "a FUA write on a full store failed, but not with ENOSPC"
}
assert_log 'No space left on device|ENOSPC|no space' 5
# reads of what was written before still work, on both transports
qio_ok "$(uri_tcp fill)" "read -P 0x31 0 $MB" "read -P 0x32 $((47 * MB)) $MB"
qio_ok "$(uri_unix fill)" "read -P 0x31 0 $MB" "read -P 0x32 $((47 * MB)) $MB"
# overwriting already-allocated blocks may work or not, but must not kill
# the daemon or corrupt neighbours
qio "$(uri_tcp fill)" "write -P 0x33 $((512 * 1024)) 4096" >/dev/null || true
assert_alive "after an overwrite on a full store"
qio_ok "$(uri_tcp fill)" "read -P 0x31 0 $((512 * 1024))" "read -P 0x31 $((516 * 1024)) $((508 * 1024))"
qio "$(uri_tcp fill)" "read -P 0x33 $((512 * 1024)) 4096" >/dev/null ||
	qio_ok "$(uri_tcp fill)" "read -P 0x31 $((512 * 1024)) 4096"

# ---- space comes back: writes work again -------------------------------------
rm -f "$FSDIR/dummy1" "$FSDIR/dummy2"
sync
log "dummy files removed: $(avail) bytes free"
qio_ok "$(uri_tcp fill)" "write -P 0x31 $((512 * 1024)) 4096"
qio_ok "$(uri_tcp fill)" "write -P 0x46 $((8 * MB)) $((4 * MB))" "flush" \
	"read -P 0x46 $((8 * MB)) $((4 * MB))"
qio_ok "$(uri_unix fill)" "write -f -P 0x47 $((24 * MB)) $((4 * MB))" \
	"read -P 0x47 $((24 * MB)) $((4 * MB))" "read -P 0x31 0 $MB" "read -P 0x32 $((47 * MB)) $MB"
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exited with status $URBD_EXIT on SIGTERM"
# and it is all there after a restart
start_urbd
qio_ok "$(uri_tcp fill)" "read -P 0x46 $((8 * MB)) $((4 * MB))" "read -P 0x47 $((24 * MB)) $((4 * MB))" \
	"read -P 0x31 0 $MB" "read -P 0x32 $((47 * MB)) $MB"
stop_urbd
pass
