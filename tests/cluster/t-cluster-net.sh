#!/usr/bin/env bash
# Proves the multi-AZ harness: three urbd daemons, one per AZ namespace,
# serve NBD on their namespace addresses; az a reaches b and c over the
# bridge with real clients; a partition cuts a<->b only (bounded
# timeout) and heal restores it; an injected delay raises the measured
# TCP round trip by about the configured amount (netem, or the relay on
# kernels without sch_netem) and NBD still works through it; afterwards
# no namespace of the run remains.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

require_root
require_cmd ip nbdinfo qemu-io nft
[ -x "$URBD_BIN" ] || fail "no daemon binary at $URBD_BIN"

cluster_up a b c
for az in a b c; do start_urbd_in "$az"; done

A=$(az_addr a) B=$(az_addr b) C=$(az_addr c)
uri() { echo "nbd://$1:$URBD_NBD_PORT/demo"; }

# --- reachability with real clients, from az a -----------------------------
for peer in "$B" "$C"; do
	size=$(in_az a timeout 10 nbdinfo --size "$(uri "$peer")") ||
		fail "nbdinfo from az a to $peer failed"
	[ "$size" = 1073741824 ] || fail "size from $peer: $size"
done
out=$(in_az a timeout 30 qemu-io -f raw "$(uri "$B")" -c 'write -P 0xb7 1M 64k' \
	-c 'read -P 0xb7 1M 64k' 2>&1) || fail "qemu-io a->b: $out"
grep -qiE 'fail|error' <<<"$out" && fail "qemu-io a->b: $out"
out=$(in_az a timeout 30 qemu-io -f raw "$(uri "$C")" -c 'read -P 0 1M 64k' 2>&1) ||
	fail "qemu-io a->c: $out"
grep -qiE 'fail|error' <<<"$out" && fail "qemu-io a->c (other daemon, still zero): $out"
# each daemon answers only on its own namespace: nothing listens on the host
if timeout 2 nbdinfo --size "$(uri "$B")" >/dev/null 2>&1; then
	fail "the host namespace reaches az b: the harness leaked a route"
fi
log "az a reaches b and c over the bridge (nbdinfo, qemu-io)"

# --- partition a | b ---------------------------------------------------------
partition a b
t0=$(date +%s%N)
if in_az a timeout 3 nbdinfo --size "$(uri "$B")" >/dev/null 2>&1; then
	fail "az a still reaches az b across the partition"
fi
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 6000 ] || fail "partitioned connect took $ms ms, not bounded"
in_az b timeout 3 nbdinfo --size "$(uri "$A")" >/dev/null 2>&1 &&
	fail "az b still reaches az a across the partition"
in_az a timeout 10 nbdinfo --size "$(uri "$C")" >/dev/null ||
	fail "az a lost az c during the a|b partition"
in_az b timeout 10 nbdinfo --size "$(uri "$C")" >/dev/null ||
	fail "az b lost az c during the a|b partition"
heal a b
wait_until 5 in_az a timeout 3 nbdinfo --size "$(uri "$B")" >/dev/null 2>&1 ||
	fail "az a does not reach az b after heal"
out=$(in_az a timeout 30 qemu-io -f raw "$(uri "$B")" -c 'read -P 0xb7 1M 64k' 2>&1) ||
	fail "qemu-io a->b after heal: $out"
log "partition a|b: a->b failed after ${ms} ms, a->c kept working; healed"

# --- delay a <-> b -----------------------------------------------------------
PING_PORT=7000
bg_in_az b "$T/tcpping-b.log" "$PY" "$CLUSTER_DIR/tcpping.py" server "$B" "$PING_PORT"
bg_in_az c "$T/tcpping-c.log" "$PY" "$CLUSTER_DIR/tcpping.py" server "$C" "$PING_PORT"
wait_until 5 grep -q ready "$T/tcpping-b.log" || fail "tcpping server in az b did not start"
wait_until 5 grep -q ready "$T/tcpping-c.log" || fail "tcpping server in az c did not start"
base=$(in_az a "$PY" "$CLUSTER_DIR/tcpping.py" client "$B" "$PING_PORT" 30) ||
	fail "baseline tcpping a->b failed"
