#!/usr/bin/env bash
# Benchmark of the embedded system, with its ceilings measured in the same
# run on the same machine. A benchmark, not a test: it prints numbers and
# never fails on them. Run it on a quiet machine (no build, no test).
#
# Prints, for `dofs serve` (the dist profile's build: release with link-time
# optimization, as it ships; WAL + synchronous=FULL, logging at
# RUST_LOG=warn: no line per order; the README's performance section says what
# the default `info` costs) driven by oha from the same machine (HTTP/1.1
# keep-alive):
#   1. accepted orders/s, closed loop at 64 in flight
#   2. end to end: ORDERS (default 100,000) accepted as fast as they come,
#      time until all are terminal, the largest backlog seen, the pace at
#      which orders reached a terminal status while the load ran (against
#      the pace they were accepted), and the server's CPU per order (its
#      SQLite writer thread and the others)
#   3. latency at a fixed open-loop rate (default 5,000/s), corrected for
#      coordinated omission (from the intended send time): p50, p99, p99.9
#   4. size after SIZE_ORDERS (default 1,000,000): database bytes per order,
#      the server's peak RSS, and the p99 of the reads /orders,
#      /orders/{id}, /executions/{id}, /events?orderId= and /stats at that size
# and beside them the ceilings: the same load generator against a bare axum
# handler that validates the order and stores nothing (dofs-bench http), and
# SQLite's batch-insert rate (dofs-bench sqlite). Each DOFS figure is also
# shown as a share of its ceiling, and the client's CPU share beside it.
#
# Usage: bench/run.sh [--orders N] [--size-orders N] [--rate R] [--duration S] [--dofs BINARY]
#   --dofs: measure another build of dofs (an earlier release, say) in the
#   same run conditions; the ceilings are measured again beside it.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."

orders=100000 size_orders=1000000 rate=5000 duration=20 concurrency=64 dofs=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --size-orders) size_orders=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --dofs) dofs=$(cd "$caller" && realpath "$2"); shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/server.sh
source bench/server.sh
need_oha
# dofs-bench for the ceilings; dofs too, unless --dofs names the build to measure.
packages=(dofs-bench)
if [[ -z "$dofs" ]]; then packages+=(dofs-cli); fi
build_dist "${packages[@]}"
dofs_label=$(dofs_origin "$dofs")
dofs=${dofs:-$dist_dir/dofs}
bench="$dist_dir/dofs-bench"
work=$(mktemp -d)
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT


# start NAME COMMAND...: starts a server that prints "listening on URL"; sets endpoint.
start() {
  local log="$work/$1.log"; shift
  "$@" >"$log" 2>/dev/null &
  server_pid=$!
  endpoint=""
  for _ in $(seq 100); do
    endpoint=$(sed -n 's/^.*listening on //p' "$log" | head -1)
    [[ -n "$endpoint" ]] && return 0
    sleep 0.1
  done
  echo "the server did not start" >&2; exit 1
}
stop() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }
serve() { rm -rf "$work/data"; start dofs env RUST_LOG=warn "$dofs" serve --bind 127.0.0.1:0 --data-dir "$work/data"; }

# oha_json OUT ARGS...: runs oha with ARGS, JSON to OUT, and its CPU seconds to OUT.cpu.
oha_json() {
  local out=$1; shift
  /usr/bin/time -f '%U %S %e' -o "$out.cpu" oha --no-tui --output-format json "$@" >"$out"
}

post() { oha_json "$1" -m POST -H 'Content-Type: application/json' -d "$order_body" "${@:2}"; }

