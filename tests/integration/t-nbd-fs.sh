#!/usr/bin/env bash
# A real filesystem on a volume: nbdfuse exposes the export as a file, a
# loop device sits on it, and ext4 (then xfs) is made, mounted, filled with
# a tree of random files, checked (sha256 after remount, e2fsck -fn /
# xfs_repair -n clean), and checked again after urbd restarts on the same
# store. Mounts, loop devices and nbdfuse are undone even on failure.
source "$(dirname "$0")/lib.sh"

require_root
require_dev /dev/fuse /dev/loop-control
require_cmd nbdfuse fusermount3 losetup blockdev mount umount mountpoint mkfs.ext4 e2fsck \
	mkfs.xfs xfs_repair sha256sum

SIZE=$((512 * 1024 * 1024))
FUSEDIR=$T/fuse
MNT=$T/mnt
mkdir -p "$FUSEDIR" "$MNT"
NBDFUSE_PID=
LOOP=

fs_attach() { # nbdfuse + loop device on the volume
	rm -f "$T/nbdfuse.pid"
	nbdfuse -P "$T/nbdfuse.pid" "$FUSEDIR/nbd" "$(uri_unix demo)" \
		>>"$T/nbdfuse.log" 2>&1 &
	NBDFUSE_PID=$!
	wait_until 10 test -s "$T/nbdfuse.pid" || {
		cat "$T/nbdfuse.log" >&2
		fail "nbdfuse did not come up"
	}
	local sz
	sz=$(stat -c %s "$FUSEDIR/nbd") || fail "no nbdfuse file"
	[ "$sz" -eq "$SIZE" ] || fail "nbdfuse file is $sz bytes, want $SIZE"
	LOOP=$(losetup -f --show "$FUSEDIR/nbd") || fail "losetup failed"
	log "nbdfuse pid $NBDFUSE_PID, loop device $LOOP"
}

fs_detach() {
	if mountpoint -q "$MNT"; then
		umount "$MNT" || umount -l "$MNT"
	fi
	if [ -n "$LOOP" ]; then
		losetup -d "$LOOP" || true
		# detaching is asynchronous: wait until the loop lets go of the file
		wait_until 10 sh -c "! losetup -j '$FUSEDIR/nbd' | grep -q ." || true
		LOOP=
	fi
	if [ -n "$NBDFUSE_PID" ]; then
		local n
		for ((n = 0; n < 50; n++)); do
			fusermount3 -u "$FUSEDIR" 2>/dev/null && break
			sleep 0.2
		done
		for ((n = 0; n < 100; n++)); do
			kill -0 "$NBDFUSE_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$NBDFUSE_PID" 2>/dev/null; then
			log "nbdfuse pid $NBDFUSE_PID still running: SIGKILL"
			kill -KILL "$NBDFUSE_PID" 2>/dev/null || true
			fusermount3 -uz "$FUSEDIR" 2>/dev/null || true
		fi
		wait "$NBDFUSE_PID" 2>/dev/null || true
		NBDFUSE_PID=
	fi
}
on_exit fs_detach

# a few hundred files in nested dirs, mostly small, a few of some MiB
make_tree() { # dir seed
	"$PY" - "$1" "$2" <<'PYEOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
total = 0
for i in range(300):
    d = os.path.join(root, "d%02d" % (i % 17), "e%d" % (i % 3))
    os.makedirs(d, exist_ok=True)
    if i % 50 == 7:
        n = rnd.randrange(1 << 20, 4 << 20)
    else:
        n = rnd.choice([0, 1, 511, 4096, 4097]) if i % 10 == 0 else rnd.randrange(1, 96 << 10)
    with open(os.path.join(d, "f%03d.bin" % i), "wb") as f:
        f.write(os.urandom(n))
    total += n
os.symlink("d00/e0/f000.bin", os.path.join(root, "link"))
print("wrote 300 files, %d bytes" % total)
PYEOF
}
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
check_sums() { # dir what
	local got
	got=$(sums "$1") || fail "$2: reading the tree failed"
	if [ "$got" != "$(cat "$T/sums")" ]; then
		diff <(echo "$got") "$T/sums" | head -20 >&2
		fail "$2: checksums differ"
	fi
	[ "$(wc -l <"$T/sums")" -eq 300 ] || fail "$2: expected 300 files"
	log "$2: 300 checksums match"
}

start_urbd --default-volume demo:512M

# ---- ext4 ------------------------------------------------------------------
fs_attach
mkfs.ext4 -q -F "$LOOP" || fail "mkfs.ext4 failed"
mount -t ext4 "$LOOP" "$MNT" || fail "mount ext4 failed"
log "ext4: $(make_tree "$MNT/tree" 1)"
sums "$MNT" >"$T/sums"
sync
umount "$MNT" || fail "umount ext4 failed"
e2fsck -fn "$LOOP" >"$T/fsck.out" 2>&1 || {
	cat "$T/fsck.out" >&2
	fail "e2fsck -fn not clean after the first umount"
}
blockdev --flushbufs "$LOOP" # read back through urbd, not the page cache
mount -t ext4 "$LOOP" "$MNT" || fail "remount ext4 failed"
check_sums "$MNT" "ext4 remount"
umount "$MNT"
fs_detach

# the same after urbd restarts on the same store
restart_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exited with status $URBD_EXIT on SIGTERM"
fs_attach
e2fsck -fn "$LOOP" >"$T/fsck.out" 2>&1 || {
	cat "$T/fsck.out" >&2
	fail "e2fsck -fn not clean after restarting urbd"
}
mount -t ext4 "$LOOP" "$MNT" || fail "mount ext4 after restart failed"
check_sums "$MNT" "ext4 after urbd restart"
# writes after the restart work too
rm -rf "$MNT/tree/d03"
sync
umount "$MNT"
e2fsck -fn "$LOOP" >"$T/fsck.out" 2>&1 || {
	cat "$T/fsck.out" >&2
	fail "e2fsck -fn not clean after deleting a directory"
}

# ---- xfs -------------------------------------------------------------------
# the loop device may still be held for a moment after the umount and
# e2fsck above (seen once: EBUSY on mkfs's exclusive open)
_mkfs_xfs() { mkfs.xfs -q -f "$LOOP" 2>"$T/mkfs.err"; }
wait_until 5 _mkfs_xfs || fail "mkfs.xfs failed: $(cat "$T/mkfs.err")"
mount -t xfs "$LOOP" "$MNT" || fail "mount xfs failed"
log "xfs: $(make_tree "$MNT/tree" 2)"
sums "$MNT" >"$T/sums"
sync
umount "$MNT" || fail "umount xfs failed"
xfs_repair -n "$LOOP" >"$T/repair.out" 2>&1 || {
	cat "$T/repair.out" >&2
	fail "xfs_repair -n not clean"
}
# fresh nbdfuse and loop device: nothing cached on the way
fs_detach
fs_attach
mount -t xfs "$LOOP" "$MNT" || fail "remount xfs failed"
check_sums "$MNT" "xfs remount"
umount "$MNT"
fs_detach
assert_alive
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exited with status $URBD_EXIT on SIGTERM"
pass
