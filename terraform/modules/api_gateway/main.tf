# The DOFS HTTP API on API Gateway (REST): every route of CONTRACT section 1 is a Lambda
# proxy to api_handler, plus ANY /{proxy+} so that an unknown path gets api_handler's JSON
# 404 instead of API Gateway's "Missing Authentication Token".
#
# * API keys (x-api-key) and a usage plan are required on every route except /health,
#   /ready and the dashboard (CONTRACT section 4). A missing or unknown key gets 401 in the
#   contract's shape (INVALID_API_KEY). The operator/client distinction is made by
#   api_handler from the key's id (requestContext.identity.apiKeyId; see the stack module).
# * Request validation: POST /order and POST /orders must carry a JSON object
#   (application/json); the field rules (listing every broken rule, CONTRACT section 1)
#   stay in the domain code, so the edge model is deliberately loose. Path parameters are
#   validated as required.
# * One stage per environment (stage name = environment), X-Ray, JSON access logs,
#   execution metrics, throttling at the stage and in the usage plan.
# * Gateway-generated errors answer in the contract's JSON error shape, and 429s carry
#   Retry-After.

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  api_name = "${var.name_prefix}-api"

  # Every route, keyed by "METHOD path". body: validated as a JSON object.
  routes = {
    "POST /order"                  = { method = "POST", path = "order", api_key = true, body = true }
    "POST /orders"                 = { method = "POST", path = "orders", api_key = true, body = true }
    "GET /orders"                  = { method = "GET", path = "orders", api_key = true, body = false }
    "GET /orders/{orderId}"        = { method = "GET", path = "orders/{orderId}", api_key = true, body = false }
    "POST /orders/{orderId}/retry" = { method = "POST", path = "orders/{orderId}/retry", api_key = true, body = false }
    # The body ({"reason": ...}) is optional: api_handler checks it when present.
    "POST /orders/{orderId}/cancel" = { method = "POST", path = "orders/{orderId}/cancel", api_key = true, body = false }
    "GET /events"                   = { method = "GET", path = "events", api_key = true, body = false }
    "GET /failed-orders"            = { method = "GET", path = "failed-orders", api_key = true, body = false }
    "GET /dlq"                      = { method = "GET", path = "dlq", api_key = true, body = false }
    "POST /dlq/redrive"             = { method = "POST", path = "dlq/redrive", api_key = true, body = false }
    "POST /dlq/purge"               = { method = "POST", path = "dlq/purge", api_key = true, body = false }
    "GET /executions/{executionId}" = { method = "GET", path = "executions/{executionId}", api_key = true, body = false }
    "GET /health"                   = { method = "GET", path = "health", api_key = false, body = false }
    "GET /ready"                    = { method = "GET", path = "ready", api_key = false, body = false }
    "GET /metrics"                  = { method = "GET", path = "metrics", api_key = true, body = false }
    "GET /alerts"                   = { method = "GET", path = "alerts", api_key = true, body = false }
    "GET /openapi.json"             = { method = "GET", path = "openapi.json", api_key = true, body = false }
    # The dashboard: its page shell and assets need no key (it asks the operator for one),
    # as in dofs serve; without these, / has no method and /assets/* falls into {proxy+}.
    "GET /"                = { method = "GET", path = "", api_key = false, body = false }
    "GET /assets/{proxy+}" = { method = "GET", path = "assets/{proxy+}", api_key = false, body = false }
    "ANY /{proxy+}"        = { method = "ANY", path = "{proxy+}", api_key = true, body = false }
  }

  # The resource tree, one block per depth (a for_each block cannot refer to itself).
  level1 = toset(["order", "orders", "failed-orders", "dlq", "executions", "events", "health", "ready", "metrics", "alerts", "openapi.json", "assets", "{proxy+}"])
  level2 = {
    "assets/{proxy+}"          = { parent = "assets", part = "{proxy+}" }
    "orders/{orderId}"         = { parent = "orders", part = "{orderId}" }
    "dlq/redrive"              = { parent = "dlq", part = "redrive" }
    "dlq/purge"                = { parent = "dlq", part = "purge" }
    "executions/{executionId}" = { parent = "executions", part = "{executionId}" }
  }
  level3 = {
    "orders/{orderId}/retry"  = { parent = "orders/{orderId}", part = "retry" }
    "orders/{orderId}/cancel" = { parent = "orders/{orderId}", part = "cancel" }
  }

  # Path parameters each route requires, from the {name} segments of its path.
  path_params = {
    for k, r in local.routes : k => {
      for seg in split("/", r.path) :
      "method.request.path.${trimsuffix(trimprefix(seg, "{"), "}")}" => true
      if startswith(seg, "{") && !endswith(seg, "+}")
    }
  }

  error_body = "{\"error\":\"$context.error.responseType\",\"message\":$context.error.messageString}"
}

