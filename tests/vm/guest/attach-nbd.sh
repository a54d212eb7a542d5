#!/bin/sh
# Guest side of t-vm-attach-nbd: urbd-attach nbd (csi/attach_nbd*.c) drives
# the kernel's nbd driver by generic netlink, no nbd-client involved.
#   usage errors exit 2; an unknown export and a closed port exit 1 with
#   the reason and leave no device behind; connect A (2 connections)
#   prints /dev/nbdN of the right size with backend urbd:HOST:PORT/vola;
#   connecting again returns the same device and no second one; find (by
#   target and by backend id); B gets its own device; raw patterns on A
#   and ext4 on B read back; disconnect A by target: size 0, no backend,
#   find fails, B untouched, disconnect again succeeds; B by --device;
#   reconnect: A's patterns and B's files are still there; a disconnect of
#   the mounted B is -EBUSY (exit 1) until the umount releases it.
# Env: NBD_PORT, VOL_A, VOL_B.
. /lib.sh

X="--host $NBD_HOST --port $NBD_PORT"
ID_A="urbd:$NBD_HOST:$NBD_PORT/vola"
ID_B="urbd:$NBD_HOST:$NBD_PORT/volb"
attach() { urbd-attach nbd "$@"; }
# devs_with ID: how many nbd devices have backend ID
devs_with() { cat /sys/block/nbd*/backend 2>/dev/null | grep -cxF "$1"; }
backend_of() { cat "/sys/block/${1#/dev/}/backend" 2>/dev/null; }
# gone DEV: disconnected: size 0 and no backend file
gone() { [ "$(devsize "$1")" = 0 ] && [ ! -e "/sys/block/${1#/dev/}/backend" ]; }

[ -d /sys/module/nbd ] || gfail "the nbd module is not loaded"
[ -b /dev/nbd0 ] || gfail "no /dev/nbd0"

step "usage errors"
attach connect --export vola >/dev/null 2>&1; [ $? -eq 2 ] || gfail "connect without --host: want exit 2"
attach connect --host $NBD_HOST --port 0 --export vola >/dev/null 2>&1; [ $? -eq 2 ] || gfail "port 0: want exit 2"
attach connect $X --export vola --block-size 1000 >/dev/null 2>&1; [ $? -eq 2 ] || gfail "block size 1000: want exit 2"
attach find $X --export vola --connections 2 >/dev/null 2>&1; [ $? -eq 2 ] || gfail "find --connections: want exit 2"
attach frob $X --export vola >/dev/null 2>&1; [ $? -eq 2 ] || gfail "unknown verb: want exit 2"
attach disconnect --device /dev/vda >/dev/null 2>&1; [ $? -eq 2 ] || gfail "disconnect a non-nbd device: want exit 2"
attach find $X --export vola >/dev/null 2>&1; [ $? -eq 1 ] || gfail "find before connect: want exit 1"

step "unknown export"
attach connect $X --export nosuch --timeout-ms 5000 >/tmp/out 2>/tmp/err
rc=$?
cat /tmp/err
[ $rc -eq 1 ] || gfail "unknown export: exit $rc, want 1"
[ -s /tmp/out ] && gfail "unknown export printed a device: $(cat /tmp/out)"
grep -q "no export 'nosuch'" /tmp/err || gfail "unknown export: the error does not name the export"
grep -q NBD_REP_ERR_UNKNOWN /tmp/err || gfail "unknown export: the error does not say NBD_REP_ERR_UNKNOWN"
[ "$(devs_with "urbd:$NBD_HOST:$NBD_PORT/nosuch")" = 0 ] || gfail "a device left for the unknown export"

step "closed port"
attach connect --host $NBD_HOST --port 1 --export vola --timeout-ms 3000 2>/tmp/err
rc=$?
cat /tmp/err
[ $rc -eq 1 ] || gfail "closed port: exit $rc, want 1"
grep -q "refused" /tmp/err || gfail "closed port: no 'refused' in the error"

step "connect A (2 connections)"
da=$(attach connect -v $X --export vola --connections 2) || gfail "connect A"
step "A is $da"
case $da in /dev/nbd[0-9]*) ;; *) gfail "connect A printed '$da'" ;; esac
[ -b "$da" ] || gfail "$da is not a block device"
[ "$(blockdev --getsize64 "$da")" = "$VOL_A" ] || gfail "$da: $(blockdev --getsize64 "$da") bytes, want $VOL_A"
[ "$(backend_of "$da")" = "$ID_A" ] || gfail "$da: backend '$(backend_of "$da")', want $ID_A"
[ "$(blockdev --getss "$da")" = 512 ] || gfail "$da: logical block size $(blockdev --getss "$da"), want 512"

