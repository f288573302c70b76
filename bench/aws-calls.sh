#!/usr/bin/env bash
# AWS calls and Lambda invocations per order, on the local AWS stack. A benchmark,
# not a test: it prints numbers and never fails on them.
#
# Starts moto and dofs-local-aws with --count-calls (each caller's AWS calls pass
# through a counting forwarder; Lambda invocations and Step Functions state
# transitions are counted by the stack), sends ORDERS orders through the API
# Gateway stand-in, waits until every one is terminal (read from moto directly, so
# the waiting is not counted), and prints (bench/aws_calls.py):
#   - per caller, service and action: calls, and calls per order
#   - per function: Lambda invocations, and invocations per order
#   - Step Functions state transitions per order
# Each run is a fresh stack (its own tables and queues) with a fixed seed.
#
# Usage: bench/aws-calls.sh [--orders N] [--success-rate R] [--pure] [--seed S] [--concurrency C]
#   --orders N          orders per run (default 200)
#   --success-rate R    the fulfillment success rate of the first run (default 0.7)
#   --pure              a second run with success rate 1: one attempt per order, the pure path
#   --seed S            the fulfillment seed (default 42)
#   --concurrency C     orders in flight (default 8)
# DOFS_LOCAL_AWS_DIR: a directory with dofs-local-aws and the five Lambda binaries
# (default: cargo build of the workspace's debug binaries, as scripts/local-aws.sh does).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/tools.sh
source "$root/scripts/tools.sh"
cd "$root"

orders=200 rates=(0.7) seed=42 concurrency=8
while (($#)); do
    case "$1" in
        --orders) orders="$2"; shift 2 ;;
        --success-rate) rates[0]="$2"; shift 2 ;;
        --pure) rates+=(1); shift ;;
        --seed) seed="$2"; shift 2 ;;
        --concurrency) concurrency="$2"; shift 2 ;;
        -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "aws-calls: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

dofs_tools_venv || exit 1
bin="${DOFS_LOCAL_AWS_DIR:-}"
if [[ -z "$bin" ]]; then
    cargo build --quiet -p dofs-lambdas -p dofs-local-aws --bins
    bin="${CARGO_TARGET_DIR:-$root/target}/debug"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/dofs-aws-calls.XXXXXX")"
stack_pid=""
port=""
stop_stack() {
    if [[ -n "$stack_pid" ]]; then
        kill "$stack_pid" 2>/dev/null && wait "$stack_pid" 2>/dev/null
        stack_pid=""
    fi
    return 0
}
cleanup() {
    stop_stack
    [[ -n "$port" ]] && dofs_moto_stop "$port"
    echo "(stack and function logs in $work)"
}
trap cleanup EXIT

port="$(dofs_free_port)"
dofs_moto_start "$port" >/dev/null || exit 1
dofs_emulator_credentials

if [[ -n "${DOFS_LOCAL_AWS_DIR:-}" ]]; then
    echo "binaries from $DOFS_LOCAL_AWS_DIR (bench script of commit $(git rev-parse --short HEAD)), $(date -u +%Y-%m-%dT%H:%MZ)"
else
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates lambdas || echo ' (with uncommitted changes)'), $(date -u +%Y-%m-%dT%H:%MZ)"
fi
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for rate in "${rates[@]}"; do
    prefix="bench-$(date +%s)-${rate//./}"
    dir="$work/$prefix"
    mkdir -p "$dir"
    "$bin/dofs-local-aws" --aws-endpoint "$DOFS_MOTO_ENDPOINT" --lambda-dir "$bin" \
        --bind 127.0.0.1:0 --prefix "$prefix" --env "$prefix" --count-calls \
        --success-rate "$rate" --seed "$seed" --log-dir "$dir/functions" \
        >"$dir/stack.out" 2>"$dir/stack.err" &
    stack_pid=$!
    api="" counts=""
    for _ in $(seq 1 300); do
        api="$(sed -n 's/^dofs-local-aws listening on //p' "$dir/stack.out")"
        counts="$(sed -n 's/.*the counts are at //p' "$dir/stack.err")"
        [[ -n "$api" && -n "$counts" ]] && break
        kill -0 "$stack_pid" 2>/dev/null || { cat "$dir/stack.err" >&2; exit 1; }
        sleep 0.2
    done
    [[ -n "$api" && -n "$counts" ]] || { echo "aws-calls: the stack did not start" >&2; exit 1; }
    # The functions' cold starts call nothing per order; let them happen first.
    curl -fsS "$api/health" >/dev/null
    "$DOFS_PYTHON" "$here/aws_calls.py" --api "$api" --counts "$counts" \
        --endpoint "$DOFS_MOTO_ENDPOINT" --prefix "$prefix" --orders "$orders" \
        --concurrency "$concurrency" \
        --label "$orders orders, success rate $rate, seed $seed, max 3 attempts, default stack (2 pollers, batch 10)"
    stop_stack
done
