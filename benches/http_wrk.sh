#!/usr/bin/env bash
# HTTP RED under load: wrk against nginx on loopback (keep-alive, a
# 1000-byte static page), in alternating phases of DURATION seconds with
# sonde's http collector off and on (sonde runs in both, its other BPF
# collectors off, so the difference is the RED capture alone). Per phase:
# wrk's requests per second and p99 latency, the requests sonde counted
# (http_server_request_duration_seconds_count) against those wrk completed,
# events the ring buffer had no room for (sonde_bpf_map_full_total of
# http_events: the requests sonde then misses), and sonde's CPU (utime +
# stime over the phase). Medians of ROUNDS. Then one more phase with the
# collector on and BPF run-time statistics on: each program's runs and
# nanoseconds per request wrk completed (every process's syscalls count,
# wrk's and nginx's both; run-time statistics add two clock reads a run);
# with SONDE_BASE=path, that build's phases alternate with this one's.
# PHASES=stats runs only those.
# Needs wrk and nginx (apt install wrk nginx-light); run as root after
# `make build`: benches/http_wrk.sh
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-16}
NGINX_PORT=${NGINX_PORT:-$((20000 + RANDOM % 20000))}
. "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || { echo "wrk is missing: apt install wrk"; exit 1; }

config false false false > "$WORK/off.toml"
config false true false > "$WORK/on.toml"
config false true true > "$WORK/stats.toml"

mkdir -p "$WORK/nginx/www" "$WORK/nginx/logs" "$WORK/nginx/tmp"
head -c 1000 /dev/zero | tr '\0' x > "$WORK/nginx/www/page.html"
cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx/tmp;
  proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp;
  scgi_temp_path $WORK/nginx/tmp;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/nginx/www; }
}
CONF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log" &
OTHER_PIDS+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$NGINX_PORT/page.html" >/dev/null && break
  sleep 0.1
done

# CPU seconds sonde has used (utime + stime).
sonde_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$SONDE_PID/stat"
}

# phase off|on: one wrk run with sonde's http collector off or on; prints
# "rps p99_ms wrk_requests sonde_requests ring_full sonde_cpu_share".
phase() {
  start_sonde "$WORK/$1.toml"
  local cpu_before cpu_after out requests rps p99 metrics counted full
  cpu_before=$(sonde_cpu)
  out=$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$NGINX_PORT/page.html")
  cpu_after=$(sonde_cpu)
  # wrk closes its connections at the end: each one's last request is then
  # done; two rounds later it is in /metrics.
  sleep 2.5
  metrics=$(curl -s "http://127.0.0.1:$PORT/metrics")
  counted=$(echo "$metrics" |
    awk '/^http_server_request_duration_seconds_count/ { n += $NF } END { printf "%d", n }')
  full=$(echo "$metrics" |
    awk '/^sonde_bpf_map_full_total\{map="http_events"\}/ { n += $NF } END { printf "%d", n }')
  stop_sonde
  requests=$(echo "$out" | awk '/requests in/ { print $1 }')
  rps=$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')
  p99=$(echo "$out" | awk '$1 == "99%" {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    print (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }')
  echo "$rps $p99 $requests $counted $full $(awk -v a="$cpu_before" -v b="$cpu_after" -v d="$DURATION" 'BEGIN { printf "%.4f", (b - a) / d }')"
}

if [ "${PHASES:-all}" = all ]; then
echo "== wrk -t1 -c$CONNECTIONS -d${DURATION}s against nginx (1 worker), sonde's http collector off/on, $ROUNDS rounds"
printf "%-5s %10s %9s %12s %13s %9s %9s %9s\n" phase req/s p99_ms wrk_requests sonde_counted counted ring_full sonde_cpu
off=() on=()
for _ in $(seq "$ROUNDS"); do
  for which in off on; do
    read -r rps p99 requests counted full cpu <<<"$(phase "$which")"
    share=$(awk -v c="$counted" -v r="$requests" 'BEGIN { printf "%.3f%%", c * 100 / r }')
    printf "%-5s %10s %9s %12s %13s %9s %9s %8.1f%%\n" "$which" "$rps" "$p99" "$requests" "$counted" "$share" "$full" "$(awk -v c="$cpu" 'BEGIN { print c * 100 }')"
    if [ "$which" = off ]; then off+=("$rps $p99"); else on+=("$rps $p99"); fi
  done
