#!/usr/bin/env bash
# Cost of the http collector for processes that serve no HTTP, on a
# syscall-heavy loop (dd with 1-byte blocks from /dev/zero to /dev/null: a
# read and a write per byte; the syscall capture runs at each, a `conns`
# miss, the read also a `servers` miss; the socket capture at none),
# medians of ROUNDS alternating rounds:
# 1. without sonde, and with sonde running only the http collector (the
#    syscall capture also puts every task on the kernel's slow
#    syscall-exit path);
# 2. sonde with the syscalls collector (which attaches to sys_exit too),
#    without and with the http collector: what http adds on its own;
# then ns per run of the capture's programs from the kernel's accounting;
# 2b. TCP that is not HTTP: TCP_MESSAGES 16-byte messages echoed over one
#    loopback connection (a send and a receive at each end, each a run of
#    the socket capture: a `conns` miss, a `not_http` hit), without sonde
#    and with the http collector;
# 3. HTTPS: TLS_REQUESTS requests of a Python http.client over one
#    keep-alive TLS connection to a Python ssl server, without sonde and
#    with the http collector (OpenSSL uprobes attached), medians of ROUNDS
#    alternating rounds; then the BPF run time per TLS request of the
#    OpenSSL probes and of the syscall-exit program.
# Usage (as root, after `make build`): benches/http.sh
set -euo pipefail

ROUNDS=${ROUNDS:-5}
LOOP_BYTES=${LOOP_BYTES:-2000000}
TLS_REQUESTS=${TLS_REQUESTS:-2000}
TLS_PORT=${TLS_PORT:-$((20000 + RANDOM % 20000))}
. "$(dirname "$0")/common.sh"

config false true false > "$WORK/http.toml"
config true false false > "$WORK/syscalls.toml"
config true true false > "$WORK/syscalls-http.toml"
config false true true > "$WORK/http-stats.toml"

# Nanoseconds the syscall-heavy loop takes.
syscall_loop() {
  elapsed_ns dd if=/dev/zero of=/dev/null bs=1 count="$LOOP_BYTES"
}

# timed CONFIG: the loop's ($LOOP, default syscall_loop) time with sonde
# running CONFIG, or without sonde when CONFIG is "none".
timed() {
  local loop=${LOOP:-syscall_loop}
  [ "$1" = none ] && { $loop; return; }
  start_sonde "$WORK/$1.toml"
  $loop
  stop_sonde
}

# Nanoseconds TLS_REQUESTS requests over one keep-alive TLS connection take.
tls_loop() {
  elapsed_ns python3 "$WORK/client.py" "$TLS_PORT" "$TLS_REQUESTS"
}

# compare WHAT BASE CONFIG [LOOP PER UNIT]: medians of ROUNDS alternating
# rounds of LOOP (default syscall_loop, per syscall).
compare() {
  local base=() with=() loop=${4:-syscall_loop} per=${5:-syscall}
  local units=${6:-$(( 2 * LOOP_BYTES ))}
  for _ in $(seq "$ROUNDS"); do
    base+=("$(LOOP=$loop timed "$2")")
    with+=("$(LOOP=$loop timed "$3")")
  done
  awk -v what="$1" -v off="$(printf '%s\n' "${base[@]}" | median)" \
    -v on="$(printf '%s\n' "${with[@]}" | median)" -v units="$units" -v per="$per" 'BEGIN {
    printf "%-34s %.3f s -> %.3f s   %+.1f%%, %.1f ns per %s\n",
      what, off / 1e9, on / 1e9, (on - off) * 100 / off, (on - off) / units, per }'
}

echo "== dd bs=1 count=$LOOP_BYTES, medians of $ROUNDS alternating rounds"
compare "no sonde -> http only:" none http
compare "syscalls -> syscalls + http:" syscalls syscalls-http

# The http capture's runs and ns per run so far.
capture_runs() {
  local runs secs
  read -r runs secs <<<"$(http_capture_totals)"
  awk -v r="$runs" -v s="$secs" 'BEGIN { printf "runs: %d   ns/run: %.1f\n", r, r ? s * 1e9 / r : 0 }'
}

echo "== ns per run of the capture over the same loop (run-time statistics on)"
start_sonde "$WORK/http-stats.toml"
syscall_loop >/dev/null
sleep 2
capture_runs
stop_sonde

TCP_MESSAGES=${TCP_MESSAGES:-100000}
TCP_PORT=${TCP_PORT:-$((20000 + RANDOM % 20000))}
cat > "$WORK/echo.py" <<'PY'
import socket, sys
port, messages = int(sys.argv[1]), int(sys.argv[2])
server = socket.create_server(("127.0.0.1", port))
client = socket.create_connection(("127.0.0.1", port))
peer, _ = server.accept()
for s in (client, peer):
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
message = b"x" * 16
for _ in range(messages):
    client.sendall(message)
    peer.sendall(peer.recv(16))
    client.recv(16)
PY
# Nanoseconds TCP_MESSAGES echoes take.
tcp_loop() {
  elapsed_ns python3 "$WORK/echo.py" "$((TCP_PORT + RANDOM % 1000))" "$TCP_MESSAGES"
}
echo "== TCP, not HTTP: $TCP_MESSAGES 16-byte echoes over one loopback connection, medians of $ROUNDS alternating rounds"
compare "no sonde -> http only:" none http tcp_loop "socket send or receive" "$(( 4 * TCP_MESSAGES ))"
start_sonde "$WORK/http-stats.toml"
tcp_loop >/dev/null
sleep 2
capture_runs
stop_sonde

echo "== HTTPS: $TLS_REQUESTS requests over one keep-alive TLS connection, medians of $ROUNDS alternating rounds"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat > "$WORK/server.py" <<'PY'
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        # One write: a head and a body written apart wait on the client's
        # delayed ACK (Nagle), 40 ms a request.
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
PY
cat > "$WORK/client.py" <<'PY'
import http.client, ssl, sys
conn = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]),
                                   context=ssl._create_unverified_context())
for _ in range(int(sys.argv[2])):
    conn.request("GET", "/")
    conn.getresponse().read()
PY
python3 "$WORK/server.py" "$TLS_PORT" "$WORK/cert.pem" "$WORK/key.pem" &
OTHER_PIDS+=($!)
for _ in $(seq 50); do
  python3 "$WORK/client.py" "$TLS_PORT" 1 2>/dev/null && break
  sleep 0.1
done
compare "no sonde -> http only:" none http tls_loop "TLS request" "$TLS_REQUESTS"

echo "== BPF run time per TLS request (run-time statistics on)"
start_sonde "$WORK/http-stats.toml"
tls_loop >/dev/null
sleep 2
curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$TLS_REQUESTS" '
  /^sonde_bpf_program_run_seconds_total.*ssl_/ { ssl += $NF }
  /^sonde_bpf_program_runs_total.*ssl_/ { ssl_runs += $NF }
  /^sonde_bpf_program_run_seconds_total\{.*program="(btf|raw)_s/ { capture += $NF }
  END { printf "OpenSSL probes: %.1f runs, %.0f ns per request (the whole run: %.0f ns of the capture per request, every process)\n",
    ssl_runs / n, ssl * 1e9 / n, capture * 1e9 / n }'
stop_sonde
