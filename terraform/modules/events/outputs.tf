output "bus_name" {
  description = "Name of the EventBridge bus the order events are published to (DOFS_EVENTS_BUS_NAME)."
  value       = aws_cloudwatch_event_bus.orders.name
}

output "bus_arn" {
  description = "ARN of the order events bus (events:PutEvents for dlq_processor)."
  value       = aws_cloudwatch_event_bus.orders.arn
}

output "archive_arn" {
  description = "ARN of the events archive; null without one."
  value       = one(aws_cloudwatch_event_archive.orders[*].arn)
}
