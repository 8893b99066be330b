#!/usr/bin/env bash
# The open loop by thread: assertd pinned to CPU 0 with one verification
# thread, the load generator on CPU 1 sending counting batches of 64 at a
# fixed RATE (RPC/s), and each server thread's CPU time and context
# switches over the run after WARMUP, per assertion answered. Prints the
# round trip's p50/p99 (and p99 as a multiple of the batch's pure verify
# time, 64 / raw ring), server CPU per assertion, refusals, and the store's
# `get` time (a batch's cache misses) from /metrics.
#
# Usage: loadtest/open-threads.sh   (builds release binaries first)
#   RATE=100  SECS=8 (the generator's run, WARMUP included)  WARMUP=2
#   CREDENTIALS=20000 (counting credentials the assertions cycle over)
#   BIN=DIR (use DIR/assertd and DIR/assertd-loadgen instead of building)
set -euo pipefail
cd "$(dirname "$0")/.."
. loadtest/lib.sh
rate="${RATE:-100}" secs="${SECS:-8}" warmup="${WARMUP:-2}" credentials="${CREDENTIALS:-20000}"
if [ "$secs" -le $((warmup + 1)) ]; then echo "SECS must exceed WARMUP + 1" >&2; exit 2; fi
bench_build
bench_calibrate 0
bench_start $'[pool]\nthreads = 1' 0
out=$(mktemp -d)
snap() {
  for t in /proc/"$pid"/task/*; do
    printf '%s %s %s\n' "$(tr -d ' ' < "$t/comm")" \
      "$(grep -E '^(voluntary|nonvoluntary)_ctxt' "$t/status" | awk '{print $2}' | tr '\n' ' ')" \
      "$(cut -d')' -f2 "$t/stat" | awk '{print $12, $13}')"
  done | sort
}
answered() { curl -s "$metrics/metrics" | awk '/^assertd_assertions_total/ {s += $2} END {printf "%d", s}'; }
taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --batch 64 --connections 2 --warmup "$warmup" \
  --duration "$secs" --mode open --rate "$rate" --server-pid "$pid" --counting --credentials "$credentials" \
  --pool $(((secs + 3) * 30000)) 2>/dev/null | tail -1 > "$out/run.json" &
gen=$!
until [ "$(answered)" -gt 0 ]; do sleep 0.2; done
sleep "$warmup"
snap > "$out/before"; a0=$(answered)
sleep $((secs - warmup - 1))
snap > "$out/after"; a1=$(answered)
wait "$gen"
curl -s "$metrics/metrics" | grep -E '^assertd_store_duration_seconds_(sum|count)\{operation="get"' > "$out/get" || true
python3 - "$((a1 - a0))" "$raw" "$out" <<'PY'
import json, sys
n, raw, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
r = json.load(open(f"{out}/run.json"))
pure = 64 / raw * 1000
lat = r["latency"]
print(f"rate {r['assertions_per_second']:.0f}/s p50 {lat['p50_ms']:.2f} p99 {lat['p99_ms']:.2f} ms = "
      f"{lat['p99_ms'] / pure:.1f}x pure {pure:.2f} ms; server CPU {r['server_cpu_per_assertion_us']:.1f} us/assertion; "
      f"errors {r['errors']}")
get = dict(l.split()[0].split("{")[0].rsplit("_", 1)[1:] + [float(l.split()[1])] for l in open(f"{out}/get"))
if get.get("count"):
    print(f"store get: {get['sum'] / get['count'] * 1000:.2f} ms per batch with misses ({get['count']:.0f} batches)")
def load(p):
    d = {}
    for line in open(p):
        f = line.split()
        d.setdefault(f[0], [0, 0, 0, 0])
        for i in range(4):
            d[f[0]][i] += int(f[i + 1])
    return d
b, a = load(f"{out}/before"), load(f"{out}/after")
for k in a:
    z = b.get(k, [0, 0, 0, 0])
    v, nv, ut, st = ((a[k][i] - z[i]) for i in range(4))
    user, system = ut * 1e4 / n, st * 1e4 / n
    if user + system > 0.05:
        print(f"  {k:20s} switches {v / n * 64:.2f} voluntary, {nv / n * 64:.2f} involuntary per batch; "
              f"CPU {user:.1f} us (system {system:.1f}) per assertion")
PY
rm -rf "$out"
