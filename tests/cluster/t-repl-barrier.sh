#!/usr/bin/env bash
# BARRIER: `urbdctl volume barrier` on the primary returns once every live,
# up-to-date member confirmed everything written before it as on stable
# storage (BARRIER / BARRIER_ACK on the peer links), and lists the others
# with the reason.
#   - idle: confirmed by a, b and c; epochs count up
#   - on a secondary: refused (not primary); unknown volume: refused
#   - 20 barriers while the checker writes through a: each confirmed by
#     all three, the checker loses nothing, a = b = c afterwards
#   - c killed: confirmed by a and b, c left out as "not connected"
#   - c back and resynced: all three again
#   - c cut off (its link up until it times out): the barrier waits for
#     it, and `volume status` on a answers meanwhile (it used to wait for
#     the barrier: the volume manager's lock was held across it); then
#     confirmed by a and b, c left out
#   - the volume deleted on a while a barrier waits: the delete waits for
#     it, a second barrier meanwhile is refused
# Not shown here: that the flush behind an ack survives a power cut (a
# kill -9 keeps the page cache); the QEMU guest would be the place.
# a cut-off peer's link lasts 3 s: long enough to ask for the status
# while a barrier waits for it
export URBD_REPL_TIMEOUT_MS=${URBD_REPL_TIMEOUT_MS:-3000}
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip

bar() { ctl "$1" --json volume barrier "${2:-$VOL}"; }
bfield() { "$PY" -c "import json,sys; v=json.load(sys.stdin); print($2)" <<<"$1"; }

repl_up a b c
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
wait_connected a 2

js=$(bar a) || fail "barrier on a: $js"
[ "$(bfield "$js" '",".join(sorted(v["confirmed"]))')" = node-a,node-b,node-c ] ||
	fail "idle barrier not confirmed by all three: $js"
e1=$(bfield "$js" 'v["epoch"]')
js=$(bar a) || fail "second barrier on a: $js"
e2=$(bfield "$js" 'v["epoch"]')
[ "$e2" -gt "$e1" ] || fail "barrier epochs do not count up: $e1 then $e2"
log "idle barriers $e1, $e2: confirmed by node-a, node-b, node-c ($(ctl a volume barrier "$VOL" | head -n 1))"

rc=0
sec=$(ctl b volume barrier "$VOL" 2>&1) || rc=$?
[ "$rc" != 0 ] && grep -q "primary" <<<"$sec" || fail "barrier on secondary b: exit $rc: $sec"
rc=0
out=$(ctl a volume barrier nosuchvol 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "barrier on an unknown volume succeeded: $out"
log "refused on a secondary: $sec"

checker_bg a w1 6 "$(nbd_uri a)"
sleep 1
n=0 last=$e2 maxms=0
while [ $n -lt 20 ]; do
	js=$(bar a) || fail "barrier $n under writes: $js"
	[ "$(bfield "$js" 'len(v["confirmed"])')" = 3 ] || fail "barrier under writes: $js"
	e=$(bfield "$js" 'v["epoch"]')
	[ "$e" -gt "$last" ] || fail "epoch $e after $last"
	ms=$(bfield "$js" 'v["elapsed_ns"] // 1000000')
	[ "$ms" -gt "$maxms" ] && maxms=$ms
	last=$e n=$((n + 1))
	sleep 0.1
done
checker_wait "$CHK_PID" w1
[ "$(chk_field w1 errors)" = 0 ] || fail "writes failed while barriers ran"
wait_until 5 no_pending a
checker_verify a w1
replicas_identical a b c || fail "replicas differ after barriers under writes"
log "20 barriers under $(chk_field w1 acked) checker writes: each confirmed by 3 (slowest ${maxms} ms)"

kill9_in c
# past "closing" too: a link still closing is live for the barrier ("its
# link is going", seen once in 2026-12)
_c_gone() { case "$(peer_conn a 2)" in connected | closing) false ;; esac; }
wait_until 10 _c_gone || fail "a still sees c connected"
js=$(bar a) || fail "barrier with c dead: $js"
[ "$(bfield "$js" '",".join(sorted(v["confirmed"]))')" = node-a,node-b ] ||
	fail "barrier with c dead: $js"
