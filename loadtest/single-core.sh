#!/usr/bin/env bash
# Single-core efficiency: assertd pinned to CPU 0, the load generator to CPU 1.
# Measures, in one run: raw ring ES256 verifies/s on CPU 0 (calibrate), then
# assertd's end-to-end assertions/s (ES256, batch 64) unary and streaming,
# and prints each as a ratio of the raw figure; then an open-loop run at 70%
# of the unary capacity, whose p99 is compared with the batch's pure verify
# time (64 / raw rate).
#
# Usage: loadtest/single-core.sh [seconds]   (builds release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
. loadtest/lib.sh
bench_build
raw=$(taskset -c 0 "$bin/assertd-loadgen" calibrate --seconds 5 | sed 's/.*"raw_ring_es256_verifies_per_second":\([0-9.]*\).*/\1/')
echo "raw ring ES256 on CPU 0: $raw verifies/s"
bench_start $'[pool]\nthreads = 1' 0

run() {
  taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --batch 64 --concurrency 3 --connections 2 \
    --warmup 2 --duration "$secs" --server-pid "$pid" "$@" 2>/dev/null | tail -1
}
unary=$(run)
stream=$(run --stream)
for kind in unary stream; do
  echo "${!kind}" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
rate = r['assertions_per_second']
print(f\"$kind: {rate:.0f} assertions/s = {rate / $raw:.3f} x raw ring ES256 (p99 {r['latency']['p99_ms']:.2f} ms, server CPU {r['server_cpu_per_assertion_us']:.1f} us/assertion, mismatches {r['mismatches']})\")"
done
urate=$(echo "$unary" | python3 -c "import json, sys; print(json.loads(sys.stdin.read())['assertions_per_second'])")
rps=$(python3 -c "print(0.7 * $urate / 64)")
open=$(run --mode open --rate "$rps")
python3 - "$open" "$raw" "$rps" <<'PY'
import json, sys
r, raw, rps = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
pure_ms = 64 / raw * 1000
p99 = r["latency"]["p99_ms"]
print(f"open loop at 70% of capacity ({rps:.0f} RPC/s, {r['assertions_per_second']:.0f} assertions/s): "
      f"p50 {r['latency']['p50_ms']:.2f} ms, p99 {p99:.2f} ms = {p99 / pure_ms:.2f} x the batch's pure verify time ({pure_ms:.2f} ms), "
      f"mismatches {r['mismatches']}")
PY
out="${REPORT_DIR:-.}"
echo "$unary" > "$out/single-core-unary.json"
echo "$stream" > "$out/single-core-stream.json"
echo "$open" > "$out/single-core-open70.json"
