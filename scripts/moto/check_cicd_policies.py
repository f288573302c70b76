#!/usr/bin/env python3
"""Do the CI/CD roles' policies allow what an environment's plan creates?

An apply to moto proves nothing about the rights of the CI/CD roles: it runs with moto's
IAM enforcement off, and that enforcement (INITIAL_NO_AUTH_ACTION_COUNT) knows
actions but not, for most services, the resource of a request (README, "What is checked
here"). This check reads

  --cicd-state  `terraform show -json` of the applied terraform/cicd root (its
                aws_iam_policy resources: <prefix>-cicd-<env>-plan and -deploy)
  --env-plan    `terraform show -json <tfplan>` of an environment root

and, for every resource the environment's plan creates, derives the IAM actions that
`terraform apply` calls on it (deploy policy) and that the next `terraform plan` calls to
read it back (plan policy; the deploy roles carry both), on the ARN the resource will have
(or on "*" where IAM has no resource type for the action, such as kms:CreateKey or
sns:GetSubscriptionAttributes). Each must be allowed by an Allow statement of the policy
whose Action and Resource patterns match and whose conditions hold: the keys known at plan
time are evaluated (aws:RequestTag/* and aws:ResourceTag/* from the resource's tags_all,
lambda:FunctionArn, iam:PolicyARN); a condition on any other key is taken as holding and
reported.

A resource type without a rule here is a failure: the CI/CD roles must be able to create
every resource type the stack has, so a new type needs a rule (and, likely, a grant in
terraform/cicd/policies.tf).

Exit 1 and one line per missing right or unchecked type.
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


def condition_holds(cond, context):
    """False when a condition on a key in context fails; True otherwise (keys not in the
    context cannot be known at plan time and are taken as holding)."""
    for op, tests in (cond or {}).items():
        base = op.split(":")[-1].removesuffix("IfExists")
        for key, wanted in tests.items():
            if key not in context:
                continue
            have, wanted = str(context[key]), [str(w) for w in as_list(wanted)]
            if base in ("StringEquals", "ArnEquals"):
                ok = have in wanted
            elif base in ("StringLike", "ArnLike"):
                ok = any(fnmatch.fnmatchcase(have, w) for w in wanted)
            elif base in ("StringNotEquals",):
                ok = have not in wanted
            else:
                continue
            if not ok:
                return False
    return True


def allowed(doc, action, arn, context=None):
    """The first Allow statement granting action on arn (its Sid), or None."""
    for st in statements(doc):
        if st.get("Effect") != "Allow" or "Action" not in st:
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(st["Action"])):
            continue
        if not any(fnmatch.fnmatchcase(arn, r) for r in as_list(st.get("Resource", []))):
            continue
        if not condition_holds(st.get("Condition"), context or {}):
            continue
        unknown = [k for tests in (st.get("Condition") or {}).values() for k in tests if k not in (context or {})]
        return st.get("Sid", "?") + (f" (conditional on {', '.join(unknown)})" if unknown else "")
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

    # Attributes unknown at plan (a role's id, a topic's or queue's ARN): a resource of that
    # type planned in the same module stands in (every one is named after the environment).
    by_module = {}
    for rc in plan.get("resource_changes", []):
        after = rc["change"].get("after") or {}
        key = (rc["type"], rc.get("module_address", ""))
        if rc["type"] == "aws_lambda_function" and after.get("function_name"):
            by_module.setdefault(key, after["function_name"])
        elif after.get("name"):
            by_module.setdefault(key, after["name"])
    roles_by_module = {m: n for (t, m), n in by_module.items() if t == "aws_iam_role"}

    def in_module(type_, module):
        return by_module.get((type_, module), "?")

    def rule(type_, after, module):
        """(arn, deploy actions, plan actions) for a planned resource, or None. An action may
        be (action, arn) when IAM authorises it on another resource than the rule's ARN
        ("*" where the action has no resource type)."""
        name = after.get("name")
        if type_ == "terraform_data":
            return "", [], []  # no AWS call
        if type_ == "aws_kms_key":
            # CreateKey has no resource; the key's id is unknown until it exists.
            return f"arn:{part}:kms:{region}:{account}:key/00000000-0000-0000-0000-000000000000", [("kms:CreateKey", "*"), "kms:EnableKeyRotation", "kms:PutKeyPolicy", "kms:TagResource", "kms:ScheduleKeyDeletion"], ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"]
        if type_ == "aws_lambda_event_source_mapping":
            # CreateEventSourceMapping has no resource (lambda:FunctionArn says which function).
            return f"arn:{part}:lambda:{region}:{account}:event-source-mapping:00000000-0000-0000-0000-000000000000", [("lambda:CreateEventSourceMapping", "*"), "lambda:UpdateEventSourceMapping", "lambda:DeleteEventSourceMapping"], ["lambda:GetEventSourceMapping"]
        if type_ == "aws_sns_topic_policy":
            return f"arn:{part}:sns:{region}:{account}:{in_module('aws_sns_topic', module)}", ["sns:SetTopicAttributes"], ["sns:GetTopicAttributes"]
        if type_ == "aws_sns_topic_subscription":
            # A subscription is no IAM resource type: only Subscribe names the topic.
            topic = after.get("topic_arn") or f"arn:{part}:sns:{region}:{account}:{in_module('aws_sns_topic', module)}"
            return topic, ["sns:Subscribe", ("sns:Unsubscribe", "*"), ("sns:SetSubscriptionAttributes", "*")], [("sns:GetSubscriptionAttributes", "*")]
        if type_ == "aws_sqs_queue_redrive_allow_policy":
            return f"arn:{part}:sqs:{region}:{account}:{in_module('aws_sqs_queue', module)}", ["sqs:SetQueueAttributes"], ["sqs:GetQueueAttributes"]
        if type_ == "aws_iam_role_policy_attachment":
            role = after.get("role") or roles_by_module.get(module, "?")
            return f"arn:{part}:iam::{account}:role/{role}", ["iam:AttachRolePolicy", "iam:DetachRolePolicy"], ["iam:ListAttachedRolePolicies"]
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

    problems, checked, unchecked, types = [], 0, set(), set()
    conditional = set()
    for rc in plan.get("resource_changes", []):
        if rc.get("mode") != "managed" or "create" not in rc["change"]["actions"]:
            continue
        after = rc["change"].get("after") or {}
        module = rc.get("module_address", "")
        r = rule(rc["type"], after, module)
        if r is None:
            unchecked.add(rc["type"])
            continue
        types.add(rc["type"])
        arn, deploy, read = r
        # The condition keys known at plan time.
        context = {}
        for k, v in (after.get("tags_all") or after.get("tags") or {}).items():
            context[f"aws:RequestTag/{k}"] = v
            context[f"aws:ResourceTag/{k}"] = v
        if rc["type"] == "aws_lambda_event_source_mapping":
            context["lambda:FunctionArn"] = f"arn:{part}:lambda:{region}:{account}:function:{in_module('aws_lambda_function', module)}"
        if rc["type"] == "aws_iam_role_policy_attachment" and after.get("policy_arn"):
            context["iam:PolicyARN"] = after["policy_arn"]
        for kind, actions in (("deploy", deploy), ("plan", read)):
            for action in actions:
                action, target = action if isinstance(action, tuple) else (action, arn)
                checked += 1
                # The deploy roles carry the plan policy too (terraform apply also reads).
                docs = [policies["plan"]] + ([policies["deploy"]] if kind == "deploy" else [])
                grants = [g for g in (allowed(doc, action, target, context) for doc in docs) if g]
                if not grants:
                    problems.append(f"{args.env} {kind} role: {action} on {target} is not allowed ({rc['address']})")
                elif all("conditional on" in g for g in grants):
                    conditional.add(f"{action} ({grants[0]})")
    for p in problems:
        print("MISSING: " + p)
    for t in sorted(unchecked):
        print(f"UNCHECKED: {t}: no rule in scripts/moto/check_cicd_policies.py says which rights terraform needs for it; add one (and the grants to terraform/cicd/policies.tf)")
    if args.keep:
        for src in (args.cicd_state, args.env_plan):
            shutil.copy(src, args.keep)
    for c in sorted(conditional):
        print(f"granted under a condition not known at plan time: {c}")
    print(f"{checked} rights of {len(types)} resource types checked against the {args.env} plan and deploy policies, {len(problems)} missing, {len(unchecked)} types without a rule")
    return 1 if problems or unchecked else 0


if __name__ == "__main__":
    sys.exit(main())
