#!/usr/bin/env bash
# urbdctl against the real daemon, cross-checked with real NBD clients:
# volume create/list/status/resize/delete, node info and export list (table
# and --json), the documented exit codes (0 ok, 1 daemon error, 2 usage,
# 3 unreachable, 4 not found, 5 exists) with their messages; usage errors
# never contact the daemon; new/resized/deleted volumes as nbdinfo sees
# them; data written with qemu-io survives a grow and a daemon restart;
# delete refuses a volume in use and --force drops the client; a stopped,
# killed or hung daemon is reported fast; the control API over TCP with
# mutual TLS accepts the right client certificate and nothing else.
source "$(dirname "$0")/lib.sh"

require_cmd qemu-io nbdinfo openssl timeout
require_pymod nbd libnbd

CTL=$URBD_BIN_DIR/urbdctl
[ -x "$CTL" ] || fail "no urbdctl at $CTL (make build/urbdctl)"
CSOCK=$T/control.sock         # lib.sh's start_urbd passes --control $T/control.sock
NOSOCK=$T/no-such-dir/control.sock
MiB=$((1024 * 1024))
DAEMON_ARGS=(--default-volume none --log-level info --reactors 2
	--node-id urbdctl-node --zone zone-a)

# ---- helpers -------------------------------------------------------------
# run_ctl ARGS...: urbdctl (bounded); sets RC, OUT, ERR, SECS, LAST
run_ctl() {
	local rc=0 t0 t1
	t0=$(date +%s%N)
	timeout 30 "$CTL" "$@" >"$T/ctl.out" 2>"$T/ctl.err" </dev/null || rc=$?
	t1=$(date +%s%N)
	RC=$rc
	OUT=$(cat "$T/ctl.out")
	ERR=$(cat "$T/ctl.err")
	SECS_MS=$(((t1 - t0) / 1000000))
	LAST="urbdctl $*"
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/ctl.err"; then
		cat "$T/ctl.err" >&2
		fail "sanitizer report from: $LAST"
	fi
	[ "$RC" != 124 ] || fail "$LAST: did not finish in 30 s"
}
# uctl ARGS...: urbdctl on the daemon's control socket
uctl() { run_ctl -s "$CSOCK" "$@"; }
show() { printf '%s\n--- exit %s\n--- stdout:\n%s\n--- stderr:\n%s\n' "$LAST" "$RC" "$OUT" "$ERR" >&2; }
# want RC [STDERR-REGEX...]: exit status and every regex on stderr
want() {
	local rc=$1 re
	shift
	[ "$RC" = "$rc" ] || { show; fail "$LAST: exit $RC, want $rc"; }
	for re in "$@"; do
		grep -qE -- "$re" <<<"$ERR" || { show; fail "$LAST: stderr lacks /$re/"; }
	done
}
# want_out REGEX...: every regex on stdout
want_out() {
	local re
	for re in "$@"; do
		grep -qE -- "$re" <<<"$OUT" || { show; fail "$LAST: stdout lacks /$re/"; }
	done
}
no_out() { [ -z "$OUT" ] || { show; fail "$LAST: printed on stdout on failure"; }; }
# ok ARGS...: uctl that must exit 0 with a silent stderr
ok() {
	uctl "$@"
	want 0
	[ -z "$ERR" ] || { show; fail "$LAST: exit 0 but wrote to stderr"; }
}
# usage_err REGEX ARGS...: exit 2, the message and the hint on stderr,
# nothing on stdout; and the same without a daemon (so nothing was sent)
usage_err() {
	local re=$1
	shift
	uctl "$@"
	want 2 "^urbdctl: .*$re" "^Try 'urbdctl --help'\.\$"
	no_out
	run_ctl -s "$NOSOCK" "$@"
	want 2 "$re"
}
# jq-like checks: pyj 'python expression over d' (the last stdout as JSON)
pyj() {
	"$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
r = eval(sys.argv[2])
print(r if not isinstance(r, bool) else int(r))' "$T/ctl.out" "$1" ||
		{ show; fail "$LAST: stdout is not the JSON expected ($1)"; }
}
jtrue() { [ "$(pyj "$1")" = 1 ] || { show; fail "$LAST: JSON check failed: $1"; }; }
# nbd_exports URI: "name=size ..." as nbdinfo --list sees them (sorted)
nbd_exports() {
	timeout 30 nbdinfo --json --list "$1" >"$T/nbdlist.json" 2>"$T/nbdlist.err" ||
		{ cat "$T/nbdlist.err" >&2; fail "nbdinfo --list $1 failed"; }
	"$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(sorted("%s=%d" % (e["export-name"], e["export-size"]) for e in d["exports"])))' \
		"$T/nbdlist.json"
}
# want_exports "name=size ...": on TCP and on the unix socket
want_exports() {
	local uri got
	for uri in "nbd://127.0.0.1:$URBD_PORT" "nbd+unix:///?socket=$URBD_SOCK"; do
		got=$(nbd_exports "$uri")
		[ "$got" = "$1" ] || fail "nbdinfo --list $uri: '$got', want '$1'"
	done
}
nbd_size() { timeout 30 nbdinfo --size "$1" 2>&1 || fail "nbdinfo --size $1 failed"; }
# names in `volume list` (table), in order
table_names() { uctl volume list && want 0 && awk 'NR > 1 { print $1 }' <<<"$OUT" | tr '\n' ' ' | sed 's/ $//'; }
start() { start_urbd "${DAEMON_ARGS[@]}" "$@"; }

