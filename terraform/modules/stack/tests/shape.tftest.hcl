# Offline checks of the shape of one environment (terraform test, mocked AWS provider:
# nothing is created). They cover what moto cannot show: which routes need a key, which
# keys are operators', the SQS poller's concurrency against the function's reservation,
# timeouts and retries, and the API Gateway log groups. Run by scripts/test-terraform.sh.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  # Computed ARNs must look like ARNs to pass the provider's validation.
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000", key_id = "00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:us-east-1:123456789012:mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:us-east-1:123456789012:mock", url = "https://sqs.us-east-1.amazonaws.com/123456789012/mock" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/mock" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:us-east-1:123456789012:function:mock"
      invoke_arn = "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:mock/invocations"
    }
  }
  mock_resource "aws_sfn_state_machine" {
    defaults = { arn = "arn:aws:states:us-east-1:123456789012:stateMachine:mock" }
  }
  mock_resource "aws_cloudwatch_event_bus" {
    defaults = { arn = "arn:aws:events:us-east-1:123456789012:event-bus/dofs-staging-order-events" }
  }
  mock_resource "aws_cloudwatch_event_archive" {
    defaults = { arn = "arn:aws:events:us-east-1:123456789012:archive/dofs-staging-order-events" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:us-east-1:123456789012:rule/mock" }
  }
  mock_resource "aws_api_gateway_rest_api" {
    defaults = { execution_arn = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234", id = "abcdef1234" }
  }
  mock_resource "aws_api_gateway_stage" {
    defaults = { arn = "arn:aws:apigateway:us-east-1::/restapis/abcdef1234/stages/staging" }
  }
}

# Distinct ARNs for the tables whose grants the runs tell apart (the mock gives every
# table the same one).
override_resource {
  target = module.dynamodb.aws_dynamodb_table.order_events
  values = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/dofs-staging-order-events" }
}
override_resource {
  target = module.dynamodb.aws_dynamodb_table.orders
  values = { arn = "arn:aws:dynamodb:us-east-1:123456789012:table/dofs-staging-orders" }
}

variables {
  project_name           = "dofs"
  environment            = "staging"
  artifacts_s3_bucket    = "artifacts"
  artifacts_s3_prefix    = "lambda/0123"
  point_in_time_recovery = true
  deletion_protection    = true
  log_retention_days     = 30
}

run "the_dashboard_is_reachable_without_a_key_and_everything_else_needs_one" {
  command = apply

  assert {
    condition     = module.api_gateway.methods["GET /"].api_key_required == false
    error_message = "GET / (the dashboard's page) must exist on the root resource and need no key"
  }
  assert {
    condition     = module.api_gateway.methods["GET /"].resource_id == module.api_gateway.root_resource_id
    error_message = "GET / must be a method of the root resource"
  }
  assert {
    condition     = module.api_gateway.methods["GET /assets/{proxy+}"].api_key_required == false
    error_message = "GET /assets/{proxy+} must need no key"
  }
  assert {
    condition = alltrue([
      for k, m in module.api_gateway.methods : m.api_key_required
      if !contains(["GET /", "GET /assets/{proxy+}", "GET /health", "GET /ready"], k)
    ])
    error_message = "every route but the dashboard and the probes needs an API key"
  }
  assert {
    condition     = module.api_gateway.methods["POST /dlq/purge"].api_key_required
    error_message = "POST /dlq/purge needs a key"
  }
}

run "api_handler_knows_the_operator_keys_by_id" {
  command = apply

  assert {
    condition     = module.lambdas.api_handler_environment["DOFS_OPERATOR_API_KEY_IDS"] == aws_api_gateway_api_key.this["operator"].id
    error_message = "api_handler's DOFS_OPERATOR_API_KEY_IDS must be the operator key's id (and only it)"
  }
  assert {
    condition     = !strcontains(module.lambdas.api_handler_environment["DOFS_OPERATOR_API_KEY_IDS"], aws_api_gateway_api_key.this["client"].id)
    error_message = "the client key is not an operator key"
  }
}

run "no_reservation_by_default" {
  command = plan

  assert {
    condition     = alltrue([for n, r in module.lambdas.reserved_concurrency : r == -1])
    error_message = "the default reserves no concurrency (an apply on a low-quota account must not fail)"
  }
}

run "the_sqs_poller_stays_within_fulfill_orders_reservation" {
  command = plan

  variables {
    reserved_concurrency = { fulfill_order = 10, api_handler = 20 }
  }

  assert {
    condition     = module.lambdas.fulfill_order_max_concurrency == 10
    error_message = "the event source's maximum concurrency must be fulfill_order's reservation"
  }
}

run "a_reservation_below_two_is_refused" {
  command = plan

  variables {
    reserved_concurrency = { fulfill_order = 1 }
  }

  expect_failures = [var.reserved_concurrency]
}

run "every_lambda_task_retries_the_errors_aws_recommends" {
  command = plan

  # https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html
  # and the Lambda task's Retry that the console generates.
  assert {
    condition = alltrue(flatten([
      for name, state in jsondecode(file("${path.module}/../../../workflow/order-processing.asl.json")).States : [
        for e in ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException", "Lambda.ClientExecutionTimeoutException", "Lambda.Unknown"] :
        contains(flatten([for r in try(state.Retry, []) : r.ErrorEquals]), e)
      ] if endswith(try(state.Resource, ""), "_arn}")
    ]))
    error_message = "every Lambda task of workflow/order-processing.asl.json must retry Lambda.ServiceException, AWSLambdaException, SdkClientException, TooManyRequestsException, ClientExecutionTimeoutException and Unknown"
  }
}

run "timeouts_nest_and_a_late_dlq_run_is_not_retried" {
  command = apply

  assert {
    condition     = module.lambdas.timeouts["api_handler"] <= 29
    error_message = "api_handler's timeout must fit in API Gateway's 29 s"
  }
  assert {
    condition     = tonumber(module.lambdas.api_handler_environment["DOFS_REQUEST_TIMEOUT_MS"]) < module.lambdas.timeouts["api_handler"] * 1000
    error_message = "the router's request timeout must end before the function's"
  }
  assert {
    condition     = module.lambdas.dlq_processor_async_retries.lambda == 0 && module.lambdas.dlq_processor_async_retries.eventbridge == 0
    error_message = "a dlq_processor run that fails or times out must not be retried (the next scheduled run goes on)"
  }
}

run "api_handler_timeout_above_api_gateways_is_refused" {
  command = plan

  variables {
    lambda_timeouts = { api_handler = 30 }
  }

  expect_failures = [var.lambda_timeouts]
}

run "the_account_logging_setting_is_not_an_environments_and_execution_logs_are_kept_encrypted" {
  command = apply

  assert {
    condition     = module.api_gateway.manages_account_logging == false
    error_message = "an environment must not manage the account-wide API Gateway logging role by default (terraform/account does)"
  }
  assert {
    condition     = module.api_gateway.execution_log_group.name == "API-Gateway-Execution-Logs_${module.api_gateway.rest_api_id}/staging"
    error_message = "the execution log group must be the one API Gateway writes to"
  }
  assert {
    condition     = module.api_gateway.execution_log_group.retention_in_days == 30 && module.api_gateway.execution_log_group.kms_key_id == module.kms.key_arn
    error_message = "the execution log group must have the environment's retention and KMS key"
  }
}

run "the_functions_that_count_publish_metrics_only_to_the_dofs_namespace_and_api_handler_reads_them" {
  command = apply

  assert {
    condition = [
      for f, p in module.lambdas.policies : f
      if anytrue([for s in jsondecode(p).Statement : contains(s.Action, "cloudwatch:PutMetricData")])
    ] == ["api_handler", "fulfill_order"]
    error_message = "api_handler and fulfill_order publish metrics, no other function"
  }
  assert {
    condition = alltrue([
      for f, p in module.lambdas.policies : alltrue([
        for s in jsondecode(p).Statement : try(s.Condition.StringEquals["cloudwatch:namespace"], "") == "DOFS"
        if contains(s.Action, "cloudwatch:PutMetricData")
      ])
    ])
    error_message = "cloudwatch:PutMetricData must be limited to the DOFS namespace"
  }
  assert {
    condition = [
      for f, p in module.lambdas.policies : f
      if anytrue([for s in jsondecode(p).Statement : contains(s.Action, "cloudwatch:GetMetricData")])
    ] == ["api_handler"]
    error_message = "only api_handler reads the counters back (GET /metrics)"
  }
  assert {
    condition = alltrue([
      for env in values(merge(module.lambdas.worker_environments, { api_handler = module.lambdas.api_handler_environment })) :
      env["DOFS_METRICS_NAMESPACE"] == "DOFS"
    ])
    error_message = "every function must publish to the namespace the dashboard and alarms read"
  }
}

run "every_function_knows_the_events_table_and_bus_and_only_dlq_processor_publishes" {
  command = apply

  assert {
    condition = alltrue([
      for env in values(merge(module.lambdas.worker_environments, { api_handler = module.lambdas.api_handler_environment })) :
      env["DOFS_EVENTS_TABLE"] == module.dynamodb.order_events_table_name && env["DOFS_EVENTS_BUS_NAME"] == module.events.bus_name && env["DOFS_EVENTS_MAX_AGE_S"] == "86400"
    ])
    error_message = "every function must get DOFS_EVENTS_TABLE, DOFS_EVENTS_BUS_NAME and DOFS_EVENTS_MAX_AGE_S (the writers set each event's TTL from it)"
  }
  assert {
    condition = alltrue([
      for f in ["order_storage", "fulfill_order", "dlq_processor", "api_handler"] : anytrue([
        for s in jsondecode(module.lambdas.policies[f]).Statement :
        contains(s.Action, "dynamodb:PutItem") && s.Resource == module.dynamodb.order_events_table_arn
      ])
    ])
    error_message = "every function that changes orders must put their events (the same transaction)"
  }
  assert {
    condition = [
      for f, p in module.lambdas.policies : f
      if anytrue([for s in jsondecode(p).Statement : contains(s.Action, "events:PutEvents")])
    ] == ["dlq_processor"]
    error_message = "only dlq_processor publishes to the bus"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(module.lambdas.policies["dlq_processor"]).Statement :
      contains(s.Action, "events:PutEvents") && s.Resource == module.events.bus_arn
    ])
    error_message = "dlq_processor's events:PutEvents must be on the order events bus"
  }
  assert {
    condition = alltrue([
      for f, p in module.lambdas.policies : !anytrue([
        for s in jsondecode(p).Statement : contains(s.Action, "dynamodb:UpdateItem") && s.Resource == module.dynamodb.orders_table_arn && try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], null) != ["count#*"]
      ])
    ])
    error_message = "orders change by conditional Puts in transactions: dynamodb:UpdateItem on the orders table only for the count#* counter items"
  }
  assert {
    condition     = module.events.archive_arn == null
    error_message = "no archive unless events_archive_retention_days is set"
  }
}

