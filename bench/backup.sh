#!/usr/bin/env bash
# What `dofs backup` costs the intake of a running `dofs serve` (a benchmark, not a
# test: it prints numbers, and fails only when intake refuses an order or a backup fails).
#
# 1. Starts `dofs serve` (dist profile, default settings) on a fresh data directory and
#    fills it: --orders orders at concurrency 64, all waited for to a terminal status.
# 2. Runs --rounds pairs of open-loop intake windows at --rate orders per second for
#    --window each: one without a backup, then one with `dofs backup` started a second
#    in, to a new file each time. The pairs alternate so that the drift of the machine
#    shows in both halves alike.
# 3. Prints, per window, the latency of the accepted orders from their intended send
#    time (p50, p99, p99.9, max; no coordinated omission: `dofs load --rate`), the
#    status codes, and for the backup windows how long the backup took and the file's
#    size. "Without slowing intake beyond the noise" is then read off: the backup
#    windows' percentiles against the spread of the plain ones.
# 4. Times SQLite's two checks on the filled file (what start-up and restore run):
#    PRAGMA quick_check and PRAGMA integrity_check.
#
# Usage: bench/backup.sh [--orders N] [--rate R] [--window D] [--rounds K]
#                        [--backup-prefix CMD] [--dofs BINARY]
#   defaults: 200000 orders (about 170 MB), 2000/s, 8s, 3 rounds; --backup-prefix runs
#   the backup under CMD (e.g. "nice -n 19"); --dofs measures that build (and both
#   serves and backs up with it) instead of building this checkout.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."

orders=200000 rate=2000 window=8s rounds=3 backup_prefix="" dofs=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --window) window=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --backup-prefix) backup_prefix=$2; shift 2 ;;
    --dofs) dofs=$(cd "$caller" && realpath "$2"); shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/server.sh
source bench/server.sh
bench_setup "$dofs"

bench_banner "$dofs"

start_server

started=$SECONDS
"$dofs" load --endpoint "$endpoint" --orders "$orders" --concurrency 64 --wait-terminal \
  --no-progress --json >"$work/fill.json" 2>/dev/null
echo "filled:  $orders orders, all terminal, in $((SECONDS - started)) s; database $(du -sm "$work/data" | cut -f1) MB (file and WAL)"

# window NAME [backup]: one open-loop intake window, with a backup started a second in.
window() {
  local name=$1 backup=${2:-} load_pid t0
  "$dofs" load --endpoint "$endpoint" --rate "$rate" --duration "$window" --concurrency 256 \
    --no-progress --json >"$work/$name.json" 2>/dev/null &
  load_pid=$!
  if [[ -n "$backup" ]]; then
    sleep 1
    t0=$(date +%s.%N)
    $backup_prefix "$dofs" backup --data-dir "$work/data" --to "$work/$name.db" >/dev/null
    python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' \
      "$t0" "$(date +%s.%N)" >"$work/$name.took"
    stat -c %s "$work/$name.db" >"$work/$name.size"
    rm -f "$work/$name.db"
  fi
  wait "$load_pid"
}

window warm-up
names=()
for i in $(seq "$rounds"); do
  window "plain-$i"
  window "backup-$i" backup
  names+=("plain-$i" "backup-$i")
done

python3 - "$work" "$rate" "${names[@]}" <<'PY'
import json, os, sys
work, rate, names = sys.argv[1], sys.argv[2], sys.argv[3:]
print(f"\nintake at {rate}/s, accepted orders' latency from the intended send time (ms):")
print(f"  {'window':10} {'p50':>7} {'p99':>7} {'p99.9':>7} {'max':>8}   {'codes':28} backup")
ok = True
for n in names:
    r = json.load(open(os.path.join(work, n + ".json")))
    lat, codes = r["acceptedLatencyMs"], r["statusCodes"]
    backup = ""
    took = os.path.join(work, n + ".took")
    if os.path.exists(took):
        size = int(open(os.path.join(work, n + ".size")).read()) / 1e6
        backup = f"{open(took).read().strip()} s for {size:.0f} MB"
    if set(codes) != {"202"}:
        ok = False
    print(f"  {n:10} {lat['p50']:7.2f} {lat['p99']:7.2f} {lat['p999']:7.2f} {lat['max']:8.2f}   {json.dumps(codes):28} {backup}")
print("  every request accepted (202) in every window" if ok else "  REFUSALS OR ERRORS (see codes)")
sys.exit(0 if ok else 1)
PY

python3 - "$work/data/dofs.db" <<'PY'
import os, sqlite3, sys, time
path = sys.argv[1]
conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
print(f"\nSQLite's checks on the file ({os.path.getsize(path) / 1e6:.0f} MB, {orders} orders):")
for check in ("quick_check", "integrity_check"):
    t0 = time.time()
    result = conn.execute(f"PRAGMA {check}").fetchall()
    print(f"  PRAGMA {check:16} {time.time() - t0:6.2f} s  {result[0][0] if len(result) == 1 else result[:3]}")
PY
