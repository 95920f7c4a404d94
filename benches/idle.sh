#!/usr/bin/env bash
# Idle cost of sonde beside node_exporter 1.5, in the same run: both start
# together with their default settings (sonde: 10 s interval, every collector
# it can load; node_exporter: default collectors, scraped every 10 s as a
# Prometheus would), then after DURATION seconds each one's resident memory
# (VmRSS, VmHWM) and CPU time (utime + stime) is read from /proc, with
# where they go: sonde's CPU per thread (each stage runs on a thread of its
# own) and each one's resident memory by mapping (the binary's pages, the
# allocator's heap and arenas, BPF maps and ring buffers mapped, the rest),
# its CPU per collector, and the load average over the run (a busy machine
# inflates both).
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

# As a service runs it: without a backtrace captured for every error.
env -u RUST_BACKTRACE "$sonde" run --config "$work/sonde.toml" 2> "$work/sonde.log" &
sonde_pid=$!
prometheus-node-exporter --web.listen-address="127.0.0.1:$ne_port" 2> "$work/ne.log" &
ne_pid=$!

ticks=$(getconf CLK_TCK)
# node_exporter only works when scraped: one client scrapes it every 10 s,
# as often as sonde collects, over one kept-alive connection, as Prometheus
# does. (A new curl each time made sonde's HTTP client metrics a new
# instance, HOST:PID, every round: ~40 new series a round to store.)
curl -s --rate 6/m "http://127.0.0.1:$ne_port/metrics?scrape=[1-$((duration / 10))]" > /dev/null || true
sleep 10

report() {
  local name=$1 pid=$2
  local cpu rss hwm
  cpu=$(awk -v t="$ticks" '{printf "%.2f", ($14 + $15) / t}' "/proc/$pid/stat")
  rss=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  printf '%-16s cpu_seconds=%-8s rss_mib=%-8s peak_rss_mib=%s\n' "$name" "$cpu" "$rss" "$hwm"
}
# Resident KiB per kind of mapping, from /proc/PID/smaps.
mappings() {
  local name=$1 pid=$2 binary
  binary=$(readlink "/proc/$pid/exe")
  awk -v bin="$binary" -v name="$name" '
    /^[0-9a-f]+-[0-9a-f]+ / { kind = ($6 == bin) ? "binary" : ($6 == "" || $6 == "[heap]") ? "heap+arenas" : ($6 ~ /bpf-map/) ? "bpf-maps" : ($6 ~ /^\[stack/) ? "stack" : "other" }
    /^Rss:/ { kib[kind] += $2 }
    END { printf "%-16s rss_mib_by_mapping:", name; for (k in kib) printf " %s=%.1f", k, kib[k] / 1024; printf "\n" }
  ' "/proc/$pid/smaps"
}

# sonde's CPU seconds per thread name (the threads of one name summed).
threads() {
  local pid=$1
  for task in /proc/"$pid"/task/*; do
    printf '%s %s\n' "$(tr ' ' '_' < "$task/comm")" "$(awk '{print $14 + $15}' "$task/stat")"
  done | awk -v t="$ticks" '{cpu[$1] += $2} END {for (n in cpu) if (cpu[n] > 0) printf "  %-16s %.2f\n", n, cpu[n] / t}' | sort -k2 -rn
}

echo "after ${duration}s idle, 10 s interval (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)):"
report sonde "$sonde_pid"
report node_exporter "$ne_pid"
mappings sonde "$sonde_pid"
mappings node_exporter "$ne_pid"
echo "sonde cpu_seconds per thread (threads that ended, such as loading, are in the total only):"
threads "$sonde_pid"
echo "sonde cpu_seconds per collector (sonde_collector_cpu_seconds_total, on the collect thread):"
curl -s "http://127.0.0.1:$sonde_port/metrics" \
  | awk -F'[{}"= ]+' '/^sonde_collector_cpu_seconds_total\{/ {printf "  %-16s %.3f\n", $3, $NF}' \
  | sort -k2 -rn
