#!/usr/bin/env python3
"""Do the CI/CD roles' policies allow what an environment's plan creates?

IAM is not enforced by moto, so an apply there proves nothing about the rights of the
CI/CD roles. This check reads

  --cicd-state  `terraform show -json` of the applied terraform/cicd root (its
                aws_iam_policy resources: <prefix>-cicd-<env>-plan and -deploy)
  --env-plan    `terraform show -json <tfplan>` of an environment root

and, for every resource the environment's plan creates, derives the IAM actions that
`terraform apply` calls on it (deploy policy) and that the next `terraform plan` calls to
read it back (plan policy; the deploy roles carry both), on the ARN the resource will have. Each must be allowed by
an Allow statement of the policy whose Action and Resource patterns match (conditions
are not evaluated; the statement is reported as conditional). Resource types without a
rule here are listed as not checked.

Exit 1 and one line per missing right when something is not allowed.
"""

import argparse
import fnmatch
import json
import shutil
import sys


def statements(doc):
    st = doc.get("Statement", [])
    return st if isinstance(st, list) else [st]


def as_list(v):
    return v if isinstance(v, list) else [v]


def allowed(doc, action, arn):
    """The first Allow statement granting action on arn (its Sid), or None."""
    for st in statements(doc):
        if st.get("Effect") != "Allow" or "Action" not in st:
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(st["Action"])):
            continue
        if any(fnmatch.fnmatchcase(arn, r) for r in as_list(st.get("Resource", []))):
            return st.get("Sid", "?") + (" (conditional)" if st.get("Condition") else "")
    return None


