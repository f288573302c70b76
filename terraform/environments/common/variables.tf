variable "aws_region" {
  description = "AWS region (AWS_REGION)."
  type        = string
  default     = "us-east-1"
}

variable "project_name" {
  description = "Project name, first part of every resource name (PROJECT_NAME)."
  type        = string
  default     = "dofs"
}

variable "aws_endpoint_url" {
  description = "Send every AWS call to this endpoint instead of AWS (AWS_ENDPOINT_URL; for an emulator such as moto). Null for real AWS."
  type        = string
  default     = null
}

variable "artifacts_dir" {
  description = "Directory with <function>/bootstrap.zip (default: the repository's target/lambda, where cargo-lambda writes them)."
  type        = string
  default     = null
}

variable "artifacts_s3_bucket" {
  description = "S3 bucket holding <artifacts_s3_prefix>/<function>.zip (a pipeline promoting built artifacts); null to use artifacts_dir."
  type        = string
  default     = null
}

variable "artifacts_s3_prefix" {
  description = "Key prefix of the zips in artifacts_s3_bucket."
  type        = string
  default     = ""
}

variable "artifacts_source_hashes" {
  description = "With S3 artifacts: base64 SHA-256 of each zip by function name (redeploys a changed zip under the same key)."
  type        = map(string)
  default     = {}
}

variable "lambda_architecture" {
  description = "x86_64 or arm64 (must match the cargo-lambda build)."
  type        = string
  default     = "x86_64"
}

variable "alarm_email" {
  description = "E-mail address that receives the alarms (empty: no subscription)."
  type        = string
  default     = ""
}

variable "reserved_concurrency" {
  description = <<-EOT
    Reserved concurrency per function (api_handler, validator, order_storage, fulfill_order,
    dlq_processor); missing names reserve none. The default reserves nothing, which cannot
    fail: AWS refuses a reservation that leaves the account fewer than 100 unreserved
    executions (UnreservedConcurrentExecution), and a new account's quota is often 10.
    With a quota of 1,000 or more, staging may reserve { api_handler = 20, validator = 10,
    order_storage = 10, fulfill_order = 10, dlq_processor = 1 } (51) and prod five times
    that (251). fulfill_order's reservation, when set, must be at least 2: it is also the
    SQS event source's maximum concurrency, whose minimum is 2.
  EOT
  type        = map(number)
  default     = {}
}

variable "manage_apigateway_account_logging_role" {
  description = "Manage the account-level API Gateway logging role and setting in this environment. Default false: apply terraform/account once per account and region instead (several environments managing it overwrite each other, and destroying one breaks the others' logs)."
  type        = bool
  default     = false
}

# --- Fulfillment backend (CONTRACT section 7) ---------------------------------------------

variable "fulfillment_mode" {
  description = "fulfillment.mode of fulfill_order: simulated (the coin flip) or http (a signed POST of each attempt to fulfillment_http_url)."
  type        = string
  default     = "simulated"
  validation {
    condition     = contains(["simulated", "http"], var.fulfillment_mode)
    error_message = "fulfillment_mode must be simulated or http."
  }
}

variable "fulfillment_http_url" {
  description = "fulfillment.http.url: the user's fulfillment service (http mode)."
  type        = string
  default     = null
  validation {
    condition     = var.fulfillment_http_url == null || can(regex("^https?://[^/?#[:space:]]+", var.fulfillment_http_url))
    error_message = "fulfillment_http_url must be an http:// or https:// URL."
  }
}

variable "fulfillment_http_timeout_ms" {
  description = "fulfillment.http.timeout_ms: the longest one attempt may take (1 to 600000 ms). fulfill_order's timeout must exceed it (the stack module raises it)."
  type        = number
  default     = 10000
  validation {
    condition     = var.fulfillment_http_timeout_ms >= 1 && var.fulfillment_http_timeout_ms <= 600000 && floor(var.fulfillment_http_timeout_ms) == var.fulfillment_http_timeout_ms
    error_message = "fulfillment_http_timeout_ms must be a whole number of milliseconds from 1 to 600000."
  }
}

variable "fulfillment_http_concurrency" {
  description = "fulfillment.http.concurrency: attempts in flight at most per fulfill_order instance (1 to 10000)."
  type        = number
  default     = 64
  validation {
    condition     = var.fulfillment_http_concurrency >= 1 && var.fulfillment_http_concurrency <= 10000 && floor(var.fulfillment_http_concurrency) == var.fulfillment_http_concurrency
    error_message = "fulfillment_http_concurrency must be a whole number from 1 to 10000."
  }
}

variable "fulfillment_http_secret_parameter" {
  description = "The NAME of the SSM SecureString parameter holding fulfillment.http.secret (whsec_...), never the secret itself; null: attempts are not signed. Create it with: aws ssm put-parameter --type SecureString --name NAME --value whsec_..."
  type        = string
  default     = null
  validation {
    condition     = var.fulfillment_http_secret_parameter == null || can(regex("^/?[a-zA-Z0-9_.-]+(/[a-zA-Z0-9_.-]+)*$", var.fulfillment_http_secret_parameter)) && !startswith(coalesce(var.fulfillment_http_secret_parameter, "-"), "whsec_")
    error_message = "fulfillment_http_secret_parameter must be an SSM parameter name (such as /dofs/prod/fulfillment-secret), not the secret: put the secret in the parameter (aws ssm put-parameter --type SecureString)."
  }
}
