#!/usr/bin/env bash
# HTTP RED under load: wrk against nginx on loopback (keep-alive, a
# 1000-byte static page), in alternating phases of DURATION seconds: sonde
# with no BPF program ("off"), the floor ("floor"), sonde with its http
# collector on ("on"). sonde runs in all three, its other BPF collectors
# off, so off -> on is the RED capture's whole cost. The floor is what any
# capture from syscall tracepoints pays before doing any work: with
# FLOOR=empty (the default) "off" plus an empty program on sys_exit
# (`sonde bench empty-exit`), which turns on the kernel's slow syscall-exit
# path for every task and runs at each exit, so floor -> on is what the
# http program and sonde's user space add to it; with FLOOR=sockets empty
# programs on the socket length tracepoints instead (sock_send_length,
# sock_recv_length: every send and receive on a socket, whatever the
# syscall), the floor of a capture run at socket I/O only; with
# FLOOR=syscalls the syscalls collector alone, as a default install runs
# it, and "on" is the syscalls and http collectors, so floor -> on is
# RED's cost on a default install; with FLOOR=syscall_capture the http
# collector on its syscall capture (what kernels before 6.3 get:
# SONDE_BPF_REFUSE=sock_send_length), so off -> floor is that capture's
# whole cost beside off -> on, the socket capture's; with
# FLOOR=server_only the http collector with wrk left out
# ([[collect.http.exclude]] exe_path = "*/wrk"), so off -> floor is what
# a server whose clients are other machines pays (only nginx's side is
# measured; wrk's connections are marked left out at their first request)
# beside off -> on, both ends measured; with FLOOR=base the build at
# SONDE_BASE with the collector on, so floor -> on is what this build
# changed, in the same run. SIDES=server leaves wrk out of "on" (and of
# FLOOR=base's phase): nginx's side alone. Per phase: wrk's requests per second
# and p99 latency, the requests sonde counted
# (http_server_request_duration_seconds_count) against those wrk
# completed, events the ring buffer had no room for
# (sonde_bpf_map_full_total of http_events: the requests sonde then
# misses), and the CPU of sonde, nginx's worker and wrk (utime + stime
# over the phase, as a share of one core). Medians of
# ROUNDS, and each round's change paired (every other round runs its
# phases backwards). PHASES=paired stops there. Then one more phase with
# the collector on and BPF run-time statistics on: each program's runs
# and nanoseconds per request wrk completed (every process's syscalls
# count, wrk's and nginx's both; run-time statistics add two clock reads a
# run); with SONDE_BASE=path, that build's phases alternate with this
# one's, ROUNDS each.
# PHASES=stats runs only those. PIN=1 pins nginx to CPU 0, wrk and sonde
# to CPU 1. PHASES=profile instead weighs, symbol by
# symbol, the CPU nginx's worker spends per request with the collector
# off and on (`perf record` of the worker).
# SERVER=go_tls serves with Debian's prometheus over HTTPS instead (a Go
# program: Go's crypto/tls, seen by sonde's Go TLS probes; wrk asks for
# /-/healthy), its process where nginx's worker is in the figures.
# Needs wrk and nginx (apt install wrk nginx-light; prometheus and openssl
# for SERVER=go_tls); run as root after `make build`: benches/http_wrk.sh
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-30}
CONNECTIONS=${CONNECTIONS:-16}
SERVER_PORT=${SERVER_PORT:-$((20000 + RANDOM % 20000))}
SERVER=${SERVER:-nginx}
. "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || { echo "wrk is missing: apt install wrk"; exit 1; }

FLOOR=${FLOOR:-empty}
# PIN=1: the server (nginx) on CPU 0, wrk and sonde on CPU 1, so sonde's threads never
# take nginx's core.
SERVER_CPU=() CLIENT_CPU=()
if [ -n "${PIN:-}" ]; then
  SERVER_CPU=(taskset -c 0) CLIENT_CPU=(taskset -c 1) SONDE_CPU=1
fi
config false false false > "$WORK/off.toml"
case "$FLOOR" in
  empty|sockets)
    cp "$WORK/off.toml" "$WORK/floor.toml"
    config false true false > "$WORK/on.toml" ;;
  syscall_capture)
    config false true false > "$WORK/floor.toml"
    cp "$WORK/floor.toml" "$WORK/on.toml" ;;
  server_only)
    config false true false > "$WORK/on.toml"
    { cat "$WORK/on.toml"; exclude_exe wrk; } > "$WORK/floor.toml" ;;
  syscalls)
    config true false false > "$WORK/floor.toml"
    config true true false > "$WORK/on.toml" ;;
  base)
    [ -x "${SONDE_BASE:-}" ] || { echo "FLOOR=base runs the build at SONDE_BASE: give its path"; exit 1; }
    config false true false > "$WORK/on.toml" ;;
  *) echo "FLOOR is empty, sockets, syscalls, syscall_capture, server_only or base, not $FLOOR"; exit 1 ;;
