#!/usr/bin/env bash
# NVMe/TCP target driven by our own python host (tests/integration/
# nvmf_client.py; NOT the conformance proof, see tests/vm/t-vm-nvme.sh):
# ICReq with and without digests, Connect admin + I/O, Identify, Property
# Get/Set, Read/Write in-capsule and via R2T, LBA Out of Range, discovery
# log; malformed PDUs get a C2HTermReq (right FES/FEI) and a close while
# another connection keeps working. Asynchronous events: a held AER
# completes with Namespace Attribute Changed when urbdctl resizes the
# volume, the event stays masked until log page 04h is read without RAE,
# an event with no AER outstanding waits for the next one; the Changed
# Namespace List and Identify Namespace follow; an LBA Out of Range shows
# in the Error Information log. Deleting a volume (--force) closes its
# queues at once (the volume's detach notification, not a poll). Large
# H2CData payloads are received straight into the command's buffer.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

NVMF_PORT=$(free_port)
start_urbd --default-volume demo:64M --nvmf-listen "127.0.0.1:$NVMF_PORT"
"$PY" - "$NVMF_PORT" "$TESTS_DIR" "$URBD_BIN_DIR/urbdctl" "$T/control.sock" <<'PYEOF' || fail "python host checks failed"
import os, socket, struct, subprocess, sys, time
sys.path.insert(0, sys.argv[2])
from nvmf_client import Host, TermReq, DISC_NQN, io_queue
P = int(sys.argv[1]); NQN = "nqn.2026-11.io.urbd:demo"
CTL, CSOCK = sys.argv[3], sys.argv[4]

