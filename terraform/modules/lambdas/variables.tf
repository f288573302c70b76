variable "name_prefix" {
  description = "Prefix of every resource name, \"<project>-<environment>\"."
  type        = string
}

variable "environment" {
  description = "Environment name (dev, staging, prod); given to the functions as DOFS_ENVIRONMENT."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace the functions publish their metrics to (DOFS_METRICS_NAMESPACE); the monitoring module reads the same one."
  type        = string
  default     = "DOFS"
}

# --- Code -------------------------------------------------------------------------
# Either a local directory laid out like cargo-lambda's output
# (<artifacts_dir>/<function>/bootstrap.zip, from `cargo lambda build --release
# --output-format zip`), or an S3 bucket and prefix holding <prefix>/<function>.zip, which
# lets a pipeline promote the very same artifacts from one environment to the next.

variable "artifacts_dir" {
  description = "Directory with <function>/bootstrap.zip (cargo-lambda's target/lambda). Ignored when artifacts_s3_bucket is set."
  type        = string
  default     = null
}

variable "artifacts_s3_bucket" {
  description = "S3 bucket holding <artifacts_s3_prefix>/<function>.zip. When set, the code comes from S3."
  type        = string
  default     = null
}

variable "artifacts_s3_prefix" {
  description = "Key prefix of the zips in artifacts_s3_bucket (for example builds/<git-sha>)."
  type        = string
  default     = ""
}

variable "artifacts_source_hashes" {
  description = "With S3 artifacts: base64-encoded SHA-256 of each zip by function name, so a changed zip under the same key is redeployed."
  type        = map(string)
  default     = {}
}

# --- Runtime settings -----------------------------------------------------------------

variable "architecture" {
  description = "Instruction set of the cargo-lambda build: x86_64 or arm64."
  type        = string
  default     = "x86_64"
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "memory_mb" {
  description = "Memory per function (MB), by function name; missing names use 256."
  type        = map(number)
  default     = {}
}

variable "timeouts" {
  description = "Timeout per function (seconds), by function name; missing names use the module's defaults (api_handler 15, validator 10, order_storage 10, fulfill_order 30, dlq_processor 60)."
  type        = map(number)
  default     = {}
  validation {
    condition     = lookup(var.timeouts, "api_handler", 15) <= 29
    error_message = "timeouts.api_handler must be at most 29 s: API Gateway gives up on a Lambda integration after 29 s (504)."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrency per function; -1 (the default) reserves none. A new account has a concurrency limit of 10 and cannot reserve any, so keep -1 there. fulfill_order's, when set, is also its SQS event source's maximum concurrency and must be at least 2."
  type        = map(number)
  default     = {}
  validation {
    condition     = lookup(var.reserved_concurrency, "fulfill_order", -1) == -1 || lookup(var.reserved_concurrency, "fulfill_order", -1) >= 2
    error_message = "reserved_concurrency.fulfill_order must be -1 (none) or at least 2: the SQS event source's maximum concurrency follows it, and its minimum is 2."
  }
}

variable "log_retention_days" {
  description = "Retention of the functions' log groups."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "RUST_LOG given to every function."
  type        = string
  default     = "info"
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key: environment variables, log groups, and the SQS queues' messages."
  type        = string
}

variable "extra_environment_variables" {
  description = "Additional environment variables for every function (for example DOFS_FULFILLMENT_SEED). Never put secrets here."
  type        = map(string)
  default     = {}
}

# --- Wiring ------------------------------------------------------------------------------

variable "orders_table_name" {
  type        = string
  description = "Orders table name."
}

variable "orders_table_arn" {
  type        = string
  description = "Orders table ARN."
}

variable "failed_orders_table_name" {
  type        = string
  description = "Failed-orders table name."
}

variable "failed_orders_table_arn" {
  type        = string
  description = "Failed-orders table ARN."
}

variable "idempotency_table_name" {
  type        = string
  description = "Idempotency table name."
}

variable "idempotency_table_arn" {
  type        = string
  description = "Idempotency table ARN."
}

variable "orders_queue_url" {
  type        = string
  description = "Orders queue URL."
}

variable "orders_queue_arn" {
  type        = string
  description = "Orders queue ARN."
}

variable "dlq_url" {
  type        = string
  description = "Dead-letter queue URL."
}

variable "dlq_arn" {
  type        = string
  description = "Dead-letter queue ARN."
}

variable "events_table_name" {
  type        = string
  description = "Order events table name (the outbox and the feed)."
}

variable "events_table_arn" {
  type        = string
  description = "Order events table ARN."
}

variable "events_max_age_s" {
  description = "events.max_age_s: how long order events are kept in the feed (the items' TTL), in seconds; DOFS_EVENTS_MAX_AGE_S."
  type        = number
  default     = 86400
  validation {
    condition     = var.events_max_age_s >= 60 && var.events_max_age_s <= 31536000 && floor(var.events_max_age_s) == var.events_max_age_s
    error_message = "events_max_age_s must be a whole number of seconds from 60 to 31536000."
  }
}

variable "events_bus_name" {
  description = "EventBridge bus dlq_processor publishes the order events to (DOFS_EVENTS_BUS_NAME); null: the events stay in the feed only."
  type        = string
  default     = null
}

variable "events_bus_arn" {
  description = "ARN of events_bus_name (events:PutEvents); required with it."
  type        = string
  default     = null
}

variable "state_machine_arn" {
  description = "ARN of the order-processing state machine; only api_handler depends on it (no cycle)."
  type        = string
}

variable "fulfillment_success_rate" {
  description = "Probability that a fulfillment attempt succeeds (fulfillment.success_rate)."
  type        = number
  default     = 0.7
  validation {
    condition     = var.fulfillment_success_rate >= 0 && var.fulfillment_success_rate <= 1
    error_message = "fulfillment_success_rate must be from 0 to 1."
  }
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
  description = "fulfillment.http.url: the user's fulfillment service; required in http mode (the stack module checks it, and fulfill_order's cold start fails without it)."
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
  description = "queue.max_receive_count, the fulfillment attempt limit, given to the functions as DOFS_QUEUE_MAX_RECEIVE_COUNT (the redrive policy allows more receives)."
  type        = number
  default     = 3
}

variable "fulfill_batch_size" {
  description = "Messages per fulfill_order invocation."
  type        = number
  default     = 10
}

variable "fulfill_batching_window_seconds" {
  description = "How long the SQS poller gathers a batch for fulfill_order (0 = no wait)."
  type        = number
  default     = 0
}

variable "fulfill_max_concurrency" {
  description = "Maximum concurrent fulfill_order invocations by the SQS event source (2 to 1000) when fulfill_order has no reserved concurrency; null leaves it unset. With a reservation, the reservation is used."
  type        = number
  default     = null
}

variable "operator_api_key_ids" {
  description = "API Gateway API key ids of the operator keys (not secret): api_handler answers 403 on the operator routes to any other key."
  type        = list(string)
  default     = []
}

variable "dlq_processor_schedule" {
  description = "EventBridge schedule of dlq_processor, which records dead letters without deleting them."
  type        = string
  default     = "rate(1 minute)"
}
