#!/usr/bin/env bash
# Key cache with a large population (BENCHMARKS.md §5): N seeded
# credentials (ALG=es256, the default, or ed25519) imported into the
# embedded store, then, in one run of one
# server (both cores, the generator unpinned beside it):
#   all-hot (64 credentials, uniform: the reference) and Zipf(s) over all N
#   (100 000 pooled assertions), alternating: hot, zipf, hot, ..., hot
#   (ROUNDS Zipf runs, default 3).
# Prints the ratio of the medians, the cache hit ratio of each window, and
# the server's RSS per cached credential (RSS growth between the first
# all-hot and Zipf runs ÷ growth of assertd_cache_entries: an upper bound, as
# it includes SQLite's page cache and allocator slack).
#
# Usage: loadtest/cache.sh [N] [seconds] [zipf]   (defaults 1000000 15 1.0)
# LAST_USED_INTERVAL=S sets [store] last_used_interval_seconds (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
secs="${2:-15}"
zipf="${3:-1.0}"
out="${REPORT_DIR:-.}"
. loadtest/lib.sh
bench_build
alg="${ALG:-es256}"
tmp="$(mktemp -d)"
keys=() gen=()
if [ "$alg" = es256 ]; then keys=(--population-keys "$tmp/keys.txt") gen=(--keys "$tmp/keys.txt"); fi
"$bin/assertd-loadgen" gen-credentials --count "$n" --alg "$alg" "${gen[@]}" > "$tmp/creds.jsonl"
start=$(date +%s.%N)
BENCH_IMPORT="$tmp/creds.jsonl" bench_start "$(printf '[store]\nlast_used_interval_seconds = %s' "${LAST_USED_INTERVAL:-60}")"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work" "$tmp"' EXIT
echo "imported $n $alg credentials and started in $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
rm -f "$tmp/creds.jsonl"
entries() { curl -s "http://$metrics/metrics" | sed -n 's/^assertd_cache_entries \([0-9.e+]*\)$/\1/p'; }
run() {
  local name="$1"
  shift
  "$bin/assertd-loadgen" run --target "http://$addr" --batch 64 --concurrency 4 --connections 2 --warmup "${WARMUP:-3}" \
    --duration "$secs" --server-pid "$pid" --metrics "$metrics" --json "$out/cache-$name.json" "${keys[@]}" "$@" > /dev/null 2>&1
  echo "$(entries)" > "$out/cache-$name.entries"
}
rounds="${ROUNDS:-3}"
# Alternate, so drift on a shared machine hits both kinds alike.
run hot-1 --population 64 --zipf 0 --pool 4096
for i in $(seq "$rounds"); do
  # Steady state: the first pass over the pool loads ~37 k credentials from
  # the store, which takes a few seconds; keep it out of the measured window.
  WARMUP=$([ "$i" = 1 ] && echo 10 || echo "${WARMUP:-3}") run "zipf-$i" --population "$n" --zipf "$zipf" --pool 100000
  run "hot-$((i + 1))" --population 64 --zipf 0 --pool 4096
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
names = ["hot-1"] + [x for i in range(1, rounds + 1) for x in (f"zipf-{i}", f"hot-{i + 1}")]
r = {k: json.load(open(f"{d}/cache-{k}.json")) for k in names}
e = {k: float(open(f"{d}/cache-{k}.entries").read().strip() or 0) for k in names}
for k in names:
    v = r[k]
    print(f"{k:7} {v['assertions_per_second']:9.0f} assertions/s  hit ratio {v['cache_hit_ratio']:.4f}  "
          f"CPU/assertion {v['server_cpu_per_assertion_us']:.1f} us  RSS {v['server_rss_bytes'] / 2**20:.1f} MiB  cache entries {e[k]:.0f}  mismatches {v['mismatches']}")
hot = statistics.median(r[k]["assertions_per_second"] for k in names if k.startswith("hot"))
zipf = statistics.median(r[k]["assertions_per_second"] for k in names if k.startswith("zipf"))
print(f"Zipf over the population / all-hot (medians of the alternating runs): {zipf / hot:.3f}")
grew = e["zipf-1"] - e["hot-1"]
if grew > 0:
    per = (r["zipf-1"]["server_rss_bytes"] - r["hot-1"]["server_rss_bytes"]) / grew
    print(f"RSS per cached credential (upper bound): {per:.0f} bytes ({grew:.0f} entries added)")
PY