done
med() { printf '%s\n' "${@:2}" | awk -v f="$1" '{ print $f }' | median; }
awk -v r0="$(med 1 "${off[@]}")" -v r1="$(med 1 "${on[@]}")" \
    -v p0="$(med 2 "${off[@]}")" -v p1="$(med 2 "${on[@]}")" 'BEGIN {
  printf "medians: req/s %.0f -> %.0f (%+.1f%%), p99 %.3f ms -> %.3f ms (%+.1f%%)\n",
    r0, r1, (r1 - r0) * 100 / r0, p0, p1, (p1 - p0) * 100 / p0 }'
fi

# The sys_exit program's runs and run seconds so far, from the running sonde.
exit_program_totals() {
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '
    /^sonde_bpf_program_runs_total.*sys_exit/ { runs = $NF }
    /^sonde_bpf_program_run_seconds_total.*sys_exit/ { secs = $NF }
    END { printf "%d %.9f", runs, secs }'
}

# run_time_phase LABEL SONDE: a phase with the collector and run-time
# statistics on. The sys_exit program runs for every process's syscalls,
# and on this shared machine most are not wrk's nor nginx's: their runs
# are counted (perf's raw_syscalls:sys_exit counters on the two
# processes), the others' are charged at the ns per run measured over the
# IDLE seconds before wrk, and the rest is the requests' cost. Prints
# req/s, then per request: syscalls of wrk and nginx, BPF ns of sys_exit;
# the ns per run of those syscalls, and of the others.
IDLE=${IDLE:-5}
run_time_phase() {
  local requests runs0 secs0 runs1 secs1 runs2 secs2 worker perf_pid
  SONDE=$2 start_sonde "$WORK/stats.toml"
  worker=$(pgrep -P "${OTHER_PIDS[0]}" | head -1)
  read -r runs0 secs0 <<<"$(exit_program_totals)"
  sleep "$IDLE"
  read -r runs1 secs1 <<<"$(exit_program_totals)"
  perf stat -e raw_syscalls:sys_exit -x, -o "$WORK/nginx.perf" -p "$worker" &
  perf_pid=$!
  requests=$(perf stat -e raw_syscalls:sys_exit -x, -o "$WORK/wrk.perf" -- \
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$NGINX_PORT/page.html" |
    awk '/requests in/ { print $1 }')
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
  read -r runs2 secs2 <<<"$(exit_program_totals)"
  stop_sonde
  awk -v label="$1" -v n="$requests" -v d="$DURATION" \
      -v r0="$runs0" -v s0="$secs0" -v r1="$runs1" -v s1="$secs1" -v r2="$runs2" -v s2="$secs2" \
      -v own="$(cat "$WORK/nginx.perf" "$WORK/wrk.perf" | awk -F, '/sys_exit/ { n += $1 } END { print n }')" 'BEGIN {
    idle_ns = (r1 > r0) ? (s1 - s0) * 1e9 / (r1 - r0) : 0
    others = (r2 - r1) - own
    ns = (s2 - s1) * 1e9 - others * idle_ns
    printf "%-5s %9.0f %12.2f %12.1f %14.1f %14.1f\n", label, n / d, own / n, ns / n, ns / own, idle_ns }'
}

# With SONDE_BASE (another build of sonde), its phases alternate with this
# build's, ROUNDS each: the kernel side's cost per request before and after.
echo "== BPF run time per request: ${DURATION}s phases, run-time statistics on"
printf '%-5s %9s %12s %12s %14s %14s\n' build req/s syscalls/req ns/request ns/run_http ns/run_others
if [ -n "${SONDE_BASE:-}" ]; then
  for _ in $(seq "$ROUNDS"); do
    run_time_phase base "$SONDE_BASE"
    run_time_phase this "$SONDE"
  done
else
  run_time_phase this "$SONDE"
fi
