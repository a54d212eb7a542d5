#!/usr/bin/python3
"""Checker workload for the replication failure tests: writes stamped
blocks through a real NBD client, journals what the server acknowledged,
and later proves that nothing acknowledged was lost.

  checker.py write  --uri URI[,URI2...] --journal FILE --blocks N
                    [--block-size 4096] (--seconds S | --count C) [--qd 8]
                    [--seed X] [--fua-every K] [--flush-every K]
                    [--reconnect-seconds R] [--connect-timeout 2]
                    [--io-timeout 15]
  checker.py verify --uri URI --journal FILE --blocks N [--block-size 4096]
                    [--max-print 1000]
  checker.py compare FILE1 FILE2 [...] [--region 1M] [--max-print 1000]
  checker.py forge  --file F --block B --version V --seed X [--block-size]
                    (self-tests: puts one valid stamp into a data file)

Exit status: 0 ok; 1 verify/compare found a violation/difference; 2 usage
or I/O error (also: export too small, lacks FUA/FLUSH, read-only); 3 write
lost its connection and no URI answered within --reconnect-seconds.

Stamp (little endian, one per block; every field checked on verify):
      0  8  magic "URBDCHK1"
      8  8  block number
     16  8  version (per block, 1, 2, ... never reused, even if unknown)
     24  8  writer id (the --seed of the run that wrote it)
     32  4  CRC32 of the payload
     36  4  block size
     40  .  payload: SHAKE-128(writer, block, version), deterministic
    B-4  4  CRC32 of bytes [0, B-4)

Journal (text, one event a line; '#' lines are comments a parser skips,
except "# run seed=X ..." which starts a run and names its writer id):
    BLOCK VERSION      acknowledged (see below)
    ? BLOCK VERSION    outcome unknown: in flight when the connection died,
                       answered with an error, or not yet covered by a
                       FLUSH when it died; may or may not have landed
An existing journal is continued, not truncated: versions go on from the
highest one it records, so "last acknowledged" stays meaningful over
several write runs against the same volume. Delete the file to start over.

What "acknowledged" means (NBD only promises durability after FLUSH or
FUA): a FUA write is recorded when its reply arrives; with --flush-every K
a non-FUA write is recorded only once a FLUSH sent after its reply has
completed (until then it is "pending", and `?` if the connection dies);
without --flush-every a non-FUA write is recorded on its reply. The last
case is only as strong as the server: urbd writes with O_DIRECT before it
replies, so the data survives a kill of the daemon process (not of the
machine), but that is an implementation property, not the protocol's.
Kill tests should use --fua-every 1 or --flush-every K.

The journal is line buffered (each line reaches the kernel at once) and
fsynced every second and at exit; SIGTERM/SIGINT stop submitting, drain
what is in flight (at most 5 s), flush when --flush-every asks for it,
record everything, fsync, print the summary and exit 0. A SIGKILLed
checker loses only the `?` lines of its in-flight writes: verify then
accepts those versions on blocks never acked, and reports them as
"never written" on blocks that were.

After a lost connection, the blocks that had a write in flight on it are
not written again in this run (at most blocks/4 of them): that write may
still land later than a newer one sent on the next connection (a hung
server that resumes, a request queued in a dead peer), which NBD does
not order. Their newest version stays the `?` one, so a late landing is
no false alarm. Summary field: quarantined_blocks.
"""
import argparse
import errno
import hashlib
import json
import os
import random
import select
import signal
import struct
import sys
import time
import zlib

MAGIC = b"URBDCHK1"
HDR = struct.Struct("<8sQQQII")  # magic block version writer payload_crc bs
TAIL = 4
DRAIN_ON_SIGNAL_S = 5.0


class Usage(Exception):
    """A usage or I/O problem: exit status 2."""


def log(msg):
    print("checker: " + msg, file=sys.stderr, flush=True)


def parse_size(s):
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    s = s.strip().upper().rstrip("B").rstrip("I")
    unit = s[-1:] if s[-1:] in mult and s[-1:] != "" else ""
    try:
        n = int(s[:-1] if unit else s) * mult[unit]
    except ValueError:
        raise argparse.ArgumentTypeError("bad size %r" % s)
    if n <= 0:
        raise argparse.ArgumentTypeError("size must be positive")
    return n


