# Policies for reading (plan) and changing (deploy) one environment. They are shared by
# the CodeBuild projects and by the GitHub Actions roles, so both routes have exactly the
# same rights.
#
# Scope: the environment roots name every resource "<project>-<env>-..." (functions, state
# machine, queues, tables, topics, alarms, dashboard, log groups, IAM roles and policies)
# and tag it Project/Environment. Resources whose ARNs carry no name (API Gateway, event
# source mappings, KMS keys) are scoped by region, account, or tags.

locals {
  arn = {
    for name, e in local.environments : name => {
      lambda_function = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${e.resource_prefix}-*"
      lambda_esm      = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:event-source-mapping:*"
      state_machine   = "arn:${local.partition}:states:${local.region}:${local.account_id}:stateMachine:${e.resource_prefix}-*"
      sfn_execution   = "arn:${local.partition}:states:${local.region}:${local.account_id}:execution:${e.resource_prefix}-*"
      sqs             = "arn:${local.partition}:sqs:${local.region}:${local.account_id}:${e.resource_prefix}-*"
      dynamodb        = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${e.resource_prefix}-*"
      sns             = "arn:${local.partition}:sns:${local.region}:${local.account_id}:${e.resource_prefix}-*"
      alarm           = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${e.resource_prefix}-*"
      dashboard       = "arn:${local.partition}:cloudwatch::${local.account_id}:dashboard/${e.resource_prefix}-*"
      log_group       = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*${e.resource_prefix}*"
      iam_role        = "arn:${local.partition}:iam::${local.account_id}:role/${e.resource_prefix}-*"
      iam_policy      = "arn:${local.partition}:iam::${local.account_id}:policy/${e.resource_prefix}-*"
      # The kms module's alias is alias/<prefix> itself; alias/<prefix>-* leaves room for more.
      kms_alias   = "arn:${local.partition}:kms:${local.region}:${local.account_id}:alias/${e.resource_prefix}"
      kms_aliases = "arn:${local.partition}:kms:${local.region}:${local.account_id}:alias/${e.resource_prefix}-*"
      events_rule = "arn:${local.partition}:events:${local.region}:${local.account_id}:rule/${e.resource_prefix}-*"
      # The order events' bus and its archive (modules/events).
      events_bus     = "arn:${local.partition}:events:${local.region}:${local.account_id}:event-bus/${e.resource_prefix}-*"
      events_archive = "arn:${local.partition}:events:${local.region}:${local.account_id}:archive/${e.resource_prefix}-*"
      # API Gateway execution logs: the group is named by the REST API's id and the stage,
      # and the stage is the environment's name.
      apigw_exec_logs = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:API-Gateway-Execution-Logs_*/${name}"
      kms_key         = "arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"
      apigateway      = "arn:${local.partition}:apigateway:${local.region}::/*"
      state_bucket    = "arn:${local.partition}:s3:::${e.state_bucket}"
      state_object    = "arn:${local.partition}:s3:::${e.state_bucket}/${e.state_key}*"
      lock_table      = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${e.lock_table}"
    }
  }
}

# --- Plan: read the state, take the lock, read the environment's resources -----------

