output "state_machine_arn" {
  description = "ARN of the order-processing state machine."
  value       = aws_sfn_state_machine.this.arn
}

output "state_machine_name" {
  description = "Name of the order-processing state machine."
  value       = aws_sfn_state_machine.this.name
}

output "definition" {
  description = "The rendered ASL definition (ARNs and queue URL substituted)."
  value       = local.definition
}

output "log_group_name" {
  description = "Execution log group."
  value       = aws_cloudwatch_log_group.this.name
}
