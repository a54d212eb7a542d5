# shellcheck shell=bash source-path=SCRIPTDIR
# Multi-AZ cluster harness (sourced by tests/cluster/t-*.sh, not run).
#
# Topology, all of it inside network namespaces this run creates (the
# host's own namespace is never touched):
#
#     urbdc-<pid>-a (az a)  eth0 10.77.0.1/24 --veth--+
#     urbdc-<pid>-b (az b)  eth0 10.77.0.2/24 --veth--+-- br0 in urbdc-<pid>-sw
#     urbdc-<pid>-c (az c)  eth0 10.77.0.3/24 --veth--+    (the "switch")
#
# Builds on tests/integration/lib.sh: $T, on_exit, pass/fail/skip,
# wait_until, require_*, and its sanitizer-log check (every daemon log
# is added to URBD_ALL_LOGS). Helpers:
#
#   cluster_up [azs...]         namespaces + bridge (default: a b c); SKIPs
#                               without root or `ip netns`
#   in_az A CMD...              run CMD inside az A's namespace
#   az_addr A                   az A's address
#   bg_in_az A LOG CMD...       start CMD in the background inside A, record
#                               its PID (stopped by stop_all); sets BG_PID
#   start_urbd_in A [args]      urbd in A: own store $T/az-A/store, NBD on
#                               A's address:10809; waits for "ready"
#   stop_urbd_in A              SIGTERM, bounded wait, SIGKILL
#   partition A B / heal A B    nftables drop rules in A and B (both ways)
#   delay_ms A B RTT_MS PORT    add RTT_MS to the round trip A<->B; sets
#                               DELAY_EP (HOST:PORT) that A's clients use to
#                               reach B's PORT: B's address with tc netem, a
#                               delaying relay in A without it (relay.c,
#                               built as $URBD_BUILD/urbd-relay)
#   undelay A B                 removes what delay_ms A B added
#   delay_mode                  prints "netem" or "relay"
#   stop_all                    every process started here, by PID
#   cluster_down                stop_all, then delete the run's namespaces
#                               (also runs at exit, pass or fail)
#   cluster_leftovers           the run's namespaces still present (none
#                               after cluster_down); CLUSTER_STRAYS counts
#                               processes cluster_down found still inside
#
# Env: URBD_BUILD as for the integration tests (e.g. build/h7).

# shellcheck source=../integration/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../integration/lib.sh"

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER_PREFIX=urbdc-$$
CLUSTER_NET=10.77.0
URBD_NBD_PORT=10809
declare -A AZ_IDX=([a]=1 [b]=2 [c]=3 [d]=4 [e]=5)
declare -A URBD_PIDS=()
declare -A RELAY_PIDS=()
declare -A NETEM_ROOT=()
CLUSTER_AZS=()
CLUSTER_BG_PIDS=()
CLUSTER_CREATED=()
CLUSTER_STRAYS=0
_DELAY_MODE=
DELAY_EP=
BG_PID=

ns_of() { echo "$CLUSTER_PREFIX-$1"; }
az_addr() {
	[ -n "${AZ_IDX[$1]:-}" ] || fail "unknown az '$1'"
	echo "$CLUSTER_NET.${AZ_IDX[$1]}"
}
in_az() {
	local az=$1
	shift
	ip netns exec "$(ns_of "$az")" "$@"
}

_cluster_ns_add() {
	ip netns add "$1" || return 1
	CLUSTER_CREATED+=("$1")
	ip -n "$1" link set lo up
}

