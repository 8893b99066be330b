#!/usr/bin/env bash
# One core against two, in one run, both workloads (counter-less; counting:
# 512 credentials, every verdict writes a counter), ES256, batch 64, unary:
#
#   one core   assertd pinned to CPU 0 ([pool] threads = 1), the load
#              generator on CPU 1 (as single-core.sh)
#   two cores  assertd unpinned ([pool] threads = 2), the load generator
#              unpinned on the same two cores
#
# This machine has two cores, so in the two-core run the generator takes its
# share of them: its CPU time is reported, and the ratio is given as measured
# and with the generator's share of the machine given back (assertions/s x
# machine CPU / (machine CPU - generator CPU)). A faithful figure needs the
# generator on cores of its own.
#
# Usage: loadtest/two-cores.sh [seconds]   (builds release binaries first)
#   IN_FLIGHT=16 (unary callers), WORKLOADS="counterless counting"
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
depth="${IN_FLIGHT:-16}"
workloads="${WORKLOADS:-counterless counting}"
. loadtest/lib.sh
bench_build
bench_calibrate 0

# run WORKLOAD GEN_PIN: one generator run against $addr (GEN_PIN: a taskset
# prefix, or empty).
run() {
  local wl="$1" gen_pin="$2" extra=()
  if [ "$wl" = counting ]; then extra=(--counting --credentials 512 --pool $(((secs + 3) * 40000))); fi
  $gen_pin "$bin/assertd-loadgen" run --target "http://$addr" --batch 64 --connections 2 --warmup 2 \
    --duration "$secs" --in-flight "$depth" --server-pid "$pid" "${extra[@]}" 2>/dev/null | tail -1
}

for wl in $workloads; do
  bench_start $'[pool]\nthreads = 1' 0
  one=$(run "$wl" "taskset -c 1")
  kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$work"
  bench_start $'[pool]\nthreads = 2'
  two=$(run "$wl" "")
  kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$work"
  python3 - "$wl" "$one" "$two" "$raw" <<'PY'
import json, sys
wl, one, two, raw = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), float(sys.argv[4])
def line(name, r):
    return (f"{name}: {r['assertions_per_second']:.0f} assertions/s ({r['assertions_per_second'] / raw:.3f} x raw ring on one core), "
            f"server CPU {r['server_cpu_per_assertion_us']:.1f} us/assertion, generator CPU {r['generator_cpu_seconds']:.1f} s, "
            f"errors {sum(r['errors'].values())}, mismatches {r['mismatches']}" + (", POOL EXHAUSTED" if r.get("pool_exhausted") else ""))
print(f"{wl}, batch 64, unary:")
print("  " + line("one core ", one))
print("  " + line("two cores", two))
# The generator's CPU and the rate are both taken over the measured window.
gen_share = min(two["generator_cpu_seconds"] / (2 * two["seconds"]), 0.5)
ratio = two["assertions_per_second"] / one["assertions_per_second"]
print(f"  two cores / one core: {ratio:.2f}x measured; {ratio / (1 - gen_share):.2f}x with the generator's share ({gen_share:.1%} of the machine) given back")
PY
done
