#!/usr/bin/env bash
# Self-test of the replication tests' checker (tests/cluster/checker.py):
#  1. write 3 s at QD 8 over NBD, verify passes with >0 acked writes; a
#     second run continues the journal (FLUSH-covered acks), still clean;
#  2. verify can fail: with urbd stopped, the data file gets an older
#     stamp on a block acked at version >= 2, one flipped payload byte,
#     one zeroed block, one block's stamp copied to another block and
#     a block at a version never written; verify exits 1 and names
#     exactly those five blocks, each for its reason, and accepts a newer
#     version the journal lists as in flight;
#  3. kill -9 of urbd mid-write (every write FUA, see checker.py on what
#     "acknowledged" means), urbd restarted on the same port 1 s later:
#     the checker reconnects and goes on writing, verify passes; without
#     --reconnect-seconds (and acks only after FLUSH) it exits 3 and
#     verify still passes; SIGTERM drains, exits 0, verify
#     passes; a dead first URI is skipped for the next one;
#  4. compare: identical copies of a data file -> 0; one flipped byte in
#     written data and one in the sparse tail -> 1, both regions named; a
#     copy cut short only in zeroes -> 0, cut into data -> 1 with sizes.
source "$(dirname "$0")/lib.sh"

require_pymod nbd libnbd
require_cmd cp truncate dd
CHK=$REPO_ROOT/tests/cluster/checker.py
[ -f "$CHK" ] || fail "no $CHK"
NB=1024 # 4 MiB of the volume: small enough that blocks get rewritten
BS=4096

chk() { timeout 120 "$PY" "$CHK" "$@"; }
# background runs: python itself, so that $! is the checker's PID (it
# bounds its own run time; the cleanup stack kills it if the test dies)
bg_chk() {
	"$PY" "$CHK" "$@" &
	wpid=$!
	on_exit "kill -KILL $wpid"
}
# js FILE EXPR: EXPR over d, the JSON summary on FILE's last line
js() {
	"$PY" -c 'import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(eval(sys.argv[2], {"d": d}))' "$1" "$2"
}
gone() { ! kill -0 "$1" 2>/dev/null; }
# wait_bg PID SECS: bounded wait for a background checker; sets BG_RC
wait_bg() {
	wait_until "$2" gone "$1" || fail "checker pid $1 still running after $2 s"
	BG_RC=0
	wait "$1" || BG_RC=$?
}
show() { cat "$@" >&2; }

# ---- 1. write, verify ------------------------------------------------------
start_urbd --default-volume demo:64M
DATA=$URBD_STORE/volumes/demo/data
[ -f "$DATA" ] || fail "no data file at $DATA"

chk write --uri "$(uri_tcp)" --journal "$T/j1" --blocks $NB --block-size $BS \
	--seconds 3 --qd 8 --seed 1001 >"$T/w1.json" 2>"$T/w1.err" ||
	{ show "$T/w1.err"; fail "write (case 1) exited non-zero"; }
acked1=$(js "$T/w1.json" 'd["acked"]')
[ "$acked1" -gt 0 ] || fail "write acked nothing: $(cat "$T/w1.json")"
[ "$(js "$T/w1.json" 'd["unknown"] + d["errors"]')" = 0 ] ||
	fail "write on a healthy daemon had unknown or failed writes: $(cat "$T/w1.json")"
[ "$(js "$T/w1.json" 'd["stopped_by"]')" = time ] || fail "write did not stop on time"
# the same journal continues: versions go on, a FLUSH covers the acks
chk write --uri "$(uri_unix)" --journal "$T/j1" --blocks $NB --count 2000 --qd 8 \
	--seed 1002 --flush-every 8 >"$T/w1b.json" 2>"$T/w1b.err" ||
	{ show "$T/w1b.err"; fail "second write (case 1) exited non-zero"; }
[ "$(js "$T/w1b.json" 'd["acked"] == 2000 and d["flushes"] > 0')" = True ] ||
	fail "second write: $(cat "$T/w1b.json")"
rc=0
chk verify --uri "$(uri_tcp)" --journal "$T/j1" --blocks $NB --block-size $BS \
	>"$T/v1.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { show "$T/v1.out"; fail "verify after a clean run exited $rc"; }
