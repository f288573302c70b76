output "artifact_bucket" {
  description = "Bucket of the pipeline's artifacts and of the Lambda artifacts (lambda/<digest>/<name>.zip + manifest.json). GitHub variable DOFS_ARTIFACT_BUCKET."
  value       = aws_s3_bucket.artifacts.bucket
}

output "artifact_kms_key_arn" {
  description = "KMS key that encrypts the artifacts, build logs and approval notifications."
  value       = aws_kms_key.artifacts.arn
}

output "pipeline_name" {
  description = "The CodePipeline (null when enable_pipeline is false)."
  value       = try(aws_codepipeline.this[0].name, null)
}

output "codebuild_projects" {
  description = "CodeBuild project names by key (lambda-build, <env>-plan, <env>-deploy)."
  value       = { for k, p in aws_codebuild_project.this : k => p.name }
}

output "approval_topic_arn" {
  description = "SNS topic that announces pending manual approvals."
  value       = try(aws_sns_topic.approvals[0].arn, null)
}

output "environments" {
  description = "Backend settings per environment, as the pipeline uses them (TF_STATE_BUCKET, TF_STATE_KEY, TF_LOCK_TABLE)."
  value = {
    for name, e in local.environments : name => {
      state_bucket = e.state_bucket
      state_key    = e.state_key
      lock_table   = e.lock_table
    }
  }
}

output "github_role_arns" {
  description = "Roles for GitHub Actions: build -> repository variable AWS_BUILD_ROLE_ARN, plan -> AWS_PLAN_ROLE_ARN, <env> -> that GitHub environment's variable AWS_DEPLOY_ROLE_ARN."
  value       = { for k, r in aws_iam_role.github : k => r.arn }
}