start
[ -S "$CSOCK" ] || fail "no control socket at $CSOCK"

# ---- help, usage errors (exit 2, nothing sent to the daemon) -------------
uctl --help
want 0
want_out '^usage: urbdctl' 'volume create NAME SIZE' '^Exit status:' '5  already exists'
uctl help
want 0
want_out '^usage: urbdctl'
usage_err "no command given"
usage_err "unknown command 'frob'" frob
usage_err "unknown volume command 'frob'" volume frob
usage_err "usage: urbdctl volume create.list.status.resize.delete" volume
usage_err "usage: urbdctl volume create NAME SIZE" volume create x
usage_err "usage: urbdctl volume create NAME SIZE" volume create x 1M extra
usage_err "usage: urbdctl volume status NAME" volume status
usage_err "usage: urbdctl volume resize NAME SIZE" volume resize x
usage_err "usage: urbdctl volume delete NAME" volume delete
usage_err "usage: urbdctl volume list" volume list extra
usage_err "usage: urbdctl node info" node
usage_err "usage: urbdctl export list" export frob
usage_err "unknown option '--bogus'" --bogus volume list
usage_err "option '--timeout' needs a value" volume list --timeout
usage_err "invalid --timeout '0'" -t 0 volume list
usage_err "--force only applies to 'volume delete'" --force volume list
run_ctl -e 127.0.0.1:1 volume list
want 2 "^urbdctl: --endpoint needs --tls-cert, --tls-key and --tls-ca" "^Try 'urbdctl --help'"
usage_err "--tls-\* options only apply with --endpoint" --tls-ca /dev/null volume list
run_ctl -s "$CSOCK" -e 127.0.0.1:1 volume list
want 2 "--socket and --endpoint exclude each other"
# sizes are checked before anything is sent
usage_err "size 1000 is not a multiple of 4096 bytes" volume create bad 1000
usage_err "size 4097 is not a multiple of 4096 bytes" volume create bad 4097
usage_err "size 3K \(3072 bytes\) is not a multiple of 4096 bytes" volume create bad 3K
usage_err "size must be greater than 0" volume create bad 0
usage_err "size must be greater than 0" volume create bad 0G
for s in 12Q ten '' 1.5G 1G2 ' 4096' 1GiBs 0x1000; do
	usage_err "invalid size '$s'" volume create bad "$s"
done
usage_err "size '99999999999999999999' is too large" volume create bad 99999999999999999999
usage_err "size '16385P' is too large" volume create bad 16385P
usage_err "size 1000 is not a multiple of 4096 bytes" volume resize bad 1000
usage_err "size must be greater than 0" volume resize bad 0
# a leading '-' is an option to getopt: a usage error, not a volume name
uctl volume create -abc 1M
want 2
log "usage errors: exit 2 with a message and the --help hint, also without a daemon"

# ---- empty daemon ----------------------------------------------------------
ok volume list
[ "$OUT" = "NAME  SIZE  ALLOCATED  STATE  CONNS  UUID" ] || { show; fail "empty list: '$OUT'"; }
ok --json volume list
jtrue 'd == {"volumes": []}'
want_exports ""

