# The five DOFS Lambda functions (Rust, cargo-lambda, runtime provided.al2023), one
# least-privilege IAM role each, their log groups, X-Ray tracing, the SQS event source of
# fulfill_order and the schedule of dlq_processor.
#
# No dependency cycle: only api_handler needs the state machine's ARN, and the state
# machine needs only validator's and order_storage's ARNs. api_handler is therefore a
# resource block of its own (Terraform orders blocks, not instances: were it an instance
# of the for_each block below, every function would wait for the state machine, which
# waits for validator, and the graph would have a cycle).
#
# Why dlq_processor has no SQS event source on the DLQ: an event source mapping deletes
# every message its function returns successfully, but dead letters must STAY in the DLQ
# until an operator redrives or purges them (CONTRACT section 2: the DLQ depth is the
# number of dead letters awaiting a person, and the alarm on it must keep firing). So an
# EventBridge rule runs dlq_processor every minute; it receives from the DLQ without
# deleting (its role has no sqs:DeleteMessage) and records each dead letter idempotently
# (the order becomes FAILED, a failed_orders row is written once).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  descriptions = {
    api_handler   = "DOFS HTTP API behind API Gateway: accepts orders (starts the workflow) and serves the read and operator routes"
    validator     = "DOFS workflow task: validates an order"
    order_storage = "DOFS workflow task: stores an order as PENDING"
    fulfill_order = "DOFS fulfillment worker: consumes the orders queue"
    dlq_processor = "DOFS dead-letter recorder: marks dead-lettered orders FAILED and records them, without deleting the dead letters"
  }
  default_timeouts = {
    api_handler   = 15
    validator     = 10
    order_storage = 10
    fulfill_order = 30
    dlq_processor = 60
  }
  names   = toset(keys(local.descriptions))
  workers = toset([for n in local.names : n if n != "api_handler"])

  function_names = { for n in local.names : n => "${var.name_prefix}-${replace(n, "_", "-")}" }
  timeouts       = { for n in local.names : n => lookup(var.timeouts, n, local.default_timeouts[n]) }
  memory         = { for n in local.names : n => lookup(var.memory_mb, n, 256) }
  reserved       = { for n in local.names : n => lookup(var.reserved_concurrency, n, -1) }

  # The SQS poller must not invoke fulfill_order beyond its reservation: a throttled
  # batch goes back to the queue with its receive count raised, and fulfillment reads
  # the receive count as the attempt number, so throttling would burn attempts and
  # dead-letter orders that never ran. AWS's minimum maximum_concurrency is 2.
  fulfill_max_concurrency = local.reserved["fulfill_order"] >= 0 ? max(2, local.reserved["fulfill_order"]) : var.fulfill_max_concurrency

  use_s3     = var.artifacts_s3_bucket != null && var.artifacts_s3_bucket != ""
  local_zips = { for n in local.names : n => "${coalesce(var.artifacts_dir, "target/lambda")}/${n}/bootstrap.zip" }
  s3_keys    = { for n in local.names : n => trimprefix("${trimsuffix(var.artifacts_s3_prefix, "/")}/${n}.zip", "/") }

  common_environment = merge(var.extra_environment_variables, {
    DOFS_ENVIRONMENT              = var.environment
    DOFS_ORDERS_TABLE             = var.orders_table_name
    DOFS_FAILED_ORDERS_TABLE      = var.failed_orders_table_name
    DOFS_IDEMPOTENCY_TABLE        = var.idempotency_table_name
    DOFS_ORDERS_QUEUE_URL         = var.orders_queue_url
    DOFS_DLQ_URL                  = var.dlq_url
    DOFS_FULFILLMENT_SUCCESS_RATE = tostring(var.fulfillment_success_rate)
    DOFS_QUEUE_MAX_RECEIVE_COUNT  = tostring(var.max_receive_count)
    DOFS_EVENTS_TABLE             = var.events_table_name
    DOFS_EVENTS_MAX_AGE_S         = tostring(var.events_max_age_s)
    DOFS_METRICS_NAMESPACE        = var.metrics_namespace
    RUST_LOG                      = var.log_level
    },
    # Only dlq_processor publishes, but every function reads its settings the same way.
    { for k, v in { DOFS_EVENTS_BUS_NAME = var.events_bus_name } : k => v if v != null },
  )

  # fulfill_order's fulfillment backend (CONTRACT section 7). The http mode's signing
  # secret is never a variable: fulfill_order reads it at cold start from the SSM
  # SecureString parameter named here (with decryption), so it is in no Terraform state,
  # plan or Lambda configuration.
  http_mode = var.fulfillment_mode == "http"
  fulfill_environment = { for k, v in {
    DOFS_FULFILLMENT_MODE                  = var.fulfillment_mode
    DOFS_FULFILLMENT_HTTP_URL              = local.http_mode ? var.fulfillment_http_url : null
    DOFS_FULFILLMENT_HTTP_TIMEOUT_MS       = local.http_mode ? tostring(var.fulfillment_http_timeout_ms) : null
    DOFS_FULFILLMENT_HTTP_CONCURRENCY      = local.http_mode ? tostring(var.fulfillment_http_concurrency) : null
    DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER = local.http_mode ? var.fulfillment_http_secret_parameter : null
  } : k => v if v != null }
  secret_parameter_arn = var.fulfillment_http_secret_parameter == null ? null : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/${trimprefix(var.fulfillment_http_secret_parameter, "/")}"

  # Execution ARNs of the state machine (DescribeExecution, GetExecutionHistory).
  execution_arn_pattern = "${replace(var.state_machine_arn, ":stateMachine:", ":execution:")}:*"
}

