#!/usr/bin/python3
"""Hostile NBD client for t-nbd-badinput.sh: raw sockets, no libnbd.

usage: nbd_hostile.py (--tcp HOST:PORT | --unix PATH) --export NAME
                      --size BYTES CASE...

Each CASE speaks the wire protocol directly, asserts the server's exact
reply (or that it closed the connection) and, where the connection should
survive, that a following request on the same connection still works.
Prints "ok CASE: ..." per case and "peer CASE ADDR" (our local TCP address,
which the server names in its log); exits 1 at the first failure.
All integers are big-endian (NBD protocol).
"""
import argparse
import os
import socket
import struct
import sys
import time

NBDMAGIC = 0x4E42444D41474943  # "NBDMAGIC"
IHAVEOPT = 0x49484156454F5054  # "IHAVEOPT"
OPT_REPLY_MAGIC = 0x0003E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF

FLAG_C_FIXED_NEWSTYLE = 1
FLAG_C_NO_ZEROES = 2

OPT_EXPORT_NAME = 1
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
REP_ACK = 1
REP_INFO = 3
REP_ERR_UNSUP = 0x80000001
REP_ERR_INVALID = 0x80000003
REP_ERR_UNKNOWN = 0x80000006
REP_ERR_TOO_BIG = 0x80000009
INFO_EXPORT = 0

CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM = 0, 1, 2, 3, 4
CMD_WRITE_ZEROES = 6
CMD_FLAG_FUA = 1
REPLY_TYPE_NONE = 0
REPLY_TYPE_OFFSET_DATA = 1
REPLY_TYPE_ERROR = 0x8001
REPLY_FLAG_DONE = 1

EINVAL, ENOSPC = 22, 28
TIMEOUT = 10.0


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


