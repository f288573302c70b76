variable "project_name" {
  description = "Project name, first part of every resource name."
  type        = string
  default     = "dofs"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.project_name))
    error_message = "project_name must be 2 to 21 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name: dev, staging or prod (also the API stage name)."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.environment))
    error_message = "environment must be 2 to 16 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "workflow_definition_file" {
  description = "The ASL template of the order workflow."
  type        = string
  default     = null
}

# --- Lambda code --------------------------------------------------------------------------

variable "artifacts_dir" {
  description = "Directory with <function>/bootstrap.zip (cargo-lambda's target/lambda)."
  type        = string
  default     = null
}

variable "artifacts_s3_bucket" {
  description = "S3 bucket with <artifacts_s3_prefix>/<function>.zip; when set, the code comes from S3."
  type        = string
  default     = null
}

variable "artifacts_s3_prefix" {
  description = "Key prefix of the zips in artifacts_s3_bucket."
  type        = string
  default     = ""
}

variable "artifacts_source_hashes" {
  description = "With S3 artifacts: base64 SHA-256 of each zip by function name."
  type        = map(string)
  default     = {}
}

# --- Lambda settings ---------------------------------------------------------------------

variable "lambda_architecture" {
  description = "x86_64 or arm64 (must match the cargo-lambda build)."
  type        = string
  default     = "x86_64"
}

variable "lambda_memory_mb" {
  description = "Memory per function (MB); missing names use 256."
  type        = map(number)
  default     = {}
}

variable "lambda_timeouts" {
  description = "Timeout per function (s); missing names use the lambdas module's defaults. api_handler's must be at most 29 (API Gateway's integration timeout)."
  type        = map(number)
  default     = {}
  validation {
    condition     = lookup(var.lambda_timeouts, "api_handler", 15) <= 29
    error_message = "lambda_timeouts.api_handler must be at most 29 s: API Gateway gives up on a Lambda integration after 29 s (504)."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function; missing names or -1 reserve none. fulfill_order's, when set, is also its SQS event source's maximum concurrency and must be at least 2."
  type        = map(number)
  default     = {}
  validation {
    condition     = lookup(var.reserved_concurrency, "fulfill_order", -1) == -1 || lookup(var.reserved_concurrency, "fulfill_order", -1) >= 2
    error_message = "reserved_concurrency.fulfill_order must be -1 (none) or at least 2: the SQS event source's maximum concurrency follows it, and its minimum is 2."
  }
}

variable "lambda_log_level" {
  description = "RUST_LOG of the functions."
  type        = string
  default     = "info"
}

variable "lambda_extra_environment_variables" {
  description = "Additional non-secret environment variables for every function."
  type        = map(string)
  default     = {}
}

variable "fulfillment_success_rate" {
  description = "fulfillment.success_rate."
  type        = number
  default     = 0.7
}

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
  description = "The NAME of the SSM SecureString parameter holding fulfillment.http.secret (whsec_...), never the secret itself; null: attempts are not signed."
  type        = string
  default     = null
  validation {
    condition     = var.fulfillment_http_secret_parameter == null || can(regex("^/?[a-zA-Z0-9_.-]+(/[a-zA-Z0-9_.-]+)*$", var.fulfillment_http_secret_parameter)) && !startswith(coalesce(var.fulfillment_http_secret_parameter, "-"), "whsec_")
    error_message = "fulfillment_http_secret_parameter must be an SSM parameter name (such as /dofs/prod/fulfillment-secret), not the secret: put the secret in the parameter (aws ssm put-parameter --type SecureString)."
  }
}

variable "max_receive_count" {
  description = "queue.max_receive_count: fulfillment attempts that run before an order is FAILED and its message dead-lettered (SQS's maxReceiveCount is this plus the sqs module's redrive_margin)."
  type        = number
  default     = 3
}

variable "fulfill_max_concurrency" {
  description = "Maximum concurrent fulfill_order invocations from the queue (null: unset)."
  type        = number
  default     = null
}

