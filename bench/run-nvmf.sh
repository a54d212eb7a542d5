#!/usr/bin/env bash
# urbd's two frontends on the same volume, in one run:
#   NVMe/TCP   bench/nvmf_load (OUR OWN NVMe/TCP client, built as
#              $BUILD/nvmf_load: one I/O queue, blocking sockets, no digests)
#   NBD        fio --ioengine=nbd (libnbd, one connection)
# Workloads: 4k random read QD32, 4k random write QD32, 1 MiB sequential
# write QD8; same volume, same size, same duration (time based, no ramp).
# The clients differ (ours vs fio/libnbd), so this compares the target paths
# driven by different clients, not clients. Prints IOPS, MiB/s, mean and p99
# latency, urbd's CPU time per I/O (utime+stime of the whole process from
# /proc/PID/stat around each run, divided by the I/Os done) and urbd's peak
# RSS. Figures, never assertions.
set -euo pipefail
BUILD=${1:-build}
RUNTIME=${BENCH_RUNTIME:-10}
SIZE=${BENCH_SIZE:-2G}
top=$(cd "$(dirname "$0")/.." && pwd)
urbd=$top/$BUILD/urbd
load=$top/$BUILD/nvmf_load
tmp=$(mktemp -d /var/tmp/urbd-bench-nvmf.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

for t in fio nbdinfo python3; do
	command -v $t >/dev/null || { echo "bench-nvmf: $t not installed"; exit 1; }
done
[ -x "$load" ] || { echo "bench-nvmf: $load missing (make BUILD=$BUILD $BUILD/nvmf_load)"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
size_bytes=$(python3 -c 'import sys; s=sys.argv[1]; m={"K":1<<10,"M":1<<20,"G":1<<30}; print(int(s[:-1])*m[s[-1].upper()] if s[-1].upper() in m else int(s))' "$SIZE")

# workload -> "fio args|nvmf_load args"
declare -A WL=(
	[rand-read-4k-qd32]="--rw=randread --bs=4k --iodepth=32|-w randread -b 4096 -d 32"
	[rand-write-4k-qd32]="--rw=randwrite --bs=4k --iodepth=32|-w randwrite -b 4096 -d 32"
	[seq-write-1m-qd8]="--rw=write --bs=1M --iodepth=8|-w write -b 1M -d 8"
)
ORDER=(rand-read-4k-qd32 rand-write-4k-qd32 seq-write-1m-qd8)

echo "bench-nvmf: $(nproc) CPUs, runtime ${RUNTIME}s per workload, volume $SIZE, store on $(df --output=source "$tmp" | tail -1)" >&2

p_nbd=$(free_port); p_nvmf=$(free_port)
"$urbd" --store "$tmp/store" --nbd-listen 127.0.0.1:$p_nbd --nvmf-listen 127.0.0.1:$p_nvmf \
	--default-volume "bench:$SIZE" --control "$tmp/control.sock" --log-level warn 2>"$tmp/urbd.log" &
upid=$!; pids+=($upid)
for i in $(seq 100); do
	nbdinfo "nbd://127.0.0.1:$p_nbd/bench" >/dev/null 2>&1 && break; sleep 0.1
done
nqn=nqn.2026-11.io.urbd:bench
ticks() { awk '{print $14 + $15}' /proc/$upid/stat; }
hz=$(getconf CLK_TCK)

# preallocate: write the whole volume once (1 MiB sequential, our client)
"$load" -a 127.0.0.1 -p $p_nvmf -N $nqn -w write -b 1M -d 8 -n $((size_bytes >> 20)) \
	>"$tmp/fill.out" 2>"$tmp/fill.err" || { cat "$tmp/fill.err" >&2; exit 1; }
echo "  preallocated: $(sed 's/^RESULT //' "$tmp/fill.out")" >&2

# each result line: "ios secs iops bw_bytes lat_mean_us lat_p99_us cpu_ticks"
declare -A RES
nvmf_run() { # workload
	local a b out
	a=$(ticks)
	# a count no run reaches: the duration ends it, as for fio
	# shellcheck disable=SC2086
	"$load" -a 127.0.0.1 -p $p_nvmf -N $nqn ${WL[$1]#*|} -n 1000000000 -t "$RUNTIME" \
		>"$tmp/load.out" 2>"$tmp/load.err" || { cat "$tmp/load.err" >&2; return 1; }
	b=$(ticks)
	out=$(grep '^RESULT' "$tmp/load.out")
	python3 - "$out" $((b - a)) <<'PY'
import sys
kv = dict(x.split("=") for x in sys.argv[1].split()[1:])
print(kv["ios"], kv["secs"], kv["iops"], float(kv["mibps"]) * 2**20, kv["lat_mean_us"],
      kv["lat_p99_us"], sys.argv[2])
PY
}
nbd_run() { # workload
	local a b
	a=$(ticks)
	# shellcheck disable=SC2086
	fio --name=bench --output-format=json --time_based --runtime="$RUNTIME" \
	    --size="$SIZE" --norandommap --randrepeat=0 --ioengine=nbd \
	    --uri="nbd://127.0.0.1:$p_nbd/bench" ${WL[$1]%%|*} >"$tmp/fio.json" 2>"$tmp/fio.err" || {
		cat "$tmp/fio.err" >&2; return 1; }
	b=$(ticks)
	python3 - "$tmp/fio.json" $((b - a)) <<'PY'
import json, sys
text = open(sys.argv[1]).read()
j = json.loads(text[text.index("{"):])["jobs"][0]
r, w = j["read"], j["write"]
d = w if w["total_ios"] else r
ios = r["total_ios"] + w["total_ios"]
p99 = d["clat_ns"].get("percentile", {}).get("99.000000", 0) / 1000
print(ios, j["job_runtime"] / 1000, r["iops"] + w["iops"], r["bw_bytes"] + w["bw_bytes"],
      d["lat_ns"]["mean"] / 1000, p99, sys.argv[2])
PY
}

for wl in "${ORDER[@]}"; do
	RES[nvmf,$wl]=$(nvmf_run "$wl")
	echo "  nvme/tcp $wl: $(echo "${RES[nvmf,$wl]}" | awk '{printf "%.0f IOPS", $3}')" >&2
	RES[nbd,$wl]=$(nbd_run "$wl")
	echo "  nbd      $wl: $(echo "${RES[nbd,$wl]}" | awk '{printf "%.0f IOPS", $3}')" >&2
done
rss_kb=$(awk '/VmHWM/ {print $2}' /proc/$upid/status)
kill $upid; wait $upid 2>/dev/null || true
if grep -qiE 'error|warn' "$tmp/urbd.log"; then
	echo "bench-nvmf: urbd logged:" >&2; tail -5 "$tmp/urbd.log" >&2
fi

python3 - "$rss_kb" "$hz" <<PY
import sys
hz = int(sys.argv[2])
res = {}
for line in """$(for k in "${!RES[@]}"; do echo "$k ${RES[$k]}"; done)""".splitlines():
    key, *v = line.split()
    res[tuple(key.split(","))] = [float(x) for x in v]
order = "${ORDER[*]}".split()
print()
print("urbd NVMe/TCP vs NBD, same volume ($SIZE), ${RUNTIME}s per run, 1 connection/queue each.")
print("NVMe/TCP is driven by OUR OWN client (bench/nvmf_load), NBD by fio --ioengine=nbd (libnbd):")
print("different clients, so this compares the target paths, not like-for-like clients.")
print("Latency: nvmf_load submit->CQE; fio lat mean (submit->complete), p99 of fio clat.")
print("CPU/IO: urbd utime+stime (all threads) over the run / I/Os done, tick = %.0f ms." % (1000 / hz))
print()
hdr = f'{"workload":<20} {"frontend":<9} {"IOPS":>9} {"MiB/s":>8} {"lat mean":>10} {"lat p99":>10} {"urbd CPU/IO":>12}'
print(hdr)
for wl in order:
    for fe, name in (("nvmf", "nvme/tcp"), ("nbd", "nbd")):
        ios, secs, iops, bw, mean, p99, ticks = res[(fe, wl)]
        cpu_us = ticks * 1e6 / hz / ios if ios else float("nan")
        print(f'{wl:<20} {name:<9} {iops:>9.0f} {bw / 2**20:>8.1f} {mean:>8.1f}us {p99:>8.0f}us {cpu_us:>10.1f}us')
    a, b = res[("nvmf", wl)], res[("nbd", wl)]
    print(f'{"":<20} {"nvmf/nbd":<9} {a[2] / b[2] if b[2] else float("nan"):>9.2f} {"":>8} {a[4] / b[4] if b[4] else float("nan"):>10.2f} {"":>10} '
          f'{(a[6] / a[0]) / (b[6] / b[0]) if a[0] and b[0] and b[6] else float("nan"):>12.2f}')
print(f'\nurbd peak RSS (VmHWM) over fill + all runs: {int(sys.argv[1]) / 1024:.1f} MiB')
PY
