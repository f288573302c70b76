#!/usr/bin/env bash
# Builds the five DOFS Lambdas for the provided.al2023 runtime with cargo-lambda:
# one bootstrap.zip per function (api_handler, validator, order_storage, fulfill_order,
# dlq_processor), the layout Terraform's lambdas module and deploy-infrastructure.sh read.
#
#   scripts/build-lambdas.sh                 x86_64, and arm64 when the rustup target is there
#   scripts/build-lambdas.sh --arch x86_64   one architecture (arm64 fails without its target)
#   scripts/build-lambdas.sh --arch arm64
#
# Output: $DOFS_LAMBDA_DIR (default $CARGO_TARGET_DIR/lambda, or target/lambda) for x86_64,
# and <that>-arm64 for arm64 when both are built; with --arch, that architecture goes to
# $DOFS_LAMBDA_DIR itself (what deploy-infrastructure.sh passes to Terraform).
# cargo-lambda and ziglang come from PyPI into the tool venv (scripts/tools.sh), once.
# Idempotent: a second run rebuilds nothing that did not change and rewrites the zips.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/tools.sh
source "$here/tools.sh"
cd "$root"

arch=both
while (($#)); do
    case "$1" in
        --arch)
            arch="${2:?--arch needs x86_64 or arm64}"
            shift 2
            ;;
        --arch=*)
            arch="${1#--arch=}"
            shift
            ;;
        -h | --help)
            sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "build-lambdas: unknown argument '$1' (see --help)" >&2
            exit 2
            ;;
    esac
done
case "$arch" in
    both | x86_64 | arm64) ;;
    *)
        echo "build-lambdas: --arch must be x86_64 or arm64, not '$arch'" >&2
        exit 2
        ;;
esac

functions=(api_handler validator order_storage fulfill_order dlq_processor)
out="${DOFS_LAMBDA_DIR:-${CARGO_TARGET_DIR:-$root/target}/lambda}"

dofs_cargo_lambda || exit 1

have_arm64() {
    rustup target list --installed 2>/dev/null | grep -qx 'aarch64-unknown-linux-gnu'
}

# build ARCH DIR: the zips of one architecture into DIR, checked.
build() {
    local a="$1" dir="$2" flag started f zip
    case "$a" in
        x86_64) flag=--x86-64 ;;
        arm64) flag=--arm64 ;;
    esac
    started=$SECONDS
    echo "==> cargo lambda build --release -p dofs-lambdas $flag --output-format zip --lambda-dir $dir"
    cargo lambda build --release -p dofs-lambdas "$flag" --output-format zip --lambda-dir "$dir"
    for f in "${functions[@]}"; do
        zip="$dir/$f/bootstrap.zip"
        [[ -s "$zip" ]] || {
            echo "build-lambdas: $zip was not produced" >&2
            return 1
        }
        "$DOFS_PYTHON" - "$zip" <<'PY' || return 1
import sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as z:
    names = z.namelist()
    info = z.getinfo("bootstrap") if "bootstrap" in names else None
if info is None:
    sys.exit(f"build-lambdas: {path} has no 'bootstrap' ({names})")
if (info.external_attr >> 16) & 0o111 == 0:
    sys.exit(f"build-lambdas: 'bootstrap' in {path} is not executable")
PY
        printf '%-16s %-7s %10s bytes  %s\n' "$f" "$a" "$(stat -c %s "$zip")" "$zip"
    done
    echo "==> $a: built in $((SECONDS - started)) s"
}

case "$arch" in
    x86_64) build x86_64 "$out" ;;
    arm64)
        have_arm64 || {
            echo "build-lambdas: no arm64 toolchain: rustup target add aarch64-unknown-linux-gnu" >&2
            exit 1
        }
        build arm64 "$out"
        ;;
    both)
        build x86_64 "$out"
        if have_arm64; then
            build arm64 "$out-arm64"
        else
            echo "SKIP: arm64 (the rustup target aarch64-unknown-linux-gnu is not installed; rustup target add aarch64-unknown-linux-gnu)"
        fi
        ;;
esac