esac
config false true true > "$WORK/stats.toml"
case "${SIDES:-both}" in
  both) ;;
  server) for toml in on stats; do exclude_exe wrk >> "$WORK/$toml.toml"; done ;;
  *) echo "SIDES is both or server, not $SIDES"; exit 1 ;;
esac
if [ "$FLOOR" = base ]; then cp "$WORK/on.toml" "$WORK/floor.toml"; fi

case "$SERVER" in
nginx)
  nginx_site "$SERVER_PORT" 1000 on
  start_nginx "${SERVER_CPU[@]}"
  URL="http://127.0.0.1:$SERVER_PORT/page.html" ;;
go_tls)
  mkdir -p "$WORK/prometheus"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$WORK/prometheus/key.pem" -out "$WORK/prometheus/cert.pem" 2>/dev/null
  printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\n' \
    "$WORK/prometheus/cert.pem" "$WORK/prometheus/key.pem" > "$WORK/prometheus/web.yml"
  printf 'global:\n  scrape_interval: 1h\n' > "$WORK/prometheus/prometheus.yml"
  "${SERVER_CPU[@]}" prometheus --config.file="$WORK/prometheus/prometheus.yml" \
    --web.listen-address="127.0.0.1:$SERVER_PORT" --web.config.file="$WORK/prometheus/web.yml" \
    --storage.tsdb.path="$WORK/prometheus/data" 2> "$WORK/prometheus/log" &
  OTHER_PIDS+=($!)
  URL="https://127.0.0.1:$SERVER_PORT/-/healthy" ;;
*) echo "SERVER is nginx or go_tls, not $SERVER"; exit 1 ;;
esac
await_ok "$URL" -k

sonde_cpu() { pid_cpu "$SONDE_PID"; }
# The server's process that serves: nginx's one worker, or prometheus.
server_process() {
  if [ "$SERVER" = nginx ]; then pgrep -P "${OTHER_PIDS[0]}" | head -1; else echo "${OTHER_PIDS[0]}"; fi
}

# Starts `sonde bench empty-exit` (it stops itself DURATION + 60 s later)
# and returns once its program is attached; its pid in HOLDER_PID.
hold_empty_exit() {
  local sockets=
  [ "$FLOOR" = sockets ] && sockets=--sockets
  "$SONDE" bench empty-exit --seconds $((DURATION + 60)) $sockets > "$WORK/empty-exit.out" 2>&1 &
  HOLDER_PID=$!
  for _ in $(seq 100); do
    grep -qs '^attached' "$WORK/empty-exit.out" && return
    sleep 0.1
  done
  echo "the empty programs did not attach:"; cat "$WORK/empty-exit.out"; exit 1
}

# phase off|floor|on: one wrk run with sonde configured as $WORK/PHASE.toml
# (and the floor's empty program); prints
# "rps p99_ms wrk_requests sonde_requests ring_full sonde_cpu_share
# nginx_cpu_share wrk_cpu_share": which of nginx's worker and wrk is the
# bottleneck (a core busy all the phase) tells whose added CPU the
# throughput pays.
phase() {
  local cpu_before cpu_after out requests rps p99 metrics counted full worker nginx_before nginx_after
  HOLDER_PID=
  if [ "$1" = floor ] && [ "$FLOOR" = syscall_capture ]; then
    SONDE_BPF_REFUSE=sock_send_length start_sonde "$WORK/$1.toml"
  elif [ "$1" = floor ] && [ "$FLOOR" = base ]; then
    SONDE=$SONDE_BASE start_sonde "$WORK/$1.toml"
  else
    start_sonde "$WORK/$1.toml"
  fi
  case "$1/$FLOOR" in floor/empty|floor/sockets) hold_empty_exit ;; esac
  worker=$(server_process)
  cpu_before=$(sonde_cpu) nginx_before=$(pid_cpu "$worker")
  # `times` last prints its children's user and system time: wrk's.
  out=$("${CLIENT_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$URL"; times)
  cpu_after=$(sonde_cpu) nginx_after=$(pid_cpu "$worker")
  if [ -n "$HOLDER_PID" ]; then kill "$HOLDER_PID"; wait "$HOLDER_PID" 2>/dev/null || true; fi
  # wrk closes its connections at the end: each one's last request is then
  # done; two rounds later it is in /metrics.
  sleep 2.5
  metrics=$(curl -s "http://127.0.0.1:$PORT/metrics")
  counted=$(echo "$metrics" | metric_sum '^http_server_request_duration_seconds_count')
  full=$(echo "$metrics" | metric_sum '^sonde_bpf_map_full_total[{]map="http_events"[}]')
  stop_sonde
  requests=$(echo "$out" | awk '/requests in/ { print $1 }')
  rps=$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')
  p99=$(echo "$out" | awk '$1 == "99%" {
    v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
    print (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }')
  echo "$rps $p99 $requests $counted $full $(core_share "$cpu_before" "$cpu_after" "$DURATION")" \
    "$(core_share "$nginx_before" "$nginx_after" "$DURATION")" \
    "$(echo "$out" | tail -1 | awk -v d="$DURATION" '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.4f", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) / d }')"
}