bfield "$js" 'v["left_out"][0]' | grep -q "node-c: not connected" ||
	fail "c is not left out as not connected: $js"
log "c killed: confirmed by node-a, node-b; left out: $(bfield "$js" 'v["left_out"][0]')"

repl_start c
wait_connected a 2
wait_until 30 up_to_date c || fail "c not resynced: $(vstatus c)"
_all3() { [ "$(bfield "$(bar a)" 'len(v["confirmed"])')" = 3 ]; }
wait_until 10 _all3 || fail "barrier after c's return: $(bar a)"

# bar_cut_c FILE: c cut off, a barrier on a into FILE in the background
# (bar_pid), returning once it is under way: its "waiting for" line is
# logged and c's ack will not come before c's link times out (3 s)
_n_bar() { cat "$T/az-a/urbd."*.log | grep -c "barrier [0-9]*: waiting for" || true; }
_bar_started() { [ "$(_n_bar)" -gt "$n_bar" ]; }
bar_cut_c() {
	partition a c
	n_bar=$(_n_bar)
	bar a >"$1" 2>&1 &
	bar_pid=$!
	wait_until 10 _bar_started || fail "the barrier with c cut off did not start"
}

# c cut off: the barrier waits until c's link times out; status meanwhile
bar_cut_c "$T/bar-cut.json"
st=$(vstatus a) || fail "status on a while a barrier waits: $st"
[ ! -s "$T/bar-cut.json" ] ||
	fail "status on a answered only after the barrier: $(cat "$T/bar-cut.json")"
wait "$bar_pid" || fail "barrier with c cut off: $(cat "$T/bar-cut.json")"
js=$(cat "$T/bar-cut.json")
[ "$(bfield "$js" '",".join(sorted(v["confirmed"]))')" = node-a,node-b ] ||
	fail "barrier with c cut off: $js"
bfield "$js" '" ".join(v["left_out"])' | grep -q "node-c" ||
	fail "c is not left out of the barrier while cut off: $js"
log "c cut off: status answered while the barrier waited; left out: $(bfield "$js" 'v["left_out"][0]')"
heal a c
wait_connected a 2
wait_until 10 _all3 || fail "barrier after c's heal: $(bar a)"
replicas_identical a b c || fail "replicas differ at the end"

# the volume deleted on a while a barrier waits for cut-off c: the delete
# waits for the barrier (which runs without the manager's lock), a second
# barrier meanwhile is refused, then the volume is gone (ASan in test-san)
bar_cut_c "$T/bar-del.json"
ctl a volume delete "$VOL" --force >"$T/del.out" 2>&1 &
del_pid=$!
_deleting() { ! ctl a volume barrier "$VOL" >"$T/bar2.out" 2>&1 && grep -q "being taken down" "$T/bar2.out"; }
wait_until 5 _deleting || fail "a barrier during the delete: $(cat "$T/bar2.out")"
[ ! -s "$T/bar-del.json" ] || fail "the barrier ended before the delete was under way"
wait "$bar_pid" || fail "barrier during the delete: $(cat "$T/bar-del.json")"
wait "$del_pid" || fail "delete during a barrier: $(cat "$T/del.out")"
[ "$(bfield "$(cat "$T/bar-del.json")" '",".join(sorted(v["confirmed"]))')" = node-a,node-b ] ||
	fail "barrier during the delete: $(cat "$T/bar-del.json")"
if ctl a volume status "$VOL" >/dev/null 2>&1; then fail "$VOL still on a after the delete"; fi
log "deleted on a while a barrier waited: the delete waited, a second barrier was refused meanwhile"
pass "barrier: confirmed by all three idle and under writes (20, slowest ${maxms} ms), refused on a secondary, c left out while dead and back after its resync, status answered while a barrier waited for cut-off c, a delete waited for a barrier; a = b = c"
