#!/usr/bin/env bash
# Cost of the kernel collectors, measured on this machine:
# 1. ns per run of each BPF program, from the kernel's own accounting
#    (sonde turns on kernel.bpf_stats_enabled while it runs and exports
#    sonde_bpf_program_run_seconds_total and sonde_bpf_program_runs_total),
#    after workloads that drive each collector: O_DIRECT I/O (block), HTTP
#    requests over loopback (net), process spawns (process, sched);
# 2. the whole suite's cost on a syscall-heavy loop (dd with 1-byte blocks:
#    two syscalls per byte), as the loop's run time with sonde running over
#    its run time without, medians of ROUNDS alternating rounds: once as
#    configured by default, once with `run_time_stats = false` (the kernel's
#    run-time statistics add two clock reads to every program run).
# Usage (as root, after `make build`): benches/kernel.sh
set -euo pipefail

ROUNDS=${ROUNDS:-5}
LOOP_BYTES=${LOOP_BYTES:-2000000}
. "$(dirname "$0")/common.sh"

cat > "$WORK/sonde.toml" <<TOML
[server]
listen = "127.0.0.1:$PORT"
[storage]
path = "$WORK/data"
[collect]
interval = "1s"
TOML
{ cat "$WORK/sonde.toml"; printf '[collect.bpf]\nrun_time_stats = false\n'; } > "$WORK/sonde-nostats.toml"

# Seconds the syscall-heavy loop takes.
syscall_loop() {
  elapsed_ns dd if=/dev/zero of=/dev/null bs=1 count="$LOOP_BYTES"
}

echo "== ns per program run (workloads: O_DIRECT I/O, loopback HTTP, spawns)"
start_sonde
grep "bpf collector" "$WORK/sonde.log" | sed 's/.*bpf collector/bpf collector/'
dd if=/dev/zero of="$WORK/file" bs=4096 count=20000 2>/dev/null; sync
dd if=/dev/zero of="$WORK/file" bs=4096 count=20000 oflag=direct conv=notrunc 2>/dev/null
dd if="$WORK/file" of=/dev/null bs=4096 count=20000 iflag=direct 2>/dev/null
for _ in $(seq 500); do curl -s "http://127.0.0.1:$PORT/metrics" >/dev/null; done
for _ in $(seq 2000); do /bin/true; done
sleep 2
program_costs
stop_sonde

echo "== whole suite on a syscall-heavy loop (dd bs=1 count=$LOOP_BYTES, medians of $ROUNDS)"
off=(); on=(); nostats=()
for _ in $(seq "$ROUNDS"); do
  off+=("$(syscall_loop)")
  start_sonde
  on+=("$(syscall_loop)")
  stop_sonde
  start_sonde "$WORK/sonde-nostats.toml"
  nostats+=("$(syscall_loop)")
  stop_sonde
done
off_med=$(printf '%s\n' "${off[@]}" | median)
calls=$(( 2 * LOOP_BYTES ))
report() {
  awk -v what="$1" -v off="$off_med" -v on="$2" -v calls="$calls" 'BEGIN {
    printf "%-32s without sonde: %.3f s   with: %.3f s   cost: %+.1f%% of run time, %.1f ns per syscall\n",
      what, off / 1e9, on / 1e9, (on - off) * 100 / off, (on - off) / calls }'
}
report "default config:" "$(printf '%s\n' "${on[@]}" | median)"
report "run_time_stats = false:" "$(printf '%s\n' "${nostats[@]}" | median)"
