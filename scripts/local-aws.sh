#!/usr/bin/env bash
# The local AWS stack: moto server + the real Lambda binaries + API Gateway, Step
# Functions task dispatch and the SQS event source played by dofs-local-aws.
#
#   scripts/local-aws.sh                      # API on http://127.0.0.1:8080
#   scripts/local-aws.sh --bind 127.0.0.1:9090 --seed 42 --dlq-interval-ms 5000
#
# Every flag goes to dofs-local-aws (see --help); docs/aws-local.md explains what is
# emulated and what differs from AWS. Ctrl-C stops the stack and moto.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/tools.sh
source "$here/tools.sh"
cd "$root"

dofs_tools_venv || exit 1
port="${DOFS_MOTO_PORT:-$(dofs_free_port)}"
dofs_moto_start "$port" || exit 1
trap 'dofs_moto_stop "$port"' EXIT
dofs_emulator_credentials

cargo build --quiet -p dofs-lambdas -p dofs-local-aws --bins
target="${CARGO_TARGET_DIR:-$root/target}/debug"
"$target/dofs-local-aws" --aws-endpoint "$DOFS_MOTO_ENDPOINT" --lambda-dir "$target" "$@"
