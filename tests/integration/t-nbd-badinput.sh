#!/usr/bin/env bash
# Hostile NBD input (DESIGN §8): each case from nbd_hostile.py asserts the
# exact reply or the close; this script asserts that urbd logged a reason
# line for it (naming our connection where the daemon does), that urbd is
# still alive and serving (qemu-io), and that a well-behaved qemu-io loop
# writing and verifying patterns on another region of the volume kept
# succeeding the whole time. Also: no file descriptors leak.
source "$(dirname "$0")/lib.sh"

require_cmd qemu-io
SIZE=$((256 * 1024 * 1024))
HOSTILE=$TESTS_DIR/nbd_hostile.py
start_urbd --default-volume demo:256M

# ---- the well-behaved client, throughout ---------------------------------
GOOD_OFF=$((64 * 1024 * 1024))
good_loop() {
	local i end=$((SECONDS + 120)) p
	for ((i = 1; i <= 2000 && SECONDS < end; i++)); do
		[ -e "$T/good.stop" ] && break
		p=$((i % 250 + 1))
		if ! out=$(qio "$(uri_tcp)" "write -P $p $((GOOD_OFF + (i % 64) * 65536)) 65536" \
			"read -P $p $((GOOD_OFF + (i % 64) * 65536)) 65536" 2>&1) ||
			grep -qiE 'fail|error' <<<"$out"; then
			echo "iteration $i: $out" >>"$T/good.fail"
		fi
		echo "$i" >"$T/good.count"
	done
}
good_loop &
GOOD_PID=$!
stop_good() {
	[ -n "${GOOD_PID:-}" ] || return 0
	touch "$T/good.stop"
	local n
	for ((n = 0; n < 300; n++)); do
		kill -0 "$GOOD_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$GOOD_PID" 2>/dev/null || true
	wait "$GOOD_PID" 2>/dev/null || true
	GOOD_PID=
}
on_exit stop_good
wait_until 10 test -s "$T/good.count" || fail "the well-behaved qemu-io loop did not start"

fds() { ls "/proc/$URBD_PID/fd" | wc -l; }
FDS0=$(fds)

# ---- cases: name, transport, log regex (PEER = our local address) ---------
# Each log regex must match a line written after the case started.
cases=(
	"bad-opt-magic tcp PEER: closing: .*(magic|IHAVEOPT)"
	"no-fixed-newstyle tcp PEER: closing: .*fixed.newstyle"
	"unknown-opt tcp refused: .*not supported"
	"opt-too-big tcp PEER: .*too big"
	"go-unknown tcp NBD_OPT_GO refused: .*no such export"
	"go-malformed tcp NBD_OPT_GO refused: .*malformed"
	"export-name-unknown tcp NBD_OPT_EXPORT_NAME: no export 'no-such-volume'"
	"bad-req-magic tcp PEER.*bad request magic"
	"unknown-cmd tcp PEER: .*unknown command"
	"write-past-end tcp PEER: NBD_CMD_WRITE offset=$((SIZE - 4096)) length=8192.*past the end"
	"read-past-end unix unix:.*NBD_CMD_READ offset=$((SIZE - 4096)) length=8192.*past the end"
	"write-64m tcp PEER: NBD_CMD_WRITE length 67108864 above the"
	"unknown-flags tcp PEER: NBD_CMD_READ .*flags=0x8000: .*flag"
	"zero-read unix unix:.*NBD_CMD_READ offset=0 length=0 .*zero length"
	"truncated-payload tcp PEER volume demo: closing: .*went away"
	"structured-error tcp PEER: NBD_CMD_READ offset=$SIZE length=4096.*past the end"
	"many-conns tcp went away during negotiation"
	"slow-reader tcp PEER volume demo: closing"
)
new_log_has() { tail -n +$(($1 + 1)) "$URBD_LOG" | grep -qE -- "$2"; }
# A failing case is recorded and the others still run; the test fails at
# the end (or at once if urbd died).
failures=()
for spec in "${cases[@]}"; do
	read -r name transport re <<<"$spec"
	# urbd rate-limits per-request warnings (10 a second per call site):
	# start every case in a fresh window so its reason line is printed
	sleep 1.1
	mark=$(wc -l <"$URBD_LOG")
	if [ "$transport" = unix ]; then
		addr=(--unix "$URBD_SOCK")
	else
		addr=(--tcp "127.0.0.1:$URBD_PORT")
	fi
	if ! out=$(timeout 120 "$PY" "$HOSTILE" "${addr[@]}" --export demo --size "$SIZE" \
		--pid "$URBD_PID" "$name" 2>&1); then
		echo "$out" >&2
		failures+=("case $name: ${out##*$'\n'}")
		log "FAILED: case $name"
		assert_alive "after case $name"
		continue
	fi
	peer=$(sed -n "s/^peer $name //p" <<<"$out")
	re=${re//PEER/${peer:-PEER-UNKNOWN}}
	if ! wait_until 5 new_log_has "$mark" "$re"; then
		tail -n +$((mark + 1)) "$URBD_LOG" | head -20 >&2
		failures+=("case $name: no log line matching /$re/")
		log "FAILED: case $name: no log line"
	fi
	assert_alive "after case $name"
	qio_ok "$(uri_unix)" "write -P 0x77 $((128 * 1024 * 1024)) 4096" \
		"read -P 0x77 $((128 * 1024 * 1024)) 4096"
	log "$(grep "^ok $name" <<<"$out") | logged: $(tail -n +$((mark + 1)) "$URBD_LOG" |
		grep -m1 -E -- "$re" | cut -c14- | cut -c1-110)"
done

# ---- the daemon holds no leftovers --------------------------------------
leak_ok() { [ "$(fds)" -le $((FDS0 + 2)) ]; }
wait_until 5 leak_ok || {
	ls -l "/proc/$URBD_PID/fd" >&2
	fail "file descriptors leaked: $FDS0 before, $(fds) after"
}

stop_good
n=$(cat "$T/good.count")
[ ! -e "$T/good.fail" ] || {
	cat "$T/good.fail" >&2
	fail "the well-behaved qemu-io client failed during the hostile cases"
}
[ "$n" -ge 5 ] || fail "the well-behaved client ran only $n iterations"
log "well-behaved qemu-io loop: $n write+verify iterations, all good"
assert_alive
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exited with status $URBD_EXIT on SIGTERM"
if [ ${#failures[@]} -gt 0 ]; then
	printf '  %s\n' "${failures[@]}" >&2
	fail "${#failures[@]} of ${#cases[@]} cases failed: $(printf '%s; ' "${failures[@]}")"
fi
pass "${#cases[@]} cases"
