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

. "$(dirname "$0")/../lib/suite.sh"
suite_init vm "${URBD_VM_TESTS:-}"
here=$SUITE_DIR
logdir=$SUITE_LOGDIR

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

suite_run "${URBD_VM_TEST_TIMEOUT:-300}" "$skip_all"
