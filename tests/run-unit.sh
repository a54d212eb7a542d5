#!/bin/sh
# Runs cmocka unit test binaries and totals their individual tests.
#   tests/run-unit.sh build/tests/test_util build/tests/test_crc32c ...
# Prints one line per binary, the failing tests' output, and as its last
# line exactly "N passed, N failed" (individual cmocka tests). A binary that
# crashes or exits non-zero without a cmocka summary counts as one failure.
# Exit status: 0 when nothing failed, 1 otherwise.

if [ $# -eq 0 ]; then
	echo "usage: $0 TEST_BINARY..." >&2
	exit 2
fi

total_pass=0
total_fail=0
log=$(mktemp "${TMPDIR:-/tmp}/urbd-unit.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT INT TERM

for bin in "$@"; do
	name=$(basename "$bin")
	if [ ! -x "$bin" ]; then
		echo "FAIL  $name: not found or not executable"
		total_fail=$((total_fail + 1))
		continue
	fi
	"$bin" >"$log" 2>&1
	rc=$?
	# cmocka: "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed
	# below:"; its stdout and stderr may interleave, so match anywhere.
	pass=$(grep -oE '\[  PASSED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -n 1)
	fail=$(grep -oE '\[  FAILED  \] [0-9]+ test' "$log" | grep -oE '[0-9]+' | tail -n 1)
	pass=${pass:-0}
	fail=${fail:-0}
	if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		# crashed, aborted, or failed in a group setup: no per-test count
		fail=1
		why=" (exit status $rc, no cmocka failure count)"
	else
		why=""
	fi
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	if [ "$fail" -eq 0 ]; then
		echo "PASS  $name: $pass passed"
	else
		echo "FAIL  $name: $pass passed, $fail failed$why"
		grep -E '^\[  FAILED  \] [a-z_]|ERROR|error:|Failure' "$log" |
			awk '!seen[$0]++' | sed 's/^/      /'
		if [ -n "$why" ]; then
			tail -n 20 "$log" | sed 's/^/      /'
		fi
	fi
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
