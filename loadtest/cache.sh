#!/usr/bin/env bash
# Key cache with a large population (BENCHMARKS.md §5): N seeded Ed25519
# credentials imported into the embedded store, then, in one run of one
# server (both cores, the generator unpinned beside it):
#   1. all-hot: 64 credentials, uniform (the reference);
#   2. Zipf(s) over all N: 100 000 pooled assertions;
#   3. all-hot again (the server has the big working set cached by now).
# Prints throughput ratios, the cache hit ratio of the measured window, and
# the server's RSS per cached credential (RSS growth between the all-hot
# and the Zipf runs ÷ growth of assertd_cache_entries: an upper bound, as it
# includes SQLite's page cache).
#
# Usage: loadtest/cache.sh [N] [seconds] [zipf]   (defaults 1000000 15 1.0)
# LAST_USED_INTERVAL=S sets [store] last_used_interval_seconds (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
secs="${2:-15}"
zipf="${3:-1.0}"
target="${CARGO_TARGET_DIR:-target}"
out="${REPORT_DIR:-.}"
cargo build --release -q -p assertd -p assertd-loadgen
bin="$target/release"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/assertd.toml" <<TOML
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
data_dir = "$work/data"
[[relying_parties]]
id = "login.example.com"
origins = ["https://login.example.com"]
[store]
last_used_interval_seconds = ${LAST_USED_INTERVAL:-60}
TOML
"$bin/assertd-loadgen" gen-credentials --count "$n" > "$work/creds.jsonl"
start=$(date +%s.%N)
"$bin/assertd" credentials import "$work/creds.jsonl" --config "$work/assertd.toml" > /dev/null
echo "imported $n credentials in $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
ASSERTD_LOG=warn "$bin/assertd" serve --config "$work/assertd.toml" > "$work/out" &
pid=$!
for _ in $(seq 50); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/.*grpc=\([0-9.:]*\).*/\1/p' "$work/out")
metrics=$(sed -n 's/.*metrics=\([0-9.:]*\).*/\1/p' "$work/out")
entries() { curl -s "http://$metrics/metrics" | sed -n 's/^assertd_cache_entries \([0-9.e+]*\)$/\1/p'; }
run() {
  local name="$1"
  shift
  "$bin/assertd-loadgen" run --target "http://$addr" --batch 64 --concurrency 4 --connections 2 --warmup 3 \
    --duration "$secs" --server-pid "$pid" --metrics "$metrics" --json "$out/cache-$name.json" "$@" > /dev/null 2>&1
  echo "$(entries)" > "$out/cache-$name.entries"
}
run hot --population 64 --zipf 0 --pool 4096
run zipf --population "$n" --zipf "$zipf" --pool 100000
run hot-after --population 64 --zipf 0 --pool 4096
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
r = {k: json.load(open(f"{d}/cache-{k}.json")) for k in ["hot", "zipf", "hot-after"]}
e = {k: float(open(f"{d}/cache-{k}.entries").read().strip() or 0) for k in r}
for k, v in r.items():
    print(f"{k:10} {v['assertions_per_second']:9.0f} assertions/s  hit ratio {v['cache_hit_ratio']:.4f}  "
          f"CPU/assertion {v['server_cpu_per_assertion_us']:.1f} us  RSS {v['server_rss_bytes'] / 2**20:.1f} MiB  cache entries {e[k]:.0f}  mismatches {v['mismatches']}")
hot = (r["hot"]["assertions_per_second"] + r["hot-after"]["assertions_per_second"]) / 2
print(f"Zipf over the population / all-hot (mean of the runs around it): {r['zipf']['assertions_per_second'] / hot:.3f}")
grew = e["zipf"] - e["hot"]
if grew > 0:
    per = (r["zipf"]["server_rss_bytes"] - r["hot"]["server_rss_bytes"]) / grew
    print(f"RSS per cached credential (upper bound): {per:.0f} bytes ({grew:.0f} entries added)")
PY