# --- Order events (CONTRACT section 9) ------------------------------------------------------

variable "events_max_age_s" {
  description = "events.max_age_s: how long the order events stay in the feed (GET /events), in seconds (60 to 31536000)."
  type        = number
  default     = 86400
  validation {
    condition     = var.events_max_age_s >= 60 && var.events_max_age_s <= 31536000 && floor(var.events_max_age_s) == var.events_max_age_s
    error_message = "events_max_age_s must be a whole number of seconds from 60 to 31536000."
  }
}

variable "events_archive_retention_days" {
  description = "Days the EventBridge archive keeps the published order events, for replay (1 to 3650); null: no archive."
  type        = number
  default     = null
  validation {
    condition     = var.events_archive_retention_days == null || try(var.events_archive_retention_days >= 1 && var.events_archive_retention_days <= 3650 && floor(var.events_archive_retention_days) == var.events_archive_retention_days, false)
    error_message = "events_archive_retention_days must be null (no archive) or a whole number of days from 1 to 3650 (0 would keep the events forever)."
  }
}

# --- Data protection and logs ------------------------------------------------------------

variable "point_in_time_recovery" {
  description = "DynamoDB point-in-time recovery."
  type        = bool
}

variable "deletion_protection" {
  description = "DynamoDB deletion protection."
  type        = bool
}

variable "log_retention_days" {
  description = "Retention of every log group of the environment."
  type        = number
}

variable "workflow_log_level" {
  description = "Step Functions execution logging level (ALL, ERROR, FATAL, OFF)."
  type        = string
  default     = "ALL"
}

variable "kms_deletion_window_in_days" {
  description = "Recovery window of the environment's KMS key after destroy (7 to 30)."
  type        = number
  default     = 30
}

# --- API -----------------------------------------------------------------------------------

variable "api_throttle_rate_limit" {
  description = "Requests per second allowed by the stage and the usage plan."
  type        = number
  default     = 100
}

variable "api_throttle_burst_limit" {
  description = "Burst allowed by the stage and the usage plan."
  type        = number
  default     = 200
}

variable "api_quota_per_day" {
  description = "Requests per API key per day (null: no quota)."
  type        = number
  default     = null
}

variable "api_key_names" {
  description = "API keys to create."
  type        = list(string)
  default     = ["client", "operator"]
}

variable "operator_api_key_names" {
  description = "Which of api_key_names are operator keys (may retry orders, redrive and purge the DLQ); the others are client keys."
  type        = list(string)
  default     = ["operator"]
}

variable "manage_apigateway_account_logging_role" {
  description = "Manage the account-level API Gateway logging role and setting in this environment (default false: terraform/account manages it once per account and region)."
  type        = bool
  default     = false
}

# --- Alarms ----------------------------------------------------------------------------------

variable "alarm_email" {
  description = "E-mail subscribed to the alarms (empty: none)."
  type        = string
  default     = ""
}

variable "alarm_dlq_depth_threshold" {
  description = "DLQ depth above which the alarm fires."
  type        = number
  default     = 5
}

variable "alarm_lambda_errors_threshold" {
  description = "Lambda errors per 5 minutes that fire the alarm."
  type        = number
  default     = 1
}

variable "alarm_api_5xx_threshold" {
  description = "API 5XX responses per 5 minutes that fire the alarm."
  type        = number
  default     = 1
}

variable "alarm_failed_executions_threshold" {
  description = "Failed workflow executions per 5 minutes that fire the alarm."
  type        = number
  default     = 1
}

variable "alarm_oldest_message_age_seconds" {
  description = "Age of the oldest queued order (s) above which the alarm fires."
  type        = number
  default     = 600
}

variable "alarm_fulfillment_failure_ratio" {
  description = "Share of failed fulfillment attempts over 5 minutes above which the alarm fires."
  type        = number
  default     = 0.5
}
