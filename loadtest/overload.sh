#!/usr/bin/env bash
# Load shedding: assertd pinned to CPU 0 (one verification thread), the load
# generator on CPU 1, ES256, batch 64, unary. Measures, in one run:
#   1. capacity: closed loop, 3 callers (assertions/s and RPC/s);
#   2. open loop (latency from the intended send time) at 0.7x, 2x and 5x
#      that RPC rate.
# Prints goodput (verified assertions/s) as a share of capacity, p99 of the
# admitted requests against the 0.7x p99, what one rejection costs (client
# round trip of RESOURCE_EXHAUSTED), and the server's RSS at the start and
# the peak of each run. Every verdict is checked (mismatches must be 0).
#
# Usage: loadtest/overload.sh [seconds]   (builds release binaries first)
# WAIT=MS sets [limits] max_queue_wait_ms (default: the server's default);
# QUEUED=N the optional cap max_queued_assertions (default 0: none);
# CALLERS=N the closed-loop callers of the capacity run (default 3);
# WORKLOAD=counting sends counting credentials (512, each assertion the
# next count) instead of counter-less ones.
# Reports: $REPORT_DIR/overload-{capacity,0.7x,2x,5x}.json (default: .)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
out="${REPORT_DIR:-.}"
. loadtest/lib.sh
bench_build
limits="$(printf '[pool]\nthreads = 1\n[limits]\nmax_queued_assertions = %s' "${QUEUED:-0}")"
if [ -n "${WAIT:-}" ]; then limits="$limits"$'\n'"max_queue_wait_ms = $WAIT"; fi
bench_start "$limits" 0
workload=()
if [ "${WORKLOAD:-counterless}" = counting ]; then
  # Each assertion is sent once (the pools are sized per run below).
  workload=(--counting --credentials 512)
fi

run() {
  local name="$1"
  shift
  taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --batch 64 --connections 2 \
    --warmup 2 --duration "$secs" --server-pid "$pid" --json "$out/overload-$name.json" "${workload[@]}" "$@" 2>/dev/null | tail -1
}
capacity_pool=()
if [ "${WORKLOAD:-counterless}" = counting ]; then capacity_pool=(--pool $(((secs + 3) * 30000))); fi
run capacity --concurrency "${CALLERS:-3}" "${capacity_pool[@]}" > /dev/null
cap_rps=$(python3 -c "import json; print(json.load(open('$out/overload-capacity.json'))['rpcs_per_second'])")
for x in 0.7 2 5; do
  rate="$(python3 -c "print($x * $cap_rps)")"
  pool=()
  if [ "${WORKLOAD:-counterless}" = counting ]; then
    # Every offered assertion is signed once, refused ones included: at 5x
    # many more than the closed loop needs.
    pool=(--pool "$(python3 -c "import math; print(max($(((secs + 3) * 30000)), math.ceil($rate * 64 * ($secs + 3) * 1.1)))")")
  fi
  run "${x}x" --mode open --rate "$rate" "${pool[@]}" > /dev/null
done
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
cap = json.load(open(f"{d}/overload-capacity.json"))
base = json.load(open(f"{d}/overload-0.7x.json"))
mib = lambda b: (b or 0) / 2**20
print(f"capacity (closed loop): {cap['assertions_per_second']:.0f} assertions/s, {cap['rpcs_per_second']:.1f} RPC/s, "
      f"p99 {cap['latency']['p99_ms']:.2f} ms, RSS {mib(cap['server_rss_bytes']):.1f} MiB")
print("| offered | goodput ÷ capacity | admitted p50 / p99 ms | p99 ÷ p99 at 0.7x | rejected (RESOURCE_EXHAUSTED) | rejection p50 / p99 ms | other errors | mismatches | RSS start → peak MiB |")
print("|---|---:|---:|---:|---:|---:|---|---:|---:|")
for x in ["0.7x", "2x", "5x"]:
    r = json.load(open(f"{d}/overload-{x}.json"))
    errs = dict(r["errors"])
    rej = errs.pop("ResourceExhausted", 0)
    sent = r["rpcs"] + rej + sum(errs.values())
    l, q = r["latency"], r["rejected_latency"]
    print(f"| {x} ({r['rate_rpcs_per_second']:.0f} RPC/s) | {r['assertions_per_second'] / cap['assertions_per_second']:.3f} "
          f"| {l['p50_ms']:.2f} / {l['p99_ms']:.2f} | {l['p99_ms'] / base['latency']['p99_ms']:.2f} "
          f"| {rej} of {sent} ({rej / max(sent, 1):.0%}) | {q['p50_ms']:.2f} / {q['p99_ms']:.2f} | {errs or '-'} | {r['mismatches']} "
          f"| {mib(r['server_rss_start_bytes']):.1f} → {mib(r['server_rss_max_bytes']):.1f} |")
PY
