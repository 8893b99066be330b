# Shared by the benchmark scripts (source it): build the release binaries
# and run one assertd for login.example.com on loopback ports.
#
#   bench_build                      cargo build --release assertd + loadgen; sets $bin
#                                    (BIN=DIR: use the binaries in DIR instead,
#                                    to set two builds against each other)
#   bench_calibrate CPU [ALG]        raw ring verifies/s of ALG (es256 by
#                                    default) on CPU; sets $raw
#   bench_start "TOML" [taskset]     writes a config (the RP, then TOML), starts
#                                    assertd (pinned with `taskset -c CPU` if
#                                    given); sets $pid, $addr, $metrics, $work
# The server is killed and $work removed when the script exits.

bench_build() {
  if [ -n "${BIN:-}" ]; then
    bin="$BIN"
    return
  fi
  cargo build --release -q -p assertd -p assertd-loadgen
  bin="${CARGO_TARGET_DIR:-target}/release"
  if [[ "$bin" != /* ]]; then bin="$PWD/$bin"; fi
}

# Raw ring ES256 verifies/s on CPU $1 (sets $raw, prints it): the figure
# every ratio in the same run is taken against.
bench_calibrate() {
  local alg="${2:-es256}"
  raw=$(taskset -c "$1" "$bin/assertd-loadgen" calibrate --seconds 5 --alg "$alg" | sed 's/.*"raw_ring_verifies_per_second":\([0-9.]*\).*/\1/')
  echo "raw ring ${alg^^} on CPU $1: $raw verifies/s"
}

# Writes DIR/assertd.toml: loopback ports, data in DIR/data, the relying
# party, then the TOML given.
bench_config() {
  cat > "$1/assertd.toml" <<TOML
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
data_dir = "$1/data"
[[relying_parties]]
id = "login.example.com"
origins = ["https://login.example.com"]
$2
TOML
}

bench_start() {
  local extra="$1" cpu="${2:-}"
  work="$(mktemp -d)"
  trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  bench_config "$work" "$extra"
  local pin=()
  if [ -n "$cpu" ]; then pin=(taskset -c "$cpu"); fi
  if [ -n "${BENCH_IMPORT:-}" ]; then
    "$bin/assertd" credentials import "$BENCH_IMPORT" --config "$work/assertd.toml" > /dev/null
  fi
  ASSERTD_LOG=warn "${pin[@]}" "$bin/assertd" serve --config "$work/assertd.toml" > "$work/out" &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$work/out" 2>/dev/null && break; sleep 0.1; done
  addr=$(sed -n 's/.*grpc=\([0-9.:]*\).*/\1/p' "$work/out")
  metrics=$(sed -n 's/.*metrics=\([0-9.:]*\).*/\1/p' "$work/out")
  if [ -z "$addr" ]; then
    echo "assertd did not start" >&2
    exit 1
  fi
}
