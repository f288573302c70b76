#!/usr/bin/env bash
# validate-system.sh: a thin wrapper around `dofs validate-system`, which checks
#   the health of a deployment: /health and /ready (store and queue reachable), the API key,
#   every contract route, the DLQ depth, firing alerts, metrics and the OpenAPI document.
#
# Usage: ./validate-system.sh [URL] [dofs validate-system flags...]
#   URL (or --endpoint URL, or DOFS_ENDPOINT): the embedded server
#   (default http://127.0.0.1:8080) or the API Gateway stage URL.
#   --api-key KEY (or DOFS_API_KEY) when the deployment has keys.
#   e.g. ./validate-system.sh --max-dlq-depth 0
#   ./validate-system.sh --help lists every flag.
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
      { echo "validate-system.sh: cargo build failed" >&2; exit 2; }
    echo "${CARGO_TARGET_DIR:-$here/target}/release/dofs"
  elif command -v dofs >/dev/null 2>&1; then
    command -v dofs
  else
    echo "validate-system.sh: no dofs binary: install Rust (cargo), put dofs on PATH, or set DOFS_BIN" >&2
    exit 2
  fi
}

dofs="$(find_dofs)"
if [[ $# -gt 0 && "$1" =~ ^https?:// ]]; then
  endpoint="$1"
  shift
  set -- --endpoint "$endpoint" "$@"
fi
exec "$dofs" validate-system "$@"
