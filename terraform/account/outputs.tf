output "cloudwatch_role_arn" {
  description = "The role API Gateway uses to write logs in this account and region."
  value       = aws_api_gateway_account.this.cloudwatch_role_arn
}
