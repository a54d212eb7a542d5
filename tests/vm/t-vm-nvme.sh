#!/usr/bin/env bash
# The Linux kernel's own NVMe/TCP initiator (nvme-tcp.ko + Debian's
# nvme-cli, in a QEMU guest booting Debian's cloud kernel) against urbd's
# NVMe/TCP target on the host: discover, connect, id-ctrl/id-ns, raw
# O_DIRECT patterns (first and last block), a live resize (urbdctl volume
# resize on the host while connected: the kernel gets the Namespace
# Attribute Changed event, rescans, and /sys/block/nvme0n1/size shows the
# new size within a bounded wait; the new last block is written and read
# back), ext4 mkfs + files + fsck + checksums after a reconnect,
# disconnect. The guest script is written below (busybox sh).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"

VM=$(cd "$(dirname "$0")" && pwd)
require_cmd "${QEMU:-qemu-system-x86_64}"
"$VM/build-initramfs.sh" >/dev/null 2>"$T/build.err" || {
	rc=$?
	cat "$T/build.err" >&2
	[ $rc -eq 77 ] && skip "no guest image: $(grep -m1 SKIP "$T/build.err" | sed 's/.*SKIP: //')"
	fail "build-initramfs.sh failed ($rc)"
}

VOL=$((256 * 1024 * 1024))
NEW_VOL=$((320 * 1024 * 1024))
NVMF_PORT=$(free_port)
CTL=$URBD_BIN_DIR/urbdctl
[ -x "$CTL" ] || fail "no urbdctl at $CTL"
cat >"$T/guest-nvme.sh" <<'GUEST'
#!/bin/sh
. /lib.sh
NQN=nqn.2026-11.io.urbd:demo
A="-t tcp -a 10.0.2.2 -s $NVMF_PORT"
step "discover"
nvme discover $A >/tmp/disc 2>&1 || { cat /tmp/disc; gfail "nvme discover"; }
cat /tmp/disc
grep -q "subnqn: *$NQN" /tmp/disc || gfail "discovery log does not list $NQN"
step "connect"
must nvme connect $A -n $NQN -k 10
i=0
while [ ! -b /dev/nvme0n1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -b /dev/nvme0n1 ] || gfail "no /dev/nvme0n1 after connect"
nvme list
nvme id-ctrl /dev/nvme0 >/tmp/idc || gfail "id-ctrl"
grep -E '^(mn|sn|fr|subnqn|mdts|sgls|ioccsz|iorcsz|nn|oncs|vwc) ' /tmp/idc
grep -q '^mn *: urbd' /tmp/idc || gfail "model is not urbd"
grep -q "^subnqn *: $NQN" /tmp/idc || gfail "subnqn"
nvme id-ns /dev/nvme0n1 >/tmp/idn || gfail "id-ns"
grep -E '^(nsze|ncap|nguid|lbaf)' /tmp/idn
sz=$(cat /sys/block/nvme0n1/size)
[ "$sz" -eq $((VOL_BYTES / 512)) ] || gfail "size $sz sectors, want $((VOL_BYTES / 512))"
nvme ns-descs /dev/nvme0n1 || true
step "raw patterns"
last=$((VOL_BYTES / 4096 - 1))
for blk in 0 1 777 $last; do
	dd if=/dev/urandom of=/tmp/p.$blk bs=4096 count=1 2>/dev/null
	must dd if=/tmp/p.$blk of=/dev/nvme0n1 bs=4096 seek=$blk count=1 oflag=direct 2>/dev/null
done
dd if=/dev/urandom of=/tmp/big bs=1M count=3 2>/dev/null
must dd if=/tmp/big of=/dev/nvme0n1 bs=1M seek=5 oflag=direct 2>/dev/null
for blk in 0 1 777 $last; do
	dd if=/dev/nvme0n1 of=/tmp/r.$blk bs=4096 skip=$blk count=1 iflag=direct 2>/dev/null
	cmp /tmp/p.$blk /tmp/r.$blk || gfail "block $blk reads back different"
done
dd if=/dev/nvme0n1 of=/tmp/rbig bs=1M skip=5 count=3 iflag=direct 2>/dev/null
cmp /tmp/big /tmp/rbig || gfail "3 MiB at 5 MiB reads back different"
# the block layer stops reads at the end; ask the target itself
nvme read /dev/nvme0n1 --start-block=$((VOL_BYTES / 512)) --block-count=0 \
	--data-size=512 --data=/tmp/oob >/tmp/oob.out 2>&1 &&
	gfail "an NVMe Read past the namespace end succeeded"
