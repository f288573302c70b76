variable "name_prefix" {
  description = "Prefix of every resource name, \"<project>-<environment>\"."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key that encrypts both queues."
  type        = string
}

variable "max_receive_count" {
  description = "queue.max_receive_count: fulfillment attempts that run before fulfill_order dead-letters an order's message."
  type        = number
  default     = 3
  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 990
    error_message = "max_receive_count must be from 1 to 990."
  }
}

variable "redrive_margin" {
  description = "Receives the redrive policy allows beyond max_receive_count (deliveries that never reach the function, such as throttled ones, are no attempt); SQS's maxReceiveCount is their sum."
  type        = number
  default     = 5
  validation {
    condition     = var.redrive_margin >= 1 && var.redrive_margin <= 10
    error_message = "redrive_margin must be from 1 to 10."
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
