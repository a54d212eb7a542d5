#!/usr/bin/python3
"""TCP round-trip measurement for the cluster tests.

    tcpping.py server HOST PORT            echo server (until SIGTERM)
    tcpping.py client HOST PORT [COUNT]    COUNT ping-pongs of 64 bytes on one
                                           connection after 3 warm-ups; prints
                                           "median_ms min_ms max_ms"
    tcpping.py probe HOST                  exit 0 if HOST answers TCP at all (a
                                           connection or a refusal within 1 s)
A client that cannot connect within 5 s exits 1. (No ICMP: ping may not
be installed, and TCP is what the daemons speak.)"""
import socket
import socketserver
import statistics
import sys
import time

MSG = 64


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = self.request.recv(4096)
            if not data:
                return
            self.request.sendall(data)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise ConnectionError("closed")
        buf += d
    return buf


def client(host, port, count):
    s = socket.create_connection((host, port), timeout=5)
    s.settimeout(30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts = []
    for i in range(count + 3):
        t = time.monotonic()
        s.sendall(bytes([i & 0xff]) * MSG)
        recv_exact(s, MSG)
        if i >= 3:
            rtts.append((time.monotonic() - t) * 1000)
    s.close()
    print(f"{statistics.median(rtts):.3f} {min(rtts):.3f} {max(rtts):.3f}")


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "server":
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        socketserver.ThreadingTCPServer.daemon_threads = True
        with socketserver.ThreadingTCPServer((sys.argv[2], int(sys.argv[3])), Echo) as srv:
            print("ready", flush=True)
            srv.serve_forever()
    elif len(sys.argv) >= 4 and sys.argv[1] == "client":
        try:
            client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 20)
        except OSError as e:
            print(f"tcpping: {e}", file=sys.stderr)
            sys.exit(1)
    elif len(sys.argv) >= 3 and sys.argv[1] == "probe":
        try:
            socket.create_connection((sys.argv[2], 9), timeout=1).close()
        except ConnectionRefusedError:
            pass
        except OSError:
            sys.exit(1)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
