#!/usr/bin/python3
"""A hostile replication peer: connects to a urbd replication listener and
sends one kind of malformed traffic, then reports how the daemon reacted.

usage: repl_hostile.py HOST PORT CASE [UUID_HEX FROM_ID TO_ID [SECRET_FILE SIZE]]

The "auth-*" cases first pass the handshake as member FROM_ID (HMAC over
the shared secret, then a diskless secondary's STATE for a volume of SIZE
bytes) and then send a message the daemon must refuse in that state.

Prints one line "CASE: closed[ after ERROR(<reason>): <text>]" when the
daemon closed the connection (what every case expects), or "CASE: OPEN"
when it still held it open after 5 s. Exit 0 on "closed", 1 otherwise."""
import hashlib
import hmac
import os
import socket
import struct
import sys

MAGIC = 0x55524231
T_FEATURES, T_AUTH_CHALLENGE, T_HELLO, T_PING, T_ERROR = 0x0001, 0x0002, 0x0005, 0x0040, 0x0050


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def frame(mtype, payload, flags=0, length=None, bad_crc=False):
    length = len(payload) if length is None else length
    head = struct.pack(">IHHI", MAGIC, mtype, flags, length)
    crc = crc32c(head) ^ (1 if bad_crc else 0)
    return head + struct.pack(">I", crc) + payload


def features():
    return frame(T_FEATURES, struct.pack(">IIQ", 1, 1, 0) + bytes(16))


def hello(uuid, frm, to):
    return frame(T_HELLO, uuid + struct.pack(">II", frm, to))


T_AUTH_RESPONSE, T_AUTH_OK, T_STATE = 0x0003, 0x0004, 0x0010


def read_frame(s, buf):
    """(type, payload, rest) of the next frame, reading as needed; None at EOF."""
    while len(buf) < 16 or len(buf) < 16 + struct.unpack(">I", buf[8:12])[0]:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    mtype = struct.unpack(">H", buf[4:6])[0]
    length = struct.unpack(">I", buf[8:12])[0]
    return mtype, buf[16:16 + length], buf[16 + length:]


def state(uuid, frm, size):
    # role secondary, disk diskless, flags 0, grain 0, size, uuid, generations 0
    return frame(T_STATE, struct.pack(">BBHIQ", 1, 0, 0, 0, size) + uuid +
                 bytes(32) + struct.pack(">II", frm, 0))


def authenticate(s, uuid, frm, to, secret, size):
    """Passes the handshake as member frm; returns bytes read past it."""
    nonce = os.urandom(32)
    s.sendall(features() + hello(uuid, frm, to) +
              frame(T_AUTH_CHALLENGE, struct.pack(">II", 1, frm) + nonce))
    buf, sent_state = b"", False
    while True:
        f = read_frame(s, buf)
        if f is None:
            raise RuntimeError("closed during the handshake")
        mtype, payload, buf = f
        if mtype == T_AUTH_CHALLENGE:
            peer_id = struct.unpack(">I", payload[4:8])[0]
            msg = b"urbd-repl-auth-v1\0" + struct.pack(">II", frm, peer_id) + payload[8:40] + nonce
            mac = hmac.new(secret, msg, hashlib.sha256).digest()
            s.sendall(frame(T_AUTH_RESPONSE, mac))
        elif mtype == T_AUTH_RESPONSE:
            s.sendall(frame(T_AUTH_OK, b""))
        elif mtype == T_AUTH_OK and not sent_state:
            s.sendall(state(uuid, frm, size))
            sent_state = True
        elif mtype == T_STATE:
            return buf
        elif mtype == T_ERROR:
            raise RuntimeError("refused: " + payload[8:].decode(errors="replace"))


