#!/usr/bin/env bash
# Capacity per core for the chart's sizing table: assertd pinned to CPU 0
# (one verification thread), the load generator on CPU 1, raw ring ES256 on
# CPU 0 measured in the same run. Both workloads (counter-less; counting:
# 512 credentials, every verdict writes a counter), batch 64 with 4 calls in
# flight and batch 1 with B1_DEPTH calls in flight (default 16), unary.
#
# Usage: loadtest/capacity.sh [seconds]   (builds release binaries first)
#   B1_DEPTH=16 (calls in flight at batch 1)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
. loadtest/lib.sh
bench_build
bench_calibrate 0
bench_start $'[pool]\nthreads = 1' 0
for wl in counterless counting; do
  for batch in 1 64; do
    extra=()
    if [ "$wl" = counting ]; then extra=(--counting --credentials 512 --pool $(((secs + 3) * 30000))); fi
    if [ "$batch" = 1 ]; then depth="${B1_DEPTH:-16}"; else depth=4; fi
    taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --batch "$batch" --connections 2 --warmup 2 \
      --duration "$secs" --in-flight "$depth" --server-pid "$pid" "${extra[@]}" 2>/dev/null | tail -1 | python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
rate = r['assertions_per_second']
print(f\"$wl, batch $batch, $depth in flight: {rate:.0f} assertions/s = {rate / $raw:.3f} x raw ring (p50 {r['latency']['p50_ms']:.2f} ms, p99 {r['latency']['p99_ms']:.2f} ms, server CPU {r['server_cpu_per_assertion_us']:.1f} us/assertion, RSS {r['server_rss_bytes'] / 2**20:.1f} MiB, refusals and errors {sum(r['errors'].values())})\")"
  done
done
