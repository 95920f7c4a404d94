#!/usr/bin/env bash
# What one uprobe hit costs on this machine, whatever its program does: a
# C loop calls a function CALLS times, timed alone and with an empty
# bpftrace uprobe on that function; the difference per call is the trap
# into the kernel and back (sonde's TLS probes, OpenSSL's and Go's, pay it
# at every hit, on top of their programs' run time).
# Needs cc and bpftrace (apt install gcc bpftrace); run as root:
# benches/uprobe_hit.sh
set -euo pipefail

CALLS=${CALLS:-200000}
. "$(dirname "$0")/common.sh"
command -v bpftrace >/dev/null || { echo "bpftrace is missing: apt install bpftrace"; exit 1; }

cat > "$WORK/loop.c" <<C
#include <stdio.h>
#include <time.h>
__attribute__((noinline)) int probed(int x) { __asm__ volatile(""); return x + 1; }
int main(void) {
  struct timespec a, b; int s = 0;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < $CALLS; i++) s = probed(s);
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / $CALLS);
  return s != $CALLS;
}
C
cc -O2 -o "$WORK/loop" "$WORK/loop.c"
alone=$("$WORK/loop")
bpftrace -e "uprobe:$WORK/loop:probed { }" > "$WORK/bpftrace.out" 2>&1 &
OTHER_PIDS+=($!)
for _ in $(seq 100); do
  grep -qs '^Attaching' "$WORK/bpftrace.out" && break
  sleep 0.1
done
sleep 1
probed=$("$WORK/loop")
echo "ns a call: $alone alone, $probed with an empty uprobe: one uprobe hit costs $(awk -v a="$alone" -v b="$probed" 'BEGIN { printf "%.0f", b - a }') ns"
