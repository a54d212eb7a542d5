#!/usr/bin/env bash
# The Linux kernel's own NBD client (nbd.ko + Debian's nbd-client, in a
# QEMU guest booting Debian's cloud kernel) against urbd on the host.
#
# Run 1 (guest/nbd-fs.sh): raw O_DIRECT patterns at several offsets incl.
#   the last block, ext4 with a tree of random files, e2fsck -fn clean,
#   checksums after disconnect/reconnect. Host side: urbd's log shows each
#   kernel connection served and closed by NBD_CMD_DISC, nothing else.
# Run 2 (guest/nbd-crash.sh): urbd is SIGKILLed while the guest writes
#   fsync'd files, restarted on the same port and store; after reconnecting
#   and e2fsck, every fsync'd file is intact.
# Env: URBD_VM_CONNS (nbd-client -C for run 1, default 2),
#      URBD_VM_NBD_TIMEOUT (nbd-client -t for run 2, default 10; 0 = none,
#      which hangs the guest when a request is in flight at the kill),
#      URBD_VM_RUNS (default "fs crash").
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/../integration/lib.sh"

VM=$(cd "$(dirname "$0")" && pwd)
require_cmd "${QEMU:-qemu-system-x86_64}"
# builds the guest once (cached); its exit 77 says why it cannot be built
"$VM/build-initramfs.sh" >/dev/null 2>"$T/build.err" || {
	rc=$?
	cat "$T/build.err" >&2
	[ $rc -eq 77 ] && skip "no guest image: $(grep -m1 SKIP "$T/build.err" | sed 's/.*SKIP: //')"
	fail "build-initramfs.sh failed ($rc)"
}

# start_urbd picks a free port; the crash run restarts on the same one
FIXED_PORT=
eval "orig_$(declare -f free_port)"
free_port() { if [ -n "$FIXED_PORT" ]; then echo "$FIXED_PORT"; else orig_free_port; fi; }

VOL=$((256 * 1024 * 1024))
CONNS=${URBD_VM_CONNS:-2}
SERVE_RE='serving volume demo'
DISC_RE='closing: client sent NBD_CMD_DISC'

guest() { # guest NAME SCRIPT KV...: one guest run, console in $T/NAME.console
	local name=$1 script=$2 t0 rc
	shift 2
	t0=$(date +%s)
	VM_LOG=$T/$name.console "$VM/run-guest.sh" "$VM/guest/$script" "$@"
	rc=$?
	log "guest $name: exit $rc in $(($(date +%s) - t0)) s"
	return $rc
}

RUNS=" ${URBD_VM_RUNS:-fs crash} "

# --- run 1: raw + ext4 + xfs --------------------------------------------
if [[ $RUNS == *" fs "* ]]; then
start_urbd --default-volume "demo:$VOL"
log "run 1: raw I/O and ext4 on /dev/nbd0, $CONNS connection(s)"
guest fs nbd-fs.sh NBD_PORT="$URBD_PORT" NBD_CONNS="$CONNS" VOL_BYTES="$VOL" || {
	rc=$?
	[ $rc -eq 77 ] && skip "guest skipped: $(grep -a 'SKIP' "$T/fs.console" | tail -n1)"
	fail "guest run 1 (raw + ext4) failed"
}
assert_alive "after the kernel client's run"
# the guest connects three times (raw writes; raw reads + mkfs + files;
# e2fsck + remount), CONNS sockets each, each ended by NBD_CMD_DISC
want=$((3 * CONNS))
wait_until 5 test "$(log_count "$DISC_RE")" -ge "$want" || true
served=$(log_count "$SERVE_RE")
disc=$(log_count "$DISC_RE")
closed=$(log_count 'closing:')
log "urbd log: $served sockets served, $disc closed by NBD_CMD_DISC, $closed closed in all"
[ "$served" -eq "$want" ] || fail "urbd served $served kernel sockets, expected $want"
[ "$disc" -eq "$want" ] || fail "only $disc of $want kernel sockets ended with NBD_CMD_DISC"
[ "$closed" -eq "$disc" ] || {
	grep 'closing:' "$URBD_LOG" | grep -v 'NBD_CMD_DISC' >&2
	fail "a kernel socket closed other than by NBD_CMD_DISC"
}
if grep -E '\b(warn|WARN|err|ERR)\b|protocol error|refused' "$URBD_LOG" >"$T/bad" 2>/dev/null; then
	cat "$T/bad" >&2
	fail "urbd logged warnings/errors while serving the kernel client"
fi
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exit status $URBD_EXIT after run 1"
fi

# --- run 2: kill -9 while the guest writes fsync'd files ---------------
if [[ $RUNS == *" crash "* ]]; then
rm -rf "$URBD_STORE"
start_urbd --default-volume "demo:$VOL"
FIXED_PORT=$URBD_PORT
log "run 2: kill -9 urbd during fsync'd writes, restart on port $FIXED_PORT"
VM_LOG=$T/crash.console "$VM/run-guest.sh" "$VM/guest/nbd-crash.sh" \
	NBD_PORT="$URBD_PORT" WRITE_SECS=40 NBD_TIMEOUT="${URBD_VM_NBD_TIMEOUT:-10}" &
GUEST_PID=$!
on_exit "kill -TERM $GUEST_PID"
t0=$(date +%s)
wait_until 60 grep -qsa 'URBD-VM-MARK writing' "$T/crash.console" ||
	fail "the guest never started writing (console $T/crash.console)"
sleep "0.$((RANDOM % 9 + 1))"
written=$(grep -ac . "$T/crash.console" || true)
kill9_urbd
log "urbd killed with SIGKILL $(($(date +%s) - t0)) s after boot"
sleep 1
start_urbd --default-volume "demo:$VOL"
[ "$URBD_PORT" = "$FIXED_PORT" ] || fail "restarted on port $URBD_PORT, not $FIXED_PORT"
rc=0
wait "$GUEST_PID" || rc=$?
log "guest crash: exit $rc in $(($(date +%s) - t0)) s"
grep -a 'guest:' "$T/crash.console" | tr -d '\r' >&2
[ $rc -eq 0 ] || fail "guest run 2 (kill -9 during fsync'd writes) failed"
grep -qa 'io error seen: 1' "$T/crash.console" ||
	log "note: the guest saw no I/O error from the kill (console lines $written)"
assert_alive "after the crash run"
# the restarted daemon served the reconnect, which ended with NBD_CMD_DISC
[ "$(log_count "$SERVE_RE")" -ge 1 ] || fail "the restarted urbd served no kernel connection"
assert_log "$DISC_RE"
assert_log 'not shut down cleanly'
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exit status $URBD_EXIT after run 2"
fi
pass "kernel nbd client: runs${RUNS% } passed"
