# The order-processing workflow: a Standard state machine whose definition is the one
# file the embedded engine also runs (workflow/order-processing.asl.json), with the
# Lambda ARNs and the queue URL filled in by templatefile(). Logging to CloudWatch Logs
# (encrypted) and X-Ray tracing are on.
#
# Its role may invoke validator and order_storage and send to the orders queue; nothing
# else. It does not know api_handler (which starts executions), so there is no cycle.

data "aws_caller_identity" "current" {}

locals {
  name = "${var.name_prefix}-order-processing"
  definition = templatefile(var.definition_file, {
    validator_arn     = var.validator_arn
    order_storage_arn = var.order_storage_arn
    orders_queue_url  = var.orders_queue_url
  })
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is set per environment (dev keeps 14 days to limit cost, prod 365); a one-year minimum everywhere is not wanted.
  name              = "/aws/vendedlogs/states/${local.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_iam_role" "this" {
  name        = "${local.name}-role"
  description = "Execution role of the ${local.name} state machine (least privilege)"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "states.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
    }]
  })
}

resource "aws_iam_role_policy" "this" {
  name = "least-privilege"
  role = aws_iam_role.this.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "InvokeWorkflowTasks"
        Effect = "Allow"
        Action = ["lambda:InvokeFunction"]
        Resource = [
          var.validator_arn,
          "${var.validator_arn}:*",
          var.order_storage_arn,
          "${var.order_storage_arn}:*",
        ]
      },
      {
        Sid      = "QueueForFulfillment"
        Effect   = "Allow"
        Action   = ["sqs:SendMessage"]
        Resource = var.orders_queue_arn
      },
      {
        Sid      = "EncryptQueuedMessages"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource = var.kms_key_arn
      },
      {
        # CloudWatch Logs vended delivery for Step Functions: these actions have no
        # resource-level permissions (AWS documents Resource "*").
        Sid    = "ExecutionLogDelivery"
        Effect = "Allow"
        Action = [
          "logs:CreateLogDelivery",
          "logs:GetLogDelivery",
          "logs:UpdateLogDelivery",
          "logs:DeleteLogDelivery",
          "logs:ListLogDeliveries",
          "logs:PutResourcePolicy",
          "logs:DescribeResourcePolicies",
          "logs:DescribeLogGroups",
        ]
        Resource = "*"
      },
      {
        # X-Ray APIs have no resource-level permissions.
        Sid      = "XRay"
        Effect   = "Allow"
        Action   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"]
        Resource = "*"
      },
    ]
  })
}

resource "aws_sfn_state_machine" "this" {
  name       = local.name
  type       = "STANDARD"
  role_arn   = aws_iam_role.this.arn
  definition = local.definition

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.this.arn}:*"
    include_execution_data = var.log_execution_data
    level                  = var.log_level
  }

  tracing_configuration {
    enabled = true
  }

  # The role's permissions must exist before the service validates the logging target.
  depends_on = [aws_iam_role_policy.this]
}