RTT=${CLUSTER_TEST_RTT_MS:-40}
delay_ms a b "$RTT" "$PING_PORT"
ep=$DELAY_EP
delayed=$(in_az a "$PY" "$CLUSTER_DIR/tcpping.py" client "${ep%:*}" "${ep##*:}" 30) ||
	fail "tcpping a->b with delay failed"
b0=${base%% *} d0=${delayed%% *}
added=$(awk -v d="$d0" -v b="$b0" 'BEGIN { printf "%.2f", d - b }')
log "tcp RTT a->b median: ${b0} ms direct, ${d0} ms with +${RTT} ms ($(delay_mode)); added ${added} ms"
awk -v a="$added" -v r="$RTT" 'BEGIN { exit !(a >= 0.8 * r && a <= r + 30) }' ||
	fail "delay of ${RTT} ms added ${added} ms to the RTT (want 0.8x..+30 ms)"
# traffic to az c is not delayed
c_rtt=$(in_az a "$PY" "$CLUSTER_DIR/tcpping.py" client "$C" "$PING_PORT" 30) ||
	fail "tcpping a->c during the a<->b delay failed"
log "tcp RTT a->c median during the a<->b delay: ${c_rtt%% *} ms"
awk -v c="${c_rtt%% *}" -v a="$added" 'BEGIN { exit !(c < a / 2) }' ||
	fail "a->c RTT ${c_rtt%% *} ms: the a<->b delay leaked onto a<->c"

# NBD through the delayed path: works, and the handshake pays the delay
delay_ms a b "$RTT" "$URBD_NBD_PORT"
ep=$DELAY_EP
t0=$(date +%s%N)
size=$(in_az a timeout 20 nbdinfo --size "nbd://$ep/demo") || fail "nbdinfo through the delay failed"
nbd_ms=$((($(date +%s%N) - t0) / 1000000))
[ "$size" = 1073741824 ] || fail "size through the delay: $size"
awk -v n="$nbd_ms" -v r="$RTT" 'BEGIN { exit !(n >= r) }' ||
	fail "NBD handshake through +${RTT} ms took only ${nbd_ms} ms"
# bulk data through the relay, both ways: 8 MiB in 2 MiB requests (more
# than a socket buffer at once: partial sends, chunks, backpressure)
out=$(in_az a timeout 60 qemu-io -f raw "nbd://$ep/demo" -c 'aio_write -P 0x5c 8M 2M' \
	-c 'aio_write -P 0x5d 10M 2M' -c 'aio_write -P 0x5e 12M 2M' -c 'aio_write -P 0x5f 14M 2M' \
	-c aio_flush -c 'read -P 0x5c 8M 2M' -c 'read -P 0x5d 10M 2M' \
	-c 'read -P 0x5e 12M 2M' -c 'read -P 0x5f 14M 2M' 2>&1) ||
	fail "qemu-io through the delay: $out"
grep -qiE 'fail|error|mismatch' <<<"$out" && fail "qemu-io through the delay: $out"
undelay a b
base2=$(in_az a "$PY" "$CLUSTER_DIR/tcpping.py" client "$B" "$PING_PORT" 10) ||
	fail "tcpping a->b after undelay failed"
awk -v x="${base2%% *}" -v r="$RTT" 'BEGIN { exit !(x < r / 2) }' ||
	fail "RTT after undelay still ${base2%% *} ms"

# --- teardown leaves nothing ---------------------------------------------------
pids="${URBD_PIDS[*]}"
cluster_down
for p in $pids; do
	kill -0 "$p" 2>/dev/null && fail "urbd pid $p survived cluster_down"
done
[ "$CLUSTER_STRAYS" -eq 0 ] || fail "$CLUSTER_STRAYS process(es) outlived stop_all"
left=$(cluster_leftovers)
[ -z "$left" ] || fail "namespaces left after cluster_down: $left"

pass "3 AZs; partition a|b bounded (${ms} ms); delay $(delay_mode) +${RTT} ms -> RTT ${b0} -> ${d0} ms; NBD via delay ${nbd_ms} ms"
