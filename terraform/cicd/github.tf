# Roles that GitHub Actions assumes through OIDC: no long-lived keys anywhere.
#   build   (sub repo:<repo>:ref:refs/heads/<branch>)  publishes lambda/<digest>/ to the artifact bucket
#   plan    (sub repo:<repo>:ref:refs/heads/<branch>)  terraform plan of any environment (read only)
#   <env>   (sub repo:<repo>:environment:<env>)        terraform apply of that environment; the GitHub
#                                                      environment's protection rules (required
#                                                      reviewers) gate every job that can assume it.

locals {
  github_enabled = var.github_repository != null
  github_oidc_provider_arn = local.github_enabled ? coalesce(
    var.github_oidc_provider_arn,
    try(aws_iam_openid_connect_provider.github[0].arn, null),
  ) : null
}

resource "aws_iam_openid_connect_provider" "github" {
  count           = local.github_enabled && var.github_oidc_provider_arn == null ? 1 : 0
  url             = "https://token.actions.githubusercontent.com"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
  tags            = local.tags
}

data "aws_iam_policy_document" "assume_github" {
  for_each = local.github_enabled ? merge(
    { build = "repo:${var.github_repository}:ref:refs/heads/${var.branch}" },
    { plan = "repo:${var.github_repository}:ref:refs/heads/${var.branch}" },
    { for name in local.environment_order : name => "repo:${var.github_repository}:environment:${name}" },
  ) : {}

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = [each.value]
    }
  }
}

resource "aws_iam_role" "github" {
  for_each             = data.aws_iam_policy_document.assume_github
  name                 = each.key == "build" || each.key == "plan" ? "${local.prefix}-cicd-github-${each.key}" : "${local.prefix}-cicd-github-${each.key}-deploy"
  description          = "GitHub Actions (${var.github_repository}) ${each.key == "build" ? "publishes Lambda artifacts" : each.key == "plan" ? "plans every environment" : "deploys ${each.key}"}"
  assume_role_policy   = each.value.json
  max_session_duration = 3600
  permissions_boundary = var.role_permissions_boundary_arn
  tags                 = local.tags
}

data "aws_iam_policy_document" "github_build" {
  count = local.github_enabled ? 1 : 0

  statement {
    sid       = "PublishLambdaArtifacts"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.artifact_bucket_arn}/${local.lambda_prefix}/*"]
  }

  statement {
    sid       = "ListLambdaArtifacts"
    actions   = ["s3:ListBucket"]
    resources = [local.artifact_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.lambda_prefix}/*"]
    }
  }

  statement {
    sid       = "ArtifactKey"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [aws_kms_key.artifacts.arn]
  }
}

resource "aws_iam_role_policy" "github_build" {
  count  = local.github_enabled ? 1 : 0
  name   = "publish-lambda-artifacts"
  role   = aws_iam_role.github["build"].id
  policy = data.aws_iam_policy_document.github_build[0].json
}

resource "aws_iam_role_policy_attachment" "github_plan" {
  for_each   = local.github_enabled ? local.environments : {}
  role       = aws_iam_role.github["plan"].name
  policy_arn = aws_iam_policy.plan[each.key].arn
}

resource "aws_iam_role_policy_attachment" "github_deploy_plan" {
  for_each   = local.github_enabled ? local.environments : {}
  role       = aws_iam_role.github[each.key].name
  policy_arn = aws_iam_policy.plan[each.key].arn
}

resource "aws_iam_role_policy_attachment" "github_deploy" {
  for_each   = local.github_enabled ? local.environments : {}
  role       = aws_iam_role.github[each.key].name
  policy_arn = aws_iam_policy.deploy[each.key].arn
}

resource "aws_iam_role_policy_attachment" "github_deploy_extra" {
  for_each = {
    for pair in setproduct(local.github_enabled ? local.environment_order : [], var.deploy_role_extra_policy_arns) :
    "${pair[0]}|${pair[1]}" => { env = pair[0], policy = pair[1] }
  }
  role       = aws_iam_role.github[each.value.env].name
  policy_arn = each.value.policy
}
