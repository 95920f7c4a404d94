#!/usr/bin/env bash
# HTTP/2 RED under load: h2load against nginx serving HTTP/2 in cleartext
# on loopback (a PAGE-byte static page, sendfile off: with it, its HEADERS
# and its body are two writes and Nagle holds the second for the client's
# delayed ACK, 40 ms a request; CONNECTIONS connections of STREAMS
# concurrent streams each, one client thread), sonde's http collector off,
# on with h2load left out ("server": [[collect.http.exclude]] exe_path,
# what a server whose clients are other machines pays) and on for both
# ends, in paired rounds of DURATION seconds (every other round runs its
# phases backwards), its other BPF collectors off. Per phase: h2load's
# requests per second, the requests sonde counted for nginx
# (http_server_request_duration_seconds_count) against those h2load
# completed, with both ends measured the calls it counted for h2load
# (http_client_request_duration_seconds_count) against the same, the
# HTTP/2 connections sonde gave up
# (sonde_http_h2_connections_lost_total: the program could not follow
# their frames), events the ring had no room for, and the CPU of sonde and
# of nginx's worker (share of one core).
# PHASES=stats instead runs one phase with run-time statistics on (h2load
# left out) and prints each BPF program's runs and ns per run, and the BPF
# ns per request h2load completed; with SONDE_BASE=path, that build's
# phase first.
# Needs h2load and nginx (apt install nghttp2-client nginx-light); run as
# root after `make build`: BENCH_DIR=/tmp benches/http2_h2load.sh
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-4}
STREAMS=${STREAMS:-1}
PAGE=${PAGE:-1000}
SERVER_PORT=${SERVER_PORT:-$((20000 + RANDOM % 20000))}
. "$(dirname "$0")/common.sh"
command -v h2load >/dev/null || { echo "h2load is missing: apt install nghttp2-client"; exit 1; }

config false false false > "$WORK/off.toml"
{ config false true true; exclude_exe h2load; } > "$WORK/stats.toml"
config false true false > "$WORK/on.toml"
{ cat "$WORK/on.toml"; exclude_exe h2load; } > "$WORK/server.toml"
nginx_site "$SERVER_PORT" "$PAGE" off http2
start_nginx
URL="http://127.0.0.1:$SERVER_PORT/page.html"
await_ok "$URL" --http2-prior-knowledge


# phase NAME: one h2load run with sonde configured as $WORK/NAME.toml;
# prints "rps completed counted called lost ring_full sonde_cpu nginx_cpu".
phase() {
  local worker out metrics sonde_before sonde_after nginx_before nginx_after
  start_sonde "$WORK/$1.toml"
  worker=$(pgrep -P "${OTHER_PIDS[0]}" | head -1)
  sonde_before=$(pid_cpu "$SONDE_PID") nginx_before=$(pid_cpu "$worker")
  out=$(h2load -t1 -c"$CONNECTIONS" -m"$STREAMS" -D"$DURATION" "$URL")
  sonde_after=$(pid_cpu "$SONDE_PID") nginx_after=$(pid_cpu "$worker")
  # h2load closes its connections at the end; two rounds later all is in /metrics.
  sleep 2.5
  metrics=$(curl -s "http://127.0.0.1:$PORT/metrics")
  stop_sonde
  echo "$(echo "$out" | awk '/^finished in/ { print $4 }')" \
    "$(echo "$out" | awk '/^requests:/ { print $8 }')" \
    "$(echo "$metrics" | metric_sum "^http_server_request_duration_seconds_count.*server_port=\"$SERVER_PORT\"")" \
    "$(echo "$metrics" | metric_sum "^http_client_request_duration_seconds_count.*server_port=\"$SERVER_PORT\"")" \
    "$(echo "$metrics" | metric_sum '^sonde_http_h2_connections_lost_total')" \
    "$(echo "$metrics" | metric_sum '^sonde_bpf_map_full_total[{]map="http_events"[}]')" \
    "$(core_share "$sonde_before" "$sonde_after" "$DURATION")" \
    "$(core_share "$nginx_before" "$nginx_after" "$DURATION")"
}

if [ "${PHASES:-paired}" = stats ]; then
  for build in ${SONDE_BASE:+"$SONDE_BASE"} "$SONDE"; do
    SONDE=$build start_sonde "$WORK/stats.toml"
    out=$(h2load -t1 -c"$CONNECTIONS" -m"$STREAMS" -D"$DURATION" "$URL")
    requests=$(echo "$out" | awk '/^requests:/ { print $8 }')
    echo "== $build: h2load -c$CONNECTIONS -m$STREAMS -D$DURATION, h2load left out, run-time statistics on: $requests requests"
    program_costs
    secs=$(http_capture_totals | awk '{ print $2 }')
    awk -v s="$secs" -v n="$requests" 'BEGIN { printf "BPF ns per request (socket programs): %.0f\n", s * 1e9 / n }'
    stop_sonde
  done
  exit 0
fi

echo "== h2load -c$CONNECTIONS -m$STREAMS -D$DURATION against $URL ($PAGE bytes), sonde's http collector off / server (h2load left out) / on, $ROUNDS paired rounds"
printf '%-6s %-6s %10s %10s %10s %9s %9s %5s %5s %6s %6s\n' round phase req/s completed counted counted% called% lost full sonde nginx
change() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", 100 * (b - a) / a }'; }
server_changes=() on_changes=()
# percent COUNT: COUNT as a share of the phase's completed requests.
percent() { awk -v c="$1" -v n="$completed" 'BEGIN { printf "%.3f", 100 * c / n }'; }
for round in $(seq "$ROUNDS"); do
  order="off server on"
  [ $((round % 2)) -eq 0 ] && order="on server off"
  declare -A rps=()
  for name in $order; do
    read -r r completed counted called lost full sonde nginx_share < <(phase "$name")
    rps[$name]=$r
    share=- shown=- called_share=-
    if [ "$name" != off ]; then
      shown=$counted
      share=$(percent "$counted")
    fi
    [ "$name" = on ] && called_share=$(percent "$called")
    printf '%-6s %-6s %10s %10s %10s %9s %9s %5s %5s %6s %6s\n' "$round" "$name" "$r" "$completed" \
      "$shown" "$share" "$called_share" "$lost" "$full" "$sonde" "$nginx_share"
  done
  server_changes+=("$(change "${rps[off]}" "${rps[server]}")")
  on_changes+=("$(change "${rps[off]}" "${rps[on]}")")
  unset rps
done
echo "req/s change off -> server, per round: ${server_changes[*]} %; median $(printf '%s\n' "${server_changes[@]}" | median) %"
echo "req/s change off -> on, per round: ${on_changes[*]} %; median $(printf '%s\n' "${on_changes[@]}" | median) %"
