# Source -> Build (Lambda zips once, by digest) -> for each environment in order:
#   <Env>-Plan (terraform plan, saved) -> <Env>-Approval (manual, if required) -> <Env>-Deploy (apply that plan)
#
# Rollback / redeploy of an earlier artifact: start an execution with the pipeline variable
# ARTIFACT_DIGEST set to that digest; the Build stage then skips building and passes the
# digest on after checking that its manifest exists.

locals {
  pipeline_name = "${local.prefix}-pipeline"
  # CodePipeline stores its artifacts under the first 20 characters of the pipeline name.
  pipeline_prefix = substr(local.pipeline_name, 0, 20)

  source_action = var.source_provider == "github" ? {
    provider = "CodeStarSourceConnection"
    configuration = {
      ConnectionArn        = coalesce(var.codestar_connection_arn, "unset")
      FullRepositoryId     = coalesce(var.repository, "unset")
      BranchName           = var.branch
      OutputArtifactFormat = "CODE_ZIP"
      DetectChanges        = "true"
    }
    } : {
    provider = "CodeCommit"
    configuration = {
      RepositoryName       = coalesce(var.repository, "unset")
      BranchName           = var.branch
      PollForSourceChanges = "false" # the EventBridge rule below starts the pipeline on a push
      OutputArtifactFormat = "CODE_ZIP"
    }
  }

  environment_stages = flatten([
    for name in local.environment_order : concat(
      [{
        name     = "${title(name)}-Plan"
        action   = "Plan"
        category = "Build"
        provider = "CodeBuild"
        inputs   = ["source"]
        outputs  = ["plan_${name}"]
        configuration = {
          ProjectName = aws_codebuild_project.this["${name}-plan"].name
          EnvironmentVariables = jsonencode([
            { name = "ARTIFACT_DIGEST", value = "#{Build.ARTIFACT_DIGEST}", type = "PLAINTEXT" },
            { name = "SOURCE_COMMIT", value = "#{Source.CommitId}", type = "PLAINTEXT" },
          ])
        }
      }],
      local.environments[name].require_approval ? [{
        name     = "${title(name)}-Approval"
        action   = "Approve"
        category = "Approval"
        provider = "Manual"
        inputs   = []
        outputs  = []
        configuration = {
          NotificationArn    = aws_sns_topic.approvals[0].arn
          CustomData         = "Deploy Lambda artifact #{Build.ARTIFACT_DIGEST} (commit #{Source.CommitId}) to ${name}. Read the plan in the ${title(name)}-Plan build log before approving."
          ExternalEntityLink = "https://${local.region}.console.aws.amazon.com/codesuite/codebuild/projects/${aws_codebuild_project.this["${name}-plan"].name}/history?region=${local.region}"
        }
      }] : [],
      [{
        name     = "${title(name)}-Deploy"
        action   = "Apply"
        category = "Build"
        provider = "CodeBuild"
        inputs   = ["source", "plan_${name}"]
        outputs  = []
        configuration = {
          ProjectName   = aws_codebuild_project.this["${name}-deploy"].name
          PrimarySource = "source"
          EnvironmentVariables = jsonencode([
            { name = "ARTIFACT_DIGEST", value = "#{Build.ARTIFACT_DIGEST}", type = "PLAINTEXT" },
            { name = "SOURCE_COMMIT", value = "#{Source.CommitId}", type = "PLAINTEXT" },
          ])
        }
      }],
    )
  ])
}

resource "aws_codepipeline" "this" {
  count = var.enable_pipeline ? 1 : 0

  name           = local.pipeline_name
  role_arn       = aws_iam_role.pipeline[0].arn
  pipeline_type  = "V2"
  execution_mode = "SUPERSEDED"
  tags           = local.tags

  artifact_store {
    location = aws_s3_bucket.artifacts.bucket
    type     = "S3"
    encryption_key {
      id   = aws_kms_key.artifacts.arn
      type = "KMS"
    }
  }

  variable {
    name          = "ARTIFACT_DIGEST"
    default_value = "build"
    description   = "\"build\" builds the Lambdas from the source commit; a 64-hex digest redeploys that published artifact instead (rollback)."
  }

  stage {
    name = "Source"
    action {
      name             = "Source"
      namespace        = "Source"
      category         = "Source"
      owner            = "AWS"
      provider         = local.source_action.provider
      version          = "1"
      output_artifacts = ["source"]
      configuration    = local.source_action.configuration
    }
  }

  stage {
    name = "Build"
    action {
      name             = "LambdaArtifacts"
      namespace        = "Build"
      category         = "Build"
      owner            = "AWS"
      provider         = "CodeBuild"
      version          = "1"
      input_artifacts  = ["source"]
      output_artifacts = ["lambda_manifest"]
      configuration = {
        ProjectName = aws_codebuild_project.this["lambda-build"].name
        EnvironmentVariables = jsonencode([
          { name = "REQUESTED_DIGEST", value = "#{variables.ARTIFACT_DIGEST}", type = "PLAINTEXT" },
        ])
      }
    }
  }

  dynamic "stage" {
    for_each = local.environment_stages
    content {
      name = stage.value.name
      action {
        name             = stage.value.action
        category         = stage.value.category
        owner            = "AWS"
        provider         = stage.value.provider
        version          = "1"
        input_artifacts  = stage.value.inputs
        output_artifacts = stage.value.outputs
        configuration    = stage.value.configuration
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.repository != null && (var.source_provider == "codecommit" || var.codestar_connection_arn != null)
      error_message = "The pipeline needs var.repository, and for source_provider = \"github\" also var.codestar_connection_arn."
    }
  }
}

# CodeCommit: a push to the branch starts the pipeline through EventBridge (CodePipeline V2
# triggers exist only for connection sources; polling is deprecated).

locals {
  codecommit_trigger = var.enable_pipeline && var.source_provider == "codecommit" && var.repository != null
}

resource "aws_cloudwatch_event_rule" "codecommit_push" {
  count       = local.codecommit_trigger ? 1 : 0
  name        = "${local.prefix}-pipeline-source-push"
  description = "Start ${local.pipeline_name} on a push to ${var.branch}"
  tags        = local.tags
  event_pattern = jsonencode({
    source      = ["aws.codecommit"]
    detail-type = ["CodeCommit Repository State Change"]
    resources   = ["arn:${local.partition}:codecommit:${local.region}:${local.account_id}:${var.repository}"]
    detail = {
      event         = ["referenceCreated", "referenceUpdated"]
      referenceType = ["branch"]
      referenceName = [var.branch]
    }
  })
}

data "aws_iam_policy_document" "assume_events" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "codecommit_trigger" {
  count                = local.codecommit_trigger ? 1 : 0
  name                 = "${local.prefix}-cicd-source-trigger"
  assume_role_policy   = data.aws_iam_policy_document.assume_events.json
  permissions_boundary = var.role_permissions_boundary_arn
  tags                 = local.tags
}

resource "aws_iam_role_policy" "codecommit_trigger" {
  count = local.codecommit_trigger ? 1 : 0
  name  = "start-pipeline"
  role  = aws_iam_role.codecommit_trigger[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "codepipeline:StartPipelineExecution"
      Resource = "arn:${local.partition}:codepipeline:${local.region}:${local.account_id}:${local.pipeline_name}"
    }]
  })
}

resource "aws_cloudwatch_event_target" "codecommit_push" {
  count    = local.codecommit_trigger ? 1 : 0
  rule     = aws_cloudwatch_event_rule.codecommit_push[0].name
  arn      = aws_codepipeline.this[0].arn
  role_arn = aws_iam_role.codecommit_trigger[0].arn
}
