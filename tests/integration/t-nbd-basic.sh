#!/usr/bin/env bash
# NBD frontend with real clients: nbdinfo lists the export with its size;
# qemu-io writes patterns at scattered (also unaligned, also last-byte)
# offsets over TCP and the unix socket and reads them back over both;
# out-of-range I/O fails; nbdcopy round-trips 256 MiB of random data with
# one and four connections; fio with crc32c verify (random write, then a
# randrw mix of several jobs on disjoint regions, one connection each).
source "$(dirname "$0")/lib.sh"

require_cmd qemu-io nbdinfo nbdcopy fio sha256sum
fio --enghelp=nbd >/dev/null 2>&1 || skip "fio built without the nbd ioengine"

SIZE=$((512 * 1024 * 1024))
start_urbd --default-volume demo:512M --log-level info

# ---- nbdinfo --list: name and byte size, over both transports -----------
for pair in "nbd://127.0.0.1:$URBD_PORT $(uri_tcp demo)" \
	"nbd+unix:///?socket=$URBD_SOCK $(uri_unix demo)"; do
	read -r uri euri <<<"$pair"
	timeout 30 nbdinfo --json --list "$uri" >"$T/list.json" ||
		fail "nbdinfo --list $uri failed"
	got=$("$PY" -c 'import json,sys
d = json.load(open(sys.argv[1]))
print(" ".join("%s=%d" % (e["export-name"], e["export-size"]) for e in d["exports"]))' "$T/list.json")
	[ "$got" = "demo=$SIZE" ] || fail "nbdinfo --list $uri: got '$got', want 'demo=$SIZE'"
	# the human-readable form too
	out=$(timeout 30 nbdinfo --list "$uri") || fail "nbdinfo --list (text) failed"
	grep -q '^export="demo":' <<<"$out" || fail "nbdinfo text: no export \"demo\""
	grep -qE "export-size: $SIZE( |\$)" <<<"$out" || fail "nbdinfo text: size is not $SIZE"
	# and nbdinfo on the export itself
	sz=$(timeout 30 nbdinfo --size "$euri") || fail "nbdinfo --size $euri failed"
	[ "$sz" = "$SIZE" ] || fail "nbdinfo --size $euri: $sz, want $SIZE"
done
log "nbdinfo: export demo, $SIZE bytes, on TCP and unix"

# ---- qemu-io patterns at scattered offsets -------------------------------
# "offset length" pairs: aligned, unaligned, crossing 4 KiB and 1 MiB
# boundaries, and the very last bytes of the volume.
regions=(
	"0 512"
	"4095 3"
	"12345 7777"
	"1048573 65539"
	"$((100 * 1024 * 1024)) 1048576"
	"$((300 * 1024 * 1024 + 333)) 5000"
	"$((SIZE - 8192 - 1)) 4097"
	"$((SIZE - 4096)) 4095"
	"$((SIZE - 1)) 1"
)
check_patterns() { # write_uri read_uri base_pattern
	local wuri=$1 ruri=$2 base=$3 i=0 w=() r=() off len p
	for reg in "${regions[@]}"; do
		read -r off len <<<"$reg"
		p=$(((base + i * 7) % 255 + 1))
		w+=("write -P $p $off $len")
		r+=("read -P $p $off $len")
		i=$((i + 1))
	done
	qio_ok "$wuri" "${w[@]}"
	qio_ok "$ruri" "${r[@]}"
	qio_ok "$wuri" "${r[@]}"
}
check_patterns "$(uri_tcp)" "$(uri_unix)" 17
check_patterns "$(uri_unix)" "$(uri_tcp)" 101
# neighbours of an unaligned write are untouched: zero-fill then poke
qio_ok "$(uri_tcp)" "write -z 20480 12288" "write -P 0x5a 24577 10" \
	"read -P 0 20480 4097" "read -P 0x5a 24577 10" "read -P 0 24587 8181"
# write zeroes / trim read back as zeroes
qio_ok "$(uri_unix)" "write -P 0x33 65536 131072" "write -z 69632 4096" \
	"read -P 0x33 65536 4096" "read -P 0 69632 4096" "read -P 0x33 73728 122880"
qio_ok "$(uri_tcp)" "discard 65536 131072" "write -P 0x44 65536 4096" \
	"read -P 0x44 65536 4096"
# FUA writes
qio_ok "$(uri_tcp)" "write -f -P 0x66 8388608 65536" "read -P 0x66 8388608 65536" "flush"
log "qemu-io patterns verified over TCP and unix"

# ---- out of range ----------------------------------------------------------
for uri in "$(uri_tcp)" "$(uri_unix)"; do
	for cmd in "read $((SIZE - 512)) 1024" "read $SIZE 512" \
		"write -P 1 $((SIZE - 512)) 1024" "write -P 1 $SIZE 4096"; do
		if out=$(qio "$uri" "$cmd"); then
			echo "$out" >&2
			fail "out-of-range '$cmd' on $uri succeeded"
		fi
		grep -qiE 'error|failed' <<<"$out" ||
			fail "out-of-range '$cmd' printed no error: $out"
	done
done
# the tail was not clobbered by the rejected writes
qio_ok "$(uri_tcp)" "read -P $(((101 + 7 * 7) % 255 + 1)) $((SIZE - 4096)) 4095" \
	"read -P $(((101 + 8 * 7) % 255 + 1)) $((SIZE - 1)) 1"
assert_alive "after out-of-range I/O"
log "out-of-range I/O rejected"

# ---- nbdcopy 256 MiB in and out ---------------------------------------------
N=$((256 * 1024 * 1024))
for conns in 1 4; do
	head -c "$N" /dev/urandom >"$T/in.bin"
	want=$(sha256sum <"$T/in.bin" | cut -d' ' -f1)
	timeout 120 nbdcopy -C "$conns" "$T/in.bin" "$(uri_tcp)" ||
		fail "nbdcopy -C $conns into the volume failed"
	rm -f "$T/out.bin"
	timeout 120 nbdcopy -C "$conns" "$(uri_unix)" "$T/out.bin" ||
		fail "nbdcopy -C $conns out of the volume failed"
	[ "$(stat -c %s "$T/out.bin")" -eq "$SIZE" ] || fail "nbdcopy out: wrong size"
	got=$(head -c "$N" "$T/out.bin" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "nbdcopy -C $conns: checksum mismatch ($got != $want)"
	rm -f "$T/in.bin" "$T/out.bin"
	log "nbdcopy -C $conns: 256 MiB round trip ok"
done

# ---- fio with crc32c verify --------------------------------------------------
run_fio() { # name fio-args...
	local name=$1
	shift
	if ! timeout 120 fio --name="$name" --ioengine=nbd --uri="$(uri_tcp)" \
		--verify=crc32c --verify_fatal=1 --do_verify=1 "$@" >"$T/fio-$name.out" 2>&1; then
		tail -n 40 "$T/fio-$name.out" >&2
		fail "fio $name failed"
	fi
	local jobs errs
	jobs=$(grep -cE '^[^ ].*: \(groupid=' "$T/fio-$name.out" || true)
	errs=$(grep -cE '\(groupid=.*err= 0' "$T/fio-$name.out" || true)
	if [ "$jobs" -lt 1 ] || [ "$jobs" != "$errs" ]; then
		cat "$T/fio-$name.out" >&2
		fail "fio $name: $jobs job(s), $errs with err= 0"
	fi
	if grep -qiE 'verify: bad|crc32c: verify failed|bad magic' "$T/fio-$name.out"; then
		cat "$T/fio-$name.out" >&2
		fail "fio $name reported a verify failure"
	fi
	log "fio $name: $jobs job(s), err= 0"
}
run_fio randwrite --rw=randwrite --bs=4k --iodepth=16 --offset=0 --size=64M
run_fio randrw --rw=randrw --rwmixread=40 --bsrange=4k-64k --iodepth=8 \
	--numjobs=4 --offset=$((128 * 1024 * 1024)) --offset_increment=32M --size=32M
run_fio seqwrite-flush --rw=write --bs=128k --iodepth=4 --fsync=8 \
	--numjobs=2 --offset=$((256 * 1024 * 1024)) --offset_increment=32M --size=16M
assert_alive "after fio"

stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exited with status $URBD_EXIT on SIGTERM"
pass
