#!/usr/bin/env bash
# Runs the multi-AZ cluster tests: every tests/cluster/t-*.sh, or only the
# names in $URBD_TESTS (space separated, with or without .sh). One line per
# test "PASS|FAIL|SKIP name (N s)[: reason]"; on FAIL the last 40 lines of
# its output. Logs go to build/test-logs/cluster/. The last line is exactly
# "N passed, N failed, N skipped"; exit status 1 if any failed.
#
# The tests need root and `ip netns`; without them every test SKIPs with
# the reason. Namespaces left by an earlier run that was SIGKILLed
# (urbdc-<pid>-*, <pid> gone, no processes inside) are removed first.
#
# Env: URBD_BUILD (binary dir, e.g. build/h7; default build),
# URBD_TEST_TIMEOUT (seconds per test, default 300).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root" || exit 1
export URBD_BUILD=${URBD_BUILD:-build}
limit=${URBD_TEST_TIMEOUT:-300}
logdir=$root/build/test-logs/cluster
mkdir -p "$logdir"

tests=()
if [ -n "${URBD_TESTS:-}" ]; then
	for n in $URBD_TESTS; do tests+=("$here/${n%.sh}.sh"); done
else
	for f in "$here"/t-*.sh; do [ -e "$f" ] && tests+=("$f"); done
fi

gc_stale_namespaces() {
	local ns pid
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^urbdc-[0-9]+-[a-z]+$'); do
		pid=${ns#urbdc-}
		pid=${pid%%-*}
		kill -0 "$pid" 2>/dev/null && continue
		if [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; then
			echo "note: stale namespace $ns still has processes; left alone" >&2
			continue
		fi
		ip netns del "$ns" 2>/dev/null && echo "note: removed stale namespace $ns" >&2
	done
}

skip_all=
if [ "$(id -u)" -ne 0 ]; then
	skip_all="needs root (network namespaces)"
elif ! command -v ip >/dev/null 2>&1; then
	skip_all="needs ip (iproute2)"
else
	gc_stale_namespaces
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
	elif [ "$status" = PASS ]; then
		detail=$(grep -m1 '^PASS:' "$out" | sed -E 's/^PASS: [^:]*: ?//')
		echo "PASS $name (${secs}s)${detail:+: $detail}"
	else
		echo "FAIL $name (${secs}s)"
		[ "$rc" -eq 124 ] && echo "  (timed out after ${limit}s)"
		echo "  --- last 40 lines of $out (exit $rc)"
		tail -n 40 "$out" | sed 's/^/  | /'
	fi
done
[ -n "$skip_all" ] || gc_stale_namespaces
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
