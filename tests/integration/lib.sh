# shellcheck shell=bash
# Shared helpers for the integration tests (sourced, not run).
#
# Every test gets its own temp dir ($T, removed at exit) and a cleanup
# stack run at exit in reverse order; every process a test starts is
# stopped by its PID. Exit codes: 0 pass, 1 fail, 77 skip.
#
#   start_urbd [extra urbd args]   start build/urbd on $T's unix socket and a
#                                  free 127.0.0.1 port; sets URBD_PID,
#                                  URBD_PORT, URBD_SOCK, URBD_LOG, URBD_STORE
#   stop_urbd                      SIGTERM, bounded wait, then SIGKILL
#   kill9_urbd                     SIGKILL and reap
#   on_exit 'cmd'                  push a cleanup command
#   pass/fail/skip MSG             finish the test
#
# Env: URBD_BUILD (binary dir, default build, relative to the repo root),
#      URBD_READY_TIMEOUT (seconds, default 10), KEEP_TMP=1 keeps $T.
# A test sets URBD_STORE before start_urbd to use another store than
# $T/store.

set -euo pipefail

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$TESTS_DIR/../.." && pwd)
URBD_BUILD=${URBD_BUILD:-build}
case "$URBD_BUILD" in
/*) URBD_BIN_DIR=$URBD_BUILD ;;
*) URBD_BIN_DIR=$REPO_ROOT/$URBD_BUILD ;;
esac
URBD_BIN=$URBD_BIN_DIR/urbd
# Debian's python3 (python3-libnbd lives there), not a pyenv shim.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/urbd-$TEST_NAME.XXXXXX")
chmod 755 "$T"

# shellcheck disable=SC2034 # URBD_EXIT is read by the tests
URBD_EXIT=
URBD_PID=
URBD_PORT=
URBD_SOCK=
URBD_LOG=
URBD_STORE=$T/store # tests may point it elsewhere before start_urbd
URBD_STARTS=0
URBD_ALL_LOGS=()
_CLEANUP=()

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$TEST_NAME" "$*" >&2; }

on_exit() { _CLEANUP+=("$1"); }

# a sanitizer report in any urbd log fails the test
_check_sanitizer_logs() {
	local f
	for f in "${URBD_ALL_LOGS[@]}"; do
		[ -f "$f" ] || continue
		if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f"; then
			echo "FAIL: sanitizer report in $f:" >&2
			grep -E -A20 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" | head -60 >&2
			return 1
		fi
	done
	return 0
}

_run_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	set +e
	for ((i = ${#_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${_CLEANUP[$i]}" >/dev/null 2>&1
	done
	if [ -n "$URBD_PID" ]; then
		stop_urbd >/dev/null 2>&1
	fi
	if ! _check_sanitizer_logs && [ "$rc" -ne 1 ]; then
		rc=1
	fi
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ -n "$URBD_LOG" ] && [ -f "$URBD_LOG" ]; then
		echo "--- last 15 lines of $URBD_LOG" >&2
		tail -n 15 "$URBD_LOG" >&2
		# the reason last, where run.sh's excerpt surely shows it
		[ -z "$_FAIL_MSG" ] || echo "FAIL: $TEST_NAME: $_FAIL_MSG" >&2
	fi
	if [ "${KEEP_TMP:-0}" = 1 ]; then
		echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$rc"
}
trap _run_cleanup EXIT
trap 'exit 1' INT TERM

pass() { echo "PASS: $TEST_NAME${1:+: $1}"; exit 0; }
_FAIL_MSG=
fail() {
	_FAIL_MSG=$*
	echo "FAIL: $TEST_NAME: $*" >&2
	exit 1
}
skip() { echo "SKIP: $TEST_NAME: $*"; exit 77; }

require_root() { [ "$(id -u)" -eq 0 ] || skip "needs root"; }
require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "needs $c (not installed)"
	done
}
require_dev() {
	local d
	for d in "$@"; do
		[ -e "$d" ] || skip "needs $d"
	done
}
require_pymod() {
	"$PY" -c "import $1" 2>/dev/null || skip "needs python module $1 (apt python3-${2:-$1})"
}

free_port() {
	"$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s, true if it succeeded in time
wait_until() {
	local secs=$1 n
	shift
	for ((n = 0; n < secs * 10; n++)); do
		if "$@"; then return 0; fi
		sleep 0.1
	done
	"$@"
}

urbd_alive() { [ -n "$URBD_PID" ] && kill -0 "$URBD_PID" 2>/dev/null; }

_urbd_ready() { grep -q '\[urbd\] ready:' "$URBD_LOG" 2>/dev/null || ! urbd_alive; }

start_urbd() {
	[ -x "$URBD_BIN" ] || fail "no daemon binary at $URBD_BIN (make build/urbd)"
	[ -z "$URBD_PID" ] || fail "start_urbd: urbd already running (pid $URBD_PID)"

	for _ in 1 2 3; do
		URBD_STARTS=$((URBD_STARTS + 1))
		URBD_PORT=$(free_port)
		URBD_SOCK=$T/nbd.sock
		URBD_LOG=$T/urbd.$URBD_STARTS.log
		URBD_ALL_LOGS+=("$URBD_LOG")
		rm -f "$URBD_SOCK"
		mkdir -p "$URBD_STORE"
		"$URBD_BIN" --store "$URBD_STORE" \
			--nbd-listen "127.0.0.1:$URBD_PORT" --nbd-unix "$URBD_SOCK" \
			--control "$T/control.sock" "$@" >"$URBD_LOG" 2>&1 &
		URBD_PID=$!
		wait_until "${URBD_READY_TIMEOUT:-10}" _urbd_ready || true
		if urbd_alive && grep -q '\[urbd\] ready:' "$URBD_LOG"; then
			log "urbd pid $URBD_PID ready on 127.0.0.1:$URBD_PORT and $URBD_SOCK (log $URBD_LOG)"
			return 0
		fi
		if urbd_alive; then
			kill -KILL "$URBD_PID" 2>/dev/null || true
			wait "$URBD_PID" 2>/dev/null || true
			URBD_PID=
			tail -n 20 "$URBD_LOG" >&2
			fail "urbd not ready within ${URBD_READY_TIMEOUT:-10} s"
		fi
		wait "$URBD_PID" 2>/dev/null || true
		URBD_PID=
		# lost a race for the port: try another one
		if grep -qi 'address already in use' "$URBD_LOG"; then
			continue
		fi
		tail -n 20 "$URBD_LOG" >&2
		fail "urbd exited during start"
	done
	fail "urbd could not bind a free port"
}

# stop_urbd: SIGTERM, wait up to 10 s, then SIGKILL. Sets URBD_EXIT.
stop_urbd() {
	URBD_EXIT=
	[ -n "$URBD_PID" ] || return 0
	local pid=$URBD_PID n
	kill -TERM "$pid" 2>/dev/null || true
	for ((n = 0; n < 100; n++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "urbd pid $pid ignored SIGTERM for 10 s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	URBD_EXIT=0
	# shellcheck disable=SC2034 # read by the tests
	wait "$pid" 2>/dev/null || URBD_EXIT=$?
	URBD_PID=
	return 0
}

kill9_urbd() {
	[ -n "$URBD_PID" ] || return 0
	kill -KILL "$URBD_PID" 2>/dev/null || true
	wait "$URBD_PID" 2>/dev/null || true
	URBD_PID=
}

# restart_urbd [args]: clean stop then start on the same store
restart_urbd() { stop_urbd; start_urbd "$@"; }

# NBD URIs of a volume on the running daemon
uri_tcp() { echo "nbd://127.0.0.1:$URBD_PORT/${1:-demo}"; }
uri_unix() { echo "nbd+unix:///${1:-demo}?socket=$URBD_SOCK"; }

# qio URI qemu-io-commands...: qemu-io with each argument as a -c command;
# output on stdout; status non-zero if any command failed.
qio() {
	local uri=$1 args=() c
	shift
	for c in "$@"; do args+=(-c "$c"); done
	timeout 60 qemu-io -f raw "$uri" "${args[@]}" 2>&1
}
# qio_ok URI cmds...: fails the test unless every command succeeded
qio_ok() {
	local out
	if ! out=$(qio "$@"); then
		echo "$out" >&2
		fail "qemu-io on $1 failed: ${*:2}"
	fi
	if grep -qiE 'fail|error' <<<"$out"; then
		echo "$out" >&2
		fail "qemu-io on $1 reported an error: ${*:2}"
	fi
}

# assert_log REGEX [SECONDS]: the current urbd log gets a matching line
assert_log() {
	local re=$1 secs=${2:-5}
	wait_until "$secs" grep -qE -- "$re" "$URBD_LOG" ||
		fail "urbd log has no line matching /$re/"
}
# log_count REGEX: matching lines in the current urbd log
log_count() { grep -cE -- "$1" "$URBD_LOG" || true; }

assert_alive() {
	urbd_alive || {
		tail -n 30 "$URBD_LOG" >&2
		URBD_PID=
		fail "urbd died${1:+ ($1)}"
	}
}
