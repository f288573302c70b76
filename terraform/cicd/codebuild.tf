# CodeBuild projects: one that builds and publishes the Lambda artifacts (lambda-buildspec.yml),
# and per environment one that plans and one that applies (buildspec.yml, TF_ACTION).

locals {
  codebuild_projects = var.enable_pipeline ? merge(
    {
      lambda-build = {
        name      = "${local.prefix}-lambda-build"
        buildspec = "lambda-buildspec.yml"
        compute   = var.lambda_build_compute_type
        env       = null
        action    = null
      }
    },
    merge([
      for name, e in local.environments : {
        for action in ["plan", "deploy"] : "${name}-${action}" => {
          name      = "${local.prefix}-${name}-${action}"
          buildspec = "buildspec.yml"
          compute   = var.terraform_compute_type
          env       = name
          action    = action
        }
      }
    ]...)
  ) : {}

  lambda_build_variables = {
    PROJECT_NAME    = var.project_name
    ARTIFACT_BUCKET = aws_s3_bucket.artifacts.bucket
    LAMBDA_ARCH     = var.lambda_architecture
  }
}

resource "aws_cloudwatch_log_group" "codebuild" {
  for_each          = local.codebuild_projects
  name              = "/aws/codebuild/${each.value.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.artifacts.arn
  tags              = local.tags
}

resource "aws_codebuild_project" "this" {
  for_each = local.codebuild_projects

  name           = each.value.name
  description    = each.value.env == null ? "Build the five Lambda zips once, digest them and publish them to s3://${aws_s3_bucket.artifacts.bucket}/${local.lambda_prefix}/<digest>/" : "terraform ${each.value.action == "plan" ? "plan" : "apply (of the reviewed plan)"} for ${each.value.env}"
  service_role   = aws_iam_role.codebuild[each.key].arn
  build_timeout  = var.build_timeout_minutes
  encryption_key = aws_kms_key.artifacts.arn
  tags           = merge(local.tags, each.value.env == null ? {} : { Environment = each.value.env })

  source {
    type      = "CODEPIPELINE"
    buildspec = each.value.buildspec
  }

  artifacts {
    type = "CODEPIPELINE"
  }

  environment {
    type                        = "LINUX_CONTAINER"
    compute_type                = each.value.compute
    image                       = var.codebuild_image
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = false

    dynamic "environment_variable" {
      for_each = each.value.env == null ? local.lambda_build_variables : {
        PROJECT_NAME    = var.project_name
        ENVIRONMENT     = each.value.env
        TF_ACTION       = each.value.action == "plan" ? "plan" : "apply"
        TF_VERSION      = var.terraform_version
        TF_STATE_BUCKET = local.environments[each.value.env].state_bucket
        TF_LOCK_TABLE   = local.environments[each.value.env].lock_table
        ARTIFACT_BUCKET = aws_s3_bucket.artifacts.bucket
        PLAN_ARTIFACT   = "plan_${each.value.env}"
      }
      content {
        name  = environment_variable.key
        value = environment_variable.value
        type  = "PLAINTEXT"
      }
    }
  }

  dynamic "cache" {
    for_each = each.value.env == null ? [1] : []
    content {
      type     = "S3"
      location = "${aws_s3_bucket.artifacts.bucket}/codebuild-cache/${each.key}"
    }
  }

  logs_config {
    cloudwatch_logs {
      status     = "ENABLED"
      group_name = aws_cloudwatch_log_group.codebuild[each.key].name
    }
    s3_logs {
      status = "DISABLED"
    }
  }
}
