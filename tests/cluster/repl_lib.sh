# shellcheck shell=bash source-path=SCRIPTDIR
# Replication helpers on top of lib.sh (sourced by tests/cluster/t-repl-*.sh).
#
#   repl_up [azs...]          cluster_up, one urbd per az with a replication
#                             ($REPL_CREATE_ARGS: more `volume create` options)
#   repl_create NAME SIZE [args]  one more volume on the same set
#                             listener on <az addr>:7788 and a shared secret;
#                             creates volume $VOL ($VOL_SIZE) on every az with
#                             the same uuid and replica set (member ids in az
#                             order; those in $REPL_DISKLESS diskless), waits
#                             until every pair is connected
#   repl_start AZ [args]      (re)start az's daemon with the replication flags
#   ctl AZ ARGS...            urbdctl against az's daemon
#   vstatus AZ                `volume status $VOL --json` of az
#   vfield AZ PYEXPR          a field of that JSON (v = the volume), e.g.
#                             'v["replication"]["role"]'
#   peer_conn AZ ID           the connection state az sees for member ID
#   wait_connected AZ N       until az sees N peers connected (10 s)
#   data_of AZ                az's data file of $VOL
#   nbd_uri AZ                nbd://<az addr>:10809/$VOL
#   verify_clean AZ...        urbdctl volume verify on the primary: all identical
#   replicas_identical AZ...  verify_clean + cmp of the data files (idle)
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VOL=${VOL:-rv}
VOL_SIZE=${VOL_SIZE:-64M}
REPL_PORT=7788
REPL_SECRET=$T/repl-secret
REPL_AZS=()
REPL_SPEC=
REPL_DISKLESS=${REPL_DISKLESS:-}  # azs whose member is a diskless tie-breaker
CTL=$URBD_BUILD/urbdctl

# replication timing for tests: fast failure detection
export URBD_REPL_PING_MS=${URBD_REPL_PING_MS:-200}
export URBD_REPL_TIMEOUT_MS=${URBD_REPL_TIMEOUT_MS:-1000}

ctl() {
	local az=$1
	shift
	"$CTL" -s "$T/az-$az/control.sock" "$@"
}
vstatus() { ctl "$1" --json volume status "$VOL"; }
vfield() {
	vstatus "$1" | "$PY" -c "import json,sys; v=json.load(sys.stdin); print($2)"
}
peer_conn() {
	vfield "$1" "[p['connection'] for p in v['replication']['peers'] if p['id']==$2][0]"
}
_n_connected() {
	[ "$(vfield "$1" "sum(p['connection']=='connected' for p in v['replication']['peers'])" 2>/dev/null)" = "$2" ]
}
wait_connected() {
	wait_until "${3:-10}" _n_connected "$1" "$2" ||
		fail "az $1: not $2 peers connected: $(vstatus "$1" 2>&1 | tr -d '\n' | cut -c1-600)"
}
# no request of AZ waits for a peer's ack (the status is published by the
# volume's reactor: poll it)
no_pending() {
	[ "$(vfield "$1" 'sum(p["pending"] for p in v["replication"]["peers"])')" = 0 ]
}
data_of() { echo "$T/az-$1/store/volumes/$VOL/data"; }
nbd_uri() { echo "nbd://$(az_addr "$1"):$URBD_NBD_PORT/$VOL"; }
member_id() {
	local i
	for i in "${!REPL_AZS[@]}"; do [ "${REPL_AZS[$i]}" = "$1" ] && echo "$i"; done
}

repl_start() {
	local az=$1
	shift
	start_urbd_in "$az" --repl-listen "$(az_addr "$az"):$REPL_PORT" \
		--repl-secret "${REPL_SECRET_OF[$az]:-$REPL_SECRET}" --default-volume none \
		--reactors 1 "$@"
}

declare -A REPL_SECRET_OF=()

