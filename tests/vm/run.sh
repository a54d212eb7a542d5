#!/usr/bin/env bash
# Runs the VM tests (kernel initiators in a QEMU guest): every
# tests/vm/t-*.sh, or only the names in $URBD_VM_TESTS (space separated,
# with or without .sh). One line per test "PASS|FAIL|SKIP name (N s)"; on
# FAIL the last 40 lines of its output. Logs go to build/test-logs/vm/. The
# last line is "N passed, N failed, N skipped"; exit status 1 if any failed.
#
# The guest is built (or found in build/vm-cache/) first; when it cannot
# be built here (no QEMU, no Debian archive) every test is a SKIP with the
# reason, never a pass.
#
# Env: URBD_BUILD (binary dir, passed on), URBD_VM_TEST_TIMEOUT (seconds
# per test, default 300), QEMU (the binary), and run-guest.sh's VM_*
# variables.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root" || exit 1
export URBD_BUILD=${URBD_BUILD:-build}
limit=${URBD_VM_TEST_TIMEOUT:-300}
logdir=$root/build/test-logs/vm
mkdir -p "$logdir"

tests=()
if [ -n "${URBD_VM_TESTS:-}" ]; then
	for n in $URBD_VM_TESTS; do
		tests+=("$here/${n%.sh}.sh")
	done
else
	for f in "$here"/t-*.sh; do
		[ -e "$f" ] && tests+=("$f")
	done
fi

# why every test would skip, if the guest cannot exist here
skip_all=
if ! command -v "${QEMU:-qemu-system-x86_64}" >/dev/null 2>&1; then
	skip_all="${QEMU:-qemu-system-x86_64} not installed (apt qemu-system-x86)"
else
	start=$(date +%s)
	"$here/build-initramfs.sh" >/dev/null 2>"$logdir/build-initramfs.log"
	rc=$?
	secs=$(($(date +%s) - start))
	if [ $rc -eq 77 ]; then
		skip_all="no guest image: $(grep -m1 'SKIP' "$logdir/build-initramfs.log" | sed 's/.*SKIP: //')"
	elif [ $rc -ne 0 ]; then
		echo "guest image build failed (exit $rc, ${secs}s); the tests will say more:"
		tail -n 20 "$logdir/build-initramfs.log" | sed 's/^/  | /'
	elif [ $secs -gt 2 ]; then
		echo "guest image built in ${secs}s ($(grep -m1 'built in' "$logdir/build-initramfs.log" | sed 's/.*built in //'))"
	fi
fi

passed=0 failed=0 skipped=0
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	out=$logdir/$name.log
	start=$(date +%s)
	if [ -n "$skip_all" ]; then
		echo "SKIP: $name: $skip_all" >"$out"
		rc=77
	elif [ ! -f "$t" ]; then
		echo "no such test: $t" >"$out"
		rc=1
	else
		timeout -k 20 "$limit" bash "$t" </dev/null >"$out" 2>&1
		rc=$?
	fi
	secs=$(($(date +%s) - start))
	case $rc in
	0) status=PASS passed=$((passed + 1)) ;;
	77) status=SKIP skipped=$((skipped + 1)) ;;
	*) status=FAIL failed=$((failed + 1)) ;;
	esac
	if [ "$status" = SKIP ]; then
		reason=$(grep -m1 '^SKIP:' "$out" | sed -E 's/^SKIP: [^:]*: ?//')
		echo "SKIP $name (${secs}s)${reason:+: $reason}"
	else
		echo "$status $name (${secs}s)"
	fi
	if [ "$status" = FAIL ]; then
		[ "$rc" -eq 124 ] && echo "  (timed out after ${limit}s)"
		echo "  --- last 40 lines of $out (exit $rc)"
		tail -n 40 "$out" | tr -d '\r' | sed 's/^/  | /'
	fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
