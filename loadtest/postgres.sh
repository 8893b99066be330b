#!/usr/bin/env bash
# Replicas sharing one PostgreSQL: one replica, then two, each with its own
# load generator, for both workloads (counter-less; counting: every verdict
# advances a counter in PostgreSQL). A fresh cluster with PostgreSQL's
# durable defaults (fsync on, synchronous_commit on) on loopback.
#
# Replica i is pinned to CPU i mod 2 with one verification thread (THREADS=1,
# the default); the load generators and PostgreSQL are not pinned. This
# machine has two cores, so with two replicas everything shares them: the
# figures show how the replicas and PostgreSQL split the machine, not a
# replica's capacity.
# Reported per run: assertions/s per replica and in total, each replica's
# CPU per assertion, PostgreSQL's CPU per assertion (its processes' time
# from /proc; every process of the postgres user, so run nothing else of
# PostgreSQL meanwhile), and per batch PostgreSQL's commits (pg_stat_database:
# every statement outside a transaction is one, reads included) and WAL
# flushes (pg_stat_wal: fewer than the writing commits when concurrent
# commits share one flush). With PG_STATEMENTS=1, also the statements that
# took PostgreSQL's time (pg_stat_statements) and how many row updates were
# HOT.
#
# Usage: loadtest/postgres.sh [seconds]   (builds release binaries first)
#   WORKLOADS="counterless counting" REPLICAS="1 2" IN_FLIGHT=8 (per replica)
#   BATCH=64 (assertions per call)
#   THREADS=1 (verification threads per replica; above 1 the replicas are
#              not pinned)
#   BIN=DIR (use DIR/assertd and DIR/assertd-loadgen instead of building)
#   ASSERTD_PG_BIN=/usr/lib/postgresql/NN/bin (default: the newest there)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
workloads="${WORKLOADS:-counterless counting}"
replica_counts="${REPLICAS:-1 2}"
depth="${IN_FLIGHT:-8}"
batch="${BATCH:-64}"
threads="${THREADS:-1}"
. loadtest/lib.sh
bench_build

pgbin="${ASSERTD_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop > /dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chmod 0777 "$work"; fi
port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
as_pg "$pgbin/initdb" -D "$work/pg" -A trust -U postgres -E UTF8 > /dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on" start > /dev/null
psql_() { as_pg "$pgbin/psql" -h "$work" -p "$port" -U postgres -d postgres -At -c "$1"; }
psql_ "CREATE EXTENSION pg_stat_statements" > /dev/null
url="postgres://postgres@127.0.0.1:$port/postgres"
echo "PostgreSQL $(psql_ 'SHOW server_version'): fsync $(psql_ 'SHOW fsync'), synchronous_commit $(psql_ 'SHOW synchronous_commit')"