def urbdctl(*args):
    r = subprocess.run([CTL, "-s", CSOCK] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode:
        print("FAIL: urbdctl %s: %s" % (" ".join(args), r.stderr)); sys.exit(1)

def check(c, m):
    if not c:
        print("FAIL:", m); sys.exit(1)
    print("ok:", m)

for hd, dd in ((False, False), (True, True)):
    a = Host("127.0.0.1", P, hd, dd)
    st, _, _ = a.cmd(a.sqe(0x06, 0, {10: 1}, ("transport", 4096)))
    check(st == 0x0c, "Identify before Connect: Command Sequence Error")
    st, cntlid = a.connect(NQN, kato=5000)
    check(st == 0 and cntlid, "admin Connect (digests %s/%s)" % (hd, dd))
    a.enable()
    st, d = a.identify(1)
    check(st == 0 and d[24:28] == b"urbd" and d[768:768 + len(NQN)] == NQN.encode(), "Identify controller")
    st, d = a.identify(0, 1)
    check(st == 0 and struct.unpack_from("<Q", d)[0] == 64 * 2048 and d[130] == 9, "Identify namespace")
    check(a.identify(0, 2)[0] == 0x0b, "Identify of nsid 2: Invalid Namespace")
    check(a.set_features(7, (1 << 16) | 1) == (0, (1 << 16) | 1), "Number of Queues")
    io = io_queue("127.0.0.1", P, NQN, cntlid, hdgst=hd, ddgst=dd)
    small, big = os.urandom(4096), os.urandom(300 * 1024)
    check(io.write(16, small) == 0 and io.read(16, 8) == (0, small), "in-capsule write, read back")
    check(io.write(1000, big) == 0 and io.read(1000, 600) == (0, big), "R2T write, read back")
    check(io.read(64 * 2048 - 1, 2)[0] == 0x80, "read past the end: LBA Out of Range")
    io.close(); a.close()

d = Host("127.0.0.1", P)
st, _ = d.connect(DISC_NQN); d.enable()
st, log = d.get_log(0x70, 2048)
check(st == 0 and struct.unpack_from("<Q", log, 8)[0] == 1 and log[1024 + 256:1024 + 256 + len(NQN)] == NQN.encode(),
      "discovery log lists the volume")
d.close()

# a healthy queue that must keep working while others misbehave
a = Host("127.0.0.1", P); st, cntlid = a.connect(NQN); a.enable()
good = io_queue("127.0.0.1", P, NQN, cntlid)

def expect_term(raw, fes, fei, what, icreq=True):
    s = socket.create_connection(("127.0.0.1", P), timeout=5)
    h = Host.__new__(Host); h.s = s; h.hdgst = h.ddgst = False; h.cid = 0; h.maxh2c = 4096
    if icreq:
        h.icreq()
    s.sendall(raw)
    try:
        h.recv_pdu()
        check(False, what + ": no C2HTermReq")
    except TermReq as t:
        check(t.fes == fes and t.fei == fei, "%s: C2HTermReq FES %d FEI %d" % (what, t.fes, t.fei))
    check(s.recv(1) == b"", what + ": connection closed after the C2HTermReq")
    data = os.urandom(512)
    check(good.write(5, data) == 0 and good.read(5, 1) == (0, data), "other queue still serves I/O")

expect_term(struct.pack("<BBBBI", 0x05, 0, 24, 0, 24) + bytes(16), 1, 0, "controller PDU type from host")
expect_term(struct.pack("<BBBBI", 0x04, 0, 64, 0, 64) + bytes(56), 1, 2, "bad hlen")
expect_term(struct.pack("<BBBBI", 0x04, 0, 72, 40, 200), 1, 3, "pdo inside the header")
expect_term(struct.pack("<BBBBI", 0x04, 0, 72, 72, 72 + 9000), 5, 4, "in-capsule data over 8 KiB")
expect_term(struct.pack("<BBBBI", 0x06, 0, 24, 24, 24 + 512) + struct.pack("<HHII", 1, 77, 0, 512) + bytes(4) + bytes(512),
            1, 10, "H2CData for no R2T")
expect_term(struct.pack("<BBBBI", 0x04, 0, 72, 0, 72) + bytes(64), 2, 0, "capsule before ICReq", icreq=False)
# ---- asynchronous events, Changed Namespace List, Error Information log ----
NS_CHANGED = 0x040002  # type 2h (notice), info 00h, log page 04h
MiB = 1 << 20
a = Host("127.0.0.1", P); st, cntlid = a.connect(NQN, kato=10000); a.enable()
st, d = a.identify(1)
check(st == 0 and struct.unpack_from("<I", d, 92)[0] & (1 << 8) and d[259] == 3 and d[262] == 63,
      "Identify controller: OAES NS attribute notices, AERL 3, ELPE 63")
check(a.set_features(0x0B, 1 << 8)[0] == 0, "Async Event Configuration: NS attribute notices on")
st, log = a.get_log(0x04, 4096)
check(st == 0 and log == bytes(4096), "Changed Namespace List empty before any change")
aer1 = a.aer()
check(a.poll_rsp(aer1, 0.3) is None, "AER held while nothing happens")
urbdctl("volume", "resize", "demo", "96M")
r = a.poll_rsp(aer1, 5)
check(r is not None and r[0] == 0 and r[1] & 0xFFFFFF == NS_CHANGED,
      "resize completes the AER: Namespace Attribute Changed (dw0 %s)" % (hex(r[1]) if r else None))
aer2 = a.aer()
urbdctl("volume", "resize", "demo", "128M")
check(a.poll_rsp(aer2, 0.5) is None, "second change while unread: masked, AER still held")
st, log = a.get_log(0x04, 4096, rae=True)
check(st == 0 and struct.unpack_from("<II", log) == (1, 0), "log 04h with RAE: nsid 1")
check(a.poll_rsp(aer2, 0.3) is None, "still masked after a read with RAE")
st, log = a.get_log(0x04, 4096)
check(st == 0 and struct.unpack_from("<II", log) == (1, 0), "log 04h: nsid 1")
st, log = a.get_log(0x04, 4096)
check(st == 0 and log == bytes(4096), "log 04h read again: empty (cleared by the read)")
st, d = a.identify(0, 1)
check(st == 0 and struct.unpack_from("<QQ", d) == (128 * MiB // 512, 128 * MiB // 512),
      "Identify namespace: NSZE/NCAP of the new size")
urbdctl("volume", "resize", "demo", "160M")
r = a.poll_rsp(aer2, 5)
check(r is not None and r[0] == 0 and r[1] & 0xFFFFFF == NS_CHANGED, "unmasked by the read: next change completes the AER")
check(struct.unpack_from("<I", a.get_log(0x04, 4096)[1])[0] == 1, "log 04h read: event unmasked")
urbdctl("volume", "resize", "demo", "192M")  # no AER outstanding now
time.sleep(0.2)
aer3 = a.aer()
r = a.poll_rsp(aer3, 5)
check(r is not None and r[0] == 0 and r[1] & 0xFFFFFF == NS_CHANGED, "event with no AER outstanding: delivered to the next AER")
check(struct.unpack_from("<I", a.get_log(0x04, 4096)[1])[0] == 1, "and the log lists nsid 1")
io = io_queue("127.0.0.1", P, NQN, cntlid)
nsze = 192 * MiB // 512
check(io.read(nsze - 2, 2)[0] == 0, "the grown end is readable on the I/O queue")
rd = io.sqe(0x02, 1, {10: nsze - 1, 12: 1}, ("transport", 1024))
bad_cid = struct.unpack_from("<H", rd, 2)[0]
check(io.cmd(rd)[0] == 0x80, "read past the new end: LBA Out of Range")
st, log = a.get_log(0x01, 64 * 64)
cnt, sqid, cid, sf, ploc, lba, nsid = struct.unpack_from("<QHHHHQI", log)
check(st == 0 and cnt >= 1 and sqid == 1 and cid == bad_cid and (sf >> 1) & 0x7FF == 0x80 and sf & 0x8000
      and ploc == 40 and lba == nsze - 1 and nsid == 1,
      "Error Information log: newest entry is that read (count %d sqid %d cid %d sf 0x%x ploc %d lba %d nsid %d)"
      % (cnt, sqid, cid, sf, ploc, lba, nsid))
check(a.get_log(0x7E, 512)[0] == 0x109, "unknown log page: Invalid Log Page")
st, log = a.get_log(0x01, 64 * 64)
check(st == 0 and struct.unpack_from("<QHH", log) == (cnt + 1, 0, a.cid - 1),
      "Error Information log: the admin error on top, count %d" % (cnt + 1))
io.close(); a.close()

# ---- a volume deleted under its controller: queues close on the notification ----
urbdctl("volume", "create", "gone", "8M")
GNQN = "nqn.2026-11.io.urbd:gone"
g = Host("127.0.0.1", P); st, gcntlid = g.connect(GNQN); g.enable()
gio = io_queue("127.0.0.1", P, GNQN, gcntlid)
t0 = time.monotonic()
urbdctl("volume", "delete", "gone", "--force")
took = time.monotonic() - t0
for s_, what in ((g.s, "admin"), (gio.s, "I/O")):
    s_.settimeout(5)
    try:
        closed = s_.recv(4096) == b""
    except ConnectionResetError:
        closed = True
    check(closed, "volume delete --force: %s queue closed" % what)
check(took < 5, "delete --force returned in %.2f s" % took)
print("all ok")
PYEOF
assert_alive "after malformed PDUs"
grep -q 'fatal transport error' "$URBD_LOG" || fail "no fatal transport error logged"
grep -q 'volume gone: closing: volume detached' "$URBD_LOG" || fail "no close on the volume's detach notification"
grep -q 'asynchronous event 0x040002' "$URBD_LOG" || fail "no asynchronous event logged"
# the R2T writes (128 KiB H2CData) took the direct receive path and read back
grep -qE 'bytes in, [1-9][0-9]* direct\)' "$URBD_LOG" || fail "no payload was received direct"
stop_urbd
pass "NVMe/TCP target: our python host's checks, malformed PDUs answered with C2HTermReq"