# ---- stamps ----------------------------------------------------------------


def payload(writer, block, version, n):
    key = struct.pack("<8sQQQ", b"URBDPAYL", writer, block, version)
    return hashlib.shake_128(key).digest(n)


def make_stamp(writer, block, version, bs):
    p = payload(writer, block, version, bs - HDR.size - TAIL)
    data = HDR.pack(MAGIC, block, version, writer, zlib.crc32(p), bs) + p
    return data + struct.pack("<I", zlib.crc32(data))


def decode(buf, block, bs, zero):
    """('zero',) | ('ok', version, writer) | ('bad', what)"""
    if buf == zero:
        return ("zero",)
    magic, blk, ver, writer, pcrc, sbs = HDR.unpack_from(buf)
    if magic != MAGIC:
        return ("bad", "garbage (no stamp magic: %s...)" % bytes(buf[:16]).hex())
    if zlib.crc32(buf[:bs - TAIL]) != struct.unpack_from("<I", buf, bs - TAIL)[0]:
        return ("bad", "bad checksum (torn or corrupt; header says block %d version %d)"
                % (blk, ver))
    if sbs != bs:
        return ("bad", "stamp of block size %d, not %d" % (sbs, bs))
    if blk != block:
        return ("bad", "wrong block: stamp of block %d version %d" % (blk, ver))
    if bytes(buf[HDR.size:bs - TAIL]) != payload(writer, blk, ver, bs - HDR.size - TAIL):
        return ("bad", "payload mismatch (checksums valid) for version %d" % ver)
    return ("ok", ver, writer)


# ---- journal ---------------------------------------------------------------


