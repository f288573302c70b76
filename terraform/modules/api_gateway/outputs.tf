output "rest_api_id" {
  description = "ID of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "rest_api_name" {
  description = "Name of the REST API (the ApiName dimension of its metrics)."
  value       = aws_api_gateway_rest_api.this.name
}

output "stage_name" {
  description = "Stage name (= environment)."
  value       = aws_api_gateway_stage.this.stage_name
}

output "invoke_url" {
  description = "Base URL of the API: https://{api}.execute-api.{region}.amazonaws.com/{environment}."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "execution_arn" {
  description = "Execution ARN of the REST API."
  value       = aws_api_gateway_rest_api.this.execution_arn
}


output "access_log_group_name" {
  description = "Access log group of the stage."
  value       = aws_cloudwatch_log_group.access.name
}

output "root_resource_id" {
  description = "ID of the REST API's root resource (/)."
  value       = aws_api_gateway_rest_api.this.root_resource_id
}

output "methods" {
  description = "Each route's method, by \"METHOD path\": resource_id and api_key_required."
  value = {
    for k, m in aws_api_gateway_method.this : k => {
      resource_id      = m.resource_id
      api_key_required = m.api_key_required
    }
  }
}

output "execution_log_group" {
  description = "The stage's execution log group, created before API Gateway would create it unencrypted and unexpiring."
  value = {
    name              = aws_cloudwatch_log_group.execution.name
    retention_in_days = aws_cloudwatch_log_group.execution.retention_in_days
    kms_key_id        = aws_cloudwatch_log_group.execution.kms_key_id
  }
}

output "manages_account_logging" {
  description = "Whether this environment manages the account's API Gateway logging role and setting."
  value       = length(aws_api_gateway_account.this) > 0
}
