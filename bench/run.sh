#!/usr/bin/env bash
# Benchmark of the embedded system: starts `dofs serve` (release build) on a
# fresh data directory and drives it with `dofs load` from the same machine.
# Prints the machine, accepted orders per second (closed loop), end-to-end
# completed orders per second, and accept latency p50/p99 at a fixed open-loop
# rate. A benchmark, not a test: it prints numbers and never fails on them.
#
# Usage: bench/run.sh [--orders N] [--rate R] [--concurrency C]
#   defaults: 50000 orders closed loop at concurrency 64, then 20 s at 5000/s.
set -euo pipefail
cd "$(dirname "$0")/.."

orders=50000 rate=5000 concurrency=64 duration=20s
while [[ $# -gt 0 ]]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

cargo build --release --locked -p dofs-cli >&2
dofs="${CARGO_TARGET_DIR:-target}/release/dofs"
data=$(mktemp -d)
out=$(mktemp)
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$data" "$out"
}
trap cleanup EXIT

start_server() {
  rm -rf "$data"/*
  "$dofs" serve --bind 127.0.0.1:0 --data-dir "$data" >"$out" 2>/dev/null &
  server_pid=$!
  for _ in $(seq 100); do
    grep -q 'listening on' "$out" 2>/dev/null && break
    sleep 0.1
  done
  endpoint=$(sed -n 's/^dofs listening on //p' "$out")
  [[ -n "$endpoint" ]] || { echo "the server did not start" >&2; exit 1; }
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo "dofs:    $(git rev-parse --short HEAD 2>/dev/null || echo unknown), release build, WAL + synchronous=FULL, load generator on the same machine"

start_server
"$dofs" load --endpoint "$endpoint" --orders "$orders" --concurrency "$concurrency" --wait-terminal --json >"$out.closed" 2>/dev/null || true
stop_server
start_server
"$dofs" load --endpoint "$endpoint" --rate "$rate" --duration "$duration" --json >"$out.open" 2>/dev/null || true
stop_server

python3 - "$out.closed" "$out.open" <<'PY'
import json, sys
closed = json.load(open(sys.argv[1]))
opened = json.load(open(sys.argv[2]))
lat = closed["latencyMs"]
term = closed.get("terminal") or {}
print(f"\nclosed loop, {closed['concurrency']} in flight, {closed['requests']} orders:")
print(f"  accepted       {closed['throughputPerSecond']:10.0f} orders/s   (status codes {closed['statusCodes']}, errors {closed['errors']})")
print(f"  accept latency p50 {lat['p50']:.2f} ms  p99 {lat['p99']:.2f} ms  max {lat['max']:.2f} ms")
if term:
    total = closed["elapsedSeconds"] + term["secondsAfterLoad"]
    print(f"  end to end     {term['orders'] / total:10.0f} orders/s   ({term['orders']} terminal in {total:.1f} s: "
          f"{term['fulfilled']} FULFILLED, {term['failed']} FAILED, {term['pending']} not terminal)")
if closed.get("clientCpuSeconds") is not None:
    print(f"  load generator CPU {closed['clientCpuSeconds']:.1f} s of {closed['elapsedSeconds']:.1f} s")
lat = opened["latencyMs"]
print(f"\nopen loop at {opened['rate']:.0f}/s for {opened['elapsedSeconds']:.0f} s (latency from the intended send time):")
print(f"  achieved       {opened['throughputPerSecond']:10.0f} orders/s   (status codes {opened['statusCodes']}, late sends {opened['lateSends']})")
print(f"  accept latency p50 {lat['p50']:.2f} ms  p90 {lat['p90']:.2f} ms  p99 {lat['p99']:.2f} ms  p99.9 {lat['p999']:.2f} ms  max {lat['max']:.2f} ms")
PY
rm -f "$out.closed" "$out.open"
