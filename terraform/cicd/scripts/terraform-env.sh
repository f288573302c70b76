#!/usr/bin/env bash
# Plan and apply one DOFS environment with a published Lambda artifact.
#
# One implementation for both routes: buildspec.yml (CodeBuild) and the GitHub Actions
# workflows call this script, so a plan means the same thing whichever ran it.
#
#   terraform-env.sh init      terraform init with the environment's S3 backend
#   terraform-env.sh plan      init, check the artifact is published, plan to $PLAN_DIR/tfplan
#   terraform-env.sh apply     init, apply exactly $PLAN_DIR/tfplan, record the deployment
#   terraform-env.sh deploy    plan, show it, ask, apply (a person at a terminal; AUTO_APPROVE=1
#                              skips the question)
#
# Required: ENVIRONMENT (dev|staging|prod), AWS_REGION, ARTIFACT_BUCKET, and for plan/deploy
# ARTIFACT_DIGEST (64 hex characters: the digest printed by lambda-artifacts.sh publish).
# Optional: PROJECT_NAME (dofs), TF_ROOT (terraform/environments/$ENVIRONMENT),
# TF_STATE_BUCKET and TF_LOCK_TABLE (default: the names setup-backend.sh uses,
# ${PROJECT_NAME}-${ENVIRONMENT}-tfstate-<account>-${AWS_REGION} and
# ${PROJECT_NAME}-${ENVIRONMENT}-tfstate-lock), TF_STATE_KEY (default: the key in the
# root's versions.tf), PLAN_DIR (artifacts/plans/$ENVIRONMENT, or the CodeBuild secondary
# artifact named $PLAN_ARTIFACT when applying), TF_EXTRA_ARGS (appended to plan),
# AWS_ENDPOINT_URL (an emulator: backend and root are pointed at it).
#
# Besides -var artifacts_s3_bucket/-var artifacts_s3_prefix, plan passes what the artifact's
# manifest.json says (lambda_architecture, artifacts_source_hashes), project_name and
# aws_region, each when the root declares it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"

die() {
    printf 'terraform-env: %s\n' "$*" >&2
    exit 1
}
log() { printf 'terraform-env: %s\n' "$*" >&2; }

: "${ENVIRONMENT:?set ENVIRONMENT (dev, staging or prod)}"
[[ "$ENVIRONMENT" =~ ^[a-z][a-z0-9]{1,15}$ ]] || die "bad ENVIRONMENT '$ENVIRONMENT'"
PROJECT_NAME="${PROJECT_NAME:-dofs}"
AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
[[ -n "$AWS_REGION" ]] || die "set AWS_REGION"
export AWS_REGION AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
TF_ROOT="${TF_ROOT:-$repo_root/terraform/environments/$ENVIRONMENT}"
export PROJECT_NAME ENVIRONMENT TF_IN_AUTOMATION=1 TF_INPUT=0

# The backend names and settings come from scripts/tools.sh, which setup-backend.sh and
# deploy-infrastructure.sh use too: one definition of where each environment's state is.
# shellcheck source=../../../scripts/tools.sh
source "$repo_root/scripts/tools.sh"

resolve_plan_dir() {
    if [[ -n "${PLAN_DIR:-}" ]]; then
        :
    elif [[ -n "${PLAN_ARTIFACT:-}" && -n "$(printenv "CODEBUILD_SRC_DIR_${PLAN_ARTIFACT}" || true)" ]]; then
        PLAN_DIR="$(printenv "CODEBUILD_SRC_DIR_${PLAN_ARTIFACT}")"
    else
        PLAN_DIR="$repo_root/artifacts/plans/$ENVIRONMENT"
    fi
    mkdir -p "$PLAN_DIR"
    PLAN_DIR="$(cd "$PLAN_DIR" && pwd)"
}

tf() { terraform -chdir="$TF_ROOT" "$@"; }

