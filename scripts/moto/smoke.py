#!/usr/bin/env python3
"""Smoke checks of a DOFS environment through the AWS SDK (boto3), for the emulator test.

    smoke.py deployed  --outputs outputs.json --asl workflow/order-processing.asl.json [--artifacts DIR]
    smoke.py destroyed [--state-bucket B --lock-table T]

Uses AWS_ENDPOINT_URL, AWS_REGION, PROJECT_NAME and ENVIRONMENT from the environment.
`deployed` checks what `terraform apply` made (tables, queues and redrive policy, the
state machine's definition against the ASL file with the ARNs substituted, the Lambdas,
the API, alarms) and runs one workflow execution. With --artifacts, each function's code
as Lambda's GetFunction reports it (CodeSha256, CodeSize) must be DIR/<function>/bootstrap.zip. `destroyed` lists every kind of
resource the stack makes and fails if anything with the environment's prefix is left.
Prints one line per check; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
import time
from typing import Any, Callable

import boto3

FUNCTIONS = ["api_handler", "validator", "order_storage", "fulfill_order", "dlq_processor"]
COMMON_ENV = [
    "DOFS_ENVIRONMENT",
    "DOFS_ORDERS_TABLE",
    "DOFS_FAILED_ORDERS_TABLE",
    "DOFS_IDEMPOTENCY_TABLE",
    "DOFS_ORDERS_QUEUE_URL",
    "DOFS_DLQ_URL",
    "DOFS_EVENTS_TABLE",
    "DOFS_EVENTS_MAX_AGE_S",
    "DOFS_EVENTS_BUS_NAME",
    "DOFS_FULFILLMENT_SUCCESS_RATE",
    "DOFS_QUEUE_MAX_RECEIVE_COUNT",
    "DOFS_METRICS_NAMESPACE",
]
ROUTES = [
    ("POST", "/order"), ("POST", "/orders"), ("GET", "/orders"), ("GET", "/orders/{orderId}"),
    ("POST", "/orders/{orderId}/retry"), ("POST", "/orders/{orderId}/cancel"), ("GET", "/events"),
    ("GET", "/failed-orders"), ("GET", "/dlq"),
    ("POST", "/dlq/redrive"), ("POST", "/dlq/purge"), ("GET", "/executions/{executionId}"),
    ("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/alerts"),
    ("GET", "/openapi.json"),
]


class Checker:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        try:
            detail = fn()
        except Exception as err:  # noqa: BLE001 - report every failure, keep going
            self.failed += 1
            print(f"  FAIL {name}: {type(err).__name__}: {err}")
            return None
        self.passed += 1
        print(f"  ok   {name}" + (f" ({detail})" if isinstance(detail, str) and detail else ""))
        return detail


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


def client(service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )


def prefix() -> str:
    return f"{os.environ.get('PROJECT_NAME', 'dofs')}-{os.environ.get('ENVIRONMENT', 'dev')}"


def output_value(outputs: dict[str, Any], name: str) -> Any:
    return outputs[name]["value"]


# --------------------------------------------------------------------------------------
# deployed


def check_deployed(args: argparse.Namespace) -> Checker:
    c = Checker()
    with open(args.outputs, encoding="utf-8") as fh:
        outputs = json.load(fh)
    env = os.environ.get("ENVIRONMENT", "dev")
    ddb, sqs, sfn, lam = client("dynamodb"), client("sqs"), client("stepfunctions"), client("lambda")
    apigw, cw, events = client("apigateway"), client("cloudwatch"), client("events")

    print("DynamoDB")
    tables = {
        "orders": output_value(outputs, "orders_table_name"),
        "failed_orders": output_value(outputs, "failed_orders_table_name"),
        "idempotency": output_value(outputs, "idempotency_table_name"),
        "order_events": output_value(outputs, "order_events_table_name"),
    }
    expected_keys = {"orders": "orderId", "failed_orders": "orderId", "idempotency": "idempotencyKey", "order_events": "feed"}
    expected_gsis = {
        "orders": {"status-createdAt", "all-createdAt"},
        "failed_orders": {"all-failedAt"},
        "idempotency": set(),
        "order_events": {"unpublished-eventId", "order-eventId"},
    }

    def table_ok(kind: str) -> str:
        t = ddb.describe_table(TableName=tables[kind])["Table"]
        hash_key = [k["AttributeName"] for k in t["KeySchema"] if k["KeyType"] == "HASH"]
        expect(hash_key == [expected_keys[kind]], f"hash key {hash_key}")
        gsis = {g["IndexName"] for g in t.get("GlobalSecondaryIndexes", [])}
        expect(gsis == expected_gsis[kind], f"GSIs {gsis}")
        expect(t.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", "not on-demand")
        expect(t.get("SSEDescription", {}).get("Status") in ("ENABLED", "ENABLING"), "not encrypted")
        return f"{tables[kind]}, key {hash_key[0]}, GSIs {sorted(gsis) or 'none'}"

    for kind in tables:
        c.check(f"table {kind}", lambda kind=kind: table_ok(kind))

    def ttl_ok(kind: str) -> str:
        ttl = ddb.describe_time_to_live(TableName=tables[kind])["TimeToLiveDescription"]
        expect(ttl.get("AttributeName") == "expiresAt" and ttl.get("TimeToLiveStatus") == "ENABLED", str(ttl))
        return "expiresAt"

    for kind in ("idempotency", "order_events"):
        c.check(f"{kind} TTL", lambda kind=kind: ttl_ok(kind))

    def events_range_key_ok() -> str:
        t = ddb.describe_table(TableName=tables["order_events"])["Table"]
        range_key = [k["AttributeName"] for k in t["KeySchema"] if k["KeyType"] == "RANGE"]
        expect(range_key == ["eventId"], f"range key {range_key}")
        return "feed + eventId"

    c.check("order_events key", events_range_key_ok)

    print("EventBridge")

    def bus_ok() -> str:
        name = output_value(outputs, "events_bus_name")
        bus = events.describe_event_bus(Name=name)
        expect(bus.get("Name") == name, str(bus))
        archive = output_value(outputs, "events_archive_arn")
        if archive:
            a = events.describe_archive(ArchiveName=archive.rsplit("/", 1)[-1])
            expect(a.get("EventSourceArn") == bus.get("Arn"), f"archive of {a.get('EventSourceArn')}")
            return f"{name}, archive {a.get('ArchiveName')} ({a.get('RetentionDays')} days)"
        return f"{name}, no archive"

    c.check("order events bus", bus_ok)

    def pitr_matches_env() -> str:
        pitr = ddb.describe_continuous_backups(TableName=tables["orders"])["ContinuousBackupsDescription"]
        status = pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
        want = "DISABLED" if env == "dev" else "ENABLED"
        expect(status == want, f"PITR {status}, expected {want} in {env}")
        return f"PITR {status} in {env}"

    c.check("point-in-time recovery per environment", pitr_matches_env)

    print("SQS")
    orders_url = output_value(outputs, "orders_queue_url")
    dlq_url = output_value(outputs, "dlq_url")

    def attrs(url: str) -> dict[str, str]:
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    def redrive_ok() -> str:
        a, d = attrs(orders_url), attrs(dlq_url)
        policy = json.loads(a["RedrivePolicy"])
        # 3 attempts + a redrive margin of 5: throttled deliveries are received, not attempts.
        expect(int(policy["maxReceiveCount"]) == 8, f"maxReceiveCount {policy['maxReceiveCount']}")
        expect(policy["deadLetterTargetArn"] == d["QueueArn"], "redrive target is not the DLQ")
        return f"maxReceiveCount 8 (3 attempts + 5) -> {d['QueueArn'].rsplit(':', 1)[-1]}"

    def retention_ok() -> str:
        a, d = attrs(orders_url), attrs(dlq_url)
        expect(int(d["MessageRetentionPeriod"]) > int(a["MessageRetentionPeriod"]), "DLQ retention not longer")
        return f"DLQ {d['MessageRetentionPeriod']} s > queue {a['MessageRetentionPeriod']} s"

    def visibility_ok() -> str:
        timeout = lam.get_function_configuration(FunctionName=f"{prefix()}-fulfill-order")["Timeout"]
        vis = int(attrs(orders_url)["VisibilityTimeout"])
        expect(vis >= 6 * timeout, f"visibility {vis} < 6 x {timeout}")
        return f"visibility {vis} s >= 6 x fulfill_order timeout {timeout} s"

    def encrypted_ok() -> str:
        expect(bool(attrs(orders_url).get("KmsMasterKeyId")) and bool(attrs(dlq_url).get("KmsMasterKeyId")), "no KMS key")
        return "KMS"

    c.check("redrive policy", redrive_ok)
    c.check("DLQ retention longer than the queue's", retention_ok)
    c.check("visibility timeout", visibility_ok)
    c.check("queues encrypted", encrypted_ok)

    print("Lambda")
    arns: dict[str, str] = {}

    def function_ok(name: str) -> str:
        fn_name = f"{prefix()}-{name.replace('_', '-')}"
        cfg = lam.get_function_configuration(FunctionName=fn_name)
        arns[name] = cfg["FunctionArn"]
        expect(cfg["Runtime"] == "provided.al2023" and cfg["Handler"] == "bootstrap", "runtime/handler")
        variables = cfg.get("Environment", {}).get("Variables", {})
        missing = [k for k in COMMON_ENV if k not in variables]
        expect(not missing, f"missing env {missing}")
        expect(variables["DOFS_ENVIRONMENT"] == env, "DOFS_ENVIRONMENT")
        expect(variables["DOFS_FULFILLMENT_SUCCESS_RATE"] == "0.7", "success rate")
        has_sm = "DOFS_STATE_MACHINE_ARN" in variables
        expect(has_sm == (name == "api_handler"), "only api_handler gets DOFS_STATE_MACHINE_ARN")
        if has_sm:
            expect(variables["DOFS_STATE_MACHINE_ARN"] == output_value(outputs, "state_machine_arn"), "state machine ARN")
        expect(cfg.get("TracingConfig", {}).get("Mode") == "Active", "X-Ray off")
        if not args.artifacts:
            return fn_name
        # The code Lambda holds is the zip that was built, byte for byte.
        zip_path = os.path.join(args.artifacts, name, "bootstrap.zip")
        with open(zip_path, "rb") as fh:
            data = fh.read()
        built = base64.b64encode(hashlib.sha256(data).digest()).decode()
        deployed = lam.get_function(FunctionName=fn_name)["Configuration"]
        expect(deployed["CodeSha256"] == built, f"CodeSha256 {deployed['CodeSha256']} is not {zip_path}'s {built}")
        expect(deployed["CodeSize"] == len(data), f"CodeSize {deployed['CodeSize']} is not {len(data)}")
        return f"{fn_name}, CodeSha256 {built} = {zip_path}, {len(data)} bytes"

    for name in FUNCTIONS:
        c.check(f"function {name}", lambda name=name: function_ok(name))

    def roles_distinct() -> str:
        roles = {lam.get_function_configuration(FunctionName=f"{prefix()}-{n.replace('_', '-')}")["Role"] for n in FUNCTIONS}
        expect(len(roles) == len(FUNCTIONS), "functions share roles")
        return "one role per function"

    c.check("IAM roles", roles_distinct)

    def mappings_ok() -> str:
        maps = lam.list_event_source_mappings()["EventSourceMappings"]
        ours = [m for m in maps if m["FunctionArn"].split(":function:")[-1].startswith(prefix())]
        fulfill = [m for m in ours if m["FunctionArn"].endswith("-fulfill-order")]
        expect(len(fulfill) == 1, f"{len(fulfill)} mappings for fulfill_order")
        expect(fulfill[0]["EventSourceArn"] == attrs(orders_url)["QueueArn"], "fulfill_order not on the orders queue")
        expect("ReportBatchItemFailures" in fulfill[0].get("FunctionResponseTypes", []), "no ReportBatchItemFailures")
        dlq_arn = attrs(dlq_url)["QueueArn"]
        expect(not [m for m in ours if m["EventSourceArn"] == dlq_arn], "an event source mapping would delete dead letters")
        return "fulfill_order <- orders queue (ReportBatchItemFailures); none on the DLQ"

    c.check("event source mappings", mappings_ok)

    def schedule_ok() -> str:
        rule = events.describe_rule(Name=f"{prefix()}-dlq-processor")
        targets = events.list_targets_by_rule(Rule=f"{prefix()}-dlq-processor")["Targets"]
        expect(any(t["Arn"].endswith("-dlq-processor") for t in targets), "no dlq_processor target")
        return rule["ScheduleExpression"]

    c.check("dlq_processor schedule", schedule_ok)

    print("Step Functions")
    sm_arn = output_value(outputs, "state_machine_arn")

    def definition_ok() -> str:
        sm = sfn.describe_state_machine(stateMachineArn=sm_arn)
        with open(args.asl, encoding="utf-8") as fh:
            template = fh.read()
        rendered = (
            template.replace("${validator_arn}", arns.get("validator", ""))
            .replace("${order_storage_arn}", arns.get("order_storage", ""))
            .replace("${orders_queue_url}", orders_url)
        )
        expect(json.loads(sm["definition"]) == json.loads(rendered), "definition differs from the ASL file")
        expect(sm.get("type", "STANDARD") == "STANDARD", f"type {sm.get('type')}")
        return f"{sm['name']}: definition == ASL file with ARNs substituted"

    c.check("state machine definition", definition_ok)

    def execution_ok() -> str:
        order = {"orderId": "smoke-0001", "customerId": "CUST-1001", "productId": "PROD-2001", "quantity": 1, "price": 9.99}
        started = sfn.start_execution(stateMachineArn=sm_arn, name="smoke-0001", input=json.dumps({"order": order}))
        arn = started["executionArn"]
        status = "RUNNING"
        deadline = time.time() + 30
        while time.time() < deadline:
            status = sfn.describe_execution(executionArn=arn)["status"]
            if status != "RUNNING":
                break
            time.sleep(0.5)
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        if status != "SUCCEEDED":
            failures = [e for e in history if e["type"].endswith("Failed")]
            raise AssertionError(f"execution {status}: {failures[:2]}")
        entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
        expect(entered == ["Validate Order", "Store Order", "Queue For Fulfillment", "Order Queued"], f"states {entered}")
        # The message itself is consumed at once by fulfill_order's event source mapping
        # (moto runs it), so the proof it was sent is the SQS task's result.
        sent = [
            json.loads(e["taskSucceededEventDetails"]["output"])
            for e in history
            if e["type"] == "TaskSucceeded" and e["taskSucceededEventDetails"].get("resourceType") == "sqs"
        ]
        expect(len(sent) == 1 and sent[0].get("MessageId"), f"no SQS SendMessage result: {sent}")
        return "SUCCEEDED: Validate Order -> Store Order -> Queue For Fulfillment (SQS MessageId) -> Order Queued"

    c.check("workflow execution", execution_ok)

    print("API Gateway")
    api_id = [a for a in apigw.get_rest_apis()["items"] if a["name"] == f"{prefix()}-api"]

    def api_ok() -> str:
        expect(len(api_id) == 1, f"{len(api_id)} APIs named {prefix()}-api")
        rid = api_id[0]["id"]
        resources = apigw.get_resources(restApiId=rid, limit=500)["items"]
        have = {(m, r["path"]) for r in resources for m in r.get("resourceMethods", {})}
        missing = [f"{m} {p}" for m, p in ROUTES if (m, p) not in have]
        expect(not missing, f"missing routes {missing}")
        stages = [s["stageName"] for s in apigw.get_stages(restApiId=rid)["item"]]
        expect(env in stages, f"stages {stages}")
        return f"{len(ROUTES)} routes + ANY /{{proxy+}}, stage {env}"

    def keys_ok() -> str:
        keys = [k for k in apigw.get_api_keys()["items"] if k["name"].startswith(f"{prefix()}-api")]
        plans = [p for p in apigw.get_usage_plans()["items"] if p["name"].startswith(f"{prefix()}-api")]
        expect(keys and plans, "no API keys or usage plan")
        return f"{len(keys)} keys, usage plan {plans[0]['name']}"

    c.check("routes and stage", api_ok)
    c.check("API keys and usage plan", keys_ok)

    print("Monitoring")

    def alarms_ok() -> str:
        alarms = cw.describe_alarms(AlarmNamePrefix=prefix())["MetricAlarms"]
        names = {a["AlarmName"]: a for a in alarms}
        dlq = names.get(f"{prefix()}-dlq-depth")
        expect(dlq is not None and dlq["Threshold"] == 5 and dlq["ComparisonOperator"] == "GreaterThanThreshold", "DLQ alarm")
        for needed in ("-api-5xx", "-workflow-failed-executions", "-orders-oldest-message-age", "-api-handler-errors"):
            expect(f"{prefix()}{needed}" in names, f"missing alarm {needed}")
        return f"{len(alarms)} alarms (DLQ depth > 5, Lambda errors, API 5XX, failed executions, oldest message age)"

    def dashboard_ok() -> str:
        body = json.loads(cw.get_dashboard(DashboardName=f"{prefix()}-orders")["DashboardBody"])
        titles = [w["properties"].get("title") for w in body["widgets"]]
        for t in ("Orders accepted and rejected per minute (orders by status: GET /metrics)",
                  "Accepted / fulfilled per second", "Fulfillment success ratio"):
            expect(t in titles, f"missing panel {t}")
        # The custom metrics the panels read are the ones the functions publish
        # (lambdas/src/metrics.rs): the Prometheus names, in the DOFS namespace.
        custom = {m[1] for w in body["widgets"] for m in w["properties"].get("metrics", [])
                  if len(m) > 1 and m[0] == "DOFS"}
        published = {"dofs_orders_accepted_total", "dofs_fulfillment_attempts_total",
                      "dofs_http_request_duration_seconds"}
        expect(custom == published, f"the dashboard reads {sorted(custom)}, the functions publish {sorted(published)}")
        return f"{len(titles)} panels, custom metrics {sorted(custom)}"

    c.check("alarms", alarms_ok)
    c.check("dashboard", dashboard_ok)
    return c


# --------------------------------------------------------------------------------------
# destroyed


def live_keys(kms: Any, p: str) -> list[str]:
    """The environment's KMS keys (by description) that are not scheduled for deletion."""
    left = []
    for key in kms.list_keys()["Keys"]:
        meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        if meta.get("Description", "").startswith(f"{p}:") and meta["KeyState"] not in ("PendingDeletion", "Disabled"):
            left.append(f"{key['KeyId']} ({meta['KeyState']})")
    return left


