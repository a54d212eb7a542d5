#!/usr/bin/env bash
# Faults and options of the kernel's NVMe/TCP initiator (nvme-tcp.ko +
# nvme-cli 2.3 in a QEMU guest, 1 vCPU) against urbd's NVMe/TCP target.
# Three guest runs; each guest script is written below into $T (busybox sh).
#
# Run "queues": connect twice, without and with --hdr-digest --data-digest,
#   each time asking for several I/O queues (-i 2 -W 1 -P 1: the kernel caps
#   -i at the CPU count, 1 here, but adds write and poll queue sets, so
#   writes and reads use different TCP connections). Guest: queue_count and
#   blk-mq hardware queues >= 3 I/O queues; O_DIRECT 4 KiB patterns at
#   blocks 0, 1, 777, 32768 and the last LBA, a 1 MiB (MDTS) and a 3 MiB
#   transfer, all read back and compared; the digest run also re-reads the
#   plain run's data. Host: one controller per connect, the I/O queue count
#   the guest reported, each queue's ICReq with/without "header data"
#   digests (debug log), no transport errors, every queue closed.
# Run "crash": ext4 on the namespace, fsync'd files written with their
#   checksums, urbd SIGKILLed mid-write and restarted on the same NVMe/TCP
#   port and store; connect used --ctrl-loss-tmo=60 --reconnect-delay=1, so
#   the kernel reconnects by itself (no I/O error may surface). Guest:
#   nvme0 state leaves "live" and comes back, the kernel logs "Successfully
#   reconnected", writes continue, clean umount, e2fsck -fn clean, every
#   fsync'd file's checksum matches. Host: the restarted urbd logs a new
#   controller with its I/O queue and the unclean-shutdown warning.
# Run "kato": connect with --keep-alive-tmo=5; urbd is SIGSTOPped for 8 s
#   (> KATO) while an O_DIRECT write is issued, then SIGCONT. Host: the old
#   controller is torn down and freed (keep-alive expiry, or its admin queue
#   closing) and a new controller connects. Guest: state leaves "live" and
#   returns, the write issued during the stop completes and reads back, a
#   fresh pattern reads back.
# Env: URBD_VM_RUNS (default "queues crash kato"), KEEP_TMP=1.
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
NVMF_PORT=$(free_port)
RUNS=" ${URBD_VM_RUNS:-queues crash kato} "
declare -A QN
BAD_RE='fatal transport error|illegal state|H2CTermReq|out of memory'