# --- Logs ----------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is set per environment (dev keeps 14 days to limit cost, prod 365); a one-year minimum everywhere is not wanted.
  for_each          = local.names
  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- IAM: one role per function ------------------------------------------------------

resource "aws_iam_role" "this" {
  for_each    = local.names
  name        = "${local.function_names[each.key]}-role"
  description = "Execution role of ${local.function_names[each.key]} (least privilege)"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })
}

locals {
  # What every function needs: its own log group, X-Ray, and the KMS key for its
  # encrypted environment variables.
  base_statements = { for n in local.names : n => [
    {
      Sid      = "OwnLogs"
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = "${aws_cloudwatch_log_group.this[n].arn}:*"
    },
    {
      # X-Ray trace segment APIs have no resource-level permissions.
      Sid      = "XRay"
      Effect   = "Allow"
      Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      Resource = "*"
    },
    {
      Sid      = "DecryptEnvironmentAndMessages"
      Effect   = "Allow"
      Action   = ["kms:Decrypt"]
      Resource = var.kms_key_arn
    },
  ] }

  # Every status change is one TransactWriteItems of conditional Puts: the order (its
  # version checked), its event in the order_events table (the outbox) and, when the
  # order fails, its failed_orders row; plus the ADDs of the order counts (below). IAM
  # authorises each Put as dynamodb:PutItem on its table, so every function that changes
  # orders may put events.
  # api_handler and fulfill_order publish what each invocation counted (one
  # PutMetricData per invocation), only into the DOFS namespace.
  publish_metrics = {
    Sid       = "PublishMetrics"
    Effect    = "Allow"
    Action    = ["cloudwatch:PutMetricData"]
    Resource  = "*"
    Condition = { StringEquals = { "cloudwatch:namespace" = var.metrics_namespace } }
  }

  record_events = {
    Sid      = "RecordOrderEvents"
    Effect   = "Allow"
    Action   = ["dynamodb:PutItem"]
    Resource = var.events_table_arn
  }

  # The counts by status (/metrics) are counter items of the orders table, keyed
  # "count#<STATUS>#<shard>", which the same transaction moves by -1 and +1 (an Update,
  # authorised as dynamodb:UpdateItem). Only those items: an order item is never updated
  # in place, its changes are conditional Puts.
  update_counts = {
    Sid      = "UpdateOrderCounts"
    Effect   = "Allow"
    Action   = ["dynamodb:UpdateItem"]
    Resource = var.orders_table_arn
    Condition = {
      "ForAllValues:StringLike" = { "dynamodb:LeadingKeys" = ["count#*"] }
    }
  }

  worker_statements = {
    validator = []
    order_storage = [
      {
        Sid      = "StoreOrders"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:GetItem"]
        Resource = var.orders_table_arn
      },
      local.record_events,
      local.update_counts,
    ]
    fulfill_order = concat([
      {
        Sid      = "ChangeOrders"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:PutItem"]
        Resource = var.orders_table_arn
      },
      {
        # A service's permanent refusal (http mode) fails the order at once.
        Sid      = "RecordFailedOrders"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:GetItem"]
        Resource = var.failed_orders_table_arn
      },
      local.record_events,
      local.update_counts,
      {
        Sid    = "ConsumeOrdersQueue"
        Effect = "Allow"
        Action = [
          "sqs:ReceiveMessage",
          "sqs:DeleteMessage",
          "sqs:ChangeMessageVisibility",
          "sqs:GetQueueAttributes",
        ]
        Resource = var.orders_queue_arn
      },
      {
        # ... and moves its message to the DLQ itself (encrypted with the environment's key).
        Sid      = "DeadLetterRejectedOrders"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = var.dlq_arn
      },
      {
        Sid      = "EncryptDeadLetters"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey"]
        Resource = var.kms_key_arn
      },
      local.publish_metrics,
      ], [for s in [
        {
          # The http mode's signing secret, read once at cold start.
          Sid      = "ReadFulfillmentSecret"
          Effect   = "Allow"
          Action   = ["ssm:GetParameter"]
          Resource = local.secret_parameter_arn
        },
        {
          # Whichever key encrypts the SecureString (aws/ssm or a customer key), only
          # through SSM and only for this parameter.
          Sid      = "DecryptFulfillmentSecret"
          Effect   = "Allow"
          Action   = ["kms:Decrypt"]
          Resource = "arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"
          Condition = {
            StringEquals = {
              "kms:ViaService"                      = "ssm.${local.region}.amazonaws.com"
              "kms:EncryptionContext:PARAMETER_ARN" = local.secret_parameter_arn
            }
          }
        },
    ] : s if local.http_mode && local.secret_parameter_arn != null])
    dlq_processor = concat([
      {
        Sid      = "MarkOrdersFailed"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:PutItem"]
        Resource = var.orders_table_arn
      },
      {
        Sid      = "RecordFailedOrders"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem", "dynamodb:GetItem"]
        Resource = var.failed_orders_table_arn
      },
      local.record_events,
      local.update_counts,
      {
        # Read only: no sqs:DeleteMessage. Dead letters stay until an operator acts.
        Sid      = "ReadDeadLetters"
        Effect   = "Allow"
        Action   = ["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"]
        Resource = var.dlq_arn
      },
      ], [for s in [
        {
          # The publisher: the unpublished events (a sparse index), then each one marked.
          Sid      = "ReadUnpublishedEvents"
          Effect   = "Allow"
          Action   = ["dynamodb:Query"]
          Resource = "${var.events_table_arn}/index/unpublished-eventId"
        },
        {
          Sid      = "MarkEventsPublished"
          Effect   = "Allow"
          Action   = ["dynamodb:UpdateItem"]
          Resource = var.events_table_arn
        },
        {
          Sid      = "PublishOrderEvents"
          Effect   = "Allow"
          Action   = ["events:PutEvents"]
          Resource = var.events_bus_arn
        },
    ] : s if var.events_bus_name != null])
  }
}