class Conn:
    def __init__(self, args):
        self.args = args
        if args.unix:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(TIMEOUT)
            self.s.connect(args.unix)
            self.peer = None
        else:
            host, port = args.tcp.rsplit(":", 1)
            self.s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
            a = self.s.getsockname()
            self.peer = "%s:%d" % (a[0], a[1])
        self.handle = 0x1000

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def send(self, b):
        self.s.sendall(b)

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.s.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise Fail("server closed the connection after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return bytes(buf)

    def expect_closed(self, what, secs=TIMEOUT):
        """The server must close the connection (any bytes before EOF are
        returned, e.g. an error reply sent before hanging up)."""
        got = bytearray()
        end = time.monotonic() + secs
        self.s.settimeout(1.0)
        try:
            while time.monotonic() < end:
                try:
                    chunk = self.s.recv(65536)
                except socket.timeout:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    return bytes(got)
                if not chunk:
                    return bytes(got)
                got += chunk
                check(len(got) < (1 << 20), "%s: server keeps sending" % what)
            raise Fail("%s: connection still open after %.0f s" % (what, secs))
        finally:
            self.s.settimeout(TIMEOUT)

    # ---- handshake ---------------------------------------------------------
    def greeting(self):
        magic, ihaveopt, flags = struct.unpack(">QQH", self.recv_exact(18))
        check(magic == NBDMAGIC, "bad server magic 0x%x" % magic)
        check(ihaveopt == IHAVEOPT, "server is not newstyle (0x%x)" % ihaveopt)
        check(flags & 1, "server lacks FIXED_NEWSTYLE")
        return flags

    def client_flags(self, flags=FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES):
        self.send(struct.pack(">I", flags))

    def opt(self, opt, data=b"", length=None):
        self.send(struct.pack(">QII", IHAVEOPT, opt, len(data) if length is None else length) + data)

    def opt_reply(self):
        magic, opt, typ, ln = struct.unpack(">QIII", self.recv_exact(20))
        check(magic == OPT_REPLY_MAGIC, "bad option reply magic 0x%x" % magic)
        check(ln < (1 << 20), "option reply length %d" % ln)
        return opt, typ, self.recv_exact(ln)

    def go(self, name=None, expect=REP_ACK):
        name = (self.args.export if name is None else name).encode()
        self.opt(OPT_GO, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))
        size = None
        for _ in range(32):
            opt, typ, data = self.opt_reply()
            check(opt == OPT_GO, "reply for option %d, sent GO" % opt)
            if typ == REP_INFO:
                (info,) = struct.unpack_from(">H", data)
                if info == INFO_EXPORT:
                    check(len(data) == 12, "NBD_INFO_EXPORT of %d bytes" % len(data))
                    size, _tflags = struct.unpack_from(">QH", data, 2)
                continue
            check(typ == expect, "GO '%s': reply type 0x%x, want 0x%x (%r)"
                  % (name.decode(), typ, expect, data[:80]))
            if typ == REP_ACK:
                check(size == self.args.size, "GO: export size %s, want %d" % (size, self.args.size))
            return data
        raise Fail("GO: no final reply")

    def negotiate(self, structured=False):
        self.greeting()
        self.client_flags()
        if structured:
            self.opt(OPT_STRUCTURED_REPLY)
            opt, typ, _ = self.opt_reply()
            check((opt, typ) == (OPT_STRUCTURED_REPLY, REP_ACK),
                  "STRUCTURED_REPLY: reply type 0x%x" % typ)
        self.go()
        return self

    # ---- transmission --------------------------------------------------------
    def request(self, typ, offset, length, flags=0, payload=b"", magic=REQ_MAGIC):
        self.handle += 1
        self.send(struct.pack(">IHHQQI", magic, flags, typ, self.handle, offset, length) + payload)
        return self.handle

    def simple_reply(self, handle, data_len=0):
        magic, err, h = struct.unpack(">IIQ", self.recv_exact(16))
        check(magic == SIMPLE_REPLY_MAGIC, "reply magic 0x%08x, want simple 0x%08x"
              % (magic, SIMPLE_REPLY_MAGIC))
        check(h == handle, "reply handle 0x%x, want 0x%x" % (h, handle))
        data = self.recv_exact(data_len) if err == 0 and data_len else b""
        return err, data

    def cmd(self, typ, offset, length, flags=0, payload=b"", want_err=0):
        h = self.request(typ, offset, length, flags, payload)
        err, data = self.simple_reply(h, length if typ == CMD_READ else 0)
        check(err == want_err, "cmd %d off=%d len=%d flags=0x%x: error %d, want %d"
              % (typ, offset, length, flags, err, want_err))
        return data

    def still_usable(self, off=4096 * 7):
        """a write and a read-back on the same connection work"""
        pat = os.urandom(4096)
        self.cmd(CMD_WRITE, off, 4096, payload=pat)
        got = self.cmd(CMD_READ, off, 4096)
        check(got == pat, "read-back after the bad request differs")

    def disc(self):
        self.request(CMD_DISC, 0, 0)
        self.close()


# ---- cases ---------------------------------------------------------------------
def case_bad_opt_magic(a):
    c = Conn(a)
    c.greeting()
    c.client_flags()
    c.send(struct.pack(">QII", 0x1122334455667788, OPT_GO, 0))
    c.expect_closed("bad option magic")
    return c, "closed"


def case_no_fixed_newstyle(a):
    c = Conn(a)
    c.greeting()
    c.client_flags(FLAG_C_NO_ZEROES)  # no FIXED_NEWSTYLE
    c.expect_closed("client flags without FIXED_NEWSTYLE")
    return c, "closed"


def case_unknown_opt(a):
    c = Conn(a)
    c.greeting()
    c.client_flags()
    c.opt(0x4242, b"hello")
    opt, typ, data = c.opt_reply()
    check(opt == 0x4242, "reply names option 0x%x" % opt)
    check(typ == REP_ERR_UNSUP, "reply type 0x%x, want NBD_REP_ERR_UNSUP" % typ)
    c.go()  # the connection is still usable: GO, then a read
    c.cmd(CMD_READ, 0, 4096)
    c.disc()
    return c, "NBD_REP_ERR_UNSUP, then GO + READ worked"


