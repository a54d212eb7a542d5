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

. "$(dirname "$0")/../lib/suite.sh"
suite_init cluster "${URBD_TESTS:-}"

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

suite_run "${URBD_TEST_TIMEOUT:-300}" "$skip_all"
rc=$?
[ -n "$skip_all" ] || gc_stale_namespaces
exit $rc