resource "aws_iam_role_policy" "worker" {
  for_each = local.workers
  name     = "least-privilege"
  role     = aws_iam_role.this[each.key].id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(local.base_statements[each.key], local.worker_statements[each.key])
  })
}

resource "aws_iam_role_policy" "api_handler" {
  name = "least-privilege"
  role = aws_iam_role.this["api_handler"].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(local.base_statements["api_handler"], [
      local.publish_metrics,
      {
        # GET /metrics reads the fleet's counters back: the series (ListMetrics) and
        # their sums (GetMetricData). Neither has resource-level permissions.
        Sid      = "ReadFleetCounters"
        Effect   = "Allow"
        Action   = ["cloudwatch:ListMetrics", "cloudwatch:GetMetricData"]
        Resource = "*"
      },
      {
        Sid      = "StartOrderWorkflow"
        Effect   = "Allow"
        Action   = ["states:StartExecution"]
        Resource = var.state_machine_arn
      },
      {
        Sid      = "ReadOrderWorkflowExecutions"
        Effect   = "Allow"
        Action   = ["states:DescribeExecution", "states:GetExecutionHistory"]
        Resource = local.execution_arn_pattern
      },
      {
        Sid    = "ReadOrders"
        Effect = "Allow"
        # BatchGetItem: the order counts' shards (GET /metrics), one call.
        Action = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:DescribeTable"]
        Resource = [
          var.orders_table_arn,
          "${var.orders_table_arn}/index/*",
          var.failed_orders_table_arn,
          "${var.failed_orders_table_arn}/index/*",
        ]
      },
      {
        # Operator routes: retry and redrive put FAILED orders back to PENDING, cancel
        # ends them (storing first an order accepted a moment ago), each with its event.
        # A purge records a dead letter the DLQ processor has not reached yet (the
        # order FAILED with its failed-orders row) before deleting it.
        Sid      = "ChangeOrders"
        Effect   = "Allow"
        Action   = ["dynamodb:PutItem"]
        Resource = [var.orders_table_arn, var.failed_orders_table_arn]
      },
      local.record_events,
      local.update_counts,
      {
        # GET /events: the feed's day partitions, and one order's events by its index.
        Sid      = "ReadOrderEvents"
        Effect   = "Allow"
        Action   = ["dynamodb:Query"]
        Resource = [var.events_table_arn, "${var.events_table_arn}/index/order-eventId"]
      },
      {
        Sid    = "IdempotencyRecords"
        Effect = "Allow"
        Action = [
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:DeleteItem",
          "dynamodb:DescribeTable",
        ]
        Resource = var.idempotency_table_arn
      },
      {
        Sid      = "QueueDepths"
        Effect   = "Allow"
        Action   = ["sqs:GetQueueAttributes"]
        Resource = [var.orders_queue_arn, var.dlq_arn]
      },
      {
        # Operator routes: list, redrive and purge the dead letters, all by receive,
        # send and delete (crates/aws: no PurgeQueue, no message move task); retry and
        # redrive send to the orders queue.
        Sid    = "OperateDeadLetterQueue"
        Effect = "Allow"
        Action = [
          "sqs:ReceiveMessage",
          "sqs:DeleteMessage",
          "sqs:ChangeMessageVisibility",
        ]
        Resource = var.dlq_arn
      },
      {
        Sid      = "RequeueMessages"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = var.orders_queue_arn
      },
      {
        Sid      = "EncryptRequeuedMessages"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey"]
        Resource = var.kms_key_arn
      }
    ])
  })
}