data "aws_iam_policy_document" "plan" {
  for_each = local.environments

  statement {
    sid       = "StateBucketList"
    actions   = ["s3:ListBucket", "s3:GetBucketVersioning", "s3:GetBucketLocation"]
    resources = [local.arn[each.key].state_bucket]
  }

  statement {
    sid       = "StateObjectRead"
    actions   = ["s3:GetObject"]
    resources = [local.arn[each.key].state_object]
  }

  statement {
    sid       = "StateLock"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:DescribeTable"]
    resources = [local.arn[each.key].lock_table]
  }

  statement {
    sid       = "StateEncryptionThroughS3"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
    resources = [local.arn[each.key].kms_key]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com", "dynamodb.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid     = "LambdaArtifactsAndDeploymentsRead"
    actions = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [
      "${local.artifact_bucket_arn}/${local.lambda_prefix}/*",
      "${local.artifact_bucket_arn}/${local.deployments_prefix}/*",
    ]
  }

  statement {
    sid       = "LambdaArtifactsList"
    actions   = ["s3:ListBucket"]
    resources = [local.artifact_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.lambda_prefix}/*", "${local.deployments_prefix}/*"]
    }
  }

  statement {
    sid       = "ArtifactKeyDecrypt"
    actions   = ["kms:Decrypt", "kms:DescribeKey"]
    resources = [aws_kms_key.artifacts.arn]
  }

  statement {
    sid = "ReadEnvironmentResources"
    actions = [
      "lambda:Get*",
      "lambda:List*",
      "states:Describe*",
      "states:List*",
      "sqs:Get*",
      "sqs:List*",
      "dynamodb:Describe*",
      "dynamodb:List*",
      "sns:Get*",
      "sns:List*",
      "cloudwatch:Describe*",
      "cloudwatch:Get*",
      "cloudwatch:List*",
      "logs:Describe*",
      "logs:List*",
      "iam:Get*",
      "iam:List*",
      "kms:Describe*",
      "kms:Get*",
      "kms:List*",
      "events:Describe*",
      "events:List*",
    ]
    resources = [
      local.arn[each.key].lambda_function,
      local.arn[each.key].lambda_esm,
      local.arn[each.key].state_machine,
      local.arn[each.key].sqs,
      local.arn[each.key].dynamodb,
      "${local.arn[each.key].dynamodb}/*",
      local.arn[each.key].sns,
      local.arn[each.key].alarm,
      local.arn[each.key].dashboard,
      local.arn[each.key].log_group,
      local.arn[each.key].iam_role,
      local.arn[each.key].iam_policy,
      local.arn[each.key].kms_alias,
      local.arn[each.key].kms_aliases,
      local.arn[each.key].events_rule,
      local.arn[each.key].events_bus,
      local.arn[each.key].events_archive,
      local.arn[each.key].apigw_exec_logs,
    ]
  }

  statement {
    sid       = "ReadApiGateway"
    actions   = ["apigateway:GET"]
    resources = [local.arn[each.key].apigateway]
  }

  statement {
    sid       = "ReadTaggedKeys"
    actions   = ["kms:Describe*", "kms:Get*", "kms:List*"]
    resources = [local.arn[each.key].kms_key]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/Environment"
      values   = [each.key]
    }
  }

  # These List/Describe calls have no resource-level permissions in IAM: they name no
  # resource, so "*" is the only possible resource and reveals only names and metadata.
  statement {
    sid = "AccountWideListCalls"
    actions = [
      "lambda:ListEventSourceMappings",
      "lambda:GetAccountSettings",
      "logs:DescribeLogGroups",
      "logs:DescribeResourcePolicies",
      "logs:ListLogDeliveries",
      "logs:GetLogDelivery",
      "sns:ListTopics",
      "states:ListStateMachines",
      "sqs:ListQueues",
      "dynamodb:ListTables",
      "kms:ListAliases",
      "iam:ListPolicies",
      "sts:GetCallerIdentity",
      # An SNS subscription (the alarm topic's email) is no IAM resource type: reading it
      # back is authorised on "*" only.
      "sns:GetSubscriptionAttributes",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_policy" "plan" {
  for_each    = local.environments
  name        = "${local.prefix}-cicd-${each.key}-plan"
  description = "Read ${each.key}'s Terraform state, take its lock and read its resources (terraform plan)."
  policy      = data.aws_iam_policy_document.plan[each.key].json
  tags        = local.tags
}

# --- Deploy: change the environment's resources ---------------------------------------

data "aws_iam_policy_document" "deploy" {
  for_each = local.environments

  statement {
    sid       = "StateWrite"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = [local.arn[each.key].state_object]
  }

  statement {
    sid       = "RecordDeployment"
    actions   = ["s3:PutObject"]
    resources = ["${local.artifact_bucket_arn}/${local.deployments_prefix}/${each.key}/*"]
  }

  statement {
    sid       = "RecordDeploymentEncrypted"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.artifacts.arn]
  }

  statement {
    sid = "ManageEnvironmentResources"
    actions = [
      "lambda:*",
      "states:*",
      "sqs:*",
      "dynamodb:*",
      "sns:*",
      "cloudwatch:PutMetricAlarm",
      "cloudwatch:DeleteAlarms",
      "cloudwatch:PutDashboard",
      "cloudwatch:DeleteDashboards",
      "cloudwatch:TagResource",
      "cloudwatch:UntagResource",
      "logs:CreateLogGroup",
      "logs:DeleteLogGroup",
      "logs:PutRetentionPolicy",
      "logs:DeleteRetentionPolicy",
      "logs:AssociateKmsKey",
      "logs:DisassociateKmsKey",
      "logs:TagResource",
      "logs:UntagResource",
      "logs:TagLogGroup",
      "logs:UntagLogGroup",
      "logs:PutMetricFilter",
      "logs:DeleteMetricFilter",
      "logs:PutSubscriptionFilter",
      "logs:DeleteSubscriptionFilter",
      # dlq_processor's schedule: an EventBridge rule and its target.
      "events:PutRule",
      "events:DeleteRule",
      "events:EnableRule",
      "events:DisableRule",
      "events:PutTargets",
      "events:RemoveTargets",
      "events:TagResource",
      "events:UntagResource",
      # The order events' bus and its optional archive.
      "events:CreateEventBus",
      "events:UpdateEventBus",
      "events:DeleteEventBus",
      "events:CreateArchive",
      "events:UpdateArchive",
      "events:DeleteArchive",
    ]
    resources = [
      local.arn[each.key].lambda_function,
      local.arn[each.key].lambda_esm,
      local.arn[each.key].state_machine,
      local.arn[each.key].sfn_execution,
      local.arn[each.key].sqs,
      local.arn[each.key].dynamodb,
      "${local.arn[each.key].dynamodb}/*",
      local.arn[each.key].sns,
      local.arn[each.key].alarm,
      local.arn[each.key].dashboard,
      local.arn[each.key].log_group,
      "${local.arn[each.key].log_group}:*",
      local.arn[each.key].apigw_exec_logs,
      "${local.arn[each.key].apigw_exec_logs}:*",
      local.arn[each.key].events_rule,
      local.arn[each.key].events_bus,
      local.arn[each.key].events_archive,
    ]
  }

  # Event source mappings are created before they have an ARN; CreateEventSourceMapping
  # is authorised on the function it points at, but needs "*" in the mapping's stead.
  statement {
    sid       = "CreateEventSourceMappings"
    actions   = ["lambda:CreateEventSourceMapping"]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "lambda:FunctionArn"
      values   = [local.arn[each.key].lambda_function]
    }
  }

  statement {
    sid       = "ManageApiGateway"
    actions   = ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE", "apigateway:UpdateRestApiPolicy"]
    resources = [local.arn[each.key].apigateway]
  }

  # The alarm topic's email subscription: Subscribe is authorised on the topic (above),
  # but a subscription is no IAM resource type, so changing or removing one is authorised
  # on "*" only.
  statement {
    sid       = "ManageTopicSubscriptions"
    actions   = ["sns:SetSubscriptionAttributes", "sns:Unsubscribe"]
    resources = ["*"]
  }

  # Step Functions and API Gateway access logging go through CloudWatch Logs "log
  # deliveries", which IAM only authorises on "*".
  statement {
    sid = "VendedLogDeliveries"
    actions = [
      "logs:CreateLogDelivery",
      "logs:UpdateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:PutResourcePolicy",
    ]
    resources = ["*"]
  }

  statement {
    sid = "ManageEnvironmentRoles"
    actions = [
      "iam:CreateRole",
      "iam:DeleteRole",
      "iam:UpdateRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:PutRolePolicy",
      "iam:DeleteRolePolicy",
      "iam:PutRolePermissionsBoundary",
    ]
    resources = [local.arn[each.key].iam_role]

    dynamic "condition" {
      for_each = var.role_permissions_boundary_arn == null ? [] : [1]
      content {
        test     = "StringEquals"
        variable = "iam:PermissionsBoundary"
        values   = [var.role_permissions_boundary_arn]
      }
    }
  }

  statement {
    sid       = "AttachOnlyKnownPolicies"
    actions   = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
    resources = [local.arn[each.key].iam_role]
    condition {
      test     = "ArnLike"
      variable = "iam:PolicyARN"
      values = [
        local.arn[each.key].iam_policy,
        "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:${local.partition}:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
        "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess",
        "arn:${local.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
      ]
    }
  }

  statement {
    sid = "ManageEnvironmentPolicies"
    actions = [
      "iam:CreatePolicy",
      "iam:DeletePolicy",
      "iam:CreatePolicyVersion",
      "iam:DeletePolicyVersion",
      "iam:SetDefaultPolicyVersion",
      "iam:TagPolicy",
      "iam:UntagPolicy",
    ]
    resources = [local.arn[each.key].iam_policy]
  }

  statement {
    sid       = "PassEnvironmentRoles"
    actions   = ["iam:PassRole"]
    resources = [local.arn[each.key].iam_role]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["lambda.amazonaws.com", "states.amazonaws.com", "apigateway.amazonaws.com"]
    }
  }

  statement {
    sid       = "CreateTaggedKeys"
    actions   = ["kms:CreateKey", "kms:TagResource"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/Environment"
      values   = [each.key]
    }
  }

  statement {
    sid = "ManageTaggedKeys"
    actions = [
      "kms:EnableKeyRotation",
      "kms:PutKeyPolicy",
      "kms:ScheduleKeyDeletion",
      "kms:UpdateKeyDescription",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:CreateAlias",
      "kms:DeleteAlias",
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:GenerateDataKey*",
      "kms:CreateGrant",
    ]
    resources = [local.arn[each.key].kms_key]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/Environment"
      values   = [each.key]
    }
  }

  statement {
    sid       = "ManageEnvironmentAliases"
    actions   = ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"]
    resources = [local.arn[each.key].kms_alias, local.arn[each.key].kms_aliases]
  }
}

resource "aws_iam_policy" "deploy" {
  for_each    = local.environments
  name        = "${local.prefix}-cicd-${each.key}-deploy"
  description = "Create, change and delete ${each.key}'s resources and write its Terraform state (terraform apply)."
  policy      = data.aws_iam_policy_document.deploy[each.key].json
  tags        = local.tags
}
