#!/usr/bin/env bash
# Idle cost of sonde beside node_exporter 1.5, in the same run: both start
# together with their default settings (sonde: 10 s interval, every collector
# it can load; node_exporter: default collectors, scraped every 10 s as a
# Prometheus would), then after DURATION seconds each one's resident memory
# (VmRSS, VmHWM) and CPU time (utime + stime) is read from /proc.
#
# usage: benches/idle.sh [SONDE_BINARY] [DURATION_SECONDS]   (default 600)
set -euo pipefail
sonde=${1:-target/x86_64-unknown-linux-gnu/release/sonde}
duration=${2:-600}
work=$(mktemp -d)
trap 'kill $sonde_pid $ne_pid 2>/dev/null || true; rm -rf "$work"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sonde_port=$(port)
ne_port=$(port)
printf '[server]\nlisten = "127.0.0.1:%s"\n[storage]\npath = "%s"\n' "$sonde_port" "$work/data" > "$work/sonde.toml"

"$sonde" run --config "$work/sonde.toml" 2> "$work/sonde.log" &
sonde_pid=$!
prometheus-node-exporter --web.listen-address="127.0.0.1:$ne_port" 2> "$work/ne.log" &
ne_pid=$!

ticks=$(getconf CLK_TCK)
end=$((SECONDS + duration))
while [ $SECONDS -lt $end ]; do
  # node_exporter only works when scraped; scrape it as often as sonde collects.
  curl -s -o /dev/null "http://127.0.0.1:$ne_port/metrics" || true
  sleep 10
done

report() {
  local name=$1 pid=$2
  local cpu rss hwm
  cpu=$(awk -v t="$ticks" '{printf "%.2f", ($14 + $15) / t}' "/proc/$pid/stat")
  rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  printf '%-16s cpu_seconds=%-8s rss_mib=%-8s peak_rss_mib=%s\n' "$name" "$cpu" "$rss" "$hwm"
}
echo "after ${duration}s idle, 10 s interval:"
report sonde "$sonde_pid"
report node_exporter "$ne_pid"
