#!/bin/sh
# Guest side of t-vm-nbd (run 2): urbd is killed with SIGKILL while ext4 on
# /dev/nbd0 takes fsync'd files; every file whose fsync returned must come
# back intact after reconnecting to the restarted daemon.
#
# Sequence: mkfs + mount; write files with dd conv=fsync, recording a name
# and sha256 (in guest RAM) only once its fsync returned; "URBD-VM-MARK
# writing" after a few files tells the host to kill urbd. On the first I/O
# error: umount, nbd-client -d, reconnect (the host restarts urbd on the
# same port), e2fsck -fy (journal replay), e2fsck -fn must then be clean,
# mount and compare every recorded checksum.
#
# nbd-client -t: without a timeout (nbd-client's default) a request in
# flight when the daemon dies is never completed: the 6.1 kernel only logs
# "Possible stuck request" and re-arms the timer, waiting for a netlink
# reconfigure that nbd-client 3.24 does not send; the writer then hangs for
# good in D state. With -t the kernel fails it with EIO after that long.
# Env: NBD_PORT, NBD_EXPORT, WRITE_SECS (loop bound, default 40),
#      NBD_TIMEOUT (nbd-client -t seconds, default 10; 0 = none).
. /lib.sh

D=/dev/nbd0
TMO=${NBD_TIMEOUT:-10}
set --
[ "$TMO" -gt 0 ] && set -- -t "$TMO"
# kernel messages a hang would leave: nbd's "Possible stuck request" is
# KERN_INFO; blocked tasks are reported after 20 s with their stacks (INFO)
echo 7 >/proc/sys/kernel/printk
[ -w /proc/sys/kernel/hung_task_timeout_secs ] && echo 20 >/proc/sys/kernel/hung_task_timeout_secs
step "connect $NBD_HOST:$NBD_PORT (timeout ${TMO} s)"
nbd_connect $D -b 4096 "$@" || gfail "nbd-client could not connect"
must mkfs.ext4 -F -q -E lazy_itable_init=0,lazy_journal_init=0 $D
mkdir -p /mnt/v
must mount -t ext4 -o errors=remount-ro $D /mnt/v
mkdir -p /mnt/v/d

: >/tmp/durable
i=0 err=0
limit=${WRITE_SECS:-40}
t0=$(cut -d. -f1 /proc/uptime)
while [ $i -lt 2000 ] && [ $(($(cut -d. -f1 /proc/uptime) - t0)) -lt "$limit" ]; do
	kb=$((($(od -An -N2 -tu2 /dev/urandom) % 32 + 1) * 8))
	head -c $((kb * 1024)) /dev/urandom >/tmp/cur
	if ! dd if=/tmp/cur of=/mnt/v/d/f$i bs=64k conv=fsync 2>/tmp/dd.err; then
		step "write of f$i failed after $(wc -l </tmp/durable) fsync'd files: $(tail -n1 /tmp/dd.err)"
		err=1
		break
	fi
	echo "$(sha256sum </tmp/cur | cut -d' ' -f1)  d/f$i" >>/tmp/durable
	i=$((i + 1))
	[ $i -eq 8 ] && mark writing
done
n=$(wc -l </tmp/durable)
if [ $err -eq 0 ]; then
	# the writes outlived the kill (no error surfaced): still check them
	step "no I/O error in ${limit} s ($n files); was urbd killed?"
fi
mark stopped-writing

step "umount and disconnect after the error"
timeout 30 umount /mnt/v || timeout 10 umount -l /mnt/v || gfail "umount hangs on the dead device"
timeout 20 nbd-client -d $D || gfail "nbd-client -d failed"
sleep 0.5
n_try=0
until nbd-client "$NBD_HOST" "$NBD_PORT" $D -N "$NBD_EXPORT" -b 4096 "$@" 2>/dev/null; do
	n_try=$((n_try + 1))
	[ $n_try -lt 40 ] || gfail "could not reconnect to the restarted urbd in 20 s"
	sleep 0.5
done
step "reconnected after $n_try retries"
e2fsck -fy $D >/tmp/fsck1 2>&1
st=$?
[ $st -le 1 ] || {
	cat /tmp/fsck1
	gfail "e2fsck -fy status $st"
}
grep -q 'recovering journal' /tmp/fsck1 && step "e2fsck replayed the journal"
e2fsck -fn $D >/tmp/fsck2 2>&1 || {
	cat /tmp/fsck2
	gfail "e2fsck -fn not clean after the repair"
}
must mount -t ext4 $D /mnt/v
(cd /mnt/v && sha256sum -c -s /tmp/durable) || {
	(cd /mnt/v && sha256sum -c /tmp/durable 2>&1 | grep -v ': OK$' | head -n 20)
	gfail "fsync'd files lost or changed after the crash"
}
must umount /mnt/v
must nbd_disconnect $D
gpass "all $n fsync'd files intact after kill -9 + restart (io error seen: $err)"