cat /tmp/oob.out
grep -qi 'LBA.*Range\|0x80\|0x4080\|range' /tmp/oob.out || step "note: out-of-range status text: $(cat /tmp/oob.out)"
step "resize"
mark resize-now
want=$((NEW_BYTES / 512))
i=0
while [ "$(cat /sys/block/nvme0n1/size)" -ne $want ] && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
sz=$(cat /sys/block/nvme0n1/size)
[ "$sz" -eq $want ] || gfail "after the resize: size $sz sectors, want $want (waited $i x 0.1 s)"
step "new size $sz sectors seen after $i x 0.1 s"
nvme id-ns /dev/nvme0n1 | grep -E '^(nsze|ncap)'
nlast=$((NEW_BYTES / 4096 - 1))
dd if=/dev/urandom of=/tmp/p.new bs=4096 count=1 2>/dev/null
must dd if=/tmp/p.new of=/dev/nvme0n1 bs=4096 seek=$nlast count=1 oflag=direct 2>/dev/null
dd if=/dev/nvme0n1 of=/tmp/r.new bs=4096 skip=$nlast count=1 iflag=direct 2>/dev/null
cmp /tmp/p.new /tmp/r.new || gfail "the new last block reads back different"
step "ext4"
must mkfs.ext4 -F -q -E lazy_itable_init=0,lazy_journal_init=0,discard /dev/nvme0n1
must mount -t ext4 /dev/nvme0n1 /mnt
mkdir /mnt/d
n=0
while [ $n -lt 40 ]; do
	dd if=/dev/urandom of=/mnt/d/f$n bs=4k count=$((n % 7 * 16 + 1)) 2>/dev/null
	n=$((n + 1))
done
sync
(cd /mnt/d && md5sum f*) >/tmp/sums
must umount /mnt
must e2fsck -fn /dev/nvme0n1
step "disconnect + reconnect"
must nvme disconnect -n $NQN
sleep 0.5
must nvme connect $A -n $NQN
i=0
while [ ! -b /dev/nvme0n1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
must mount -t ext4 /dev/nvme0n1 /mnt
(cd /mnt/d && md5sum -c /tmp/sums >/dev/null) || gfail "checksums differ after reconnect"
fstrim -v /mnt || step "note: fstrim unavailable or failed"
must umount /mnt
must nvme disconnect -n $NQN
gpass "kernel nvme-tcp: discover, connect, identify, raw, resize, ext4, fsck, reconnect"
GUEST

start_urbd --default-volume "demo:$VOL" --nvmf-listen "127.0.0.1:$NVMF_PORT"
log "nvme-tcp target on 127.0.0.1:$NVMF_PORT"
VM_LOG=$T/nvme.console "$VM/run-guest.sh" "$T/guest-nvme.sh" \
	NVMF_PORT="$NVMF_PORT" VOL_BYTES="$VOL" NEW_BYTES="$NEW_VOL" &
GUEST_PID=$!
on_exit "kill -TERM $GUEST_PID"
# the guest says when it is connected and waiting for the new size
resize_now() { grep -qsa 'URBD-VM-MARK resize-now' "$T/nvme.console"; }
guest_gone() { ! kill -0 "$GUEST_PID" 2>/dev/null; }
wait_until 240 eval 'resize_now || guest_gone' || true
if resize_now; then
	timeout 30 "$CTL" -s "$T/control.sock" volume resize demo "$NEW_VOL" ||
		fail "urbdctl volume resize failed"
	log "volume resized to $NEW_VOL bytes"
fi
rc=0
wait "$GUEST_PID" || rc=$?
grep -a 'guest:\|rescanning' "$T/nvme.console" | tr -d '\r' >&2
if [ $rc -ne 0 ]; then
	[ $rc -eq 77 ] && skip "guest skipped: $(grep -a 'SKIP' "$T/nvme.console" | tail -n1)"
	grep -a 'nvmf' "$URBD_LOG" | tail -n 30 >&2
	fail "guest (kernel nvme-tcp) failed"
fi
grep -q 'asynchronous event 0x040002' "$URBD_LOG" ||
	fail "urbd sent no Namespace Attribute Changed event on the resize"
assert_alive "after the kernel initiator's run"
if grep -E 'fatal transport error|illegal state' "$URBD_LOG" >"$T/bad"; then
	cat "$T/bad" >&2
	fail "urbd reported transport errors with the kernel initiator"
fi
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exit status $URBD_EXIT"
pass "kernel nvme-tcp initiator: discover, connect, identify, raw I/O, live resize, ext4, reconnect"
