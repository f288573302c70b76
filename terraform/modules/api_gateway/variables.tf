variable "name_prefix" {
  description = "Prefix of every resource name, \"<project>-<environment>\"."
  type        = string
}

variable "environment" {
  description = "Environment name; also the stage name."
  type        = string
}

variable "api_handler_invoke_arn" {
  description = "Invoke ARN of the api_handler Lambda."
  type        = string
}

variable "api_handler_function_name" {
  description = "Name of the api_handler Lambda (invoke permission)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key of the access log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the access log group."
  type        = number
  default     = 30
}

variable "execution_logging_level" {
  description = "API Gateway execution logging: OFF, ERROR or INFO."
  type        = string
  default     = "ERROR"
  validation {
    condition     = contains(["OFF", "ERROR", "INFO"], var.execution_logging_level)
    error_message = "execution_logging_level must be OFF, ERROR or INFO."
  }
}

variable "throttle_rate_limit" {
  description = "Steady-state requests per second (stage and usage plan)."
  type        = number
  default     = 100
}

variable "throttle_burst_limit" {
  description = "Burst of requests (stage and usage plan)."
  type        = number
  default     = 200
}

variable "quota_per_day" {
  description = "Requests per API key per day; null for no quota."
  type        = number
  default     = null
}

variable "api_key_ids" {
  description = "IDs of the API keys (by name) to attach to the usage plan; the keys are created by the stack module."
  type        = map(string)
}

variable "manage_account_logging_role" {
  description = "Create the account-level API Gateway CloudWatch Logs role and setting in this environment. Default false: terraform/account manages it once per account and region; several environments managing it overwrite each other, and destroying one breaks the others' logs."
  type        = bool
  default     = false
}
