output "api_url" {
  description = "Base URL of the order API (the API Gateway stage)."
  value       = module.api_gateway.invoke_url
}

output "rest_api_id" {
  description = "ID of the REST API."
  value       = module.api_gateway.rest_api_id
}

output "api_key_ids" {
  description = "API key IDs by name."
  value       = local.api_key_ids
}

output "api_key_values" {
  description = "API key values by name (send as x-api-key)."
  value       = { for k, v in aws_api_gateway_api_key.this : k => v.value }
  sensitive   = true
}

output "state_machine_arn" {
  description = "ARN of the order-processing state machine."
  value       = module.stepfunctions.state_machine_arn
}

output "state_machine_definition" {
  description = "The deployed ASL definition."
  value       = module.stepfunctions.definition
}

output "orders_table_name" {
  description = "Orders table."
  value       = module.dynamodb.orders_table_name
}

output "failed_orders_table_name" {
  description = "Failed-orders table."
  value       = module.dynamodb.failed_orders_table_name
}

output "idempotency_table_name" {
  description = "Idempotency table."
  value       = module.dynamodb.idempotency_table_name
}

output "order_events_table_name" {
  description = "Order events table (the outbox behind GET /events and the bus)."
  value       = module.dynamodb.order_events_table_name
}

output "events_bus_name" {
  description = "EventBridge bus of the order events (source dofs, detail-type the event type)."
  value       = module.events.bus_name
}

output "events_bus_arn" {
  description = "ARN of the order events bus."
  value       = module.events.bus_arn
}

output "events_archive_arn" {
  description = "ARN of the order events archive (null: none)."
  value       = module.events.archive_arn
}

output "orders_queue_name" {
  description = "Orders queue."
  value       = module.sqs.orders_queue_name
}

output "orders_queue_url" {
  description = "Orders queue URL."
  value       = module.sqs.orders_queue_url
}

output "dlq_name" {
  description = "Dead-letter queue."
  value       = module.sqs.dlq_name
}

output "dlq_url" {
  description = "Dead-letter queue URL."
  value       = module.sqs.dlq_url
}

output "dashboard_url" {
  description = "CloudWatch dashboard."
  value       = module.monitoring.dashboard_url
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.monitoring.alarm_topic_arn
}

output "lambda_function_names" {
  description = "Lambda function names."
  value       = module.lambdas.function_names
}

output "lambda_code_sha256" {
  description = "Base64 SHA-256 of each deployed Lambda package."
  value       = module.lambdas.code_sha256
}

output "kms_key_arn" {
  description = "The environment's KMS key."
  value       = module.kms.key_arn
}
