#!/usr/bin/env bash
# Builds the container image from the repository's Dockerfile and runs it, on a machine
# with no container daemon and no registry to pull base images from:
#
#   1. base images made here: `debian:bookworm-slim`'s stand-in from a debootstrap
#      (minbase) root file system, and the build stage's Rust image from that plus gcc,
#      libc6-dev, ca-certificates and this machine's Rust toolchain (once; kept in the
#      image store of its own as localhost/dofs-base/*)
#   2. `buildah bud` of the Dockerfile as it is, with those two images as BUILD_IMAGE and
#      RUNTIME_IMAGE (Docker format, so the HEALTHCHECK is kept), and CARGO_PROFILE=release:
#      the `dist` profile the image ships with adds link-time optimization only, which
#      adds about 1.5 minutes to each rebuild here and changes nothing this checks
#   3. the image's configuration: user, entrypoint, command, volume, port, health check
#   4. the image run with podman: the health check passes, an order reaches a terminal
#      status, the process runs as uid 10001, the data belongs to it, SIGTERM ends it
#      with 0, and a new container on the same volume still has the order
#
# Usage: scripts/test-image.sh [--rebuild-bases]
# Needs root and apt-get (installs buildah, podman, runc, debootstrap once); without them
# it skips, and with CI=true fails. Its images live in a store of their own
# (DOFS_IMAGE_STORE, default ~/.cache/dofs-image-store). The first run
# takes several minutes (the bases, and the build stage compiling dofs in release from
# nothing); later ones compile only what changed (DOFS_IMAGE_TARGET, default
# ~/.cache/dofs-image-target, keeps the stage's target directories, one per clone). Part of the test
# command (scripts/test.sh). Prints PASS/FAIL per check.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
# shellcheck source=scripts/tools.sh
source "$ROOT/scripts/tools.sh"

rebuild_bases=false
case "${1:-}" in
    --rebuild-bases) rebuild_bases=true ;;
    -h | --help)
        sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    "") ;;
    *)
        echo "test-image: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
esac

MIRROR="${DOFS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
IMAGE="${DOFS_IMAGE:-localhost/dofs:dev}"
RUNTIME_BASE=localhost/dofs-base/debian:bookworm-slim
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dofs-test-image.XXXXXX")"
container="" volume="dofs-test-image-$$"
passed=0 failed=0

cleanup() {
    [[ -n "$container" ]] && podman rm -f "$container" >/dev/null 2>&1
    podman rm -f "$volume-again" >/dev/null 2>&1
    podman volume rm -f "$volume" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

pass() {
    printf 'PASS: %s\n' "$1"
    passed=$((passed + 1))
}
fail() {
    printf 'FAIL: %s\n' "$1"
    [[ -n "${2:-}" ]] && sed 's/^/    /' "$2"
    failed=$((failed + 1))
}
finish() {
    printf 'test-image: %d passed, %d failed\n' "$passed" "$failed"
    [[ $failed -eq 0 ]]
    exit $?
}

# Both runtimes are unusable with their defaults on this kind of machine: crun refuses
# the hybrid cgroup layout, and the process may lower resource limits but not raise
# them, while podman's defaults raise nofile and nproc. runc with lowered limits works.
RUNTIME=(--runtime runc)
LIMITS=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit nproc=32768:32768)

# --- prerequisites -------------------------------------------------------------------------
# need CMD PACKAGE: a missing tool ends the run, as a SKIP (exit 0) or, with CI=true, a FAIL.
need() {
    local rc=0
    dofs_apt_tool "$1" "$2" || rc=$?
    case $rc in
        0) ;;
        2) echo "test-image: skipped (no $1)"; exit 0 ;;
        *) exit 1 ;;
    esac
}
for tool in buildah:buildah podman:podman runc:runc debootstrap:debootstrap; do
    need "${tool%%:*}" "${tool##*:}"
done
# Port publishing needs the CNI plugins (a recommendation of podman, not a dependency).
[[ -x /usr/lib/cni/bridge ]] || need /usr/lib/cni/bridge containernetworking-plugins

