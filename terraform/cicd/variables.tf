variable "project_name" {
  description = "Prefix of every resource name (and of the environments' resources, which the deploy roles are scoped to)."
  type        = string
  default     = "dofs"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project_name))
    error_message = "project_name must be 2-21 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "environments" {
  description = <<-EOT
    The environments the pipeline promotes through, in order. Each gets a terraform plan
    project, an optional manual approval stage, and a deploy (apply) project. State bucket,
    state key and lock table default to what setup-backend.sh creates for that environment.
  EOT
  type = list(object({
    name             = string
    require_approval = bool
    state_bucket     = optional(string)
    state_key        = optional(string)
    lock_table       = optional(string)
  }))
  default = [
    { name = "dev", require_approval = false },
    { name = "staging", require_approval = true },
    { name = "prod", require_approval = true },
  ]

  validation {
    condition     = length(var.environments) > 0 && alltrue([for e in var.environments : can(regex("^[a-z][a-z0-9]{1,15}$", e.name)) && !contains(["cicd", "build", "plan"], e.name)]) && length(distinct([for e in var.environments : e.name])) == length(var.environments)
    error_message = "environments must be non-empty; names are 2-16 lower-case letters or digits, unique, and not cicd, build or plan (names the CI/CD stack uses itself)."
  }
}

variable "state_bucket_format" {
  description = "format() pattern of an environment's state bucket, given (project_name, environment, account id, region). The default is what setup-backend.sh creates."
  type        = string
  default     = "%[1]s-%[2]s-tfstate-%[3]s-%[4]s"
}

variable "state_key_format" {
  description = "format() pattern of an environment's state key, given (environment). The default is the key in terraform/environments/<env>/versions.tf."
  type        = string
  default     = "environments/%s/terraform.tfstate"
}

variable "lock_table_format" {
  description = "format() pattern of an environment's DynamoDB lock table, given (project_name, environment). The default is what setup-backend.sh creates."
  type        = string
  default     = "%[1]s-%[2]s-tfstate-lock"
}

# --- Source -------------------------------------------------------------------------

variable "enable_pipeline" {
  description = "Create the CodePipeline and its CodeBuild projects. Set false to use only the artifact bucket and the GitHub Actions roles."
  type        = bool
  default     = true
}

variable "source_provider" {
  description = "Where CodePipeline takes the source from: \"github\" (through a CodeStar/CodeConnections connection) or \"codecommit\"."
  type        = string
  default     = "github"

  validation {
    condition     = contains(["github", "codecommit"], var.source_provider)
    error_message = "source_provider must be \"github\" or \"codecommit\"."
  }
}

variable "codestar_connection_arn" {
  description = "ARN of an AVAILABLE CodeStar (CodeConnections) connection to GitHub. Create it once in the console (it needs a person to authorise the GitHub app); never commit it."
  type        = string
  default     = null

  validation {
    condition     = var.codestar_connection_arn == null || can(regex("^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:[0-9]{12}:connection/.+$", var.codestar_connection_arn))
    error_message = "codestar_connection_arn must be a CodeStar connections or CodeConnections connection ARN."
  }
}

variable "repository" {
  description = "For github: \"owner/name\". For codecommit: the repository name."
  type        = string
  default     = null
}

variable "branch" {
  description = "Branch whose pushes start the pipeline."
  type        = string
  default     = "main"
}

# --- Build --------------------------------------------------------------------------

variable "lambda_architecture" {
  description = "Architecture the Lambda zips are built for. The manifest records it, and terraform-env.sh passes it to the environment root as lambda_architecture."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "codebuild_image" {
  description = "CodeBuild image for all projects."
  type        = string
  default     = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
}

variable "lambda_build_compute_type" {
  description = "Compute type of the Rust build (release builds of five binaries want memory)."
  type        = string
  default     = "BUILD_GENERAL1_MEDIUM"
}

variable "terraform_compute_type" {
  description = "Compute type of the plan and deploy projects."
  type        = string
  default     = "BUILD_GENERAL1_SMALL"
}

variable "terraform_version" {
  description = "Terraform version installed by buildspec.yml."
  type        = string
  default     = "1.11.4"
}

variable "build_timeout_minutes" {
  description = "Timeout of each CodeBuild run."
  type        = number
  default     = 60
}

variable "log_retention_days" {
  description = "Retention of the CodeBuild log groups."
  type        = number
  default     = 365
}

variable "pipeline_artifact_expiry_days" {
  description = "Days after which intermediate pipeline artifacts (pipeline/ prefix) expire. Lambda artifacts (lambda/ prefix) are kept: rollback needs them."
  type        = number
  default     = 30
}

variable "lambda_artifact_expiry_days" {
  description = "Days after which Lambda artifacts (lambda/<digest>/) expire; 0 keeps them forever. Anything older than this cannot be rolled back to."
  type        = number
  default     = 0
}

variable "access_logs_bucket" {
  description = "Existing bucket that receives the artifact bucket's server access logs; null disables access logging."
  type        = string
  default     = null
}

# --- Approvals ----------------------------------------------------------------------

variable "approval_emails" {
  description = "E-mail addresses subscribed to the approval topic (each must confirm its subscription)."
  type        = list(string)
  default     = []
}

# --- Deploy permissions ---------------------------------------------------------------

variable "deploy_role_extra_policy_arns" {
  description = "Managed policies attached to every deploy role in addition to the scoped DOFS deploy policy (for resources a later module adds)."
  type        = list(string)
  default     = []
}

variable "role_permissions_boundary_arn" {
  description = "If set, the deploy roles may create IAM roles only with this permissions boundary, and the CI/CD roles themselves get it."
  type        = string
  default     = null
}

# --- GitHub Actions (OIDC) ------------------------------------------------------------

variable "github_repository" {
  description = "\"owner/name\" of the GitHub repository whose Actions may assume the build, plan and deploy roles through OIDC. null creates no GitHub roles."
  type        = string
  default     = null

  validation {
    condition     = var.github_repository == null || can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "github_oidc_provider_arn" {
  description = "ARN of an existing token.actions.githubusercontent.com OIDC provider (an account has at most one). null creates it."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "deny_insecure_transport" {
  description = "Deny every request to the artifact bucket that does not use TLS. Only an emulator on plain HTTP needs false."
  type        = bool
  default     = true
}

variable "force_destroy_artifacts" {
  description = "Let terraform destroy delete the artifact bucket with its objects (every Lambda artifact, so no rollback afterwards). Keep false outside teardown."
  type        = bool
  default     = false
}
