#!/usr/bin/env bash
# run-guest.sh TEST_SCRIPT [NAME=VALUE...]
#
# Boots the VM test guest (build-initramfs.sh) with TEST_SCRIPT as its
# /test.sh, tests/vm/guest/lib.sh as /lib.sh, and NAME=VALUE pairs exported
# to it (from /test.env). Exit 0 pass, 1 fail, 77 skip (the guest script's
# own 0/1/77, or 77 when no guest can be built or QEMU is missing).
#
# The guest's status reaches us twice: as QEMU's exit status through
# isa-debug-exit ((byte << 1) | 1: 33 pass, 35 fail, 37 skip) and as the
# console line "URBD-VM-RESULT rc=N"; both must agree when both exist.
#
# Env: VM_LOG      console log file (default: a temp file, printed on failure)
#      VM_TIMEOUT  seconds before QEMU is killed (default 120)
#      VM_ACCEL    kvm | tcg | auto (default auto: KVM only if a probe boot
#                  under KVM worked; the verdict is cached per host kernel,
#                  QEMU version and guest)
#      VM_MEM      guest MiB (default 1024)
#      VM_QUIET=1  do not copy the console to stderr when the guest fails
# Prints "vm: accel X, boot N s, total N s" on stderr.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${URBD_VM_CACHE:-$root/build/vm-cache}

say() { printf 'vm: %s\n' "$*" >&2; }

[ $# -ge 1 ] || {
	echo "usage: $0 TEST_SCRIPT [NAME=VALUE...]" >&2
	exit 2
}
script=$1
shift
[ -f "$script" ] || {
	say "no such guest script: $script"
	exit 1
}
for kv in "$@"; do
	[[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || {
		say "bad NAME=VALUE: $kv"
		exit 2
	}
done

QEMU=${QEMU:-qemu-system-x86_64}
command -v "$QEMU" >/dev/null 2>&1 || {
	say "SKIP: $QEMU not installed (apt qemu-system-x86)"
	exit 77
}

out=$("$here/build-initramfs.sh")
rc=$?
[ $rc -eq 0 ] || {
	[ $rc -eq 77 ] && say "SKIP: no guest image (see above)"
	exit $rc
}
KERNEL=$(sed -n 's/^KERNEL=//p' <<<"$out")
INITRD=$(sed -n 's/^INITRD=//p' <<<"$out")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/urbd-vm.XXXXXX")
QEMU_PID=
# shellcheck disable=SC2317 # run by the trap
cleanup() {
	if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill -KILL "$QEMU_PID" 2>/dev/null
		wait "$QEMU_PID" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
log=${VM_LOG:-$tmp/console.log}

# The per-run cpio, appended to the cached one (the kernel unpacks
# concatenated archives in order): /test.sh, /lib.sh, /test.env.
mkovl() { # mkovl DIR SCRIPT KV...: DIR/initrd, the cached one + overlay
	local d=$1 s=$2 kv
	shift 2
	mkdir -p "$d/ovl"
	cp "$s" "$d/ovl/test.sh"
	cp "$here/guest/lib.sh" "$d/ovl/lib.sh"
	: >"$d/ovl/test.env"
	for kv in "$@"; do
		printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}" >>"$d/ovl/test.env"
	done
	chmod 755 "$d/ovl/test.sh"
	(cd "$d/ovl" && find . | LC_ALL=C sort | busybox_cpio -o -H newc 2>/dev/null) >"$d/overlay.cpio"
	# The kernel reads an uncompressed cpio only at a 4-byte aligned offset
	# (else it takes it for a compressed one: "invalid magic at start of
	# compressed archive"); zeros between archives are skipped.
	local sz pad
	sz=$(stat -c %s "$INITRD")
	pad=$(((512 - sz % 512) % 512))
	{
		cat "$INITRD"
		head -c "$pad" /dev/zero
		cat "$d/overlay.cpio"
	} >"$d/initrd"
}
busybox_cpio() {
	if command -v cpio >/dev/null 2>&1; then
		cpio --quiet "$@"
	else
		# Debian has no cpio by default; the guest's static busybox runs here too
		"$(dirname "$INITRD")/busybox" cpio "$@"
	fi
}

# boot LOG TIMEOUT ACCEL KV...: boots the guest; sets QRC (QEMU's status,
# 124 on timeout), BOOT_S and TOTAL_S
boot() {
	local blog=$1 limit=$2 accel=$3 dir cpu n t0 now
	shift 3
	dir=$(mktemp -d "$tmp/run.XXXXXX")
	mkovl "$dir" "$script" "$@" || return 1
	if [ "$accel" = kvm ]; then
		cpu=(-accel kvm -cpu host)
	else
		# plain "-cpu max" crashes the guest in ext4 writeback on QEMU 7.2 TCG
		# shellcheck disable=SC2054 # commas belong to -cpu's value
		cpu=(-accel tcg -cpu max,-cx16,la57=off)
	fi
	t0=$(date +%s.%N)
	"$QEMU" "${cpu[@]}" -nographic -m "${VM_MEM:-1024}" -smp 1 -no-reboot \
		-kernel "$KERNEL" -initrd "$dir/initrd" \
		-append "console=ttyS0 quiet panic=-1 ${VM_APPEND:-}" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile= \
		</dev/null >"$blog" 2>&1 &
	QEMU_PID=$!
	QRC=124
	BOOT_S=
	for ((n = 0; n < limit * 10; n++)); do
		if ! kill -0 "$QEMU_PID" 2>/dev/null; then
			wait "$QEMU_PID"
			QRC=$?
			break
		fi
		if [ -z "$BOOT_S" ] && grep -q 'vm-init: up' "$blog" 2>/dev/null; then
			now=$(date +%s.%N)
			BOOT_S=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
		fi
		sleep 0.1
	done
	if [ "$QRC" -eq 124 ]; then
		say "guest still running after ${limit} s: killing QEMU pid $QEMU_PID"
		kill -KILL "$QEMU_PID" 2>/dev/null
		wait "$QEMU_PID" 2>/dev/null
	fi
	QEMU_PID=
	now=$(date +%s.%N)
	TOTAL_S=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
	[ -n "$BOOT_S" ] || BOOT_S='?'
	# the guest's own clock at /init's "up" line: kernel + module loading
	GUEST_UP=$(sed -n 's/.*vm-init: up \([0-9.]*\) s.*/\1/p' "$blog" | head -n1)
	rm -rf "$dir"
}

# KVM only when a guest really ran under it: /dev/kvm can exist and still
# fail (an emulated kvm_pvm), and then TCG is the honest choice.
pick_accel() {
	local want=${VM_ACCEL:-auto} stamp f v
	case $want in kvm | tcg)
		echo "$want"
		return
		;;
	esac
	if [ ! -w /dev/kvm ]; then
		echo tcg
		return
	fi
	stamp=$({
		uname -r
		"$QEMU" --version | head -n1
		echo "$KERNEL"
	} | sha256sum | cut -c1-16)
	f=$cache/kvm-probe.$stamp
	if [ -f "$f" ]; then
		cat "$f"
		return
	fi
	local saved=$script
	script=$tmp/probe.sh
	printf '#!/bin/sh\necho kvm-probe-ok\nexit 0\n' >"$script"
	boot "$tmp/probe.log" 30 kvm
	script=$saved
	if [ "$QRC" -eq 33 ] && grep -q kvm-probe-ok "$tmp/probe.log"; then v=kvm; else v=tcg; fi
	say "KVM probe: QEMU exit $QRC -> $v (cached in $f)"
	echo "$v" >"$f"
	echo "$v"
}

accel=$(pick_accel)
boot "$log" "${VM_TIMEOUT:-120}" "$accel" "$@"

guest_rc=$(sed -n 's/.*URBD-VM-RESULT rc=\([0-9]*\).*/\1/p' "$log" | tail -n1 | tr -d '\r')
case $QRC in
33) rc=0 ;;
35) rc=1 ;;
37) rc=77 ;;
124)
	say "FAIL: timed out"
	rc=1
	;;
