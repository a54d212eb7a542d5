#!/usr/bin/env bash
# urbd-attach nbd (csi/attach_nbd*.c: userspace NBD handshake, then the
# kernel's nbd driver by generic netlink) in a QEMU guest against urbd's
# NBD server on the host, two volumes. The guest (guest/attach-nbd.sh)
# checks devices, sizes, backend identifiers, idempotency, data and the
# error paths; here the host checks urbd's side: exactly the connections
# the guest's connects should have made (none for the idempotent connect
# and for find), the unknown export refused, every kernel connection
# closed with NBD_CMD_DISC, and no transport errors.
# urbd-attach is copied into the guest by build-initramfs.sh
# (URBD_VM_EXTRA_BINS).
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
start_urbd --default-volume "vola:$VOL_A"
"$CTL" -s "$T/control.sock" volume create volb "$VOL_B" >"$T/ctl.out" 2>&1 || {
	cat "$T/ctl.out" >&2
	fail "urbdctl volume create volb"
}
log "NBD on 127.0.0.1:$URBD_PORT: vola $VOL_A, volb $VOL_B bytes"
VM_LOG=$T/attach-nbd.console "$VM/run-guest.sh" "$VM/guest/attach-nbd.sh" \
	NBD_PORT="$URBD_PORT" VOL_A="$VOL_A" VOL_B="$VOL_B" || {
	rc=$?
	[ $rc -eq 77 ] && skip "guest skipped: $(grep -a 'SKIP' "$T/attach-nbd.console" | tail -n1)"
	grep -a '\[nbd\]' "$URBD_LOG" | tail -n 30 >&2
	fail "guest (urbd-attach nbd) failed"
}
assert_alive "after the guest's run"

# count REGEX: matching lines in urbd's log
count() { grep -cE -- "$1" "$URBD_LOG"; }
# vola: connect with 2 connections, then 1 on reconnect; the idempotent
# connect and find open none. volb: 1 + 1.
[ "$(count 'serving volume vola ')" = 3 ] || fail "vola: $(count 'serving volume vola ') connections served, want 3"
[ "$(count 'serving volume volb ')" = 2 ] || fail "volb: $(count 'serving volume volb ') connections served, want 2"
[ "$(count 'NBD_OPT_GO refused: no such export')" = 1 ] || fail "the unknown export was not refused once"
[ "$(count 'closing: client sent NBD_CMD_DISC')" -ge 5 ] ||
	fail "only $(count 'closing: client sent NBD_CMD_DISC') connections ended with NBD_CMD_DISC, want 5"
if grep -E 'bad (request|option) magic|protocol error' "$URBD_LOG" >"$T/bad"; then
	cat "$T/bad" >&2
	fail "urbd reported protocol errors"
fi
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exit status $URBD_EXIT"
pass "urbd-attach nbd: netlink connect, idempotent, find, two volumes, data, disconnect, unknown export"