# ---- node info --------------------------------------------------------------
ok node info
want_out '^Node: +urbdctl-node$' '^Zone: +zone-a$' "^Store: +$URBD_STORE\$" \
	'^Reactors: +2$' "^NBD \(TCP\): +127\.0\.0\.1:$URBD_PORT\$" \
	"^NBD \(unix\): +$URBD_SOCK\$" '^Capacity: +[0-9.]+ [KMGTP]?i?B \([0-9.]+ [KMGTP]?i?B free\)$' \
	'^Version: +[0-9]+\.[0-9]+\.[0-9]+' '^Uptime: +[0-9]+s$'
ok -j node info
jtrue 'd["node_id"] == "urbdctl-node" and d["zone"] == "zone-a"'
jtrue "d['store_path'] == '$URBD_STORE'"
jtrue 'd["capacity_bytes"] > 0 and 0 < d["free_bytes"] <= d["capacity_bytes"]'
jtrue 'd["reactors"] >= 1 and d["reactors"] == 2'
jtrue "d['nbd_listen'] == '127.0.0.1:$URBD_PORT' and d['nbd_unix'] == '$URBD_SOCK'"
jtrue 'isinstance(d["uptime_ns"], int) and d["uptime_ns"] > 0 and d["version"] != ""'
FREE=$(pyj 'd["free_bytes"]')
log "node info: human and JSON"

# ---- create -------------------------------------------------------------------
ok volume create alpha 64M
[ "$OUT" = "created volume alpha (64.0 MiB)" ] || { show; fail "create output: '$OUT'"; }
ok volume create beta 4096
ok --json volume create gamma 2MiB
jtrue 'd["name"] == "gamma" and d["size_bytes"] == 2097152 and d["state"] == "online"'
NAME63=v$(printf 'x%.0s' {1..62})
ok volume create "$NAME63" 1m
for v in alpha beta gamma "$NAME63"; do
	[ -d "$URBD_STORE/volumes/$v" ] || fail "no directory $URBD_STORE/volumes/$v after create"
done
ok volume list
want_out '^NAME +SIZE +ALLOCATED +STATE +CONNS +UUID$' \
	'^alpha +64\.0 MiB +[0-9.]+ [KMG]?i?B +online +0 +[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$' \
	'^beta +4\.0 KiB .* online +0 ' '^gamma +2\.0 MiB .* online +0 ' "^$NAME63 +1\.0 MiB .* online +0 "
[ "$(table_names)" = "alpha beta gamma $NAME63" ] || fail "volume list not sorted by name: $(table_names)"
ok --json volume list
jtrue '[v["name"] for v in d["volumes"]] == ["alpha", "beta", "gamma", "'"$NAME63"'"]'
jtrue '[v["size_bytes"] for v in d["volumes"]] == [67108864, 4096, 2097152, 1048576]'
jtrue 'all(v["state"] == "online" and v["connections"] == 0 and v["error"] == "" for v in d["volumes"])'
jtrue 'len(set(v["uuid"] for v in d["volumes"])) == 4'
ALPHA_UUID=$(pyj 'd["volumes"][0]["uuid"]')
want_exports "alpha=67108864 beta=4096 gamma=2097152 $NAME63=1048576"
[ "$(nbd_size "$(uri_tcp alpha)")" = 67108864 ] || fail "nbdinfo --size alpha"
log "create: table, JSON and nbdinfo agree"

# ---- create errors --------------------------------------------------------------
uctl volume create alpha 64M
want 5 '^urbdctl: volume alpha already exists$'
no_out
uctl volume create alpha 128M
want 5 'volume alpha already exists'
# racing creates of one name: exactly one wins, the rest get exit 5
race_pids=()
for i in 1 2 3 4; do
	(rc=0
		timeout 30 "$CTL" -s "$CSOCK" volume create race 1M >/dev/null 2>"$T/race.$i.err" || rc=$?
		echo $rc >"$T/race.$i.rc") &
	race_pids+=($!)