def case_opt_too_big(a):
    c = Conn(a)
    c.greeting()
    c.client_flags()
    c.opt(OPT_GO, b"\0" * 4096, length=64 << 20)  # claims 64 MiB of data
    got = c.expect_closed("option with a 64 MiB length")
    if got:
        check(len(got) == 20, "%d bytes before close" % len(got))
        magic, opt, typ, ln = struct.unpack(">QIII", got)
        check(magic == OPT_REPLY_MAGIC and opt == OPT_GO and typ == REP_ERR_TOO_BIG,
              "reply before close: opt %d type 0x%x, want NBD_REP_ERR_TOO_BIG" % (opt, typ))
        return c, "NBD_REP_ERR_TOO_BIG, then closed"
    return c, "closed"


def case_go_unknown(a):
    c = Conn(a)
    c.greeting()
    c.client_flags()
    c.go("no-such-volume", expect=REP_ERR_UNKNOWN)
    c.go()  # still negotiating: the right name works
    c.cmd(CMD_READ, 0, 512)
    c.disc()
    return c, "NBD_REP_ERR_UNKNOWN, then GO on the right name worked"


def case_go_malformed(a):
    c = Conn(a)
    c.greeting()
    c.client_flags()
    # name length says 1000, but the option holds 10 bytes
    c.opt(OPT_GO, struct.pack(">I", 1000) + b"demo\0\0\0\0\0\0")
    opt, typ, _ = c.opt_reply()
    check(opt == OPT_GO and typ == REP_ERR_INVALID,
          "reply opt %d type 0x%x, want NBD_REP_ERR_INVALID" % (opt, typ))
    c.go()
    c.cmd(CMD_READ, 0, 512)
    c.disc()
    return c, "NBD_REP_ERR_INVALID, then GO worked"


def case_export_name_unknown(a):
    c = Conn(a)
    c.greeting()
    c.client_flags()
    c.opt(OPT_EXPORT_NAME, b"no-such-volume")  # no error reply exists: close
    got = c.expect_closed("NBD_OPT_EXPORT_NAME for an unknown export")
    check(not got, "server sent %d bytes for an unknown EXPORT_NAME" % len(got))
    return c, "closed"


