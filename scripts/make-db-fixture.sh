#!/usr/bin/env bash
# Writes a small database with the checked-out release of `dofs serve`, for
# the upgrade test (crates/embedded/tests/upgrade.rs): 40 orders, FULFILLED and
# FAILED (with their dead letters and failed-orders rows), their events, and
# three idempotency records. A run that succeeded is not stored, so the file
# holds no executions; the test adds what a stop could leave when it needs it.
# Run it at the commit whose schema the fixture should hold; it prints where
# the file went.
#
# Usage: scripts/make-db-fixture.sh OUT.db   (DOFS_BIN: a dofs binary of this commit
# to use instead of building one)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/make-db-fixture.sh OUT.db}
dofs="${DOFS_BIN:-}"
if [[ -z "$dofs" ]]; then
  cargo build --locked -p dofs-cli >&2
  dofs="${CARGO_TARGET_DIR:-target}/debug/dofs"
fi
data=$(mktemp -d)
log=$(mktemp)
trap 'kill "$pid" 2>/dev/null; rm -rf "$data" "$log"' EXIT

DOFS_FULFILLMENT_SEED=7 DOFS_FULFILLMENT_SUCCESS_RATE=0.5 DOFS_QUEUE_BACKOFF_BASE_MS=10 DOFS_QUEUE_BACKOFF_MAX_MS=10 \
  "$dofs" serve --bind 127.0.0.1:0 --data-dir "$data" >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
endpoint=$(sed -n 's/^dofs listening on //p' "$log")
[[ -n "$endpoint" ]] || { cat "$log" >&2; exit 1; }
for i in $(seq 1 40); do
  key=()
  [[ $i -le 3 ]] && key=(-H "Idempotency-Key: fixture-$i")
  curl -sf -o /dev/null -X POST "$endpoint/order" -H 'Content-Type: application/json' "${key[@]}" \
    -d "{\"customerId\":\"CUST-$((1000 + i))\",\"productId\":\"PROD-2001\",\"quantity\":$(( i % 5 + 1 )),\"price\":19.99,\"metadata\":{\"n\":$i,\"note\":\"fixture\"}}"
done
sleep 3
kill -TERM "$pid"; wait "$pid" || true
# The file alone, checkpointed: no WAL beside it.
sqlite3_checkpoint() { python3 - "$1" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.execute("PRAGMA journal_mode=DELETE"); c.close()
PY
}
sqlite3_checkpoint "$data/dofs.db"
# The upgrade test needs both outcomes: at a success rate of 0.5, 40 orders
# all fulfilled within three attempts happen once in 200 runs.
python3 - "$data/dofs.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
n = dict(c.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall())
if not n.get("FULFILLED") or not n.get("FAILED"):
    sys.exit(f"make-db-fixture: the file needs FULFILLED and FAILED orders, it holds {n}; run it again")
PY
cp "$data/dofs.db" "$out"
echo "fixture written to $out ($(stat -c %s "$out") bytes)"