run "an_archive_keeps_the_events_for_replay_when_asked" {
  command = apply

  variables {
    events_archive_retention_days = 30
  }

  assert {
    condition     = module.events.archive_arn != null
    error_message = "events_archive_retention_days = 30 must create the archive"
  }
}

run "an_archive_that_keeps_events_forever_is_refused" {
  command = plan

  variables {
    events_archive_retention_days = 0
  }

  expect_failures = [var.events_archive_retention_days]
}

run "simulated_mode_needs_no_secret" {
  command = apply

  assert {
    condition     = module.lambdas.worker_environments["fulfill_order"]["DOFS_FULFILLMENT_MODE"] == "simulated" && !contains(keys(module.lambdas.worker_environments["fulfill_order"]), "DOFS_FULFILLMENT_HTTP_URL")
    error_message = "the default mode is simulated, with no http settings"
  }
  assert {
    condition = !anytrue(flatten([
      for f, p in module.lambdas.policies : [for s in jsondecode(p).Statement : anytrue([for a in s.Action : startswith(a, "ssm:")])]
    ]))
    error_message = "no function may read SSM parameters in simulated mode"
  }
}

run "http_mode_gives_fulfill_order_its_service_the_secret_parameter_and_time_for_an_attempt" {
  command = apply

  variables {
    fulfillment_mode                  = "http"
    fulfillment_http_url              = "https://fulfil.example.com/orders"
    fulfillment_http_timeout_ms       = 45000
    fulfillment_http_secret_parameter = "/dofs/staging/fulfillment-secret"
  }

  assert {
    condition = (
      module.lambdas.worker_environments["fulfill_order"]["DOFS_FULFILLMENT_MODE"] == "http" &&
      module.lambdas.worker_environments["fulfill_order"]["DOFS_FULFILLMENT_HTTP_URL"] == "https://fulfil.example.com/orders" &&
      module.lambdas.worker_environments["fulfill_order"]["DOFS_FULFILLMENT_HTTP_TIMEOUT_MS"] == "45000" &&
      module.lambdas.worker_environments["fulfill_order"]["DOFS_FULFILLMENT_HTTP_CONCURRENCY"] == "64" &&
      module.lambdas.worker_environments["fulfill_order"]["DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER"] == "/dofs/staging/fulfillment-secret"
    )
    error_message = "fulfill_order must get the http settings and the secret's parameter name"
  }
  assert {
    condition = alltrue([
      for env in values(merge(module.lambdas.worker_environments, { api_handler = module.lambdas.api_handler_environment })) :
      !contains(keys(env), "DOFS_FULFILLMENT_HTTP_SECRET") && !anytrue([for v in values(env) : startswith(v, "whsec_")])
    ])
    error_message = "the secret itself is in no function's environment"
  }
  assert {
    condition = alltrue([
      for f, env in module.lambdas.worker_environments : f == "fulfill_order" || !contains(keys(env), "DOFS_FULFILLMENT_HTTP_URL")
    ])
    error_message = "only fulfill_order gets the http settings"
  }
  assert {
    condition     = module.lambdas.timeouts["fulfill_order"] * 1000 > 45000 && module.sqs.visibility_timeout_seconds >= module.lambdas.timeouts["fulfill_order"]
    error_message = "fulfill_order's timeout, and the queue's visibility timeout, must be longer than an attempt may take"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(module.lambdas.policies["fulfill_order"]).Statement :
      s.Action == ["ssm:GetParameter"] && s.Resource == "arn:aws:ssm:us-east-1:123456789012:parameter/dofs/staging/fulfillment-secret"
    ])
    error_message = "fulfill_order may read the secret's parameter (and only it)"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(module.lambdas.policies["fulfill_order"]).Statement :
      s.Action == ["kms:Decrypt"] && try(s.Condition.StringEquals["kms:EncryptionContext:PARAMETER_ARN"], "") == "arn:aws:ssm:us-east-1:123456789012:parameter/dofs/staging/fulfillment-secret" && try(s.Condition.StringEquals["kms:ViaService"], "") == "ssm.us-east-1.amazonaws.com"
    ])
    error_message = "fulfill_order may decrypt the parameter through SSM, for that parameter only"
  }
  assert {
    condition = !anytrue(flatten([
      for f, p in module.lambdas.policies : [for s in jsondecode(p).Statement : contains(s.Action, "ssm:GetParameter")] if f != "fulfill_order"
    ]))
    error_message = "only fulfill_order reads the secret"
  }
}

