#!/usr/bin/env bash
# Overload measurement of the embedded system (a benchmark, not a test: it
# prints numbers and fails only when the promise is broken: an accepted order
# lost or not terminal, or the server stops answering).
#
# 1. Finds the sustainable rate S: a closed loop of --orders orders at
#    concurrency 64 with `dofs load --wait-terminal`; S is the lower of the
#    accept rate and the end-to-end (accepted to terminal) rate.
# 2. On a fresh server, offers --factor x S orders per second (open loop:
#    sent on schedule whatever the answers, up to 1024 in flight, under
#    server.max_connections so that the probe gets a connection) for
#    --duration, while a probe reads /health every 100 ms.
# 3. Reports: answers per second and transport errors, the share of 429 (by
#    reason, from dofs_overload_rejections_total), the latency of accepted
#    requests (p50/p99/max, from their intended send time), the probe's worst
#    latency, and that every accepted order reached FULFILLED or FAILED and
#    that the store holds exactly the accepted orders.
#
# Usage: bench/overload.sh [--orders N] [--factor F] [--duration D] [--backlog B]
#   defaults: 20000 orders, 3x, 30s, queue.max_backlog 5000 (the other
#   limits at their defaults).
set -euo pipefail
cd "$(dirname "$0")/.."

orders=20000 factor=3 duration=30s backlog=5000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --factor) factor=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --backlog) backlog=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/server.sh
source bench/server.sh
bench_setup ""

bench_banner

start_server
"$dofs" load --endpoint "$endpoint" --orders "$orders" --concurrency 64 --wait-terminal --json \
  >"$work/closed.json" 2>/dev/null || true
stop_server
rate=$(python3 - "$work/closed.json" "$factor" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["terminal"]
accept = r["throughputPerSecond"]
e2e = t["orders"] / (r["elapsedSeconds"] + t["secondsAfterLoad"])
s = min(accept, e2e)
print(f"sustainable: accept {accept:.0f}/s, accepted to terminal {e2e:.0f}/s -> S = {s:.0f}/s", file=sys.stderr)
print(int(s * float(sys.argv[2])))
PY
)
echo "offering ${factor}x S = $rate orders/s for $duration (queue.max_backlog $backlog)"

start_server DOFS_QUEUE_MAX_BACKLOG="$backlog"
python3 - "$endpoint" "$work/probe.json" <<'PY' &
import json, sys, time, urllib.request
base, out = sys.argv[1], sys.argv[2]
lat, failures, start = [], 0, time.time()
# Probes until the load is over (the file "stop" appears next to the output).
import os
stop = os.path.join(os.path.dirname(out), "stop")
while not os.path.exists(stop) and time.time() - start < 600:
    t0 = time.time()
    try:
        urllib.request.urlopen(base + "/health", timeout=5).read()
        lat.append((time.time() - t0) * 1000)
    except Exception:
        failures += 1
    time.sleep(0.1)
json.dump({"probes": len(lat) + failures, "failures": failures,
           "maxMs": max(lat, default=0), "p99Ms": sorted(lat)[int(len(lat) * 0.99)] if lat else 0}, open(out, "w"))
PY
probe_pid=$!
"$dofs" load --endpoint "$endpoint" --rate "$rate" --duration "$duration" --concurrency 1024 \
  --wait-terminal --json >"$work/open.json" 2>/dev/null || true
touch "$work/stop"
wait "$probe_pid" || true
python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1]+"/metrics").read().decode())' "$endpoint" >"$work/metrics"
stop_server

python3 - "$work/open.json" "$work/probe.json" "$work/metrics" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
probe = json.load(open(sys.argv[2]))
metrics = open(sys.argv[3]).read()
def series(name):
    out = {}
    for m in re.finditer(r'^' + name + r'\{(\w+)="([^"]*)"\} (\S+)$', metrics, re.M):
        out[m.group(2)] = float(m.group(3))
    return out
codes = r["statusCodes"]
answered = sum(v for k, v in codes.items() if k != "transportError")
refused = codes.get("429", 0)
accepted = codes.get("202", 0)
lat = r["acceptedLatencyMs"]
t = r["terminal"] or {}
stored = sum(series("dofs_orders").values())
rejections = series("dofs_overload_rejections_total")
print(f"\nopen loop at {r['rate']:.0f}/s for {r['elapsedSeconds']:.0f} s:")
print(f"  answers        {answered} of {r['requests']} sent ({answered / r['elapsedSeconds']:.0f}/s), transport errors {codes.get('transportError', 0)}, late sends {r['lateSends']}")
st = r["serviceTimeMs"]
print(f"  service time   all answers, from the actual send: p50 {st['p50']:.1f} ms  p99 {st['p99']:.1f} ms  max {st['max']:.1f} ms")
print(f"  status codes   {codes}")
print(f"  refused 429    {refused / max(r['requests'], 1):.1%}  by reason {dict((k, int(v)) for k, v in rejections.items())}")
print(f"  accepted 202   {accepted}: latency p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms  max {lat['max']:.1f} ms (from the intended send time)")
print(f"  /health probe  {probe['probes']} probes, {probe['failures']} failed, p99 {probe['p99Ms']:.1f} ms, max {probe['maxMs']:.1f} ms")
print(f"  terminal       {t.get('orders')} accepted: {t.get('fulfilled')} FULFILLED, {t.get('failed')} FAILED, {t.get('pending')} not terminal "
      f"({t.get('secondsAfterLoad', 0):.1f} s after the load)")
print(f"  stored         {stored:.0f} orders in the store (accepted: {accepted})")
answering = codes.get("transportError", 0) == 0 and probe["failures"] == 0
print("  kept answering: every request and every probe answered" if answering
      else "  DID NOT KEEP ANSWERING: transport errors or failed probes (see above)")
ok = (t.get("pending") == 0 and not t.get("timedOut") and t.get("orders") == accepted
      and int(stored) == accepted)
print("  promise kept: every accepted order terminal, none lost, none extra" if ok else "  PROMISE BROKEN (see above)")
sys.exit(0 if ok and answering else 1)
PY
