#!/usr/bin/env bash
# Instructions per order, counted by callgrind: the measure of the hot path
# that does not move with the machine's load, where the timed figures of
# bench/run.sh move by a quarter within an hour on a shared VM. A benchmark,
# not a test: it prints numbers and never fails on them.
#
# Runs `dofs serve` (release build, RUST_LOG=warn, the default simulated
# fulfillment) under `valgrind --tool=callgrind --separate-threads=yes`,
# sends ORDERS orders (default 3,000) with oha at CONCURRENCY in flight
# (default 64), waits until none is PENDING or PROCESSING, stops the server,
# and prints the instructions of its SQLite writer thread, of its tokio
# runtime threads and of all its other threads, in total and per order.
# Under callgrind the threads take turns on one core, so the counts do not
# depend on what else the machine runs. The writer's count still moves by
# about 3% from run to run with how its rounds fall (bench/PROFILE.md):
# compare builds over a few runs each.
#
# Usage: bench/instructions.sh [--orders N] [--concurrency C] [--dofs BINARY]
#   --dofs: count another build (an earlier commit's, say).
# Needs valgrind (apt-get install valgrind) and oha (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

orders=3000 concurrency=64 dofs_arg=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --dofs) dofs_arg=$(realpath "$2"); shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

for tool in valgrind curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/instructions.sh needs $tool (apt-get install $tool)" >&2; exit 1; }
done
command -v oha >/dev/null || cargo install oha --locked --version 1.16.0 >&2

# shellcheck source=bench/server.sh
source bench/server.sh
bench_setup "$dofs_arg"

counts="$work/callgrind"
mkdir -p "$counts"
RUST_LOG=warn valgrind --tool=callgrind --separate-threads=yes \
  --callgrind-out-file="$counts/out.%p" \
  "$dofs" serve --bind 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/valgrind.log" &
server_pid=$!
endpoint=""
for _ in $(seq 600); do
  endpoint=$(sed -n 's/^dofs listening on //p' "$work/out")
  [[ -n "$endpoint" ]] && break
  sleep 0.2
done
[[ -n "$endpoint" ]] || { echo "dofs did not start under valgrind:" >&2; tail -5 "$work/valgrind.log" >&2; exit 1; }

body='{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":29.99,"metadata":{"source":"bench"}}'
oha --no-tui --output-format json -n "$orders" -c "$concurrency" -m POST \
  -H 'Content-Type: application/json' -d "$body" "$endpoint/order" >"$work/oha.json"

# Until no order is PENDING or PROCESSING (the retries' backoff included).
for _ in $(seq 600); do
  open=0
  for status in PENDING PROCESSING; do
    n=$(curl -s "$endpoint/orders?status=$status&limit=1" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
    open=$((open + n))
  done
  (( open == 0 )) && break
  sleep 1
done
(( open == 0 )) || echo "warning: orders still open after 600 s; the counts include a partial run" >&2

# A graceful stop, so that callgrind writes every thread's counts.
kill -INT "$server_pid"
wait "$server_pid" || true
server_pid=""

python3 - "$counts" "$orders" "$work/oha.json" "$dofs" <<'PY'
import glob, json, os, sys
counts, orders, oha, dofs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
accepted = json.load(open(oha))["statusCodeDistribution"].get("202", 0)
kinds = {"writer": 0, "runtime": 0, "other": 0}
threads = {"writer": 0, "runtime": 0, "other": 0}
for path in sorted(glob.glob(os.path.join(counts, "out.*"))):
    text = open(path, errors="replace").read()
    total = next((int(l.split()[1]) for l in text.splitlines() if l.startswith(("summary:", "totals:"))), 0)
    if "dofs_embedded::db::writer_loop" in text:
        kind = "writer"
    elif "multi_thread::worker::run" in text:
        kind = "runtime"
    else:
        kind = "other"
    kinds[kind] += total
    threads[kind] += 1
print(f"dofs: {dofs}, release build, RUST_LOG=warn, under callgrind")
print(f"orders: {orders} sent, {accepted} answered 202, all terminal before the counts were taken")
for kind, label in [("writer", "SQLite writer thread"), ("runtime", "tokio runtime threads"), ("other", "other threads")]:
    per = kinds[kind] / accepted if accepted else 0
    print(f"  {label:24} {kinds[kind] / 1e6:9.1f}M instructions  {per / 1e3:7.1f}k per order  ({threads[kind]} thread(s))")
PY
