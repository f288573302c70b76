#!/usr/bin/env bash
# Tests of DOFS's AWS shape (crates/aws, lambdas/, crates/aws-local):
#
#   1. unit tests and the Lambda handler tests fed real event JSON;
#   2. the port conformance suites on moto server, with random table and queue names;
#   3. the black-box API tests of crates/blackbox (the ones dofs serve passes) against
#      the local AWS stack (dofs-local-aws on moto, the real Lambda binaries), including
#      300 orders with a fixed seed, each to the terminal status the seed predicts;
#   4. with DOFS_LAMBDA_BUILD=1: scripts/build-lambdas.sh, the Lambda zips built by
#      cargo-lambda for provided.al2023 (x86_64, and arm64 when the rustup target is there).
#
# Usage: scripts/test-aws.sh [extra cargo test args]
# With CI=true a missing prerequisite (python3, moto from PyPI) is a failure;
# otherwise the emulator parts print SKIP and the offline tests still run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/tools.sh
source "$here/tools.sh"
cd "$root"

packages=(-p dofs-aws -p dofs-lambdas -p dofs-local-aws)

emulator=0
if dofs_tools_venv; then
    port="$(dofs_free_port)"
    if dofs_moto_start "$port"; then
        emulator=1
        trap 'dofs_moto_stop "$port"' EXIT
    elif dofs_ci; then
        echo "FAIL: moto server did not start (CI=true)" >&2
        exit 1
    else
        echo "SKIP: moto server did not start; emulator tests skipped"
    fi
else
    rc=$?
    [[ $rc -eq 2 ]] || exit 1
fi

# The black-box tests run the Lambda binaries from the same target directory.
cargo build --quiet -p dofs-lambdas --bins

if [[ $emulator -eq 1 ]]; then
    export DOFS_MOTO_ENDPOINT DOFS_REQUIRE_EMULATOR=1
    dofs_emulator_credentials
fi
# The DLQ actions' time bound runs alone, after the rest: every stack's calls go to the one
# moto server, and under the other tests' load a single call of moto's can outlast a
# request's reserve, which is AWS's latency that test stands in for, not moto's.
bound=dlq_redrive_and_purge_stop_in_time_and_say_more_remains
cargo test "${packages[@]}" "$@" -- --include-ignored --test-threads "${DOFS_AWS_TEST_THREADS:-2}" --skip "$bound"
cargo test -p dofs-local-aws --test blackbox "$@" -- --include-ignored --exact "$bound"

if [[ "${DOFS_LAMBDA_BUILD:-0}" == 1 ]]; then
    # scripts/test.sh (CI) builds and checks the zips in a step of its own.
    "$here/build-lambdas.sh"
fi