root_declares() { # variable name
    grep -Eqs "^variable \"$1\"" "$TF_ROOT"/*.tf
}

cmd_init() {
    [[ -d "$TF_ROOT" ]] || die "no Terraform root at $TF_ROOT"
    DOFS_STATE_BUCKET="${TF_STATE_BUCKET:-${DOFS_STATE_BUCKET:-}}"
    DOFS_LOCK_TABLE="${TF_LOCK_TABLE:-${DOFS_LOCK_TABLE:-}}"
    dofs_backend_names
    local backend
    backend="$(mktemp)"
    dofs_write_backend_config "$backend"
    if [[ -n "${TF_STATE_KEY:-}" ]]; then
        printf 'key            = "%s"\n' "$TF_STATE_KEY" >>"$backend"
    fi
    log "init $TF_ROOT (state in s3://$DOFS_STATE_BUCKET, lock table $DOFS_LOCK_TABLE${AWS_ENDPOINT_URL:+, endpoint $AWS_ENDPOINT_URL})"
    local rc=0
    tf init -input=false -reconfigure -backend-config="$backend" || rc=$?
    rm -f "$backend"
    [[ $rc == 0 ]] || die "terraform init failed (exit $rc)"
}

# artifact.tfvars.json: what the manifest says about the zips, and the project, region and
# endpoint of this run, for those of these variables that the root declares.
write_artifact_vars() {
    local manifest="$PLAN_DIR/manifest.json" want=()
    root_declares lambda_architecture && want+=(lambda_architecture)
    root_declares artifacts_source_hashes && want+=(artifacts_source_hashes)
    root_declares project_name && want+=(project_name)
    root_declares aws_region && want+=(aws_region)
    root_declares aws_endpoint_url && [[ -n "${AWS_ENDPOINT_URL:-}" ]] && want+=(aws_endpoint_url)
    "$(command -v python3 || command -v python)" - "$manifest" "$PLAN_DIR/artifact.tfvars.json" "${AWS_ENDPOINT_URL:-}" "$PROJECT_NAME" "$AWS_REGION" "${want[@]}" <<'PY'
import json, os, sys
manifest_path, out, endpoint, project, region, *want = sys.argv[1:]
m = json.load(open(manifest_path)) if os.path.exists(manifest_path) else {}
values = {}
if "project_name" in want:
    values["project_name"] = project
if "aws_region" in want:
    values["aws_region"] = region
if "lambda_architecture" in want and m.get("architecture"):
    values["lambda_architecture"] = m["architecture"]
if "artifacts_source_hashes" in want and m.get("functions"):
    values["artifacts_source_hashes"] = {f["name"]: f["sha256_base64"] for f in m["functions"]}
if "aws_endpoint_url" in want:
    values["aws_endpoint_url"] = endpoint
json.dump(values, open(out, "w"), indent=2, sort_keys=True)
PY
}

require_digest() {
    : "${ARTIFACT_BUCKET:?set ARTIFACT_BUCKET (the artifact bucket of terraform/cicd)}"
    [[ "${ARTIFACT_DIGEST:-}" =~ ^[0-9a-f]{64}$ ]] || die "ARTIFACT_DIGEST must be 64 lower-case hex characters, not '${ARTIFACT_DIGEST:-}'"
}

cmd_plan() {
    require_digest
    resolve_plan_dir
    if [[ "${SKIP_ARTIFACT_CHECK:-0}" != 1 ]]; then
        OUT_DIR="$PLAN_DIR" bash "$here/lambda-artifacts.sh" verify "$ARTIFACT_BUCKET" "$ARTIFACT_DIGEST" >/dev/null
    fi
    write_artifact_vars
    cmd_init
    local rc=0
    # shellcheck disable=SC2086 # TF_EXTRA_ARGS is a list of arguments on purpose
    tf plan -input=false -lock-timeout=5m -detailed-exitcode -out="$PLAN_DIR/tfplan" \
        -var-file="$PLAN_DIR/artifact.tfvars.json" \
        -var "artifacts_s3_bucket=$ARTIFACT_BUCKET" \
        -var "artifacts_s3_prefix=lambda/$ARTIFACT_DIGEST" \
        ${TF_EXTRA_ARGS:-} || rc=$?
    case "$rc" in
        0 | 2) ;;
        *) die "terraform plan failed (exit $rc)" ;;
    esac
    tf show -no-color "$PLAN_DIR/tfplan" >"$PLAN_DIR/plan.txt"
    # The apply must use the providers the plan used.
    if [[ -f "$TF_ROOT/.terraform.lock.hcl" ]]; then
        cp "$TF_ROOT/.terraform.lock.hcl" "$PLAN_DIR/terraform.lock.hcl"
    fi
    {
        printf 'ENVIRONMENT=%s\n' "$ENVIRONMENT"
        printf 'ARTIFACT_DIGEST=%s\n' "$ARTIFACT_DIGEST"
        printf 'ARTIFACT_BUCKET=%s\n' "$ARTIFACT_BUCKET"
        printf 'SOURCE_COMMIT=%s\n' "${SOURCE_COMMIT:-${GITHUB_SHA:-${CODEBUILD_RESOLVED_SOURCE_VERSION:-}}}"
        printf 'HAS_CHANGES=%s\n' "$([[ $rc == 2 ]] && echo true || echo false)"
    } >"$PLAN_DIR/plan.env"
    log "plan for $ENVIRONMENT with lambda/$ARTIFACT_DIGEST: $([[ $rc == 2 ]] && echo changes || echo no changes) ($PLAN_DIR/tfplan)"
}

plan_value() { # KEY
    sed -n "s/^$1=//p" "$PLAN_DIR/plan.env"
}

cmd_apply() {
    resolve_plan_dir
    [[ -f "$PLAN_DIR/tfplan" && -f "$PLAN_DIR/plan.env" ]] || die "no saved plan in $PLAN_DIR (run: $0 plan)"
    local planned_env planned_digest planned_bucket
    planned_env="$(plan_value ENVIRONMENT)"
    planned_digest="$(plan_value ARTIFACT_DIGEST)"
    planned_bucket="$(plan_value ARTIFACT_BUCKET)"
    [[ "$planned_env" == "$ENVIRONMENT" ]] || die "the saved plan is for '$planned_env', not '$ENVIRONMENT'"
    if [[ -n "${ARTIFACT_DIGEST:-}" && "$ARTIFACT_DIGEST" != "$planned_digest" ]]; then
        die "the saved plan deploys $planned_digest, but ARTIFACT_DIGEST is $ARTIFACT_DIGEST"
    fi
    if [[ -f "$PLAN_DIR/terraform.lock.hcl" ]]; then
        cp "$PLAN_DIR/terraform.lock.hcl" "$TF_ROOT/.terraform.lock.hcl"
    fi
    cmd_init
    log "apply the reviewed plan: $ENVIRONMENT <- lambda/$planned_digest"
    tf apply -input=false -lock-timeout=5m "$PLAN_DIR/tfplan"
    if [[ "${SKIP_DEPLOYMENT_RECORD:-0}" != 1 ]]; then
        bash "$here/lambda-artifacts.sh" record "${ARTIFACT_BUCKET:-$planned_bucket}" "$ENVIRONMENT" "$planned_digest" ||
            log "warning: could not record the deployment (the apply itself succeeded)"
    fi
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        init) cmd_init ;;
        plan) cmd_plan ;;
        apply) cmd_apply ;;
        deploy)
            cmd_plan
            if [[ "$(plan_value HAS_CHANGES)" != true ]]; then
                log "$ENVIRONMENT already runs this configuration and artifact: nothing to apply"
                exit 0
            fi
            if [[ "${AUTO_APPROVE:-0}" != 1 ]]; then
                [[ -t 0 ]] || die "no terminal to confirm the apply: review $PLAN_DIR/plan.txt and set AUTO_APPROVE=1"
                grep -E '^(Plan:|  # )' "$PLAN_DIR/plan.txt" >&2 || true
                local answer
                read -r -p "Apply this plan to $ENVIRONMENT (Lambda artifact $ARTIFACT_DIGEST)? Type yes: " answer
                [[ "$answer" == yes ]] || die "not applied"
            fi
            cmd_apply
            ;;
        *)
            sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
            [[ -z "$cmd" || "$cmd" == -h || "$cmd" == --help ]] || exit 2
            ;;
    esac
}

main "$@"
