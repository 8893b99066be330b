#!/usr/bin/env bash
# The cost account: instructions per assertion, counted by valgrind's
# callgrind (repeatable for a binary and its inputs, whatever else the host
# is doing), for
#
#   a  batch 64, counter-less      b  batch 64, counting (512 credentials)
#   c  batch 1,  counter-less      d  batch 1,  counting (512 credentials)
#
# The server runs under callgrind with one verification thread; the load
# generator (not under valgrind) sends a fixed number of requests at a fixed
# depth (IN_FLIGHT, default 4). Each workload runs twice, with SHORT and
# LONG requests: both runs share the start, the credentials put, and the
# shutdown, so the difference of the two counts, divided by the difference
# of the assertions the server answered (assertd_assertions_total), is the
# steady cost of one assertion, every thread included (the store's writer,
# the tokio workers, the verification thread). loadtest/cg_account.py
# splits it: inside ring, and outside ring by area (HTTP/2 and tonic,
# protobuf, tower stack, engine, parsing, hashing, store, allocation,
# metrics and tracing, runtime, ...), with the top symbols outside ring.
#
# Usage: loadtest/instructions.sh [workloads]   (default "a b c d")
#   BIN=DIR (use DIR/assertd and DIR/assertd-loadgen instead of building)
#   REPORT_DIR=DIR (default .): instructions-<workload>.json and the
#   callgrind files; IN_FLIGHT=4; SHORT/LONG: requests per run (defaults:
#   batch 64: 10 / 60; batch 1: 200 / 1200); CACHE_SIM=1: also simulate the
#   caches and branch predictors and report estimated cycles (KCachegrind's
#   estimate: Ir + 10 per L1 miss or mispredicted branch + 100 per
#   last-level miss), which weighs code that misses the cache. Work that depends on time, not
#   on requests (a clock's one-time calibration, the 1 s health ticker)
#   differs between the two runs: the longer the difference, the smaller
#   its share (run twice to see the spread).
set -euo pipefail
cd "$(dirname "$0")/.."
workloads="${1:-a b c d}"
out="${REPORT_DIR:-.}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
depth="${IN_FLIGHT:-4}"
. loadtest/lib.sh
bench_build

# One server under callgrind, one load, a clean stop; prints the server's
# answered assertions (the callgrind file is $out/cg-$1-$2.out).
measure() {
  local name="$1" requests="$2" batch="$3" counting="$4"
  local work
  work="$(mktemp -d)"
  # Under valgrind everything is ~50x slower: admission by time must not
  # shed the fixed load, nor calls time out.
  bench_config "$work" $'[pool]\nthreads = 1\n[limits]\nmax_queue_wait_ms = 600000'
  local sim=()
  if [ -n "${CACHE_SIM:-}" ]; then sim=(--cache-sim=yes --branch-sim=yes); fi
  ASSERTD_LOG=warn valgrind --tool=callgrind "${sim[@]}" --callgrind-out-file="$out/cg-$name-$requests.out" \
    "$bin/assertd" serve --config "$work/assertd.toml" > "$work/out" 2> "$work/valgrind.log" &
  local vpid=$!
  for _ in $(seq 600); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
  local addr metrics
  addr=$(sed -n 's/.*grpc=\([0-9.:]*\).*/\1/p' "$work/out")
  metrics=$(sed -n 's/.*metrics=\([0-9.:]*\).*/\1/p' "$work/out")
  [ -n "$addr" ] || { echo "assertd did not start under valgrind" >&2; cat "$work/valgrind.log" >&2; exit 1; }
  local extra=()
  if [ "$counting" = 1 ]; then
    extra+=(--counting --credentials 512 --pool $(((requests + depth) * batch + 512)))
  else
    extra+=(--credentials 64 --pool 4096)
  fi
  "$bin/assertd-loadgen" run --target "http://$addr" --batch "$batch" --in-flight "$depth" --connections 1 \
    --warmup 0 --duration 3600 --requests "$requests" "${extra[@]}" --json "$work/report.json" > /dev/null 2> "$work/loadgen.log" ||
    { cat "$work/loadgen.log" >&2; exit 1; }
  sleep 1
  local answered
  answered=$(curl -s "http://$metrics/metrics" | awk '/^assertd_assertions_total\{/ { n += $2 } END { printf "%d", n }')
  kill -TERM "$vpid"
  wait "$vpid" || true
  rm -rf "$work"
  echo "$answered"
}

for w in $workloads; do
  case "$w" in
    a) batch=64 counting=0 ;;
    b) batch=64 counting=1 ;;
    c) batch=1 counting=0 ;;
    d) batch=1 counting=1 ;;
    *) echo "unknown workload $w (a b c d)" >&2; exit 2 ;;
  esac
  if [ "$batch" = 64 ]; then short="${SHORT:-10}" long="${LONG:-60}"; else short="${SHORT:-200}" long="${LONG:-1200}"; fi
  echo "--- workload $w: batch $batch, counting $counting, $depth in flight: $short then $long requests under callgrind"
  n_short=$(measure "$w" "$short" "$batch" "$counting")
  n_long=$(measure "$w" "$long" "$batch" "$counting")
  python3 loadtest/cg_account.py "$out/cg-$w-$short.out" "$n_short" "$out/cg-$w-$long.out" "$n_long" \
    --label "$w: batch $batch, $([ "$counting" = 1 ] && echo counting || echo counter-less), $depth in flight" \
    --json "$out/instructions-$w.json"
done