def check_destroyed(args: argparse.Namespace) -> Checker:
    c = Checker()
    p = prefix()
    ddb, sqs, sfn, lam = client("dynamodb"), client("sqs"), client("stepfunctions"), client("lambda")
    apigw, cw, events, logs = client("apigateway"), client("cloudwatch"), client("events"), client("logs")
    iam, sns, kms, s3 = client("iam"), client("sns"), client("kms"), client("s3")

    listings: list[tuple[str, Callable[[], list[str]]]] = [
        ("DynamoDB tables", lambda: [t for t in ddb.list_tables()["TableNames"] if t.startswith(p) and t != args.lock_table]),
        ("SQS queues", lambda: sqs.list_queues(QueueNamePrefix=p).get("QueueUrls", [])),
        ("state machines", lambda: [m["name"] for m in sfn.list_state_machines()["stateMachines"] if m["name"].startswith(p)]),
        ("Lambda functions", lambda: [f["FunctionName"] for f in lam.list_functions()["Functions"] if f["FunctionName"].startswith(p)]),
        ("event source mappings", lambda: [m["UUID"] for m in lam.list_event_source_mappings()["EventSourceMappings"] if f":function:{p}" in m["FunctionArn"]]),
        ("REST APIs", lambda: [a["name"] for a in apigw.get_rest_apis()["items"] if a["name"].startswith(p)]),
        ("API keys", lambda: [k["name"] for k in apigw.get_api_keys()["items"] if k["name"].startswith(p)]),
        ("usage plans", lambda: [u["name"] for u in apigw.get_usage_plans()["items"] if u["name"].startswith(p)]),
        ("IAM roles", lambda: [r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"].startswith(p)]),
        ("log groups", lambda: [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"] if p in g["logGroupName"]]),
        ("alarms", lambda: [a["AlarmName"] for a in cw.describe_alarms(AlarmNamePrefix=p)["MetricAlarms"]]),
        ("dashboards", lambda: [d["DashboardName"] for d in cw.list_dashboards(DashboardNamePrefix=p)["DashboardEntries"]]),
        ("SNS topics", lambda: [t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].rsplit(":", 1)[-1].startswith(p)]),
        ("EventBridge rules", lambda: [r["Name"] for r in events.list_rules(NamePrefix=p)["Rules"]]),
        ("EventBridge buses", lambda: [b["Name"] for b in events.list_event_buses(NamePrefix=p)["EventBuses"]]),
        ("EventBridge archives", lambda: [a["ArchiveName"] for a in events.list_archives(NamePrefix=p)["Archives"]]),
        ("KMS aliases", lambda: [a["AliasName"] for a in kms.list_aliases()["Aliases"] if a["AliasName"] == f"alias/{p}"]),
        ("KMS keys not pending deletion", lambda: live_keys(kms, p)),
    ]
    if args.state_bucket:
        listings.append(("state bucket", lambda: [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"] == args.state_bucket]))
    if args.lock_table:
        listings.append(("lock table", lambda: [t for t in ddb.list_tables()["TableNames"] if t == args.lock_table]))

    for kind, lister in listings:
        def run(lister: Callable[[], list[str]] = lister) -> str:
            names = lister()
            expect(not names, f"left over: {names}")
            return "none"
        c.check(f"no {kind}", run)
    return c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("deployed")
    d.add_argument("--outputs", required=True, help="terraform output -json")
    d.add_argument("--asl", required=True, help="workflow/order-processing.asl.json")
    d.add_argument("--artifacts", default="", help="the deployed zips: DIR/<function>/bootstrap.zip")
    x = sub.add_parser("destroyed")
    x.add_argument("--state-bucket", default="")
    x.add_argument("--lock-table", default="")
    args = parser.parse_args()
    checker = check_deployed(args) if args.mode == "deployed" else check_destroyed(args)
    print(f"smoke {args.mode}: {checker.passed} passed, {checker.failed} failed")
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
