#!/usr/bin/env bash
# Runs schemathesis (PyPI, in the project tool venv) against /openapi.json of
# a live `dofs serve` (loopback, random port, temporary data directory, API
# keys on) with every check enabled. Passes only with zero 5XX answers and
# zero answers that break the document. The server's log is printed when a
# check fails.
#
# Usage: [DOFS_BIN=path/to/dofs] scripts/test-schemathesis.sh [MAX_SECONDS]   (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/tools.sh
source scripts/tools.sh

max_time=${1:-60}
status=0
dofs_tools_venv || { status=$?; [[ $status -eq 2 ]] && exit 0; exit "$status"; }
dofs_require schemathesis "the API fuzz check (pip, via scripts/tools.sh)" ||
  { status=$?; [[ $status -eq 2 ]] && exit 0; exit "$status"; }

# DOFS_BIN: a dofs binary already built (scripts/test.sh passes the one
# `cargo test` just built, which a `cargo build` with other features would redo).
if [[ -n "${DOFS_BIN:-}" && -x "$DOFS_BIN" ]]; then
  dofs=$DOFS_BIN
else
  cargo build --locked -q -p dofs-cli
  dofs="${CARGO_TARGET_DIR:-target}/debug/dofs"
fi
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Keys are generated per run: they never leave this machine.
submit_key="submit-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
operator_key="operator-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
DOFS_AUTH_API_KEYS="$submit_key" DOFS_AUTH_OPERATOR_KEYS="$operator_key" \
  DOFS_QUEUE_BACKOFF_BASE_MS=5 DOFS_QUEUE_BACKOFF_MAX_MS=20 \
  "$dofs" serve --bind 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/log" &
server_pid=$!
for _ in $(seq 100); do
  grep -q 'listening on' "$work/out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/log" >&2; echo "FAIL: dofs serve exited" >&2; exit 1; }
  sleep 0.1
done
base=$(sed -n 's/^dofs listening on //p' "$work/out")
[[ -n "$base" ]] || { echo "FAIL: dofs serve did not start" >&2; exit 1; }
echo "schemathesis $(schemathesis --version | awk '{print $NF}') against $base/openapi.json, at most ${max_time}s"

set +e
# From the temporary directory: schemathesis keeps a cache (.schemathesis/) in its working directory.
config="$PWD/scripts/schemathesis.toml"
(cd "$work" && schemathesis --config-file "$config" run "$base/openapi.json" \
  --checks all \
  --header "x-api-key: $operator_key" \
  --max-time "$max_time" \
  --workers 1 \
  --seed 1 \
  --no-color) \
  >"$work/report" 2>&1
status=$?
set -e
# The summary (the per-operation progress lines are long and many).
sed -n '/^=* *SUMMARY/,$p' "$work/report"
if [[ $status -ne 0 ]]; then
  head -n 200 "$work/report" >&2
  echo "--- server log (last 40 lines)" >&2
  tail -n 40 "$work/log" >&2
  echo "FAIL: schemathesis found problems (exit $status)" >&2
  exit 1
fi
