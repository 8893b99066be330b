#!/usr/bin/env bash
# Counting credentials on a large SQLite database: POPULATION credentials
# imported first (gen-credentials with 64-byte ids: they only make the
# database large, ~420 bytes per credential), then
# CREDENTIALS counting credentials put through the API and used for the
# first time in an open-loop run at RATE batches of 64 per second (default
# 125: 8 000 assertions/s, ~70% of one core here). The server is pinned to
# CPU 0 with one verification thread, the generator to CPU 1. Prints the
# generator's latency, the server's CPU per assertion, and how long the
# store's counter updates and last-use writes took (from /metrics): a long
# write on the one SQLite writer holds every counter update behind it.
#
# Usage: loadtest/big-db.sh [seconds]   (builds release binaries first)
#   POPULATION=200000  CREDENTIALS=20000  RATE=125  WARMUP=2
#   BIN=DIR (use DIR/assertd and DIR/assertd-loadgen instead of building)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
. loadtest/lib.sh
bench_build
tmp="$(mktemp -d)"
# Rows of a realistic size: 64-byte credential ids (security keys' are
# often that long) and 32-byte user handles.
"$bin/assertd-loadgen" gen-credentials --count "${POPULATION:-200000}" | python3 -c '
import base64, json, os, sys
b64 = lambda n: base64.urlsafe_b64encode(os.urandom(n)).decode().rstrip("=")
for line in sys.stdin:
    r = json.loads(line)
    r["credential_id"], r["user_handle"] = b64(64), b64(32)
    print(json.dumps(r))' > "$tmp/creds.jsonl"
BENCH_IMPORT="$tmp/creds.jsonl" bench_start $'[pool]\nthreads = 1' 0
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work" "$tmp"' EXIT
rm -f "$tmp/creds.jsonl"
taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --batch 64 --connections 2 --warmup "${WARMUP:-2}" \
  --duration "$secs" --server-pid "$pid" --counting --credentials "${CREDENTIALS:-20000}" \
  --pool $(((secs + 5) * 12000)) --mode open --rate "${RATE:-125}" 2> /dev/null | tail -1 > "$tmp/report"
curl -s "http://$metrics/metrics" > "$tmp/metrics"
python3 - "$tmp/report" "$tmp/metrics" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
m = open(sys.argv[2]).read()
def val(name, op, le=None):
    pat = rf'^assertd_store_duration_seconds_{name}{{operation="{op}"' + (rf',le="{re.escape(le)}"' if le else '') + r'} (\S+)$'
    x = re.search(pat, m, re.M)
    return float(x.group(1)) if x else 0.0
adv, adv50 = val("count", "advance_sign_counts"), val("bucket", "advance_sign_counts", "0.05")
print(f"{r['assertions_per_second']:.0f} assertions/s, p50 {r['latency']['p50_ms']:.2f} ms, p99 {r['latency']['p99_ms']:.2f} ms, "
      f"server CPU {r['server_cpu_per_assertion_us']:.1f} us/assertion, mismatches {r['mismatches']}, errors {sum(r['errors'].values())}")
print(f"counter updates: {adv:.0f} store calls, {adv - adv50:.0f} over 50 ms; "
      f"last-use writes: {val('count', 'touch'):.0f} store calls, {val('sum', 'touch'):.2f} s in all")
PY
