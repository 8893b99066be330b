#!/usr/bin/env bash
# The policy preview over a large store: COUNT credentials of a rollout's
# mix (`gen-credentials --mixed`: two per user, 40% synced, half attested,
# four AAGUIDs) imported into SQLite and into PostgreSQL (a fresh cluster on
# loopback, durable defaults), then `assertd policy preview` of a candidate
# that refuses synced passkeys and holds an allowed profile to attestation
# and two models, against the policy in force, RUNS times per store. Prints
# per run the wall time and the peak resident memory (GNU time), then the
# last run's table.
#
# Usage: loadtest/preview.sh   (builds release binaries first)
#   COUNT=1000000  RUNS=3  STORES="sqlite postgres"
#   BIN=DIR (use DIR/assertd and DIR/assertd-loadgen instead of building)
#   ASSERTD_PG_BIN=/usr/lib/postgresql/NN/bin (default: the newest there)
set -euo pipefail
cd "$(dirname "$0")/.."
count="${COUNT:-1000000}"
runs="${RUNS:-3}"
stores="${STORES:-sqlite postgres}"
. loadtest/lib.sh
bench_build

work="$(mktemp -d)"
pgbin="${ASSERTD_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -1)}"
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  if [ -d "$work/pg" ]; then as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop > /dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$(id -u)" = 0 ]; then chmod 0777 "$work"; fi

"$bin/assertd-loadgen" gen-credentials --count "$count" --mixed > "$work/creds.jsonl"
policy() {
  cat << 'TOML'
[[relying_parties]]
id = "login.example.com"
origins = ["https://login.example.com"]
default_profile = "workforce"
allowed_profiles = ["admins"]
TOML
}
in_force() {
  policy
  printf '\n[profiles.workforce]\n\n[profiles.admins]\npasskey_types = ["device_bound"]\n'
}
candidate() {
  policy
  cat << 'TOML'

[profiles.workforce]
passkey_types = ["device_bound"]

[profiles.admins]
passkey_types = ["device_bound"]
attestation_enforcement = "registration_only"
key_restrictions = { enforced = true, enforcement_type = "allow", aaguids = ["11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"] }
TOML
}

for store in $stores; do
  case "$store" in
    sqlite) header="data_dir = \"$work/sqlite\"" ;;
    postgres)
      port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
      as_pg "$pgbin/initdb" -D "$work/pg" -A trust -U postgres -E UTF8 > /dev/null
      as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w -o "-p $port -k $work -c listen_addresses=127.0.0.1" start > /dev/null
      header=$'[store]\nbackend = "postgres"\nurl = "postgres://postgres@127.0.0.1:'"$port"$'/postgres"'
      ;;
    *) echo "unknown store $store" >&2; exit 1 ;;
  esac
  # Top-level keys first, then the tables.
  { echo "$header" | grep -v '^\[' | grep -v '^backend\|^url' || true; in_force; echo "$header" | sed -n '/^\[store\]/,$p'; } > "$work/in-force.toml"
  { echo "$header" | grep -v '^\[' | grep -v '^backend\|^url' || true; candidate; echo "$header" | sed -n '/^\[store\]/,$p'; } > "$work/candidate.toml"
  start=$(date +%s.%N)
  "$bin/assertd" credentials import "$work/creds.jsonl" --config "$work/in-force.toml" > /dev/null
  echo "$store: imported $count credentials in $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
  for i in $(seq "$runs"); do
    ASSERTD_LOG=warn /usr/bin/time -f "%e %M" -o "$work/time" "$bin/assertd" policy preview --config "$work/candidate.toml" \
      --in-force "$work/in-force.toml" --users newly --out "$work/preview.jsonl" > "$work/table" 2> /dev/null
    read -r secs kib < "$work/time"
    echo "$store run $i: ${secs} s, peak RSS $((kib / 1024)) MiB, users listed $(($(wc -l < "$work/preview.jsonl") - 1))"
  done
  cat "$work/table"
done