[ "$(js "$T/v1.out" 'd["violations"]')" = 0 ] || fail "verify: $(tail -1 "$T/v1.out")"
[ "$(js "$T/v1.out" 'd["at_last_acked"]')" -gt 0 ] || fail "verify saw no acked block"
log "case 1: $acked1 + 2000 acked writes ($(js "$T/w1.json" 'd["iops"]') IOPS at QD 8); verify: $(tail -1 "$T/v1.out")"

# ---- 2. verify detects loss -------------------------------------------------
stop_urbd
# A: acked at version >= 2 (gets its previous version back); C..H: other
# acked blocks (C: a payload byte flipped, D: zeroed, F: E's stamp, G: a
# newer version nobody wrote, H: a newer version the journal has as `?`,
# which is no violation)
read -r A AV C D E F G H GV HV < <("$PY" - "$T/j1" <<'PYEOF'
import sys
last, unk = {}, set()
for line in open(sys.argv[1]):
    f = line.split()
    if not f or f[0] == "#":
        continue
    if f[0] == "?":
        unk.add(int(f[1]))
        continue
    b, v = int(f[0]), int(f[1])
    last[b] = max(last.get(b, 0), v)
ok = sorted(b for b in last if b not in unk)
a = next(b for b in ok if last[b] >= 2)
rest = [b for b in ok if b != a][:6]
rest += [last[b] for b in rest[4:]]
print(a, last[a], *rest)
PYEOF
) || fail "no suitable blocks in the journal"
[ -n "$HV" ] || fail "journal has too few acked blocks"
# a valid stamp of the previous version (whichever run wrote it: verify
# judges the version, the writer id only matters for the acked one)
chk forge --file "$DATA" --block "$A" --version $((AV - 1)) --seed 1001 --block-size $BS ||
	fail "forge failed"
"$PY" - "$DATA" $((C * BS + 100)) <<'PYEOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
off = int(sys.argv[2])
b = os.pread(fd, 1, off)
os.pwrite(fd, bytes([b[0] ^ 0x40]), off)
os.fsync(fd)
os.close(fd)
PYEOF
dd if=/dev/zero of="$DATA" bs=$BS seek="$D" count=1 conv=notrunc,fsync status=none
dd if="$DATA" of="$DATA" bs=$BS skip="$E" seek="$F" count=1 conv=notrunc,fsync status=none
chk forge --file "$DATA" --block "$G" --version $((GV + 3)) --seed 1002 || fail "forge failed"
chk forge --file "$DATA" --block "$H" --version $((HV + 1)) --seed 1002 || fail "forge failed"
echo "? $H $((HV + 1))" >>"$T/j1" # the last run in j1 is seed 1002's
log "case 2: block $A set back to version $((AV - 1)) of $AV, byte flipped in $C, $D zeroed, $E copied onto $F, $G at unwritten version $((GV + 3)), $H at in-flight version $((HV + 1))"
start_urbd
rc=0
chk verify --uri "$(uri_tcp)" --journal "$T/j1" --blocks $NB >"$T/v2.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { show "$T/v2.out"; fail "verify of a damaged volume exited $rc, want 1"; }
expect_violation() { # BLOCK REGEX
	grep -qE "^VIOLATION block=$1 found=$2" "$T/v2.out" ||
		{ show "$T/v2.out"; fail "verify did not report block $1 as /$2/"; }
}
expect_violation "$A" "older version $((AV - 1)) .*acked version $AV lost"
expect_violation "$C" "bad checksum"
expect_violation "$D" "zeroes expected=version"
expect_violation "$F" "wrong block: stamp of block $E "
expect_violation "$G" "version $((GV + 3)) \(writer 1002\), never acked nor in flight"
nv=$(grep -c '^VIOLATION' "$T/v2.out" || true)
[ "$nv" = 5 ] && [ "$(js "$T/v2.out" 'd["violations"] == 5 and d["newer_in_flight"] == 1')" = True ] ||
	{ show "$T/v2.out"; fail "verify reported $nv violations, want exactly 5 (and $H accepted)"; }
log "case 2: verify exit 1 naming blocks $A (older), $C (checksum), $D (zeroes), $F (misplaced), $G (never written); $H accepted"
# a journal entry beyond --blocks, or no journal: usage errors
rc=0
chk verify --uri "$(uri_tcp)" --journal "$T/j1" --blocks 10 >"$T/v2b.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || { show "$T/v2b.out"; fail "verify with too small --blocks exited $rc, want 2"; }
rc=0
chk verify --uri "$(uri_tcp)" --journal "$T/nope" --blocks $NB >"$T/v2c.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || { show "$T/v2c.out"; fail "verify without a journal exited $rc, want 2"; }
stop_urbd

