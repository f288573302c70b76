#!/usr/bin/env bash
# Runs inside `unshare --mount --net` (scripts/test-packaging.sh): deploy/compose.yaml's
# dofs and prometheus services as the file describes them, without a container engine.
# The service names resolve to loopback through a private /etc/hosts, as Compose's
# network resolves them; prometheus gets the files the compose file mounts, at the paths
# it mounts them, and the command it gives, except that a named volume is a directory
# under WORK (the flags naming it are pointed there: nothing is made on the host's root).
# dofs runs the image's CMD (dofs serve --bind 0.0.0.0:8080 --data-dir /var/lib/dofs)
# with the service's environment. Then, through Prometheus's HTTP API: the dofs target is up
# (scraped at http://dofs:8080/metrics), DOFS's series carry the file's labels, and
# every alert rule is loaded and evaluated without error.
# Usage: run-compose.sh COMPOSE_FILE   (env: DOFS_BIN, PROMETHEUS_BIN, WORK)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compose="$1"

mount --make-rprivate /
ip link set lo up
cp -a /etc "$WORK/compose-etc"
mount --bind "$WORK/compose-etc" /etc
echo "127.0.0.1 dofs prometheus grafana" >>/etc/hosts
mount -t tmpfs tmpfs /var/lib

pids=()
stop() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop EXIT

# service NAME: sets COMMAND, ENVIRONMENT, BINDS and VOLUMES from the compose file.
service() {
    local spec
    unset COMMAND ENVIRONMENT BINDS VOLUMES
    spec="$(python3 "$here/compose_check.py" service "$compose" "$1")" || {
        echo "cannot read service $1 from $compose" >&2
        exit 1
    }
    eval "$spec"
}

# --- dofs ----------------------------------------------------------------------------------
service dofs
dofs_env=("${ENVIRONMENT[@]}")
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${dofs_env[@]}" \
    "$DOFS_BIN" serve --bind 0.0.0.0:8080 --data-dir /var/lib/dofs \
    >"$WORK/compose-dofs.out" 2>"$WORK/compose-dofs.err" &
pids+=($!)

# --- prometheus ----------------------------------------------------------------------------
service prometheus
for bind in "${BINDS[@]}"; do
    IFS=: read -r source target mode <<<"$bind"
    mkdir -p "$(dirname "$target")"
    touch "$target"
    mount --bind "$source" "$target"
    [[ "$mode" != ro ]] || mount -o remount,bind,ro "$target"
done
n=0
for target in "${VOLUMES[@]}"; do
    n=$((n + 1))
    mkdir -p "$WORK/volume-$n"
    COMMAND=("${COMMAND[@]/%=$target/=$WORK/volume-$n}")
done
(cd "$WORK" && exec "$PROMETHEUS_BIN" "${COMMAND[@]}") >"$WORK/prometheus.out" 2>&1 &
pids+=($!)

# --- what Prometheus sees ------------------------------------------------------------------
# Through the URL Grafana's provisioned data source uses (Grafana itself is not run: no
# package of it here).
python3 "$here/prometheus_check.py" http://prometheus:9090 dofs prod || {
    tail -n 20 "$WORK/prometheus.out" "$WORK/compose-dofs.err"
    exit 1
}
# The service's environment reached dofs (its start-up line names the environment).
want=""
for e in "${dofs_env[@]}"; do [[ "$e" != DOFS_ENVIRONMENT=* ]] || want="${e#DOFS_ENVIRONMENT=}"; done
grep -q "environment=${want:-dev} " "$WORK/compose-dofs.err" || {
    echo "dofs did not start in the service's environment (${want:-dev}):" >&2
    tail -n 5 "$WORK/compose-dofs.err" >&2
    exit 1
}
printf 'ok: dofs started with the service environment (%s)\n' "${dofs_env[*]}"
