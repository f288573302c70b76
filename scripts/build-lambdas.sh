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
#
# Each zip is checked, and the build fails otherwise: a `bootstrap` at its root,
# executable, for the architecture asked, either static or needing only libraries and
# glibc symbol versions the provided.al2023 image has (glibc 2.34; libc, libm, libgcc_s,
# libpthread, libdl, librt, ld-linux), read from its ELF headers with readelf (binutils).
# The zip must be within Lambda's limits for a zip package (50 MB uploaded directly,
# 250 MB unzipped). Built with the workspace's `lambda` profile (release, no debug
# information, stripped). Its sizes, zipped and not, and what it links are printed.
# With CI=true a missing tool fails the build.
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
            sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
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
dofs_require readelf "reads each bootstrap's linking (binutils)" || exit 1

# What the provided.al2023 image offers a dynamically linked bootstrap.
al2023_glibc=2.34
al2023_libs='^(libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1)$'

have_arm64() {
    rustup target list --installed 2>/dev/null | grep -qx 'aarch64-unknown-linux-gnu'
}

# check_bootstrap ZIP ARCH: prints how the zip's bootstrap links ("static", or its
# libraries and newest glibc version); fails when it is for another machine or needs a
# library or glibc symbol version provided.al2023 lacks.
check_bootstrap() {
    local zip="$1" a="$2" tmp bin machine want libs lib bad="" versions newest v
    tmp="$(mktemp -d)"
    bin="$tmp/bootstrap"
    "$DOFS_PYTHON" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("bootstrap"))' \
        "$zip" "$bin" || {
        rm -rf "$tmp"
        return 1
    }
    case "$a" in
        x86_64) want='X86-64' ;;
        arm64) want='AArch64' ;;
    esac
    machine="$(readelf -h "$bin" | sed -n 's/^ *Machine: *//p')"
    if [[ "$machine" != *"$want"* ]]; then
        echo "build-lambdas: the bootstrap in $zip is for '$machine', not $a" >&2
        rm -rf "$tmp"
        return 1
    fi
    if ! readelf -lW "$bin" | grep -q 'Requesting program interpreter'; then
        rm -rf "$tmp"
        echo "static"
        return 0
    fi
    libs="$(readelf -dW "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
    for lib in $libs; do
        [[ "$lib" =~ $al2023_libs ]] || bad+=" $lib"
    done
    # The glibc symbol versions the binary requires (.gnu.version_r), newest last.
    versions="$(readelf -VW "$bin" | grep -Eo 'GLIBC_[0-9]+(\.[0-9]+)+' | sort -uV)"
    newest="$(tail -n1 <<<"$versions")"
    for v in $versions; do
        [[ "$(printf '%s\n%s\n' "${v#GLIBC_}" "$al2023_glibc" | sort -V | tail -n1)" == "$al2023_glibc" ]] ||
            bad+=" $v (al2023 has glibc $al2023_glibc)"
    done
    # ldd resolves the libraries on this machine; only for its own architecture.
    if [[ "$a" == "$(uname -m)" ]] && command -v ldd >/dev/null 2>&1; then
        while read -r lib; do
            [[ -z "$lib" || "$lib" =~ $al2023_libs || "$lib" == linux-vdso.so.1 ]] || bad+=" $lib (ldd)"
        done < <(ldd "$bin" 2>/dev/null | awk '{ print $1 }' | xargs -r -n1 basename)
    fi
    rm -rf "$tmp"
    if [[ -n "$bad" ]]; then
        echo "build-lambdas: the bootstrap in $zip needs what provided.al2023 lacks:$bad" >&2
        return 1
    fi
    echo "dynamic: $(echo "$libs" | xargs); newest symbol version ${newest:-none}, al2023 has GLIBC_$al2023_glibc"
}

# build ARCH DIR: the zips of one architecture into DIR, checked.
build() {
    local a="$1" dir="$2" flag started f zip unzipped
    case "$a" in
        x86_64) flag=--x86-64 ;;
        arm64) flag=--arm64 ;;
    esac
    started=$SECONDS
    echo "==> cargo lambda build --profile lambda -p dofs-lambdas $flag --output-format zip --lambda-dir $dir"
    cargo lambda build --profile lambda -p dofs-lambdas "$flag" --output-format zip --lambda-dir "$dir"
    for f in "${functions[@]}"; do
        zip="$dir/$f/bootstrap.zip"
        [[ -s "$zip" ]] || {
            echo "build-lambdas: $zip was not produced" >&2
            return 1
        }
        unzipped="$("$DOFS_PYTHON" - "$zip" <<'PY'
import os, sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as z:
    names = z.namelist()
    info = z.getinfo("bootstrap") if "bootstrap" in names else None
if info is None:
    sys.exit(f"build-lambdas: {path} has no 'bootstrap' ({names})")
if (info.external_attr >> 16) & 0o111 == 0:
    sys.exit(f"build-lambdas: 'bootstrap' in {path} is not executable")
# Lambda's limits on a zip package: 50 MB uploaded directly, 250 MB unzipped.
zipped = os.path.getsize(path)
if zipped > 50 * 1024 * 1024:
    sys.exit(f"build-lambdas: {path} is {zipped} bytes, above Lambda's 50 MB for a direct upload")
if info.file_size > 250 * 1024 * 1024:
    sys.exit(f"build-lambdas: 'bootstrap' in {path} unzips to {info.file_size} bytes, above Lambda's 250 MB")
print(info.file_size)
PY
)" || return 1
        linking="$(check_bootstrap "$zip" "$a")" || return 1
        printf '%-16s %-7s %10s bytes (%s unzipped)  %s  (%s)\n' "$f" "$a" "$(stat -c %s "$zip")" \
            "$unzipped" "$zip" "$linking"
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
