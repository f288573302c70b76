# Outputs are split on purpose: the state machine consumes worker outputs only, which
# never depend on api_handler (which depends on the state machine).

output "worker_function_arns" {
  description = "ARNs of validator, order_storage, fulfill_order and dlq_processor."
  value       = { for k, f in aws_lambda_function.worker : k => f.arn }
}

output "worker_function_names" {
  description = "Names of validator, order_storage, fulfill_order and dlq_processor."
  value       = { for k, f in aws_lambda_function.worker : k => f.function_name }
}

output "api_handler_function_name" {
  description = "Name of the api_handler function."
  value       = aws_lambda_function.api_handler.function_name
}

output "api_handler_function_arn" {
  description = "ARN of the api_handler function."
  value       = aws_lambda_function.api_handler.arn
}

output "api_handler_invoke_arn" {
  description = "Invoke ARN of api_handler, for the API Gateway integration."
  value       = aws_lambda_function.api_handler.invoke_arn
}

output "function_names" {
  description = "All five function names by function."
  value = merge(
    { for k, f in aws_lambda_function.worker : k => f.function_name },
    { api_handler = aws_lambda_function.api_handler.function_name },
  )
}

output "code_sha256" {
  description = "Base64-encoded SHA-256 of the deployed code package of each function (as Lambda reports it)."
  value = merge(
    { for k, f in aws_lambda_function.worker : k => f.code_sha256 },
    { api_handler = aws_lambda_function.api_handler.code_sha256 },
  )
}

output "role_arns" {
  description = "Execution role of each function."
  value       = { for k, r in aws_iam_role.this : k => r.arn }
}

output "log_group_names" {
  description = "Log group of each function."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "api_handler_environment" {
  description = "api_handler's environment variables (no secrets: names, URLs and API key ids)."
  value       = aws_lambda_function.api_handler.environment[0].variables
}

output "reserved_concurrency" {
  description = "Reserved concurrency by function (-1: none)."
  value       = local.reserved
}

output "fulfill_order_max_concurrency" {
  description = "Maximum concurrency of fulfill_order's SQS event source (null: unset)."
  value       = local.fulfill_max_concurrency
}

output "timeouts" {
  description = "Timeout by function (s)."
  value       = local.timeouts
}

output "dlq_processor_async_retries" {
  description = "Retries of a failed or timed-out dlq_processor run: by Lambda (async invoke) and by EventBridge (delivery)."
  value = {
    lambda      = aws_lambda_function_event_invoke_config.dlq_processor.maximum_retry_attempts
    eventbridge = aws_cloudwatch_event_target.dlq_processor.retry_policy[0].maximum_retry_attempts
  }
}

output "worker_environments" {
  description = "The workers' environment variables by function (no secrets: names, URLs and settings)."
  value       = { for k, f in aws_lambda_function.worker : k => f.environment[0].variables }
}

output "policies" {
  description = "The least-privilege policy (JSON) of each function's role."
  value = merge(
    { for k, p in aws_iam_role_policy.worker : k => p.policy },
    { api_handler = aws_iam_role_policy.api_handler.policy },
  )
}
