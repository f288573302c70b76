variable "name_prefix" {
  description = "Prefix of every resource name, \"<project>-<environment>\"."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key that encrypts both queues."
  type        = string
}

variable "max_receive_count" {
  description = "Receives before a message moves to the DLQ (queue.max_receive_count)."
  type        = number
  default     = 3
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be from 1 to 1000."
  }
}

variable "consumer_lambda_timeout_seconds" {
  description = "Timeout of the Lambda consuming the orders queue; the visibility timeout is at least 6x this."
  type        = number
}

variable "visibility_timeout_seconds" {
  description = "Minimum visibility timeout of the orders queue (raised to 6x the consumer's timeout if lower)."
  type        = number
  default     = 30
}

variable "message_retention_seconds" {
  description = "How long the orders queue keeps a message (default 4 days)."
  type        = number
  default     = 345600
}

variable "dlq_message_retention_seconds" {
  description = "How long the DLQ keeps a dead letter (default and maximum 14 days); must exceed the source queue's."
  type        = number
  default     = 1209600
}

variable "dlq_visibility_timeout_seconds" {
  description = "Visibility timeout of the DLQ: how long a dead letter read by dlq_processor or an operator stays hidden."
  type        = number
  default     = 30
}
