#!/usr/bin/env bash
# Instructions per order, counted by callgrind: a measure of the hot path
# that does not follow the machine's speed, where the timed figures of
# bench/run.sh moved by a quarter within an hour on a shared VM. A
# benchmark, not a test: it prints numbers and never fails on them.
#
# Runs `dofs serve` (RUST_LOG=warn, the default simulated fulfillment)
# under `valgrind --tool=callgrind --separate-threads=yes`. Once it listens,
# the counts are zeroed; oha sends ORDERS orders (default 3,000) at
# CONCURRENCY in flight (default 64); when /metrics has shown no order
# PENDING or PROCESSING twice in a row, the counts are taken. So they cover
# the orders from submit to a terminal status, and also what the server
# does meanwhile on its own clock (the workers' polls of the queue, the
# retries' backoff, the alert rules, this script's polls of /metrics), which
# takes longer, and counts a little more, when the machine is busy. The
# writer's count moves by about 3% from run to run with how its rounds fall
# (bench/PROFILE.md): compare builds over a few runs each.
#
# Prints the instructions of the SQLite writer thread, of the tokio worker
# threads and of all the others (the main thread, the readers' blocking
# threads, valgrind's own), in total and per order accepted, and the
# attempts and outcomes, which vary with the simulated coin flips.
#
# Usage: bench/instructions.sh [--orders N] [--concurrency C] [--dofs BINARY] [--keep DIR]
#   --dofs: count another build (an earlier commit's, say).
#   --keep: copy callgrind's files to DIR, for callgrind_annotate.
# Needs valgrind (apt-get install valgrind); installs oha if it is missing.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/.."

orders=3000 concurrency=64 dofs_arg="" keep=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --orders) orders=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --dofs) dofs_arg=$(cd "$caller" && realpath "$2"); shift 2 ;;
    --keep) keep=$(cd "$caller" && realpath -m "$2"); shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

for tool in valgrind callgrind_control curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/instructions.sh needs $tool (valgrind's tools: apt-get install valgrind)" >&2; exit 1; }
done

# shellcheck source=bench/server.sh
source bench/server.sh
need_oha
bench_setup "$dofs_arg"

counts="$work/callgrind"
mkdir -p "$counts"
server_launcher=(valgrind --tool=callgrind --separate-threads=yes "--callgrind-out-file=$counts/out.%p")
server_start_s=120
server_stderr="$work/valgrind.log"
start_server RUST_LOG=warn
callgrind_control -z "$server_pid" >/dev/null 2>&1

oha --no-tui --output-format json -n "$orders" -c "$concurrency" -m POST \
  -H 'Content-Type: application/json' -d "$order_body" "$endpoint/order" >"$work/oha.json"

# status_counts: "PENDING PROCESSING FULFILLED FAILED CANCELLED ATTEMPTS" from
# one read of /metrics, or nothing when the read fails.
status_counts() {
  curl -sf --max-time 10 "$endpoint/metrics" | python3 -c '
import re, sys
text = sys.stdin.read()
def value(pattern):
    m = re.search(pattern + r" (\S+)", text, re.M)
    return int(float(m.group(1))) if m else 0
statuses = [value(r"^dofs_orders\{status=\"%s\"\}" % s) for s in ("PENDING", "PROCESSING", "FULFILLED", "FAILED", "CANCELLED")]
attempts = sum(int(float(v)) for v in re.findall(r"^dofs_fulfillment_attempts_total\{[^}]*\} (\S+)", text, re.M))
print(*statuses, attempts)
' 2>/dev/null || true
}

zeros=0
for _ in $(seq 900); do
  read -r pending processing _ <<<"$(status_counts)" || true
  if [[ "${pending:-x}" == 0 && "${processing:-x}" == 0 ]]; then
    zeros=$((zeros + 1))
    (( zeros >= 2 )) && break
  else
    zeros=0
  fi
  sleep 1
done
(( zeros >= 2 )) || { echo "orders still open after 900 s; no counts taken" >&2; exit 1; }
fulfilled="" failed="" cancelled="" attempts=""
read -r _ _ fulfilled failed cancelled attempts <<<"$(status_counts)" || true

callgrind_control -d "$server_pid" >/dev/null 2>&1
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
if (( status != 0 )); then
  echo "dofs serve exited with status $status under valgrind:" >&2
  tail -5 "$work/valgrind.log" >&2
  exit 1
fi
if [[ -n "$keep" ]]; then
  mkdir -p "$keep"
  cp "$counts"/out.* "$keep"/
fi

echo "dofs:    $(dofs_origin "$dofs_arg"); checkout $(git describe --always --dirty 2>/dev/null || echo unknown); RUST_LOG=warn, under $(valgrind --version)"
python3 - "$counts" "$orders" "$work/oha.json" "${fulfilled:-?}" "${failed:-?}" "${cancelled:-?}" "${attempts:-?}" <<'PY'
import glob, json, os, sys
counts, orders, oha = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fulfilled, failed, cancelled, attempts = sys.argv[4:8]
codes = json.load(open(oha))["statusCodeDistribution"]
accepted = int(codes.get("202", 0))
if accepted == 0:
    sys.exit(f"no order was accepted (answers: {codes})")
# The counts taken once all orders were terminal: the files of dump 1.
files = sorted(glob.glob(os.path.join(counts, "out.*.1-*")))
kinds = {"writer": [], "runtime": [], "other": []}
for path in files:
    text = open(path, errors="replace").read()
    total = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("summary:")), None)
    if total is None:
        sys.exit(f"{path} has no summary line: a partial dump")
    if "dofs_embedded::db::writer_loop" in text:
        kinds["writer"].append(total)
    # worker::run is inlined in the dist profile's build; Context::run is not.
    elif "multi_thread::worker::Context::run" in text:
        kinds["runtime"].append(total)
    else:
        kinds["other"].append(total)
if len(kinds["writer"]) != 1 or not kinds["runtime"]:
    sys.exit(f"could not tell the threads apart ({len(kinds['writer'])} writer, {len(kinds['runtime'])} runtime threads found by name); is the binary stripped?")
print(f"orders:  {orders} sent, {accepted} answered 202 (answers: {codes}); then {fulfilled} FULFILLED, {failed} FAILED, {cancelled} CANCELLED after {attempts} attempts")
for kind, label in [("writer", "SQLite writer thread"), ("runtime", "tokio worker threads"), ("other", "other threads")]:
    total = sum(kinds[kind])
    print(f"  {label:22} {total / 1e6:9.1f}M instructions  {total / accepted / 1e3:7.1f}k per order  ({len(kinds[kind])} thread(s))")
PY