cluster_up() {
	local azs=("$@") sw az ns
	[ ${#azs[@]} -gt 0 ] || azs=(a b c)
	require_root
	require_cmd ip
	on_exit cluster_down
	sw=$(ns_of sw)
	if ! _cluster_ns_add "$sw" 2>"$T/netns.err"; then
		skip "ip netns unavailable: $(head -c 200 "$T/netns.err")"
	fi
	ip -n "$sw" link add br0 type bridge || fail "cannot create a bridge in $sw"
	ip -n "$sw" link set br0 up
	for az in "${azs[@]}"; do
		ns=$(ns_of "$az")
		_cluster_ns_add "$ns" || fail "ip netns add $ns failed"
		# both ends are created inside namespaces: no name in the host's
		ip -n "$sw" link add "veth-$az" type veth peer name eth0 netns "$ns" ||
			fail "veth for az $az"
		ip -n "$sw" link set "veth-$az" master br0 up
		ip -n "$ns" addr add "$(az_addr "$az")/24" dev eth0
		ip -n "$ns" link set eth0 up
		CLUSTER_AZS+=("$az")
	done
	delay_mode >/dev/null # probe once, here, so subshells inherit the answer
	for az in "${azs[@]:1}"; do
		wait_until 5 in_az "${azs[0]}" "$PY" "$CLUSTER_DIR/tcpping.py" probe "$(az_addr "$az")" ||
			fail "az ${azs[0]} cannot reach az $az over the bridge"
	done
	log "cluster up: ${azs[*]} as $CLUSTER_PREFIX-{${azs[*]// /,}} on $CLUSTER_NET.0/24 (delay via $(delay_mode))"
}

cluster_leftovers() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$CLUSTER_PREFIX-" || true; }

# ---- processes ---------------------------------------------------------------

_stop_pid() {
	local pid=$1 n
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((n = 0; n < 100; n++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# kill9_in AZ...: kill -9 each az's daemon at once (one signal call, as a
# power loss would), then wait until each has really exited: its sockets
# are only released then (a quick restart got EADDRINUSE under ASan)
kill9_in() {
	local az pids=()
	for az in "$@"; do pids+=("${URBD_PIDS[$az]}"); done
	kill -KILL "${pids[@]}" 2>/dev/null || true
	for az in "$@"; do
		wait "${URBD_PIDS[$az]}" 2>/dev/null || true
		unset "URBD_PIDS[$az]"
	done
}

bg_in_az() {
	local az=$1 logf=$2
	shift 2
	# a simple command, not the in_az function: bash then execs ip, ip
	# execs CMD, and $! is CMD's own PID (a function would add a subshell
	# whose death orphans CMD)
	ip netns exec "$(ns_of "$az")" "$@" >"$logf" 2>&1 &
	BG_PID=$!
	CLUSTER_BG_PIDS+=("$BG_PID")
}

# after the exec chain settles, PID must be the command itself
_check_exec() {
	local pid=$1 want=$2 comm n
	for ((n = 0; n < 20; n++)); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 0 # already gone
		[ "$comm" = "$want" ] && return 0
		sleep 0.05
	done
	fail "pid $pid is '$comm', not $want: stop_all would orphan it"
}

_urbd_ready_in() {
	grep -q '\[urbd\] ready:' "$2" 2>/dev/null || ! kill -0 "$1" 2>/dev/null
}

start_urbd_in() {
	local az=$1 dir pid logf
	shift
	[ -x "$URBD_BIN" ] || fail "no daemon binary at $URBD_BIN (make BUILD=$URBD_BUILD $URBD_BUILD/urbd)"
	[ -z "${URBD_PIDS[$az]:-}" ] || fail "urbd already running in az $az"
	dir=$T/az-$az
	mkdir -p "$dir/store"
	logf=$dir/urbd.$((URBD_STARTS += 1)).log
	URBD_ALL_LOGS+=("$logf")
	# ip netns exec execs the command: $! is the daemon's own PID
	ip netns exec "$(ns_of "$az")" "$URBD_BIN" --store "$dir/store" \
		--nbd-listen "$(az_addr "$az"):$URBD_NBD_PORT" \
		--control "$dir/control.sock" --node-id "node-$az" --zone "az-$az" \
		"$@" >"$logf" 2>&1 &
	pid=$!
	URBD_PIDS[$az]=$pid
	_check_exec "$pid" urbd
	# shellcheck disable=SC2034 # integration/lib.sh tails it on failure
	URBD_LOG=$logf
	wait_until "${URBD_READY_TIMEOUT:-10}" _urbd_ready_in "$pid" "$logf" || true
	if ! kill -0 "$pid" 2>/dev/null || ! grep -q '\[urbd\] ready:' "$logf"; then
		tail -n 20 "$logf" >&2
		fail "urbd in az $az not ready"
	fi
	log "urbd az $az pid $pid on $(az_addr "$az"):$URBD_NBD_PORT (log $logf)"
}

stop_urbd_in() {
	_stop_pid "${URBD_PIDS[$1]:-}"
	unset "URBD_PIDS[$1]"
}

stop_all() {
	local az pid k
	for k in "${!RELAY_PIDS[@]}"; do _stop_pid "${RELAY_PIDS[$k]}"; done
	RELAY_PIDS=()
	for pid in "${CLUSTER_BG_PIDS[@]}"; do _stop_pid "$pid"; done
	CLUSTER_BG_PIDS=()
	for az in "${!URBD_PIDS[@]}"; do stop_urbd_in "$az"; done
}

cluster_down() {
	local i ns pid
	stop_all
	for ((i = ${#CLUSTER_CREATED[@]} - 1; i >= 0; i--)); do
		ns=${CLUSTER_CREATED[$i]}
		# A process left in a namespace would keep it alive, unnamed,
		# after `ip netns del`. Only this run's processes can be in it:
		# stop them by PID, and count them so a test can fail on it.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			log "stray process left in $ns: $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80))"
			CLUSTER_STRAYS=$((CLUSTER_STRAYS + 1))
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
	CLUSTER_CREATED=()
	CLUSTER_AZS=()
}

# ---- partitions (nftables, inside the two namespaces) -----------------------

partition() {
	local a=$1 b=$2
	require_cmd nft
	_part_one "$a" "$b"
	_part_one "$b" "$a"
	log "partition: az $a -/- az $b"
}

_part_one() {
	local table=urbd_part_$2
	in_az "$1" nft -f - <<EOF || fail "nft in az $1 failed"
table inet $table {
	chain out { type filter hook output priority 0; policy accept; ip daddr $(az_addr "$2") drop; }
	chain in { type filter hook input priority 0; policy accept; ip saddr $(az_addr "$2") drop; }
}
EOF
}

heal() {
	in_az "$1" nft delete table inet "urbd_part_$2" 2>/dev/null || true
	in_az "$2" nft delete table inet "urbd_part_$1" 2>/dev/null || true
	log "heal: az $1 <-> az $2"
}

# ---- delay -------------------------------------------------------------------

# netem if this kernel has sch_netem (many CI kernels do not), else relay
delay_mode() {
	if [ -z "$_DELAY_MODE" ]; then
		_DELAY_MODE=relay
		if command -v tc >/dev/null 2>&1 && [ "${URBD_FORCE_RELAY:-0}" != 1 ] &&
			ip netns exec "$(ns_of sw)" tc qdisc add dev lo root netem delay 1ms 2>/dev/null; then
			ip netns exec "$(ns_of sw)" tc qdisc del dev lo root 2>/dev/null || true
			_DELAY_MODE=netem
		fi
	fi
	echo "$_DELAY_MODE"
}

# one-way half of the RTT on each side's egress towards the other, in a
# prio band of its own so traffic to other azs is not delayed
_netem_one() {
	local az=$1 peer=$2 half=$3 band
	band=$((3 + AZ_IDX[$peer]))
	if [ -z "${NETEM_ROOT[$az]:-}" ]; then
		in_az "$az" tc qdisc add dev eth0 root handle 1: prio bands 8 \
			priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1 || fail "tc prio in az $az"
		NETEM_ROOT[$az]=1
	fi
	in_az "$az" tc qdisc replace dev eth0 parent "1:$band" handle "$((band * 10)):" \
		netem delay "${half}ms" || fail "tc netem in az $az"
	in_az "$az" tc filter add dev eth0 parent 1:0 protocol ip prio 1 u32 \
		match ip dst "$(az_addr "$peer")/32" flowid "1:$band" || fail "tc filter in az $az"
}

delay_ms() {
	local a=$1 b=$2 rtt=$3 port=$4 half pf n
	half=$(awk -v r="$rtt" 'BEGIN { printf "%.3f", r / 2 }')
	if [ "$(delay_mode)" = netem ]; then
		_netem_one "$a" "$b" "$half"
		_netem_one "$b" "$a" "$half"
		DELAY_EP=$(az_addr "$b"):$port
	else
		pf=$T/relay-$a-$b-$port
		rm -f "$pf.port"
		[ -x "$URBD_BIN_DIR/urbd-relay" ] ||
			fail "no relay at $URBD_BIN_DIR/urbd-relay (make BUILD=$URBD_BUILD $URBD_BUILD/urbd-relay)"
		bg_in_az "$a" "$pf.log" "$URBD_BIN_DIR/urbd-relay" --listen 127.0.0.1:0 \
			--target "$(az_addr "$b"):$port" --delay-ms "$half" --port-file "$pf.port"
		_check_exec "$BG_PID" urbd-relay
		RELAY_PIDS["$a-$b-$port"]=$BG_PID
		for ((n = 0; n < 50; n++)); do
			[ -s "$pf.port" ] && break
			kill -0 "$BG_PID" 2>/dev/null || break
			sleep 0.1
		done
		[ -s "$pf.port" ] || { cat "$pf.log" >&2; fail "relay in az $a did not start"; }
		DELAY_EP=127.0.0.1:$(cat "$pf.port")
	fi
	log "delay: +$rtt ms RTT az $a <-> az $b ($(delay_mode)); $a reaches $b:$port at $DELAY_EP"
}

undelay() {
	local a=$1 b=$2 k
	if [ "$(delay_mode)" = netem ]; then
		for k in "$a" "$b"; do
			in_az "$k" tc qdisc del dev eth0 root 2>/dev/null || true
			unset "NETEM_ROOT[$k]"
		done
	else
		for k in "${!RELAY_PIDS[@]}"; do
			case $k in "$a-$b-"*)
				_stop_pid "${RELAY_PIDS[$k]}"
				unset "RELAY_PIDS[$k]" ;;
			esac
		done
	fi
}