done
wait "${race_pids[@]}"
rcs=$(cat "$T"/race.*.rc | sort | tr '\n' ' ')
[ "$rcs" = "0 5 5 5 " ] || { cat "$T"/race.*.err >&2; fail "4 racing creates: exits $rcs, want 0 5 5 5"; }
ok volume delete race
# larger than the store's free space
BIG=$(((FREE / 4096 + 1024 * 1024) * 4096)) # free + 4 GiB
uctl volume create huge "$BIG"
want 1 '^urbdctl: not enough space in the store: .* asked, .* free$'
no_out
if [ "$FREE" -lt $((90 * 1024 * 1024 * MiB)) ]; then
	uctl volume create huge 100T
	want 1 'not enough space in the store: 100\.0 TiB asked'
fi
# invalid names: refused by the daemon with a clear message
for n in Abc ALPHA a/b ../x "$NAME63"x a@b 'a b' .hidden _x; do
	uctl volume create -- "$n" 1M
	want 1 "^urbdctl: invalid volume name \".*\": use 1-63 characters a-z 0-9 \. _ - starting with a letter or digit\$"
	no_out
done
uctl volume create -- -abc 1M
want 1 'invalid volume name "-abc"'
uctl volume create '' 1M
want 1 '^urbdctl: volume name is empty$'
uctl volume status 'Bad/Name'
want 1 'invalid volume name "Bad/Name"'
# nothing of that left behind
[ "$(table_names)" = "alpha beta gamma $NAME63" ] || fail "failed creates left volumes: $(table_names)"
left=$(cd "$URBD_STORE/volumes" && ls -A | sort | tr '\n' ' ')
[ "$left" = "alpha beta gamma $NAME63 " ] || fail "store volumes dir after failed creates: '$left'"
want_exports "alpha=67108864 beta=4096 gamma=2097152 $NAME63=1048576"
assert_alive "after bad creates"
log "create errors: exists 5, no space 1, bad names 1, nothing left behind"

# ---- status -------------------------------------------------------------------------
ok volume status alpha
want_out '^Name: +alpha$' "^UUID: +$ALPHA_UUID\$" '^State: +online$' \
	'^Size: +64\.0 MiB \(67108864 bytes\)$' '^Connections: +0$' '^Block size: +[0-9]+$' \
	'^Created: +20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' '^Reactor: +[01]$'
ok --json volume status alpha
jtrue "d['name'] == 'alpha' and d['uuid'] == '$ALPHA_UUID' and d['size_bytes'] == 67108864"
jtrue 'd["state"] == "online" and d["connections"] == 0 and d["reactor"] in (0, 1)'
jtrue 'd["block_size"] in (512, 4096) and d["created_unix_ns"] > 1600000000 * 10**9'
uctl volume status nope
want 4 '^urbdctl: volume nope not found$'
no_out
uctl --json volume status nope
want 4 'volume nope not found'
no_out

# ---- resize (grow) with data before and after -------------------------------------
qio_ok "$(uri_tcp alpha)" "write -P 0xa5 0 1M" "write -P 0x5a $((64 * MiB - 4096)) 4096" \
	"write -P 0x3c 12345 6789"
ok volume resize alpha 128M
[ "$OUT" = "resized volume alpha to 128.0 MiB" ] || { show; fail "resize output: '$OUT'"; }
[ "$(nbd_size "$(uri_tcp alpha)")" = $((128 * MiB)) ] || fail "nbdinfo --size after resize"
[ "$(nbd_size "$(uri_unix alpha)")" = $((128 * MiB)) ] || fail "nbdinfo --size (unix) after resize"
want_exports "alpha=134217728 beta=4096 gamma=2097152 $NAME63=1048576"
qio_ok "$(uri_unix alpha)" "read -P 0xa5 0 12345" "read -P 0x3c 12345 6789" \
	"read -P 0xa5 19134 $((MiB - 19134))" "read -P 0x5a $((64 * MiB - 4096)) 4096" \
	"read -P 0 $((64 * MiB)) $((64 * MiB))" "write -P 0x77 $((128 * MiB - 4096)) 4096" \
	"read -P 0x77 $((128 * MiB - 4096)) 4096"
