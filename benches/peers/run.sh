#!/usr/bin/env bash
# Peers, same assertions, same machine, per core (BENCHMARKS.md §8).
#
# 1. `assertd-loadgen peer-input` writes 2000 ES256 assertions over 100
#    credentials (UP|UV, sign count 0, one challenge each).
# 2. Each peer verifies all of them once (all must pass), then in a loop on
#    CPU 0 for SECONDS, starting from the JSON a browser posts:
#    webauthn-rs-core 0.6.2 (rust/), py_webauthn 3.0.1 (py_webauthn/),
#    @simplewebauthn/server 14.0.3 (simplewebauthn/). Installed from their
#    registries into $PEERS_DIR (default /var/cache/assertd-peers-tools).
# 3. assertd on CPU 0 (one verification thread), the load generator on CPU 1
#    sending the same assertions over gRPC (batch 64, unary, 3 callers);
#    every verdict checked.
# 4. Raw ring ES256 on CPU 0 in the same run, and ring vs aws-lc-rs per
#    algorithm (figures only).
# Prints the ratios; writes every report to $REPORT_DIR (default .).
#
# Usage: benches/peers/run.sh [seconds]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-10}"
tools="${PEERS_DIR:-/var/cache/assertd-peers-tools}"
out="${REPORT_DIR:-.}"
peers_target="${PEERS_TARGET_DIR:-/var/cache/assertd-peers-target}"
mkdir -p "$tools" "$out"
out="$(cd "$out" && pwd)"

echo "--- building assertd, the load generator and the Rust peers"
cd "$root"
. loadtest/lib.sh
bench_build
(cd "$here/rust" && CARGO_TARGET_DIR="$peers_target" cargo build --release -q)
echo "--- installing py_webauthn and @simplewebauthn/server"
[ -d "$tools/py/webauthn" ] || pip install -q --target "$tools/py" webauthn==3.0.1
mkdir -p "$tools/node"
cp "$here/simplewebauthn/package.json" "$here/simplewebauthn/bench.mjs" "$tools/node/"
[ -d "$tools/node/node_modules/@simplewebauthn/server" ] || (cd "$tools/node" && npm install --silent --no-audit --no-fund)

input="$out/peer-input.json"
"$bin/assertd-loadgen" peer-input --count 2000 --credentials 100 > "$input"

echo "--- raw ring ES256 on CPU 0"
taskset -c 0 "$bin/assertd-loadgen" calibrate --seconds 5 > "$out/peer-raw-ring.json"
echo "--- peers on CPU 0"
taskset -c 0 "$peers_target/release/assertd-peers" webauthn-rs "$input" "$secs" > "$out/peer-webauthn-rs.json"
PYTHONPATH="$tools/py" taskset -c 0 python3 "$here/py_webauthn/bench.py" "$input" "$secs" > "$out/peer-py_webauthn.json"
(cd "$tools/node" && taskset -c 0 node bench.mjs "$input" "$secs") > "$out/peer-simplewebauthn.json"
taskset -c 0 "$peers_target/release/assertd-peers" raw 3 > "$out/peer-ring-vs-aws-lc-rs.json"

echo "--- assertd on CPU 0, the load generator on CPU 1"
bench_start $'user_verification = "required"\n[pool]\nthreads = 1' 0
taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --assertions "$input" --batch 64 --concurrency 3 \
  --connections 2 --warmup 2 --duration "$secs" --server-pid "$pid" --json "$out/peer-assertd.json" > /dev/null 2>&1

python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
j = lambda n: json.load(open(f"{d}/{n}"))
raw = j("peer-raw-ring.json")["raw_ring_es256_verifies_per_second"]
a = j("peer-assertd.json")
assert a["mismatches"] == 0 and not a["errors"], a
ours = a["assertions_per_second"]
print(f"raw ring ES256 on CPU 0: {raw:.0f} verifies/s")
print(f"assertd end to end over gRPC (CPU 0; generator on CPU 1): {ours:.0f} assertions/s = {ours / raw:.3f} of raw ring")
print("| peer (one core) | verifies/s | ÷ raw ring | assertd ÷ peer | target |")
print("|---|---:|---:|---:|---|")
targets = {"webauthn-rs": 3.3, "py_webauthn": 1.6, "simplewebauthn": 4.5}
for name, target in targets.items():
    p = j(f"peer-{name}.json")
    r = p["verifies_per_second"]
    ok = "✓" if ours / r >= target else "✗"
    print(f"| {p['peer']} | {r:.0f} | {r / raw:.2f} | {ours / r:.2f} | ≥ {target} {ok} |")
print("ring vs aws-lc-rs (verifies/s, one core):")
for alg, v in j("peer-ring-vs-aws-lc-rs.json").items():
    faster = "aws-lc-rs" if v["aws_lc_rs"] > v["ring"] else "ring"
    print(f"  {alg}: ring {v['ring']:.0f}, aws-lc-rs {v['aws_lc_rs']:.0f} ({v['aws_lc_rs_over_ring']:.2f}x): {faster} faster")
PY