step "connect A again"
da2=$(attach connect $X --export vola) || gfail "second connect A"
[ "$da2" = "$da" ] || gfail "second connect A gave $da2, want $da"
[ "$(devs_with "$ID_A")" = 1 ] || gfail "$(devs_with "$ID_A") devices for A after two connects"

step "find A"
[ "$(attach find $X --export vola)" = "$da" ] || gfail "find A by target"
[ "$(attach find --backend "$ID_A")" = "$da" ] || gfail "find A by backend id"

step "connect B"
db=$(attach connect $X --export volb --block-size 4096 --timeout 20) || gfail "connect B"
step "B is $db"
[ "$db" != "$da" ] || gfail "A and B share $da"
[ "$(blockdev --getsize64 "$db")" = "$VOL_B" ] || gfail "$db: $(blockdev --getsize64 "$db") bytes, want $VOL_B"
[ "$(blockdev --getss "$db")" = 4096 ] || gfail "$db: logical block size $(blockdev --getss "$db"), want 4096"
[ "$(cat /sys/block/${db#/dev/}/queue/logical_block_size)" = 4096 ] || gfail "$db: sysfs block size"

step "data: patterns on A, ext4 on B"
last=$((VOL_A / 4096 - 1))
dd if=/dev/urandom of=/tmp/pa bs=1M count=2 2>/dev/null
dd if=/dev/urandom of=/tmp/pl bs=4096 count=1 2>/dev/null
must dd if=/tmp/pa of="$da" bs=1M seek=3 oflag=direct 2>/dev/null
must dd if=/tmp/pl of="$da" bs=4096 seek=$last oflag=direct 2>/dev/null
dd if="$da" of=/tmp/ra bs=1M skip=3 count=2 iflag=direct 2>/dev/null
cmp /tmp/pa /tmp/ra || gfail "A: 2 MiB at 3 MiB reads back different"
dd if="$da" of=/tmp/rl bs=4096 skip=$last count=1 iflag=direct 2>/dev/null
cmp /tmp/pl /tmp/rl || gfail "A: last block reads back different"
must mkfs.ext4 -q -F "$db"
must mount -t ext4 "$db" /mnt
dd if=/dev/urandom of=/mnt/f1 bs=64k count=40 2>/dev/null
mkdir /mnt/d && dd if=/dev/urandom of=/mnt/d/f2 bs=4k count=3 2>/dev/null
(cd /mnt && md5sum f1 d/f2) >/tmp/sums
must umount /mnt

step "disconnect A by target"
must attach disconnect -v $X --export vola
gone "$da" || gfail "$da: size $(devsize "$da"), backend '$(backend_of "$da")' after disconnect"
[ "$(devs_with "$ID_A")" = 0 ] || gfail "A still has a device"
attach find $X --export vola >/dev/null 2>&1; [ $? -eq 1 ] || gfail "find A after disconnect: want exit 1"
[ "$(attach find --backend "$ID_B")" = "$db" ] || gfail "find B after A's disconnect"
step "disconnect A again"
must attach disconnect $X --export vola
must attach disconnect --device "$da"

step "disconnect B by device"
must attach disconnect --device "$db"
gone "$db" || gfail "$db still configured after disconnect"
must attach disconnect --device "$db"

step "reconnect A and B: data kept"
da3=$(attach connect $X --export vola) || gfail "reconnect A"
dd if="$da3" of=/tmp/ra3 bs=1M skip=3 count=2 iflag=direct 2>/dev/null
cmp /tmp/pa /tmp/ra3 || gfail "A reads back different after reconnect"
db3=$(attach connect $X --export volb --block-size 4096) || gfail "reconnect B"
e2fsck -fn "$db3" >/tmp/fsck 2>&1 || { cat /tmp/fsck; gfail "e2fsck -fn B: not clean"; }
must mount -t ext4 "$db3" /mnt
(cd /mnt && md5sum -c /tmp/sums) || gfail "B's files differ after reconnect"
sync

step "disconnect B while mounted: busy, released by umount"
attach disconnect --device "$db3" --timeout-ms 1000 2>/tmp/err
rc=$?
cat /tmp/err
[ $rc -eq 1 ] || gfail "disconnect of a mounted device: exit $rc, want 1"
grep -q "held open" /tmp/err || gfail "disconnect of a mounted device: no 'held open' in the error"
umount /mnt 2>/dev/null || umount -f /mnt || gfail "umount after disconnect"
i=0
while ! gone "$db3" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
gone "$db3" || gfail "$db3 still configured after umount"
must attach disconnect $X --export volb

step "disconnect all"
must attach disconnect --backend "$ID_A"
must attach disconnect $X --export volb
gone "$da3" && gone "$db3" || gfail "devices left configured"
[ "$(cat /sys/block/nbd*/backend 2>/dev/null | wc -l)" = 0 ] || gfail "backend files left"
gpass "urbd-attach nbd: netlink connect, idempotent, find, two volumes, data, disconnect, errors"
