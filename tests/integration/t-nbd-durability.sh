#!/usr/bin/env bash
# kill -9 mid-workload loses nothing acknowledged-and-flushed (DESIGN §8).
#
# A python3-libnbd workload writes stamped 4 KiB blocks (magic, run, block
# number, sequence number, CRC32 inside each) over two connections (the
# export advertises multi-conn), with periodic FLUSH, some FUA writes and
# some WRITE_ZEROES (a version reading as zeros), never two writes to one
# block in flight at once. It journals on local
# disk every submit, acknowledgement, flush start and flush completion.
# urbd is killed with SIGKILL at a random moment, restarted on the same
# store, and every block is read back with libnbd:
#   - a write acknowledged before a FLUSH (on either connection) was sent,
#     where that FLUSH completed, and every acknowledged FUA write, reads
#     back intact or is superseded by a later write of the same block;
#   - every block is the previous round's content or one of the versions
#     submitted in this round, never anything else (no garbage, no torn
#     block, no block from the wrong offset).
# Repeated ROUNDS times (default 4). Seed from URBD_SEED to reproduce.
source "$(dirname "$0")/lib.sh"

require_pymod nbd libnbd
ROUNDS=${URBD_DUR_ROUNDS:-4}
SEED=${URBD_SEED:-$RANDOM$RANDOM}
NBLOCKS=4096 # 16 MiB of the volume gets overwritten over and over
log "seed $SEED, $ROUNDS rounds"

cat >"$T/dur.py" <<'PYEOF'
import hashlib, json, os, random, select, struct, sys, time, zlib
import nbd

BS = 4096
MAGIC = b"URBDSTMP"


