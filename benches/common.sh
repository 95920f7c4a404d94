# What sonde's shell benchmarks share (sourced, not run): where sonde is, a
# work directory removed at exit (with the processes a bench started, in
# OTHER_PIDS), a sonde config with only the named BPF collectors, starting
# and stopping sonde, and a median. SONDE, BENCH_DIR and PORT may be given.

SONDE=${SONDE:-${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/sonde}
WORK=$(mktemp -d "${BENCH_DIR:-$PWD}/sonde-bench.XXXXXX")
# mktemp makes it 0700: a server a bench starts as root serves from it
# through workers that drop to nobody (nginx), which must read it.
chmod 755 "$WORK"
PORT=${PORT:-$((20000 + RANDOM % 20000))}
SONDE_PID=
# Processes a bench starts besides sonde, stopped at exit.
OTHER_PIDS=()
cleanup() {
  [ -n "$SONDE_PID" ] && kill "$SONDE_PID" 2>/dev/null && wait "$SONDE_PID" 2>/dev/null
  for pid in "${OTHER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# config SYSCALLS HTTP RUN_TIME_STATS
config() {
  cat <<TOML
[server]
listen = "127.0.0.1:$PORT"
[storage]
path = "$WORK/data"
[collect]
interval = "1s"
[collect.bpf]
syscalls = $1
block = false
net = false
process = false
sched = false
events = false
http = $2
run_time_stats = $3
TOML
}

# exclude_exe NAME: the config lines that leave the executable NAME's
# connections out of the http collector (a load generator's side).
exclude_exe() { printf '[[collect.http.exclude]]\nexe_path = "*/%s"\n' "$1"; }

# start_sonde [CONFIG]: $WORK/sonde.toml by default; on CPU $SONDE_CPU
# alone when that is given.
start_sonde() {
  ${SONDE_CPU:+taskset -c "$SONDE_CPU"} "$SONDE" run --config "${1:-$WORK/sonde.toml}" 2> "$WORK/sonde.log" &
  SONDE_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/-/ready" >/dev/null && return
    sleep 0.1
  done
  echo "sonde did not start:"; cat "$WORK/sonde.log"; exit 1
}
stop_sonde() { kill "$SONDE_PID"; wait "$SONDE_PID" 2>/dev/null || true; SONDE_PID=; }

# CPU seconds process $1 has used (utime + stime).
pid_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"
}
# core_share BEFORE AFTER SECONDS: CPU seconds used between two readings, as a
# share of one core over SECONDS.
core_share() { awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { printf "%.4f", (b - a) / d }'; }

# metric_sum REGEX: the sum of the /metrics lines (on stdin) REGEX matches.
metric_sum() { awk -v re="$1" '$0 ~ re { n += $NF } END { printf "%d", n }'; }

# The middle value; of an even count, the mean of the two middle ones.
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# elapsed_ns COMMAND...: the nanoseconds COMMAND takes (its output dropped).
elapsed_ns() {
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s%N)
  echo $(( end - start ))
}

# http_capture_totals: the http capture's runs and run seconds so far (all
# its programs but OpenSSL's probes), from the running sonde.
http_capture_totals() {
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '
    /^sonde_bpf_program_run(s|_seconds)_total\{.*program="(btf|raw)_s/ {
      if ($1 ~ /^sonde_bpf_program_runs_total/) runs += $NF; else secs += $NF }
    END { printf "%d %.9f", runs, secs }'
}

# program_costs: runs and ns per run of every BPF program that ran, from
# the running sonde's run-time statistics.
program_costs() {
  printf '%-22s %12s %10s\n' program runs ns/run
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '
    /^sonde_bpf_program_run_seconds_total/ { match($0, /program="[^"]*"/); p = substr($0, RSTART+9, RLENGTH-10); secs[p] = $NF }
    /^sonde_bpf_program_runs_total/ { match($0, /program="[^"]*"/); p = substr($0, RSTART+9, RLENGTH-10); runs[p] = $NF }
    END { for (p in runs) if (runs[p] > 0) printf "%-22s %12d %10.1f\n", p, runs[p], secs[p] * 1e9 / runs[p] }' | sort
}

# await_ok URL [CURL_OPTIONS...]: waits (10 s at most) for URL to answer
# 2xx; exits the bench when it never does (a page the server cannot read
# would measure its error page instead).
await_ok() {
  local url=$1
  shift
  for _ in $(seq 100); do
    curl -sf "$@" "$url" >/dev/null && return
    sleep 0.1
  done
  echo "$url never answered 2xx:"; curl -s -o /dev/null -w '%{http_code}\n' "$@" "$url"; exit 1
}

# nginx_site PORT PAGE_BYTES SENDFILE [LISTEN_OPTIONS]: writes
# $WORK/nginx/nginx.conf, one worker serving a PAGE_BYTES static page as
# /page.html on 127.0.0.1:PORT (keep-alive without a request limit), with
# sendfile on or off and LISTEN_OPTIONS (`http2`) on its listen line. Run
# it with start_nginx.
nginx_site() {
  mkdir -p "$WORK/nginx/www" "$WORK/nginx/logs" "$WORK/nginx/tmp"
  head -c "$2" /dev/zero | tr '\0' x > "$WORK/nginx/www/page.html"
  cat > "$WORK/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 256; }
http {
  access_log off;
  sendfile $3;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx/tmp;
  proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp;
  scgi_temp_path $WORK/nginx/tmp;
  server { listen 127.0.0.1:$1 ${4:-}; root $WORK/nginx/www; }
}
CONF
}

# start_nginx [PREFIX...]: nginx on $WORK/nginx/nginx.conf in the
# background (under PREFIX: `taskset -c 0`), in OTHER_PIDS.
start_nginx() {
  "$@" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/logs/error.log" &
  OTHER_PIDS+=($!)
}
