#!/usr/bin/env bash
# Build, digest, publish and look up the DOFS Lambda artifacts.
#
# One implementation for both routes: lambda-buildspec.yml (CodeBuild) and
# .github/workflows/deploy.yml (GitHub Actions) call this script, so the digest, the S3
# layout and the manifest are the same whichever built them.
#
#   lambda-artifacts.sh build                 cargo lambda build --profile lambda --output-format zip -p dofs-lambdas
#   lambda-artifacts.sh digest                digest the five zips, write $OUT_DIR/{digest,manifest.json}
#   lambda-artifacts.sh publish BUCKET        upload them once to s3://BUCKET/lambda/<digest>/
#   lambda-artifacts.sh verify BUCKET DIGEST  check that DIGEST is published (manifest and five zips)
#   lambda-artifacts.sh list BUCKET           published digests, oldest first, with their commit
#   lambda-artifacts.sh history BUCKET ENV    what was deployed to ENV, oldest first
#   lambda-artifacts.sh record BUCKET ENV DIGEST   note a deployment (terraform-env.sh apply does it)
#
# The digest is the sha256 of the five zips concatenated in this fixed order:
#   api_handler validator order_storage fulfill_order dlq_processor
# so the same bytes always give the same digest, and an environment is applied with
#   -var artifacts_s3_bucket=BUCKET -var artifacts_s3_prefix=lambda/<digest>
#
# Environment: LAMBDA_DIR (target/lambda), OUT_DIR (artifacts), LAMBDA_ARCH (x86_64|arm64),
# SOURCE_COMMIT (else GITHUB_SHA, CODEBUILD_RESOLVED_SOURCE_VERSION, or git), AWS_REGION,
# AWS_ENDPOINT_URL (an emulator; the AWS CLI honours it).
set -euo pipefail

FUNCTIONS=(api_handler validator order_storage fulfill_order dlq_processor)
LAMBDA_DIR="${LAMBDA_DIR:-target/lambda}"
OUT_DIR="${OUT_DIR:-artifacts}"
LAMBDA_PREFIX="${LAMBDA_PREFIX:-lambda}"
DEPLOYMENTS_PREFIX="${DEPLOYMENTS_PREFIX:-deployments}"
LAMBDA_ARCH="${LAMBDA_ARCH:-x86_64}"

die() {
    printf 'lambda-artifacts: %s\n' "$*" >&2
    exit 1
}
log() { printf 'lambda-artifacts: %s\n' "$*" >&2; }

python_bin() {
    command -v python3 || command -v python || die "python3 is required"
}

valid_digest() { [[ "${1:-}" =~ ^[0-9a-f]{64}$ ]]; }

source_commit() {
    local c="${SOURCE_COMMIT:-${GITHUB_SHA:-${CODEBUILD_RESOLVED_SOURCE_VERSION:-}}}"
    if [[ -z "$c" ]]; then
        c="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
    fi
    printf '%s\n' "$c"
}

s3_exists() { # bucket key
    aws s3api head-object --bucket "$1" --key "$2" >/dev/null 2>&1
}

cmd_build() {
    command -v cargo >/dev/null || die "cargo is required"
    cargo lambda --version >/dev/null 2>&1 || die "cargo-lambda is required (pip install cargo-lambda, or cargo install cargo-lambda)"
    local arch_flag
    case "$LAMBDA_ARCH" in
        arm64) arch_flag=--arm64 ;;
        x86_64) arch_flag=--x86-64 ;;
        *) die "LAMBDA_ARCH must be arm64 or x86_64, not '$LAMBDA_ARCH'" ;;
    esac
    log "cargo lambda build --profile lambda --output-format zip -p dofs-lambdas $arch_flag"
    cargo lambda build --profile lambda --output-format zip -p dofs-lambdas "$arch_flag"
}

cmd_digest() {
    local f
    for f in "${FUNCTIONS[@]}"; do
        [[ -s "$LAMBDA_DIR/$f/bootstrap.zip" ]] || die "missing $LAMBDA_DIR/$f/bootstrap.zip (run: $0 build)"
    done
    mkdir -p "$OUT_DIR"
    "$(python_bin)" - "$LAMBDA_DIR" "$OUT_DIR" "$LAMBDA_PREFIX" "$(source_commit)" "$LAMBDA_ARCH" "${FUNCTIONS[@]}" <<'PY'
import base64, datetime, hashlib, json, os, sys

lambda_dir, out_dir, prefix, commit, arch, *functions = sys.argv[1:]
combined = hashlib.sha256()
entries = []
for name in functions:
    path = os.path.join(lambda_dir, name, "bootstrap.zip")
    own = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            own.update(chunk)
            combined.update(chunk)
            size += len(chunk)
    entries.append({"name": name, "file": f"{name}.zip", "bytes": size,
                    "sha256": own.hexdigest(),
                    "sha256_base64": base64.b64encode(own.digest()).decode()})
digest = combined.hexdigest()
for e in entries:
    e["key"] = f"{prefix}/{digest}/{e['file']}"
manifest = {
    "schema": 1,
    "digest": digest,
    "digest_of": "sha256 of the zips concatenated in the order of 'functions'",
    "prefix": f"{prefix}/{digest}",
    "commit": commit,
    "architecture": arch,
    "built_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "functions": entries,
}
with open(os.path.join(out_dir, "manifest.json"), "w") as fh:
    json.dump(manifest, fh, indent=2)
    fh.write("\n")
with open(os.path.join(out_dir, "digest"), "w") as fh:
    fh.write(digest + "\n")
print(digest)
PY
}

