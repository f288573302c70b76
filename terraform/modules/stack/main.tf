# One DOFS environment: every module wired on the dependency graph
#
#   kms ─┬─> dynamodb ─┐
#        ├─> sqs ──────┼─> lambdas (workers) ─> stepfunctions ─> lambdas (api_handler) ─> api_gateway
#        │   events ───┘                                                                    │
#        └─────────────┴──────────────────────────> monitoring <────────────────────────────┘
#
# Only api_handler needs the state machine's ARN and nothing needs api_handler's ARN, so
# a single `terraform apply` creates everything (the seed needed three stages).
# The environment roots (terraform/environments/*) call this module with their settings.

locals {
  name_prefix = "${var.project_name}-${var.environment}"

  # The CloudWatch namespace the functions publish to and the dashboard and alarms read.
  metrics_namespace = "DOFS"

  # fulfill_order must outlive its slowest attempt: in http mode one attempt may take
  # fulfillment_http_timeout_ms, and the order's reads and writes around it get 10 s
  # more. The orders queue's visibility timeout follows (6x the function's, sqs module),
  # so a message is never handed to a second invocation while an attempt still runs.
  fulfill_order_timeout = max(
    lookup(var.lambda_timeouts, "fulfill_order", 30),
    var.fulfillment_mode == "http" ? ceil(var.fulfillment_http_timeout_ms / 1000) + 10 : 0,
  )
  lambda_timeouts = merge(var.lambda_timeouts, { fulfill_order = local.fulfill_order_timeout })
}

# The fulfillment settings that depend on each other, checked at plan time with a
# message naming the variables (a variable's own validation cannot see the others under
# required_version >= 1.6). It holds no resource of its own.
resource "terraform_data" "fulfillment_settings" {
  input = {
    mode = var.fulfillment_mode
    url  = var.fulfillment_http_url
  }

  lifecycle {
    precondition {
      condition     = var.fulfillment_mode != "http" || var.fulfillment_http_url != null
      error_message = "fulfillment_http_url is required when fulfillment_mode is http."
    }
  }
}

module "kms" {
  source                  = "../kms"
  name_prefix             = local.name_prefix
  deletion_window_in_days = var.kms_deletion_window_in_days
}

module "dynamodb" {
  source                 = "../dynamodb"
  name_prefix            = local.name_prefix
  kms_key_arn            = module.kms.key_arn
  point_in_time_recovery = var.point_in_time_recovery
  deletion_protection    = var.deletion_protection
}

# The bus the order events are published to (by dlq_processor, every minute).
module "events" {
  source                 = "../events"
  name_prefix            = local.name_prefix
  archive_retention_days = var.events_archive_retention_days
}

module "sqs" {
  source                          = "../sqs"
  name_prefix                     = local.name_prefix
  kms_key_arn                     = module.kms.key_arn
  max_receive_count               = var.max_receive_count
  consumer_lambda_timeout_seconds = local.fulfill_order_timeout
}

module "lambdas" {
  source            = "../lambdas"
  name_prefix       = local.name_prefix
  environment       = var.environment
  metrics_namespace = local.metrics_namespace

  artifacts_dir           = var.artifacts_dir
  artifacts_s3_bucket     = var.artifacts_s3_bucket
  artifacts_s3_prefix     = var.artifacts_s3_prefix
  artifacts_source_hashes = var.artifacts_source_hashes

  architecture                = var.lambda_architecture
  memory_mb                   = var.lambda_memory_mb
  timeouts                    = local.lambda_timeouts
  reserved_concurrency        = var.reserved_concurrency
  log_retention_days          = var.log_retention_days
  log_level                   = var.lambda_log_level
  kms_key_arn                 = module.kms.key_arn
  extra_environment_variables = var.lambda_extra_environment_variables

