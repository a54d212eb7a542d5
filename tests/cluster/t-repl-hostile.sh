#!/usr/bin/env bash
# Malformed peer traffic on the replication port: garbage, bad magic, bad
# header CRC, frame flags, an unknown volume, a truncated introduction
# (then silence), HELLO to itself, and, past the introduction, unknown
# types, wrong sizes, a 2 GiB length, PING before authentication and a bad
# CRC mid-handshake; and, authenticated with the secret as a diskless
# secondary, a WRITE / READ_REQ it may not send, replies nobody asked for
# (READ_REPLY, VERIFY_REPLY, RESYNC_ACK), a VERIFY_REQ past the end and a
# STATE with another member's id. The replica set is a, b and a diskless member x
# (id 0) that never runs: the hostile client speaks as x, so it reaches the
# volume's own handshake code. Every such connection is closed with a log
# line (and an ERROR frame where the protocol got that far); the a-b link
# and the volume keep working, and a and b stay identical.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip qemu-io

cluster_up a b
printf 'urbd-test-secret-%s' "$RANDOM$RANDOM" >"$REPL_SECRET"
chmod 0400 "$REPL_SECRET"
REPL_SPEC="0=node-x@10.77.0.9:$REPL_PORT:diskless,1=node-a@$(az_addr a):$REPL_PORT,2=node-b@$(az_addr b):$REPL_PORT"
for az in a b; do repl_start "$az"; done
ctl a volume create "$VOL" "$VOL_SIZE" --replicas "$REPL_SPEC" --local-id 1 >/dev/null || fail "create a"
uuid=$(vfield a 'v["uuid"]')
ctl b volume create "$VOL" "$VOL_SIZE" --replicas "$REPL_SPEC" --local-id 2 --uuid "$uuid" >/dev/null || fail "create b"
wait_connected a 1
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x42 0 1M' 2>&1) ||
	fail "write: $out"

uuid_hex=${uuid//-/}
n=0
for case in garbage bad-magic bad-crc unknown-uuid truncated hello-self unknown-type \
	wrong-size ping-before-auth bad-crc-later huge-length flags; do
	res=$(in_az b timeout 30 "$PY" "$CLUSTER_DIR/repl_hostile.py" "$(az_addr a)" "$REPL_PORT" \
		"$case" "$uuid_hex" 0 1 2>&1) || fail "hostile $case: $res"
	log "hostile $res"
	n=$((n + 1))
	# one link per member: the next case must not meet this one closing
	_x_gone() { [ "$(peer_conn a 0)" = standalone ]; }
	wait_until 10 _x_gone || fail "a still holds the hostile link after $case"
done
# authenticated as x (a diskless secondary), then a message a must refuse
size=$(vfield a 'v["size_bytes"]')
for case in auth-write-from-secondary auth-read-req-from-secondary auth-read-reply-unsolicited \
	auth-verify-reply-unsolicited auth-verify-past-end auth-resync-ack-unsolicited \
	auth-barrier-from-secondary auth-barrier-ack-unsolicited auth-state-other-id; do
	res=$(in_az b timeout 30 "$PY" "$CLUSTER_DIR/repl_hostile.py" "$(az_addr a)" "$REPL_PORT" \
		"$case" "$uuid_hex" 0 1 "$REPL_SECRET" "$size" 2>&1) || fail "hostile $case: $res"
	grep -q 'after ERROR(1)' <<<"$res" || fail "$case: not refused as a protocol error: $res"
	log "hostile $res"
	n=$((n + 1))
	wait_until 10 _x_gone || fail "a still holds the hostile link after $case"
done
logs=("$T/az-a"/urbd.*.log)
for pat in 'not a urbd peer introduction' 'no volume with uuid' 'no introduction in' \
	'closing \(authenticating\): protocol' 'PING before authentication'; do
	grep -qE "$pat" "${logs[@]}" || fail "a's log lacks '$pat'"
done
[ "$(peer_conn a 2)" = connected ] || fail "a lost b after hostile traffic"
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x43 1M 1M' \
	-c 'read -P 0x42 0 1M' 2>&1) || fail "I/O after hostile traffic: $out"
grep -qiE 'fail|error' <<<"$out" && fail "I/O after hostile traffic: $out"
wait_until 5 no_pending a
cmp -s "$(data_of a)" "$(data_of b)" || fail "a and b differ after hostile traffic"
pass "$n hostile connections closed with reasons; replication unharmed"
