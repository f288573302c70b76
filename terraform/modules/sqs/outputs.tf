output "orders_queue_url" {
  description = "URL of the orders queue."
  value       = aws_sqs_queue.orders.url
}

output "orders_queue_arn" {
  description = "ARN of the orders queue."
  value       = aws_sqs_queue.orders.arn
}

output "orders_queue_name" {
  description = "Name of the orders queue."
  value       = aws_sqs_queue.orders.name
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.url
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_name" {
  description = "Name of the dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}

output "visibility_timeout_seconds" {
  description = "Effective visibility timeout of the orders queue."
  value       = aws_sqs_queue.orders.visibility_timeout_seconds
}

output "max_receive_count" {
  description = "Fulfillment attempts before fulfill_order dead-letters a message (queue.max_receive_count)."
  value       = var.max_receive_count
}

output "redrive_max_receive_count" {
  description = "The redrive policy's maxReceiveCount: max_receive_count + redrive_margin."
  value       = var.max_receive_count + var.redrive_margin
}
