locals {
  # With an endpoint override (AWS_ENDPOINT_URL, e.g. moto server in tests) every service
  # is sent there, S3 uses path-style addressing, and checks that need real AWS are off.
  emulated = var.aws_endpoint_url != null && var.aws_endpoint_url != ""
  endpoint = local.emulated ? var.aws_endpoint_url : null
}

provider "aws" {
  region = var.aws_region

  s3_use_path_style           = local.emulated
  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_region_validation      = local.emulated

  endpoints {
    apigateway = local.endpoint
    cloudwatch = local.endpoint
    dynamodb   = local.endpoint
    events     = local.endpoint
    iam        = local.endpoint
    kms        = local.endpoint
    lambda     = local.endpoint
    logs       = local.endpoint
    s3         = local.endpoint
    sfn        = local.endpoint
    sns        = local.endpoint
    sqs        = local.endpoint
    sts        = local.endpoint
  }

  default_tags {
    tags = {
      Project     = var.project_name
      Environment = local.environment
      ManagedBy   = "terraform"
    }
  }
}