resource "aws_api_gateway_rest_api" "this" {
  name           = local.api_name
  description    = "DOFS order API (${var.environment})"
  api_key_source = "HEADER"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "level1" {
  for_each    = local.level1
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = each.key
}

resource "aws_api_gateway_resource" "level2" {
  for_each    = local.level2
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level1[each.value.parent].id
  path_part   = each.value.part
}

resource "aws_api_gateway_resource" "level3" {
  for_each    = local.level3
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level2[each.value.parent].id
  path_part   = each.value.part
}

locals {
  resource_ids = merge(
    { "" = aws_api_gateway_rest_api.this.root_resource_id },
    { for k, r in aws_api_gateway_resource.level1 : k => r.id },
    { for k, r in aws_api_gateway_resource.level2 : k => r.id },
    { for k, r in aws_api_gateway_resource.level3 : k => r.id },
  )
}

resource "aws_api_gateway_request_validator" "body_and_params" {
  rest_api_id                 = aws_api_gateway_rest_api.this.id
  name                        = "body-and-parameters"
  validate_request_body       = true
  validate_request_parameters = true
}

resource "aws_api_gateway_request_validator" "params" {
  rest_api_id                 = aws_api_gateway_rest_api.this.id
  name                        = "parameters-only"
  validate_request_body       = false
  validate_request_parameters = true
}

resource "aws_api_gateway_model" "order_request" {
  rest_api_id  = aws_api_gateway_rest_api.this.id
  name         = "OrderRequest"
  description  = "An order is a JSON object; its fields are checked by api_handler, which lists every broken rule."
  content_type = "application/json"
  schema = jsonencode({
    "$schema" = "http://json-schema.org/draft-04/schema#"
    title     = "OrderRequest"
    type      = "object"
  })
}

resource "aws_api_gateway_method" "this" {
  #checkov:skip=CKV_AWS_59:GET /health and /ready are public by contract (CONTRACT section 4: liveness and readiness probes need no key), and so are the dashboard's page shell and assets (GET /, GET /assets/*: static files; the page asks for a key); every other route requires an API key.
  #checkov:skip=CKV2_AWS_70:Authorization is the API key and usage plan (CONTRACT section 4); no Cognito or IAM authorizer is part of the contract.
  for_each             = local.routes
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = local.resource_ids[each.value.path]
  http_method          = each.value.method
  authorization        = "NONE"
  api_key_required     = each.value.api_key
  request_validator_id = each.value.body ? aws_api_gateway_request_validator.body_and_params.id : aws_api_gateway_request_validator.params.id
  request_models       = each.value.body ? { "application/json" = aws_api_gateway_model.order_request.name } : null
  request_parameters   = length(local.path_params[each.key]) > 0 ? local.path_params[each.key] : null
}

resource "aws_api_gateway_integration" "this" {
  for_each                = local.routes
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_method.this[each.key].resource_id
  http_method             = aws_api_gateway_method.this[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = var.api_handler_invoke_arn
}

# --- Errors made by API Gateway itself, in the contract's error shape ----------------

resource "aws_api_gateway_gateway_response" "bad_request_body" {
  rest_api_id   = aws_api_gateway_rest_api.this.id
  response_type = "BAD_REQUEST_BODY"
  status_code   = "400"
  response_templates = {
    "application/json" = "{\"error\":\"MalformedJson\",\"message\":\"the request body must be a JSON object\",\"details\":[{\"field\":\"body\",\"message\":\"$context.error.validationErrorString\"}]}"
  }
}

resource "aws_api_gateway_gateway_response" "throttled" {
  for_each      = toset(["THROTTLED", "QUOTA_EXCEEDED"])
  rest_api_id   = aws_api_gateway_rest_api.this.id
  response_type = each.key
  status_code   = "429"
  response_parameters = {
    "gatewayresponse.header.Retry-After" = "'1'"
  }
  response_templates = {
    "application/json" = local.error_body
  }
}

# A missing or unknown x-api-key: 401 Unauthorized as CONTRACT section 4 says (API
# Gateway's default is 403, the status the contract keeps for a client key on an
# operator route).
resource "aws_api_gateway_gateway_response" "invalid_api_key" {
  rest_api_id   = aws_api_gateway_rest_api.this.id
  response_type = "INVALID_API_KEY"
  status_code   = "401"
  response_templates = {
    "application/json" = "{\"error\":\"Unauthorized\",\"message\":\"a valid x-api-key header is required\"}"
  }
}

resource "aws_api_gateway_gateway_response" "defaults" {
  for_each      = toset(["DEFAULT_4XX", "DEFAULT_5XX"])
  rest_api_id   = aws_api_gateway_rest_api.this.id
  response_type = each.key
  response_templates = {
    "application/json" = local.error_body
  }
}

# --- Deployment and stage ------------------------------------------------------------

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  description = "DOFS ${var.environment}"

  triggers = {
    redeployment = sha1(jsonencode([
      local.routes,
      [for k, m in aws_api_gateway_method.this : [m.id, m.api_key_required, m.request_validator_id, m.request_models]],
      [for k, i in aws_api_gateway_integration.this : [i.id, i.uri]],
      aws_api_gateway_model.order_request.schema,
      [for r in aws_api_gateway_gateway_response.defaults : r.response_templates],
      [for r in aws_api_gateway_gateway_response.throttled : r.response_parameters],
      aws_api_gateway_gateway_response.bad_request_body.response_templates,
      aws_api_gateway_gateway_response.invalid_api_key.response_templates,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [aws_api_gateway_integration.this]
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Retention is set per environment (dev keeps 14 days to limit cost, prod 365); a one-year minimum everywhere is not wanted.
  name              = "/aws/apigateway/${local.api_name}/${var.environment}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_120:No response cache: order statuses change within seconds and a cache would serve stale ones; it would also cost from about 14 USD a month per stage.
  #checkov:skip=CKV2_AWS_29:No WAF web ACL by default (about 5 USD a month plus requests): API keys, the usage plan and stage throttling bound the traffic. Attach a web ACL in front of a public production API.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to an HTTP backend; the only backend here is a Lambda proxy integration.
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.environment
  description          = "DOFS ${var.environment}"
  xray_tracing_enabled = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      extendedRequestId  = "$context.extendedRequestId"
      ip                 = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      resourcePath       = "$context.resourcePath"
      path               = "$context.path"
      status             = "$context.status"
      protocol           = "$context.protocol"
      responseLength     = "$context.responseLength"
      responseLatency    = "$context.responseLatency"
      integrationLatency = "$context.integrationLatency"
      integrationStatus  = "$context.integrationStatus"
      errorMessage       = "$context.error.message"
      xrayTraceId        = "$context.xrayTraceId"
    })
  }

  depends_on = [aws_api_gateway_account.this]
}

# Execution logs: API Gateway writes them to API-Gateway-Execution-Logs_{api id}/{stage}
# and, if that group does not exist, creates it itself: unencrypted and kept for ever.
# Create it first, with the environment's retention and KMS key.
resource "aws_cloudwatch_log_group" "execution" {
  #checkov:skip=CKV_AWS_338:Retention is set per environment (dev keeps 14 days to limit cost, prod 365); a one-year minimum everywhere is not wanted.
  name              = "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.this.id}/${var.environment}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:No response cache (see the stage): order statuses change within seconds.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = var.execution_logging_level
    data_trace_enabled     = false
    throttling_burst_limit = var.throttle_burst_limit
    throttling_rate_limit  = var.throttle_rate_limit
    caching_enabled        = false
    cache_data_encrypted   = true
  }

  # Execution logging starts here: the log group must exist first.
  depends_on = [aws_cloudwatch_log_group.execution]
}

# --- API keys and usage plan ---------------------------------------------------------

resource "aws_api_gateway_usage_plan" "this" {
  name        = "${local.api_name}-${var.environment}"
  description = "Throttling and quota for the DOFS ${var.environment} API keys"

  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }

  throttle_settings {
    burst_limit = var.throttle_burst_limit
    rate_limit  = var.throttle_rate_limit
  }

  dynamic "quota_settings" {
    for_each = var.quota_per_day == null ? [] : [var.quota_per_day]
    content {
      limit  = quota_settings.value
      period = "DAY"
    }
  }
}