  orders_table_name        = module.dynamodb.orders_table_name
  orders_table_arn         = module.dynamodb.orders_table_arn
  failed_orders_table_name = module.dynamodb.failed_orders_table_name
  failed_orders_table_arn  = module.dynamodb.failed_orders_table_arn
  idempotency_table_name   = module.dynamodb.idempotency_table_name
  idempotency_table_arn    = module.dynamodb.idempotency_table_arn
  events_table_name        = module.dynamodb.order_events_table_name
  events_table_arn         = module.dynamodb.order_events_table_arn
  events_bus_name          = module.events.bus_name
  events_bus_arn           = module.events.bus_arn
  events_max_age_s         = var.events_max_age_s
  orders_queue_url         = module.sqs.orders_queue_url
  orders_queue_arn         = module.sqs.orders_queue_arn
  dlq_url                  = module.sqs.dlq_url
  dlq_arn                  = module.sqs.dlq_arn
  state_machine_arn        = module.stepfunctions.state_machine_arn

  fulfillment_success_rate = var.fulfillment_success_rate

  fulfillment_mode                  = var.fulfillment_mode
  fulfillment_http_url              = var.fulfillment_http_url
  fulfillment_http_timeout_ms       = var.fulfillment_http_timeout_ms
  fulfillment_http_concurrency      = var.fulfillment_http_concurrency
  fulfillment_http_secret_parameter = var.fulfillment_http_secret_parameter
  max_receive_count                 = module.sqs.max_receive_count
  fulfill_max_concurrency           = var.fulfill_max_concurrency
  operator_api_key_ids              = local.operator_api_key_ids
}

module "stepfunctions" {
  source             = "../stepfunctions"
  name_prefix        = local.name_prefix
  definition_file    = coalesce(var.workflow_definition_file, "${path.module}/../../../workflow/order-processing.asl.json")
  validator_arn      = module.lambdas.worker_function_arns["validator"]
  order_storage_arn  = module.lambdas.worker_function_arns["order_storage"]
  orders_queue_url   = module.sqs.orders_queue_url
  orders_queue_arn   = module.sqs.orders_queue_arn
  kms_key_arn        = module.kms.key_arn
  log_retention_days = var.log_retention_days
  log_level          = var.workflow_log_level
}

module "api_gateway" {
  source                      = "../api_gateway"
  name_prefix                 = local.name_prefix
  environment                 = var.environment
  api_handler_invoke_arn      = module.lambdas.api_handler_invoke_arn
  api_handler_function_name   = module.lambdas.api_handler_function_name
  kms_key_arn                 = module.kms.key_arn
  log_retention_days          = var.log_retention_days
  throttle_rate_limit         = var.api_throttle_rate_limit
  throttle_burst_limit        = var.api_throttle_burst_limit
  quota_per_day               = var.api_quota_per_day
  api_key_ids                 = local.api_key_ids
  manage_account_logging_role = var.manage_apigateway_account_logging_role
}

module "monitoring" {
  source            = "../monitoring"
  name_prefix       = local.name_prefix
  environment       = var.environment
  metrics_namespace = local.metrics_namespace
  kms_key_arn       = module.kms.key_arn
  function_names    = module.lambdas.function_names
  orders_queue_name = module.sqs.orders_queue_name
  dlq_name          = module.sqs.dlq_name
  state_machine_arn = module.stepfunctions.state_machine_arn
  rest_api_name     = module.api_gateway.rest_api_name
  stage_name        = module.api_gateway.stage_name
  alarm_email       = var.alarm_email

  dlq_depth_threshold                  = var.alarm_dlq_depth_threshold
  lambda_errors_threshold              = var.alarm_lambda_errors_threshold
  api_5xx_threshold                    = var.alarm_api_5xx_threshold
  failed_executions_threshold          = var.alarm_failed_executions_threshold
  oldest_message_age_threshold_seconds = var.alarm_oldest_message_age_seconds
  fulfillment_failure_ratio_threshold  = var.alarm_fulfillment_failure_ratio
}