ok --json volume resize alpha 192M
jtrue 'd["name"] == "alpha" and d["size_bytes"] == 192 * 1024 * 1024'
ok volume status alpha
want_out '^Size: +192\.0 MiB \(201326592 bytes\)$' "^UUID: +$ALPHA_UUID\$"
# same size: a no-op
ok volume resize alpha 192M
[ "$(nbd_size "$(uri_tcp alpha)")" = $((192 * MiB)) ] || fail "nbdinfo --size after resize 192M"
uctl volume resize alpha 32M
want 1 '^urbdctl: volume alpha is 201326592 bytes: shrinking is not supported$'
no_out
uctl volume resize alpha 4096
want 1 'shrinking is not supported'
uctl volume resize nope 1G
want 4 '^urbdctl: volume nope not found$'
uctl volume resize gamma "$BIG"
want 1 'not enough space in the store'
[ "$(nbd_size "$(uri_tcp alpha)")" = $((192 * MiB)) ] || fail "size changed by a refused resize"
[ "$(nbd_size "$(uri_tcp gamma)")" = 2097152 ] || fail "gamma's size changed by a refused resize"
qio_ok "$(uri_tcp alpha)" "read -P 0xa5 0 12345" "read -P 0x5a $((64 * MiB - 4096)) 4096" \
	"read -P 0x77 $((128 * MiB - 4096)) 4096" "read -P 0 $((128 * MiB)) $((64 * MiB))"
assert_log 'volume alpha resized to 201326592 bytes'
log "resize: grows, nbdinfo sees it on a new connection, data intact; shrink/missing refused"

# ---- export list ----------------------------------------------------------------
ok export list
want_out '^VOLUME +PROTOCOL +CONNS +ADDRESS$'
for v in alpha beta gamma "$NAME63"; do
	want_out "^$v +nbd +0 +nbd://127\.0\.0\.1:$URBD_PORT/$v\$" \
		"^$v +nbd +0 +nbd\+unix:///$v\?socket=$URBD_SOCK\$"
done
[ "$(wc -l <<<"$OUT")" = 9 ] || { show; fail "export list: want a header and 8 rows"; }
ok -j export list
jtrue 'len(d["exports"]) == 8 and all(e["protocol"] == "nbd" and e["connections"] == 0 for e in d["exports"])'
# each advertised address works and has the volume's size
pyj '"\n".join(e["address"] for e in d["exports"])' >"$T/addrs"
while read -r a; do
	sz=$(nbd_size "$a")
	case $a in
	*/alpha | */alpha\?*) want_sz=$((192 * MiB)) ;;
	*/beta | */beta\?*) want_sz=4096 ;;
	*/gamma | */gamma\?*) want_sz=2097152 ;;
	*) want_sz=1048576 ;;
	esac
	[ "$sz" = "$want_sz" ] || fail "export address $a: nbdinfo size $sz, want $want_sz"
done <"$T/addrs"
log "export list: nbd:// and nbd+unix:// per volume, each reachable"

# ---- delete -------------------------------------------------------------------------
cat >"$T/hold.py" <<'EOF'
# holds one NBD connection, reading every 0.1 s, until the server drops it
import nbd, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
print("connected", h.get_size(), flush=True)
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        h.pread(4096, 0)
    except Exception as e:
        print("disconnected:", e, flush=True)
        sys.exit(0)
    time.sleep(0.1)
print("still connected", flush=True)
sys.exit(1)
EOF
# two clients on alpha, one per transport
timeout 40 "$PY" "$T/hold.py" "$(uri_tcp alpha)" 30 >"$T/hold.out" 2>&1 &
HOLD_PID=$!
on_exit "kill $HOLD_PID"
timeout 40 "$PY" "$T/hold.py" "$(uri_unix alpha)" 30 >"$T/hold2.out" 2>&1 &
HOLD2_PID=$!
on_exit "kill $HOLD2_PID"
for f in hold hold2; do
	wait_until 10 grep -q '^connected' "$T/$f.out" || { cat "$T/$f.out" >&2; fail "$f client did not connect"; }
done
ok --json volume status alpha
jtrue 'd["connections"] == 2'
ok export list
want_out "^alpha +nbd +2 +nbd://127\.0\.0\.1:$URBD_PORT/alpha\$" "^beta +nbd +0 "
uctl volume delete alpha
want 1 '^urbdctl: volume alpha is in use by 2 frontend connection\(s\); disconnect them or use --force$' \
	'^urbdctl: \(if the volume is in use, --force disconnects its clients\)$'
no_out
kill -0 "$HOLD2_PID" 2>/dev/null || { cat "$T/hold2.out" >&2; fail "a client lost its connection on a refused delete"; }
kill -TERM "$HOLD2_PID"
wait "$HOLD2_PID" 2>/dev/null || true
wait_until 5 eval 'uctl --json volume status alpha; [ "$(pyj "d[\"connections\"]")" = 1 ]' ||
	fail "connections did not drop to 1 after a client went away"
