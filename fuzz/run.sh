#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), seeded from the
# shared WebAuthn vectors, and prints execs/s and total execs per target.
# cargo-fuzz needs nightly features; the stable toolchain provides them with
# RUSTC_BOOTSTRAP=1 (no other toolchain is needed).
#
#   cargo install cargo-fuzz --locked
#   fuzz/run.sh 60
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1
python3 - <<'PY'
import base64, json, os, hashlib
v = json.load(open("../crates/assertd-testkit/data/assertions.json")) + json.load(open("../crates/assertd-testkit/data/assertions_derived.json"))
d = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
seeds = {"client_data": [], "authenticator_data": [], "cose_key": [], "signature": [], "verify": [], "challenge": []}
for x in v:
    cdj, ad, sig = d(x["client_data_json_b64url"]), d(x["authenticator_data_b64url"]), d(x["signature_b64url"])
    seeds["client_data"].append(cdj)
    seeds["authenticator_data"].append(ad)
    seeds["cose_key"].append(d(x["public_key_cose_b64url"]))
    seeds["signature"].append(sig)
    seeds["verify"].append(bytes([min(len(cdj), 255), min(len(ad), 255)]) + cdj[:255] + ad[:255] + sig)
    seeds["challenge"].append(ad[:91])
for target, items in seeds.items():
    os.makedirs(f"corpus/{target}", exist_ok=True)
    for s in items:
        open(f"corpus/{target}/{hashlib.sha1(s).hexdigest()}", "wb").write(s)
PY
for t in client_data authenticator_data cose_key signature verify challenge; do
  log="$(mktemp)"
  cargo fuzz run --release "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || { tail -40 "$log"; echo "FAIL $t"; exit 1; }
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  echo "$t: $execs execs in ${secs}s ($rate/s), 0 crashes"
  rm -f "$log"
done
