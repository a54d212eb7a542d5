#!/bin/sh
# Guest side of t-vm-nbd (run 1): the kernel's nbd driver on a urbd volume.
#   raw: random patterns written O_DIRECT at several offsets (the first and
#        the last block among them), read back after a disconnect/reconnect
#        and compared; a write past the end must fail
#   fs:  mkfs.ext4, a tree of random files, checksums, umount, disconnect,
#        reconnect, e2fsck -fn clean, remount, checksums match; the same
#        tree on xfs (xfs_repair -n clean, checksums after remount)
# Env: NBD_PORT, NBD_EXPORT, NBD_CONNS (nbd-client -C), VOL_BYTES.
. /lib.sh

D=/dev/nbd0
CONNS=${NBD_CONNS:-1}
BS=4096
connect() { nbd_connect $D -b $BS -C "$CONNS" || gfail "nbd-client could not connect to $NBD_HOST:$NBD_PORT"; }

step "connect $NBD_HOST:$NBD_PORT export $NBD_EXPORT ($CONNS connection(s))"
connect
size=$(devsize $D)
step "/dev/nbd0 is $size bytes"
[ "$size" = "${VOL_BYTES:-268435456}" ] || gfail "size $size, expected ${VOL_BYTES:-268435456}"
blocks=$((size / BS))

# --- raw I/O ------------------------------------------------------------
# offset(blocks):count pairs: first block, an unaligned-to-MiB run, the
# middle, a run ending at the last block, the last block alone
set -- 0:1 257:33 $((blocks / 2 - 3)):64 $((blocks - 40)):39 $((blocks - 1)):1
i=0
for oc in "$@"; do
	off=${oc%%:*} cnt=${oc#*:}
	dd if=/dev/urandom of=/tmp/pat.$i bs=$BS count="$cnt" 2>/dev/null
	dd if=/tmp/pat.$i of=$D bs=$BS seek="$off" count="$cnt" oflag=direct conv=notrunc 2>/tmp/dd.err ||
		{ cat /tmp/dd.err; gfail "raw write of $cnt blocks at block $off failed"; }
	i=$((i + 1))
done
# past the end: the kernel refuses it before the wire (ENOSPC)
if dd if=/tmp/pat.0 of=$D bs=$BS seek=$blocks count=1 oflag=direct conv=notrunc 2>/dev/null; then
	gfail "a write past the end of the device succeeded"
fi
must blockdev --flushbufs $D
step "raw patterns written; disconnect and reconnect so reads come off the wire"
must nbd_disconnect $D
sleep 0.2
connect
i=0
for oc in "$@"; do
	off=${oc%%:*} cnt=${oc#*:}
	dd if=$D of=/tmp/back.$i bs=$BS skip="$off" count="$cnt" iflag=direct 2>/tmp/dd.err ||
		{ cat /tmp/dd.err; gfail "raw read at block $off failed"; }
	cmp /tmp/pat.$i /tmp/back.$i || gfail "data read back at block $off ($cnt blocks) differs"
	i=$((i + 1))
done
# a block never written reads as zeros on a new volume
dd if=$D of=/tmp/zero bs=$BS skip=$((blocks / 4)) count=1 iflag=direct 2>/dev/null
dd if=/dev/zero of=/tmp/zref bs=$BS count=1 2>/dev/null
cmp /tmp/zero /tmp/zref || gfail "an unwritten block does not read as zeros"
step "raw I/O: $# patterns match, incl. the last block"

# --- ext4 -----------------------------------------------------------------
must mkfs.ext4 -F -q -E lazy_itable_init=0,lazy_journal_init=0 $D
mkdir -p /mnt/v
must mount -t ext4 $D /mnt/v
n=0 total=0
for d in a a/b a/b/c d e; do
	mkdir -p /mnt/v/$d
	for f in 1 2 3 4 5 6 7 8; do
		# 4 KiB .. 252 KiB, some not a multiple of the block size
		kb=$((($(od -An -N2 -tu2 /dev/urandom) % 63 + 1) * 4))
		extra=$(($(od -An -N2 -tu2 /dev/urandom) % 3 * 333))
		head -c $((kb * 1024 + extra)) /dev/urandom >/mnt/v/$d/f$f ||
			gfail "write /mnt/v/$d/f$f"
		n=$((n + 1)) total=$((total + kb * 1024 + extra))
	done
done
ln -s a/b/c/f1 /mnt/v/link
(cd /mnt/v && find . -type f | sort | xargs sha256sum) >/tmp/sums
(cd /mnt/v && find . -type f | sort | xargs md5sum) >/tmp/md5s
step "wrote $n files, $total bytes"
sync
must umount /mnt/v
must nbd_disconnect $D
sleep 0.2
connect
e2fsck -fn $D >/tmp/fsck.out 2>&1 || {
	cat /tmp/fsck.out
	gfail "e2fsck -fn found problems (status $?)"
}
step "e2fsck -fn clean"
must mount -t ext4 $D /mnt/v
(cd /mnt/v && sha256sum -c -s /tmp/sums) || gfail "sha256 mismatch after remount"
(cd /mnt/v && md5sum -c -s /tmp/md5s) || gfail "md5 mismatch after remount"
[ "$(readlink /mnt/v/link)" = a/b/c/f1 ] || gfail "symlink lost"
got=$(find /mnt/v -type f | wc -l)
[ "$got" -eq "$n" ] || gfail "$got files after remount, wrote $n"
step "ext4 remount: $n files match their checksums"
# xfs on the same connection: copy the tree, check, remount, compare
mkdir -p /tmp/tree
cp -a /mnt/v/. /tmp/tree/
must umount /mnt/v
# xfsprogs 6.1 refuses filesystems under 300 MB unless it believes it is
# under fstests (TEST_DIR, TEST_DEV and QA_CHECK_FS all set): the volume
# is 256 MiB
TEST_DIR=/tmp TEST_DEV=$D QA_CHECK_FS=1 mkfs.xfs -f -q $D || gfail "mkfs.xfs failed"
must mount -t xfs $D /mnt/v
cp -a /tmp/tree/. /mnt/v/
sync
must umount /mnt/v
must blockdev --flushbufs $D
xfs_repair -n $D >/tmp/xfsr 2>&1 || {
	cat /tmp/xfsr
	gfail "xfs_repair -n found problems"
}
must mount -t xfs $D /mnt/v
(cd /mnt/v && sha256sum -c -s /tmp/sums) || gfail "sha256 mismatch on xfs after remount"
must umount /mnt/v
step "xfs: xfs_repair -n clean, $n files match"
must nbd_disconnect $D
gpass "raw + ext4 + xfs over the kernel nbd client"
