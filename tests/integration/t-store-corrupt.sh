#!/usr/bin/env bash
# Metadata corruption (DESIGN §8, store_format.h): a volume with one bad
# superblock slot still opens from the other (with a warning) and keeps its
# data; a volume with both slots bad (bit flip, bad magic, unsupported
# version, zeroed, truncated meta file, another volume's metadata) is
# refused with a clear log line, is not touched, and every other volume
# still serves. Putting the good metadata back brings it back intact.
source "$(dirname "$0")/lib.sh"

require_cmd qemu-io nbdinfo cmp
MB=$((1024 * 1024))

# superblock surgery: slots of 4 KiB at 0 and 4096, CRC32C (LE) at 508
cat >"$T/sb.py" <<'PYEOF'
import struct, sys

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF

assert crc32c(b"123456789") == 0xE3069283
path, cmd = sys.argv[1], sys.argv[2]
with open(path, "r+b") as f:
    def slot(s):
        f.seek(4096 * "AB".index(s))
        return bytearray(f.read(4096))
    def put(s, b, fixcrc):
        if fixcrc:
            b[508:512] = struct.pack("<I", crc32c(bytes(b[:508])))
        f.seek(4096 * "AB".index(s))
        f.write(b)
    if cmd == "info":  # slot: magic-ok crc-ok seq
        for s in "AB":
            b = slot(s)
            ok = struct.unpack_from("<I", b, 508)[0] == crc32c(bytes(b[:508]))
            print("%s magic=%s crc=%s seq=%d" % (s, b[:8] == b"URBDMETA", ok,
                  struct.unpack_from("<Q", b, 16)[0]))
    elif cmd == "flip":  # SLOT OFFSET: flip one byte, CRC left stale
        s, off = sys.argv[3], int(sys.argv[4])
        b = slot(s); b[off] ^= 0x5A; put(s, b, False)
    elif cmd == "set":  # SLOT OFFSET HEXBYTES fixcrc|stale
        s, off, val = sys.argv[3], int(sys.argv[4]), bytes.fromhex(sys.argv[5])
        b = slot(s); b[off:off + len(val)] = val; put(s, b, sys.argv[6] == "fixcrc")
    elif cmd == "clone":  # FROM TO: a newer generation, seq + 1, valid CRC
        src, dst = sys.argv[3], sys.argv[4]
        b = slot(src)
        struct.pack_into("<Q", b, 16, struct.unpack_from("<Q", b, 16)[0] + 1)
        put(dst, b, True)
    elif cmd == "zero":  # SLOT
        put(sys.argv[3], bytearray(4096), False)
    else:
        sys.exit("unknown command " + cmd)
PYEOF
sb() { "$PY" "$T/sb.py" "$@"; }

exports() { # the exports nbdinfo lists, "name=size" sorted
	timeout 30 nbdinfo --json --list "nbd://127.0.0.1:$URBD_PORT" >"$T/list.json" ||
		fail "nbdinfo --list failed"
	"$PY" -c 'import json,sys
d = json.load(open(sys.argv[1]))
print(" ".join(sorted("%s=%d" % (e["export-name"], e["export-size"]) for e in d["exports"])))' "$T/list.json"
}
good_data_ok() {
	qio_ok "$(uri_tcp good)" "read -P 0xa1 0 $MB" "read -P 0xa2 $((64 * MB - 4096)) 4096"
}

# ---- two volumes from two stores, joined in one ------------------------
URBD_STORE=$T/s2
start_urbd --default-volume bad:64M
qio_ok "$(uri_tcp bad)" "write -P 0xb1 0 $MB" "write -P 0xb2 $((64 * MB - 4096)) 4096"
stop_urbd
URBD_STORE=$T/s1
start_urbd --default-volume good:64M
qio_ok "$(uri_tcp good)" "write -P 0xa1 0 $MB" "write -P 0xa2 $((64 * MB - 4096)) 4096"
stop_urbd
mv "$T/s2/volumes/bad" "$T/s1/volumes/bad"
VOLS=$T/s1/volumes

start_urbd --default-volume none
[ "$(exports)" = "bad=$((64 * MB)) good=$((64 * MB))" ] || fail "joined store lists: $(exports)"
good_data_ok
qio_ok "$(uri_unix bad)" "read -P 0xb1 0 $MB" "read -P 0xb2 $((64 * MB - 4096)) 4096"
stop_urbd
log "slots of good: $(sb "$VOLS/good/meta" info | tr '\n' ' ')"
# urbd keeps two valid superblocks: created with both slots written, and
# each start (clean flag cleared) and clean stop (set) writes the older one
slots=$(sb "$VOLS/good/meta" info)
grep -q 'A magic=True crc=True' <<<"$slots" || fail "good: slot A is not valid: $slots"
grep -q 'B magic=True crc=True' <<<"$slots" || fail "good: slot B is not valid: $slots"
seq_of() { sed -nE "s/^$1 .* seq=([0-9]+).*/\1/p" <<<"$slots"; }
seq_a=$(seq_of A); seq_b=$(seq_of B)
[ $((seq_a > seq_b ? seq_a - seq_b : seq_b - seq_a)) -eq 1 ] ||
	fail "good: slot seqs $seq_a/$seq_b are not consecutive"
