data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  prefix = var.project_name

  tags = merge(var.tags, {
    Project   = var.project_name
    Stack     = "cicd"
    ManagedBy = "terraform"
  })

  # One entry per environment, with the backend names filled in.
  environments = {
    for e in var.environments : e.name => {
      name             = e.name
      require_approval = e.require_approval
      state_bucket     = coalesce(e.state_bucket, format(var.state_bucket_format, var.project_name, e.name, data.aws_caller_identity.current.account_id, data.aws_region.current.name))
      state_key        = coalesce(e.state_key, format(var.state_key_format, e.name))
      lock_table       = coalesce(e.lock_table, format(var.lock_table_format, var.project_name, e.name))
      # Every resource of the environment is named "<project>-<env>-...": the deploy role is scoped to it.
      resource_prefix = "${var.project_name}-${e.name}"
    }
  }
  environment_order = [for e in var.environments : e.name]

  artifact_bucket_name = "${local.prefix}-artifacts-${local.account_id}-${local.region}"
  artifact_bucket_arn  = aws_s3_bucket.artifacts.arn
  lambda_prefix        = "lambda"
  deployments_prefix   = "deployments"

  lambda_functions = ["api_handler", "validator", "order_storage", "fulfill_order", "dlq_processor"]
}

# --- Encryption key for artifacts, logs and notifications ------------------------------

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:This is a key policy: "*" is the key itself, and the account root (which only delegates to IAM policies) is the only principal with write access.
  #checkov:skip=CKV_AWS_356:This is a key policy: "*" is the key itself, not every resource.
  #checkov:skip=CKV_AWS_109:This is a key policy: the account root administers its own key, the default and recommended key policy statement.
  # The account administers the key; every other use goes through IAM policies below.
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid = "CloudWatchLogsEncryptsCodeBuildLogs"
    actions = [
      "kms:Encrypt*",
      "kms:Decrypt*",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/codebuild/${local.prefix}-*"]
    }
  }
}

resource "aws_kms_key" "artifacts" {
  description             = "${local.prefix} CI/CD: pipeline and Lambda artifacts, build logs, approval notifications"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "artifacts" {
  name          = "alias/${local.prefix}-cicd"
  target_key_id = aws_kms_key.artifacts.key_id
}

# --- Artifact bucket -------------------------------------------------------------------
# pipeline/       CodePipeline's own artifacts (source zips, plans): expire.
# lambda/<digest>/ the five Lambda zips and manifest.json, written once per digest: kept for rollback.
# deployments/<env>/<time>-<digest>.json  one record per apply: what ran where, for rollback.

resource "aws_s3_bucket" "artifacts" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is not needed: every object can be rebuilt from the source commit recorded in its manifest, and versioning guards against deletion.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events; the pipeline passes digests as pipeline variables instead.
  #checkov:skip=CKV_AWS_18:Access logging is opt-in through var.access_logs_bucket (an existing log bucket); aws_s3_bucket_logging below enables it.
  bucket        = local.artifact_bucket_name
  force_destroy = var.force_destroy_artifacts
  tags          = local.tags
}

resource "aws_s3_bucket_versioning" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.artifacts.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "artifacts" {
  bucket                  = aws_s3_bucket.artifacts.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_logging" "artifacts" {
  count         = var.access_logs_bucket == null ? 0 : 1
  bucket        = aws_s3_bucket.artifacts.id
  target_bucket = var.access_logs_bucket
  target_prefix = "${local.artifact_bucket_name}/"
}

resource "aws_s3_bucket_lifecycle_configuration" "artifacts" {
  bucket = aws_s3_bucket.artifacts.id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "expire-pipeline-artifacts"
    status = "Enabled"
    filter {
      prefix = "${local.pipeline_prefix}/"
    }
    expiration {
      days = var.pipeline_artifact_expiry_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
  }

  rule {
    id     = "lambda-artifacts"
    status = "Enabled"
    filter {
      prefix = "${local.lambda_prefix}/"
    }
    dynamic "expiration" {
      for_each = var.lambda_artifact_expiry_days > 0 ? [1] : []
      content {
        days = var.lambda_artifact_expiry_days
      }
    }
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
  }

  rule {
    id     = "expire-build-cache"
    status = "Enabled"
    filter {
      prefix = "codebuild-cache/"
    }
    expiration {
      days = 14
    }
  }
}

data "aws_iam_policy_document" "artifacts_bucket" {
  count = var.deny_insecure_transport ? 1 : 0

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.artifacts.arn,
      "${aws_s3_bucket.artifacts.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "artifacts" {
  count  = var.deny_insecure_transport ? 1 : 0
  bucket = aws_s3_bucket.artifacts.id
  policy = data.aws_iam_policy_document.artifacts_bucket[0].json

  depends_on = [aws_s3_bucket_public_access_block.artifacts]
}

# --- Approval notifications ---------------------------------------------------------------

resource "aws_sns_topic" "approvals" {
  count             = var.enable_pipeline ? 1 : 0
  name              = "${local.prefix}-pipeline-approvals"
  kms_master_key_id = aws_kms_key.artifacts.arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "approvals" {
  for_each  = var.enable_pipeline ? toset(var.approval_emails) : toset([])
  topic_arn = aws_sns_topic.approvals[0].arn
  protocol  = "email"
  endpoint  = each.value
}