*)
	# no isa-debug-exit byte (no vm-exit helper, or a panic/poweroff)
	case $guest_rc in
	0) rc=0 ;;
	77) rc=77 ;;
	"")
		say "FAIL: guest gave no status (QEMU exit $QRC)"
		rc=1
		;;
	*) rc=1 ;;
	esac
	;;
esac
# the two channels must agree
if [ -n "$guest_rc" ] && [ "$QRC" != 124 ]; then
	case "$guest_rc:$rc" in
	0:0 | 77:77) ;;
	0:* | 77:*)
		say "FAIL: console says rc=$guest_rc but QEMU exited $QRC"
		rc=1
		;;
	*:0 | *:77)
		say "FAIL: console says rc=$guest_rc but QEMU exited $QRC"
		rc=1
		;;
	esac
fi
grep -qE 'Kernel panic|BUG:|Oops:|general protection fault' "$log" && {
	say "FAIL: kernel panic/oops/BUG in the guest console"
	rc=1
}
say "accel $accel, boot ${BOOT_S} s (guest uptime ${GUEST_UP:-?} s at /init), total ${TOTAL_S} s, QEMU exit $QRC, guest rc ${guest_rc:-none} -> $rc"
if [ $rc -ne 0 ] && [ "${VM_QUIET:-0}" != 1 ]; then
	say "--- guest console ($log), last 60 lines"
	tail -n 60 "$log" | tr -d '\r' >&2
fi
exit $rc