# profile_phase PHASE: `perf record` of nginx's worker over the middle of
# a wrk run with sonde configured as $WORK/PHASE.toml; prints req/s and the
# worker's CPU share over the recording, and leaves its symbols' shares of
# the samples in $WORK/PHASE.symbols ("percent symbol" lines).
profile_phase() {
  local worker wrk_pid before after seconds=$((DURATION - 4))
  start_sonde "$WORK/$1.toml"
  worker=$(server_process)
  "${CLIENT_CPU[@]}" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$URL" > "$WORK/wrk.out" &
  wrk_pid=$!
  sleep 2
  before=$(pid_cpu "$worker")
  perf record -F 4999 -o "$WORK/$1.perf" -p "$worker" -- sleep "$seconds" >/dev/null 2>&1
  after=$(pid_cpu "$worker")
  wait "$wrk_pid"
  stop_sonde
  perf report -i "$WORK/$1.perf" --no-children --sort sym --stdio 2>/dev/null |
    awk '/^ +[0-9.]+%/ { share = $1; sub(/%/, "", share); $1 = ""; sub(/^ +/, ""); print share, $0 }' \
    > "$WORK/$1.symbols"
  echo "$(awk '/^Requests\/sec/ { print $2 }' "$WORK/wrk.out")" \
    "$(core_share "$before" "$after" "$seconds")"
}

# PHASES=profile: where nginx's added CPU per request goes, off against
# PROFILE (on, or floor: with FLOOR=server_only, wrk left out): each
# symbol's CPU ns per request (its share of the worker's samples, times the
# worker's CPU, over the requests), the 25 that grew most, and the totals.
if [ "${PHASES:-all}" = profile ]; then
  PROFILE=${PROFILE:-on}
  command -v perf >/dev/null || { echo "perf is missing: apt install linux-perf"; exit 1; }
  read -r off_rps off_cpu <<<"$(profile_phase off)"
  read -r on_rps on_cpu <<<"$(profile_phase "$PROFILE")"
  # ns_per_request PHASE CPU RPS: "ns symbol" lines of that phase.
  ns_per_request() {
    awk -v c="$2" -v r="$3" '{ share = $1; $1 = ""; sub(/^ +/, ""); printf "%.1f %s\n", share * c * 1e7 / r, $0 }' \
      "$WORK/$1.symbols"
  }
  ns_per_request off "$off_cpu" "$off_rps" > "$WORK/off.ns"
  ns_per_request "$PROFILE" "$on_cpu" "$on_rps" > "$WORK/$PROFILE.ns"
  total() { awk '{ t += $1 } END { printf "%.0f", t }' "$WORK/$1.ns"; }
  echo "== nginx's worker, CPU ns per request: off $(total off) ($off_rps req/s)," \
    "$PROFILE $(total "$PROFILE") ($on_rps req/s); the symbols that grew most"
  printf '%9s %9s %9s  %s\n' added off "$PROFILE" symbol
  awk '{ ns = $1; $1 = ""; sub(/^ +/, "") }
    FNR == NR { off[$0] = ns; next }
    { on[$0] = ns }
    END {
      for (s in on) printf "%9.1f %9.1f %9.1f  %s\n", on[s] - off[s], off[s], on[s], s
      for (s in off) if (!(s in on)) printf "%9.1f %9.1f %9.1f  %s\n", -off[s], off[s], 0, s
    }' "$WORK/off.ns" "$WORK/$PROFILE.ns" | sort -rn | awk 'NR <= 25'
  exit 0
