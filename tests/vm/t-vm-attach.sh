#!/usr/bin/env bash
# urbd-attach (csi/attach_nvme.c, libnvme) in a QEMU guest against urbd's
# NVMe/TCP target on the host, two volumes: connect prints the namespace's
# block device of the right size; connecting again returns the same device
# and no second controller; a second volume gets its own device; find;
# data written through the device reads back (also after a reconnect);
# disconnect removes only that volume's device and is idempotent; the host
# NQN is created in /etc/nvme when missing and stays the same.
# The guest script is written below (busybox sh); urbd-attach is copied into
# the guest by build-initramfs.sh (URBD_VM_EXTRA_BINS).
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"

VM=$(cd "$(dirname "$0")" && pwd)
require_cmd "${QEMU:-qemu-system-x86_64}"
ATTACH=$URBD_BIN_DIR/urbd-attach
CTL=$URBD_BIN_DIR/urbdctl
[ -x "$ATTACH" ] || fail "no $ATTACH (make $URBD_BUILD/urbd-attach)"
[ -x "$CTL" ] || fail "no $CTL (make $URBD_BUILD/urbdctl)"
export URBD_VM_EXTRA_BINS=$ATTACH
"$VM/build-initramfs.sh" >/dev/null 2>"$T/build.err" || {
	rc=$?
	cat "$T/build.err" >&2
	[ $rc -eq 77 ] && skip "no guest image: $(grep -m1 SKIP "$T/build.err" | sed 's/.*SKIP: //')"
	fail "build-initramfs.sh failed ($rc)"
}

VOL_A=$((96 * 1024 * 1024))
VOL_B=$((40 * 1024 * 1024))
NVMF_PORT=$(free_port)
cat >"$T/guest-attach.sh" <<'GUEST'
#!/bin/sh
. /lib.sh
A=nqn.2026-11.io.urbd:vola
B=nqn.2026-11.io.urbd:volb
X="--traddr 10.0.2.2 --trsvcid $NVMF_PORT"
# ctrls NQN: how many controllers the kernel has for NQN
ctrls() { grep -lx "$1" /sys/class/nvme/nvme*/subsysnqn 2>/dev/null | wc -l; }
ctrl_hostnqn() { cat "$(dirname "$(grep -lx "$1" /sys/class/nvme/nvme*/subsysnqn | head -n1)")/hostnqn"; }
attach() { urbd-attach nvme "$@"; }

step "usage errors"
attach connect --nqn $A >/dev/null 2>&1; [ $? -eq 2 ] || gfail "connect without --traddr: want exit 2"
attach connect $X --nqn not-an-nqn >/dev/null 2>&1; [ $? -eq 2 ] || gfail "bad NQN: want exit 2"
attach frob --nqn $A >/dev/null 2>&1; [ $? -eq 2 ] || gfail "unknown verb: want exit 2"
attach find --nqn $A >/dev/null 2>&1; [ $? -eq 1 ] || gfail "find before connect: want exit 1"
# nothing listens on port 1 of the host: the kernel's connect fails, exit 1
attach connect --traddr 10.0.2.2 --trsvcid 1 --nqn $A --timeout-ms 2000 2>/tmp/refused
[ $? -eq 1 ] || gfail "connect to a closed port: want exit 1"
cat /tmp/refused
[ "$(ctrls $A)" = 0 ] || gfail "a controller left after a failed connect"

step "host identity from scratch"
rm -f /etc/nvme/hostnqn /etc/nvme/hostid
step "connect A"
da=$(attach connect -v $X --nqn $A) || gfail "connect A"
step "A is $da"
case $da in /dev/nvme*n*) ;; *) gfail "connect A printed '$da'" ;; esac
[ -b "$da" ] || gfail "$da is not a block device"
[ -s /etc/nvme/hostnqn ] && [ -s /etc/nvme/hostid ] || gfail "/etc/nvme/hostnqn or hostid not created"
nqn1=$(cat /etc/nvme/hostnqn)
id1=$(cat /etc/nvme/hostid)
step "hostnqn $nqn1 hostid $id1"
[ "$nqn1" = "nqn.2014-08.org.nvmexpress:uuid:$id1" ] || gfail "hostnqn and hostid disagree"
[ "$(ctrl_hostnqn $A)" = "$nqn1" ] || gfail "the controller's hostnqn is $(ctrl_hostnqn $A), not $nqn1"
sz=$(blockdev --getsize64 "$da")
[ "$sz" = "$VOL_A" ] || gfail "$da: $sz bytes, want $VOL_A"
[ "$(devsize "$da")" = "$VOL_A" ] || gfail "$da: sysfs size $(devsize "$da"), want $VOL_A"

step "connect A again"
da2=$(attach connect $X --nqn $A) || gfail "second connect A"
[ "$da2" = "$da" ] || gfail "second connect A gave $da2, want $da"
[ "$(ctrls $A)" = 1 ] || gfail "$(ctrls $A) controllers for A after two connects"
[ "$(cat /etc/nvme/hostnqn)" = "$nqn1" ] || gfail "hostnqn changed"
[ "$(cat /etc/nvme/hostid)" = "$id1" ] || gfail "hostid changed"

