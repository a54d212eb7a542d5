#!/usr/bin/env bash
# make bench: urbd's NBD frontend against its peers on the same backing
# file, in one run (DESIGN.md §9):
#   urbd          fio --ioengine=nbd -> urbd (O_DIRECT, io_uring)
#   qemu-nbd      -f raw --cache=none --aio=io_uring (also bypasses the page cache)
#   nbdkit file   page cache, for context
#   raw           fio --ioengine=io_uring --direct=1 on the file: the limit
# Prints IOPS/bandwidth, the ratios, and urbd's peak RSS. Figures, never
# assertions: the bar is printed beside them.
set -euo pipefail
BUILD=${1:-build}
RUNTIME=${BENCH_RUNTIME:-10}
RAMP=2
SIZE=${BENCH_SIZE:-2G}
top=$(cd "$(dirname "$0")/.." && pwd)
urbd=$top/$BUILD/urbd
tmp=$(mktemp -d /var/tmp/urbd-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

for t in fio qemu-nbd nbdkit python3; do
	command -v $t >/dev/null || { echo "bench: $t not installed"; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# workload name -> fio arguments
declare -A WL=(
	[rand-write-4k-qd32]="--rw=randwrite --bs=4k --iodepth=32"
	[rand-read-4k-qd32]="--rw=randread --bs=4k --iodepth=32"
	[seq-write-1m-qd8]="--rw=write --bs=1M --iodepth=8"
)
ORDER=(rand-write-4k-qd32 rand-read-4k-qd32 seq-write-1m-qd8)

# fio_run TARGET-ARGS... -> "iops bw_bytes_per_s ios"
fio_run() {
	fio --name=bench --output-format=json --time_based --runtime="$RUNTIME" \
	    --ramp_time="$RAMP" --size="$SIZE" --norandommap --randrepeat=0 "$@" >"$tmp/fio.json" 2>"$tmp/fio.err" || {
		cat "$tmp/fio.err" >&2; return 1; }
	python3 - "$tmp/fio.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
# engines may print notices on stdout before the JSON document
j = json.loads(text[text.index("{"):])["jobs"][0]
r, w = j["read"], j["write"]
print(f'{r["iops"] + w["iops"]:.0f} {r["bw_bytes"] + w["bw_bytes"]:.0f} {r["total_ios"] + w["total_ios"]}')
PY
}

ROUNDS=${BENCH_ROUNDS:-3}
declare -A RES   # "label,workload,round" -> "iops bw ios"
declare -A CPU   # "workload,round" -> urbd CPU ticks
UPID=
measure() { # label round fio-target-args...
	local label=$1 round=$2; shift 2
	for wl in "${ORDER[@]}"; do
		local t0=0
		[ "$label" = urbd ] && t0=$(awk '{print $14 + $15}' /proc/$UPID/stat)
		RES[$label,$wl,$round]=$(fio_run "$@" ${WL[$wl]})
		[ "$label" = urbd ] && CPU[$wl,$round]=$(( $(awk '{print $14 + $15}' /proc/$UPID/stat) - t0 ))
		echo "  round $round $label $wl: ${RES[$label,$wl,$round]%% *} IOPS" >&2
	done
}
wait_nbd() { for i in $(seq 100); do nbdinfo "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

echo "bench: $(nproc) CPUs, ${ROUNDS} rounds of ${RUNTIME}s per workload and target, alternating targets, file size $SIZE, store on $(df --output=source "$tmp" | tail -1)" >&2

rss_kb=0
file=$tmp/store/volumes/bench/data
for round in $(seq "$ROUNDS"); do
	# 1. urbd on its own store; the volume's data file is the shared backing file
	port=$(free_port)
	"$urbd" --store "$tmp/store" --nbd-listen 127.0.0.1:$port --default-volume "bench:$SIZE" \
		--control "$tmp/control.sock" --log-level warn 2>>"$tmp/urbd.log" &
	UPID=$!; pids+=($UPID)
	wait_nbd "nbd://127.0.0.1:$port/bench"
	if [ "$round" = 1 ]; then
		# preallocate so no run pays for block allocation the others do not
		fio --name=fill --ioengine=nbd --uri="nbd://127.0.0.1:$port/bench" --rw=write \
		    --bs=1M --iodepth=8 --size="$SIZE" >/dev/null
	fi
	measure urbd "$round" --ioengine=nbd --uri="nbd://127.0.0.1:$port/bench"
	r=$(awk '/VmHWM/ {print $2}' /proc/$UPID/status); [ "$r" -gt "$rss_kb" ] && rss_kb=$r
	kill $UPID; wait $UPID 2>/dev/null || true

	# 2. qemu-nbd, same file
	port=$(free_port)
	qemu-nbd -f raw --cache=none --aio=io_uring -b 127.0.0.1 -p $port -t --shared=16 "$file" &
	qpid=$!; pids+=($qpid)
	wait_nbd "nbd://127.0.0.1:$port/"
	measure qemu-nbd "$round" --ioengine=nbd --uri="nbd://127.0.0.1:$port/"
	kill $qpid; wait $qpid 2>/dev/null || true

	# 3. nbdkit file plugin (page cache), same file
	port=$(free_port)
	nbdkit -f -i 127.0.0.1 -p $port file "$file" &
	kpid=$!; pids+=($kpid)
	wait_nbd "nbd://127.0.0.1:$port/"
	measure nbdkit "$round" --ioengine=nbd --uri="nbd://127.0.0.1:$port/"
	kill $kpid; wait $kpid 2>/dev/null || true

	# 4. raw io_uring O_DIRECT on the file
	measure raw "$round" --ioengine=io_uring --direct=1 --filename="$file"
done

python3 - "$rss_kb" "$ROUNDS" "$(getconf CLK_TCK)" "$((RUNTIME + RAMP))" <<PY
import statistics, sys
rss_kb, rounds, hz, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
res, cpu = {}, {}
for line in """$(for k in "${!RES[@]}"; do echo "$k ${RES[$k]}"; done)""".splitlines():
    key, iops, bw, ios = line.split()
    res[tuple(key.split(","))] = (float(iops), float(bw), int(ios))
for line in """$(for k in "${!CPU[@]}"; do echo "$k ${CPU[$k]}"; done)""".splitlines():
    key, ticks = line.split()
    cpu[tuple(key.split(","))] = int(ticks)
order = "${ORDER[*]}".split()
bar = {"rand-write-4k-qd32": ("qemu-nbd", 1.2), "rand-read-4k-qd32": ("qemu-nbd", 1.2),
       "seq-write-1m-qd8": ("raw", 0.9)}
rs = range(1, rounds + 1)
print()
print(f"medians of {rounds} rounds (targets alternate within each round); ratio spread = min..max of the per-round ratios")
print(f'{"workload":<20} {"urbd":>12} {"qemu-nbd":>12} {"nbdkit":>12} {"raw":>12}  {"urbd/qemu-nbd":>13} {"urbd/nbdkit":>11} {"urbd/raw":>8}  {"urbd CPU/IO":>11}  bar')
for wl in order:
    seq = wl.startswith("seq")
    idx = 1 if seq else 0
    val = lambda p, r: res[(p, wl, str(r))][idx]
    med = {p: statistics.median(val(p, r) for r in rs) for p in ("urbd", "qemu-nbd", "nbdkit", "raw")}
    fmt = (lambda x: f'{x / 2**20:.0f} MiB/s') if seq else (lambda x: f'{x:.0f} IOPS')
    peer, need = bar[wl]
    per_round = [val("urbd", r) / val(peer, r) for r in rs]
    got = statistics.median(per_round)
    # CPU was sampled over ramp + runtime; fio counts I/Os after the ramp
    # only, so estimate the I/Os of the whole window from the IOPS
    us = statistics.median(cpu[(wl, str(r))] / hz * 1e6 / (res[("urbd", wl, str(r))][0] * secs) for r in rs)
    verdict = "meets" if got >= need else "BELOW"
    print(f'{wl:<20} {fmt(med["urbd"]):>12} {fmt(med["qemu-nbd"]):>12} {fmt(med["nbdkit"]):>12} {fmt(med["raw"]):>12}  '
          f'{med["urbd"] / med["qemu-nbd"]:>13.2f} {med["urbd"] / med["nbdkit"]:>11.2f} {med["urbd"] / med["raw"]:>8.2f}  '
          f'{us:>8.1f} us  >= {need}x {peer}: median {got:.2f} ({min(per_round):.2f}..{max(per_round):.2f}) {verdict}')
print(f'\nurbd peak RSS (VmHWM, highest of the rounds): {rss_kb / 1024:.1f} MiB')
PY
"$top/bench/run-nvmf.sh" "$BUILD"