def case_slow_reader(a):
    """128 reads of 32 MiB pipelined, replies never read: urbd may not
    buffer them all (4 GiB); its RSS must stay under 1 GiB."""
    check(a.pid, "slow-reader needs --pid")

    def rss_mib():
        with open("/proc/%d/status" % a.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
        return 0
    limit = 1024
    c = Conn(a).negotiate()
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.s.settimeout(2.0)
    base = rss_mib()
    peak = base
    sent = 0
    try:
        for i in range(128):
            c.request(CMD_READ, (i % 4) * (32 << 20), 32 << 20)
            sent += 1
            for _ in range(3):
                time.sleep(0.01)
                peak = max(peak, rss_mib())
            if peak - base > limit:
                break
    except socket.timeout:
        pass  # the server stopped reading requests: fine
    end = time.monotonic() + 3
    while time.monotonic() < end and peak - base <= limit:
        peak = max(peak, rss_mib())
        time.sleep(0.05)
    c.close()
    check(peak - base <= limit,
          "urbd grew from %d to %d MiB buffering replies to %d unread 32 MiB reads "
          "(limit +%d MiB)" % (base, peak, sent, limit))
    return c, "%d reads sent, RSS %d -> %d MiB" % (sent, base, peak)


def case_bad_req_magic(a):
    c = Conn(a).negotiate()
    c.cmd(CMD_READ, 0, 4096)
    c.request(CMD_READ, 0, 4096, magic=0xDEADBEEF)
    got = c.expect_closed("bad request magic")
    check(not got, "server answered %d bytes to a bad magic" % len(got))
    return c, "closed"


def case_unknown_cmd(a):
    c = Conn(a).negotiate()
    c.cmd(42, 0, 4096, want_err=EINVAL)
    c.still_usable()
    c.disc()
    return c, "EINVAL, connection still usable"


def case_write_past_end(a):
    c = Conn(a).negotiate()
    size = a.size
    before = c.cmd(CMD_READ, size - 4096, 4096)
    # the payload follows; the server must drain it to stay in step, and
    # this payload carries what looks like a request header inside
    evil = struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_WRITE, 0x6666, 0, 4096)
    payload = (evil * (8192 // len(evil) + 1))[:8192]
    c.cmd(CMD_WRITE, size - 4096, 8192, payload=payload, want_err=ENOSPC)
    c.cmd(CMD_WRITE, size, 4096, payload=payload[:4096], want_err=ENOSPC)
    c.cmd(CMD_WRITE, (1 << 64) - 4096, 8192, payload=payload, want_err=ENOSPC)
    c.cmd(CMD_WRITE_ZEROES, size - 4096, 8192, want_err=ENOSPC)
    c.cmd(CMD_TRIM, size, 4096, want_err=EINVAL)
    c.still_usable()
    check(c.cmd(CMD_READ, size - 4096, 4096) == before,
          "the rejected write changed the last block")
    check(c.cmd(CMD_READ, 0, 4096) != payload[:4096], "payload was written at offset 0")
    c.disc()
    return c, "ENOSPC x4 (write, write-zeroes), EINVAL (trim), payload drained, next requests fine"


def case_read_past_end(a):
    c = Conn(a).negotiate()
    size = a.size
    c.cmd(CMD_READ, size - 4096, 8192, want_err=EINVAL)
    c.cmd(CMD_READ, size, 512, want_err=EINVAL)
    c.cmd(CMD_READ, (1 << 64) - 512, 1024, want_err=EINVAL)  # offset + length wraps
    c.cmd(CMD_READ, size - 512, 512)  # the last sector is fine
    c.still_usable()
    c.disc()
    return c, "EINVAL x3, connection still usable"


def case_write_64m(a):
    c = Conn(a).negotiate()
    c.request(CMD_WRITE, 0, 64 << 20, payload=b"\xee" * 65536)
    got = c.expect_closed("64 MiB write")
    # an error reply before hanging up is fine; a success reply is not
    if got:
        check(len(got) >= 16, "%d stray bytes before close" % len(got))
        magic, err, _ = struct.unpack_from(">IIQ", got)
        check(magic == SIMPLE_REPLY_MAGIC and err != 0, "64 MiB write acknowledged")
    c2 = Conn(a).negotiate()
    check(c2.cmd(CMD_READ, 0, 65536) != b"\xee" * 65536, "partial 64 MiB write landed")
    c2.disc()
    return c, "closed"


def case_unknown_flags(a):
    c = Conn(a).negotiate()
    c.cmd(CMD_READ, 0, 4096, flags=0x8000, want_err=EINVAL)
    c.cmd(CMD_WRITE, 8192, 4096, flags=0x4000, payload=b"\xab" * 4096, want_err=EINVAL)
    c.cmd(CMD_FLUSH, 0, 0, flags=CMD_FLAG_FUA, want_err=EINVAL)
    c.still_usable()
    check(c.cmd(CMD_READ, 8192, 4096) != b"\xab" * 4096, "rejected write landed")
    c.disc()
    return c, "EINVAL x3, connection still usable"


def case_zero_read(a):
    c = Conn(a).negotiate()
    c.cmd(CMD_READ, 0, 0, want_err=EINVAL)
    c.still_usable()
    c.disc()
    return c, "EINVAL, connection still usable"


def case_truncated_payload(a):
    c = Conn(a).negotiate()
    off = 4096 * 64
    before = c.cmd(CMD_READ, off, 65536)
    c.request(CMD_WRITE, off, 65536, payload=b"\x5c" * 1000)
    time.sleep(0.2)
    c.close()
    c2 = Conn(a).negotiate()
    check(c2.cmd(CMD_READ, off, 65536) == before, "an incomplete write changed the data")
    c2.still_usable()
    c2.disc()
    return c, "dropped mid-payload; region unchanged"


def case_many_conns(a):
    """300 connections dropped at every stage of the protocol."""
    stages = ["connect", "greeting", "flags", "mid-option", "after-go", "mid-header",
              "mid-payload", "reads-in-flight"]
    conns = []
    for i in range(300):
        stage = stages[i % len(stages)]
        c = Conn(a)
        if stage in ("greeting", "flags", "mid-option"):
            c.greeting()
        if stage in ("flags", "mid-option"):
            c.client_flags()
        if stage == "mid-option":
            c.send(struct.pack(">QI", IHAVEOPT, OPT_GO))
        if stage in ("after-go", "mid-header", "mid-payload", "reads-in-flight"):
            c.negotiate()
        if stage == "mid-header":
            c.send(struct.pack(">IHH", REQ_MAGIC, 0, CMD_READ))
        if stage == "mid-payload":
            c.request(CMD_WRITE, 4096 * 1024, 1 << 20, payload=b"x" * 5000)
        if stage == "reads-in-flight":
            for k in range(16):
                c.request(CMD_READ, k * 65536, 65536)
        conns.append(c)
        if len(conns) >= 50:  # hold up to 50 open at once
            for x in conns:
                x.close()
            conns = []
    for x in conns:
        x.close()
    return None, "300 connections dropped at %d stages" % len(stages)


def case_structured_error(a):
    c = Conn(a).negotiate(structured=True)
    h = c.request(CMD_READ, a.size, 4096)
    magic, flags, typ, rh, ln = struct.unpack(">IHHQI", c.recv_exact(20))
    check(magic == STRUCTURED_REPLY_MAGIC, "reply magic 0x%08x, want structured" % magic)
    check(rh == h, "handle 0x%x, want 0x%x" % (rh, h))
    check(typ == REPLY_TYPE_ERROR, "chunk type 0x%x, want NBD_REPLY_TYPE_ERROR" % typ)
    check(flags & REPLY_FLAG_DONE, "error chunk without NBD_REPLY_FLAG_DONE")
    check(ln >= 6, "error chunk of %d bytes" % ln)
    err, msglen = struct.unpack(">IH", c.recv_exact(6))
    c.recv_exact(ln - 6)
    check(err == EINVAL, "error %d, want EINVAL" % err)
    check(msglen == ln - 6, "message length %d in a %d-byte chunk" % (msglen, ln))
    # a good read after it: one OFFSET_DATA chunk (or NONE + data chunks)
    h = c.request(CMD_READ, 0, 4096)
    got = 0
    for _ in range(64):
        magic, flags, typ, rh, ln = struct.unpack(">IHHQI", c.recv_exact(20))
        check(magic == STRUCTURED_REPLY_MAGIC and rh == h, "bad chunk header")
        body = c.recv_exact(ln)
        check(not typ & 0x8000, "error chunk 0x%x for a good read" % typ)
        if typ == REPLY_TYPE_OFFSET_DATA:
            got += ln - 8
        elif typ == 2:  # OFFSET_HOLE
            got += struct.unpack_from(">QI", body)[1]
        if flags & REPLY_FLAG_DONE:
            break
    check(got == 4096, "good structured read returned %d bytes" % got)
    c.disc()
    return c, "NBD_REPLY_TYPE_ERROR chunk with EINVAL, then a good read"


CASES = {n[5:].replace("_", "-"): f for n, f in globals().items() if n.startswith("case_")}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tcp")
    p.add_argument("--unix")
    p.add_argument("--export", required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--pid", type=int, help="urbd's PID, for slow-reader")
    p.add_argument("cases", nargs="+")
    a = p.parse_args()
    for name in a.cases:
        if name not in CASES:
            print("unknown case %s (have: %s)" % (name, " ".join(sorted(CASES))))
            return 2
        try:
            c, detail = CASES[name](a)
        except (Fail, OSError, struct.error) as e:
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
            return 1
        if c is not None and c.peer:
            print("peer %s %s" % (name, c.peer))
        print("ok %s: %s" % (name, detail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