step "connect B"
db=$(attach connect $X --nqn $B) || gfail "connect B"
step "B is $db"
[ -b "$db" ] || gfail "$db is not a block device"
[ "$db" != "$da" ] || gfail "A and B share $da"
[ "$(blockdev --getsize64 "$db")" = "$VOL_B" ] || gfail "$db: $(blockdev --getsize64 "$db") bytes, want $VOL_B"
[ "$(ctrl_hostnqn $B)" = "$nqn1" ] || gfail "B's controller has hostnqn $(ctrl_hostnqn $B)"

step "find"
[ "$(attach find --nqn $A)" = "$da" ] || gfail "find A"
[ "$(attach find --nqn $B)" = "$db" ] || gfail "find B"

step "data through $da"
last=$((VOL_A / 4096 - 1))
dd if=/dev/urandom of=/tmp/pa bs=1M count=2 2>/dev/null
dd if=/dev/urandom of=/tmp/pl bs=4096 count=1 2>/dev/null
must dd if=/tmp/pa of="$da" bs=1M seek=3 oflag=direct 2>/dev/null
must dd if=/tmp/pl of="$da" bs=4096 seek=$last oflag=direct 2>/dev/null
dd if=/dev/urandom of=/tmp/pb bs=4096 count=4 2>/dev/null
must dd if=/tmp/pb of="$db" bs=4096 seek=0 oflag=direct 2>/dev/null
dd if="$da" of=/tmp/ra bs=1M skip=3 count=2 iflag=direct 2>/dev/null
cmp /tmp/pa /tmp/ra || gfail "A: 2 MiB at 3 MiB reads back different"
dd if="$da" of=/tmp/rl bs=4096 skip=$last count=1 iflag=direct 2>/dev/null
cmp /tmp/pl /tmp/rl || gfail "A: last block reads back different"

step "disconnect A"
must attach disconnect -v --nqn $A
i=0
while [ -e "$da" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
[ -e "$da" ] && gfail "$da still there after disconnect"
[ "$(ctrls $A)" = 0 ] || gfail "A still has a controller"
attach find --nqn $A >/dev/null 2>&1; [ $? -eq 1 ] || gfail "find A after disconnect: want exit 1"
[ -b "$db" ] || gfail "B's $db gone with A"
[ "$(attach find --nqn $B)" = "$db" ] || gfail "find B after A's disconnect"
dd if="$db" of=/tmp/rb bs=4096 count=4 iflag=direct 2>/dev/null
cmp /tmp/pb /tmp/rb || gfail "B reads back different after A's disconnect"
step "disconnect A again"
must attach disconnect --nqn $A

step "reconnect A: same host identity, data kept"
da3=$(attach connect $X --nqn $A) || gfail "reconnect A"
[ "$(ctrl_hostnqn $A)" = "$nqn1" ] || gfail "reconnect used hostnqn $(ctrl_hostnqn $A)"
[ "$(cat /etc/nvme/hostnqn)" = "$nqn1" ] || gfail "hostnqn changed on reconnect"
dd if="$da3" of=/tmp/ra3 bs=1M skip=3 count=2 iflag=direct 2>/dev/null
cmp /tmp/pa /tmp/ra3 || gfail "A reads back different after reconnect"

step "disconnect all"
must attach disconnect --nqn $A
must attach disconnect --nqn $B
[ "$(ctrls $A)$(ctrls $B)" = 00 ] || gfail "controllers left"
nvme list
gpass "urbd-attach: connect, idempotent connect, two volumes, find, data, disconnect, hostnqn"
GUEST

start_urbd --default-volume "vola:$VOL_A" --nvmf-listen "127.0.0.1:$NVMF_PORT"
"$CTL" -s "$T/control.sock" volume create volb "$VOL_B" >"$T/ctl.out" 2>&1 || {
	cat "$T/ctl.out" >&2
	fail "urbdctl volume create volb"
}
log "nvme-tcp target on 127.0.0.1:$NVMF_PORT: vola $VOL_A, volb $VOL_B bytes"
VM_LOG=$T/attach.console "$VM/run-guest.sh" "$T/guest-attach.sh" \
	NVMF_PORT="$NVMF_PORT" VOL_A="$VOL_A" VOL_B="$VOL_B" || {
	rc=$?
	[ $rc -eq 77 ] && skip "guest skipped: $(grep -a 'SKIP' "$T/attach.console" | tail -n1)"
	grep -a 'nvmf' "$URBD_LOG" | tail -n 30 >&2
	fail "guest (urbd-attach) failed"
}
assert_alive "after the guest's run"
if grep -E 'fatal transport error|illegal state' "$URBD_LOG" >"$T/bad"; then
	cat "$T/bad" >&2
	fail "urbd reported transport errors"
fi
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exit status $URBD_EXIT"
pass "urbd-attach nvme: connect, idempotent, two volumes, find, data, disconnect, hostnqn"
