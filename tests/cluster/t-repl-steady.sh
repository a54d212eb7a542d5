#!/usr/bin/env bash
# Three replicas in three AZs, steady writes through the primary with real
# clients (fio randwrite over NBD, qemu-io large writes, trims and zeroes):
# every write is acknowledged, secondaries refuse to export the volume, and
# afterwards the three data files are bit-identical. Then the role moves
# (demote a, promote b) and the same holds for writes through b. The
# daemons busy-poll (--poll-us 200, README.md): the other tests run them
# without it.
# shellcheck source-path=SCRIPTDIR source=repl_lib.sh
source "$(dirname "$0")/repl_lib.sh"

require_root
require_cmd ip fio qemu-io nbdinfo

REPL_START_ARGS="--poll-us 200"
repl_up a b c
for az in a b c; do
	grep -q 'reactor(s) busy-polling' "$T"/az-"$az"/urbd.*.log || fail "az $az does not busy-poll"
done
ctl a volume promote "$VOL" >/dev/null || fail "promote a"
[ "$(vfield a 'v["replication"]["role"]')" = primary ] || fail "a is not primary"
# a secondary does not export the volume
if in_az b timeout 5 nbdinfo --size "$(nbd_uri b)" >/dev/null 2>&1; then
	fail "secondary b exports the volume"
fi

out=$(in_az a timeout 60 fio --name=steady --ioengine=nbd --uri="$(nbd_uri a)" \
	--rw=randwrite --bs=4k --iodepth=16 --size=48M --time_based --runtime=4 \
	--output-format=terse 2>&1) || fail "fio: $out"
iops=$(awk -F';' 'NF > 50 { print $49 }' <<<"$out")
errs=$(awk -F';' 'NF > 50 { print $5 }' <<<"$out")
[ "${errs:-1}" = 0 ] && [ "${iops:-0}" -gt 0 ] || fail "fio: errors=$errs iops=$iops"
log "fio randwrite 4k QD16 through a: $iops IOPS, 0 errors"

out=$(in_az a timeout 60 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x5a 8M 4M' \
	-c 'write -P 0xa5 20M 3M' -c 'discard 9M 1M' -c 'write -z 21M 512k' \
	-c 'write -f -P 0x3c 30M 64k' -c flush 2>&1) || fail "qemu-io: $out"
grep -qiE 'fail|error' <<<"$out" && fail "qemu-io: $out"

wait_until 5 no_pending a ||
	fail "requests still pending"
replicas_identical a b c || fail "replicas differ after steady writes"
n=$(vfield a 'v["replication"]["writes_replicated"]')
[ "$n" -gt 1000 ] || fail "only $n writes replicated"
for az in b c; do
	[ "$(vfield "$az" 'v["replication"]["disk_state"]')" = up-to-date ] ||
		fail "az $az not up-to-date: $(vstatus "$az")"
done
log "a, b, c identical ($(sha256sum <"$(data_of a)" | cut -c1-16)); $n writes replicated"

# the human status names every peer and its state
ctl a volume status "$VOL" >"$T/status.txt" || fail "status"
grep -q '^Replication: *member 0, primary, disk up-to-date' "$T/status.txt" || fail "status: $(cat "$T/status.txt")"
grep -qE '^ +2 +node-c +10\.77\.0\.3:7788 +connected +secondary +up-to-date +0 +[0-9.]+ms ' \
	"$T/status.txt" || fail "status peer line (with its lag): $(cat "$T/status.txt")"
lag=$(peer_field a 2 lag_ns)
[ "$lag" -gt 0 ] && [ "$lag" -lt 1000000000 ] || fail "c's lag on a: $lag ns"
# resize: every member, the primary last (it refuses while a replica is
# smaller); the links stay up through it; the new space replicates
ctl a volume resize "$VOL" 96M >/dev/null 2>"$T/err" && fail "the primary grew before its replicas"
grep -q 'primary last' "$T/err" || fail "resize refusal: $(cat "$T/err")"
ctl c volume resize "$VOL" 96M >/dev/null || fail "resize c"
ctl b volume resize "$VOL" 96M >/dev/null || fail "resize b"
ctl a volume resize "$VOL" 96M >/dev/null || fail "resize a: $(ctl a volume resize "$VOL" 96M 2>&1)"
[ "$(peer_conn a 1)/$(peer_conn a 2)" = connected/connected ] || fail "a lost a peer in the resize"
[ "$(in_az a nbdinfo --size "$(nbd_uri a)")" = 100663296 ] || fail "a does not export 96 MiB"
out=$(in_az a timeout 30 qemu-io -f raw "$(nbd_uri a)" -c 'write -P 0x96 90M 2M' \
	-c 'read -P 0x96 90M 2M' 2>&1) || fail "qemu-io past the old end: $out"
grep -qiE 'fail|error' <<<"$out" && fail "qemu-io past the old end: $out"
wait_until 5 no_pending a
replicas_identical a b c || fail "replicas differ after the resize"
log "resized 64 -> 96 MiB (c, b, then the primary a); writes past the old end replicated"

# move the primary role
ctl b volume promote "$VOL" >/dev/null 2>"$T/err" && fail "b promoted while a is primary"
grep -q 'primary on node-a' "$T/err" || fail "wrong refusal: $(cat "$T/err")"
ctl a volume demote "$VOL" >/dev/null || fail "demote a"
promote_retry b
out=$(in_az b timeout 60 qemu-io -f raw "$(nbd_uri b)" -c 'write -P 0x77 40M 2M' \
	-c 'read -P 0x5a 8M 1M' 2>&1) || fail "qemu-io via b: $out"
grep -qiE 'fail|error' <<<"$out" && fail "qemu-io via b: $out"
wait_until 5 no_pending b ||
	fail "requests still pending on b"
replicas_identical a b c || fail "replicas differ after writes through b"
log "role moved to b; writes through b replicated; a, b, c identical"

# a member's copy goes with `volume delete` (the replica-set file too)
ctl b volume demote "$VOL" >/dev/null || fail "demote b"
ctl c volume delete "$VOL" >/dev/null || fail "delete on c"
[ ! -e "$T/az-c/store/volumes/$VOL" ] || fail "c's volume directory is still there"
pass
