#!/usr/bin/env bash
# Builds the DOFS Lambdas with cargo-lambda and deploys one environment with a single
# `terraform apply` (no staged applies: nothing depends on api_handler's ARN, so the
# Lambda <-> Step Functions cycle of the seed does not exist).
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: ./deploy-infrastructure.sh [--skip-build] [--auto-approve] [--plan] [--help]

  1. builds the five Lambdas: scripts/build-lambdas.sh (cargo lambda build --profile lambda
     --output-format zip -> target/lambda/<function>/bootstrap.zip, or $CARGO_TARGET_DIR/lambda)
  2. terraform init (S3 state backend made by ./setup-backend.sh) and ONE terraform apply
     of terraform/environments/$ENVIRONMENT
  3. prints the outputs (API URL, state machine, tables, queues, dashboard)

Options:
  --skip-build     do not build; use the zips in DOFS_LAMBDA_ARTIFACTS (or target/lambda)
  --auto-approve   apply without asking (implied when CI=true)
  --plan           only show the plan
  -h, --help       this help

Environment:
  AWS_REGION              region (default us-east-1)
  PROJECT_NAME            project name (default dofs)
  ENVIRONMENT             dev, staging or prod (default dev)
  AWS_ENDPOINT_URL        send every AWS call there (an emulator such as moto)
  DOFS_LAMBDA_ARTIFACTS   directory with <function>/bootstrap.zip, prebuilt (implies --skip-build)
  DOFS_ARTIFACTS_S3_BUCKET, DOFS_ARTIFACTS_S3_PREFIX
                          take the code from s3://bucket/prefix/<function>.zip instead
  LAMBDA_ARCHITECTURE     x86_64 (default) or arm64
  ALARM_EMAIL             e-mail address subscribed to the alarms
  TF_VAR_*                any other variable of the environment root

Needs: terraform >= 1.6, the AWS CLI, credentials; unless --skip-build, python3 (cargo-lambda
and ziglang are installed from PyPI into the tool venv by scripts/build-lambdas.sh).
USAGE
}

skip_build=false
auto_approve=false
plan_only=false
for arg in "$@"; do
    case "$arg" in
        --skip-build) skip_build=true ;;
        --auto-approve | -y) auto_approve=true ;;
        --plan) plan_only=true ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'error: unknown argument %s (see --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/tools.sh
source "$here/scripts/tools.sh"

case "${CI:-}" in true | 1) auto_approve=true ;; esac
functions=(api_handler validator order_storage fulfill_order dlq_processor)

command -v terraform >/dev/null 2>&1 || dofs_die "terraform is not installed (https://developer.hashicorp.com/terraform/install, >= 1.6)"
command -v aws >/dev/null 2>&1 || dofs_die "the AWS CLI ('aws') is not installed"
dofs_deploy_context
started=$SECONDS

# --- 1. Lambda artifacts -----------------------------------------------------------------
if [[ -n "${DOFS_ARTIFACTS_S3_BUCKET:-}" ]]; then
    echo "==> Lambda code from s3://$DOFS_ARTIFACTS_S3_BUCKET/${DOFS_ARTIFACTS_S3_PREFIX:-}"
    export TF_VAR_artifacts_s3_bucket="$DOFS_ARTIFACTS_S3_BUCKET"
    export TF_VAR_artifacts_s3_prefix="${DOFS_ARTIFACTS_S3_PREFIX:-}"
else
    artifacts="${DOFS_LAMBDA_ARTIFACTS:-${CARGO_TARGET_DIR:-$here/target}/lambda}"
    [[ -n "${DOFS_LAMBDA_ARTIFACTS:-}" ]] && skip_build=true
    if [[ "$skip_build" == false ]]; then
        command -v cargo >/dev/null 2>&1 || dofs_die "cargo is not installed (https://rustup.rs)"
        echo "==> Building the Lambdas: scripts/build-lambdas.sh --arch ${LAMBDA_ARCHITECTURE:-x86_64}"
        DOFS_LAMBDA_DIR="$artifacts" "$here/scripts/build-lambdas.sh" --arch "${LAMBDA_ARCHITECTURE:-x86_64}" ||
            dofs_die "the Lambda build failed (scripts/build-lambdas.sh installs cargo-lambda from PyPI); or pass --skip-build with DOFS_LAMBDA_ARTIFACTS"
    else
        echo "==> Skipping the build; artifacts from $artifacts"
    fi
    missing=()
    for f in "${functions[@]}"; do
        [[ -f "$artifacts/$f/bootstrap.zip" ]] || missing+=("$artifacts/$f/bootstrap.zip")
    done
    ((${#missing[@]} == 0)) || dofs_die "missing Lambda artifacts: ${missing[*]}"
    TF_VAR_artifacts_dir="$(cd "$artifacts" && pwd)"
    export TF_VAR_artifacts_dir
fi
export TF_VAR_lambda_architecture="${LAMBDA_ARCHITECTURE:-x86_64}"
[[ -n "${ALARM_EMAIL:-}" ]] && export TF_VAR_alarm_email="$ALARM_EMAIL"

# --- 2. Terraform: init against the S3 backend, one apply ---------------------------------
dofs_terraform_offline_if_mirror
dofs_backend_names
dofs_aws s3api head-bucket --bucket "$DOFS_STATE_BUCKET" >/dev/null 2>&1 ||
    dofs_die "state bucket s3://$DOFS_STATE_BUCKET not found: run ENVIRONMENT=$ENVIRONMENT ./setup-backend.sh first"
# API Gateway's logging role is an account setting managed once by terraform/account; an
# environment's stage with access logs cannot be created without it.
if [[ -z "${AWS_ENDPOINT_URL:-}" && "${TF_VAR_manage_apigateway_account_logging_role:-false}" != true ]]; then
    role="$(dofs_aws apigateway get-account --query cloudwatchRoleArn --output text 2>/dev/null || true)"
    [[ -n "$role" && "$role" != None ]] ||
        dofs_die "API Gateway has no CloudWatch Logs role in $AWS_REGION: apply terraform/account once (terraform -chdir=terraform/account init && terraform -chdir=terraform/account apply -var aws_region=$AWS_REGION)"
fi
echo "==> terraform init ($DOFS_TF_ROOT, state s3://$DOFS_STATE_BUCKET)"
dofs_terraform_init

tf_apply_args=(-input=false)
if [[ "$plan_only" == true ]]; then
    echo "==> terraform plan"
    terraform -chdir="$DOFS_TF_ROOT" plan "${tf_apply_args[@]}"
    exit 0
fi
if [[ "$auto_approve" == true ]]; then
    tf_apply_args+=(-auto-approve)
elif [[ ! -t 0 ]]; then
    dofs_die "no terminal to confirm the apply: pass --auto-approve"
fi
echo "==> terraform apply (one stage)"
apply_started=$SECONDS
terraform -chdir="$DOFS_TF_ROOT" apply "${tf_apply_args[@]}"
echo "==> Applied in $((SECONDS - apply_started)) s (total $((SECONDS - started)) s)"

# --- 3. Outputs ---------------------------------------------------------------------------
echo
echo "==> Outputs (${PROJECT_NAME}/${ENVIRONMENT})"
terraform -chdir="$DOFS_TF_ROOT" output
echo
echo "API keys (x-api-key): terraform -chdir=$DOFS_TF_ROOT output -json api_key_values"
