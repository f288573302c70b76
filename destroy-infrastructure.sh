#!/usr/bin/env bash
# Destroys one DOFS environment created by deploy-infrastructure.sh. The state backend
# (bucket and lock table) is kept unless --delete-backend is given.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: ./destroy-infrastructure.sh [--auto-approve] [--delete-backend] [--help]

  terraform destroy of terraform/environments/$ENVIRONMENT (state from ./setup-backend.sh).

Options:
  --auto-approve     destroy without asking (implied when CI=true)
  --delete-backend   afterwards also delete the state bucket (every version) and the
                     lock table of this environment
  -h, --help         this help

Environment: AWS_REGION, PROJECT_NAME, ENVIRONMENT, AWS_ENDPOINT_URL as for
deploy-infrastructure.sh; DOFS_LAMBDA_ARTIFACTS if the zips are not in target/lambda.

staging and prod tables have deletion protection: the destroy stops at them. To really
delete them, first set deletion_protection = false in terraform/environments/<env>/main.tf
and deploy, then destroy.
USAGE
}

auto_approve=false
delete_backend=false
for arg in "$@"; do
    case "$arg" in
        --auto-approve | -y) auto_approve=true ;;
        --delete-backend) delete_backend=true ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'error: unknown argument %s (see --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/tools.sh
source "$here/scripts/tools.sh"

case "${CI:-}" in true | 1) auto_approve=true ;; esac
command -v terraform >/dev/null 2>&1 || dofs_die "terraform is not installed (>= 1.6)"
command -v aws >/dev/null 2>&1 || dofs_die "the AWS CLI ('aws') is not installed"
dofs_deploy_context

if [[ -n "${DOFS_LAMBDA_ARTIFACTS:-}" ]]; then
    TF_VAR_artifacts_dir="$(cd "$DOFS_LAMBDA_ARTIFACTS" && pwd)"
    export TF_VAR_artifacts_dir
fi
[[ -n "${DOFS_ARTIFACTS_S3_BUCKET:-}" ]] && export TF_VAR_artifacts_s3_bucket="$DOFS_ARTIFACTS_S3_BUCKET"

dofs_terraform_offline_if_mirror
dofs_backend_names
dofs_aws s3api head-bucket --bucket "$DOFS_STATE_BUCKET" >/dev/null 2>&1 ||
    dofs_die "state bucket s3://$DOFS_STATE_BUCKET not found: nothing was deployed with this AWS_REGION/PROJECT_NAME/ENVIRONMENT"
echo "==> terraform init ($DOFS_TF_ROOT, state s3://$DOFS_STATE_BUCKET)"
dofs_terraform_init

args=(-input=false)
if [[ "$auto_approve" == true ]]; then
    args+=(-auto-approve)
elif [[ ! -t 0 ]]; then
    dofs_die "no terminal to confirm the destroy: pass --auto-approve"
fi
echo "==> terraform destroy (${PROJECT_NAME}/${ENVIRONMENT})"
started=$SECONDS
terraform -chdir="$DOFS_TF_ROOT" destroy "${args[@]}"
echo "==> Destroyed in $((SECONDS - started)) s"

if [[ "$delete_backend" == true ]]; then
    echo "==> Deleting the state backend: s3://$DOFS_STATE_BUCKET and $DOFS_LOCK_TABLE"
    while :; do
        # shellcheck disable=SC2016  # `true` is a JMESPath literal, not a shell expansion
        batch="$(dofs_aws s3api list-object-versions --bucket "$DOFS_STATE_BUCKET" --max-items 500 --output json \
            --query '{Objects: [Versions, DeleteMarkers][][].{Key: Key, VersionId: VersionId}, Quiet: `true`}')"
        case "$batch" in *'"Key"'*) ;; *) break ;; esac
        dofs_aws s3api delete-objects --bucket "$DOFS_STATE_BUCKET" --delete "$batch" >/dev/null
    done
    dofs_aws s3api delete-bucket --bucket "$DOFS_STATE_BUCKET"
    dofs_aws dynamodb delete-table --table-name "$DOFS_LOCK_TABLE" >/dev/null
    echo "    state backend deleted"
else
    echo "    (state backend kept: s3://$DOFS_STATE_BUCKET; --delete-backend removes it)"
fi