fi

if [ "${PHASES:-all}" != stats ]; then
echo "== wrk -t1 -c$CONNECTIONS -d${DURATION}s against $URL ($SERVER), sonde off / floor ($FLOOR) / http collector on, $ROUNDS rounds"
printf "%-5s %10s %9s %12s %13s %9s %9s %9s %9s %9s\n" phase req/s p99_ms wrk_requests sonde_counted counted ring_full sonde_cpu nginx_cpu wrk_cpu
off=() floor=() on=()
for round in $(seq "$ROUNDS"); do
  # Every other round backwards: a drift over a round weighs on both ends.
  order="off floor on"
  [ $((round % 2)) = 0 ] && order="on floor off"
  for which in $order; do
    read -r rps p99 requests counted full cpu nginx_cpu wrk_cpu <<<"$(phase "$which")"
    share=$(awk -v c="$counted" -v r="$requests" 'BEGIN { printf "%.3f%%", c * 100 / r }')
    printf "%-5s %10s %9s %12s %13s %9s %9s %8.1f%% %8.1f%% %8.1f%%\n" "$which" "$rps" "$p99" "$requests" "$counted" "$share" "$full" \
      "$(awk -v c="$cpu" 'BEGIN { print c * 100 }')" "$(awk -v c="$nginx_cpu" 'BEGIN { print c * 100 }')" "$(awk -v c="$wrk_cpu" 'BEGIN { print c * 100 }')"
    case "$which" in
      off) off+=("$rps $p99") ;;
      floor) floor+=("$rps $p99") ;;
      on) on+=("$rps $p99") ;;
    esac
  done
done
med() { printf '%s\n' "${@:2}" | awk -v f="$1" '{ print $f }' | median; }
# compare LABEL FROM TO: the medians of two phases' req/s and p99.
compare() {
  local -n from=$2 to=$3
  awk -v label="$1" -v r0="$(med 1 "${from[@]}")" -v r1="$(med 1 "${to[@]}")" \
      -v p0="$(med 2 "${from[@]}")" -v p1="$(med 2 "${to[@]}")" 'BEGIN {
    printf "%s: req/s %.0f -> %.0f (%+.1f%%), p99 %.3f ms -> %.3f ms (%+.1f%%)\n",
      label, r0, r1, (r1 - r0) * 100 / r0, p0, p1, (p1 - p0) * 100 / p0 }'
}
compare medians off on
compare "floor ($FLOOR), off -> floor" off floor
compare "beyond the floor, floor -> on" floor on
# paired LABEL FROM TO: each round's change from one phase to the other
# (the phases of a round run back to back, so the machine's drift between
# rounds, which moves the "off" phases alone by 10 % here, mostly cancels):
# the median, the mean and the range over the rounds, req/s then p99.
paired() {
  local -n from=$2 to=$3
  local i changes
  changes=$(for i in "${!from[@]}"; do
    awk -v a="${from[$i]}" -v b="${to[$i]}" 'BEGIN {
      split(a, x, " "); split(b, y, " ");
      printf "%.2f %.2f\n", (y[1] - x[1]) * 100 / x[1], (y[2] - x[2]) * 100 / x[2] }'
  done)
  echo "$changes" | awk -v label="$1" -v rmed="$(echo "$changes" | awk '{ print $1 }' | median)" \
      -v pmed="$(echo "$changes" | awk '{ print $2 }' | median)" '
    NR == 1 { lo = $1; hi = $1 }
    { rs += $1; ps += $2; if ($1 < lo) lo = $1; if ($1 > hi) hi = $1 }
    END {
      printf "%s, paired by round: req/s median %+.1f%%, mean %+.1f%%, range %+.1f%% to %+.1f%%; p99 median %+.1f%%, mean %+.1f%%\n",
        label, rmed, rs / NR, lo, hi, pmed, ps / NR }'
}
paired "off -> on" off on
paired "off -> floor ($FLOOR)" off floor
fi
[ "${PHASES:-all}" = paired ] && exit 0

