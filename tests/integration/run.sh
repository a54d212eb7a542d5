#!/usr/bin/env bash
# Runs the integration tests: every tests/integration/t-*.sh, or only the
# names in $URBD_TESTS (space separated, with or without .sh). One line per
# test "PASS|FAIL|SKIP name (N s)"; on FAIL the last 40 lines of its output.
# Full logs go to build/test-logs/integration/. The last line is
# "N passed, N failed, N skipped"; exit status 1 if any failed.
#
# Env: URBD_BUILD (binary dir, passed on to the tests), URBD_TEST_TIMEOUT
# (seconds per test, default 300).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root" || exit 1
export URBD_BUILD=${URBD_BUILD:-build}
limit=${URBD_TEST_TIMEOUT:-300}
logdir=$root/build/test-logs/integration
mkdir -p "$logdir"

tests=()
if [ -n "${URBD_TESTS:-}" ]; then
	for n in $URBD_TESTS; do
		n=${n%.sh}
		tests+=("$here/$n.sh")
	done
else
	for f in "$here"/t-*.sh; do
		[ -e "$f" ] && tests+=("$f")
	done
fi

passed=0 failed=0 skipped=0
for t in "${tests[@]}"; do
	name=$(basename "$t" .sh)
	out=$logdir/$name.log
	start=$(date +%s)
	if [ ! -f "$t" ]; then
		echo "no such test: $t" >"$out"
		rc=1
	else
		# timeout signals the test's whole process group; -k: then SIGKILL
		timeout -k 20 "$limit" bash "$t" </dev/null >"$out" 2>&1
		rc=$?
	fi
	secs=$(($(date +%s) - start))
	case $rc in
	0) status=PASS; passed=$((passed + 1)) ;;
	77) status=SKIP; skipped=$((skipped + 1)) ;;
	*) status=FAIL; failed=$((failed + 1)) ;;
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
		tail -n 40 "$out" | sed 's/^/  | /'
	fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
