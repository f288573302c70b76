# API Gateway's CloudWatch Logs role is an account setting, one per account and region:
# every REST API in the region writes its execution and access logs through it. It is
# managed here, once, and by no environment: when each environment managed it, they
# overwrote each other's setting, and destroying one environment deleted the role the
# others' logs were using.
#
# Apply once per account and region, before the first environment:
#   terraform -chdir=terraform/account init
#   terraform -chdir=terraform/account apply -var aws_region=us-east-1
# State is local (terraform/account/terraform.tfstate, not committed); if it is lost,
# import the two resources again:
#   terraform -chdir=terraform/account import aws_iam_role.apigateway_logs <project>-apigateway-logs
#   terraform -chdir=terraform/account import aws_api_gateway_account.this api-gateway-account

locals {
  emulated = var.aws_endpoint_url != null && var.aws_endpoint_url != ""
  endpoint = local.emulated ? var.aws_endpoint_url : null
}

provider "aws" {
  region = var.aws_region

  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_region_validation      = local.emulated

  endpoints {
    apigateway = local.endpoint
    iam        = local.endpoint
    sts        = local.endpoint
  }

  default_tags {
    tags = {
      Project   = var.project_name
      ManagedBy = "terraform"
    }
  }
}

data "aws_partition" "current" {}

resource "aws_iam_role" "apigateway_logs" {
  name        = "${var.project_name}-apigateway-logs"
  description = "Lets API Gateway write execution and access logs (account setting, ${var.aws_region})"
  # No aws:SourceAccount condition: API Gateway's documentation of this role trusts the
  # service principal alone and does not say that the service sends it.
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "apigateway.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "apigateway_logs" {
  role       = aws_iam_role.apigateway_logs.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  cloudwatch_role_arn = aws_iam_role.apigateway_logs.arn
  depends_on          = [aws_iam_role_policy_attachment.apigateway_logs]
}
