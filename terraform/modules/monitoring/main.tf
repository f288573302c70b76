# CloudWatch dashboard and alarms for one DOFS environment, and the SNS topic the alarms
# notify. The dashboard has the embedded dashboard's panels: orders per status,
# accepted/completed per second, fulfillment success ratio, DLQ depth, latency
# percentiles, alarms.
#
# Metrics come from two places:
# * AWS service metrics: Step Functions (executions succeeded/failed), SQS (queue depth,
#   oldest message age), API Gateway (latency, 5XX), Lambda (errors, duration).
# * DOFS custom metrics, published by api_handler and fulfill_order with PutMetricData
#   (one call per invocation, lambdas/src/metrics.rs) in namespace var.metrics_namespace
#   ("DOFS"). Each is named as its Prometheus metric (crates/core/src/metric_names.rs)
#   and has the dimension Environment plus its Prometheus labels, by the same names:
#     dofs_orders_accepted_total          Count                          api_handler
#     dofs_orders_rejected_total          Count, reason                  api_handler
#     dofs_http_requests_total            Count, method, route, status   api_handler
#     dofs_http_request_duration_seconds  Seconds (values), method, route api_handler
#     dofs_overload_rejections_total      Count, reason                  api_handler
#     dofs_fulfillment_attempts_total     Count, outcome                 fulfill_order
#   Gauges (orders by status, queue depths) are not published: GET /metrics reads them
#   from DynamoDB and SQS, and SQS's own metrics show the queues here.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region    = data.aws_region.current.name
  ns        = var.metrics_namespace
  env       = var.environment
  dashboard = "${var.name_prefix}-orders"
  # The custom metrics' names, as the functions publish them.
  accepted = "dofs_orders_accepted_total"
  rejected = "dofs_orders_rejected_total"
  attempts = "dofs_fulfillment_attempts_total"
  duration = "dofs_http_request_duration_seconds"
}

