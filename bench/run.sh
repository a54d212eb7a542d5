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

# fio_run TARGET-ARGS... -> "iops bw_bytes_per_s"
fio_run() {
	fio --name=bench --output-format=json --time_based --runtime="$RUNTIME" \
	    --ramp_time=2 --size="$SIZE" --norandommap --randrepeat=0 "$@" >"$tmp/fio.json" 2>"$tmp/fio.err" || {
		cat "$tmp/fio.err" >&2; return 1; }
	python3 - "$tmp/fio.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
# engines may print notices on stdout before the JSON document
j = json.loads(text[text.index("{"):])["jobs"][0]
r, w = j["read"], j["write"]
print(f'{r["iops"] + w["iops"]:.0f} {r["bw_bytes"] + w["bw_bytes"]:.0f}')
PY
}

declare -A RES
measure() { # label fio-target-args...
	local label=$1; shift
	for wl in "${ORDER[@]}"; do
		RES[$label,$wl]=$(fio_run "$@" ${WL[$wl]})
		echo "  $label $wl: ${RES[$label,$wl]% *} IOPS" >&2
	done
}

echo "bench: $(nproc) CPUs, runtime ${RUNTIME}s per workload, file size $SIZE, store on $(df --output=source "$tmp" | tail -1)" >&2

# 1. urbd on its own store; the volume's data file is the shared backing file
port=$(free_port)
"$urbd" --store "$tmp/store" --nbd-listen 127.0.0.1:$port --default-volume "bench:$SIZE" \
	--control "$tmp/control.sock" --log-level warn 2>"$tmp/urbd.log" &
upid=$!; pids+=($upid)
for i in $(seq 100); do
	nbdinfo "nbd://127.0.0.1:$port/bench" >/dev/null 2>&1 && break; sleep 0.1
done
file=$tmp/store/volumes/bench/data
# preallocate so no run pays for block allocation the others do not
fio --name=fill --ioengine=nbd --uri="nbd://127.0.0.1:$port/bench" --rw=write --bs=1M \
    --iodepth=8 --size="$SIZE" >/dev/null
measure urbd --ioengine=nbd --uri="nbd://127.0.0.1:$port/bench"
rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$upid/status)
cpu_ticks=$(awk '{print $14 + $15}' /proc/$upid/stat)
kill $upid; wait $upid 2>/dev/null || true

# 2. qemu-nbd, same file
port=$(free_port)
qemu-nbd -f raw --cache=none --aio=io_uring -b 127.0.0.1 -p $port -t --shared=16 "$file" &
qpid=$!; pids+=($qpid)
for i in $(seq 100); do nbdinfo "nbd://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
measure qemu-nbd --ioengine=nbd --uri="nbd://127.0.0.1:$port/"
kill $qpid; wait $qpid 2>/dev/null || true

# 3. nbdkit file plugin (page cache), same file
port=$(free_port)
nbdkit -f -i 127.0.0.1 -p $port file "$file" &
kpid=$!; pids+=($kpid)
for i in $(seq 100); do nbdinfo "nbd://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
measure nbdkit --ioengine=nbd --uri="nbd://127.0.0.1:$port/"
kill $kpid; wait $kpid 2>/dev/null || true

# 4. raw io_uring O_DIRECT on the file
measure raw --ioengine=io_uring --direct=1 --filename="$file"

python3 - "$rss_kb" <<PY
import sys
res = {}
for line in """$(for k in "${!RES[@]}"; do echo "$k ${RES[$k]}"; done)""".splitlines():
    key, iops, bw = line.split()
    res[tuple(key.split(","))] = (float(iops), float(bw))
order = "${ORDER[*]}".split()
bar = {"rand-write-4k-qd32": ("qemu-nbd", 1.2), "rand-read-4k-qd32": ("qemu-nbd", 1.2),
       "seq-write-1m-qd8": ("raw", 0.9)}
print()
print(f'{"workload":<20} {"urbd":>12} {"qemu-nbd":>12} {"nbdkit":>12} {"raw":>12}  {"urbd/qemu-nbd":>13} {"urbd/nbdkit":>11} {"urbd/raw":>8}  bar')
for wl in order:
    u, q, k, r = (res[(p, wl)] for p in ("urbd", "qemu-nbd", "nbdkit", "raw"))
    seq = wl.startswith("seq")
    fmt = (lambda x: f'{x[1] / 2**20:.0f} MiB/s') if seq else (lambda x: f'{x[0]:.0f} IOPS')
    idx = 1 if seq else 0
    ratio = lambda a, b: a[idx] / b[idx] if b[idx] else float("nan")
    peer, need = bar[wl]
    got = ratio(u, res[(peer, wl)])
    verdict = "meets" if got >= need else "BELOW"
    print(f'{wl:<20} {fmt(u):>12} {fmt(q):>12} {fmt(k):>12} {fmt(r):>12}  {ratio(u, q):>13.2f} {ratio(u, k):>11.2f} {ratio(u, r):>8.2f}  >= {need}x {peer}: {verdict}')
print(f'\nurbd peak RSS (VmHWM): {int(sys.argv[1]) / 1024:.1f} MiB')
PY
echo "urbd CPU: $((cpu_ticks)) clock ticks over the urbd runs"
