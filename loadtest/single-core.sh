#!/usr/bin/env bash
# Single-core efficiency: assertd pinned to CPU 0, the load generator to CPU 1.
# Measures, in one run: raw ring ES256 verifies/s on CPU 0 (calibrate), then
# assertd's end-to-end assertions/s (ES256, batch 64) for both workloads:
#
#   counterless  synced passkeys: stored and received sign count 0 (no
#                counter write)
#   counting     security keys: CREDENTIALS (512) credentials, every
#                assertion carries its credential's next count (every verdict
#                writes a counter; with many credentials nearly every
#                update writes a database page of its own)
#
# each unary and streaming, at IN_FLIGHT batches in flight (default "8 32";
# unary: that many callers; streaming: spread over 4 streams), each printed
# as a ratio of the raw figure; then, per workload, an open-loop run at 70%
# of the unary capacity at the first depth, whose p99 is compared with the
# batch's pure verify time (64 / raw rate). The server's thread count is
# sampled during each run. Unary callers retry a refused call as a gRPC
# client with a retry policy does (after the pushback, with
# grpc-previous-rpc-attempts; latency is the whole round trip), and each
# depth prints unary p99 ÷ streaming p99 (fairness under saturation).
#
# Usage: loadtest/single-core.sh [seconds]   (builds release binaries first)
#   WORKLOADS="counterless counting" IN_FLIGHT="8 32" REPORT_DIR=. (defaults)
#   CREDENTIALS=512 (counting; each run puts them through the API first)
#   BIN=DIR (use DIR/assertd and DIR/assertd-loadgen instead of building)
#   RESPONSE_JSON=1 (send the assertions as the browser's JSON, response_json)
#   ALG=es384 (the assertions' algorithm, and raw ring's: es256 by default;
#   es384, eddsa, rs256, ps256)
#   RP_EXTRA=..., CONFIG_EXTRA=... (config lines: see bench_start below)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
workloads="${WORKLOADS:-counterless counting}"
depths="${IN_FLIGHT:-8 32}"
out="${REPORT_DIR:-.}"
. loadtest/lib.sh
bench_build
alg="${ALG:-es256}"
bench_calibrate 0 "$alg"
# RP_EXTRA: lines for the relying party's table (e.g. report_only_profiles =
# ["strict"]); CONFIG_EXTRA: tables after it (e.g. [profiles.strict]).
bench_start "${RP_EXTRA:-}"$'\n[pool]\nthreads = 1\n'"${CONFIG_EXTRA:-}" 0

# Most threads the server had during a run (sampled every 200 ms).
threads_max=0
sample_threads() {
  local max=0 n
  while kill -0 "$1" 2>/dev/null; do
    n=$(ls "/proc/$pid/task" 2>/dev/null | wc -l)
    if [ "$n" -gt "$max" ]; then max=$n; echo "$max" > "$work/threads"; fi
    sleep 0.2
  done
}

run() {
  local workload="$1"
  shift
  local extra=()
  if [ -n "${RESPONSE_JSON:-}" ]; then
    extra+=(--response-json)
  fi
  if [ "$workload" = counting ]; then
    # Each assertion is sent once: enough for warm-up and the run at up to
    # 30k assertions/s.
    extra+=(--counting --credentials "${CREDENTIALS:-512}" --pool $(((secs + 3) * 30000)))
  fi
  echo 0 > "$work/threads"
  taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --batch 64 --connections 2 --algs "$alg" \
    --warmup 2 --duration "$secs" --server-pid "$pid" "${extra[@]}" "$@" 2>/dev/null > "$work/report" &
  local gen=$!
  sample_threads "$gen" &
  wait "$gen"
  wait
  tail -1 "$work/report" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read()); r['server_threads_max'] = int(open('$work/threads').read()); print(json.dumps(r))"
}

summary() {
  python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
rate = r['assertions_per_second']
print(f\"$1: {rate:.0f} assertions/s = {rate / $raw:.3f} x raw ring ${alg^^} (p50 {r['latency']['p50_ms']:.2f} ms, p99 {r['latency']['p99_ms']:.2f} ms, server CPU {r['server_cpu_per_assertion_us']:.1f} us/assertion, {r['server_threads_max']} server threads, errors {sum(r['errors'].values())}, mismatches {r['mismatches']}{', POOL EXHAUSTED' if r.get('pool_exhausted') else ''}{', answered after attempts ' + json.dumps(r['attempts']) if r.get('attempts') else ''})\")"
}

for workload in $workloads; do
  first=""
  for depth in $depths; do
    unary=$(run "$workload" --in-flight "$depth")
    echo "$unary" | summary "$workload unary, $depth in flight"
    echo "$unary" > "$out/single-core-$workload-unary-$depth.json"
    stream=$(run "$workload" --stream --concurrency 4 --in-flight "$depth")
    echo "$stream" | summary "$workload streaming, $depth in flight (4 streams)"
    echo "$stream" > "$out/single-core-$workload-stream-$depth.json"
    # Fairness: a unary caller's round trip (pushback and retries included)
    # against a stream's, at the same depth (issue 32: at most 2x).
    python3 -c "
import json, sys
u, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f\"$workload, $depth in flight: unary p99 {u['latency']['p99_ms']:.1f} ms / streaming p99 {s['latency']['p99_ms']:.1f} ms = {u['latency']['p99_ms'] / s['latency']['p99_ms']:.2f}, unary refusals {u['errors'].get('ResourceExhausted', 0)}\")" "$unary" "$stream"
    if [ -z "$first" ]; then first="$unary"; fi
  done
  urate=$(echo "$first" | python3 -c "import json, sys; print(json.loads(sys.stdin.read())['assertions_per_second'])")
  rps=$(python3 -c "print(0.7 * $urate / 64)")
  open=$(run "$workload" --mode open --rate "$rps")
  echo "$open" > "$out/single-core-$workload-open70.json"
  python3 - "$open" "$raw" "$rps" "$workload" <<'PY'
import json, sys
r, raw, rps, workload = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
pure_ms = 64 / raw * 1000
p99 = r["latency"]["p99_ms"]
print(f"{workload} open loop at 70% of capacity ({rps:.0f} RPC/s, {r['assertions_per_second']:.0f} assertions/s): "
      f"p50 {r['latency']['p50_ms']:.2f} ms, p99 {p99:.2f} ms = {p99 / pure_ms:.2f} x the batch's pure verify time ({pure_ms:.2f} ms), "
      f"{r['server_threads_max']} server threads, mismatches {r['mismatches']}")
PY
done
