output "artifact_bucket" {
  description = "GitHub repository variable DOFS_ARTIFACT_BUCKET; ARTIFACT_BUCKET for the scripts."
  value       = module.cicd.artifact_bucket
}

output "pipeline_name" {
  description = "The CodePipeline."
  value       = module.cicd.pipeline_name
}

output "codebuild_projects" {
  description = "CodeBuild projects."
  value       = module.cicd.codebuild_projects
}

output "environments" {
  description = "Backend settings per environment."
  value       = module.cicd.environments
}

output "github_role_arns" {
  description = "Roles for GitHub Actions (see docs/ci-cd.md for where each goes)."
  value       = module.cicd.github_role_arns
}
