#!/usr/bin/env bash
# NVMe/TCP target driven by our own python host (tests/integration/
# nvmf_client.py; NOT the conformance proof, see tests/vm/t-vm-nvme.sh):
# ICReq with and without digests, Connect admin + I/O, Identify, Property
# Get/Set, Read/Write in-capsule and via R2T, LBA Out of Range, discovery
# log; malformed PDUs get a C2HTermReq (right FES/FEI) and a close while
# another connection keeps working.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

NVMF_PORT=$(free_port)
start_urbd --default-volume demo:64M --nvmf-listen "127.0.0.1:$NVMF_PORT"
"$PY" - "$NVMF_PORT" "$TESTS_DIR" <<'PYEOF' || fail "python host checks failed"
import os, socket, struct, sys
sys.path.insert(0, sys.argv[2])
from nvmf_client import Host, TermReq, DISC_NQN, io_queue
P = int(sys.argv[1]); NQN = "nqn.2026-11.io.urbd:demo"

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
print("all ok")
PYEOF
assert_alive "after malformed PDUs"
grep -q 'fatal transport error' "$URBD_LOG" || fail "no fatal transport error logged"
stop_urbd
pass "NVMe/TCP target: our python host's checks, malformed PDUs answered with C2HTermReq"
