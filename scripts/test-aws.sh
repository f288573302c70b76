#!/usr/bin/env bash
# Tests of DOFS's AWS shape (crates/aws, lambdas/, crates/aws-local):
#
#   1. unit tests and the Lambda handler tests fed real event JSON;
#   2. the port conformance suites on moto server, with random table and queue names;
#   3. the black-box API tests against the local AWS stack (dofs-local-aws on moto,
#      the real Lambda binaries), including 300 orders to a terminal status;
#   4. with DOFS_LAMBDA_BUILD=1: `cargo lambda build --release` for provided.al2023
#      (x86_64, and arm64 when the rustup target and zig are present).
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

# dofs_cargo_lambda: installs cargo-lambda (PyPI package `cargo-lambda`, and `ziglang`
# for cross builds) into the tool venv once, and checks that `cargo lambda` runs.
# Returns 0, or SKIP (2) / FAIL (1) with what is missing.
dofs_cargo_lambda() {
    dofs_tools_venv || return $?
    if ! "$DOFS_TOOLS_VENV/bin/cargo-lambda" --version >/dev/null 2>&1; then
        dofs_log "installing cargo-lambda and ziglang into $DOFS_TOOLS_VENV (from PyPI; once)"
        if ! "$DOFS_PYTHON" -m pip install --quiet --disable-pip-version-check --no-input \
            cargo-lambda ziglang >"$(dofs_tools_dir)/pip-cargo-lambda.log" 2>&1; then
            tail -n 20 "$(dofs_tools_dir)/pip-cargo-lambda.log" >&2
            dofs_skip_or_fail "could not install cargo-lambda from PyPI"
            return $?
        fi
    fi
    cargo lambda --version >/dev/null 2>&1 || {
        dofs_skip_or_fail "'cargo lambda' does not run after installing cargo-lambda"
        return $?
    }
}

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
cargo test "${packages[@]}" "$@" -- --test-threads "${DOFS_AWS_TEST_THREADS:-2}"

if [[ "${DOFS_LAMBDA_BUILD:-0}" == 1 ]]; then
    if dofs_cargo_lambda; then
        cargo lambda build --release -p dofs-lambdas --output-format zip --lambda-dir target/lambda
        ls -l target/lambda/*/bootstrap.zip
        if rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$' &&
            "$DOFS_PYTHON" -c 'import ziglang' 2>/dev/null; then
            cargo lambda build --release --arm64 -p dofs-lambdas --output-format zip --lambda-dir target/lambda-arm64
            ls -l target/lambda-arm64/*/bootstrap.zip
        else
            echo "SKIP: arm64 build (needs 'rustup target add aarch64-unknown-linux-gnu' and ziglang from PyPI)"
        fi
    else
        rc=$?
        [[ $rc -eq 2 ]] || exit 1
    fi
fi
