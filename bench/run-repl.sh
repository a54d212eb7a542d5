#!/usr/bin/env bash
# make bench, replication (issue 3; DESIGN.md §9): synchronous replication
# on the three-AZ namespace cluster of tests/cluster (repl_lib.sh), the same
# fio load through NBD from a client in the primary's AZ (a):
#   unreplicated   a plain volume on az a
#   2 replicas     a (primary), b
#   3 replicas     a (primary), b, c
# at injected RTT 0, 0.5 ms and 2 ms between the AZs (tc netem if the kernel
# has sch_netem, else lib.sh's delaying relay, tests/cluster/relay.c).
# Figures: 4k random write QD1 latency (fio total latency, mean and p99) and
# 4k random write QD32 IOPS; failover (kill -9 of the primary's daemon ->
# `urbdctl volume promote` on b -> first FUA write acknowledged through b);
# the daemons' RSS. A checker (tests/cluster/checker.py) writes during the
# failover and verifies through b that no acknowledged write was lost. The
# RTT a <-> b the delay really gives is measured too (tcpping.py): the
# relay's delay is not exact, so the latency bar is also printed against it.
# Resyncs after the failover, unthrottled: what an unconfirmed secondary and
# the crashed primary are resynced in, and a full sync against the disk
# copying by itself.
# Every figure is printed beside its bar and a verdict: figures, never
# assertions (a setup failure still ends the run).
#
#   bench/run-repl.sh [BUILD]        e.g. build/h5 (default build)
#
# Env: BENCH_RUNTIME seconds per fio run (5), BENCH_RAMP (1), BENCH_ROUNDS
# rounds of the RTT 0 points (3, alternating targets; medians), BENCH_SIZE
# volume size (256M, written once before it is measured), BENCH_RTTS the
# delayed RTTs in ms ("0.5 2"), BENCH_RELAY0=0 skips the relay-overhead
# point (relay mode only), BENCH_POLL_US the daemons' --poll-us for a
# second set of RTT 0 points (200; 0 skips it), BENCH_STORE=ram: the
# stores on a RAM-backed ext4 (a loop device on a tmpfs file; O_DIRECT
# works on it) and only the RTT 0 points: urbd without the shared
# virtual disk (a diagnostic; `make bench` runs it after the main run),
# URBD_REPL_PING_MS / URBD_REPL_TIMEOUT_MS (daemon
# defaults unless set), URBD_FORCE_RELAY=1 (lib.sh), KEEP_TMP=1.
set -euo pipefail
BUILD=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
RUNTIME=${BENCH_RUNTIME:-5}
RAMP=${BENCH_RAMP:-1}
ROUNDS=${BENCH_ROUNDS:-3}
SIZE=${BENCH_SIZE:-256M}
RTTS=${BENCH_RTTS:-0.5 2}
RELAY0=${BENCH_RELAY0:-1}
POLL_US=${BENCH_POLL_US:-200}

# a benchmark that cannot run says so and does not fail `make bench`
if [ "$(id -u)" -ne 0 ]; then
	echo "bench-repl: skipped: needs root (network namespaces)"
	exit 0
fi
for t in ip fio qemu-io nbdinfo; do
	command -v $t >/dev/null 2>&1 || { echo "bench-repl: skipped: $t not installed"; exit 0; }
done
/usr/bin/python3 -c 'import nbd' 2>/dev/null ||
	{ echo "bench-repl: skipped: python3-libnbd missing (failover checker)"; exit 0; }

