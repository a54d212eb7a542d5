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

. "$(dirname "$0")/../lib/suite.sh"
suite_init integration "${URBD_TESTS:-}"
suite_run "${URBD_TEST_TIMEOUT:-300}" ""
