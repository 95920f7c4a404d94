#!/usr/bin/env bash
# Cost of the http collector for processes that serve no HTTP, on a
# syscall-heavy loop (dd with 1-byte blocks from /dev/zero to /dev/null: a
# read and a write per byte, each a `conns` miss, the read also a `servers`
# miss), medians of ROUNDS alternating rounds:
# 1. without sonde, and with sonde running only the http collector: this
#    includes the kernel's slow syscall-exit path, taken by every task once
#    any program is attached to sys_exit;
# 2. sonde with the syscalls collector (which attaches to sys_exit too),
#    without and with the http collector: what http adds on its own;
# then ns per run of the program from the kernel's accounting.
# Usage (as root, after `make build`): benches/http.sh
set -euo pipefail

ROUNDS=${ROUNDS:-5}
LOOP_BYTES=${LOOP_BYTES:-2000000}
. "$(dirname "$0")/common.sh"

config false true false > "$WORK/http.toml"
config true false false > "$WORK/syscalls.toml"
config true true false > "$WORK/syscalls-http.toml"
config false true true > "$WORK/http-stats.toml"

# Nanoseconds the syscall-heavy loop takes.
syscall_loop() {
  local start end
  start=$(date +%s%N)
  dd if=/dev/zero of=/dev/null bs=1 count="$LOOP_BYTES" 2>/dev/null
  end=$(date +%s%N)
  echo $(( end - start ))
}

# timed CONFIG: the loop's time with sonde running CONFIG, or without
# sonde when CONFIG is "none".
timed() {
  [ "$1" = none ] && { syscall_loop; return; }
  start_sonde "$WORK/$1.toml"
  syscall_loop
  stop_sonde
}

# compare WHAT BASE CONFIG: medians of ROUNDS alternating rounds.
compare() {
  local base=() with=()
  for _ in $(seq "$ROUNDS"); do
    base+=("$(timed "$2")")
    with+=("$(timed "$3")")
  done
  awk -v what="$1" -v off="$(printf '%s\n' "${base[@]}" | median)" \
    -v on="$(printf '%s\n' "${with[@]}" | median)" -v calls="$(( 2 * LOOP_BYTES ))" 'BEGIN {
    printf "%-34s %.3f s -> %.3f s   %+.1f%%, %.1f ns per syscall\n",
      what, off / 1e9, on / 1e9, (on - off) * 100 / off, (on - off) / calls }'
}

echo "== dd bs=1 count=$LOOP_BYTES, medians of $ROUNDS alternating rounds"
compare "no sonde -> http only:" none http
compare "syscalls -> syscalls + http:" syscalls syscalls-http

echo "== ns per run of the program over the same loop (run-time statistics on)"
start_sonde "$WORK/http-stats.toml"
syscall_loop >/dev/null
sleep 2
curl -s "http://127.0.0.1:$PORT/metrics" | awk '
  /^sonde_bpf_program_run_seconds_total.*sys_exit/ { secs = $NF }
  /^sonde_bpf_program_runs_total.*sys_exit/ { runs = $NF }
  END { printf "runs: %d   ns/run: %.1f\n", runs, secs * 1e9 / runs }'
stop_sonde
