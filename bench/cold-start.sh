#!/usr/bin/env bash
# Cold starts of the five DOFS Lambdas (api_handler, validator, order_storage,
# fulfill_order, dlq_processor), release builds as AWS runs them (the zips of
# scripts/build-lambdas.sh), on the local AWS stack. A benchmark, not a test: it
# prints numbers and never fails on them. Run it on a quiet machine.
#
# For each function and each run, one process alone behind a Lambda runtime API
# (bench/cold_start.py), with the environment the local stack gives its functions
# (tables and queues on moto, Step Functions at the stack):
#   init   process start -> its first GET /runtime/invocation/next
#   first  the first invocation: the event handed out -> the response POST
#          (api_handler: POST /orders; validator and order_storage: a task input;
#          fulfill_order: a stored order's message; dlq_processor: the schedule)
#   main   the part of init inside main, and its phases, from the function's own
#          `cold start` log line (InitTimer in lambdas/src/lib.rs)
# Prints median and max per function, and the phases.
#
# Usage: bench/cold-start.sh [--runs N] [--zips DIR | --build LABEL=ZIPDIR ...] [--functions a,b]
#   --zips DIR          the zips to measure (default $DOFS_LAMBDA_ARTIFACTS, else
#                       $CARGO_TARGET_DIR/lambda or target/lambda; built when missing)
#   --build LABEL=DIR   several builds, measured round-robin run by run (before/after)
#   --runs N            cold starts per function and build (default 10)
# DOFS_LOCAL_AWS_BIN: a dofs-local-aws binary to use (default: cargo build -p dofs-local-aws).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/tools.sh
source "$root/scripts/tools.sh"
cd "$root"

runs=10 functions="api_handler,validator,order_storage,fulfill_order,dlq_processor"
builds=() zips=""
while (($#)); do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --zips) zips="$2"; shift 2 ;;
        --build) builds+=("$2"); shift 2 ;;
        --functions) functions="$2"; shift 2 ;;
        -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "cold-start: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if ((${#builds[@]} == 0)); then
    zips="${zips:-${DOFS_LAMBDA_ARTIFACTS:-${CARGO_TARGET_DIR:-$root/target}/lambda}}"
    if [[ ! -f "$zips/api_handler/bootstrap.zip" ]]; then
        DOFS_LAMBDA_DIR="$zips" scripts/build-lambdas.sh --arch x86_64
    fi
    builds=("release=$zips")
fi

dofs_tools_venv || exit 1
work="$(mktemp -d "${TMPDIR:-/tmp}/dofs-cold-start.XXXXXX")"
stack_pid=""
port=""
cleanup() {
    [[ -n "$stack_pid" ]] && kill "$stack_pid" 2>/dev/null && wait "$stack_pid" 2>/dev/null
    [[ -n "$port" ]] && dofs_moto_stop "$port"
    echo "(logs in $work)"
}
trap cleanup EXIT

# Each build's bootstraps, named as the stack names its binaries.
args=()
for b in "${builds[@]}"; do
    label="${b%%=*}" dir="${b#*=}"
    mkdir -p "$work/bin-$label"
    for f in ${functions//,/ }; do
        "$DOFS_PYTHON" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("bootstrap"))' \
            "$dir/$f/bootstrap.zip" "$work/bin-$label/$f"
        chmod +x "$work/bin-$label/$f"
    done
    args+=(--build "$label=$work/bin-$label")
done

# The stack makes the tables and queues, serves Step Functions, and writes the
# functions' environment; it runs no function itself (they are run one at a time here).
port="$(dofs_free_port)"
dofs_moto_start "$port" >/dev/null || exit 1
dofs_emulator_credentials
stack="${DOFS_LOCAL_AWS_BIN:-}"
if [[ -z "$stack" ]]; then
    cargo build --quiet -p dofs-local-aws --bin dofs-local-aws
    stack="${CARGO_TARGET_DIR:-$root/target}/debug/dofs-local-aws"
fi
"$stack" --aws-endpoint "$DOFS_MOTO_ENDPOINT" \
    --bind 127.0.0.1:0 --invoke-endpoint http://127.0.0.1:9 --log-dir "$work/stack" \
    --dlq-interval-ms 3600000 >"$work/stack.out" 2>"$work/stack.err" &
stack_pid=$!
for _ in $(seq 1 150); do
    [[ -f "$work/stack/lambda.env" ]] && grep -q listening "$work/stack.out" && break
    kill -0 "$stack_pid" 2>/dev/null || { cat "$work/stack.err" >&2; exit 1; }
    sleep 0.2
done

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(uname -r)"
for b in "${builds[@]}"; do
    label="${b%%=*}" dir="${b#*=}"
    for f in ${functions//,/ }; do
        printf '  %-8s %-14s %9s bytes zipped, %9s bytes bootstrap\n' "$label" "$f" \
            "$(stat -c %s "$dir/$f/bootstrap.zip")" "$(stat -c %s "$work/bin-$label/$f")"
    done
done
mkdir -p "$work/runs"
"$DOFS_PYTHON" "$here/cold_start.py" --env-file "$work/stack/lambda.env" --runs "$runs" \
    --functions "$functions" --log-dir "$work/runs" "${args[@]}"
echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