resource "aws_api_gateway_usage_plan_key" "this" {
  for_each      = var.api_key_ids
  key_id        = each.value
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.this.id
}

# --- Invocation permission -----------------------------------------------------------

resource "aws_lambda_permission" "api_gateway" {
  statement_id  = "AllowApiGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = var.api_handler_function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/*/*"
}

# --- Account-level logging role (one per account and region) -------------------------
# API Gateway writes execution and access logs through a role set in the account's
# API Gateway settings. terraform/account manages it once per account and region; an
# environment manages it only with manage_account_logging_role = true (the old default,
# kept for an account that has nothing else), never both.

resource "aws_iam_role" "cloudwatch" {
  count       = var.manage_account_logging_role ? 1 : 0
  name        = "${var.name_prefix}-apigw-logs"
  description = "Lets API Gateway write execution and access logs (account setting)"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "apigateway.amazonaws.com" }
      Action    = "sts:AssumeRole"
      # No aws:SourceAccount condition: API Gateway's documentation of this role
      # (set-up-logging.html, "Permissions for CloudWatch logging") trusts the service
      # principal alone and does not say that API Gateway sends aws:SourceAccount when
      # it assumes the account's logging role; an unmet condition would silently stop
      # every API's logs in the account and region.
    }]
  })
}

resource "aws_iam_role_policy_attachment" "cloudwatch" {
  count      = var.manage_account_logging_role ? 1 : 0
  role       = aws_iam_role.cloudwatch[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count               = var.manage_account_logging_role ? 1 : 0
  cloudwatch_role_arn = aws_iam_role.cloudwatch[0].arn
  depends_on          = [aws_iam_role_policy_attachment.cloudwatch]
}