# ---- guest scripts ---------------------------------------------------------
# common part, prepended to each guest script
cat >"$T/common.sh" <<'GUEST'
#!/bin/sh
. /lib.sh
# every nvme kernel message (reconnects are KERN_INFO) on the console
echo 7 >/proc/sys/kernel/printk
NQN=nqn.2026-11.io.urbd:demo
A="-t tcp -a 10.0.2.2 -s $NVMF_PORT -n $NQN"
LAST=$((VOL_BYTES / 4096 - 1))
wait_dev() {
	i=0
	while [ ! -b /dev/nvme0n1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	[ -b /dev/nvme0n1 ] || gfail "no /dev/nvme0n1 after connect"
}
state() { cat /sys/class/nvme/nvme0/state 2>/dev/null || echo gone; }
# poller: every change of nvme0's state, timestamped, in /tmp/states
start_poller() {
	: >/tmp/states
	(
		prev=
		while :; do
			s=$(state)
			if [ "$s" != "$prev" ]; then
				echo "$(cut -d' ' -f1 /proc/uptime) $s" >>/tmp/states
				step "nvme0 state: $s"
				prev=$s
			fi
			sleep 0.1
		done
	) &
	POLLER=$!
}
# saw_reconnect: the poller saw a state other than live, and live after it
saw_reconnect() {
	awk '$2 != "live" { bad = 1 } bad && $2 == "live" { ok = 1 } END { exit !ok }' /tmp/states
}
# wpat NAME BLOCK [COUNT]: random 4 KiB blocks to BLOCK, kept in /tmp/NAME
wpat() {
	dd if=/dev/urandom of=/tmp/$1 bs=4096 count=${3:-1} 2>/dev/null
	dd if=/tmp/$1 of=/dev/nvme0n1 bs=4096 seek=$2 count=${3:-1} oflag=direct 2>/tmp/dd.err ||
		gfail "write $1 at block $2: $(tail -n1 /tmp/dd.err)"
}
# rpat NAME BLOCK [COUNT]: reads back and compares
rpat() {
	dd if=/dev/nvme0n1 of=/tmp/r.$1 bs=4096 skip=$2 count=${3:-1} iflag=direct 2>/tmp/dd.err ||
		gfail "read $1 at block $2: $(tail -n1 /tmp/dd.err)"
	cmp /tmp/$1 /tmp/r.$1 >/dev/null || gfail "$1 at block $2 (${3:-1} blocks) reads back different"
}
disconnect() {
	must nvme disconnect -n $NQN
	i=0
	while [ -e /sys/class/nvme/nvme0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
}
GUEST

{
	cat "$T/common.sh"
	cat <<'GUEST'
for mode in plain digest; do
	DG=
	[ $mode = digest ] && DG="--hdr-digest --data-digest"
	step "$mode: nvme connect -i 2 -W 1 -P 1 $DG"
	must nvme connect $A -i 2 -W 1 -P 1 $DG
	wait_dev
	qc=$(cat /sys/class/nvme/nvme0/queue_count 2>/dev/null || echo '?')
	# the kernel's own count ("creating N I/O queues", "mapped D/R/P
	# default/read/poll queues"); with multipath built in, nvme0n1 is the
	# head node and the blk-mq queues hang off the hidden nvme0c0n1
	created=$(dmesg | sed -n 's/.*nvme nvme0: creating \([0-9]*\) I\/O queues.*/\1/p' | tail -n1)
	mapped=$(dmesg | sed -n 's/.*nvme nvme0: mapped \([0-9/]*\) default.*/\1/p' | tail -n1)
	hw=$(ls -d /sys/block/nvme0c*n1/mq/* /sys/block/nvme0n1/mq/* 2>/dev/null | wc -l)
	step "$mode: queue_count $qc (admin + I/O), kernel created ${created:-?} I/O queues, mapped ${mapped:-?} default/read/poll, $hw blk-mq hctx, cntlid $(cat /sys/class/nvme/nvme0/cntlid)"
	echo "URBD-VM-QUEUES $mode $((qc - 1))"
	[ "$qc" != '?' ] && [ "$qc" -ge 4 ] || gfail "$mode: queue_count $qc, wanted admin + 3 I/O queues"
	[ "${created:-0}" -eq $((qc - 1)) ] || gfail "$mode: the kernel created ${created:-no} I/O queues, queue_count says $((qc - 1))"
	[ "$mapped" = 1/1/1 ] || gfail "$mode: queues mapped ${mapped:-?} default/read/poll, want 1/1/1"
	for blk in 0 1 777 32768 $LAST; do wpat $mode.$blk $blk; done
	b=0
	[ $mode = digest ] && b=20000 # its own region for the multi-block patterns
	wpat $mode.mdts $((b + 1025)) 256 # 1 MiB = MDTS, not 1 MiB aligned
	wpat $mode.big $((b + 4096)) 768  # 3 MiB: split by the block layer
	wpat $mode.odd $((b + 9001)) 3    # 12 KiB: over the 8 KiB in-capsule limit
	for blk in 0 1 777 32768 $LAST; do rpat $mode.$blk $blk; done
	rpat $mode.mdts $((b + 1025)) 256
	rpat $mode.big $((b + 4096)) 768
	rpat $mode.odd $((b + 9001)) 3
	if [ $mode = digest ]; then
		# what the plain connection wrote is still there
		rpat plain.mdts 1025 256
		rpat plain.big 4096 768
		rpat plain.odd 9001 3
	fi
	step "$mode: patterns at 0 1 777 32768 $LAST, 1 MiB, 3 MiB, 12 KiB read back"
	disconnect
	[ -e /sys/class/nvme/nvme0 ] && gfail "$mode: nvme0 still there after disconnect"
	mark "done-$mode"
done
gpass "several I/O queues, with and without digests: patterns incl. the last LBA"
GUEST
} >"$T/guest-queues.sh"

{
	cat "$T/common.sh"
	cat <<'GUEST'
must nvme connect $A --ctrl-loss-tmo=60 --reconnect-delay=1
wait_dev
step "connected, cntlid $(cat /sys/class/nvme/nvme0/cntlid)"
must mkfs.ext4 -F -q -E lazy_itable_init=0,lazy_journal_init=0 /dev/nvme0n1
mkdir -p /mnt/v
must mount -t ext4 /dev/nvme0n1 /mnt/v
mkdir -p /mnt/v/d
start_poller
: >/tmp/durable
n=0 after=0
t0=$(cut -d. -f1 /proc/uptime)
while [ $(($(cut -d. -f1 /proc/uptime) - t0)) -lt "${WRITE_SECS:-40}" ]; do
	kb=$((($(od -An -N2 -tu2 /dev/urandom) % 32 + 1) * 8))
	head -c $((kb * 1024)) /dev/urandom >/tmp/cur
	dd if=/tmp/cur of=/mnt/v/d/f$n bs=64k conv=fsync 2>/tmp/dd.err ||
		gfail "write of f$n failed (after $(wc -l </tmp/durable) fsync'd files): $(tail -n1 /tmp/dd.err)"
	echo "$(sha256sum </tmp/cur | cut -d' ' -f1)  d/f$n" >>/tmp/durable
	n=$((n + 1))
	[ $n -eq 8 ] && mark writing
	if saw_reconnect; then
		after=$((after + 1))
		[ $after -ge 8 ] && break
	fi
done
kill $POLLER
cat /tmp/states
saw_reconnect || gfail "nvme0 never left and returned to live in ${WRITE_SECS:-40} s ($n files)"
step "$n fsync'd files, $after after the reconnect; cntlid now $(cat /sys/class/nvme/nvme0/cntlid)"
dmesg | grep -i 'nvme' | tail -n 20
dmesg | grep -qiE 'I/O error|Buffer I/O|EXT4-fs error' && {
	dmesg | grep -iE 'I/O error|Buffer I/O|EXT4-fs error' | head
	gfail "I/O or ext4 errors in the kernel log across the reconnect"
}
must umount /mnt/v
e2fsck -fn /dev/nvme0n1 >/tmp/fsck 2>&1 || {
	cat /tmp/fsck
	gfail "e2fsck -fn not clean after a clean umount"
}
must mount -t ext4 /dev/nvme0n1 /mnt/v
(cd /mnt/v && sha256sum -c -s /tmp/durable) || {
	(cd /mnt/v && sha256sum -c /tmp/durable 2>&1 | grep -v ': OK$' | head -n 20)
	gfail "fsync'd files lost or changed across kill -9 + reconnect"
}
must umount /mnt/v
disconnect
gpass "all $n fsync'd files intact after kill -9, restart and the kernel's own reconnect"
GUEST
} >"$T/guest-crash.sh"

{
	cat "$T/common.sh"
	cat <<'GUEST'
must nvme connect $A --keep-alive-tmo=5 --ctrl-loss-tmo=60 --reconnect-delay=1
wait_dev
step "connected, cntlid $(cat /sys/class/nvme/nvme0/cntlid), kato 5 s"
wpat k.first 100 4
rpat k.first 100 4
start_poller
mark stop-now
sleep 2
# issued while urbd is stopped: completes only after the reconnect
dd if=/dev/urandom of=/tmp/k.during bs=4096 count=16 2>/dev/null
(dd if=/tmp/k.during of=/dev/nvme0n1 bs=4096 seek=5000 count=16 oflag=direct 2>/tmp/dd.during; echo $? >/tmp/dd.rc) &
DDP=$!
i=0
until saw_reconnect || [ $i -ge 450 ]; do sleep 0.1; i=$((i + 1)); done
cat /tmp/states
saw_reconnect || gfail "nvme0 did not leave and return to live within 45 s"
i=0
while [ ! -s /tmp/dd.rc ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
[ -s /tmp/dd.rc ] || gfail "the write issued during the stop did not finish 15 s after the reconnect"
[ "$(cat /tmp/dd.rc)" = 0 ] || gfail "the write issued during the stop failed: $(cat /tmp/dd.during)"
wait $DDP
kill $POLLER
step "cntlid now $(cat /sys/class/nvme/nvme0/cntlid)"
rpat k.during 5000 16
rpat k.first 100 4
wpat k.after 7000 8
rpat k.after 7000 8
dmesg | grep -i 'nvme' | tail -n 20
disconnect
gpass "keep-alive expiry during SIGSTOP: reconnected, I/O issued during the stop completed, I/O works"
GUEST
} >"$T/guest-kato.sh"

# guest_bg NAME KV...: guest run in the background, console $T/NAME.console
guest_bg() {
	local name=$1
	shift
	VM_TIMEOUT=${VM_TIMEOUT:-110} VM_LOG=$T/$name.console \
		"$VM/run-guest.sh" "$T/guest-$name.sh" NVMF_PORT="$NVMF_PORT" VOL_BYTES="$VOL" "$@" &
	GUEST_PID=$!
	on_exit "kill -TERM $GUEST_PID"
	GUEST_T0=$(date +%s)
}
guest_wait() { # guest_wait NAME: waits for the guest; fails the test on error
	local name=$1 rc=0
	wait "$GUEST_PID" || rc=$?
	log "guest $name: exit $rc in $(($(date +%s) - GUEST_T0)) s"
	grep -a 'guest:' "$T/$name.console" | tr -d '\r' >&2
	if [ $rc -ne 0 ]; then
		[ $rc -eq 77 ] && skip "guest skipped: $(grep -a 'SKIP' "$T/$name.console" | tail -n1)"
		grep -a 'nvmf' "$URBD_LOG" | tail -n 30 >&2
		fail "guest run $name failed"
	fi
}
urbd_nvmf() { start_urbd --default-volume "demo:$VOL" --nvmf-listen "127.0.0.1:$NVMF_PORT" --log-level debug; }
no_bad_lines() { # no_bad_lines LOG WHAT
	if grep -E "$BAD_RE" "$1" >"$T/bad"; then
		cat "$T/bad" >&2
		fail "urbd reported transport errors ($2)"
	fi
}

# ---- run 1: several I/O queues, digests off and on ------------------------
if [[ $RUNS == *" queues "* ]]; then
	URBD_STORE=$T/store-queues
	urbd_nvmf
	log "run queues: -i 2 -W 1 -P 1, without and with header+data digests"
	guest_bg queues
	guest_wait queues
	assert_alive "after the queues run"
	wait_until 5 test "$(log_count 'controller [0-9]+ .* freed')" -ge 2 || true
	for mode in plain digest; do
		q=$(sed -n "s/.*URBD-VM-QUEUES $mode \([0-9]*\).*/\1/p" "$T/queues.console" | tr -d '\r')
		[ -n "$q" ] || fail "the guest did not report its $mode queue count"
		QN[${mode}]=$q
	done
	ctrls=$(log_count "controller [0-9]+ for host .* on volume demo")
	ioq=$(log_count 'I/O queue [0-9]+ of controller')
	want_ioq=$((QN[plain] + QN[digest]))
	ic_dg=$(log_count 'ICReq hpda [0-9]+ digests header data$')
	ic_plain=$(log_count 'ICReq hpda [0-9]+ digests$')
	freed=$(log_count 'controller [0-9]+ .* freed')
	log "urbd log: $ctrls controllers, $ioq I/O queue connects (guest: ${QN[plain]} + ${QN[digest]}), ICReq $ic_plain plain / $ic_dg with digests, $freed freed"
	[ "$ctrls" -eq 2 ] || fail "urbd logged $ctrls controllers for 2 connects"
	[ "$ioq" -eq "$want_ioq" ] || fail "urbd logged $ioq I/O queue connects; the guest had $want_ioq"
	[ "$ic_plain" -eq $((QN[plain] + 1)) ] ||
		fail "$ic_plain ICReqs without digests, want $((QN[plain] + 1)) (admin + I/O queues)"
	[ "$ic_dg" -eq $((QN[digest] + 1)) ] ||
		fail "$ic_dg ICReqs with header+data digests, want $((QN[digest] + 1))"
	[ "$freed" -eq 2 ] || fail "$freed of 2 controllers freed after the disconnects"
	for q in 2 3; do
		grep -qE "I/O queue $q of controller" "$URBD_LOG" || fail "no I/O queue $q in the urbd log"
	done
	no_bad_lines "$URBD_LOG" "queues run"
	grep -E 'closing:' "$URBD_LOG" | sed 's/.*closing: //' | sort | uniq -c >&2
	stop_urbd
	[ "$URBD_EXIT" = 0 ] || fail "urbd exit status $URBD_EXIT after the queues run"
fi

# ---- run 2: kill -9 while ext4 takes fsync'd files ------------------------
if [[ $RUNS == *" crash "* ]]; then
	URBD_STORE=$T/store-crash
	urbd_nvmf
	LOG1=$URBD_LOG
	log "run crash: kill -9 urbd during fsync'd writes, restart on nvmf port $NVMF_PORT"
	guest_bg crash WRITE_SECS=45
	wait_until 60 grep -qsa 'URBD-VM-MARK writing' "$T/crash.console" ||
		fail "the guest never started writing (console $T/crash.console)"
	sleep "0.$((RANDOM % 9 + 1))"
	grep -qE 'I/O queue 1 of controller' "$LOG1" || fail "first urbd: no I/O queue connect"
	kill9_urbd
	log "urbd killed with SIGKILL $(($(date +%s) - GUEST_T0)) s after boot"
	sleep 1
	urbd_nvmf
	guest_wait crash
	assert_alive "after the crash run"
	grep -qa 'Successfully reconnected' "$T/crash.console" ||
		fail "the guest kernel never logged 'Successfully reconnected'"
	grep -a 'nvme nvme0' "$T/crash.console" | tr -d '\r' | tail -n 8 >&2
	assert_log 'controller [0-9]+ for host .* on volume demo'
	assert_log 'I/O queue 1 of controller'
	assert_log 'not shut down cleanly'
	no_bad_lines "$URBD_LOG" "restarted urbd, crash run"
	stop_urbd
	[ "$URBD_EXIT" = 0 ] || fail "urbd exit status $URBD_EXIT after the crash run"
fi

# ---- run 3: keep-alive expiry while urbd is stopped -----------------------
if [[ $RUNS == *" kato "* ]]; then
	URBD_STORE=$T/store-kato
	urbd_nvmf
	log "run kato: --keep-alive-tmo=5, urbd SIGSTOPped for 8 s"
	guest_bg kato
	wait_until 60 grep -qsa 'URBD-VM-MARK stop-now' "$T/kato.console" ||
		fail "the guest never got to stop-now (console $T/kato.console)"
	c0=$(sed -nE 's/.*controller ([0-9]+) for host .* on volume demo .*kato ([0-9]+) ms.*/\1 \2/p' "$URBD_LOG" | tail -n1)
	[ -n "$c0" ] || fail "no controller line in the urbd log"
	# shellcheck disable=SC2086
	set -- $c0 # two words: cntlid, kato
	CNT0=$1
	[ "$2" = 5000 ] || fail "controller $CNT0 has kato $2 ms, the guest asked for 5000"
	kill -STOP "$URBD_PID"
	on_exit "kill -CONT $URBD_PID"
	log "urbd pid $URBD_PID stopped (controller $CNT0)"
	sleep 8
	kill -CONT "$URBD_PID"
	log "urbd pid $URBD_PID continued"
	guest_wait kato
	assert_alive "after SIGSTOP/SIGCONT"
	assert_log "controller $CNT0 \\(.*\\) freed"
	n=$(log_count 'controller [0-9]+ for host .* on volume demo')
	[ "$n" -ge 2 ] || fail "no new controller after the keep-alive expiry ($n controller lines)"
	why=$(grep -E "qid 0 volume demo: closing:" "$URBD_LOG" | head -n1 | sed 's/.*closing: //')
	log "urbd: old admin queue closed: $why"
	grep -E 'closing:|freed|controller [0-9]+ for host' "$URBD_LOG" | sed 's/^.*nvmf[^ ]* //' >&2
	grep -a 'nvme nvme0' "$T/kato.console" | tr -d '\r' | tail -n 10 >&2
	grep -qa 'Successfully reconnected' "$T/kato.console" ||
		fail "the guest kernel never logged 'Successfully reconnected'"
	no_bad_lines "$URBD_LOG" "kato run"
	stop_urbd
	[ "$URBD_EXIT" = 0 ] || fail "urbd exit status $URBD_EXIT after the kato run"
fi
pass "kernel nvme-tcp faults: runs${RUNS% } passed"
