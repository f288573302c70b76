# Sourced by the bench scripts: one `dofs serve` at a time, on a fresh data directory
# under a work directory removed at exit.
#
#   build_dist PACKAGE...  builds the packages with the dist profile (release with
#                        link-time optimization, as DOFS ships), into $dist_dir
#   dofs_origin [BINARY] how a report names the dofs it measures: BINARY, given, or
#                        this checkout's dist build
#   bench_setup BINARY   builds this checkout's dofs (dist profile) unless BINARY is given;
#                        sets dofs, work, and the EXIT trap that stops the server
#   start_server [VAR=VALUE...]   a fresh $work/data, a random port; sets server_pid
#                        and endpoint (http://127.0.0.1:PORT). Set server_launcher
#                        (an array: a command that runs dofs, valgrind say),
#                        server_start_s (default 10) and server_stderr (default
#                        /dev/null) before it to change how it starts.
#   stop_server
#   need_oha             installs the load generator if it is missing
#   order_body           a valid order, the body every bench sends

dist_dir="${CARGO_TARGET_DIR:-target}/dist"

build_dist() {
  local p args=()
  for p in "$@"; do args+=(-p "$p"); done
  cargo build --profile dist --locked "${args[@]}" >&2
}

dofs_origin() {
  if [[ -n "${1:-}" ]]; then echo "$1, given"; else echo "this checkout's dist build"; fi
}

bench_setup() {
  dofs=${1:-}
  if [[ -z "$dofs" ]]; then
    build_dist dofs-cli
    dofs="$dist_dir/dofs"
  fi
  work=$(mktemp -d)
  server_pid=""
  trap bench_cleanup EXIT
}

bench_cleanup() {
  if [[ -n "$server_pid" ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}

start_server() {
  rm -rf "$work/data" "$work/out"
  : >"$work/out"
  env "$@" ${server_launcher[@]+"${server_launcher[@]}"} "$dofs" serve --bind 127.0.0.1:0 \
    --data-dir "$work/data" >"$work/out" 2>"${server_stderr:-/dev/null}" &
  server_pid=$!
  for _ in $(seq "$(( ${server_start_s:-10} * 10 ))"); do
    grep -q 'listening on' "$work/out" && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  endpoint=$(sed -n 's/^dofs listening on //p' "$work/out")
  if [[ -z "$endpoint" ]]; then
    echo "the server did not start" >&2
    if [[ -f "${server_stderr:-}" ]]; then tail -5 "$server_stderr" >&2; fi
    exit 1
  fi
}

stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

# The machine and the build, first in every report.
bench_banner() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load generator on the same machine, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "dofs:    $(dofs_origin "${1:-}"); checkout $(git describe --always --dirty 2>/dev/null || echo unknown)"
}

need_oha() {
  command -v oha >/dev/null || cargo install oha --locked --version 1.16.0 >&2
  command -v oha >/dev/null || { echo "oha is not on PATH (cargo installs it in ~/.cargo/bin)" >&2; exit 1; }
}

order_body='{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":29.99,"metadata":{"source":"bench"}}'
