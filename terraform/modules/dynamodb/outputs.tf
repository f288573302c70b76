output "orders_table_name" {
  description = "Name of the orders table."
  value       = aws_dynamodb_table.orders.name
}

output "orders_table_arn" {
  description = "ARN of the orders table."
  value       = aws_dynamodb_table.orders.arn
}

output "failed_orders_table_name" {
  description = "Name of the failed-orders table."
  value       = aws_dynamodb_table.failed_orders.name
}

output "failed_orders_table_arn" {
  description = "ARN of the failed-orders table."
  value       = aws_dynamodb_table.failed_orders.arn
}

output "idempotency_table_name" {
  description = "Name of the idempotency table."
  value       = aws_dynamodb_table.idempotency.name
}

output "idempotency_table_arn" {
  description = "ARN of the idempotency table."
  value       = aws_dynamodb_table.idempotency.arn
}

output "order_events_table_name" {
  description = "Name of the order events table (the events' outbox and feed)."
  value       = aws_dynamodb_table.order_events.name
}

output "order_events_table_arn" {
  description = "ARN of the order events table."
  value       = aws_dynamodb_table.order_events.arn
}