# --- Functions -----------------------------------------------------------------------

resource "aws_lambda_function" "worker" {
  #checkov:skip=CKV_AWS_117:No VPC on purpose: the functions reach only AWS APIs (DynamoDB, SQS, Step Functions) under IAM; a VPC would add NAT gateway or endpoint cost and cold-start latency for no isolation gain.
  #checkov:skip=CKV_AWS_116:No async-invocation DLQ: validator and order_storage are invoked synchronously by Step Functions (which retries and catches), fulfill_order by the SQS poller (the queue's redrive policy is its DLQ), and dlq_processor by a one-minute schedule whose next run re-reads whatever a failed run missed.
  #checkov:skip=CKV_AWS_272:Code signing is not used: the pipeline promotes the same zips by SHA-256 digest (see the code_sha256 output); enable AWS Signer in the pipeline if signing is required.
  for_each = local.workers

  function_name = local.function_names[each.key]
  description   = local.descriptions[each.key]
  role          = aws_iam_role.this[each.key].arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  memory_size   = local.memory[each.key]
  timeout       = local.timeouts[each.key]

  reserved_concurrent_executions = local.reserved[each.key]

  filename         = local.use_s3 ? null : local.local_zips[each.key]
  source_code_hash = local.use_s3 ? lookup(var.artifacts_source_hashes, each.key, null) : try(filebase64sha256(local.local_zips[each.key]), null)
  s3_bucket        = local.use_s3 ? var.artifacts_s3_bucket : null
  s3_key           = local.use_s3 ? local.s3_keys[each.key] : null

  kms_key_arn = var.kms_key_arn
  environment {
    variables = merge(local.common_environment, { for k, v in local.fulfill_environment : k => v if each.key == "fulfill_order" })
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_cloudwatch_log_group.this]

  lifecycle {
    precondition {
      condition     = local.use_s3 || fileexists(local.local_zips[each.key])
      error_message = "Lambda artifact ${local.local_zips[each.key]} not found: build with `cargo lambda build --release --output-format zip`, or set artifacts_dir (DOFS_LAMBDA_ARTIFACTS) or artifacts_s3_bucket."
    }
    precondition {
      condition     = var.events_bus_name == null || var.events_bus_arn != null
      error_message = "events_bus_arn is required with events_bus_name (dlq_processor's events:PutEvents grant)."
    }
    precondition {
      # An attempt that outlives the function would be cut, its message retried.
      condition     = each.key != "fulfill_order" || !local.http_mode || local.timeouts["fulfill_order"] * 1000 > var.fulfillment_http_timeout_ms
      error_message = "fulfill_order's timeout (${local.timeouts["fulfill_order"]} s) must be longer than fulfillment_http_timeout_ms (${var.fulfillment_http_timeout_ms} ms)."
    }
  }
}