cp "$VOLS/good/meta" "$T/good.meta"
cp "$VOLS/bad/meta" "$T/bad.meta"
start_urbd --default-volume none
good_data_ok
! grep -qE 'superblock [AB]:' "$URBD_LOG" || fail "warnings with two valid slots"
stop_urbd

# ---- one slot bad: still opens from the other, data intact ----------------
for s in A B; do
	other=B
	[ "$s" = B ] && other=A
	cp "$T/good.meta" "$VOLS/good/meta"
	sb "$VOLS/good/meta" flip "$s" 50 # inside the name: CRC now stale
	start_urbd --default-volume none
	seq=$seq_b
	[ "$s" = B ] && seq=$seq_a
	assert_log "volume good: superblock $s: checksum mismatch.*; using $other \\(seq $seq\\)"
	[ "$(exports)" = "bad=$((64 * MB)) good=$((64 * MB))" ] ||
		fail "slot $s of good corrupt: exports $(exports)"
	good_data_ok
	qio_ok "$(uri_tcp good)" "write -P 0xa3 $((2 * MB)) 4096" "read -P 0xa3 $((2 * MB)) 4096"
	! grep -q 'refused' "$URBD_LOG" || fail "a volume was refused with one good slot"
	stop_urbd
	[ "$URBD_EXIT" = 0 ] || fail "urbd exited with $URBD_EXIT"
	# and it comes back again (the daemon may have rewritten the bad slot)
	start_urbd --default-volume none
	good_data_ok
	qio_ok "$(uri_tcp good)" "read -P 0xa3 $((2 * MB)) 4096"
	stop_urbd
	log "good with slot $s corrupt: opened from slot $other, data intact"
done
cp "$T/good.meta" "$VOLS/good/meta"

# ---- both slots bad: refused, others serve, the meta file is not touched ----
# name | how | what the log says about A | about B
CRC='checksum mismatch'
bad_cases=(
	"bitflip|flip A 50; flip B 50|$CRC|$CRC"
	"crc-field|flip A 508; flip B 511|$CRC|$CRC"
	"magic|flip A 0; flip B 7|bad magic|bad magic"
	"magic-good-crc|set A 0 5552424d45544158 fixcrc; set B 0 0000000000000000 fixcrc|bad magic|bad magic"
	"version|set A 8 02000000 fixcrc; set B 8 ffffffff fixcrc|unsupported version|unsupported version"
	"version-stale-crc|set A 8 02000000 stale; set B 8 00000000 stale|(unsupported version|$CRC)|(unsupported version|$CRC)"
	"zeroed|zero A; zero B|never written|never written"
	"mixed|zero A; flip B 3|never written|bad magic"
	"torn-100|truncate 100|($CRC|truncat|short)|(never written|truncat|short)"
	"empty|truncate 0|(never written|truncat|short|empty)|(never written|truncat|short|empty)"
)
for spec in "${bad_cases[@]}"; do
	IFS='|' read -r name how wa wb <<<"$spec"
	cp "$T/bad.meta" "$VOLS/bad/meta"
	IFS=';' read -ra steps <<<"$how"
	for st in "${steps[@]}"; do
		read -ra w <<<"$st"
		if [ "${w[0]}" = truncate ]; then
			truncate -s "${w[1]}" "$VOLS/bad/meta"
		else
			sb "$VOLS/bad/meta" "${w[@]}"
		fi
	done
	cp "$VOLS/bad/meta" "$T/bad.meta.corrupt"
	start_urbd --default-volume none
	assert_log "volume bad refused: metadata of volume bad is unusable: superblock A: [^;]*${wa}[^;]*; superblock B: [^;]*${wb}"
	[ "$(exports)" = "good=$((64 * MB))" ] || fail "$name: exports are '$(exports)', want only good"
	good_data_ok
	if out=$(qio "$(uri_tcp bad)" "read 0 4096"); then
		fail "$name: the refused volume still serves: $out"
	fi
	assert_alive "$name"
	stop_urbd
	[ "$URBD_EXIT" = 0 ] || fail "$name: urbd exited with $URBD_EXIT"
	cmp -s "$VOLS/bad/meta" "$T/bad.meta.corrupt" || fail "$name: urbd rewrote the refused volume's metadata"
	log "$name: $(grep -m1 -o 'volume bad refused: .*' "$URBD_LOG")"
done

# ---- a volume directory holding another volume's metadata -----------------
cp -a "$VOLS/good" "$VOLS/copy"
cp "$T/bad.meta" "$VOLS/bad/meta"
start_urbd --default-volume none
assert_log "volume copy refused: .*names volume good"
[ "$(exports)" = "bad=$((64 * MB)) good=$((64 * MB))" ] || fail "copy: exports $(exports)"
stop_urbd
rm -rf "$VOLS/copy"

# ---- the good metadata back: bad serves its old data again ----------------
start_urbd --default-volume none
[ "$(exports)" = "bad=$((64 * MB)) good=$((64 * MB))" ] || fail "restored: exports $(exports)"
good_data_ok
qio_ok "$(uri_unix bad)" "read -P 0xb1 0 $MB" "read -P 0xb2 $((64 * MB - 4096)) 4096"
! grep -qE 'refused|superblock [AB]:' "$URBD_LOG" || fail "warnings with intact metadata"
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exited with $URBD_EXIT"
pass
