output "api_url" {
  description = "Base URL of the order API: POST {api_url}/order."
  value       = module.stack.api_url
}

output "api_key_ids" {
  description = "API key IDs by name (read a value with: terraform output -json api_key_values)."
  value       = module.stack.api_key_ids
}

output "api_key_values" {
  description = "API key values by name, sent as x-api-key."
  value       = module.stack.api_key_values
  sensitive   = true
}

output "state_machine_arn" {
  description = "ARN of the order-processing state machine."
  value       = module.stack.state_machine_arn
}

output "orders_table_name" {
  description = "DynamoDB orders table."
  value       = module.stack.orders_table_name
}

output "failed_orders_table_name" {
  description = "DynamoDB failed-orders table."
  value       = module.stack.failed_orders_table_name
}

output "idempotency_table_name" {
  description = "DynamoDB idempotency table."
  value       = module.stack.idempotency_table_name
}

output "order_events_table_name" {
  description = "DynamoDB order events table (the outbox behind GET /events and the bus)."
  value       = module.stack.order_events_table_name
}

output "events_bus_name" {
  description = "EventBridge bus of the order events: source dofs, detail-type the event type (order.fulfilled, ...); route them with your own rules."
  value       = module.stack.events_bus_name
}

output "events_archive_arn" {
  description = "EventBridge archive of the order events (null: none)."
  value       = module.stack.events_archive_arn
}

output "orders_queue_name" {
  description = "SQS orders queue."
  value       = module.stack.orders_queue_name
}

output "orders_queue_url" {
  description = "SQS orders queue URL."
  value       = module.stack.orders_queue_url
}

output "dlq_name" {
  description = "SQS dead-letter queue."
  value       = module.stack.dlq_name
}

output "dlq_url" {
  description = "SQS dead-letter queue URL."
  value       = module.stack.dlq_url
}

output "dashboard_url" {
  description = "CloudWatch dashboard in the AWS console."
  value       = module.stack.dashboard_url
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = module.stack.alarm_topic_arn
}

output "lambda_function_names" {
  description = "Lambda function names."
  value       = module.stack.lambda_function_names
}

output "lambda_code_sha256" {
  description = "Base64 SHA-256 of each deployed Lambda package (compare with the built artifacts)."
  value       = module.stack.lambda_code_sha256
}