repl_up() {
	local azs=("$@") az i
	[ ${#azs[@]} -gt 0 ] || azs=(a b c)
	REPL_AZS=("${azs[@]}")
	cluster_up "${azs[@]}"
	printf 'urbd-test-secret-%s' "$RANDOM$RANDOM" >"$REPL_SECRET"
	chmod 0400 "$REPL_SECRET"
	REPL_SPEC=
	for i in "${!azs[@]}"; do
		REPL_SPEC+="${REPL_SPEC:+,}$i=node-${azs[$i]}@$(az_addr "${azs[$i]}"):$REPL_PORT"
		[[ " $REPL_DISKLESS " == *" ${azs[$i]} "* ]] && REPL_SPEC+=":diskless"
	done
	# shellcheck disable=SC2086 # REPL_START_ARGS: words
	for az in "${azs[@]}"; do repl_start "$az" ${REPL_START_ARGS:-}; done
	# shellcheck disable=SC2086 # REPL_CREATE_ARGS: words
	repl_create "$VOL" "$VOL_SIZE" ${REPL_CREATE_ARGS:-}
}

# repl_create NAME SIZE [create args]: NAME on every az of the set (member
# ids in az order, one uuid), every pair connected
repl_create() {
	local name=$1 size=$2 i uuid
	shift 2
	ctl "${REPL_AZS[0]}" volume create "$name" "$size" --replicas "$REPL_SPEC" --local-id 0 \
		"$@" >/dev/null || fail "create $name on az ${REPL_AZS[0]}"
	uuid=$(ctl "${REPL_AZS[0]}" --json volume status "$name" |
		"$PY" -c 'import json,sys; print(json.load(sys.stdin)["uuid"])') || fail "no uuid"
	for i in "${!REPL_AZS[@]}"; do
		[ "$i" = 0 ] && continue
		ctl "${REPL_AZS[$i]}" volume create "$name" "$size" --replicas "$REPL_SPEC" \
			--local-id "$i" --uuid "$uuid" "$@" >/dev/null ||
			fail "create $name on az ${REPL_AZS[$i]}"
	done
	local VOL=$name
	for i in "${REPL_AZS[@]}"; do wait_connected "$i" $((${#REPL_AZS[@]} - 1)); done
	log "replica set up: $REPL_SPEC, volume $name uuid $uuid"
}

# verify_clean AZ...: `urbdctl volume verify` on the primary among them (or
# the first, when none is) compares every other one and finds it identical.
# Retries (10 s) while a peer is not comparable yet (a STATE after a resync
# still on its way); a reported difference fails at once.
verify_clean() {
	local az v= out rc n want=$(($# - 1)) end=$((SECONDS + 10))
	for az in "$@"; do
		[ "$(vfield "$az" 'v["replication"]["role"]' 2>/dev/null)" = primary ] && v=$az
	done
	v=${v:-$1}
	while :; do
		rc=0
		out=$(ctl "$v" volume verify "$VOL" 2>&1) || rc=$?
		n=$(grep -c ' compared, identical' <<<"$out")
		[ "$rc" = 6 ] && { echo "verify on $v: replicas differ: $out" >&2; return 1; }
		[ "$rc" = 0 ] && [ "$n" -ge "$want" ] && break
		[ $SECONDS -lt $end ] || { echo "verify on $v (exit $rc): $out" >&2; return 1; }
		sleep 0.3
	done
	log "verify on $v: $n peers identical ($(head -n 1 <<<"$out" | tr -s ' '))"
}

# replicas_identical AZ...: verify_clean, then cmp of the data files
replicas_identical() {
	local first=$1 az
	verify_clean "$@" || return 1
	shift
	for az in "$@"; do
		cmp -s "$(data_of "$first")" "$(data_of "$az")" || {
			cmp "$(data_of "$first")" "$(data_of "$az")" | head -3 >&2
			return 1
		}
	done
}

# ---- the checker workload (checker.py) ----------------------------------------
CHECKER=$CLUSTER_DIR/checker.py
CHK_BLOCKS=${CHK_BLOCKS:-4096}   # 16 MiB of stamped 4 KiB blocks

# checker_bg AZ NAME SECONDS URIS [args]: a stamped-block writer in AZ
# (every write FUA: "acknowledged" means durable), journal $T/NAME.journal;
# sets CHK_PID
checker_bg() {
	local az=$1 name=$2 secs=$3 uris=$4
	shift 4
	bg_in_az "$az" "$T/$name.out" /usr/bin/python3 "$CHECKER" write --uri "$uris" \
		--journal "$T/$name.journal" --blocks "$CHK_BLOCKS" --seconds "$secs" --qd 8 \
		--fua-every 1 --seed "$RANDOM" "$@"
	CHK_PID=$BG_PID
}
# checker_wait PID NAME [RC]: bounded wait; fails unless it exited RC (0;
# 3: its only primary was killed, "connection lost")
checker_wait() {
	local rc=0
	wait_until 90 _gone "$1" || fail "checker $2 still running"
	wait "$1" || rc=$?
	[ "$rc" = "${3:-0}" ] || fail "checker $2 exited $rc, not ${3:-0}: $(tail -c 600 "$T/$2.out")"
	log "checker $2: $(tail -n 1 "$T/$2.out" | cut -c1-400)"
}
_gone() { ! kill -0 "$1" 2>/dev/null; }
# chk_field NAME KEY: a field of the checker's JSON summary
chk_field() {
	tail -n 1 "$T/$1.out" | "$PY" -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}
# checker_verify AZ JOURNAL: every acknowledged write is there, read through AZ
checker_verify() {
	local out
	out=$(in_az "$1" timeout 120 /usr/bin/python3 "$CHECKER" verify --uri "$(nbd_uri "$1")" \
		--journal "$T/$2.journal" --blocks "$CHK_BLOCKS" 2>&1) ||
		fail "verify through $1: $(tail -c 1500 <<<"$out")"
	log "verify through $1: $(tail -n 1 <<<"$out")"
}

# up_to_date AZ: az's replica says it has every acknowledged write
up_to_date() { [ "$(vfield "$1" 'v["replication"]["disk_state"]')" = up-to-date ]; }
# peer_field AZ ID KEY: a field of az's view of member ID
peer_field() { vfield "$1" "[p['$3'] for p in v['replication']['peers'] if p['id']==$2][0]"; }
# promote AZ, retrying while the daemon refuses for a transient reason
# (a peer still follows the old primary until its STATE arrives or its
# link times out); fails with the last refusal after 10 s
_promote_once() { ctl "$1" volume promote "$VOL" >/dev/null 2>&1; }
promote_retry() {
	wait_until 10 _promote_once "$1" || fail "promote $1: $(ctl "$1" volume promote "$VOL" 2>&1)"
}
