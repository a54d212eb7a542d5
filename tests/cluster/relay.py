#!/usr/bin/python3
"""A TCP relay that delays each direction by a fixed time: the harness's
stand-in for `tc netem` on kernels without sch_netem.

    relay.py --listen HOST:PORT --target HOST:PORT --delay-ms MS [--port-file F]

Every byte received on one side is sent to the other side MS milliseconds
after it arrived, in order (a one-way delay: a request/response pays
2 x MS). Port 0 picks a free port; --port-file receives the port once
listening. Threads, not asyncio: asyncio's epoll timeouts round up to
whole milliseconds, too coarse for the 0.25 ms one-way delays the
benchmarks inject; time.sleep() is good to ~0.1 ms. Memory is bounded:
each direction holds at most 256 chunks of 64 KiB, then stops reading
(TCP backpressure). Runs until SIGTERM (the default action: nothing to
flush)."""
import argparse
import os
import queue
import socket
import sys
import threading
import time

CHUNK = 64 * 1024
QUEUE = 256


def hostport(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


def direction(src, dst, delay, done):
    q = queue.Queue(QUEUE)

    def receive():
        while True:
            try:
                data = src.recv(CHUNK)
            except OSError:
                data = b""
            q.put((time.monotonic() + delay, data))
            if not data:
                return

    def send():
        try:
            while True:
                due, data = q.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            done.release()

    threading.Thread(target=receive, daemon=True).start()
    threading.Thread(target=send, daemon=True).start()


def handle(client, target, delay):
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError as e:
        print(f"relay: connect {target}: {e}", file=sys.stderr, flush=True)
        client.close()
        return
    upstream.settimeout(None)
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    done = threading.Semaphore(0)
    direction(client, upstream, delay, done)
    direction(upstream, client, delay, done)
    done.acquire()
    done.acquire()
    client.close()
    upstream.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    if not 0 <= a.delay_ms <= 60000:
        ap.error("--delay-ms must be within 0..60000")
    target = hostport(a.target)
    delay = a.delay_ms / 1000.0
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(hostport(a.listen))
    srv.listen(64)
    port = srv.getsockname()[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.rename(a.port_file + ".tmp", a.port_file)
    print(f"relay: {a.listen} (port {port}) -> {a.target}, +{a.delay_ms} ms each way",
          flush=True)
    while True:
        client, _ = srv.accept()
        threading.Thread(target=handle, args=(client, target, delay), daemon=True).start()


if __name__ == "__main__":
    main()
