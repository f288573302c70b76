#!/usr/bin/env bash
# test-system.sh: a thin wrapper around `dofs test-system`, which checks
#   the contract's test suite: valid orders, every invalid-order rule, edge cases,
#   idempotency, the lifecycle to terminal with the expected fulfilled share, and
#   every answer checked against /openapi.json; --load adds a load phase.
#
# Usage: ./test-system.sh [URL] [dofs test-system flags...]
#   URL (or --endpoint URL, or DOFS_ENDPOINT): the embedded server
#   (default http://127.0.0.1:8080) or the API Gateway stage URL.
#   --api-key KEY (or DOFS_API_KEY) when the deployment has keys.
#   e.g. ./test-system.sh --load --load-orders 5000
#   ./test-system.sh --help lists every flag.
# Exit codes: 0 every check passed, 1 a check failed, 2 usage error, 3 endpoint unreachable.
#
# The dofs binary: $DOFS_BIN if set; else built with cargo from this
# repository (release profile); else `dofs` on PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

find_dofs() {
  if [[ -n "${DOFS_BIN:-}" ]]; then
    echo "$DOFS_BIN"
  elif command -v cargo >/dev/null 2>&1; then
    cargo build --release --quiet --manifest-path "$here/Cargo.toml" -p dofs-cli --bin dofs >&2 ||
      { echo "test-system.sh: cargo build failed" >&2; exit 2; }
    echo "${CARGO_TARGET_DIR:-$here/target}/release/dofs"
  elif command -v dofs >/dev/null 2>&1; then
    command -v dofs
  else
    echo "test-system.sh: no dofs binary: install Rust (cargo), put dofs on PATH, or set DOFS_BIN" >&2
    exit 2
  fi
}

dofs="$(find_dofs)"
if [[ $# -gt 0 && "$1" =~ ^https?:// ]]; then
  endpoint="$1"
  shift
  set -- --endpoint "$endpoint" "$@"
fi
exec "$dofs" test-system "$@"
