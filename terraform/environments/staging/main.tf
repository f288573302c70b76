# staging: production-like. 30 days of logs, point-in-time recovery and deletion
# protection on, alarms close to prod. No reserved concurrency unless
# var.reserved_concurrency sets some (it defaults to none).

locals {
  environment = "staging"
}

module "stack" {
  source = "../../modules/stack"

  project_name = var.project_name
  environment  = local.environment

  artifacts_dir           = coalesce(var.artifacts_dir, abspath("${path.root}/../../../target/lambda"))
  artifacts_s3_bucket     = var.artifacts_s3_bucket
  artifacts_s3_prefix     = var.artifacts_s3_prefix
  artifacts_source_hashes = var.artifacts_source_hashes
  lambda_architecture     = var.lambda_architecture

  # Nothing reserved unless var.reserved_concurrency says so (see its description):
  # a reservation the account's quota cannot give fails the apply.
  reserved_concurrency = var.reserved_concurrency

  fulfillment_mode                  = var.fulfillment_mode
  fulfillment_http_url              = var.fulfillment_http_url
  fulfillment_http_timeout_ms       = var.fulfillment_http_timeout_ms
  fulfillment_http_concurrency      = var.fulfillment_http_concurrency
  fulfillment_http_secret_parameter = var.fulfillment_http_secret_parameter

  log_retention_days            = 30
  workflow_log_level            = "ALL"
  point_in_time_recovery        = true
  deletion_protection           = true
  kms_deletion_window_in_days   = 30
  events_archive_retention_days = 7

  api_throttle_rate_limit                = 100
  api_throttle_burst_limit               = 200
  api_quota_per_day                      = null
  manage_apigateway_account_logging_role = var.manage_apigateway_account_logging_role

  alarm_email                       = var.alarm_email
  alarm_dlq_depth_threshold         = 5
  alarm_lambda_errors_threshold     = 3
  alarm_api_5xx_threshold           = 3
  alarm_failed_executions_threshold = 1
  alarm_oldest_message_age_seconds  = 600
  alarm_fulfillment_failure_ratio   = 0.5
}
