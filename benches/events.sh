#!/usr/bin/env bash
# BPF cost of the event stream (bpf/events.bpf.c), from the kernel's own
# accounting (sonde_bpf_program_run_seconds_total / _runs_total): sonde
# with only the events and process collectors on and a watched path, then workloads
# that drive each program: EXECS spawns of /bin/true (exec, exit),
# CONNECTS loopback TCP connections to a listener (connect, accept, and
# their state changes), OPENS opens for writing under the watched path and
# as many elsewhere (the open program's in-kernel filter), and a signal
# to each of 200 sleeping children (SIGTERM from timeout). Prints runs and ns per run.
# Usage (as root, after `make build`): benches/events.sh
set -euo pipefail

EXECS=${EXECS:-2000}
CONNECTS=${CONNECTS:-2000}
OPENS=${OPENS:-2000}
. "$(dirname "$0")/common.sh"

mkdir -p "$WORK/watched" "$WORK/elsewhere"
config false false true > "$WORK/sonde.toml"
printf 'event_write_paths = ["%s/watched/"]\n' "$WORK" >> "$WORK/sonde.toml"
# The process collector too: its exec and exit programs (counters only)
# run on the same spawns, the figure the event programs are compared with.
sed -i 's/^events = false$/events = true/; s/^process = false$/process = true/' "$WORK/sonde.toml"

start_sonde
grep "bpf collector events" "$WORK/sonde.log" | sed 's/.*bpf collector/bpf collector/'
for _ in $(seq "$EXECS"); do /bin/true; done
python3 - "$CONNECTS" <<'PY'
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(128)
for _ in range(int(sys.argv[1])):
    client = socket.create_connection(server.getsockname())
    conn, _ = server.accept()
    conn.close()
    client.close()
PY
python3 - "$OPENS" "$WORK" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    for where in ("watched", "elsewhere"):
        with open(f"{sys.argv[2]}/{where}/f{i % 10}", "w") as f:
            pass
PY
for _ in $(seq 200); do timeout -s TERM 0.01 sleep 10 || true; done
sleep 2
program_costs
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^sonde_events_total|^sonde_bpf_map_full_total\{map="event'
stop_sonde
