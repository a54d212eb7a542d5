#!/usr/bin/python3
"""A small NVMe/TCP host, written for urbd's own tests.

This is OUR client: it exercises the target's PDU handling and commands
from the host side, but it is not proof of conformance (the Linux kernel
initiator in the QEMU guest, tests/vm/t-vm-nvme.sh, is). Standard library
only.

    c = Host("127.0.0.1", 4420, hdgst=True, ddgst=True)
    cntlid = c.connect("nqn.2026-11.io.urbd:demo", qid=0)
"""
import select
import socket
import struct
import sys

try:
    from crc32c import crc32c as _crc  # optional fast path
except ImportError:
    _crc = None

_T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _T.append(c)


def crc32c(data):
    if _crc:
        return _crc(data)
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


HOSTNQN = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001"
DISC_NQN = "nqn.2014-08.org.nvmexpress.discovery"


class TermReq(Exception):
    def __init__(self, fes, fei, data):
        super().__init__("C2HTermReq FES %d FEI %d" % (fes, fei))
        self.fes, self.fei, self.data = fes, fei, data


class Host:
    def __init__(self, host, port, hdgst=False, ddgst=False, timeout=10):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.hdgst, self.ddgst = hdgst, ddgst
        self.cid = 0
        self.maxh2c = 4096
        self.done = {}  # cid -> (status, result): responses for other commands
        self.icreq()

    # ---- framing ----
    def recvn(self, n):
        b = b""
        while len(b) < n:
            k = self.s.recv(n - len(b))
            if not k:
                raise EOFError("connection closed by target")
            b += k
        return b

    def send_pdu(self, typ, psh, data=b"", flags=0, hd=None, dd=None):
        hd = self.hdgst if hd is None else hd
        dd = (self.ddgst if dd is None else dd) and bool(data)
        hlen = 8 + len(psh)
        if typ in (0, 2):
            hd = dd = False
        if hd:
            flags |= 1
        if dd:
            flags |= 2
        hl = hlen + (4 if hd else 0)
        pdo = hl if data else 0
        plen = hl + len(data) + (4 if dd else 0)
        hdr = struct.pack("<BBBBI", typ, flags, hlen, pdo, plen) + psh
        out = hdr + (struct.pack("<I", crc32c(hdr)) if hd else b"") + data
        if dd:
            out += struct.pack("<I", crc32c(data))
        self.s.sendall(out)

    def recv_pdu(self):
        ch = self.recvn(8)
        typ, flags, hlen, pdo, plen = struct.unpack("<BBBBI", ch)
        rest = self.recvn(plen - 8)
        hdr = ch + rest[: hlen - 8]
        if typ == 3:
            fes, fei = struct.unpack_from("<HI", hdr, 8)
            raise TermReq(fes, fei, rest[hlen - 8:])
        off = hlen - 8
        if flags & 1:
            (d,) = struct.unpack_from("<I", rest, off)
            assert d == crc32c(hdr), "bad header digest from target"
        data = b""
        if pdo:
            data = rest[pdo - 8:]
            if flags & 2:
                data, d = data[:-4], struct.unpack("<I", data[-4:])[0]
                assert d == crc32c(data), "bad data digest from target"
        return typ, flags, hdr, data

    def icreq(self):
        dg = (1 if self.hdgst else 0) | (2 if self.ddgst else 0)
        self.send_pdu(0, struct.pack("<HBBI", 0, 0, dg, 0) + bytes(112))
        typ, _, hdr, _ = self.recv_pdu()
        assert typ == 1, "expected ICResp, got type %d" % typ
        pfv, cpda, dg2, self.maxh2c = struct.unpack_from("<HBBI", hdr, 8)
        assert pfv == 0 and dg2 == dg, (pfv, dg2)

    # ---- commands ----
    def sqe(self, opc, nsid=0, cdw=None, sgl=None, fctype=None):
        self.cid = (self.cid + 1) & 0xFFFF
        b = bytearray(64)
        b[0] = opc
        b[1] = 0x40  # SGL
        struct.pack_into("<H", b, 2, self.cid)
        if fctype is not None:
            b[4] = fctype
        else:
            struct.pack_into("<I", b, 4, nsid)
        if sgl:
            kind, length = sgl
            if kind == "incapsule":
                struct.pack_into("<QI", b, 24, 0, length)
                b[39] = 0x01
            else:
                struct.pack_into("<QI", b, 24, 0, length)
                b[39] = 0x5A
        for k, v in (cdw or {}).items():
            struct.pack_into("<I", b, 40 + 4 * (k - 10), v & 0xFFFFFFFF)
        return bytes(b)

    def wait_rsp(self, cid, r2t_data=None):
        """Runs the command cid to its response; responses to other (held)
        commands that arrive meanwhile are kept in self.done."""
        if cid in self.done:
            st, res = self.done.pop(cid)
            return st, res, b""
        rd = b""
        while True:
            typ, flags, hdr, data = self.recv_pdu()
            if typ == 7:
                rd += data
                continue
            if typ == 9:  # R2T
                ccid, ttag, off, ln = struct.unpack_from("<HHII", hdr, 8)
                assert ccid == cid
                while ln:
                    k = min(ln, self.maxh2c)
                    last = 4 if k == ln else 0
                    self.send_pdu(6, struct.pack("<HHII", cid, ttag, off, k) + bytes(4),
                                  r2t_data[off:off + k], flags=last)
                    off += k
                    ln -= k
                continue
            assert typ == 5, "unexpected PDU type %d" % typ
            res, sqhd, sqid, rcid, st = struct.unpack_from("<QHHHH", hdr, 8)
            if rcid != cid:
                assert not rd, "data, then the response of another command"
                self.done[rcid] = ((st >> 1) & 0x7FF, res)
                continue
            return (st >> 1) & 0x7FF, res, rd

    def submit(self, sqe):
        """Sends a command without data and returns its cid (for commands
        the target holds, such as Asynchronous Event Requests)."""
        self.send_pdu(4, sqe)
        return struct.unpack_from("<H", sqe, 2)[0]

    def poll_rsp(self, cid, timeout):
        """(status, result) of a submitted command, or None if no response
        arrives within timeout seconds."""
        while cid not in self.done:
            r, _, _ = select.select([self.s], [], [], timeout)
            if not r:
                return None
            typ, _, hdr, _ = self.recv_pdu()
            assert typ == 5, "unexpected PDU type %d" % typ
            res, _, _, rcid, st = struct.unpack_from("<QHHHH", hdr, 8)
            self.done[rcid] = ((st >> 1) & 0x7FF, res)
        return self.done.pop(cid)

    def aer(self):
        return self.submit(self.sqe(0x0C))

    def cmd(self, sqe, data=b"", incapsule=None, r2t=None):
        cid = struct.unpack_from("<H", sqe, 2)[0]
        self.send_pdu(4, sqe, data if incapsule else b"")
        return self.wait_rsp(cid, r2t)

    def connect(self, subnqn, qid=0, cntlid=0xFFFF, sqsize=31, kato=0, hostnqn=HOSTNQN):
        d = bytearray(1024)
        d[0:16] = bytes(range(16))
        struct.pack_into("<H", d, 16, cntlid)
        d[256:256 + len(subnqn)] = subnqn.encode()
        d[512:512 + len(hostnqn)] = hostnqn.encode()
        s = bytearray(self.sqe(0x7F, fctype=1, sgl=("incapsule", 1024)))
        struct.pack_into("<HHHBxI", s, 40, 0, qid, sqsize, 0, kato)
        st, res, _ = self.cmd(bytes(s), bytes(d), incapsule=True)
        return st, res & 0xFFFF

    def prop_get(self, ofst, size8=False):
        s = bytearray(self.sqe(0x7F, fctype=4))
        s[40] = 1 if size8 else 0
        struct.pack_into("<I", s, 44, ofst)
        st, res, _ = self.cmd(bytes(s))
        return st, res

    def prop_set(self, ofst, val):
        s = bytearray(self.sqe(0x7F, fctype=0))
        struct.pack_into("<I", s, 44, ofst)
        struct.pack_into("<Q", s, 48, val)
        return self.cmd(bytes(s))[0]

    def enable(self):
        assert self.prop_set(0x14, (6 << 16) | (4 << 20) | 1) == 0
        st, csts = self.prop_get(0x1C)
        assert st == 0 and csts & 1, (st, csts)

    def identify(self, cns, nsid=0):
        st, _, d = self.cmd(self.sqe(0x06, nsid, {10: cns}, ("transport", 4096)))
        return st, d

    def get_log(self, lid, length, lpo=0, rae=False):
        numd = length // 4 - 1
        rae = (1 << 15) if rae else 0
        st, _, d = self.cmd(self.sqe(0x02, 0xFFFFFFFF, {10: lid | rae | ((numd & 0xFFFF) << 16),
                                                         11: numd >> 16, 12: lpo,
                                                         13: lpo >> 32},
                                     ("transport", length)))
        return st, d

    def set_features(self, fid, cdw11):
        st, res, _ = self.cmd(self.sqe(0x09, 0, {10: fid, 11: cdw11}))
        return st, res

    def read(self, slba, nlb, bs=512):
        st, _, d = self.cmd(self.sqe(0x02, 1, {10: slba, 11: slba >> 32, 12: nlb - 1},
                                     ("transport", nlb * bs)))
        return st, d

    def write(self, slba, data, bs=512, incapsule=None, fua=False):
        nlb = len(data) // bs
        if incapsule is None:
            incapsule = len(data) <= 8192
        cdw12 = (nlb - 1) | ((1 << 30) if fua else 0)
        s = self.sqe(0x01, 1, {10: slba, 11: slba >> 32, 12: cdw12},
                     ("incapsule" if incapsule else "transport", len(data)))
        return self.cmd(s, data, incapsule=incapsule, r2t=data)[0]

    def close(self):
        self.s.close()


def io_queue(host, port, subnqn, cntlid, qid=1, **kw):
    h = Host(host, port, **kw)
    st, _ = h.connect(subnqn, qid=qid, cntlid=cntlid, sqsize=127)
    assert st == 0, "I/O queue connect status 0x%x" % st
    return h


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    a = Host(host, port)
    print(a.connect(DISC_NQN))
