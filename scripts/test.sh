#!/usr/bin/env bash
# Runs every DOFS check: formatting, lints, supply chain (cargo deny), the Rust tests (unit,
# port conformance, black-box, crash, browser), the packaging (scripts/test-packaging.sh),
# and the infrastructure checks (the Lambda zips, Terraform deploying them, CI/CD, the
# container image built and run, the AWS shape on the emulator). `.ci/run` calls exactly this. Prerequisites (Chromium, the Python tool venv with moto and checkov)
# are installed by the project's own scripts, idempotently. With CI=true a
# missing prerequisite is a failure, never a skip.
#
# Usage: scripts/test.sh [--quick]   (--quick: Rust checks only)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false
case "${1:-}" in
  --quick) quick=true ;;
  -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--quick]" >&2; exit 2 ;;
esac

started=$(date +%s)
step() {
  local name=$1; shift
  local t0; t0=$(date +%s)
  printf '\n==> %s\n' "$name"
  "$@"
  printf '<== %s ok (%ss)\n' "$name" "$(( $(date +%s) - t0 ))"
}

optional_script() {
  # A project script for a part of the system; its absence is a failure in CI.
  local script=$1
  if [[ -x "$script" ]]; then
    "$script"
  elif [[ "${CI:-}" == "true" ]]; then
    echo "FAIL: $script is missing" >&2; return 1
  else
    echo "SKIP: $script is missing"
  fi
}

step "cargo fmt --check" cargo fmt --all -- --check

# The infrastructure checks mostly wait on the emulator and Terraform, so they
# run beside the Rust build and tests; their output is printed when they end.
infra_log=$(mktemp)
infra_pid=""
if [[ "$quick" == false ]]; then
  (
    set -e
    # The Lambda zips as AWS runs them (release, provided.al2023), each checked:
    # bootstrap at the root, executable, linked against nothing al2023 lacks. First,
    # because the emulator deploy ships exactly these zips. In a target directory of
    # their own, so this build does not wait on the cargo lock of the tests beside it.
    export DOFS_LAMBDA_DIR="${CARGO_TARGET_DIR:-$PWD/target}/lambda"
    step "lambda zips (scripts/build-lambdas.sh)" \
      env CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/lambda-build" \
      scripts/build-lambdas.sh --arch x86_64
    step "terraform" optional_script scripts/test-terraform.sh
    step "ci/cd" optional_script scripts/test-cicd.sh
  ) >"$infra_log" 2>&1 &
  infra_pid=$!
fi
stop_infra() { [[ -n "$infra_pid" ]] && kill "$infra_pid" 2>/dev/null; rm -f "$infra_log"; }
trap stop_infra EXIT

step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
if [[ "$quick" == false ]]; then
  step "supply chain (cargo deny)" optional_script scripts/test-supply-chain.sh
fi
if [[ -x scripts/setup-browser.sh ]]; then
  step "browser for the dashboard test" scripts/setup-browser.sh
fi
step "cargo test" cargo test --workspace --locked
step "kill campaign (short)" scripts/kill-campaign.sh --short
# The simulated backend, whose attempts can begin and end in one transaction.
step "kill campaign (short, simulated fulfillment)" scripts/kill-campaign.sh --short --simulated
if [[ "$quick" == false ]]; then
  step "packaging (Dockerfile, systemd unit, the image's runtime layout, compose file)" \
    env DOFS_BIN="${CARGO_TARGET_DIR:-target}/debug/dofs" scripts/test-packaging.sh
  # The Dockerfile built with buildah from debootstrapped bases and run with podman; after
  # the timing-sensitive tests, and not beside another apt-get.
  step "container image (scripts/test-image.sh)" optional_script scripts/test-image.sh
fi
if [[ "$quick" == false ]]; then
  step "schemathesis against /openapi.json" env DOFS_BIN="${CARGO_TARGET_DIR:-target}/debug/dofs" scripts/test-schemathesis.sh
  step "aws shape on the emulator" optional_script scripts/test-aws.sh
  printf '\n==> infrastructure checks (ran in the background)\n'
  infra_status=0
  wait "$infra_pid" || infra_status=$?
  infra_pid=""
  cat "$infra_log"
  if [[ $infra_status -ne 0 ]]; then
    echo "FAIL: infrastructure checks (exit $infra_status)" >&2
    exit 1
  fi
fi
printf '\nall checks passed in %ss\n' "$(( $(date +%s) - started ))"