uctl volume delete alpha
want 1 'volume alpha is in use by 1 frontend connection\(s\)'
kill -0 "$HOLD_PID" 2>/dev/null || { cat "$T/hold.out" >&2; fail "the client lost its connection on a refused delete"; }
ok volume status alpha
want_out '^Connections: +1$'
[ -d "$URBD_STORE/volumes/alpha" ] || fail "refused delete removed the volume directory"
qio_ok "$(uri_unix alpha)" "read -P 0xa5 0 4096"
ok volume delete alpha --force
[ "$OUT" = "deleted volume alpha" ] || { show; fail "delete output: '$OUT'"; }
hold_rc=0
wait "$HOLD_PID" || hold_rc=$?
[ "$hold_rc" = 0 ] || { cat "$T/hold.out" >&2; fail "the client's connection survived delete --force (rc $hold_rc)"; }
grep -q '^disconnected' "$T/hold.out" || { cat "$T/hold.out" >&2; fail "hold client: no disconnect"; }
assert_log 'volume alpha: closing: volume detached by the operator'
assert_log 'deleted volume alpha'
[ ! -e "$URBD_STORE/volumes/alpha" ] || fail "$URBD_STORE/volumes/alpha still there after delete"
[ "$(table_names)" = "beta gamma $NAME63" ] || fail "list after delete: $(table_names)"
want_exports "beta=4096 gamma=2097152 $NAME63=1048576"
if timeout 30 nbdinfo --size "$(uri_tcp alpha)" >/dev/null 2>&1; then
	fail "nbdinfo still opens the deleted volume alpha"
fi
uctl volume status alpha
want 4 'volume alpha not found'
uctl volume delete alpha
want 4 '^urbdctl: volume alpha not found$'
uctl volume delete alpha --force
want 4 'volume alpha not found'
ok --json volume delete beta
jtrue 'd == {"deleted": "beta"}'
ok volume rm "$NAME63"
left=$(cd "$URBD_STORE/volumes" && ls -A | tr '\n' ' ')
[ "$left" = "gamma " ] || fail "store volumes dir after deletes: '$left'"
ok export list
[ "$(wc -l <<<"$OUT")" = 3 ] || { show; fail "export list after deletes: want 2 rows"; }
# a new volume can take a deleted name; it starts zeroed
ok volume create alpha 8M
qio_ok "$(uri_tcp alpha)" "read -P 0 0 1M"
ok --json volume status alpha
[ "$(pyj 'd["uuid"]')" != "$ALPHA_UUID" ] || fail "re-created alpha kept the old uuid"
assert_alive "after deletes"
log "delete: in use -> 1, --force drops the client, volume gone everywhere"

# ---- survives a restart ----------------------------------------------------------------
ok volume create keep 32M
ok --json volume status keep
KEEP_UUID=$(pyj 'd["uuid"]')
qio_ok "$(uri_tcp keep)" "write -P 0x61 0 64k" "write -P 0x62 $((32 * MiB - 65536)) 65536" "flush"
ok volume resize keep 48M
qio_ok "$(uri_tcp keep)" "write -P 0x63 $((40 * MiB)) 4096" "flush"
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exited $URBD_EXIT on SIGTERM"

# ---- daemon not running: exit 3, fast -----------------------------------------
for sock in "$CSOCK" "$NOSOCK"; do
	for cmd in "volume list" "node info" "volume create x 1M" "volume delete gamma --force"; do
		# shellcheck disable=SC2086
		run_ctl -s "$sock" $cmd
		want 3 "^urbdctl: cannot reach urbd at unix:$sock: is the daemon running\?\$"
		no_out
		[ "$SECS_MS" -lt 5000 ] || fail "$LAST took $SECS_MS ms to give up (want < 5 s)"
	done
done
URBD_SOCKET=$CSOCK run_ctl volume list
want 3 "cannot reach urbd at unix:$CSOCK"
log "daemon stopped: exit 3 in ${SECS_MS} ms"