def main():
    host, port, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    uuid = bytes.fromhex(sys.argv[4]) if len(sys.argv) > 4 else bytes(range(1, 17))
    frm = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    to = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    intro = features() + hello(uuid, frm, to)
    challenge = frame(T_AUTH_CHALLENGE, struct.pack(">II", 1, frm) + bytes(range(1, 33)))
    sends = {
        "garbage": [b"GET / HTTP/1.0\r\n\r\n" + bytes(100)],
        "bad-magic": [b"XXXX" + features()[4:] + hello(uuid, frm, to)],
        "bad-crc": [frame(T_FEATURES, struct.pack(">IIQ", 1, 1, 0) + bytes(16), bad_crc=True)
                    + hello(uuid, frm, to)],
        "unknown-uuid": [features() + hello(bytes(range(100, 116)), frm, to)],
        "truncated": [intro[:50]],                       # then silence: intro timeout
        "hello-self": [features() + hello(uuid, to, to)],
        # past the intro, inside the volume's handshake:
        "unknown-type": [intro, frame(0x0033 + 0x30, b"")],
        "wrong-size": [intro, frame(T_AUTH_CHALLENGE, bytes(12))],
        "ping-before-auth": [intro, frame(T_PING, bytes(8))],
        "bad-crc-later": [intro, frame(T_AUTH_CHALLENGE, bytes(40), bad_crc=True)],
        "huge-length": [intro, frame(0x0020, b"", length=0x7FFFFFFF)],
        "flags": [intro, frame(T_AUTH_CHALLENGE, challenge[16:], flags=1)],
    }
    # past authentication and STATE, as a diskless secondary
    after_auth = {
        "auth-write-from-secondary": frame(0x0020, struct.pack(">QQIIII", 1, 0, 4096, 0, 0, 0) +
                                           bytes(4096)),
        "auth-read-req-from-secondary": frame(0x0030, struct.pack(">QQII", 1, 0, 4096, 0)),
        "auth-read-reply-unsolicited": frame(0x0031, struct.pack(">QIIII", 999, 1, 0, 0, 0)),
        "auth-verify-reply-unsolicited": frame(0x0037, struct.pack(">QII", 999, 0, 1) + bytes(32)),
        "auth-verify-past-end": None,  # built below: needs the size
        "auth-resync-ack-unsolicited": frame(0x0033, struct.pack(">QII", 5, 0, 0)),
        "auth-barrier-from-secondary": frame(0x0028, struct.pack(">Q", 1)),
        "auth-barrier-ack-unsolicited": frame(0x0029, struct.pack(">QII", 7, 0, 0)),
        "auth-state-other-id": None,
    }
    if case not in sends and case not in after_auth:
        print(f"unknown case {case}", file=sys.stderr)
        return 2
    s = socket.create_connection((host, port), timeout=5)
    if case in after_auth:
        secret = open(sys.argv[7], "rb").read().rstrip(b"\n")
        size = int(sys.argv[8])
        try:
            authenticate(s, uuid, frm, to, secret, size)
        except (RuntimeError, OSError) as e:
            print(f"{case}: handshake failed: {e}")
            return 1
        msg = after_auth[case]
        if case == "auth-verify-past-end":
            msg = frame(0x0036, struct.pack(">QQII", 1, size, 4096, 0))
        elif case == "auth-state-other-id":
            msg = state(uuid, (frm + 2) % 8, size)
        sends[case] = [msg]
    for chunk in sends[case]:
        s.sendall(chunk)
    s.settimeout(12 if case == "truncated" else 5)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            got += d
    except socket.timeout:
        print(f"{case}: OPEN")
        return 1
    except ConnectionResetError:
        pass
    # find an ERROR frame among what came back
    note, off = "", 0
    while off + 16 <= len(got):
        magic, mtype, _, length = struct.unpack(">IHHI", got[off:off + 12])
        if magic != MAGIC:
            break
        if mtype == T_ERROR and off + 16 + length <= len(got):
            reason = struct.unpack(">I", got[off + 16:off + 20])[0]
            note = f" after ERROR({reason}): {got[off + 24:off + 16 + length].decode(errors='replace')}"
        off += 16 + length
    print(f"{case}: closed{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
