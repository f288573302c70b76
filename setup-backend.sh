#!/usr/bin/env bash
# Creates the Terraform remote state for one DOFS environment: a versioned, encrypted,
# non-public S3 bucket and a DynamoDB lock table. Safe to run any number of times: what
# exists is left in place and its settings are (re)applied.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: ./setup-backend.sh [--help]

Creates (or brings up to date) the Terraform state backend of one environment:
  S3 bucket   ${PROJECT_NAME}-${ENVIRONMENT}-tfstate-<account>-${AWS_REGION}
              versioning on, default encryption (SSE-S3, bucket key), all public access
              blocked, TLS-only bucket policy, old state versions expire after 90 days
  DynamoDB    ${PROJECT_NAME}-${ENVIRONMENT}-tfstate-lock (LockID, on-demand, encrypted,
              point-in-time recovery) for state locking

Environment:
  AWS_REGION         region (default us-east-1)
  PROJECT_NAME       project name (default dofs)
  ENVIRONMENT        dev, staging or prod (default dev)
  AWS_ENDPOINT_URL   send every AWS call there (an emulator such as moto); dummy
                     credentials are used if none are set
  DOFS_STATE_BUCKET  override the bucket name
  DOFS_LOCK_TABLE    override the lock table name

Needs: the AWS CLI and credentials allowed to create S3 buckets and DynamoDB tables.
Next: ./deploy-infrastructure.sh
USAGE
}

for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        *) printf 'error: unknown argument %s (see --help)\n' "$arg" >&2; exit 2 ;;
    esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/tools.sh
source "$here/scripts/tools.sh"

command -v aws >/dev/null 2>&1 || dofs_die "the AWS CLI ('aws') is not installed: https://docs.aws.amazon.com/cli/ (or pip install awscli)"
dofs_deploy_context
dofs_backend_names

bucket="$DOFS_STATE_BUCKET"
table="$DOFS_LOCK_TABLE"
((${#bucket} <= 63)) ||
    dofs_die "state bucket name '$bucket' is ${#bucket} characters (S3 allows 63): set a shorter DOFS_STATE_BUCKET"
echo "==> State backend for ${PROJECT_NAME}/${ENVIRONMENT} in ${AWS_REGION}${AWS_ENDPOINT_URL:+ (endpoint $AWS_ENDPOINT_URL)}"

# --- S3 bucket -------------------------------------------------------------------------
if dofs_aws s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
    echo "    bucket s3://$bucket exists"
else
    echo "    creating bucket s3://$bucket"
    if [[ "$AWS_REGION" == "us-east-1" ]]; then
        dofs_aws s3api create-bucket --bucket "$bucket" >/dev/null
    else
        dofs_aws s3api create-bucket --bucket "$bucket" \
            --create-bucket-configuration "LocationConstraint=$AWS_REGION" >/dev/null
    fi
    dofs_aws s3api wait bucket-exists --bucket "$bucket"
fi

dofs_aws s3api put-public-access-block --bucket "$bucket" --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
dofs_aws s3api put-bucket-versioning --bucket "$bucket" --versioning-configuration Status=Enabled
dofs_aws s3api put-bucket-encryption --bucket "$bucket" --server-side-encryption-configuration \
    '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"},"BucketKeyEnabled":true}]}'
if [[ "${AWS_ENDPOINT_URL:-}" == http://* ]]; then
    # A plain-HTTP emulator endpoint would be locked out by a TLS-only policy.
    tls_note="TLS-only policy skipped (plain-HTTP endpoint)"
else
    dofs_aws s3api put-bucket-policy --bucket "$bucket" --policy "$(
        cat <<JSON
{"Version":"2012-10-17","Statement":[{"Sid":"DenyInsecureTransport","Effect":"Deny","Principal":"*",
"Action":"s3:*","Resource":["arn:aws:s3:::$bucket","arn:aws:s3:::$bucket/*"],
"Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}
JSON
    )"
    tls_note="TLS only"
fi
dofs_aws s3api put-bucket-lifecycle-configuration --bucket "$bucket" --lifecycle-configuration \
    '{"Rules":[{"ID":"expire-old-state-versions","Status":"Enabled","Filter":{"Prefix":""},"NoncurrentVersionExpiration":{"NoncurrentDays":90},"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":7}}]}'
dofs_aws s3api put-bucket-tagging --bucket "$bucket" --tagging \
    "TagSet=[{Key=Project,Value=$PROJECT_NAME},{Key=Environment,Value=$ENVIRONMENT},{Key=ManagedBy,Value=setup-backend.sh}]"
echo "    bucket: versioning on, encrypted, public access blocked, $tls_note"

# --- DynamoDB lock table ----------------------------------------------------------------
if dofs_aws dynamodb describe-table --table-name "$table" >/dev/null 2>&1; then
    echo "    lock table $table exists"
else
    echo "    creating lock table $table"
    dofs_aws dynamodb create-table --table-name "$table" \
        --attribute-definitions AttributeName=LockID,AttributeType=S \
        --key-schema AttributeName=LockID,KeyType=HASH \
        --billing-mode PAY_PER_REQUEST \
        --sse-specification Enabled=true \
        --tags "Key=Project,Value=$PROJECT_NAME" "Key=Environment,Value=$ENVIRONMENT" "Key=ManagedBy,Value=setup-backend.sh" \
        >/dev/null
    dofs_aws dynamodb wait table-exists --table-name "$table"
fi
dofs_aws dynamodb update-continuous-backups --table-name "$table" \
    --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true >/dev/null
echo "    lock table: on-demand, encrypted, point-in-time recovery"

echo "==> Backend ready: bucket=$bucket key=environments/$ENVIRONMENT/terraform.tfstate lock_table=$table"
echo "    Next: ENVIRONMENT=$ENVIRONMENT ./deploy-infrastructure.sh"
