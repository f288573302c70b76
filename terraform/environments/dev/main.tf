# dev: cheap and disposable. No reserved concurrency (a new account's limit of 10
# cannot reserve any), short log retention, no point-in-time recovery and no deletion
# protection so that `destroy-infrastructure.sh` removes everything, loose alarms.

locals {
  environment = "dev"
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

  reserved_concurrency = var.reserved_concurrency

  fulfillment_mode                  = var.fulfillment_mode
  fulfillment_http_url              = var.fulfillment_http_url
  fulfillment_http_timeout_ms       = var.fulfillment_http_timeout_ms
  fulfillment_http_concurrency      = var.fulfillment_http_concurrency
  fulfillment_http_secret_parameter = var.fulfillment_http_secret_parameter

  log_retention_days            = 14
  workflow_log_level            = "ALL"
  point_in_time_recovery        = false
  deletion_protection           = false
  kms_deletion_window_in_days   = 7
  events_archive_retention_days = 1

  api_throttle_rate_limit                = 50
  api_throttle_burst_limit               = 100
  api_quota_per_day                      = null
  manage_apigateway_account_logging_role = var.manage_apigateway_account_logging_role

  alarm_email                       = var.alarm_email
  alarm_dlq_depth_threshold         = 5
  alarm_lambda_errors_threshold     = 5
  alarm_api_5xx_threshold           = 5
  alarm_failed_executions_threshold = 5
  alarm_oldest_message_age_seconds  = 900
  alarm_fulfillment_failure_ratio   = 0.6
}