start
ok volume list
[ "$(table_names)" = "alpha gamma keep" ] || fail "after restart: volumes $(table_names), want alpha gamma keep"
ok --json volume status keep
jtrue "d['uuid'] == '$KEEP_UUID' and d['size_bytes'] == 48 * 1024 * 1024 and d['state'] == 'online'"
want_exports "alpha=8388608 gamma=2097152 keep=50331648"
qio_ok "$(uri_unix keep)" "read -P 0x61 0 64k" "read -P 0x62 $((32 * MiB - 65536)) 65536" \
	"read -P 0x63 $((40 * MiB)) 4096" "read -P 0 $((32 * MiB)) $((8 * MiB))"
log "restart: volumes, uuid, size and data kept"

# killed daemon: the socket file is left behind; still exit 3, fast
kill9_urbd
[ -S "$CSOCK" ] || log "note: no stale control socket after SIGKILL"
run_ctl -s "$CSOCK" volume list
want 3 "cannot reach urbd at unix:$CSOCK: is the daemon running\?"
[ "$SECS_MS" -lt 5000 ] || fail "$LAST took $SECS_MS ms after SIGKILL"
# a socket that accepts and never answers: the --timeout
"$PY" - "$T/hang.sock" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(16)
s.settimeout(0.2)
held, end = [], time.time() + 15
while time.time() < end:
    try:
        held.append(s.accept()[0])
    except socket.timeout:
        pass
EOF
HANG_PID=$!
on_exit "kill $HANG_PID"
wait_until 5 test -S "$T/hang.sock" || fail "hung listener did not start"
run_ctl -s "$T/hang.sock" -t 1000 node info
want 3 "^urbdctl: urbd at unix:$T/hang.sock did not answer within 1000 ms\$"
[ "$SECS_MS" -lt 5000 ] || fail "$LAST took $SECS_MS ms"
kill "$HANG_PID" 2>/dev/null || true
wait "$HANG_PID" 2>/dev/null || true
log "killed daemon / hung socket: exit 3 within 5 s"

# ---- control API over TCP with mutual TLS ------------------------------------------
P=$T/pki
mkdir -p "$P"
mkcert() { # name cn ca ext-line
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj "/CN=$2" -keyout "$P/$1.key" -out "$P/$1.csr" 2>"$P/err" &&
		printf '%s\n' "$4" >"$P/$1.ext" &&
		openssl x509 -req -in "$P/$1.csr" -CA "$P/$3.crt" -CAkey "$P/$3.key" \
			-CAcreateserial -days 2 -extfile "$P/$1.ext" -out "$P/$1.crt" 2>>"$P/err" ||
		{ cat "$P/err" >&2; fail "openssl: cannot make $1"; }
}
mkca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=$1" -keyout "$P/$1.key" -out "$P/$1.crt" 2>"$P/err" ||
		{ cat "$P/err" >&2; fail "openssl: cannot make CA $1"; }
}
mkca ca
mkca otherca
mkcert server localhost ca "subjectAltName=IP:127.0.0.1,DNS:localhost"
mkcert client urbdctl ca "extendedKeyUsage=clientAuth"
mkcert rogue urbdctl otherca "extendedKeyUsage=clientAuth"
CPORT=$(free_port)
start --control-tcp "127.0.0.1:$CPORT" --tls-cert "$P/server.crt" \
	--tls-key "$P/server.key" --tls-ca "$P/ca.crt"
assert_log "serving 127\.0\.0\.1:$CPORT \(mutual TLS\)"
tls() { # cert key ca args...
	local c=$1 k=$2 a=$3
	shift 3
	run_ctl -e "127.0.0.1:$CPORT" --tls-cert "$c" --tls-key "$k" --tls-ca "$a" "$@"
}
GOOD=("$P/client.crt" "$P/client.key" "$P/ca.crt")
tls "${GOOD[@]}" volume list
want 0
want_out '^keep +48\.0 MiB .* online '
tls "${GOOD[@]}" --json node info
want 0
jtrue "d['node_id'] == 'urbdctl-node' and d['store_path'] == '$URBD_STORE'"
tls "${GOOD[@]}" volume create tlsvol 4M
want 0
want_out '^created volume tlsvol \(4\.0 MiB\)$'
[ "$(nbd_size "$(uri_tcp tlsvol)")" = $((4 * MiB)) ] || fail "volume made over TLS: nbdinfo size"
tls "${GOOD[@]}" volume create tlsvol 4M
want 5 'volume tlsvol already exists'
tls "${GOOD[@]}" volume status nope
want 4 'volume nope not found'
tls "${GOOD[@]}" --tls-server-name localhost volume delete tlsvol
want 0
ok volume list # the unix socket still serves alongside
[ "$(table_names)" = "alpha gamma keep" ] || fail "after TLS create/delete: $(table_names)"
log "mutual TLS: good client certificate works (list, info, create, delete)"