def load_journal(path, must_exist):
    """{'block_size', 'blocks', 'acked': {b: (v, writer)}, 'unknown':
    {b: {v: writer}}, 'maxver': {b: v}, 'writers', 'n_acked', 'n_unknown'}"""
    j = dict(block_size=None, blocks=0, acked={}, unknown={}, maxver={},
             writers=set(), n_acked=0, n_unknown=0)
    try:
        f = open(path)
    except FileNotFoundError:
        if must_exist:
            raise Usage("no journal %s" % path)
        return j
    except OSError as e:
        raise Usage("journal %s: %s" % (path, e))
    writer = None
    with f:
        lines = f.read().split("\n")
    for no, line in enumerate(lines, 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if s.startswith("# run "):
                kv = dict(x.split("=", 1) for x in s[6:].split() if "=" in x)
                try:
                    writer = int(kv["seed"])
                    bs = int(kv["block_size"])
                    j["blocks"] = max(j["blocks"], int(kv["blocks"]))
                except (KeyError, ValueError):
                    raise Usage("%s:%d: bad run line" % (path, no))
                if j["block_size"] not in (None, bs):
                    raise Usage("%s: runs with block sizes %d and %d"
                                % (path, j["block_size"], bs))
                j["block_size"] = bs
                j["writers"].add(writer)
            continue
        f2 = s.split()
        unknown = f2[0] == "?"
        if unknown:
            f2 = f2[1:]
        try:
            b, v = int(f2[0]), int(f2[1])
            if len(f2) != 2 or b < 0 or v < 1:
                raise ValueError
        except (ValueError, IndexError):
            if no == len(lines):  # a torn last line: the writer died mid-line
                log("%s:%d: ignoring a torn last line %r" % (path, no, s))
                continue
            raise Usage("%s:%d: bad line %r" % (path, no, s))
        if writer is None:
            raise Usage("%s:%d: entry before any '# run' line" % (path, no))
        if unknown:
            j["unknown"].setdefault(b, {})[v] = writer
            j["n_unknown"] += 1
        else:
            if v > j["acked"].get(b, (0, 0))[0]:
                j["acked"][b] = (v, writer)
            j["n_acked"] += 1
        j["maxver"][b] = max(j["maxver"].get(b, 0), v)
    return j


class Journal:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.last_sync = time.monotonic()

    def line(self, s):
        self.f.write(s + "\n")

    def maybe_sync(self, now):
        if now - self.last_sync >= 1.0:
            self.sync()

    def sync(self):
        self.f.flush()
        os.fsync(self.f.fileno())
        self.last_sync = time.monotonic()

    def close(self):
        self.sync()
        self.f.close()


# ---- NBD connections ---------------------------------------------------------


def nbd_connect(nbd, uri, timeout, stopping):
    """A ready handle, or raise nbd.Error / TimeoutError. Asynchronous so
    that a partitioned address costs `timeout`, not TCP's minutes."""
    h = nbd.NBD()
    h.aio_connect_uri(uri)
    end = time.monotonic() + timeout
    while not h.aio_is_ready():
        if h.aio_is_dead() or h.aio_is_closed():
            raise ConnectionError("connection failed during the handshake")
        rem = end - time.monotonic()
        if rem <= 0:
            raise TimeoutError("no handshake within %.1f s" % timeout)
        if stopping():
            raise InterruptedError("stopping")
        h.poll(max(1, int(min(rem, 0.2) * 1000)))
    return h


# ---- write -----------------------------------------------------------------


class Lost(Exception):
    """The connection is gone (or hung): everything in flight is unknown."""


class Writer:
    def __init__(self, a, nbd, journal, prior):
        self.a, self.nbd, self.j = a, nbd, journal
        self.uris = a.uri
        self.bs = a.block_size
        self.rnd = random.Random(a.seed)
        self.versions = dict(prior["maxver"])
        self.h = None
        self.uri_idx = 0
        self.inflight = {}   # cookie -> (block, version, fua, buffer)
        self.busy = set()
        # blocks whose write was in flight on a lost connection: that write
        # may still land late (a hung server resuming, a stale request in a
        # dead peer's queue), so this run writes them no more; their newest
        # version then stays a `?` one, which verify accepts either way
        self.quarantine = set()
        self.pending = []    # replied non-FUA writes a flush must cover
        self.flush_cookie = None
        self.flush_cover = []
        self.replies_since_flush = 0
        self.stop_reason = None
        self.signalled = None
        self.st = dict(issued=0, acked=0, unknown=0, errors=0, fua_writes=0,
                       flushes=0, connection_losses=0, reconnects=0,
                       connect_failures=0)
        self.per_conn = []
        self.last_ack = None
        self.max_gap = 0.0
        self.last_progress = time.monotonic()

    # -- bookkeeping
    def ack(self, b, v):
        self.j.line("%d %d" % (b, v))
        self.st["acked"] += 1
        self.per_conn[-1]["acked"] += 1

    def unknown(self, b, v):
        self.j.line("? %d %d" % (b, v))
        self.st["unknown"] += 1

    def replied(self, now):
        self.max_gap = max(self.max_gap, now - self.last_ack)
        self.last_ack = now

    def hold(self, b):
        if len(self.quarantine) < self.a.blocks // 4:
            self.quarantine.add(b)

    def lose(self, why):
        """The connection died: every outcome not yet known is `?`."""
        for b, v, _, _ in self.inflight.values():
            self.unknown(b, v)
            self.hold(b)
        for b, v in self.flush_cover + self.pending:
            self.unknown(b, v)
        self.inflight.clear()
        self.busy.clear()
        self.pending, self.flush_cover, self.flush_cookie = [], [], None
        self.replies_since_flush = 0
        self.h = None
        self.st["connection_losses"] += 1
        self.per_conn[-1]["lost"] = why
        log("connection to %s lost: %s" % (self.uris[self.uri_idx], why))

    # -- connecting
    def connect(self, first):
        """Round robin over the URIs until one answers; False when
        --reconnect-seconds ran out (or a signal came)."""
        start = self.uri_idx if first else (self.uri_idx + 1) % len(self.uris)
        deadline = time.monotonic() + self.a.reconnect_seconds
        tries = 0
        while True:
            i = (start + tries) % len(self.uris)
            uri = self.uris[i]
            now = time.monotonic()
            tmo = self.a.connect_timeout
            if tries >= len(self.uris):
                tmo = min(tmo, max(0.2, deadline - now))
            try:
                h = nbd_connect(self.nbd, uri, tmo, lambda: self.signalled)
                self.check_export(h, uri)
                err = None
            except InterruptedError:
                return False
            except (self.nbd.Error, OSError) as e:
                err = "connect %s: %s" % (uri, e)
            except Usage as e:
                if first:
                    raise  # misconfigured from the start: exit 2
                # e.g. a secondary not promoted yet: one more failed attempt
                err = "%s (not usable now)" % e
            if err is not None:
                self.st["connect_failures"] += 1
                if tries < 3 or tries % 20 == 0:
                    log(err)
                tries += 1
                if self.signalled or (tries >= len(self.uris)
                                      and time.monotonic() >= deadline):
                    return False
                if tries % len(self.uris) == 0:
                    time.sleep(0.2)
                continue
            self.h, self.uri_idx = h, i
            if first:  # only a run that got to write gets a run line
                self.j.line("# run seed=%d blocks=%d block_size=%d pid=%d time=%s uris=%s"
                            % (self.a.seed, self.a.blocks, self.bs, os.getpid(),
                               time.strftime("%Y-%m-%dT%H:%M:%S"), ",".join(self.uris)))
            else:
                self.st["reconnects"] += 1
            self.per_conn.append(dict(uri=uri, acked=0))
            log("connected to %s%s" % (uri, "" if first else " (reconnect)"))
            return True

    def check_export(self, h, uri):
        need = self.a.blocks * self.bs
        size = h.get_size()
        if size < need:
            raise Usage("%s: export is %d bytes, --blocks x --block-size needs %d"
                        % (uri, size, need))
        if h.is_read_only():
            raise Usage("%s: export is read-only" % uri)
        if self.a.fua_every and not h.can_fua():
            raise Usage("%s: export does not support FUA" % uri)
        if self.a.flush_every and not h.can_flush():
            raise Usage("%s: export does not support FLUSH" % uri)

    # -- submitting
    def submitting(self, now, t_end):
        if self.signalled:
            self.stop_reason = self.stop_reason or "signal " + self.signalled
        elif self.a.seconds is not None and now >= t_end:
            self.stop_reason = self.stop_reason or "time"
        elif self.a.count is not None and self.st["issued"] >= self.a.count:
            self.stop_reason = self.stop_reason or "count"
        return self.stop_reason is None

    def submit(self):
        nb = self.a.blocks
        while len(self.inflight) < self.a.qd:
            if self.a.count is not None and self.st["issued"] >= self.a.count:
                return
            for _ in range(8):
                b = self.rnd.randrange(nb)
                if b not in self.busy and b not in self.quarantine:
                    break
            else:
                return  # nearly every block busy: wait for replies
            v = self.versions.get(b, 0) + 1
            self.versions[b] = v  # reserved now: never reused, even if lost
            self.st["issued"] += 1
            fua = self.a.fua_every > 0 and self.st["issued"] % self.a.fua_every == 0
            buf = self.nbd.Buffer.from_bytearray(make_stamp(self.a.seed, b, v, self.bs))
            try:
                c = self.h.aio_pwrite(buf, b * self.bs,
                                      flags=self.nbd.CMD_FLAG_FUA if fua else 0)
            except self.nbd.Error as e:
                self.unknown(b, v)  # may have been queued before the failure
                raise Lost("submit: %s" % e)
            if not self.inflight and self.flush_cookie is None:
                self.last_progress = time.monotonic()
            self.inflight[c] = (b, v, fua, buf)
            self.busy.add(b)

    def maybe_flush(self, final):
        if not self.a.flush_every or self.flush_cookie is not None or not self.pending:
            return
        if not final and self.replies_since_flush < self.a.flush_every:
            return
        try:
            c = self.h.aio_flush()
        except self.nbd.Error as e:
            raise Lost("flush submit: %s" % e)
        if not self.inflight:
            self.last_progress = time.monotonic()
        # covers exactly the writes whose replies came before it was sent
        self.flush_cookie, self.flush_cover, self.pending = c, self.pending, []
        self.replies_since_flush = 0

    # -- completing
    def pump(self, wait):
        h = self.h
        try:
            fd = h.aio_get_fd()
            d = h.aio_get_direction()
            rl = [fd] if d & self.nbd.AIO_DIRECTION_READ else []
            wl = [fd] if d & self.nbd.AIO_DIRECTION_WRITE else []
            try:
                r, w, _ = select.select(rl, wl, [], wait)
            except InterruptedError:
                r, w = [], []
            if r:
                h.aio_notify_read()
            if w:
                h.aio_notify_write()
        except self.nbd.Error as e:
            raise Lost(str(e))
        self.reap()
        if h.aio_is_dead() or h.aio_is_closed():
            raise Lost("connection closed by the server")

    def reap(self):
        h, now = self.h, time.monotonic()
        while self.inflight or self.flush_cookie is not None:
            try:
                c = h.aio_peek_command_completed()
            except self.nbd.Error:
                return
            if c <= 0:
                return
            try:
                h.aio_command_completed(c)
                err = None
            except self.nbd.Error as e:
                err = e
            self.last_progress = now
            if c == self.flush_cookie:
                cover, self.flush_cookie, self.flush_cover = self.flush_cover, None, []
                if err is None:
                    self.st["flushes"] += 1
                    for b, v in cover:
                        self.ack(b, v)
                else:
                    self.flush_error(cover, err)
                continue
            if c not in self.inflight:
                continue
            b, v, fua, _ = self.inflight.pop(c)
            self.busy.discard(b)
            if err is not None:
                if h.aio_is_dead() or h.aio_is_closed():
                    self.unknown(b, v)  # retired by the dying connection
                    self.hold(b)
                    continue
                self.st["errors"] += 1
                n = self.st["errors"]
                if n <= 10 or n % 1000 == 0:  # a failing server fails them all
                    log("write block %d version %d failed (error %d): %s" % (b, v, n, err))
                self.unknown(b, v)
                continue
            self.replied(now)
            if fua:
                self.st["fua_writes"] += 1
                self.ack(b, v)
            elif self.a.flush_every:
                self.pending.append((b, v))
                self.replies_since_flush += 1
            else:
                self.ack(b, v)

    def flush_error(self, cover, err):
        if not (self.h.aio_is_dead() or self.h.aio_is_closed()):
            self.st["errors"] += 1
            log("flush failed: %s" % err)
        for b, v in cover:
            self.unknown(b, v)

    # -- the loop
    def run(self):
        t0 = time.monotonic()
        self.last_ack = t0
        t_end = t0 + (self.a.seconds or 0)
        drain_end = None
        if not self.connect(first=True):
            if self.signalled:
                self.stop_reason = "signal " + self.signalled
                return 0, t0
            self.stop_reason = "no URI answered within %g s" % self.a.reconnect_seconds
            return 3, t0
        while True:
            now = time.monotonic()
            self.j.maybe_sync(now)
            sub = self.submitting(now, t_end)
            if not sub and drain_end is None:
                drain_end = now + (DRAIN_ON_SIGNAL_S if self.signalled
                                   else self.a.io_timeout)
            if self.h is None:
                if not sub:
                    break
                if not self.connect(first=False):
                    if self.signalled:
                        continue  # stop as if signalled mid-run
                    self.stop_reason = "connection lost, no URI answered within %g s" \
                        % self.a.reconnect_seconds
                    return 3, t0
                continue
            try:
                if sub:
                    self.submit()
                self.maybe_flush(final=not sub)
                if not sub and not self.inflight and self.flush_cookie is None \
                        and not self.pending:
                    break
                self.pump(0.1)
                busy = self.inflight or self.flush_cookie is not None
                if busy and now - self.last_progress > self.a.io_timeout:
                    raise Lost("no reply for %.1f s (io timeout)" % self.a.io_timeout)
                if not sub and now > drain_end:
                    raise Lost("replies still missing when the drain time ran out")
            except Lost as e:
                self.lose(str(e))
        return 0, t0

    def summary(self, t0):
        now = time.monotonic()
        el = now - t0
        s = dict(mode="write", seed=self.a.seed, uris=self.uris, blocks=self.a.blocks,
                 block_size=self.bs, qd=self.a.qd, fua_every=self.a.fua_every,
                 flush_every=self.a.flush_every)
        s.update(self.st)
        s.update(max_ack_gap_s=round(max(self.max_gap, now - self.last_ack), 3),
                 elapsed_s=round(el, 3),
                 iops=round(self.st["acked"] / el, 1) if el > 0 else 0.0,
                 quarantined_blocks=len(self.quarantine),
                 per_connection=self.per_conn, stopped_by=self.stop_reason,
                 journal=self.a.journal)
        return s


def cmd_write(a, nbd):
    if (a.seconds is None) == (a.count is None):
        raise Usage("write needs exactly one of --seconds and --count")
    if a.seed is None:
        a.seed = random.getrandbits(63)
    if not 0 <= a.seed < 1 << 64:
        raise Usage("--seed must fit 64 bits unsigned")
    for k in ("blocks", "qd"):
        if getattr(a, k) < 1:
            raise Usage("--%s must be at least 1" % k)
    if a.block_size < HDR.size + TAIL + 16:
        raise Usage("--block-size must be at least %d" % (HDR.size + TAIL + 16))
    prior = load_journal(a.journal, must_exist=False)
    if prior["block_size"] not in (None, a.block_size):
        raise Usage("journal %s is for block size %d" % (a.journal, prior["block_size"]))
    try:
        j = Journal(a.journal)
    except OSError as e:
        raise Usage("journal %s: %s" % (a.journal, e))
    w = Writer(a, nbd, j, prior)

    def on_signal(sig, _frame):
        w.signalled = signal.Signals(sig).name

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rc, t0 = 3, time.monotonic()
    try:
        rc, t0 = w.run()
    finally:
        if w.h is not None and rc == 0:
            try:
                w.h.shutdown()
            except nbd.Error:
                pass
        s = w.summary(t0)
        if w.per_conn:
            j.line("# end %s" % json.dumps(s, separators=(",", ":")))
        j.close()
    if rc == 3:
        log("giving up: %s (see --reconnect-seconds)" % w.stop_reason)
    print(json.dumps(s), flush=True)
    return rc


# ---- verify ------------------------------------------------------------------


def cmd_verify(a, nbd):
    jr = load_journal(a.journal, must_exist=True)
    bs, nb = a.block_size, a.blocks
    if jr["block_size"] not in (None, bs):
        raise Usage("journal is for block size %d, not %d" % (jr["block_size"], bs))
    beyond = [b for b in list(jr["acked"]) + list(jr["unknown"]) if b >= nb]
    if beyond:
        raise Usage("journal has block %d, beyond --blocks %d" % (max(beyond), nb))
    try:
        h = nbd.NBD()
        h.connect_uri(a.uri)
        if h.get_size() < nb * bs:
            raise Usage("export is %d bytes, --blocks needs %d" % (h.get_size(), nb * bs))
    except nbd.Error as e:
        raise Usage("connect %s: %s" % (a.uri, e))
    zero = bytes(bs)
    st = dict(mode="verify", blocks=nb, block_size=bs, journal_acked=jr["n_acked"],
              journal_unknown=jr["n_unknown"], acked_blocks=len(jr["acked"]),
              zero=0, at_last_acked=0, newer_in_flight=0, unacked_stamps=0,
              violations=0)
    chunk = max(1, (1 << 20) // bs)
    for first in range(0, nb, chunk):
        n = min(chunk, nb - first)
        try:
            data = h.pread(n * bs, first * bs)
        except nbd.Error as e:
            raise Usage("read at block %d: %s" % (first, e))
        mv = memoryview(data)
        for k in range(n):
            b = first + k
            bad = check_block(b, decode(mv[k * bs:(k + 1) * bs], b, bs, zero), jr, st)
            if bad:
                st["violations"] += 1
                if st["violations"] <= a.max_print:
                    print("VIOLATION block=%d found=%s expected=%s" % (b, bad[0], bad[1]))
    try:
        h.shutdown()
    except nbd.Error:
        pass
    if st["violations"] > a.max_print:
        print("... %d more violations not printed" % (st["violations"] - a.max_print))
    print(json.dumps(st), flush=True)
    return 1 if st["violations"] else 0


def check_block(b, got, jr, st):
    """None if the block is consistent with the journal, else (found, expected)."""
    unk = jr["unknown"].get(b, {})
    desc = {"zero": lambda: "zeroes", "bad": lambda: got[1],
            "ok": lambda: "version %d (writer %d)" % (got[1], got[2])}[got[0]]
    if b not in jr["acked"]:
        if got[0] == "zero":
            st["zero"] += 1
            return None
        if got[0] == "ok":
            st["unacked_stamps"] += 1
            return None
        return (desc(), "zeroes or a valid stamp of this block (never acked)")
    av, aw = jr["acked"][b]
    later = sorted(v for v in unk if v > av)
    want = "version %d%s" % (av, " or in-flight %s" % later if later else "")
    if got[0] != "ok":
        return (desc(), want)
    v, w = got[1], got[2]
    if v == av and w == aw:
        st["at_last_acked"] += 1
        return None
    if v > av and unk.get(v) == w:
        st["newer_in_flight"] += 1
        return None
    if v < av:
        return ("older version %d (writer %d): acked version %d lost" % (v, w, av), want)
    if v == av:
        return ("version %d of writer %d, acked by writer %d" % (v, w, aw), want)
    return ("version %d (writer %d), never acked nor in flight" % (v, w), want)


# ---- compare -----------------------------------------------------------------


def is_hole(fd, off, length, size):
    if off >= size:
        return True
    try:
        return os.lseek(fd, off, os.SEEK_DATA) >= off + length
    except OSError as e:
        if e.errno == errno.ENXIO:  # no data after off
            return True
        return False  # SEEK_DATA unsupported: read it


def region_hash(fd, off, length, size, zero_hash):
    if is_hole(fd, off, length, size):
        return zero_hash
    h = hashlib.sha256()
    done = 0
    while done < length:
        want = min(length - done, 4 << 20)
        d = os.pread(fd, want, off + done) if off + done < size else b""
        h.update(d)
        if len(d) < want:  # past the end: the zero extension
            h.update(bytes(want - len(d)))
        done += want
    return h.digest()


def cmd_compare(a, _nbd):
    if len(a.files) < 2:
        raise Usage("compare needs at least two files")
    fds, sizes = [], []
    try:
        for f in a.files:
            fd = os.open(f, os.O_RDONLY)
            fds.append(fd)
            sizes.append(os.fstat(fd).st_size)
    except OSError as e:
        raise Usage("%s" % e)
    R = a.region
    total = max(sizes)
    zh = {}
    diffs = 0
    try:
        nreg = (total + R - 1) // R
        for r in range(nreg):
            off = r * R
            ln = min(R, total - off)
            if ln not in zh:
                zh[ln] = hashlib.sha256(bytes(ln)).digest()
            hs = [region_hash(fd, off, ln, sz, zh[ln]) for fd, sz in zip(fds, sizes)]
            if all(x == hs[0] for x in hs):
                continue
            diffs += 1
            if diffs <= a.max_print:
                print("DIFF region=%d offset=%d length=%d %s" % (
                    r, off, ln, " ".join("%s=%s" % (f, x.hex()[:16])
                                         for f, x in zip(a.files, hs))))
        if diffs > a.max_print:
            print("... %d more differing regions not printed" % (diffs - a.max_print))
        if len(set(sizes)) > 1:
            # the zero extension is honest only if the longer tails are zeroes
            print("SIZES %s: %s" % (
                " ".join("%s=%d" % (f, n) for f, n in zip(a.files, sizes)),
                "non-zero data beyond the shortest file's end"
                if any_diff_beyond(fds, sizes, R) else
                "the longer files end in zeroes (compared as zero-extended)"))
    finally:
        for fd in fds:
            os.close(fd)
    print(json.dumps(dict(mode="compare", files=a.files, sizes=sizes, region=R,
                          regions=(total + R - 1) // R, differing_regions=diffs)))
    return 1 if diffs else 0


def any_diff_beyond(fds, sizes, R):
    """True if some file holds non-zero bytes beyond the shortest one's end."""
    lo, hi = min(sizes), max(sizes)
    off = lo
    while off < hi:
        ln = min(R, hi - off)
        z = hashlib.sha256(bytes(ln)).digest()
        for fd, sz in zip(fds, sizes):
            if region_hash(fd, off, ln, sz, z) != z:
                return True
        off += ln
    return False


# ---- forge -------------------------------------------------------------------


def cmd_forge(a, _nbd):
    stamp = make_stamp(a.seed, a.block, a.version, a.block_size)
    try:
        fd = os.open(a.file, os.O_WRONLY)
        try:
            if os.pwrite(fd, stamp, a.block * a.block_size) != len(stamp):
                raise Usage("short write to %s" % a.file)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise Usage("%s: %s" % (a.file, e))
    return 0


# ---- command line ------------------------------------------------------------


def uri_list(s):
    u = [x for x in s.split(",") if x]
    if not u:
        raise argparse.ArgumentTypeError("no URI")
    return u


def parser():
    p = argparse.ArgumentParser(prog="checker.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    w = sub.add_parser("write", help="stamped random writes, journalled")
    w.add_argument("--uri", type=uri_list, required=True,
                   help="NBD URI, or several separated by commas (tried round robin)")
    w.add_argument("--journal", required=True)
    w.add_argument("--blocks", type=int, required=True)
    w.add_argument("--block-size", type=parse_size, default=4096)
    w.add_argument("--seconds", type=float)
    w.add_argument("--count", type=int, help="writes to issue (acked or not)")
    w.add_argument("--qd", type=int, default=8)
    w.add_argument("--seed", type=int, help="also the writer id (default: random)")
    w.add_argument("--fua-every", type=int, default=0, metavar="K",
                   help="every K-th write carries FUA (1: all)")
    w.add_argument("--flush-every", type=int, default=0, metavar="K",
                   help="FLUSH after K replies; non-FUA writes are journalled "
                   "as acked only once a FLUSH covers them")
    w.add_argument("--reconnect-seconds", type=float, default=0.0)
    w.add_argument("--connect-timeout", type=float, default=2.0)
    w.add_argument("--io-timeout", type=float, default=15.0,
                   help="no reply for this long: treat the connection as lost")

    v = sub.add_parser("verify", help="read every block, check against the journal")
    v.add_argument("--uri", required=True)
    v.add_argument("--journal", required=True)
    v.add_argument("--blocks", type=int, required=True)
    v.add_argument("--block-size", type=parse_size, default=4096)
    v.add_argument("--max-print", type=int, default=1000)

    c = sub.add_parser("compare", help="compare replica data files by region")
    c.add_argument("files", nargs="+")
    c.add_argument("--region", type=parse_size, default=1 << 20)
    c.add_argument("--max-print", type=int, default=1000)

    f = sub.add_parser("forge", help="write one valid stamp into a file (self-tests)")
    f.add_argument("--file", required=True)
    f.add_argument("--block", type=int, required=True)
    f.add_argument("--version", type=int, required=True)
    f.add_argument("--seed", type=int, required=True)
    f.add_argument("--block-size", type=parse_size, default=4096)
    return p


def main():
    a = parser().parse_args()
    nbd = None
    if a.cmd in ("write", "verify"):
        try:
            import nbd
        except ImportError:
            log("needs the python3 nbd module (apt install python3-libnbd); "
                "run with /usr/bin/python3")
            return 2
    try:
        return {"write": cmd_write, "verify": cmd_verify, "compare": cmd_compare,
                "forge": cmd_forge}[a.cmd](a, nbd)
    except Usage as e:
        log(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