# ---- 3. kill -9 mid-write, restart on the same port ---------------------------
URBD_STORE=$T/store3
DEAD_PORT=$(free_port)
start_urbd --default-volume demo:64M
DATA3=$URBD_STORE/volumes/demo/data
PIN_PORT=$URBD_PORT
# lib.sh picks a new port per start; the restarts here must reuse this one
free_port() { echo "$PIN_PORT"; }
J3=$T/j3

bg_chk write --uri "$(uri_tcp)" --journal "$J3" --blocks $NB --seconds 120 --qd 8 \
	--seed 3003 --fua-every 1 --reconnect-seconds 30 >"$T/w3.json" 2>"$T/w3.err"
wait_until 20 grep -q '^checker: connected' "$T/w3.err" || fail "checker did not connect"
sleep 1.5
kill -0 "$wpid" 2>/dev/null || { show "$T/w3.err"; fail "writer ended before the kill"; }
kill9_urbd
log "case 3: urbd killed with SIGKILL 1.5 s into the write"
sleep 1
start_urbd
[ "$URBD_PORT" = "$PIN_PORT" ] || fail "urbd restarted on port $URBD_PORT, not $PIN_PORT"
# not a fixed run time: however slow the restart, give it 2 s after the
# reconnect, then end it (SIGTERM) so that the final verify covers it
wait_until 20 grep -q '^checker: connected .*(reconnect)' "$T/w3.err" ||
	{ show "$T/w3.err"; fail "the checker did not reconnect within 20 s"; }
sleep 2
kill -TERM "$wpid"
wait_bg "$wpid" 10
[ "$BG_RC" = 0 ] || { show "$T/w3.err" "$T/w3.json"; fail "write across the kill exited $BG_RC"; }
[ "$(js "$T/w3.json" 'd["reconnects"] >= 1 and d["connection_losses"] >= 1')" = True ] ||
	fail "write did not reconnect: $(cat "$T/w3.json")"
after=$(js "$T/w3.json" 'd["per_connection"][-1]["acked"]')
[ "$after" -gt 0 ] || fail "no write acked after the reconnect: $(cat "$T/w3.json")"
log "case 3: $(js "$T/w3.json" 'd["acked"]') acked, $(js "$T/w3.json" 'd["unknown"]') unknown, $after after the reconnect, longest gap $(js "$T/w3.json" 'd["max_ack_gap_s"]') s"
rc=0
chk verify --uri "$(uri_tcp)" --journal "$J3" --blocks $NB >"$T/v3.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { show "$T/v3.out"; fail "verify after kill -9 + reconnect exited $rc"; }

# no --reconnect-seconds: a lost connection ends the run with status 3.
# Acks here wait for a FLUSH: what was replied but not yet flushed when
# urbd died is journalled `?`, and verify must accept it either way.
bg_chk write --uri "$(uri_tcp)" --journal "$J3" --blocks $NB --seconds 30 --qd 8 \
	--seed 3004 --flush-every 16 >"$T/w3b.json" 2>"$T/w3b.err"
wait_until 20 grep -q '^checker: connected' "$T/w3b.err" || fail "checker did not connect"
sleep 1
kill9_urbd
wait_bg "$wpid" 20
[ "$BG_RC" = 3 ] || { show "$T/w3b.err"; fail "write without reconnect exited $BG_RC, want 3"; }
grep -q 'giving up: connection lost' "$T/w3b.err" ||
	{ show "$T/w3b.err"; fail "write without reconnect: no clear message"; }
[ "$(js "$T/w3b.json" 'd["flushes"] > 0 and d["acked"] > 0')" = True ] ||
	fail "write with --flush-every: $(cat "$T/w3b.json")"
log "case 3: without --reconnect-seconds: exit 3; FLUSH-covered acks: $(js "$T/w3b.json" 'd["acked"]') acked, $(js "$T/w3b.json" 'd["unknown"]') unknown"
start_urbd
# SIGTERM: drain, record, exit 0
bg_chk write --uri "$(uri_tcp)" --journal "$J3" --blocks $NB --seconds 60 --qd 8 \
	--seed 3005 --fua-every 1 >"$T/w3c.json" 2>"$T/w3c.err"