# a client certificate from another CA: the daemon refuses it
tls "$P/rogue.crt" "$P/rogue.key" "$P/ca.crt" volume list
want 3 "^urbdctl: cannot reach urbd at 127\.0\.0\.1:$CPORT: is the daemon running\?\$"
no_out
assert_log 'certificate verify failed'
# the client does not trust the daemon's CA
tls "$P/client.crt" "$P/client.key" "$P/otherca.crt" volume list
want 3 "cannot reach urbd at 127\.0\.0\.1:$CPORT" 'certificate verify failed'
# the daemon's certificate does not name the server name asked for
tls "${GOOD[@]}" --tls-server-name other.example volume list
want 3 'other\.example'
# a key that is not the certificate's: refused before connecting
tls "$P/client.crt" "$P/rogue.key" "$P/ca.crt" volume list
want 2 'does not match certificate'
# no client certificate at all: urbdctl insists on one...
run_ctl -e "127.0.0.1:$CPORT" --tls-ca "$P/ca.crt" volume list
want 2 '--endpoint needs --tls-cert, --tls-key and --tls-ca'
# ...and a TLS client without one gets no answer from the daemon
"$PY" - "$CPORT" "$P/ca.crt" >"$T/nocert.out" 2>&1 <<'EOF' || true
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.set_alpn_protocols(["h2"])
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
try:
    t = ctx.wrap_socket(s, server_hostname="localhost")
    # HTTP/2 preface and an empty SETTINGS frame
    t.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
    data = t.recv(4096)
    print("ANSWERED" if data else "CLOSED", len(data))
except (ssl.SSLError, OSError) as e:
    print("REFUSED", e)
EOF
grep -qE '^(CLOSED|REFUSED)' "$T/nocert.out" || { cat "$T/nocert.out" >&2; fail "TLS without a client certificate got an answer"; }
assert_log 'peer did not return a certificate'
# plain text on the TLS port: no answer either
"$PY" - "$CPORT" >"$T/plain.out" 2>&1 <<'EOF' || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
try:
    d = s.recv(4096)
    print("ANSWERED" if d and d[3:4] == b"\x04" else "NOT-H2", len(d))
except OSError as e:
    print("REFUSED", e)
EOF
grep -qE '^(NOT-H2|REFUSED)' "$T/plain.out" || { cat "$T/plain.out" >&2; fail "plain-text HTTP/2 on the TLS port got an answer"; }
# after all that, the good client still works
tls "${GOOD[@]}" volume list
want 0
assert_alive "after refused TLS clients"
log "mutual TLS: other CA, untrusted server, wrong name, no client cert all refused"

# an unknown short option inside a group is named, not the word after it
uctl volume create -abc 1M
want 2 "^urbdctl: unknown option '-a'\$"
stop_urbd
[ "$URBD_EXIT" = 0 ] || fail "urbd exited $URBD_EXIT on SIGTERM"

# --nbd-listen with port 0: node info and export list give the bound port
start_urbd --nbd-listen 127.0.0.1:0
ok volume create p0 1M
bound=$(sed -nE 's/.*listening on 127\.0\.0\.1:0 \(port ([0-9]+)\).*/\1/p' "$URBD_LOG" | tail -1)
[ -n "$bound" ] && [ "$bound" != 0 ] || fail "no bound port in the log"
ok node info
want_out "127\.0\.0\.1:$bound"
ok export list
want_out "nbd://127\.0\.0\.1:$bound/p0"
[ "$(nbd_size "nbd://127.0.0.1:$bound/p0")" = $((1 << 20)) ] || fail "export on the bound port"
stop_urbd
# and over TCP once the daemon is gone: exit 3, fast, with the cause
tls "${GOOD[@]}" volume list
want 3 "^urbdctl: cannot reach urbd at 127\.0\.0\.1:$CPORT: is the daemon running\?\$" 'Connection refused'
[ "$SECS_MS" -lt 5000 ] || fail "$LAST took $SECS_MS ms"
pass
