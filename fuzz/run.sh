#!/usr/bin/env bash
# Runs fuzz targets under libFuzzer for a while each: fuzz/run.sh [SECONDS] [TARGET...]
# (default: 600 s, every target). Needs the nightly toolchain and cargo-fuzz
# (`rustup toolchain install nightly; cargo install cargo-fuzz`). Inputs that add coverage go
# to fuzz/corpus/TARGET (commit the small ones); a crasher goes to fuzz/artifacts/TARGET: fix it,
# then keep it in fuzz/regressions/TARGET, which the test of this crate replays in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(promql remote_write remote_read openmetrics block)
cargo run --quiet -p fleetscope-fuzz --example seeds -- fuzz/corpus
# Instrumented builds must not share compiled code with the normal ones.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/fleetscope-fuzz-target}"
for t in "${targets[@]}"; do
  echo "=== $t for ${seconds}s"
  # --dev: debug assertions and overflow checks on, and a build of minutes rather than most of an hour.
  cargo +nightly fuzz run --fuzz-dir fuzz --dev --sanitizer none --features fuzzing "$t" \
    "fuzz/corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 -max_len=65536 \
    2>&1 | tee "fuzz/last-$t.log" | grep -E '^(#[0-9]+ +(pulse|DONE)|==|SUMMARY|Done)' || true
  grep -E '^Done [0-9]+ runs' "fuzz/last-$t.log" || { echo "$t did not finish cleanly: see fuzz/last-$t.log" >&2; exit 1; }
done
