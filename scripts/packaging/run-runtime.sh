#!/usr/bin/env bash
# Runs inside `unshare --mount --net` (scripts/test-packaging.sh): the Dockerfile's
# runtime stage as it is, read by dockerfile_runtime.py. /etc, /usr/local/bin and /var/lib
# are private copies or tmpfs mounts here, so the user the stage creates and its data
# directory never reach the host; the private network lets it bind 0.0.0.0:8080.
# Usage: run-runtime.sh RUNTIME_ENV_FILE   (env: DOFS_BIN, WORK)
set -euo pipefail
# shellcheck disable=SC1090
source "$1"
say() { printf 'ok: %s\n' "$*"; }

mount --make-rprivate /
ip link set lo up
cp -a /etc "$WORK/etc"
mount --bind "$WORK/etc" /etc
mount -t tmpfs tmpfs /var/lib
mount -t tmpfs tmpfs /usr/local/bin
install -m 0755 "$DOFS_BIN" /usr/local/bin/dofs

for step in "${RUNTIME_RUN[@]}"; do
    /bin/sh -c "$step"
done
uid="${RUNTIME_USER%%:*}"
gid="${RUNTIME_USER#*:}"
[[ "$gid" != "$RUNTIME_USER" ]] || gid="$(id -g "$uid")"
say "the stage's RUN made user $(id -un "$uid") ($uid:$gid) and $(stat -c '%n %U:%G %a' "$RUNTIME_WORKDIR")"

# As the image: in its WORKDIR, with only its ENV (and what a container runtime adds:
# PATH, HOME, HOSTNAME), as its USER. env and setpriv exec, so the pid is dofs's own.
cd "$RUNTIME_WORKDIR"
image_env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    HOME="$(getent passwd "$uid" | cut -d: -f6)" HOSTNAME=dofs "${RUNTIME_ENV[@]}"
    setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all --)
as_image() { "${image_env[@]}" "$@"; }

"${image_env[@]}" "${RUNTIME_COMMAND[@]}" >"$WORK/serve.out" 2>"$WORK/serve.err" &
pid=$!
stop() { kill "$pid" 2>/dev/null || true; }
trap stop EXIT
healthy=""
for _ in $(seq 1 150); do
    if as_image "${RUNTIME_HEALTH[@]}" >"$WORK/health.out" 2>&1; then
        healthy=1
        break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
done
if [[ -z "$healthy" ]]; then
    echo "the HEALTHCHECK command never passed: $(cat "$WORK/health.out")"
    tail -n 20 "$WORK/serve.err"
    exit 1
fi
say "HEALTHCHECK ${RUNTIME_HEALTH[*]}: $(cat "$WORK/health.out")"
[[ "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" == "$uid" ]] || {
    echo "dofs runs as uid $(awk '/^Uid:/ {print $2}' "/proc/$pid/status"), not $uid"
    exit 1
}
say "${RUNTIME_COMMAND[*]} runs as uid $uid"

order="$(as_image dofs submit --customer-id CUST-1001 --product-id PROD-2001 --quantity 2 \
    --price 29.99 --wait --wait-timeout 30s --json)"
status="$(printf '%s' "$order" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
case "$status" in
    FULFILLED | FAILED) say "an order submitted reached $status" ;;
    *) echo "the order did not reach a terminal status: $order"; exit 1 ;;
esac
db="$RUNTIME_WORKDIR/dofs.db"
[[ "$(stat -c %u "$db")" == "$uid" ]] || { echo "$db is not owned by $uid"; exit 1; }
grep -q '"level":"INFO"' "$WORK/serve.err" || { echo "logs are not JSON lines:"; head -3 "$WORK/serve.err"; exit 1; }
say "$(stat -c '%n %U %a' "$db"), logs are JSON lines"

kill -TERM "$pid"
code=0
wait "$pid" || code=$?
trap - EXIT
[[ $code == 0 ]] || { echo "SIGTERM: exit $code"; tail -n 20 "$WORK/serve.err"; exit 1; }
say "SIGTERM: a clean exit (0)"

# A data directory the user cannot write: a refused start-up, exit 2, and what to do.
chown root:root "$RUNTIME_WORKDIR"
chmod 0755 "$RUNTIME_WORKDIR"
code=0
as_image "${RUNTIME_COMMAND[@]}" >/dev/null 2>"$WORK/refused.err" || code=$?
[[ $code == 2 ]] && grep -q "cannot be written" "$WORK/refused.err" || {
    echo "a data directory it cannot write: exit $code"
    cat "$WORK/refused.err"
    exit 1
}
say "a data directory it cannot write: exit 2, $(grep -o 'cannot be written[^;]*' "$WORK/refused.err" | head -1)"