# --- Notifications ---------------------------------------------------------------------

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "CloudWatchAlarms"
      Effect    = "Allow"
      Principal = { Service = "cloudwatch.amazonaws.com" }
      Action    = "sns:Publish"
      Resource  = aws_sns_topic.alarms.arn
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
    }]
  })
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# --- Alarms ------------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  alarm_name          = "${var.name_prefix}-dlq-depth"
  alarm_description   = "More than ${var.dlq_depth_threshold} dead letters await an operator (redrive or purge them: POST /dlq/redrive, POST /dlq/purge)."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.dlq_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.dlq_depth_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each            = var.function_names
  alarm_name          = "${var.name_prefix}-${replace(each.key, "_", "-")}-errors"
  alarm_description   = "The ${each.key} Lambda reported errors."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.lambda_errors_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name_prefix}-api-5xx"
  alarm_description   = "The order API answered 5XX responses."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5XXError"
  dimensions          = { ApiName = var.rest_api_name, Stage = var.stage_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.api_5xx_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "failed_executions" {
  alarm_name          = "${var.name_prefix}-workflow-failed-executions"
  alarm_description   = "Order-processing workflow executions failed (an order could not be validated, stored or queued)."
  namespace           = "AWS/States"
  metric_name         = "ExecutionsFailed"
  dimensions          = { StateMachineArn = var.state_machine_arn }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.failed_executions_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "oldest_message_age" {
  alarm_name          = "${var.name_prefix}-orders-oldest-message-age"
  alarm_description   = "The oldest order on the orders queue waits longer than ${var.oldest_message_age_threshold_seconds} s: fulfillment is stuck or too slow."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateAgeOfOldestMessage"
  dimensions          = { QueueName = var.orders_queue_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.oldest_message_age_threshold_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "fulfillment_failure_ratio" {
  alarm_name          = "${var.name_prefix}-fulfillment-failure-ratio"
  alarm_description   = "Over 5 minutes, more than ${var.fulfillment_failure_ratio_threshold * 100}% of fulfillment attempts failed."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.fulfillment_failure_ratio_threshold
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "ratio"
    expression  = "IF((s + f) > 0, f / (s + f), 0)"
    label       = "Failed share of fulfillment attempts"
    return_data = true
  }

  metric_query {
    id = "s"
    metric {
      namespace   = local.ns
      metric_name = local.attempts
      dimensions  = { Environment = local.env, outcome = "success" }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "f"
    metric {
      namespace   = local.ns
      metric_name = local.attempts
      dimensions  = { Environment = local.env, outcome = "failure" }
      stat        = "Sum"
      period      = 300
    }
  }
}

locals {
  alarm_arns = concat(
    [
      aws_cloudwatch_metric_alarm.dlq_depth.arn,
      aws_cloudwatch_metric_alarm.api_5xx.arn,
      aws_cloudwatch_metric_alarm.failed_executions.arn,
      aws_cloudwatch_metric_alarm.oldest_message_age.arn,
      aws_cloudwatch_metric_alarm.fulfillment_failure_ratio.arn,
    ],
    [for a in aws_cloudwatch_metric_alarm.lambda_errors : a.arn],
  )
}

# --- Dashboard --------------------------------------------------------------------------

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = local.dashboard
  dashboard_body = jsonencode({
    widgets = [
      {
        type   = "metric"
        x      = 0
        y      = 0
        width  = 12
        height = 6
        properties = {
          title  = "Orders accepted and rejected per minute (orders by status: GET /metrics)"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Sum"
          metrics = [
            [local.ns, local.accepted, "Environment", local.env, { label = "accepted" }],
            [{ expression = "SEARCH('{${local.ns},Environment,reason} MetricName=\"${local.rejected}\" Environment=\"${local.env}\"', 'Sum', 60)", label = "rejected", id = "rejected" }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 0
        width  = 12
        height = 6
        properties = {
          title  = "Accepted / fulfilled per second"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            [{ expression = "accepted / PERIOD(accepted)", label = "accepted/s", id = "acc" }],
            [{ expression = "fulfilled / PERIOD(fulfilled)", label = "fulfilled/s", id = "done" }],
            [local.ns, local.accepted, "Environment", local.env, { id = "accepted", stat = "Sum", visible = false }],
            [local.ns, local.attempts, "Environment", local.env, "outcome", "success", { id = "fulfilled", stat = "Sum", visible = false }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 6
        width  = 8
        height = 6
        properties = {
          title  = "Fulfillment success ratio"
          region = local.region
          view   = "timeSeries"
          period = 300
          yAxis  = { left = { min = 0, max = 100, label = "%" } }
          metrics = [
            [{ expression = "IF((ok + ko) > 0, 100 * ok / (ok + ko), 100)", label = "success %", id = "ratio" }],
            [local.ns, local.attempts, "Environment", local.env, "outcome", "success", { id = "ok", stat = "Sum", visible = false }],
            [local.ns, local.attempts, "Environment", local.env, "outcome", "failure", { id = "ko", stat = "Sum", visible = false }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 8
        y      = 6
        width  = 8
        height = 6
        properties = {
          title  = "Queue depth (DLQ: dead letters awaiting an operator)"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Maximum"
          metrics = [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.dlq_name, { label = "DLQ" }],
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.orders_queue_name, { label = "orders queue" }],
          ]
          annotations = {
            horizontal = [{ label = "DLQ alarm", value = var.dlq_depth_threshold, color = "#d62728" }]
          }
        }
      },
      {
        type   = "metric"
        x      = 16
        y      = 6
        width  = 8
        height = 6
        properties = {
          title  = "API latency percentiles (ms)"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            ["AWS/ApiGateway", "Latency", "ApiName", var.rest_api_name, "Stage", var.stage_name, { stat = "p50", label = "p50" }],
            ["AWS/ApiGateway", "Latency", "ApiName", var.rest_api_name, "Stage", var.stage_name, { stat = "p90", label = "p90" }],
            ["AWS/ApiGateway", "Latency", "ApiName", var.rest_api_name, "Stage", var.stage_name, { stat = "p99", label = "p99" }],
            [{ expression = "1000 * submit", label = "POST /order p99 in api_handler", id = "submit_ms" }],
            [local.ns, local.duration, "Environment", local.env, "method", "POST", "route", "/order", { id = "submit", stat = "p99", visible = false }],
          ]
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 12
        width  = 12
        height = 6
        properties = {
          title   = "Lambda errors"
          region  = local.region
          view    = "timeSeries"
          period  = 300
          stat    = "Sum"
          metrics = [for k, n in var.function_names : ["AWS/Lambda", "Errors", "FunctionName", n, { label = k }]]
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 12
        width  = 12
        height = 6
        properties = {
          title  = "Workflow executions and API 5XX"
          region = local.region
          view   = "timeSeries"
          period = 300
          stat   = "Sum"
          metrics = [
            ["AWS/States", "ExecutionsSucceeded", "StateMachineArn", var.state_machine_arn, { label = "executions succeeded" }],
            ["AWS/States", "ExecutionsFailed", "StateMachineArn", var.state_machine_arn, { label = "executions failed" }],
            ["AWS/ApiGateway", "5XXError", "ApiName", var.rest_api_name, "Stage", var.stage_name, { label = "API 5XX" }],
          ]
        }
      },
      {
        type   = "alarm"
        x      = 0
        y      = 18
        width  = 24
        height = 4
        properties = {
          title  = "Alarms"
          alarms = local.alarm_arns
        }
      },
    ]
  })
}
