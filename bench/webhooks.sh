#!/usr/bin/env bash
# Does event delivery slow order intake? A benchmark, not a test: it prints
# numbers and never fails on them. Run it on a quiet machine.
#
# Measures accepted orders/s (oha, closed loop, 64 in flight, HTTP/1.1
# keep-alive, DURATION seconds each) of `dofs serve` (dist profile) on a fresh
# data directory in three set-ups, interleaved ROUNDS times so that the
# machine's drift falls on all three alike:
#   none   no events.webhook_urls
#   dead   one webhook URL where nothing listens (every delivery is refused
#          and retried with backoff)
#   live   one webhook URL served by `dofs fulfillment-stub` (every delivery taken)
# and prints each run, then each set-up's mean, min and max; the spread of
# `none` is the noise the other two are to be read against.
#
# Usage: bench/webhooks.sh [--rounds N] [--duration S]
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 duration=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/server.sh
source bench/server.sh
need_oha
build_dist dofs-cli
dofs="$dist_dir/dofs"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A webhook receiver that takes everything, for the whole run.
hook_port=$(free_port)
"$dofs" fulfillment-stub --bind "127.0.0.1:$hook_port" >"$work/hook.log" 2>&1 &
pids+=($!)
# A port where nothing listens.
dead_port=$(free_port)

# run SETUP: one measurement; prints the accepted orders/s.
run() {
  local setup=$1 urls=""
  case "$setup" in
    dead) urls="http://127.0.0.1:$dead_port/events" ;;
    live) urls="http://127.0.0.1:$hook_port/events" ;;
  esac
  rm -rf "$work/data"
  RUST_LOG=warn DOFS_EVENTS_WEBHOOK_URLS="$urls" \
    "$dofs" serve --bind 127.0.0.1:0 --data-dir "$work/data" >"$work/serve.log" 2>/dev/null &
  local pid=$!
  local endpoint=""
  for _ in $(seq 100); do
    endpoint=$(sed -n 's/^.*listening on //p' "$work/serve.log" | head -1)
    [[ -n "$endpoint" ]] && break
    sleep 0.1
  done
  [[ -n "$endpoint" ]] || { echo "dofs serve did not start" >&2; exit 1; }
  oha --no-tui --output-format json -z "${duration}s" -c 64 -m POST \
    -H 'Content-Type: application/json' -d "$order_body" "$endpoint/order" >"$work/oha.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$work/oha.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r.get("statusCodeDistribution", {}).get("202", 0)
print(f"{ok / r['summary']['total']:.0f}")
PY
}

declare -A all
echo "accepted orders/s, closed loop, 64 in flight, ${duration} s per run"
for round in $(seq "$rounds"); do
  for setup in none dead live; do
    v=$(run "$setup")
    all[$setup]="${all[$setup]:-} $v"
    echo "round $round  $setup  $v"
  done
done
echo
for setup in none dead live; do
  python3 - "$setup" ${all[$setup]} <<'PY'
import sys
name, values = sys.argv[1], [float(v) for v in sys.argv[2:]]
mean = sum(values) / len(values)
print(f"{name:5} mean {mean:8.0f}  min {min(values):8.0f}  max {max(values):8.0f}  spread {100 * (max(values) - min(values)) / mean:4.1f}%")
PY
done
echo "webhook receiver took $(grep -c 'status=200' "$work/hook.log" || true) deliveries"