def block(run, blk, seq):
    hdr = struct.pack("<8sQQQ", MAGIC, run, blk, seq)
    seed = hashlib.sha256(hdr).digest()
    body = (seed * (BS // 32))[: BS - len(hdr) - 4]
    data = hdr + body
    return data + struct.pack("<I", zlib.crc32(data))


def decode(buf, blk):
    """(run, seq) of a valid stamp for blk, None for zeros, else a reason."""
    if buf.count(0) == BS:
        return None
    magic, run, b, seq = struct.unpack_from("<8sQQQ", buf)
    if magic != MAGIC:
        return "garbage (no stamp magic)"
    if zlib.crc32(buf[:-4]) != struct.unpack_from("<I", buf, BS - 4)[0]:
        return "torn or corrupt (stamp CRC mismatch, run %d block %d seq %d)" % (run, b, seq)
    if b != blk:
        return "misplaced: stamp of block %d found at block %d" % (b, blk)
    if bytes(buf) != block(run, b, seq):
        return "stamp body mismatch"
    return (run, seq)


def work(uri, nblocks, journal, run, seed, maxsecs):
    rnd = random.Random(seed)
    jfd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def j(line):
        os.write(jfd, (line + "\n").encode())

    hs = []
    for _ in range(2):
        h = nbd.NBD()
        h.connect_uri(uri)
        hs.append(h)
    if not (hs[0].can_multi_conn() and hs[0].can_fua() and hs[0].can_flush()
            and hs[0].can_zero()):
        print("export lacks multi-conn/fua/flush/write-zeroes", file=sys.stderr)
        return 2
    QD = 8
    inflight = [dict(), dict()]  # cookie -> (kind, blk, seq, fua, buf)
    busy = set()
    seq = 0
    nflush = 0
    flush_busy = False
    writes_since_flush = 0
    stats = dict(acked=0, fua=0, flushes=0)
    deadline = time.monotonic() + maxsecs
    j("RUN %d" % run)
    try:
        while time.monotonic() < deadline:
            for i, h in enumerate(hs):
                while len(inflight[i]) < QD:
                    if not flush_busy and writes_since_flush >= 48 and rnd.random() < 0.5:
                        nflush += 1
                        # FS is journaled before the flush goes out: every
                        # write acknowledged above this line is covered.
                        j("FS %d" % nflush)
                        c = h.aio_flush()
                        inflight[i][c] = ("F", nflush, 0, False, None)
                        flush_busy = True
                        writes_since_flush = 0
                        continue
                    blk = rnd.randrange(nblocks)
                    if blk in busy:
                        break
                    seq += 1
                    fua = rnd.random() < 0.1
                    fl = nbd.CMD_FLAG_FUA if fua else 0
                    if rnd.random() < 0.05:  # write zeroes: a version too
                        j("S %d %d %d Z" % (blk, seq, int(fua)))
                        c = h.aio_zero(BS, blk * BS, flags=fl)
                        inflight[i][c] = ("W", blk, seq, fua, None)
                    else:
                        buf = nbd.Buffer.from_bytearray(block(run, blk, seq))
                        j("S %d %d %d" % (blk, seq, int(fua)))
                        c = h.aio_pwrite(buf, blk * BS, flags=fl)
                        inflight[i][c] = ("W", blk, seq, fua, buf)
                    busy.add(blk)
                    writes_since_flush += 1
            rl, wl = [], []
            for h in hs:
                d = h.aio_get_direction()
                if d & nbd.AIO_DIRECTION_READ:
                    rl.append(h.aio_get_fd())
                if d & nbd.AIO_DIRECTION_WRITE:
                    wl.append(h.aio_get_fd())
            r, w, _ = select.select(rl, wl, [], 1.0)
            for h in hs:
                if h.aio_get_fd() in r:
                    h.aio_notify_read()
                if h.aio_get_fd() in w:
                    h.aio_notify_write()
            for i, h in enumerate(hs):
                while inflight[i]:
                    c = h.aio_peek_command_completed()
                    if c == 0:
                        break
                    kind, a, b, fua, _ = inflight[i].pop(c)
                    try:
                        h.aio_command_completed(c)
                        ok = True
                    except nbd.Error as e:
                        ok = False
                        err = e
                    if kind == "W":
                        busy.discard(a)
                        if ok:
                            j("A %d %d %d" % (a, b, int(fua)))
                            stats["acked"] += 1
                            stats["fua"] += int(fua)
                        else:
                            j("E %d %d %s" % (a, b, err))
                    else:
                        flush_busy = False
                        if ok:
                            j("FD %d" % a)
                            stats["flushes"] += 1
                        else:
                            j("FE %d %s" % (a, err))
                    if not ok:
                        raise err
        print("workload ran out of time (%d s) without losing the server" % maxsecs,
              file=sys.stderr)
        return 3
    except nbd.Error as e:
        j("END %s" % e)
        print("workload ended: %s; %s" % (e, json.dumps(stats)))
        return 0


def verify(uri, nblocks, journal, state):
    prev = json.load(open(state)) if journal else [None] * nblocks
    submitted = {}      # seq -> blk, this round
    zeroes = {}         # blk -> seqs of its write-zeroes, this round
    durable = {}        # blk -> highest durable seq, this round
    acked_order = []    # (blk, seq) in ack order
    flush_marks = {}    # flush id -> number of acks before it was sent
    run = None
    nfd = nfua = covered = 0
    if journal:
        for line in open(journal):
            f = line.split()
            if not f:
                continue
            if f[0] == "RUN":
                run = int(f[1])
            elif f[0] == "S":
                submitted[int(f[2])] = int(f[1])
                if len(f) > 4 and f[4] == "Z":
                    zeroes.setdefault(int(f[1]), []).append(int(f[2]))
            elif f[0] == "A":
                blk, seq, fua = int(f[1]), int(f[2]), int(f[3])
                acked_order.append((blk, seq))
                if fua:
                    nfua += 1
                    durable[blk] = max(durable.get(blk, 0), seq)
            elif f[0] == "FS":
                flush_marks[int(f[1])] = len(acked_order)
            elif f[0] == "FD":
                nfd += 1
                mark = flush_marks[int(f[1])]
                for blk, seq in acked_order[covered:mark]:
                    durable[blk] = max(durable.get(blk, 0), seq)
                covered = max(covered, mark)
    h = nbd.NBD()
    h.connect_uri(uri)
    bad = []
    state_out = []
    newest = kept = 0
    CH = 256
    for first in range(0, nblocks, CH):
        data = h.pread(CH * BS, first * BS)
        for k in range(CH):
            blk = first + k
            got = decode(data[k * BS:(k + 1) * BS], blk)
            if isinstance(got, str):
                bad.append("block %d: %s" % (blk, got))
                state_out.append(None)
                continue
            state_out.append(list(got) if got else None)
            if not journal:
                if got is not None:
                    bad.append("block %d: not zero on a new volume" % blk)
                continue
            want = durable.get(blk, 0)
            zs = [z for z in zeroes.get(blk, []) if z >= want]
            if got is None and zs:
                newest += 1  # one of this round's write-zeroes
            elif got is not None and got[0] == run:
                seq = got[1]
                if submitted.get(seq) != blk or seq in zeroes.get(blk, []):
                    bad.append("block %d: seq %d was never written there" % (blk, seq))
                elif seq < want:
                    bad.append("block %d: LOST durable seq %d, read older seq %d" % (blk, want, seq))
                else:
                    newest += 1
            else:
                prevv = prev[blk]
                if (got is None and prevv is not None) or (got is not None and list(got) != prevv):
                    bad.append("block %d: read %s, neither the previous content %s nor "
                               "a version written this round" % (blk, got, prevv))
                elif want:
                    bad.append("block %d: LOST durable seq %d, read the previous round's %s"
                               % (blk, want, got))
                else:
                    kept += 1
    h.shutdown()
    json.dump(state_out, open(state, "w"))
    nz = sum(len(v) for v in zeroes.values())
    print("verified %d blocks: %d durable writes required (%d FUA, %d flushes completed, "
          "%d write-zeroes), %d blocks from this round, %d unchanged"
          % (nblocks, len(durable), nfua, nfd, nz, newest, kept))
    if journal and (nfd == 0 or not durable):
        print("round too short to mean anything: no completed flush", file=sys.stderr)
        bad.append("no completed flush in this round")
    for b in bad[:30]:
        print("BAD " + b, file=sys.stderr)
    if bad:
        print("%d bad blocks" % len(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    mode, uri, nblocks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "work":
        sys.exit(work(uri, nblocks, sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), 40))
    else:
        sys.exit(verify(uri, nblocks, sys.argv[4] if sys.argv[4] != "-" else None, sys.argv[5]))
PYEOF

RANDOM=$((SEED % 32768))
start_urbd --default-volume demo:64M
timeout 60 "$PY" "$T/dur.py" verify "$(uri_unix)" $NBLOCKS - "$T/state.json" ||
	fail "new volume does not read as zeros"

t0=$(date +%s)
done_rounds=0
for ((round = 1; round <= ROUNDS; round++)); do
	uri=$(uri_tcp)
	[ $((round % 2)) -eq 0 ] && uri=$(uri_unix)
	timeout 60 "$PY" "$T/dur.py" work "$uri" $NBLOCKS "$T/journal.$round" \
		"$round" "$((SEED + round))" >"$T/work.$round.out" 2>&1 &
	wpid=$!
	# 0.5 .. 2.5 s into the workload
	delay_ms=$((500 + RANDOM % 2000))
	sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
	if ! kill -0 "$wpid" 2>/dev/null; then
		wait "$wpid" || true
		cat "$T/work.$round.out" >&2
		fail "round $round: the workload ended before the kill"
	fi
	assert_alive "round $round, before the kill"
	kill9_urbd
	wrc=0
	wait "$wpid" || wrc=$?
	cat "$T/work.$round.out"
	[ "$wrc" -eq 0 ] || fail "round $round: workload exited with $wrc"
	grep -q '^END ' "$T/journal.$round" || fail "round $round: workload did not see the server go"
	start_urbd
	if ! timeout 60 "$PY" "$T/dur.py" verify "$(uri_tcp)" $NBLOCKS \
		"$T/journal.$round" "$T/state.json" >"$T/verify.$round.out" 2>&1; then
		cat "$T/verify.$round.out" >&2
		fail "round $round (killed after ${delay_ms} ms, seed $SEED): data check failed"
	fi
	done_rounds=$round
	log "round $round: killed after ${delay_ms} ms: $(cat "$T/verify.$round.out")"
	# bounded total time
	if [ $(($(date +%s) - t0)) -gt 50 ] && [ "$round" -ge 3 ]; then
		log "time budget reached after $round rounds"
		break
	fi
done
stop_urbd
pass "$done_rounds rounds"
