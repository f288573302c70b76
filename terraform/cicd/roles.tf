# Service roles of CodePipeline and CodeBuild. Each trusts only its service, from this
# account, and each CodeBuild project has its own role.

data "aws_iam_policy_document" "assume_codepipeline" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codepipeline.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

data "aws_iam_policy_document" "assume_codebuild" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# --- CodePipeline --------------------------------------------------------------------

resource "aws_iam_role" "pipeline" {
  count                = var.enable_pipeline ? 1 : 0
  name                 = "${local.prefix}-cicd-pipeline"
  assume_role_policy   = data.aws_iam_policy_document.assume_codepipeline.json
  permissions_boundary = var.role_permissions_boundary_arn
  tags                 = local.tags
}

data "aws_iam_policy_document" "pipeline" {
  count = var.enable_pipeline ? 1 : 0

  statement {
    sid       = "PipelineArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${local.artifact_bucket_arn}/${local.pipeline_prefix}/*"]
  }

  statement {
    sid       = "ArtifactBucket"
    actions   = ["s3:GetBucketVersioning", "s3:GetBucketLocation", "s3:ListBucket"]
    resources = [local.artifact_bucket_arn]
  }

  statement {
    sid       = "ArtifactKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [aws_kms_key.artifacts.arn]
  }

  statement {
    sid       = "RunBuilds"
    actions   = ["codebuild:StartBuild", "codebuild:BatchGetBuilds", "codebuild:StopBuild"]
    resources = [for p in local.codebuild_projects : "arn:${local.partition}:codebuild:${local.region}:${local.account_id}:project/${p.name}"]
  }

  statement {
    sid       = "NotifyApprovers"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.approvals[0].arn]
  }

  dynamic "statement" {
    for_each = var.source_provider == "github" && var.codestar_connection_arn != null ? [1] : []
    content {
      sid       = "UseGitHubConnection"
      actions   = ["codestar-connections:UseConnection", "codeconnections:UseConnection"]
      resources = [var.codestar_connection_arn]
    }
  }

  dynamic "statement" {
    for_each = var.source_provider == "codecommit" && var.repository != null ? [1] : []
    content {
      sid = "ReadCodeCommit"
      actions = [
        "codecommit:GetBranch",
        "codecommit:GetCommit",
        "codecommit:GetRepository",
        "codecommit:UploadArchive",
        "codecommit:GetUploadArchiveStatus",
        "codecommit:CancelUploadArchive",
      ]
      resources = ["arn:${local.partition}:codecommit:${local.region}:${local.account_id}:${var.repository}"]
    }
  }
}

resource "aws_iam_role_policy" "pipeline" {
  count  = var.enable_pipeline ? 1 : 0
  name   = "pipeline"
  role   = aws_iam_role.pipeline[0].id
  policy = data.aws_iam_policy_document.pipeline[0].json
}

# --- CodeBuild -----------------------------------------------------------------------

resource "aws_iam_role" "codebuild" {
  for_each             = local.codebuild_projects
  name                 = "${local.prefix}-cicd-${each.key}"
  assume_role_policy   = data.aws_iam_policy_document.assume_codebuild.json
  permissions_boundary = var.role_permissions_boundary_arn
  tags                 = local.tags
}

data "aws_iam_policy_document" "codebuild" {
  for_each = local.codebuild_projects

  statement {
    sid       = "OwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/codebuild/${each.value.name}:*"]
  }

  statement {
    sid       = "PipelineArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${local.artifact_bucket_arn}/${local.pipeline_prefix}/*"]
  }

  statement {
    sid       = "ArtifactBucketLocation"
    actions   = ["s3:GetBucketLocation", "s3:GetBucketAcl"]
    resources = [local.artifact_bucket_arn]
  }

  statement {
    sid       = "ArtifactKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [aws_kms_key.artifacts.arn]
  }

  dynamic "statement" {
    for_each = each.value.env == null ? [1] : []
    content {
      sid     = "PublishLambdaArtifactsAndCache"
      actions = ["s3:GetObject", "s3:PutObject"]
      resources = [
        "${local.artifact_bucket_arn}/${local.lambda_prefix}/*",
        "${local.artifact_bucket_arn}/codebuild-cache/${each.key}/*",
      ]
    }
  }

  dynamic "statement" {
    for_each = each.value.env == null ? [1] : []
    content {
      sid       = "ListLambdaArtifacts"
      actions   = ["s3:ListBucket"]
      resources = [local.artifact_bucket_arn]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${local.lambda_prefix}/*", "codebuild-cache/${each.key}/*"]
      }
    }
  }
}

resource "aws_iam_role_policy" "codebuild" {
  for_each = local.codebuild_projects
  name     = "codebuild"
  role     = aws_iam_role.codebuild[each.key].id
  policy   = data.aws_iam_policy_document.codebuild[each.key].json
}

resource "aws_iam_role_policy_attachment" "codebuild_plan" {
  for_each   = { for k, p in local.codebuild_projects : k => p if p.env != null }
  role       = aws_iam_role.codebuild[each.key].name
  policy_arn = aws_iam_policy.plan[each.value.env].arn
}

resource "aws_iam_role_policy_attachment" "codebuild_deploy" {
  for_each   = { for k, p in local.codebuild_projects : k => p if p.action == "deploy" }
  role       = aws_iam_role.codebuild[each.key].name
  policy_arn = aws_iam_policy.deploy[each.value.env].arn
}

resource "aws_iam_role_policy_attachment" "codebuild_deploy_extra" {
  for_each = {
    for pair in setproduct([for k, p in local.codebuild_projects : k if p.action == "deploy"], var.deploy_role_extra_policy_arns) :
    "${pair[0]}|${pair[1]}" => { role = pair[0], policy = pair[1] }
  }
  role       = aws_iam_role.codebuild[each.value.role].name
  policy_arn = each.value.policy
}
