variable "name_prefix" {
  description = "Prefix of every resource name, \"<project>-<environment>\"."
  type        = string
}

variable "definition_file" {
  description = "Path of the ASL definition template (workflow/order-processing.asl.json)."
  type        = string
}

variable "validator_arn" {
  description = "ARN of the validator Lambda (fills $${validator_arn})."
  type        = string
}

variable "order_storage_arn" {
  description = "ARN of the order_storage Lambda (fills $${order_storage_arn})."
  type        = string
}

variable "orders_queue_url" {
  description = "URL of the orders queue (fills $${orders_queue_url})."
  type        = string
}

variable "orders_queue_arn" {
  description = "ARN of the orders queue (sqs:SendMessage)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key of the queue and the log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the execution log group."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "Execution logging level: ALL, ERROR, FATAL or OFF."
  type        = string
  default     = "ALL"
  validation {
    condition     = contains(["ALL", "ERROR", "FATAL", "OFF"], var.log_level)
    error_message = "log_level must be ALL, ERROR, FATAL or OFF."
  }
}

variable "log_execution_data" {
  description = "Include execution input and output (the orders) in the logs."
  type        = bool
  default     = true
}