# "connected" comes after the signal handlers are in place
wait_until 20 grep -q '^checker: connected' "$T/w3c.err" || fail "checker did not connect"
sleep 0.5
kill -TERM "$wpid"
wait_bg "$wpid" 10
[ "$BG_RC" = 0 ] || { show "$T/w3c.err"; fail "write on SIGTERM exited $BG_RC, want 0"; }
[ "$(js "$T/w3c.json" 'd["stopped_by"] == "signal SIGTERM" and d["acked"] > 0 and d["unknown"] == 0')" = True ] ||
	fail "write on SIGTERM: $(cat "$T/w3c.json")"
tail -n 1 "$J3" | grep -q '^# end ' || fail "journal does not end with the run's summary"
# the first URI is dead: round robin reaches the second
chk write --uri "nbd://127.0.0.1:$DEAD_PORT/demo,$(uri_unix)" --journal "$J3" \
	--blocks $NB --count 300 --seed 3006 --fua-every 1 >"$T/w3d.json" 2>"$T/w3d.err" ||
	{ show "$T/w3d.err"; fail "write with a dead first URI failed"; }
[ "$(js "$T/w3d.json" 'd["connect_failures"] >= 1 and d["per_connection"][0]["uri"].startswith("nbd+unix") and d["acked"] == 300')" = True ] ||
	fail "write with a dead first URI: $(cat "$T/w3d.json")"
rc=0
chk verify --uri "$(uri_unix)" --journal "$J3" --blocks $NB >"$T/v3b.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { show "$T/v3b.out"; fail "verify after four runs on one journal exited $rc"; }
log "case 3: exit 3 without reconnect, SIGTERM drained cleanly, dead first URI skipped; verify: $(tail -1 "$T/v3b.out")"
stop_urbd

# ---- 4. compare ----------------------------------------------------------------
MB=$((1024 * 1024))
cp --sparse=always "$DATA3" "$T/r1"
cp --sparse=always "$DATA3" "$T/r2"
rc=0
chk compare "$T/r1" "$T/r2" --region 1M >"$T/c1.out" 2>&1 || rc=$?
[ "$rc" = 0 ] || { show "$T/c1.out"; fail "compare of identical copies exited $rc"; }
flip() { # FILE OFFSET
	"$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR); off = int(sys.argv[2])
os.pwrite(fd, bytes([os.pread(fd, 1, off)[0] ^ 1]), off); os.close(fd)' "$1" "$2"
}
flip "$T/r2" $((2 * MB + 777))  # written data
flip "$T/r2" $((40 * MB + 1))   # the never-written, sparse part
rc=0
chk compare "$T/r1" "$T/r2" --region 1M >"$T/c2.out" 2>&1 || rc=$?
[ "$rc" = 1 ] || { show "$T/c2.out"; fail "compare after a byte flip exited $rc, want 1"; }
grep -q "^DIFF region=2 offset=$((2 * MB)) " "$T/c2.out" &&
	grep -q "^DIFF region=40 offset=$((40 * MB)) " "$T/c2.out" &&
	[ "$(grep -c '^DIFF' "$T/c2.out")" = 2 ] || { show "$T/c2.out"; fail "compare did not name regions 2 and 40 (only)"; }
# sizes: cut in the zero tail (equal), cut into the data (differs)
cp --sparse=always "$DATA3" "$T/r3"
truncate -s $((8 * MB)) "$T/r3"
rc=0
chk compare "$T/r1" "$T/r3" >"$T/c3.out" 2>&1 || rc=$?
[ "$rc" = 0 ] && grep -q '^SIZES .*end in zeroes' "$T/c3.out" ||
	{ show "$T/c3.out"; fail "compare with a zero tail cut off: exit $rc"; }
truncate -s $((2 * MB)) "$T/r3"
rc=0
chk compare "$T/r1" "$T/r3" >"$T/c4.out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "^SIZES .*r1=$((64 * MB)) .*r3=$((2 * MB)): non-zero data" "$T/c4.out" ||
	{ show "$T/c4.out"; fail "compare with data cut off: exit $rc"; }
log "case 4: compare: identical 0; flipped bytes in regions 2 and 40 found; sizes reported"

pass "write/verify ($acked1 acked), 5 injected faults found, kill -9 + reconnect ($after acked after), compare"
