#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), seeded from the
# shared WebAuthn vectors, and prints execs/s and total execs per target.
# cargo-fuzz needs nightly features; the stable toolchain provides them with
# RUSTC_BOOTSTRAP=1 (no other toolchain is needed).
#
#   cargo install cargo-fuzz --locked
#   fuzz/run.sh 60                       # every target
#   fuzz/run.sh 60 registration verify   # some
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1
python3 - <<'PY'
import base64, json, os, hashlib
v = json.load(open("../crates/assertd-testkit/data/assertions.json")) + json.load(open("../crates/assertd-testkit/data/assertions_derived.json"))
d = lambda s: base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
seeds = {"client_data": [], "authenticator_data": [], "cose_key": [], "signature": [], "verify": [], "challenge": [],
         "registration": [], "attestation_none": [], "attestation_packed": [], "attestation_fido_u2f": [], "attestation_apple": [], "attestation_android_key": [], "attestation_tpm": []}
for x in v:
    cdj, ad, sig = d(x["client_data_json_b64url"]), d(x["authenticator_data_b64url"]), d(x["signature_b64url"])
    seeds["client_data"].append(cdj)
    seeds["authenticator_data"].append(ad)
    seeds["cose_key"].append(d(x["public_key_cose_b64url"]))
    seeds["signature"].append(sig)
    seeds["verify"].append(bytes([min(len(cdj), 255), min(len(ad), 255)]) + cdj[:255] + ad[:255] + sig)
    seeds["challenge"].append(ad[:91])
# Registrations: the whole response, and each statement under its format's
# target (the attStmt map, cut out of the attestation object with cbor2 when
# it is installed; otherwise the whole object, which the target refuses
# quickly but still mutates from).
try:
    import cbor2
except ImportError:
    cbor2 = None
for x in json.load(open("../crates/assertd-testkit/data/registrations.json")):
    cdj, ao = d(x["client_data_json_b64url"]), d(x["attestation_object_b64url"])
    seeds["registration"].append(bytes([min(len(cdj), 255)]) + cdj[:255] + ao)
    target = "attestation_" + (x["fmt"] or "").replace("-", "_")
    if target in seeds:
        seeds[target].append(cbor2.dumps(cbor2.loads(ao)["attStmt"]) if cbor2 else ao)
for target, items in seeds.items():
    os.makedirs(f"corpus/{target}", exist_ok=True)
    for s in items:
        open(f"corpus/{target}/{hashlib.sha1(s).hexdigest()}", "wb").write(s)
PY
targets=(client_data authenticator_data cose_key signature verify challenge registration attestation_none attestation_packed attestation_fido_u2f attestation_apple attestation_android_key attestation_tpm)
[ $# -gt 1 ] && targets=("${@:2}")
for t in "${targets[@]}"; do
  log="$(mktemp)"
  cargo fuzz run --release "$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1 || { tail -40 "$log"; echo "FAIL $t"; exit 1; }
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  echo "$t: $execs execs in ${secs}s ($rate/s), 0 crashes"
  rm -f "$log"
done
