#!/usr/bin/env bash
# The curves behind BENCHMARKS.md's plot: assertd pinned to CPU 0 (one
# verification thread, default limits), the load generator on CPU 1, ES256,
# unary, every verdict checked. Writes JSON reports to $REPORT_DIR (default
# ./reports), then benches/plot.py draws benches/plots/sweep.png from them.
#   * raw ring ES256 on CPU 0 (the reference line);
#   * throughput vs batch size: closed loop at batch 1, 4, 16, 64, 256
#     (callers = 192 / batch, 1 to 4, to stay within the admission budget);
#   * latency vs load: capacity at batch 64 (3 callers), then open loop at
#     0.3x ... 2x of it.
#
# Usage: loadtest/sweep.sh [seconds]   (needs python3 with matplotlib for the plot)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-6}"
out="${REPORT_DIR:-reports}"
mkdir -p "$out"
. loadtest/lib.sh
bench_build
taskset -c 0 "$bin/assertd-loadgen" calibrate --seconds 5 > "$out/sweep-raw.json"
bench_start $'[pool]\nthreads = 1' 0
run() {
  local name="$1"
  shift
  taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --connections 2 --warmup 2 --duration "$secs" \
    --server-pid "$pid" --json "$out/sweep-$name.json" "$@" > /dev/null 2>&1
  echo "  $name done"
}
for b in 1 4 16 64 256; do
  c=$(python3 -c "print(max(1, min(4, 192 // $b)))")
  run "batch-$b" --batch "$b" --concurrency "$c"
done
run capacity --batch 64 --concurrency 3
cap=$(python3 -c "import json; print(json.load(open('$out/sweep-capacity.json'))['rpcs_per_second'])")
for x in 0.3 0.5 0.7 0.8 0.9 1.0 1.2 1.5 2.0; do
  run "load-$x" --batch 64 --mode open --rate "$(python3 -c "print($x * $cap)")"
done
if python3 -c "import matplotlib" 2>/dev/null; then
  python3 benches/plot.py "$out" benches/plots/sweep.png
else
  echo "matplotlib not importable: reports in $out, run benches/plot.py $out benches/plots/sweep.png where it is"
fi
