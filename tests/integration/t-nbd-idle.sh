#!/usr/bin/env bash
# Clients that connect and never finish negotiating are dropped after the
# handshake deadline (URBD_NBD_HANDSHAKE_TIMEOUT_MS shortens it for the
# test), with a log line; clients that negotiate are unaffected.
. "$(dirname "$0")/lib.sh"
require_cmd qemu-io

export URBD_NBD_HANDSHAKE_TIMEOUT_MS=1500
start_urbd --default-volume demo:64M

# ten idle connections, one that stalls mid-option, one that sends flags only
"$PY" - "$URBD_PORT" >"$T/idle.out" <<'PY' &
import socket, struct, sys, time
port = int(sys.argv[1])
socks = []
for i in range(10):
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10); socks.append(s)
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10)
s.recv(18); s.sendall(struct.pack(">I", 1)); socks.append(s)
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(10)
s.recv(18); s.sendall(struct.pack(">I", 1) + b"IHAVEOPT" + struct.pack(">I", 7)); socks.append(s)
start = time.time()
closed = 0
for s in socks:
    try:
        while s.recv(4096):
            pass
        closed += 1
    except socket.timeout:
        pass
print(f"closed {closed} of {len(socks)} after {time.time() - start:.1f}s")
PY
idle_pid=$!
on_exit "kill $idle_pid"

# meanwhile a real client negotiates and works, even after the deadline
qio_ok "$(uri_tcp)" "write -P 0x5a 0 64k" "read -P 0x5a 0 64k"
sleep 2
qio_ok "$(uri_tcp)" "read -P 0x5a 0 64k"

wait "$idle_pid" || fail "idle client script failed"
cat "$T/idle.out"
grep -q "^closed 12 of 12" "$T/idle.out" || fail "not every stalled client was dropped: $(cat "$T/idle.out")"
n=$(log_count "closing: negotiation took too long")
[ "$n" -eq 12 ] || fail "expected 12 'negotiation took too long' log lines, got $n"
assert_alive
pass "12 stalled negotiations dropped and logged; a real client kept working"