case $BUILD in
/*) URBD_BUILD=$BUILD ;;
*) URBD_BUILD=$top/$BUILD ;;
esac
export URBD_BUILD
if [ ! -x "$URBD_BUILD/urbd" ] || [ ! -x "$URBD_BUILD/urbdctl" ]; then
	echo "bench-repl: no $URBD_BUILD/urbd or urbdctl (make BUILD=$BUILD)"
	exit 1
fi
# the store on disk, as bench/run.sh (not a tmpfs /tmp)
export TMPDIR=${TMPDIR:-/var/tmp}
STORE=${BENCH_STORE:-disk}
RAMDIR= RAMLOOP=
if [ "$STORE" = ram ]; then
	for t in losetup mkfs.ext4; do
		command -v $t >/dev/null 2>&1 || { echo "bench-repl (ram): skipped: $t not installed"; exit 0; }
	done
	RAMDIR=$(mktemp -d "$TMPDIR/urbd-bench-ram.XXXXXX")
	ram_down() {
		mountpoint -q "$RAMDIR/ext4" && umount "$RAMDIR/ext4"
		[ -z "$RAMLOOP" ] || losetup -d "$RAMLOOP"
		mountpoint -q "$RAMDIR/tmpfs" && umount "$RAMDIR/tmpfs"
		rm -rf "$RAMDIR"
	}
	mkdir "$RAMDIR/tmpfs" "$RAMDIR/ext4"
	if ! mount -t tmpfs -o size=3g urbd-bench "$RAMDIR/tmpfs" ||
		! truncate -s 2900M "$RAMDIR/tmpfs/img" ||
		! RAMLOOP=$(losetup -f --show "$RAMDIR/tmpfs/img") ||
		! mkfs.ext4 -q "$RAMLOOP" || ! mount "$RAMLOOP" "$RAMDIR/ext4"; then
		ram_down
		echo "bench-repl (ram): skipped: cannot set up a RAM-backed ext4 (loop devices?)"
		exit 0
	fi
	export TMPDIR=$RAMDIR/ext4
	RTTS= RELAY0=0
fi
# resync throughput is measured unthrottled (the daemon's default is 250 MiB/s)
export URBD_RESYNC_RATE_MB=${URBD_RESYNC_RATE_MB:-0}
# the daemon's own replication timing, not the tests' fast one, unless set
_ping=${URBD_REPL_PING_MS:-}
_tmo=${URBD_REPL_TIMEOUT_MS:-}

# $T, cluster_up, start_urbd_in, delay_ms, stop_all, cluster_down at exit...
# shellcheck source-path=SCRIPTDIR/../tests/cluster source=../tests/cluster/repl_lib.sh
source "$top/tests/cluster/repl_lib.sh"
[ -n "$_ping" ] || unset URBD_REPL_PING_MS
# after cluster_down (on_exit runs the last registered first)
[ -z "$RAMDIR" ] || on_exit ram_down
[ -n "$_tmo" ] || unset URBD_REPL_TIMEOUT_MS

# ---- helpers ---------------------------------------------------------------------------

# jf AZ NAME PYEXPR: a field of `volume status NAME --json` on AZ (v = it)
jf() {
	ctl "$1" --json volume status "$2" |
		"$PY" -c "import json,sys; v=json.load(sys.stdin); print($3)"
}
_n_conn() {
	[ "$(jf "$1" "$2" "sum(p['connection']=='connected' for p in v['replication']['peers'])" 2>/dev/null)" = "$3" ]
}

# EP[x-y]: the address x dials to reach y's replication port (the lower
# member id connects: a dials b and c, b dials c)
declare -A EP=()
PAIRS=("a b" "a c" "b c")
# set_rtt RTT [relay]: the delay between every pair of AZs; RTT 0 is the
# direct path unless "relay" (then a relay with no delay: its own cost).
# Replicated volumes must be deleted first: relay links do not survive it.
# Also measures the RTT a <-> b really has through the same delay (64-byte
# TCP ping-pongs, tests/cluster/tcpping.py, to an echo server in b):
# MRTT[RTT or relay0] = "median_ms min_ms max_ms".
PING_PORT=7790
declare -A MRTT=()
set_rtt() {
	local rtt=$1 how=${2:-} p x y ep key=$1
	[ "$how" != relay ] || key=relay0
	# shellcheck disable=SC2086 # "x y": two arguments
	for p in "${PAIRS[@]}"; do undelay $p; done
	ep=$(az_addr b):$PING_PORT
	for p in "${PAIRS[@]}"; do
		read -r x y <<<"$p"
		if [ "$rtt" = 0 ] && [ "$how" != relay ]; then
			EP[$x-$y]=$(az_addr "$y"):$REPL_PORT
		elif [ "$how" = relay ] && [ "$(delay_mode)" != relay ]; then
			fail "set_rtt: relay asked for in netem mode"
		else
			delay_ms "$x" "$y" "$rtt" "$REPL_PORT"
			EP[$x-$y]=$DELAY_EP
			if [ "$x-$y" = a-b ] && [ "$(delay_mode)" = relay ]; then
				delay_ms a b "$rtt" "$PING_PORT"
				ep=$DELAY_EP
			fi
		fi
	done
	if [ -z "${MRTT[$key]:-}" ]; then
		MRTT[$key]=$(in_az a "$PY" "$CLUSTER_DIR/tcpping.py" client "${ep%:*}" "${ep##*:}" 50) ||
			fail "tcpping a -> b through $ep failed"
		log "RTT a <-> b ($key): median min max ${MRTT[$key]} ms"
	fi
}

# mkvol NAME AZ...: NAME on AZ... (member ids in that order, the first
# promoted); one AZ: a plain volume. Written once in full (1 MiB, QD8), so
# no measured run pays for block allocation another does not; FILL=0: not.
FILL=1
mkvol() {
	local name=$1 azs i j spec uuid t0
	shift
	azs=("$@")
	if [ ${#azs[@]} = 1 ]; then
		ctl "${azs[0]}" volume create "$name" "$SIZE" >/dev/null || fail "create $name"
	else
		for i in "${!azs[@]}"; do
			spec=
			for j in "${!azs[@]}"; do
				if [ "$j" -gt "$i" ]; then
					spec+="${spec:+,}$j=node-${azs[$j]}@${EP[${azs[$i]}-${azs[$j]}]}"
				else
					spec+="${spec:+,}$j=node-${azs[$j]}@$(az_addr "${azs[$j]}"):$REPL_PORT"
				fi
			done
			if [ "$i" = 0 ]; then
				ctl "${azs[0]}" volume create "$name" "$SIZE" --replicas "$spec" \
					--local-id 0 >/dev/null || fail "create $name on ${azs[0]}"
				uuid=$(jf "${azs[0]}" "$name" 'v["uuid"]') || fail "no uuid for $name"
			else
				ctl "${azs[$i]}" volume create "$name" "$SIZE" --replicas "$spec" \
					--local-id "$i" --uuid "$uuid" >/dev/null ||
					fail "create $name on ${azs[$i]}"
			fi
		done
		for i in "${azs[@]}"; do
			wait_until 10 _n_conn "$i" "$name" $((${#azs[@]} - 1)) ||
				fail "$name on az $i: peers not connected: $(ctl "$i" --json volume status "$name" 2>&1 | tr -d '\n' | cut -c1-600)"
		done
		ctl "${azs[0]}" volume promote "$name" >/dev/null || fail "promote $name on ${azs[0]}"
	fi
	[ "$FILL" = 1 ] || return 0
	t0=$(date +%s%N)
	in_az "${azs[0]}" fio --name=fill --ioengine=nbd --uri="$(vuri "${azs[0]}" "$name")" \
		--rw=write --bs=1M --iodepth=8 --size="$SIZE" >"$T/fill.out" 2>&1 ||
		fail "filling $name: $(tail -c 600 "$T/fill.out")"
	log "$name on ${azs[*]}: created, written once in $((($(date +%s%N) - t0) / 1000000)) ms"
}
rmvol() {
	local name=$1 az
	shift
	for az in "$@"; do ctl "$az" volume delete "$name" --force >/dev/null || fail "delete $name on $az"; done
}
vuri() { echo "nbd://$(az_addr "$1"):$URBD_NBD_PORT/$2"; }

# fio_run NAME QD -> "lat_mean_us lat_p99_us iops ios errors" (client in az a)
fio_run() {
	local name=$1 qd=$2
	in_az a fio --name=bench --ioengine=nbd --uri="$(vuri a "$name")" --rw=randwrite \
		--bs=4k --iodepth="$qd" --size="$SIZE" --time_based --runtime="$RUNTIME" \
		--ramp_time="$RAMP" --norandommap --randrepeat=0 --lat_percentiles=1 \
		--output-format=json >"$T/fio.json" 2>"$T/fio.err" ||
		fail "fio on $name QD$qd: $(tail -c 600 "$T/fio.err")"
	"$PY" - "$T/fio.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text[text.index("{"):])["jobs"][0]
w = j["write"]
p99 = w["lat_ns"].get("percentile", {}).get("99.000000", 0) / 1000
print(f'{w["lat_ns"]["mean"] / 1000:.1f} {p99:.1f} {w["iops"]:.0f} {w["total_ios"]} {j["error"]}')
PY
}

# disk_run NJOBS QD -> "lat_mean_us iops lat_p99_us": the store's disk alone, NJOBS
# fio processes each writing 4k at random into a file of its own (written
# once, at its first use) with
# io_uring O_DIRECT: the disk work N replicas on this one machine must do
# (every replica writes every block to the same disk). Its IOPS / N is
# the most a replicated write could reach here with zero software cost.
disk_run() {
	local n=$1 qd=$2 j files=()
	for ((j = 0; j < n; j++)); do [ -e "$T/disk.$j" ] || files+=("$T/disk.$j"); done
	# each file written once first (kept for the later runs), as urbd's
	# volumes are: a first write into a hole allocates, slower, and not
	# what is measured through urbd
	for j in "${files[@]}"; do
		fio --name=fill --ioengine=io_uring --direct=1 --rw=write --bs=1M --iodepth=8 \
			--size="$SIZE" --filename="$j" >"$T/disk.fill" 2>&1 ||
			fail "fio filling $j: $(tail -c 600 "$T/disk.fill")"
	done
	fio --name=disk --ioengine=io_uring --direct=1 --rw=randwrite --bs=4k --iodepth="$qd" \
		--size="$SIZE" --numjobs="$n" --filename_format="$T/disk.\$jobnum" \
		--time_based --runtime="$RUNTIME" --ramp_time="$RAMP" --norandommap \
		--randrepeat=0 --group_reporting --lat_percentiles=1 --output-format=json \
		>"$T/disk.json" 2>"$T/disk.err" ||
		fail "fio on the disk: $(tail -c 600 "$T/disk.err")"
	"$PY" - "$T/disk.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
w = json.loads(text[text.index("{"):])["jobs"][0]["write"]
p99 = w["lat_ns"].get("percentile", {}).get("99.000000", 0) / 1000
print(f'{w["lat_ns"]["mean"] / 1000:.1f} {w["iops"]:.0f} {p99:.1f}')
PY
}
declare -A DISK=() # "njobs,qd,round" -> disk_run's line

declare -A RES=() # "point,qd,round" -> fio_run's line
declare -A CPU=() # "point,qd,round" -> CPU ticks (utime+stime) of the three daemons during it
ticks() {
	local az t=0
	for az in a b c; do t=$((t + $(awk '{print $14 + $15}' "/proc/${URBD_PIDS[$az]}/stat"))); done
	echo "$t"
}
# the store's block device, as /proc/diskstats names it: what it did during
# each QD32 run (is the disk the limit?); none: not reported
DEVNAME=$(basename "$(df --output=source "$TMPDIR" | tail -1)")
awk -v d="$DEVNAME" '$3 == d {f = 1} END {exit !f}' /proc/diskstats || DEVNAME=
declare -A DEV=() # "point,round" -> "writes weighted_write_ms busy_ms elapsed_ms" during QD32
devstat() { # -> "writes completed, ms writing, ms busy, now ms"
	awk -v d="$DEVNAME" -v t="$(($(date +%s%N) / 1000000))" '$3 == d {print $8, $11, $13, t}' /proc/diskstats
}
declare -A NREP=() # point -> writes replicated during its runs
declare -A NCONN=() # point -> "peers connected after its last run/peers"
# measure POINT NAME ROUND [AZ...]: QD1 then QD32 on NAME; for a replicated
# volume also check it stayed replicated (every peer still connected)
measure() {
	local point=$1 name=$2 round=$3 qd n0=0 n1 conn t0 d0=
	shift 3
	[ $# -gt 1 ] && n0=$(jf a "$name" 'v["replication"]["writes_replicated"]')
	for qd in 1 32; do
		t0=$(ticks)
		[ "$qd" != 32 ] || [ -z "$DEVNAME" ] || d0=$(devstat)
		RES[$point,$qd,$round]=$(fio_run "$name" "$qd")
		CPU[$point,$qd,$round]=$(($(ticks) - t0))
		[ "$qd" != 32 ] || [ -z "$DEVNAME" ] ||
			DEV[$point,$round]=$(awk '{for (i = 1; i <= 4; i++) printf "%d ", $(i + 4) - $i}' <<<"$d0 $(devstat)")
		log "  round $round $point QD$qd: $(awk -v q="$qd" '{ if (q == 1) print $1 " us mean, " $2 " us p99"; else print $3 " IOPS" }' <<<"${RES[$point,$qd,$round]}")"
	done
	if [ $# -gt 1 ]; then
		n1=$(jf a "$name" 'v["replication"]["writes_replicated"]')
		conn=$(jf a "$name" "sum(p['connection']=='connected' for p in v['replication']['peers'])")
		NREP[$point]=$((${NREP[$point]:-0} + n1 - n0))
		NCONN[$point]=$conn/$(($# - 1))
	fi
}

rss_of() { # AZ -> "VmRSS VmHWM" in KiB
	awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {print r, h}' "/proc/${URBD_PIDS[$1]}/status"
}

# ---- the cluster -----------------------------------------------------------------------

log "bench-repl: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds of ${RUNTIME}s (+${RAMP}s ramp) per run at RTT 0, 1 round at RTT ${RTTS// /, } ms, volumes $SIZE, store on $(df --output=source "$TMPDIR" | tail -1)"
cluster_up a b c
printf 'urbd-bench-secret-%s' "$RANDOM$RANDOM" >"$REPL_SECRET"
chmod 0400 "$REPL_SECRET"
for az in a b c; do repl_start "$az"; done
MODE=$(delay_mode)
bg_in_az b "$T/tcpping-b.log" "$PY" "$CLUSTER_DIR/tcpping.py" server "$(az_addr b)" "$PING_PORT"
wait_until 5 grep -qs ready "$T/tcpping-b.log" || fail "tcpping server in az b did not start"

# RTT 0: unreplicated, 2 and 3 replicas, alternating within each round
set_rtt 0
mkvol u a
mkvol r2 a b
mkvol r3 a b c
orders=("u r2 r3" "r2 r3 u" "r3 u r2")
for ((round = 1; round <= ROUNDS; round++)); do
	for n in 1 3; do
		for qd in 1 32; do
			DISK[$n,$qd,$round]=$(disk_run "$n" "$qd")
		done
		log "  round $round disk alone, $n writer(s): QD1 $(cut -d' ' -f1 <<<"${DISK[$n,1,$round]}") us, QD32 $(cut -d' ' -f2 <<<"${DISK[$n,32,$round]}") IOPS in all"
	done
	for pt in ${orders[$(((round - 1) % 3))]}; do
		case $pt in
		u) measure u u "$round" ;;
		r2) measure r2@0 r2 "$round" a b ;;
		r3) measure r3@0 r3 "$round" a b c ;;
		esac
	done
done
rm -f "$T"/disk.[0-9]*
rmvol r2 a b
rmvol r3 a b c

# RTT 0 again with every daemon busy-polling (--poll-us, README.md): the
# daemons restart (u stays, r2 and r3 are made anew), then restart
# without it for the rest
restart_daemons() {
	local az
	for az in a b c; do stop_urbd_in "$az"; done
	for az in a b c; do repl_start "$az" "$@"; done
}
if [ "$POLL_US" != 0 ]; then
	restart_daemons --poll-us "$POLL_US"
	mkvol r2 a b
	mkvol r3 a b c
	for ((round = 1; round <= ROUNDS; round++)); do
		for pt in ${orders[$(((round - 1) % 3))]}; do
			case $pt in
			u) measure u+poll u "$round" ;;
			r2) measure r2@0+poll r2 "$round" a b ;;
			r3) measure r3@0+poll r3 "$round" a b c ;;
			esac
		done
	done
	rmvol r2 a b
	rmvol r3 a b c
	restart_daemons
fi

# delayed points: one round each, a fresh volume per point (relay links
# are per RTT); in relay mode first a relay with no delay: its own cost
rtts=()
[ "$MODE" = relay ] && [ "$RELAY0" = 1 ] && rtts+=(relay0)
for r in $RTTS; do rtts+=("$r"); done
for r in "${rtts[@]}"; do
	if [ "$r" = relay0 ]; then set_rtt 0 relay; else set_rtt "$r"; fi
	ns="2 3"
	[ "$r" = relay0 ] && ns=3 # the relay's own cost: one point is enough
	for n in $ns; do
		azs=(a b c)
		azs=("${azs[@]:0:n}")
		mkvol "r$n" "${azs[@]}"
		measure "r$n@$r" "r$n" 1 "${azs[@]}"
		rmvol "r$n" "${azs[@]}"
	done
done
RSS_LOAD=$(for az in a b c; do echo "$az $(rss_of "$az")"; done)

t0=0 t1=0 t2=0 FO_OK=0 VERIFY_RC=0 RSS_A="0 0" CHK_SUM= VERIFY= RSS_END=
: >"$T/qio.out"
if [ "$STORE" = disk ]; then
# ---- failover --------------------------------------------------------------------------
# 3 replicas, RTT 0. A checker (tests/cluster/checker.py: stamped FUA writes,
# journal) writes through a from az c and moves to b when a goes away;
# afterwards every write it saw acknowledged must read back through b.
# The timed path: kill -9 a's daemon -> `volume promote` on b until it
# succeeds -> qemu-io FUA write through b's NBD address until one succeeds.
set_rtt 0
# shellcheck disable=SC2034 # repl_lib.sh's checker helpers use it
VOL=fo
CHK_BLOCKS=2048
FILL=0 # the checker wants zeroes (or its stamps) in blocks it never wrote
mkvol fo a b c
checker_bg c fo 30 "$(vuri a fo),$(vuri b fo)" --reconnect-seconds 15 --io-timeout 5
sleep 2
apid=${URBD_PIDS[a]}
RSS_A=$(rss_of a)
t0=$(date +%s%N)
kill -KILL "$apid"
wait "$apid" 2>/dev/null || true
unset "URBD_PIDS[a]"
promote_tries=0
while :; do
	promote_tries=$((promote_tries + 1))
	ctl b -t 2000 volume promote fo >"$T/promote.out" 2>&1 && break
	[ "$promote_tries" != 1 ] || tr -d '\n' <"$T/promote.out" >"$T/promote.first"
	[ $(($(date +%s%N) - t0)) -lt 20000000000 ] || break
	sleep 0.01
done
t1=$(date +%s%N)
write_tries=0
while :; do
	write_tries=$((write_tries + 1))
	# past the checker's blocks
	in_az b timeout 5 qemu-io -f raw "$(vuri b fo)" -c "write -f -P 0x5a $((CHK_BLOCKS * 4096)) 4k" \
		>"$T/qio.out" 2>&1 && ! grep -qiE 'fail|error' "$T/qio.out" && break
	[ $(($(date +%s%N) - t0)) -lt 20000000000 ] || break
	sleep 0.01
done
t2=$(date +%s%N)
FO_OK=1
grep -q 'wrote 4096' "$T/qio.out" || FO_OK=0
log "failover: promote after $(((t1 - t0) / 1000000)) ms ($promote_tries tries; first refusal: $(cut -c1-200 "$T/promote.first" 2>/dev/null || echo none)), first write after $(((t2 - t0) / 1000000)) ms ($write_tries tries: $(tr '\n' ' ' <"$T/qio.out" | cut -c1-200))"
# let the checker run on b for a moment, then stop it (SIGTERM: summary)
sleep 2
kill -TERM "$CHK_PID" 2>/dev/null || true
wait_until 15 _gone "$CHK_PID" || true
wait "$CHK_PID" 2>/dev/null || true
CHK_SUM=$(tail -n 1 "$T/fo.out")
VERIFY=$(in_az b timeout 120 /usr/bin/python3 "$CHECKER" verify --uri "$(vuri b fo)" \
	--journal "$T/fo.journal" --blocks "$CHK_BLOCKS" 2>&1) && VERIFY_RC=0 || VERIFY_RC=$?
# ---- resyncs, unthrottled. c lost its primary uncleanly ("unconfirmed"):
# b resyncs what b tracked c may lack plus what c reported it may hold
# (peer acks), right after its promotion, while the checker writes. a
# returns: it crashed as primary, so b resyncs its activity-log extents
# plus what b wrote since. Then c is replaced by an empty node (its store
# wiped, `add-replica --replace`, `create --join`): a full sync. Here
# source and target share one disk, so its peer is the disk copying a
# file by itself (fio reading one file and writing another at once, 1 MiB
# O_DIRECT, QD4 each: the write side's bandwidth), measured just before;
# the disk's plain sequential write bandwidth is printed beside it.
repl_start a
wait_until 120 up_to_date a || true
export RESYNC_LINE AL_LINE AL_EXTENTS FULL_LINE DISK_BW
RESYNC_LINE=$(grep -h "resync to peer 2 (node-c) done" "$T"/az-b/urbd.*.log 2>/dev/null | tail -n 1)
AL_LINE=$(grep -h "resync to peer 0 (node-a) done" "$T"/az-b/urbd.*.log 2>/dev/null | tail -n 1)
AL_EXTENTS=$(grep -ho "was primary at a crash: [0-9]* activity-log extents" "$T"/az-a/urbd.*.log 2>/dev/null | tail -n 1)
fio --name=bw --ioengine=io_uring --direct=1 --rw=write --bs=1M --iodepth=8 --size="$SIZE" \
	--filename="$T/bw.dat" --output-format=json >"$T/bw.json" 2>"$T/bw.err" || fail "fio bw: $(tail -c 300 "$T/bw.err")"
fio --name=rd --ioengine=io_uring --direct=1 --rw=read --bs=1M --iodepth=4 --size="$SIZE" \
	--filename="$T/bw.dat" --name=wr --ioengine=io_uring --direct=1 --rw=write --bs=1M --iodepth=4 \
	--size="$SIZE" --filename="$T/cp.dat" --output-format=json >"$T/cp.json" 2>"$T/cp.err" ||
	fail "fio copy: $(tail -c 300 "$T/cp.err")"
rm -f "$T/bw.dat" "$T/cp.dat"
_bw() { "$PY" -c 'import json,sys; t=open(sys.argv[1]).read(); print(sum(j["write"]["bw_bytes"] for j in json.loads(t[t.index("{"):])["jobs"]))' "$1"; }
DISK_BW="$(_bw "$T/bw.json") $(_bw "$T/cp.json")"
fo_uuid=$(jf b fo 'v["uuid"]')
stop_urbd_in c
rm -rf "$T/az-c/store"
mc2="2=node-c2@$(az_addr c):$REPL_PORT"
for az in a b; do ctl "$az" volume add-replica fo "$mc2" --replace >/dev/null || fail "replace c on $az"; done
repl_start c
ctl c volume create fo "$SIZE" --replicas "0=node-a@$(az_addr a):$REPL_PORT,1=node-b@$(az_addr b):$REPL_PORT,$mc2" \
	--local-id 2 --uuid "$fo_uuid" --join >/dev/null || fail "create --join on the new c"
wait_until 120 up_to_date c || true
FULL_LINE=$(grep -h "resync to peer 2 (node-c2) done" "$T"/az-b/urbd.*.log 2>/dev/null | tail -n 1)
RSS_END=$(for az in b c; do echo "$az $(rss_of "$az")"; done)

fi # STORE=disk

# daemon logs: every line at WARN or ERR (the failover makes some)
LOGS=$(for f in "${URBD_ALL_LOGS[@]}"; do
	grep -E '^[0-9:.]+ (WARN|ERR) ' "$f" | sed "s|^|${f#"$T"/}: |" || true
done)

# ---- report ----------------------------------------------------------------------------
"$PY" - "$MODE" "$RUNTIME" "$RAMP" "$ROUNDS" "$SIZE" "${rtts[*]}" \
	"$POLL_US" "$STORE" \
	"$((t1 - t0))" "$((t2 - t0))" "$FO_OK" "$VERIFY_RC" "$RSS_A" \
	"${URBD_REPL_PING_MS:-default 500}" "${URBD_REPL_TIMEOUT_MS:-default 2000}" \
	"$(for k in "${!MRTT[@]}"; do echo "$k ${MRTT[$k]}"; done)" "$(tr '\n' ' ' <"$T/qio.out" | cut -c1-200)" \
	"$(for k in "${!CPU[@]}"; do echo "$k ${CPU[$k]}"; done)" "$(getconf CLK_TCK)" \
	"$(for k in "${!DISK[@]}"; do echo "$k ${DISK[$k]}"; done)" \
	"$(for k in "${!DEV[@]}"; do echo "$k ${DEV[$k]}"; done)" "$DEVNAME" <<PY
import json, statistics, sys
mode, runtime, ramp, rounds, size, rtts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6].split()
poll_us = int(sys.argv.pop(7))
store = sys.argv.pop(7)
t_promote, t_write, fo_ok, verify_rc, rss_a = int(sys.argv[7]) / 1e9, int(sys.argv[8]) / 1e9, sys.argv[9] == "1", int(sys.argv[10]), sys.argv[11].split()
ping, tmo = sys.argv[12], sys.argv[13]
qio_last = sys.argv[15]
cpu = {tuple(l.split()[0].split(",")): int(l.split()[1]) for l in sys.argv[16].splitlines() if l.strip()}
hz = int(sys.argv[17])
disk = {}
for l in sys.argv[18].splitlines():
    if l.strip():
        k, lat, iops, p99 = l.split()
        n, qd, r = k.split(",")
        disk.setdefault((int(n), int(qd)), []).append((float(lat), float(iops), float(p99)))
mrtt = {l.split()[0]: [float(x) for x in l.split()[1:]] for l in sys.argv[14].splitlines() if l.strip()}
dev = {tuple(l.split()[0].split(",")): [int(x) for x in l.split()[1:]] for l in sys.argv[19].splitlines() if l.strip()}
devname = sys.argv[20]
res = {}
for line in """$(for k in "${!RES[@]}"; do echo "$k ${RES[$k]}"; done)""".splitlines():
    key, *v = line.split()
    p, qd, r = key.split(",")
    res[(p, int(qd), int(r))] = [float(x) for x in v]
nrep = {}
for line in """$(for k in "${!NREP[@]}"; do echo "$k ${NREP[$k]} ${NCONN[$k]}"; done)""".splitlines():
    k, n, conn = line.split()
    nrep[k] = (int(n), conn)

def rounds_of(p):
    return sorted(r for (q, qd, r) in res if q == p and qd == 1)
def med(p, qd, i):
    return statistics.median(res[(p, qd, r)][i] for r in rounds_of(p))
def spread(p, qd, i, fmt):
    v = [res[(p, qd, r)][i] for r in rounds_of(p)]
    return "" if len(v) < 2 else f" ({fmt(min(v))}..{fmt(max(v))})"
def cpu_per_io(p, qd):
    # CPU is sampled over ramp + runtime; fio counts I/Os after the ramp only
    v = [cpu[(p, str(qd), str(r))] / hz * 1e6 / (res[(p, qd, r)][2] * (int(runtime) + int(ramp)))
         for r in rounds_of(p) if res[(p, qd, r)][2]]
    return statistics.median(v) if v else float("nan")
def verdict(ok):
    return "meets" if ok else "BELOW"
errors = sum(v[4] for v in res.values())

print()
if store == "ram":
    print("DIAGNOSTIC RUN, stores on a RAM-backed ext4 (loop device on tmpfs; O_DIRECT works on it, nothing is durable):")
    print("urbd without the shared virtual disk; the 'disk alone' peer below is that RAM disk. RTT 0 points only.")
print(f"urbd replication: fio 4k random write over NBD (libnbd), client in az a's namespace, primary on az a,")
print(f"volumes {size} written once before measuring, {runtime}s (+{ramp}s ramp) per run; RTT 0: median of {rounds} rounds")
print(f"(targets alternate within each round, spread = min..max), delayed RTTs: 1 round. Daemons: --reactors 1")
print(f"(tests/cluster/repl_lib.sh), ack=all, ping {ping} ms, timeout {tmo} ms. Delay: {mode}" +
      (" (tests/cluster/relay.c: a TCP relay in the dialing AZ, epoll; it adds its own cost, see 'relay +0')" if mode == "relay" else " (tc netem)"))
print("QD1 latency = fio total latency (submit -> completion), mean and p99.")
print("RTT a <-> b measured through the same path (tcpping.py, 64 B ping-pongs, median (min..max) ms): " +
      ", ".join(f'{"direct" if k == "0" else "relay +0" if k == "relay0" else "+" + k + " ms"} {v[0]:.3f} ({v[1]:.3f}..{v[2]:.3f})'
                for k, v in sorted(mrtt.items(), key=lambda kv: kv[1][0])))
print()
u1, u1p, u32 = med("u", 1, 0), med("u", 1, 1), med("u", 32, 2)
print("urbd CPU/IO: utime+stime of all three daemons over a run / the I/Os of the run (tick %.0f ms)." % (1000 / hz))
if disk:
    def dmed(n, qd, i):
        return statistics.median(x[i] for x in disk[(n, qd)])
    print("Peer: the store's disk alone (fio io_uring O_DIRECT 4k random write, one file per writer, same rounds):")
    print("  1 writer:  QD1 %.1f us, QD32 %.0f IOPS (p99 %.1f ms);  3 writers at once: QD1 %.1f us, QD32 %.0f IOPS in all (p99 %.1f ms)" %
          (dmed(1, 1, 0), dmed(1, 32, 1), dmed(1, 32, 2) / 1000, dmed(3, 1, 0), dmed(3, 32, 1), dmed(3, 32, 2) / 1000))
print()
print(f'{"":<24} {"QD1 lat":>10} {"QD1 lat":>10} {"":>10} {"QD32 IOPS":>9} {"QD32 lat":>9}  {"urbd CPU/IO":>11} {"urbd CPU/IO":>11}')
print(f'{"point":<24} {"mean":>10} {"p99":>10} {"QD32 IOPS":>10} {"x unrepl":>9} {"p99":>9}  {"QD1":>11} {"QD32":>11}  {"replicated writes, peers connected after":<20}')
def row(p, label):
    n = nrep.get(p)
    extra = f"{n[0]} writes, {n[1]}" if n else ""
    ratio = med(p, 32, 2) / u32 if u32 else float("nan")
    print(f'{label:<24} {med(p, 1, 0):>8.1f}us {med(p, 1, 1):>8.0f}us {med(p, 32, 2):>10.0f} {ratio:>9.2f} {med(p, 32, 1) / 1000:>7.1f}ms  '
          f'{cpu_per_io(p, 1):>9.1f}us {cpu_per_io(p, 32):>9.1f}us  {extra}')
    if rounds_of(p) and len(rounds_of(p)) > 1:
        print(f'{"":<24} {spread(p, 1, 0, lambda x: f"{x:.0f}"):>10} {"":>10} {spread(p, 32, 2, lambda x: f"{x:.0f}"):>10}')
row("u", "unreplicated (local)")
points = [("r2@0", 2, 0.0, "2 replicas, RTT 0"), ("r3@0", 3, 0.0, "3 replicas, RTT 0")]
for r in rtts:
    for n in (2, 3):
        if r == "relay0":
            if n == 3:
                points.append((f"r{n}@relay0", n, 0.0, f"{n} replicas, relay +0"))
        else:
            points.append((f"r{n}@{r}", n, float(r), f"{n} replicas, RTT {r} ms"))
for p, n, rtt, label in points:
    row(p, label)
polled = [("u+poll", "unreplicated, polling"), ("r2@0+poll", "2 replicas RTT 0, poll"), ("r3@0+poll", "3 replicas RTT 0, poll")]
polled = [(p, l) for p, l in polled if rounds_of(p)]
if polled:
    print(f"with every daemon started with --poll-us {poll_us} (busy-polling; the same volumes, measured after the rows above):")
    for p, label in polled:
        row(p, label)
if dev:
    # per QD32 run: device writes per write fio saw (ramp included, as
    # cpu_per_io), the share of the run the device was busy, the writes
    # in flight at it on average, and a device write's mean time
    print()
    print(f"the store's disk ({devname}, /proc/diskstats) during the QD32 runs, medians: writes per I/O through urbd, busy,")
    print("writes in flight at the device on average, time per device write (the disk alone at QD32 above: its own limit)")
    for p, label in [("u", "unreplicated (local)")] + [(q, l) for q, _, _, l in points] + list(polled):
        v = [dev[(p, str(r))] for r in rounds_of(p) if (p, str(r)) in dev]
        if not v:
            continue
        ios = [res[(p, 32, r)][2] * (int(runtime) + int(ramp)) for r in rounds_of(p) if (p, str(r)) in dev]
        per = statistics.median(x[0] / max(1.0, n) for x, n in zip(v, ios))
        busy = statistics.median(100.0 * x[2] / max(1, x[3]) for x in v)
        infl = statistics.median(x[1] / max(1, x[3]) for x in v)
        tpw = statistics.median(1000.0 * x[1] / max(1, x[0]) for x in v)
        print(f"  {label:<24} {per:4.2f} writes/IO  busy {busy:3.0f}%  {infl:5.1f} in flight  {tpw:6.0f} us per write"
              f"  = {statistics.median(x[0] * 1000.0 / max(1, x[3]) for x in v):7.0f} device writes/s")

print()
print("bars (DESIGN.md §9; the RTT bar is written for 3 replicas, applied to 2 as well; 'local' = unreplicated QD1 mean;")
print("the RTT is the nominal injected one" + (", and 'relay +0' has no bar of its own: it is the relay's cost)" if mode == "relay" else ")"))
for p, n, rtt, label in points:
    lat, iops = med(p, 1, 0), med(p, 32, 2)
    if not p.endswith("relay0"):
        lim = u1 + rtt * 1000 + 50
        meas = ""
        m = mrtt.get(p.split("@")[1])
        if rtt and m:
            # the relay's own delay is not exact: the bar against the RTT the path really has
            extra = (m[0] - mrtt.get("0", [0])[0]) * 1000
            meas = f'\n  {"":<22} (against the measured extra RTT {extra:.0f} us instead: <= {u1 + extra + 50:.1f} us: {verdict(lat <= u1 + extra + 50)})'
        print(f'  {label:<22} QD1 mean {lat:7.1f} us <= local {u1:.1f} + RTT {rtt * 1000:.0f} + 50 = {lim:7.1f} us: {verdict(lat <= lim)}{meas}')
        if len(rounds_of(p)) > 1:
            per = [res[(p, 32, r)][2] / res[("u", 32, r)][2] for r in rounds_of(p)]
            got = statistics.median(per)
            sp = f" (rounds {min(per):.2f}..{max(per):.2f})"
        else:
            got, sp = iops / u32, ""
        print(f'  {"":<22} QD32 {iops:7.0f} IOPS >= 0.5x unreplicated {u32:.0f}: {got:.2f}x{sp}: {verdict(got >= 0.5)}')
        m = mrtt.get(p.split("@")[1])
        if rtt and m and rounds_of(f"r{n}@0"):
            # 32 in flight, each taking its RTT 0 time plus the added round
            # trip: where a replicator that adds only the round trip would
            # be (Little's law; an estimate, not a bound: writes on the wire
            # leave the disk's queue shorter)
            t0 = 32 / med(f"r{n}@0", 32, 2)
            extra = max(0.0, m[0] - mrtt.get("0", [0])[0]) / 1000
            print(f'  {"":<22} (Little\'s law at QD32: 32 / ({t0 * 1e3:.2f} ms per write at RTT 0 + {extra * 1e3:.2f} ms measured RTT) = {32 / (t0 + extra):.0f} IOPS = {32 / (t0 + extra) / u32:.2f}x: RTT 0 plus the round trip alone)')
    if p == "r3@0":
        print(f'  {label:<22} QD1 mean {lat:7.1f} us <= 150 us (Ceph RBD size 3 here: ~1.5-1.8 ms): {verdict(lat <= 150)}')
        print(f'  {"":<22} QD32 {iops:7.0f} IOPS >= 20000 (Ceph RBD: ~1.4k-1.8k): {verdict(iops >= 20000)}')
        if (3, 32) in disk and (1, 1) in disk:
            d3 = statistics.median(x[1] for x in disk[(3, 32)])
            d1 = statistics.median(x[0] for x in disk[(3, 1)])
            l1 = statistics.median(x[0] for x in disk[(1, 1)])
            print(f'  {"":<22} the disk alone with 3 writers (the work of 3 replicas here): {d3:.0f} IOPS in all = {d3 / 3:.0f} per')
            print(f'  {"":<22} replicated write at most; urbd reaches {iops / (d3 / 3):.2f}x of that. QD1: one O_DIRECT write {l1:.1f} us alone,')
            print(f'  {"":<22} {d1:.1f} us with 3 writers at once; urbd {lat:.1f} us (network, NBD and the peers on top)')
            # where the 150 us goes on this machine: the unreplicated NBD path
            # with its disk write as slow as 3 replicas sharing one disk make
            # it, plus one measured round trip to the peers. What is left is
            # the replication's own cost, to hold against the bar's 50 us
            m0 = mrtt.get("0")
            if m0:
                base = u1 - l1 + d1
                own = lat - base - m0[0] * 1000
                print(f'  {"":<22} decomposed (a derived figure, not the bar): unreplicated {u1:.1f} - one write alone {l1:.1f}')
                print(f'  {"":<22} + one of 3 at once {d1:.1f} = {base:.1f} us (no replication could go below it on this one disk)')
                print(f'  {"":<22} + measured RTT {m0[0] * 1000:.0f} us = {base + m0[0] * 1000:.1f} us; urbd {lat:.1f} us: {own:.1f} us of its own')
                print(f'  {"":<22} (the bar allows 50 us above local + RTT)')
            # QD32: a replicated write completes with the slowest of its 3
            # disk writes, and this disk stalls for tens of ms now and then
            p3 = statistics.median(x[2] for x in disk[(3, 32)])
            print(f'  {"":<22} QD32 tail: the disk alone, 3 writers at QD32: p99 {p3 / 1000:.1f} ms{" (it stalls 10-35 ms at times)" if store == "disk" else ""};')
            print(f'  {"":<22} urbd p99 {med(p, 32, 1) / 1000:.1f} ms, unreplicated {med("u", 32, 1) / 1000:.1f} ms: a replicated write waits for the slowest of its 3')
if polled and rounds_of("r3@0+poll"):
    # the stricter local: the better of the two unreplicated figures
    ul, uq = min(u1, med("u+poll", 1, 0)), max(u32, med("u+poll", 32, 2))
    print(f"  with --poll-us {poll_us} ('local' = the better unreplicated QD1 of the two runs, {ul:.1f} us; QD32 against the better, {uq:.0f} IOPS):")
    for p, label in polled[1:]:
        lat, iops = med(p, 1, 0), med(p, 32, 2)
        print(f'  {label:<22} QD1 mean {lat:7.1f} us <= local {ul:.1f} + RTT 0 + 50 = {ul + 50:7.1f} us: {verdict(lat <= ul + 50)}')
        print(f'  {"":<22} QD32 {iops:7.0f} IOPS >= 0.5x unreplicated {uq:.0f}: {iops / uq:.2f}x: {verdict(iops / uq >= 0.5)}')
        if p == "r3@0+poll":
            print(f'  {"":<22} QD1 mean {lat:7.1f} us <= 150 us: {verdict(lat <= 150)};  QD32 {iops:7.0f} IOPS >= 20000: {verdict(iops >= 20000)}')
            print(f'  {"":<22} (without polling, same run: QD1 {med("r3@0", 1, 0):.1f} us, QD32 {med("r3@0", 32, 2):.0f} IOPS; unreplicated QD1 {u1:.1f} us polling off, {med("u+poll", 1, 0):.1f} us on)')
if store == "disk":
    import os, re
    rl = os.environ.get("RESYNC_LINE", "")
    mm = re.search(r"done: (\d+) bytes in ([0-9.]+) s \(([0-9.]+) MiB/s\)", rl)
    mf = re.search(r"done: (\d+) bytes in ([0-9.]+) s \(([0-9.]+) MiB/s\)", os.environ.get("FULL_LINE", ""))
    bws = (os.environ.get("DISK_BW", "") or "0 0").split()
    wbw, cbw = int(bws[0]) / 2**20, int(bws[1]) / 2**20
    if mf:
        got = float(mf.group(3))
        print(f'  resync throughput      full sync of a replacement c, unthrottled: {int(mf.group(1)) / 2**20:.0f} MiB in {float(mf.group(2)):.2f} s = {got:.0f} MiB/s;')
        print(f'  {"":<22} the disk copying by itself (read + write at once, source and target share it here): {cbw:.0f} MiB/s:')
        print(f'  {"":<22} {got / cbw if cbw else float("nan"):.2f}x >= 0.8x: {verdict(cbw and got >= 0.8 * cbw)} (its plain sequential write: {wbw:.0f} MiB/s, {got / wbw if wbw else float("nan"):.2f}x)')
    else:
        print(f'  resync throughput      not measured: no finished full sync of the replacement c in b\'s log')
    if mm:
        print(f'  {"":<22} c, unconfirmed after the crash (peer acks: tracked on b + c\'s report): {int(mm.group(1)) / 2**20:.1f} MiB of {size} resynced in {float(mm.group(2)):.3f} s')
    ma = re.search(r"done: (\d+) bytes in ([0-9.]+) s", os.environ.get("AL_LINE", ""))
    if ma:
        print(f'  {"":<22} the crashed old primary a: {int(ma.group(1)) / 2**20:.0f} MiB resynced in {float(ma.group(2)):.2f} s ({os.environ.get("AL_EXTENTS", "?")}, plus what b wrote since)')
        print(f'  {"":<22} (resync bytes <= 1.1x dirtied: tests/cluster/t-repl-kill-secondary checks moved = dirtied on every run)')
    if fo_ok:
        print(f'  failover (3 replicas, RTT 0): kill -9 of a\'s daemon -> b promoted {t_promote:.3f} s -> first FUA write acknowledged through b {t_write:.3f} s <= 2 s: {verdict(t_write <= 2)}')
    else:
        print(f'  failover (3 replicas, RTT 0): kill -9 of a\'s daemon -> b promoted {t_promote:.3f} s -> NO write acknowledged through b within {t_write:.1f} s: BELOW (qemu-io: {qio_last})')
    chk = """$CHK_SUM"""
    try:
        c = json.loads(chk)
        print(f'    checker (FUA writes through a, then b, from az c): {c.get("acked")} acknowledged, {c.get("unknown")} unknown, '
              f'{c.get("errors")} errors, {c.get("reconnects")} reconnects, longest gap between acks {float(c.get("max_ack_gap_s", 0)):.3f} s')
    except Exception:
        print(f'    checker summary unreadable: {chk[:300]}')
    try:
        vj = json.loads("""$(tail -n 1 <<<"$VERIFY")""")
        vs = f'{vj["acked_blocks"]} blocks with acknowledged writes, {vj["at_last_acked"]} at the last acknowledged version, {vj["newer_in_flight"]} newer (in flight), {vj["violations"]} violations'
    except Exception:
        vs = """$(tail -n 1 <<<"$VERIFY")"""[:300]
    print(f'    no acknowledged write lost (checker verify through b): {"yes" if verify_rc == 0 else "NO (exit %d)" % verify_rc}: {vs}')
if errors:
    print(f'  fio reported {errors:.0f} errors')
print()
print("urbd RSS (VmRSS / peak VmHWM):")
for line in """$RSS_LOAD""".splitlines():
    az, r, h = line.split()
    print(f'  az {az} after the load points: {int(r) / 1024:7.1f} / {int(h) / 1024:7.1f} MiB')
if store == "disk":
    print(f'  az a before its kill -9:      {int(rss_a[0]) / 1024:7.1f} / {int(rss_a[1]) / 1024:7.1f} MiB')
for line in """$RSS_END""".splitlines():
    az, r, h = line.split()
    print(f'  az {az} after the failover:   {int(r) / 1024:7.1f} / {int(h) / 1024:7.1f} MiB')
PY
if [ -n "$LOGS" ]; then
	# deleting a volume between points makes its peers log the shutdown
	expected='peer disconnected: shutdown|lost quorum'
	others=$(grep -vE "$expected" <<<"$LOGS" || true)
	echo
	echo "urbd logged $(wc -l <<<"$LOGS") lines at WARN or ERR, $(grep -cE "$expected" <<<"$LOGS" || true) of them the peers of a deleted volume; the others${others:+ (the last 12)}:"
	[ -z "$others" ] || tail -n 12 <<<"$others" | cut -c1-220
fi
if [ "$VERIFY_RC" != 0 ]; then
	echo
	echo "checker verify through b:"
	head -n 20 <<<"$VERIFY"
fi
