# The orders queue (consumed by fulfill_order) and its dead-letter queue.
#
# * Attempts and redrive: fulfill_order counts the attempts that ran on the order (a
#   conditional write claims each one) and, after the last of max_receive_count attempts
#   (default 3, CONTRACT section 2), records the order FAILED and moves its message to the
#   DLQ itself. SQS counts every receive instead, including deliveries that never reached
#   the function (a throttled invocation, a failed cold start): with maxReceiveCount equal
#   to the attempt limit, a few throttled deliveries would dead-letter an order after fewer
#   real attempts. So the redrive policy allows max_receive_count + redrive_margin receives
#   (default 3 + 5 = 8; AWS recommends at least 5 for a Lambda event source) and is only a
#   safety net for messages whose deliveries keep failing before the handler runs.
#   Dead letters stay in the DLQ until an operator redrives or purges them,
#   so the DLQ keeps messages longer than the source queue (14 days against 4 by default;
#   SQS keeps a message's original enqueue time when it moves, so a shorter DLQ retention
#   would silently drop dead letters).
# * Visibility timeout: at least 6 times the consumer Lambda's timeout, as AWS
#   recommends for Lambda event sources, so a batch being retried by the poller is not
#   handed to a second invocation.
# * Encryption with the environment's KMS key; the DLQ accepts redrive only from the
#   orders queue.

locals {
  visibility_timeout_seconds = max(var.visibility_timeout_seconds, 6 * var.consumer_lambda_timeout_seconds)
}

resource "aws_sqs_queue" "dlq" {
  name                              = "${var.name_prefix}-orders-dlq"
  message_retention_seconds         = var.dlq_message_retention_seconds
  visibility_timeout_seconds        = var.dlq_visibility_timeout_seconds
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300

  tags = { Name = "${var.name_prefix}-orders-dlq" }

  lifecycle {
    precondition {
      condition     = var.dlq_message_retention_seconds > var.message_retention_seconds
      error_message = "The DLQ must keep messages longer than the orders queue (dlq_message_retention_seconds > message_retention_seconds)."
    }
  }
}

resource "aws_sqs_queue" "orders" {
  name                              = "${var.name_prefix}-orders"
  message_retention_seconds         = var.message_retention_seconds
  visibility_timeout_seconds        = local.visibility_timeout_seconds
  receive_wait_time_seconds         = 20
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count + var.redrive_margin
  })

  tags = { Name = "${var.name_prefix}-orders" }

  lifecycle {
    postcondition {
      condition     = self.visibility_timeout_seconds >= 6 * var.consumer_lambda_timeout_seconds
      error_message = "The orders queue's visibility timeout must be at least 6x the fulfillment Lambda's timeout."
    }
  }
}

# Only the orders queue may use the DLQ as its dead-letter target.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.orders.arn]
  })
}
