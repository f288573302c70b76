variable "name_prefix" {
  description = "Prefix of every resource name, \"<project>-<environment>\"."
  type        = string
}

variable "environment" {
  description = "Environment name (the Environment dimension of the DOFS custom metrics)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key of the alarm topic."
  type        = string
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the metrics the DOFS Lambdas publish (PutMetricData, DOFS_METRICS_NAMESPACE)."
  type        = string
  default     = "DOFS"
}

variable "function_names" {
  description = "Lambda function names by function (api_handler, validator, order_storage, fulfill_order, dlq_processor)."
  type        = map(string)
}

variable "orders_queue_name" {
  description = "Name of the orders queue."
  type        = string
}

variable "dlq_name" {
  description = "Name of the dead-letter queue."
  type        = string
}

variable "state_machine_arn" {
  description = "ARN of the order-processing state machine."
  type        = string
}

variable "rest_api_name" {
  description = "Name of the REST API (ApiName dimension)."
  type        = string
}

variable "stage_name" {
  description = "API stage (Stage dimension)."
  type        = string
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (confirmation mail is sent); empty for none."
  type        = string
  default     = ""
}

variable "dlq_depth_threshold" {
  description = "Alarm when more dead letters than this await an operator (alerts.dlq_depth_threshold)."
  type        = number
  default     = 5
}

variable "lambda_errors_threshold" {
  description = "Alarm when a function reports at least this many errors in 5 minutes."
  type        = number
  default     = 1
}

variable "api_5xx_threshold" {
  description = "Alarm when the API answers at least this many 5XX in 5 minutes."
  type        = number
  default     = 1
}

variable "failed_executions_threshold" {
  description = "Alarm when at least this many workflow executions fail in 5 minutes."
  type        = number
  default     = 1
}

variable "oldest_message_age_threshold_seconds" {
  description = "Alarm when the oldest message on the orders queue is older than this."
  type        = number
  default     = 600
}

variable "fulfillment_failure_ratio_threshold" {
  description = "Alarm when the share of failed fulfillment attempts over 5 minutes is above this (0.3 is expected at the default success rate 0.7)."
  type        = number
  default     = 0.5
}