cmd_publish() {
    local bucket="${1:?usage: publish BUCKET}" digest prefix f
    [[ -s "$OUT_DIR/digest" && -s "$OUT_DIR/manifest.json" ]] || cmd_digest >/dev/null
    digest="$(cat "$OUT_DIR/digest")"
    valid_digest "$digest" || die "bad digest in $OUT_DIR/digest"
    prefix="$LAMBDA_PREFIX/$digest"
    if s3_exists "$bucket" "$prefix/manifest.json"; then
        # A digest names its bytes: what is there is what we have. Never overwrite it.
        log "s3://$bucket/$prefix/ is already published; not uploading again"
    else
        for f in "${FUNCTIONS[@]}"; do
            aws s3 cp --only-show-errors "$LAMBDA_DIR/$f/bootstrap.zip" "s3://$bucket/$prefix/$f.zip"
        done
        # The manifest goes last: its presence means the five zips are complete.
        aws s3 cp --only-show-errors --content-type application/json "$OUT_DIR/manifest.json" "s3://$bucket/$prefix/manifest.json"
        log "published s3://$bucket/$prefix/"
    fi
    {
        printf 'ARTIFACT_DIGEST=%s\n' "$digest"
        printf 'ARTIFACT_BUCKET=%s\n' "$bucket"
        printf 'ARTIFACT_PREFIX=%s\n' "$prefix"
    } >"$OUT_DIR/artifact.env"
    printf '%s\n' "$digest"
}

cmd_verify() {
    local bucket="${1:?usage: verify BUCKET DIGEST}" digest="${2:-}" f prefix
    valid_digest "$digest" || die "'$digest' is not a digest (64 lower-case hex characters)"
    prefix="$LAMBDA_PREFIX/$digest"
    local keys
    keys="$(aws s3api list-objects-v2 --bucket "$bucket" --prefix "$prefix/" --query 'Contents[].Key' --output text)" ||
        die "cannot list s3://$bucket/$prefix/"
    keys="$(tr '\t' '\n' <<<"$keys")"
    grep -qxF "$prefix/manifest.json" <<<"$keys" || die "s3://$bucket/$prefix/manifest.json does not exist: that digest was never published (see: $0 list $bucket)"
    for f in "${FUNCTIONS[@]}"; do
        grep -qxF "$prefix/$f.zip" <<<"$keys" || die "s3://$bucket/$prefix/$f.zip is missing"
    done
    mkdir -p "$OUT_DIR"
    aws s3 cp --only-show-errors "s3://$bucket/$prefix/manifest.json" "$OUT_DIR/manifest.json"
    printf '%s\n' "$digest" >"$OUT_DIR/digest"
    log "s3://$bucket/$prefix/ is complete"
    printf '%s\n' "$digest"
}

cmd_list() {
    local bucket="${1:?usage: list BUCKET}"
    aws s3api list-objects-v2 --bucket "$bucket" --prefix "$LAMBDA_PREFIX/" \
        --query "Contents[?ends_with(Key, '/manifest.json')].[LastModified, Key]" --output text |
        awk 'NF == 2 { split($2, p, "/"); print $1, p[2] }' | sort
}

cmd_record() {
    local bucket="${1:?usage: record BUCKET ENV DIGEST}" env="${2:?}" digest="${3:-}" now tmp
    valid_digest "$digest" || die "'$digest' is not a digest"
    # UTC with milliseconds, so that the history sorts even for quick successive applies.
    now="$("$(python_bin)" -c 'import datetime; t = datetime.datetime.now(datetime.timezone.utc); print(t.strftime("%Y%m%dT%H%M%S.") + "%03dZ" % (t.microsecond // 1000))')"
    tmp="$(mktemp)"
    printf '{"environment": "%s", "digest": "%s", "commit": "%s", "deployed_at": "%s", "by": "%s"}\n' \
        "$env" "$digest" "$(source_commit)" "$now" "${GITHUB_ACTOR:-${CODEBUILD_INITIATOR:-${USER:-unknown}}}" >"$tmp"
    aws s3 cp --only-show-errors --content-type application/json "$tmp" "s3://$bucket/$DEPLOYMENTS_PREFIX/$env/$now-$digest.json"
    rm -f "$tmp"
    log "recorded $env <- $digest"
}

cmd_history() {
    local bucket="${1:?usage: history BUCKET ENV}" env="${2:?usage: history BUCKET ENV}"
    aws s3api list-objects-v2 --bucket "$bucket" --prefix "$DEPLOYMENTS_PREFIX/$env/" \
        --query "Contents[].Key" --output text | tr '\t' '\n' |
        awk -F/ 'NF == 3 && $3 ~ /\.json$/ { sub(/\.json$/, "", $3); split($3, p, "-"); print p[1], p[2] }' | sort
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        build) cmd_build "$@" ;;
        digest) cmd_digest "$@" ;;
        publish) cmd_publish "$@" ;;
        verify) cmd_verify "$@" ;;
        list) cmd_list "$@" ;;
        record) cmd_record "$@" ;;
        history) cmd_history "$@" ;;
        *)
            sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
            [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help ]] || exit 2
            ;;
    esac
}

main "$@"