# CPU seconds (user + system) of every process of PostgreSQL's server.
pg_cpu() {
  local total=0 p
  for p in $(pgrep -u postgres || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
# Assertions answered so far by replicas 0..$1-1 (their /metrics).
answered() {
  local i total=0
  for i in $(seq 0 $(($1 - 1))); do
    total=$((total + $(curl -s "$(cat "$work/replica-$i/metrics")/metrics" | awk '/^assertd_assertions_total/ {s += $2} END {printf "%d", s}')))
  done
  echo "$total"
}
# Transactions committed (every statement outside a transaction is one,
# reads included) and WAL flushes to disk, so far.
commits() { psql_ "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'"; }
fsyncs() { psql_ "SELECT wal_sync FROM pg_stat_wal"; }

start_replica() {
  local i="$1" dir="$work/replica-$1"
  mkdir -p "$dir"
  cat > "$dir/assertd.toml" <<TOML
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
data_dir = "$dir/data"
[store]
backend = "postgres"
url = "$url"
[pool]
threads = $threads
[[relying_parties]]
id = "login.example.com"
origins = ["https://login.example.com"]
TOML
  local pin=()
  if [ "$threads" = 1 ]; then pin=(taskset -c $((i % 2))); fi
  ASSERTD_LOG=warn "${pin[@]}" "$bin/assertd" serve --config "$dir/assertd.toml" > "$dir/out" &
  pids+=($!)
  echo $! > "$dir/pid"
  for _ in $(seq 100); do grep -q listening "$dir/out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/.*grpc=\([0-9.:]*\).*/\1/p' "$dir/out" > "$dir/addr"
  sed -n 's/.*metrics=\([0-9.:]*\).*/\1/p' "$dir/out" > "$dir/metrics"
  if [ ! -s "$dir/addr" ]; then
    echo "replica $i did not start:" >&2
    cat "$dir/out" >&2
    exit 1
  fi
}

for n in $replica_counts; do
  for i in $(seq 0 $((n - 1))); do start_replica "$i"; done
  for wl in $workloads; do
    extra=()
    if [ "$wl" = counting ]; then extra=(--counting --credentials 512 --pool $(((secs + 3) * 20000 * threads))); fi
    # PostgreSQL's commits and CPU over the generators' whole run (set-up
    # and warm-up included), divided by every assertion answered in it.
    psql_ "SELECT pg_stat_statements_reset()" > /dev/null
    c0=$(commits); f0=$(fsyncs); p0=$(pg_cpu); a0=$(answered "$n")
    gens=()
    for i in $(seq 0 $((n - 1))); do
      dir="$work/replica-$i"
      "$bin/assertd-loadgen" run --target "http://$(cat "$dir/addr")" --batch "$batch" --connections 2 --warmup 2 \
        --duration "$secs" --in-flight "$depth" --server-pid "$(cat "$dir/pid")" "${extra[@]}" 2>/dev/null > "$dir/report" &
      gens+=($!)
    done
    wait "${gens[@]}"
    c1=$(commits); f1=$(fsyncs); p1=$(pg_cpu); a1=$(answered "$n")
    python3 - "$n" "$wl" "$depth" "$((c1 - c0))" "$((f1 - f0))" "$((p1 - p0))" "$((a1 - a0))" "$work" "$batch" <<'PY'
import json, sys
n, wl, depth, commits, flushes, pg_ticks, answered, work, batch = sys.argv[1:]
batch = int(batch)
n, commits, flushes, pg_ticks, answered = int(n), int(commits), int(flushes), int(pg_ticks), int(answered)
reports = [json.loads(open(f"{work}/replica-{i}/report").read().strip().splitlines()[-1]) for i in range(n)]
rate = sum(r["assertions_per_second"] for r in reports)
per = ", ".join(
    f"replica {i}: {r['assertions_per_second']:.0f}/s, {r['server_cpu_per_assertion_us']:.1f} us CPU per assertion, "
    f"p99 {r['latency']['p99_ms']:.1f} ms, errors {sum(r['errors'].values())}, mismatches {r['mismatches']}"
    + (", POOL EXHAUSTED" if r.get("pool_exhausted") else "")
    for i, r in enumerate(reports)
)
print(f"{wl}, {n} replica(s), batch {batch}, {depth} in flight each: {rate:.0f} assertions/s in total; {per}; "
      f"PostgreSQL {pg_ticks * 10000 / answered:.1f} us CPU per assertion, per batch of {batch}: {commits / (answered / batch):.2f} commits, {flushes / (answered / batch):.2f} WAL flushes")
PY
    if [ -n "${PG_STATEMENTS:-}" ]; then
      # Where PostgreSQL's time went: the statements by total time, and how
      # many row updates were HOT (no index entry written).
      psql_ "SELECT round(total_exec_time)::text || ' ms executing, ' || round(total_plan_time)::text || ' ms planning, ' || calls || ' calls, ' || rows || ' rows: ' || left(regexp_replace(query, '\s+', ' ', 'g'), 90)
             FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 5"
      psql_ "SELECT 'credentials: ' || n_tup_upd || ' row updates, ' || n_tup_hot_upd || ' HOT' FROM pg_stat_user_tables WHERE relname = 'credentials'"
    fi
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
done
