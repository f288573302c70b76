#!/usr/bin/env bash
# Fuzzes the order decoder and validation (fuzz/fuzz_targets/decode_order.rs)
# with cargo-fuzz (libFuzzer), installing cargo-fuzz once if it is missing.
#
# Usage: scripts/fuzz.sh [SECONDS]     run for SECONDS (default 600)
#        scripts/fuzz.sh --replay      run every file of the kept corpus once
#
# The toolchain here is stable: cargo-fuzz's -Z flags (sanitizers, coverage)
# are enabled with RUSTC_BOOTSTRAP=1. New inputs found by a run go to a
# temporary directory, not to the repository: the kept corpus
# (fuzz/corpus/decode_order) stays small; add an input to it by hand when it
# covers something new. A crash is written to fuzz/artifacts/decode_order/
# and the script exits non-zero; turn it into a regression test in
# crates/core/src/validation.rs before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
target=decode_order
mode=run seconds=600
case "${1:-}" in
  --replay) mode=replay ;;
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
  "") ;;
  *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS|--replay]" >&2; exit 2 ;;
  *) seconds=$1 ;;
esac

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "installing cargo-fuzz $CARGO_FUZZ_VERSION (crates.io, once)" >&2
  cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz >&2
fi

export RUSTC_BOOTSTRAP=1
target_dir=()
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  target_dir=(--target-dir "$CARGO_TARGET_DIR/fuzz")
fi
corpus=fuzz/corpus/$target

if [[ "$mode" == replay ]]; then
  # -runs=0: execute every corpus file once and stop.
  cargo fuzz run --fuzz-dir fuzz "${target_dir[@]}" "$target" "$corpus" -- -runs=0
  exit 0
fi

scratch=$(mktemp -d)
log=$scratch.log
trap 'rm -rf "$scratch" "$log"' EXIT
echo "fuzzing $target for $seconds s (log: $log)" >&2
started=$(date +%s)
set +e
cargo fuzz run --fuzz-dir fuzz "${target_dir[@]}" "$target" "$scratch" "$corpus" -- \
  -max_total_time="$seconds" -print_final_stats=1 -max_len=4096 >"$log" 2>&1
status=$?
set -e
grep -E '^#[0-9]+.*(INITED|DONE)|^stat::|^(INFO: seed|SUMMARY|==[0-9]+==)|panicked|Test unit written' "$log" | tail -n 25
echo "duration: $(( $(date +%s) - started )) s; new inputs found this run: $(find "$scratch" -type f | wc -l) (not kept)"
if [[ $status -ne 0 ]]; then
  tail -n 40 "$log" >&2
fi
exit "$status"
