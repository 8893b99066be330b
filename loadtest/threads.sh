#!/usr/bin/env bash
# Where the server's CPU goes, by thread: assertd pinned to CPU 0 with one
# verification thread, the load generator on CPU 1 (as single-core.sh), and
# each server thread's CPU time (/proc/PID/task/*/stat, grouped by thread
# name) over WINDOW seconds of steady load, divided by the assertions
# answered in that window (assertd_assertions_total from /metrics), with
# the system (kernel) part in parentheses.
#
# Usage: loadtest/threads.sh [seconds]   (builds release binaries first)
#   WORKLOAD=counterless|counting  BATCH=64  IN_FLIGHT=8  WINDOW=5
#   CREDENTIALS=512 (counting: credentials the assertions cycle over; a
#            large population writes a different SQLite page per update)
#   STREAM=1 (VerifyAssertionsStream over 4 streams instead of unary)
#   BIN=DIR (use DIR/assertd and DIR/assertd-loadgen instead of building:
#            to set two builds against each other, run them alternately)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
window="${WINDOW:-5}"
. loadtest/lib.sh
bench_build
bench_start $'[pool]\nthreads = 1' 0
extra=()
if [ "${WORKLOAD:-counterless}" = counting ]; then extra=(--counting --credentials "${CREDENTIALS:-512}" --pool $(((secs + 3) * 30000))); fi
if [ -n "${STREAM:-}" ]; then extra+=(--stream --concurrency 4); fi
taskset -c 1 "$bin/assertd-loadgen" run --target "http://$addr" --batch "${BATCH:-64}" --connections 2 --warmup 2 \
  --duration "$secs" --in-flight "${IN_FLIGHT:-8}" --server-pid "$pid" "${extra[@]}" > /dev/null 2>&1 &
gen=$!
# CPU ticks per thread name: user, then system (the kernel's share:
# sockets, futexes, fdatasync).
snap() {
  for t in /proc/"$pid"/task/*; do echo "$(tr ' ' _ < "$t/comm") $(cut -d')' -f2 "$t/stat" | awk '{print $12, $13}')"; done |
    awk '{u[$1] += $2; s[$1] += $3} END {for (k in u) print k, u[k], s[k]}' | sort
}
answered() { curl -s "$metrics/metrics" | awk '/^assertd_assertions_total/ {s += $2} END {printf "%d", s}'; }
# Steady load: the generator signs its assertions first, then warms up.
until [ "$(answered)" -gt 0 ]; do sleep 0.2; done
sleep 2
s0=$(snap); a0=$(answered)
sleep "$window"
s1=$(snap); a1=$(answered)
wait "$gen"
n=$((a1 - a0))
tick_us=$((1000000 / $(getconf CLK_TCK)))
join <(echo "$s0") <(echo "$s1") | awk -v n="$n" -v t="$tick_us" -v w="$window" '
  {u = ($4 - $2) * t / n; k = ($5 - $3) * t / n; if (u + k > 0) printf "%s %.1f us (system %.1f)  ", $1, u + k, k}
  END {printf "| %d assertions/s\n", n / w}'