resource "aws_lambda_function" "api_handler" {
  #checkov:skip=CKV_AWS_117:No VPC on purpose: the function reaches only AWS APIs (DynamoDB, SQS, Step Functions) under IAM; a VPC would add NAT gateway or endpoint cost and cold-start latency for no isolation gain.
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway only; an async-invocation DLQ would never receive anything.
  #checkov:skip=CKV_AWS_272:Code signing is not used: the pipeline promotes the same zips by SHA-256 digest (see the code_sha256 output); enable AWS Signer in the pipeline if signing is required.
  function_name = local.function_names["api_handler"]
  description   = local.descriptions["api_handler"]
  role          = aws_iam_role.this["api_handler"].arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  memory_size   = local.memory["api_handler"]
  timeout       = local.timeouts["api_handler"]

  reserved_concurrent_executions = local.reserved["api_handler"]

  filename         = local.use_s3 ? null : local.local_zips["api_handler"]
  source_code_hash = local.use_s3 ? lookup(var.artifacts_source_hashes, "api_handler", null) : try(filebase64sha256(local.local_zips["api_handler"]), null)
  s3_bucket        = local.use_s3 ? var.artifacts_s3_bucket : null
  s3_key           = local.use_s3 ? local.s3_keys["api_handler"] : null

  kms_key_arn = var.kms_key_arn
  environment {
    variables = merge(local.common_environment, {
      DOFS_STATE_MACHINE_ARN    = var.state_machine_arn
      DOFS_OPERATOR_API_KEY_IDS = join(",", var.operator_api_key_ids)
      # The router answers 503 Timeout a second before the function would be killed.
      DOFS_REQUEST_TIMEOUT_MS = tostring(local.timeouts["api_handler"] * 1000 - 1000)
    })
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_cloudwatch_log_group.this]

  lifecycle {
    precondition {
      condition     = local.use_s3 || fileexists(local.local_zips["api_handler"])
      error_message = "Lambda artifact ${local.local_zips["api_handler"]} not found: build with `cargo lambda build --release --output-format zip`, or set artifacts_dir (DOFS_LAMBDA_ARTIFACTS) or artifacts_s3_bucket."
    }
  }
}

# --- Event sources -------------------------------------------------------------------

resource "aws_lambda_event_source_mapping" "fulfill_order" {
  event_source_arn                   = var.orders_queue_arn
  function_name                      = aws_lambda_function.worker["fulfill_order"].arn
  batch_size                         = var.fulfill_batch_size
  maximum_batching_window_in_seconds = var.fulfill_batching_window_seconds
  # A failed message stays on the queue (and comes back after the visibility timeout)
  # while the rest of the batch is deleted.
  function_response_types = ["ReportBatchItemFailures"]

  dynamic "scaling_config" {
    for_each = local.fulfill_max_concurrency == null ? [] : [local.fulfill_max_concurrency]
    content {
      maximum_concurrency = scaling_config.value
    }
  }

  # The poller needs the role's SQS permissions when the mapping is created.
  depends_on = [aws_iam_role_policy.worker]
}

resource "aws_cloudwatch_event_rule" "dlq_processor" {
  name                = "${var.name_prefix}-dlq-processor"
  description         = "Runs dlq_processor, which records dead letters without deleting them (they wait for an operator)."
  schedule_expression = var.dlq_processor_schedule
}

resource "aws_cloudwatch_event_target" "dlq_processor" {
  rule      = aws_cloudwatch_event_rule.dlq_processor.name
  target_id = "dlq-processor"
  arn       = aws_lambda_function.worker["dlq_processor"].arn

  # A run that cannot be delivered is not worth delivering late: the next one comes
  # a minute later and re-reads the DLQ.
  retry_policy {
    maximum_event_age_in_seconds = 60
    maximum_retry_attempts       = 0
  }
}

# Lambda retries a failed or timed-out asynchronous invocation twice by default; a
# dlq_processor run overlapping the next scheduled one would only contend for the same
# dead letters. The function stops by its deadline (lambdas/src/dlq.rs) and the next
# run goes on.
resource "aws_lambda_function_event_invoke_config" "dlq_processor" {
  function_name                = aws_lambda_function.worker["dlq_processor"].function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 60
}

resource "aws_lambda_permission" "dlq_processor_schedule" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.worker["dlq_processor"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.dlq_processor.arn
}
