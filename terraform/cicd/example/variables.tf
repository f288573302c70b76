variable "aws_region" {
  description = "Region of the pipeline, the artifact bucket and the environments."
  type        = string
  default     = "us-east-1"
}

variable "project_name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "dofs"
}

variable "enable_pipeline" {
  description = "Create the CodePipeline route (false: only the artifact bucket and the GitHub Actions roles)."
  type        = bool
  default     = true
}

variable "source_provider" {
  description = "\"github\" (CodeStar connection) or \"codecommit\"."
  type        = string
  default     = "github"
}

variable "codestar_connection_arn" {
  description = "ARN of the AVAILABLE CodeStar connection to GitHub (pass with -var or TF_VAR_codestar_connection_arn; never commit it)."
  type        = string
  default     = null
}

variable "repository" {
  description = "\"owner/name\" on GitHub, or the CodeCommit repository name."
  type        = string
  default     = null
}

variable "branch" {
  description = "Branch that deploys."
  type        = string
  default     = "main"
}

variable "github_repository" {
  description = "\"owner/name\" whose GitHub Actions get OIDC roles; null for none."
  type        = string
  default     = null
}

variable "approval_emails" {
  description = "Who is e-mailed when staging or prod waits for approval."
  type        = list(string)
  default     = []
}

variable "lambda_architecture" {
  description = "arm64 or x86_64: what the Lambda zips are built for (recorded in each manifest and applied with it)."
  type        = string
  default     = "x86_64"
}

variable "deny_insecure_transport" {
  description = "Deny non-TLS requests to the artifact bucket (false only for a plain-HTTP emulator)."
  type        = bool
  default     = true
}

variable "force_destroy_artifacts" {
  description = "Allow terraform destroy to delete the artifact bucket with every Lambda artifact in it (teardown only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
