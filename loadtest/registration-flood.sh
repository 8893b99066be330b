#!/usr/bin/env bash
# Issue 26 §4 measurements against a release build, through the e2e harness
# (the clients are the test binary's; the server is BIN/assertd):
#   * single-assertion sign-ins one at a time, p50/p99, alone and beside 8
#     clients sending a real TPM registration as fast as they can;
#   * the server's RSS after 40 streams over one connection each stall one
#     byte short of a 15 MiB message.
#
# Usage: loadtest/registration-flood.sh [seconds]   (builds release binaries first)
#   BIN=DIR (use DIR/assertd instead of building)
set -euo pipefail
cd "$(dirname "$0")/.."
. loadtest/lib.sh
bench_build
export ASSERTD_TEST_BIN="$bin/assertd" FLOOD_SECONDS="${1:-10}"
cargo nextest run -p assertd --run-ignored only --no-capture \
  -E 'test(registration_flood_measurement) | test(stalled_streams_measurement)' 2>&1 |
  grep -E '^(alone|beside|the flood|40 streams)'