# Polls /metrics until no order is PENDING or PROCESSING and the file
# "$work/sent" exists (the load is over); prints the seconds waited after the
# load, the largest backlog (PENDING + PROCESSING) seen, during and after, and
# fulfillment's pace under load: the orders/s that reached a terminal status
# and the orders/s accepted, both over the steady window from STEADY_AFTER s
# after the poller started to the last sample in which orders were still
# being accepted (0 0 0 when the load was shorter). Before that window an
# order's last retry (1 s, then 2 s of backoff by default) cannot yet have
# come round.
wait_terminal() {
  python3 - "$endpoint" "$work/sent" <<'PY'
import os, sys, time, urllib.request
url, sent = sys.argv[1] + "/metrics", sys.argv[2]
STEADY_AFTER = 3.5
TERMINAL = ("FULFILLED", "FAILED", "CANCELLED")
peak, sent_at, began, samples = 0, None, time.time(), []
while True:
    text = urllib.request.urlopen(url).read().decode()
    now = time.time()
    by_status = {}
    for l in text.splitlines():
        if l.startswith('dofs_orders{status="'):
            by_status[l.split('"')[1]] = float(l.split()[-1])
    open_now = by_status.get("PENDING", 0) + by_status.get("PROCESSING", 0)
    peak = max(peak, open_now)
    if sent_at is None:
        if os.path.exists(sent):
            sent_at = now
        else:
            samples.append((now, sum(by_status.get(s, 0) for s in TERMINAL), sum(by_status.values())))
    if sent_at is not None and open_now == 0:
        steady = [s for s in samples if s[0] >= began + STEADY_AFTER]
        # The load may have ended a sample or two before "sent" appeared.
        while len(steady) >= 2 and steady[-1][2] <= steady[-2][2]:
            steady.pop()
        if len(steady) >= 2 and steady[-1][0] - steady[0][0] >= 1.0:
            (t0, done0, all0), (t1, done1, all1) = steady[0], steady[-1]
            pace = f"{(done1 - done0) / (t1 - t0):.0f} {(all1 - all0) / (t1 - t0):.0f} {t1 - t0:.1f}"
        else:
            pace = "0 0 0"
        print(f"{now - sent_at:.2f} {peak:.0f} {pace}")
        break
    time.sleep(0.1)
PY
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dofs:    $dofs_label; checkout $(git describe --always --dirty 2>/dev/null || echo unknown); dofs-bench: its dist build; WAL + synchronous=FULL, RUST_LOG=warn; load generator oha $(oha --version | awk '{print $2}') on the same machine"

# Ceilings.
"$bench" sqlite --rows 200000 --batch 64 >"$work/sqlite.json"
start http "$bench" http
post "$work/ceiling.json" -n 200000 -c "$concurrency" "$endpoint/order"
post "$work/ceiling-open.json" -z "${duration}s" -q "$rate" --latency-correction -c "$concurrency" "$endpoint/order"
stop

# thread_cpu: the server's CPU time so far, in ns (from schedstat, which
# counts to the nanosecond): its SQLite writer thread, then all the others.
thread_cpu() {
  local writer=0 others=0 name ns
  for t in /proc/"$server_pid"/task/*; do
    name=$(cat "$t/comm" 2>/dev/null) || continue
    ns=$(cut -d' ' -f1 "$t/schedstat" 2>/dev/null) || continue
    if [[ $name == dofs-sqlite-wri* ]]; then writer=$((writer + ns)); else others=$((others + ns)); fi
  done
  echo "$writer $others"
}

# 1 and 2: closed loop, then every order to terminal.
serve
rm -f "$work/sent"
wait_terminal >"$work/terminal" &
poller=$!
cpu_before=$(thread_cpu)
started=$(date +%s.%N)
post "$work/closed.json" -n "$orders" -c "$concurrency" "$endpoint/order"
touch "$work/sent"
wait "$poller"
finished=$(date +%s.%N)
cpu_after=$(thread_cpu)
read -r terminal_after peak_backlog pace_terminal pace_accepted pace_window <"$work/terminal"
stop

# 3: open loop at a fixed rate.
serve
post "$work/open.json" -z "${duration}s" -q "$rate" --latency-correction -c "$concurrency" "$endpoint/order"
stop

# 4: size and reads after size_orders.
serve
post "$work/fill.json" -n "$size_orders" -c "$concurrency" "$endpoint/order"
touch "$work/sent"
wait_terminal >/dev/null
rss_kib=$(awk '/VmHWM/{print $2}' "/proc/$server_pid/status")
some_id=$(curl -s "$endpoint/orders?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["orderId"])')
for read in "list orders?limit=50" "one orders/$some_id" "execution executions/$some_id" \
  "events events?orderId=$some_id" "stats stats"; do
  oha_json "$work/read-${read%% *}.json" -z 5s -c 8 "$endpoint/${read#* }"
done
stop
db_bytes=$(stat -c %s "$work/data/dofs.db")
wal_bytes=$(stat -c %s "$work/data/dofs.db-wal" 2>/dev/null || echo 0)

python3 - "$work" "$orders" "$size_orders" "$started" "$finished" "$terminal_after" "$peak_backlog" "$rss_kib" "$db_bytes" "$wal_bytes" "$rate" "$cpu_before" "$cpu_after" "$pace_terminal" "$pace_accepted" "$pace_window" <<'PY'
import json, sys
w, orders, size_orders = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
started, finished, terminal_after, peak = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
rss_kib, db_bytes, wal_bytes, rate = int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10]), float(sys.argv[11])
(writer0, others0), (writer1, others1) = (map(int, a.split()) for a in sys.argv[12:14])
pace_terminal, pace_accepted, pace_window = float(sys.argv[14]), float(sys.argv[15]), float(sys.argv[16])

def load(name):
    d = json.load(open(f"{w}/{name}.json"))
    user, system, elapsed = (float(x) for x in open(f"{w}/{name}.json.cpu").read().split())
    d["clientCpu"] = (user + system) / max(elapsed, 1e-9)
    return d

def codes(d):
    return ", ".join(f"{k}: {v}" for k, v in sorted(d["statusCodeDistribution"].items()))

def pct(d, p):
    return d["latencyPercentiles"][p] * 1000

sqlite = json.load(open(f"{w}/sqlite.json"))
ceiling, ceiling_open = load("ceiling"), load("ceiling-open")
closed, opened = load("closed"), load("open")
c_rate = ceiling["summary"]["requestsPerSec"]
print(f"\nceilings (same run):")
print(f"  HTTP layer, no storage (dofs-bench http): {c_rate:10.0f} requests/s closed loop at 64 in flight (client CPU {ceiling['clientCpu']:.2f} cores; {codes(ceiling)})")
print(f"     open loop at {rate:.0f}/s: p50 {pct(ceiling_open,'p50'):.2f} ms  p99 {pct(ceiling_open,'p99'):.2f} ms  p99.9 {pct(ceiling_open,'p99.9'):.2f} ms")
print(f"  SQLite batch insert (dofs-bench sqlite, {sqlite['batch']} rows per commit): {sqlite['rowsPerSecond']:10.0f} rows/s")

a = closed["summary"]["requestsPerSec"]
print(f"\n1. accepted, closed loop at 64 in flight: {a:10.0f} orders/s = {100*a/c_rate:.1f}% of the HTTP ceiling (client CPU {closed['clientCpu']:.2f} cores; {codes(closed)})")
print(f"     accept latency p50 {pct(closed,'p50'):.2f} ms  p99 {pct(closed,'p99'):.2f} ms")
e2e = orders / (finished - started)
print(f"2. end to end, {orders} orders: {e2e:10.0f} orders/s, all terminal {terminal_after:.1f} s after the last 202; largest backlog (PENDING + PROCESSING) seen {peak} orders")
if pace_window > 0:
    print(f"     under load (the {pace_window:.1f} s from 3.5 s after the start to the end of the load): {pace_terminal:.0f} orders/s reached a terminal status, "
          f"{pace_accepted:.0f}/s were accepted")
else:
    print("     under load: the load was too short to show a steady pace (it needs more than 4.5 s)")
print(f"     server CPU per order, submit to terminal: SQLite writer thread {(writer1 - writer0) / orders / 1000:.1f} us, "
      f"all other threads {(others1 - others0) / orders / 1000:.1f} us (CPU time, from schedstat)")
print(f"3. open loop at {rate:.0f}/s for {opened['summary']['total']:.0f} s: achieved {opened['summary']['requestsPerSec']:.0f}/s ({codes(opened)}, client CPU {opened['clientCpu']:.2f} cores)")
print(f"     latency from the intended send time: p50 {pct(opened,'p50'):.2f} ms  p99 {pct(opened,'p99'):.2f} ms  p99.9 {pct(opened,'p99.9'):.2f} ms  max {opened['summary']['slowest']*1000:.2f} ms")
print(f"4. after {size_orders} orders: database {db_bytes/size_orders:.0f} bytes per order ({db_bytes/2**20:.0f} MiB; WAL {wal_bytes/2**20:.0f} MiB beside it), peak RSS {rss_kib/1024:.0f} MiB")
for name, what in (("list", "GET /orders?limit=50"), ("one", "GET /orders/{id}"), ("execution", "GET /executions/{id}"),
                   ("events", "GET /events?orderId={id}"), ("stats", "GET /stats")):
    d = load(f"read-{name}")
    print(f"     {what:24} p50 {pct(d,'p50'):.2f} ms  p99 {pct(d,'p99'):.2f} ms  ({d['summary']['requestsPerSec']:.0f}/s at 8 in flight; {codes(d)})")
PY
