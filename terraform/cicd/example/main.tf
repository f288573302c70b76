# A root that deploys the CI/CD stack (artifact bucket, CodePipeline, CodeBuild, GitHub OIDC
# roles). State lives in S3 like the environments': see docs/ci-cd.md for the init command.

terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.50.0, < 6.0.0"
    }
  }

  backend "s3" {}
}

provider "aws" {
  region = var.aws_region
}

module "cicd" {
  source = "../"

  project_name            = var.project_name
  enable_pipeline         = var.enable_pipeline
  source_provider         = var.source_provider
  codestar_connection_arn = var.codestar_connection_arn
  repository              = var.repository
  branch                  = var.branch
  github_repository       = var.github_repository
  approval_emails         = var.approval_emails
  lambda_architecture     = var.lambda_architecture
  force_destroy_artifacts = var.force_destroy_artifacts
  deny_insecure_transport = var.deny_insecure_transport
  tags                    = var.tags
}