run "http_mode_keeps_a_longer_configured_timeout" {
  command = plan

  variables {
    fulfillment_mode     = "http"
    fulfillment_http_url = "https://fulfil.example.com/orders"
    lambda_timeouts      = { fulfill_order = 120 }
  }

  assert {
    condition     = module.lambdas.timeouts["fulfill_order"] == 120
    error_message = "a configured timeout longer than the attempt's is kept"
  }
}

run "a_bad_mode_is_refused" {
  command = plan

  variables {
    fulfillment_mode = "carrier-pigeon"
  }

  expect_failures = [var.fulfillment_mode]
}

run "the_secret_itself_in_place_of_its_parameter_name_is_refused" {
  command = plan

  variables {
    fulfillment_mode                  = "http"
    fulfillment_http_url              = "https://fulfil.example.com/orders"
    fulfillment_http_secret_parameter = "whsec_ZG9mcy1rZXk="
  }

  expect_failures = [var.fulfillment_http_secret_parameter]
}

run "http_mode_without_a_url_is_refused" {
  command = plan

  variables {
    fulfillment_mode = "http"
  }

  expect_failures = [terraform_data.fulfillment_settings]
}

run "the_redrive_policy_allows_more_receives_than_attempts" {
  command = apply

  assert {
    condition     = module.sqs.max_receive_count == 3 && module.sqs.redrive_max_receive_count == 8
    error_message = "SQS's maxReceiveCount must be the attempt limit plus redrive_margin: throttled deliveries are received, but are no attempt"
  }
  assert {
    condition     = alltrue([for env in values(module.lambdas.worker_environments) : env["DOFS_QUEUE_MAX_RECEIVE_COUNT"] == "3"])
    error_message = "the functions get the attempt limit, not the redrive policy's receive count"
  }
}

run "the_order_counts_are_updated_only_as_counter_items" {
  command = apply

  assert {
    condition = alltrue([
      for f in ["order_storage", "fulfill_order", "dlq_processor", "api_handler"] : anytrue([
        for s in jsondecode(module.lambdas.policies[f]).Statement :
        contains(s.Action, "dynamodb:UpdateItem") && s.Resource == module.dynamodb.orders_table_arn && try(s.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"], []) == ["count#*"]
      ])
    ])
    error_message = "every function that changes orders must move the counts (the same transaction), on the count#* items only"
  }
  assert {
    condition = anytrue([
      for s in jsondecode(module.lambdas.policies["api_handler"]).Statement :
      contains(s.Action, "dynamodb:BatchGetItem") && contains(flatten([s.Resource]), module.dynamodb.orders_table_arn)
    ])
    error_message = "api_handler reads the counts (GET /metrics) with one BatchGetItem"
  }
}