# run_time_phase LABEL SONDE: a phase with the collector and run-time
# statistics on. The capture's programs run for every process's syscall
# exits (the syscall capture) or socket sends and receives (the socket
# capture), and on this shared machine some are not wrk's nor nginx's:
# their runs are counted (perf's counters of the same tracepoints on the
# two processes), the others' are charged at the ns per run measured over
# the IDLE seconds before wrk, and the rest is the requests' cost. Prints
# req/s, then per request: runs on wrk and nginx, BPF ns of the capture;
# the ns per run of those, and of the others; then per request
# the CPU ns of sonde's ring reader (thread sonde-http) and of all of
# sonde (each thread's schedstat, exact where utime and stime count ticks).
IDLE=${IDLE:-5}
run_time_phase() {
  local requests runs0 secs0 runs1 secs1 runs2 secs2 worker perf_pid reader0 all0 events
  SONDE=$2 start_sonde "$WORK/stats.toml"
  events=raw_syscalls:sys_exit
  grep -q 'http capture: at socket I/O' "$WORK/sonde.log" &&
    events=sock:sock_send_length,sock:sock_recv_length
  worker=$(server_process)
  read -r runs0 secs0 <<<"$(http_capture_totals)"
  sleep "$IDLE"
  read -r runs1 secs1 <<<"$(http_capture_totals)"
  reader0=$(threads_ns sonde-http) all0=$(threads_ns '.*')
  perf stat -e "$events" -x, -o "$WORK/nginx.perf" -p "$worker" &
  perf_pid=$!
  requests=$(perf stat -e "$events" -x, -o "$WORK/wrk.perf" -- \
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$URL" |
    awk '/requests in/ { print $1 }')
  kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
  read -r runs2 secs2 <<<"$(http_capture_totals)"
  local reader=$(($(threads_ns sonde-http) - reader0)) all=$(($(threads_ns '.*') - all0))
  stop_sonde
  awk -v label="$1" -v n="$requests" -v d="$DURATION" -v reader="$reader" -v all="$all" \
      -v r0="$runs0" -v s0="$secs0" -v r1="$runs1" -v s1="$secs1" -v r2="$runs2" -v s2="$secs2" \
      -v own="$(cat "$WORK/nginx.perf" "$WORK/wrk.perf" | awk -F, '/sys_exit|sock_/ { n += $1 } END { print n }')" 'BEGIN {
    idle_ns = (r1 > r0) ? (s1 - s0) * 1e9 / (r1 - r0) : 0
    others = (r2 - r1) - own
    ns = (s2 - s1) * 1e9 - others * idle_ns
    printf "%-5s %9.0f %12.2f %12.1f %14.1f %14.1f %11.1f %11.1f\n", label, n / d, own / n, ns / n, ns / own, idle_ns, reader / n, all / n }'
}

# CPU ns of sonde's threads named to match the regex $1, from schedstat.
threads_ns() {
  local task name total=0
  for task in /proc/"$SONDE_PID"/task/*; do
    name=$(cat "$task/comm" 2>/dev/null) || continue
    [[ $name =~ ^$1$ ]] && total=$((total + $(cut -d' ' -f1 "$task/schedstat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# With SONDE_BASE (another build of sonde), its phases alternate with this
# build's, ROUNDS each: the kernel side's cost per request before and after.
echo "== BPF run time per request: ${DURATION}s phases, run-time statistics on"
printf '%-5s %9s %12s %12s %14s %14s %11s %11s\n' build req/s runs/req ns/request ns/run_http ns/run_others reader_ns/r sonde_ns/r
base=() this=()
for _ in $(seq "$ROUNDS"); do
  if [ -n "${SONDE_BASE:-}" ]; then
    line=$(run_time_phase base "$SONDE_BASE"); echo "$line"; base+=("$line")
  fi
  line=$(run_time_phase this "$SONDE"); echo "$line"; this+=("$line")
  # Without a build to compare with, one phase says it.
  [ -n "${SONDE_BASE:-}" ] || break
done
# stats_medians BUILD LINES...: the medians of those phases' BPF ns per
# request and per run of wrk's and nginx's syscalls, and the CPU ns per
# request of sonde's ring reader and of all of sonde.
stats_medians() {
  [ $# -gt 1 ] || return 0
  echo "median $1: $(printf '%s\n' "${@:2}" | awk '{ print $4 }' | median) ns per request," \
    "$(printf '%s\n' "${@:2}" | awk '{ print $5 }' | median) ns per run on wrk and nginx;" \
    "sonde's ring reader $(printf '%s\n' "${@:2}" | awk '{ print $7 }' | median) ns," \
    "all of sonde $(printf '%s\n' "${@:2}" | awk '{ print $8 }' | median) ns per request"
}
stats_medians base "${base[@]}"
stats_medians this "${this[@]}"