def state_resources(module):
    for r in module.get("resources", []):
        yield r
    for child in module.get("child_modules", []):
        yield from state_resources(child)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cicd-state", required=True)
    ap.add_argument("--env-plan", required=True)
    ap.add_argument("--env", required=True, help="environment name (dev, staging, prod): also the API stage")
    ap.add_argument("--keep", help="copy both JSON files into this directory")
    args = ap.parse_args()

    state = json.load(open(args.cicd_state))
    plan = json.load(open(args.env_plan))
    policies = {}
    account = None
    for r in state_resources(state.get("values", {}).get("root_module", {})):
        if r["type"] != "aws_iam_policy":
            continue
        name = r["values"]["name"]
        for kind in ("plan", "deploy"):
            if name.endswith(f"-cicd-{args.env}-{kind}"):
                policies[kind] = json.loads(r["values"]["policy"])
                account = r["values"]["arn"].split(":")[4]
    missing_policies = {"plan", "deploy"} - set(policies)
    if missing_policies:
        print(f"no {', '.join(sorted(missing_policies))} policy for {args.env} in {args.cicd_state}")
        return 1

    region = None
    for p in (plan.get("configuration", {}).get("provider_config", {}) or {}).values():
        region = (p.get("expressions", {}).get("region", {}) or {}).get("constant_value") or region
    region = region or "us-east-1"
    part = "aws"

    roles_by_module = {}
    for rc in plan.get("resource_changes", []):
        name = (rc["change"].get("after") or {}).get("name")
        if rc["type"] == "aws_iam_role" and name:
            roles_by_module.setdefault(rc.get("module_address", ""), name)

    def rule(type_, after, module):
        """(arn, deploy actions, plan actions) for a planned resource, or None."""
        name = after.get("name")
        if type_ == "aws_cloudwatch_event_rule":
            return f"arn:{part}:events:{region}:{account}:rule/{name}", ["events:PutRule", "events:DeleteRule", "events:TagResource"], ["events:DescribeRule", "events:ListTagsForResource"]
        if type_ == "aws_cloudwatch_event_bus":
            return f"arn:{part}:events:{region}:{account}:event-bus/{name}", ["events:CreateEventBus", "events:DeleteEventBus", "events:TagResource"], ["events:DescribeEventBus", "events:ListTagsForResource"]
        if type_ == "aws_cloudwatch_event_archive":
            return f"arn:{part}:events:{region}:{account}:archive/{name}", ["events:CreateArchive", "events:UpdateArchive", "events:DeleteArchive"], ["events:DescribeArchive"]
        if type_ == "aws_cloudwatch_event_target":
            return f"arn:{part}:events:{region}:{account}:rule/{after.get('rule')}", ["events:PutTargets", "events:RemoveTargets"], ["events:ListTargetsByRule"]
        if type_ == "aws_kms_alias":
            return f"arn:{part}:kms:{region}:{account}:{name}", ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"], []
        if type_ == "aws_cloudwatch_log_group":
            if name is None:  # API Gateway's execution log group: named by the API's id
                name = f"API-Gateway-Execution-Logs_abcdef1234/{args.env}"
            return f"arn:{part}:logs:{region}:{account}:log-group:{name}", ["logs:CreateLogGroup", "logs:PutRetentionPolicy", "logs:AssociateKmsKey", "logs:DeleteLogGroup"], ["logs:ListTagsForResource"]
        if type_ == "aws_lambda_function":
            return f"arn:{part}:lambda:{region}:{account}:function:{after.get('function_name')}", ["lambda:CreateFunction", "lambda:UpdateFunctionCode", "lambda:PutFunctionConcurrency"], ["lambda:GetFunction"]
        if type_ == "aws_lambda_function_event_invoke_config":
            return f"arn:{part}:lambda:{region}:{account}:function:{after.get('function_name')}", ["lambda:PutFunctionEventInvokeConfig", "lambda:DeleteFunctionEventInvokeConfig"], ["lambda:GetFunctionEventInvokeConfig"]
        if type_ == "aws_lambda_permission":
            return f"arn:{part}:lambda:{region}:{account}:function:{after.get('function_name')}", ["lambda:AddPermission", "lambda:RemovePermission"], ["lambda:GetPolicy"]
        if type_ == "aws_sqs_queue":
            return f"arn:{part}:sqs:{region}:{account}:{name}", ["sqs:CreateQueue", "sqs:SetQueueAttributes", "sqs:DeleteQueue"], ["sqs:GetQueueAttributes"]
        if type_ == "aws_dynamodb_table":
            return f"arn:{part}:dynamodb:{region}:{account}:table/{name}", ["dynamodb:CreateTable", "dynamodb:DeleteTable"], ["dynamodb:DescribeTable"]
        if type_ == "aws_sfn_state_machine":
            return f"arn:{part}:states:{region}:{account}:stateMachine:{name}", ["states:CreateStateMachine", "states:DeleteStateMachine"], ["states:DescribeStateMachine"]
        if type_ == "aws_iam_role":
            return f"arn:{part}:iam::{account}:role/{name}", ["iam:CreateRole", "iam:DeleteRole"], ["iam:GetRole"]
        if type_ == "aws_iam_role_policy":
            # The role is often another resource's id, unknown at plan: use a role
            # planned in the same module (every role is named after the environment).
            role = after.get("role") or roles_by_module.get(module, "?")
            return f"arn:{part}:iam::{account}:role/{role}", ["iam:PutRolePolicy", "iam:DeleteRolePolicy"], ["iam:GetRolePolicy"]
        if type_ == "aws_sns_topic":
            return f"arn:{part}:sns:{region}:{account}:{name}", ["sns:CreateTopic", "sns:DeleteTopic"], ["sns:GetTopicAttributes"]
        if type_ == "aws_cloudwatch_metric_alarm":
            return f"arn:{part}:cloudwatch:{region}:{account}:alarm:{after.get('alarm_name')}", ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"], ["cloudwatch:DescribeAlarms"]
        if type_ == "aws_cloudwatch_dashboard":
            return f"arn:{part}:cloudwatch::{account}:dashboard/{after.get('dashboard_name')}", ["cloudwatch:PutDashboard", "cloudwatch:DeleteDashboards"], ["cloudwatch:GetDashboard"]
        if type_ == "aws_api_gateway_account":
            return f"arn:{part}:apigateway:{region}::/account", ["apigateway:PATCH"], ["apigateway:GET"]
        if type_.startswith("aws_api_gateway_"):
            return f"arn:{part}:apigateway:{region}::/restapis/abcdef1234", ["apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE"], ["apigateway:GET"]
        return None

    problems, checked, unchecked = [], 0, set()
    for rc in plan.get("resource_changes", []):
        if rc.get("mode") != "managed" or "create" not in rc["change"]["actions"]:
            continue
        after = rc["change"].get("after") or {}
        r = rule(rc["type"], after, rc.get("module_address", ""))
        if r is None:
            unchecked.add(rc["type"])
            continue
        arn, deploy, read = r
        for kind, actions in (("deploy", deploy), ("plan", read)):
            for action in actions:
                checked += 1
                # The deploy roles carry the plan policy too (terraform apply also reads).
                docs = [policies["plan"]] + ([policies["deploy"]] if kind == "deploy" else [])
                if not any(allowed(doc, action, arn) for doc in docs):
                    problems.append(f"{args.env} {kind} role: {action} on {arn} is not allowed ({rc['address']})")
    for p in problems:
        print("MISSING: " + p)
    if args.keep:
        for src in (args.cicd_state, args.env_plan):
            shutil.copy(src, args.keep)
    if unchecked:
        print("not checked (no rule for these types): " + ", ".join(sorted(unchecked)))
    print(f"{checked} rights checked against the {args.env} plan and deploy policies, {len(problems)} missing")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