# This script's images and containers live in a store of their own, so that what it
# removes (the previous build's image) is never anything else's.
STORE="${DOFS_IMAGE_STORE:-$HOME/.cache/dofs-image-store}"
buildah() { command buildah --root "$STORE" --runroot /run/dofs-image-store "$@"; }
podman() { command podman --root "$STORE" --runroot /run/dofs-image-store "$@"; }
rust_version="$(rustc --version | awk '{print $2}')"
sysroot="$(rustc --print sysroot)"
BUILD_BASE="localhost/dofs-base/rust:${rust_version}-slim-bookworm"

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# --- 1. base images ----------------------------------------------------------------------
make_runtime_base() {
    local rootfs="$WORK/rootfs" ctr mnt
    echo "debootstrap --variant=minbase bookworm from $MIRROR (about a minute)"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
        tail -n 20 "$WORK/debootstrap.log" >&2
        return 1
    }
    # What the slim image leaves out: documentation, the apt lists and caches.
    rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/cache/apt/*.bin
    ctr="$(buildah from scratch)" || return 1
    mnt="$(buildah mount "$ctr")" || return 1
    cp -a "$rootfs"/. "$mnt"/ || return 1
    buildah umount "$ctr" >/dev/null
    buildah config --cmd bash \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --label org.opencontainers.image.description="Debian bookworm minbase, debootstrapped here" \
        "$ctr" || return 1
    buildah commit -q --rm "$ctr" "$RUNTIME_BASE" >/dev/null
}

make_build_base() {
    local ctr dir
    ctr="$(buildah from --pull-never "$RUNTIME_BASE")" || return 1
    buildah run "${RUNTIME[@]}" "$ctr" -- sh -c \
        'apt-get update -q && apt-get install -y -q --no-install-recommends gcc libc6-dev ca-certificates && rm -rf /var/lib/apt/lists/*' \
        >"$WORK/apt.log" 2>&1 || {
        tail -n 20 "$WORK/apt.log" >&2
        buildah rm "$ctr" >/dev/null
        return 1
    }
    # The toolchain this machine builds with, without its documentation.
    for dir in bin lib libexec; do
        [[ -d "$sysroot/$dir" ]] || continue
        buildah copy -q "$ctr" "$sysroot/$dir" "/usr/local/rust/$dir" >/dev/null || return 1
    done
    buildah config \
        --env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env CARGO_HOME=/usr/local/cargo \
        --label org.opencontainers.image.description="Rust $rust_version on the debootstrapped bookworm" \
        "$ctr" || return 1
    buildah commit -q --rm "$ctr" "$BUILD_BASE" >/dev/null
}

if $rebuild_bases || ! have_image "$RUNTIME_BASE"; then
    if make_runtime_base; then pass "runtime base image $RUNTIME_BASE made from debootstrap"; else
        fail "runtime base image from debootstrap"
        finish
    fi
fi
if $rebuild_bases || ! have_image "$BUILD_BASE"; then
    if make_build_base; then pass "build base image $BUILD_BASE (gcc, libc6-dev, Rust $rust_version)"; else
        fail "build base image"
        finish
    fi
fi

# --- 2. the Dockerfile, built ------------------------------------------------------------
started=$SECONDS
# The crate registry is shared with this machine's cargo as a download cache only, and
# the build stage's target directory is kept outside the clone (as .ci/run keeps cargo's),
# so that a later build compiles only what changed. Neither is part of a layer. Every
# clone builds at /src in the stage, and cargo tells changed files by their times, so
# each clone keeps a target directory of its own: a build from another clone, newer
# than this one's edits, would otherwise pass them for built.
registry="${CARGO_HOME:-$HOME/.cargo}/registry"
image_target="${DOFS_IMAGE_TARGET:-$HOME/.cache/dofs-image-target}/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
mkdir -p "$registry" "$image_target"
if buildah bud --pull-never --format docker --layers "${RUNTIME[@]}" \
    --build-arg "RUST_VERSION=$rust_version" \
    --build-arg "BUILD_IMAGE=$BUILD_BASE" \
    --build-arg "RUNTIME_IMAGE=$RUNTIME_BASE" \
    --build-arg "CARGO_PROFILE=release" \
    -v "$registry:/usr/local/cargo/registry" \
    -v "$image_target:/src/target" \
    -t "$IMAGE" . >"$WORK/bud.log" 2>&1; then
    # The previous build's images, now untagged (in this script's own store).
    podman image prune -f >/dev/null 2>&1
    pass "buildah bud of the Dockerfile in $((SECONDS - started)) s: $IMAGE, $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')"
else
    fail "buildah bud of the Dockerfile" <(tail -n 40 "$WORK/bud.log")
    finish
fi

# --- 3. the image's configuration ----------------------------------------------------------
config() { podman image inspect --format "$1" "$IMAGE"; }
check_config() {
    local name="$1" format="$2" want="$3" got
    got="$(config "$format")"
    if [[ "$got" == "$want" ]]; then pass "image $name: $got"; else
        printf 'want %s\ngot  %s\n' "$want" "$got" >"$WORK/out"
        fail "image $name" "$WORK/out"
    fi
}
check_config user '{{.Config.User}}' '10001:10001'
check_config entrypoint '{{json .Config.Entrypoint}}' '["dofs"]'
check_config command '{{json .Config.Cmd}}' '["serve","--bind","0.0.0.0:8080","--data-dir","/var/lib/dofs"]'
check_config volume '{{range $k, $v := .Config.Volumes}}{{$k}}{{end}}' '/var/lib/dofs'
check_config port '{{range $k, $v := .Config.ExposedPorts}}{{$k}}{{end}}' '8080/tcp'
check_config 'health check' '{{json .HealthCheck.Test}}' '["CMD","dofs","probe","http://127.0.0.1:8080/ready"]'

# --- 4. the image, run -------------------------------------------------------------------
port="$(dofs_free_port)"
base="http://127.0.0.1:$port"
start() {
    podman run -d "${RUNTIME[@]}" "${LIMITS[@]}" --name "$1" -p "127.0.0.1:$port:8080" \
        -v "$volume:/var/lib/dofs" "$IMAGE" >"$WORK/run.log" 2>&1
}
wait_healthy() {
    local i
    for i in $(seq 1 100); do
        podman healthcheck run "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

container="dofs-test-image-$$"
if start "$container" && wait_healthy "$container"; then
    pass "container started; its HEALTHCHECK (dofs probe /ready) passes"
else
    podman logs "$container" >>"$WORK/run.log" 2>&1
    fail "container started and healthy" "$WORK/run.log"
    finish
fi

uid="$(podman exec "$container" id -u 2>&1)"
owner="$(podman exec "$container" stat -c '%u' /var/lib/dofs/dofs.db 2>&1)"
if [[ "$uid" == 10001 && "$owner" == 10001 ]]; then pass "runs as uid $uid; /var/lib/dofs/dofs.db belongs to uid $owner"; else
    printf 'uid %s, owner of dofs.db %s\n' "$uid" "$owner" >"$WORK/out"
    fail "runs as uid 10001 and owns its data" "$WORK/out"
fi

order='{"customerId":"CUST-1001","productId":"PROD-2001","quantity":2,"price":29.99}'
id="$(curl -sf -X POST "$base/order" -H 'content-type: application/json' -d "$order" |
    "${DOFS_PYTHON:-python3}" -c 'import json,sys; print(json.load(sys.stdin)["orderId"])' 2>/dev/null)"
status=""
for _ in $(seq 1 100); do
    status="$(curl -sf "$base/orders/$id" | "${DOFS_PYTHON:-python3}" -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)"
    [[ "$status" == FULFILLED || "$status" == FAILED ]] && break
    sleep 0.1
done
if [[ -n "$id" && ("$status" == FULFILLED || "$status" == FAILED) ]]; then pass "order $id accepted through the published port and $status"; else
    printf 'order id %s, status %s\n' "$id" "$status" >"$WORK/out"
    podman logs "$container" >>"$WORK/out" 2>&1
    fail "an order reaches a terminal status" "$WORK/out"
fi

podman stop -t 20 "$container" >/dev/null 2>&1
code="$(podman inspect --format '{{.State.ExitCode}}' "$container" 2>&1)"
# podman stop sends SIGTERM, then SIGKILL after 20 s (exit code 137).
if [[ "$code" == 0 ]]; then pass "SIGTERM (podman stop) ends it with exit code $code"; else
    podman logs "$container" >"$WORK/out" 2>&1
    printf 'exit code %s\n' "$code" >>"$WORK/out"
    fail "SIGTERM ends it with 0" "$WORK/out"
fi

if start "$volume-again" && wait_healthy "$volume-again" &&
    [[ "$(curl -sf "$base/orders/$id" | "${DOFS_PYTHON:-python3}" -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null)" == "$status" ]]; then
    pass "a new container on the same volume has order $id, $status"
else
    podman logs "$volume-again" >"$WORK/out" 2>&1
    fail "the data outlives the container" "$WORK/out"
fi
podman stop -t 20 "$volume-again" >/dev/null 2>&1

finish
