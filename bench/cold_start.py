#!/usr/bin/env python3
"""Cold starts of the five DOFS Lambdas, each process run alone behind a Lambda runtime API.

Called by bench/cold-start.sh, which builds the zips, starts moto and the local AWS stack
(for the tables, queues, Step Functions endpoint and the functions' environment) and
extracts each zip's bootstrap. For every function and every run, this starts the
function's process with the stack's environment and AWS_LAMBDA_RUNTIME_API pointing
here, and measures:

    init   from just before the process is started until its first
           GET /runtime/invocation/next (exec, main, the cold start, runtime start)
    first  from that request's answer (the event) until the response (or error) POST

then kills the process, so every run is a cold start. Several builds (--build LABEL=DIR)
are measured round-robin, run by run, so a before/after comparison sees the same
machine load. The function's own `cold start` log line (InitTimer) gives the phases
of init inside main. Prints tables; never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

FUNCTIONS = ["api_handler", "validator", "order_storage", "fulfill_order", "dlq_processor"]
TIMEOUT_S = {"api_handler": 15, "validator": 10, "order_storage": 10, "fulfill_order": 30, "dlq_processor": 60}
ACCOUNT, REGION = "123456789012", "us-east-1"


class Run:
    """One cold start: the event to hand out and when things happened."""

    def __init__(self, event: dict[str, Any], function_arn: str, timeout_s: int) -> None:
        self.event = json.dumps(event).encode()
        self.arn = function_arn
        self.timeout_s = timeout_s
        self.request_id = str(uuid.uuid4())
        self.next_at: float | None = None
        self.sent_at: float | None = None
        self.done_at: float | None = None
        self.outcome = ""
        self.body = b""
        self.done = threading.Event()
        self.stop = threading.Event()
        self.handed_out = False
        self.lock = threading.Lock()


def handler_for(run: Run) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            now = time.perf_counter()
            if not self.path.endswith("/runtime/invocation/next"):
                self.send_error(404)
                return
            with run.lock:
                first = not run.handed_out
                run.handed_out = True
                if first:
                    run.next_at = now
            if not first:
                # The next invocation never comes: the run ends and the process is killed.
                run.stop.wait(120)
                self.send_error(410)
                return
            deadline = int(time.time() * 1000) + run.timeout_s * 1000
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(run.event)))
            self.send_header("lambda-runtime-aws-request-id", run.request_id)
            self.send_header("lambda-runtime-deadline-ms", str(deadline))
            self.send_header("lambda-runtime-invoked-function-arn", run.arn)
            self.send_header("lambda-runtime-trace-id", f"Root=1-{int(time.time()):08x}-{run.request_id.replace('-', '')[:24]}")
            self.end_headers()
            run.sent_at = time.perf_counter()
            self.wfile.write(run.event)
            self.wfile.flush()

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            now = time.perf_counter()
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()
            if self.path.endswith("/response"):
                run.outcome = "ok"
            elif self.path.endswith("/error"):
                run.outcome = "error"
            else:
                run.outcome = "init error"
            run.done_at = now
            run.body = body
            run.done.set()

    return Handler


def order(order_id: str) -> dict[str, Any]:
    return {"orderId": order_id, "customerId": "CUST-1001", "productId": "PROD-2001", "quantity": 2, "price": 29.99}


def api_event(stage: str) -> dict[str, Any]:
    body = {k: v for k, v in order("").items() if k != "orderId"}
    headers = {"content-type": "application/json", "host": "127.0.0.1", "user-agent": "dofs-bench"}
    return {
        "resource": "/{proxy+}",
        "path": "/orders",
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": "orders"},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "resourceId": "local",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "dofs-bench", "apiKeyId": None},
            "resourcePath": "/{proxy+}",
            "httpMethod": "POST",
            "apiId": "local",
            "path": f"/{stage}/orders",
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": int(time.time() * 1000),
            "domainName": "127.0.0.1",
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


class Events:
    """A realistic first event for each function, on the stack's tables and queues."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.stored: list[str] = []
        self.sqs = boto3.client(
            "sqs", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=REGION,
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "testing"),
        )
        # The stack's own pollers consume its orders queue, so fulfill_order's messages
        # go through a queue of the bench's, named in that function's environment.
        name = env["DOFS_ORDERS_QUEUE_URL"].rsplit("/", 1)[-1] + "-bench"
        self.queue_url = self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        self.queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        self.overrides = {"fulfill_order": {"DOFS_ORDERS_QUEUE_URL": self.queue_url}}

    def event(self, function: str) -> dict[str, Any]:
        if function == "api_handler":
            return api_event(self.env.get("DOFS_ENVIRONMENT", "local"))
        if function == "validator":
            return {"order": order(str(uuid.uuid4()))}
        if function == "order_storage":
            order_id = str(uuid.uuid4())
            self.stored.append(order_id)
            return {"order": order(order_id)}
        if function == "fulfill_order":
            # A stored order's message, received from the queue as the event source does.
            order_id = self.stored.pop(0) if self.stored else str(uuid.uuid4())
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps({"orderId": order_id}))
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=5, MessageSystemAttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                print("  note: no message received for fulfill_order's event", file=sys.stderr)
            return {"Records": [{
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn, "awsRegion": REGION,
            } for m in got]}
        return {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": ACCOUNT, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/dofs-local-dlq-processor"], "detail": {},
        }


PHASES = re.compile(r"([a-z_]+)=([0-9.]+)")


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the killed process's held-open request, reset


def cold_start(binary: str, function: str, env: dict[str, str], event: dict[str, Any], log: str) -> dict[str, Any]:
    name = f"{env.get('DOFS_BENCH_PREFIX', 'dofs-local')}-{function.replace('_', '-')}"
    run = Run(event, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}", TIMEOUT_S[function])
    server = QuietServer(("127.0.0.1", 0), handler_for(run))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fenv = dict(env)
    fenv.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "RUST_LOG": "info",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    })
    if function != "api_handler":
        fenv.pop("DOFS_STATE_MACHINE_ARN", None)
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen([binary], env=fenv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        finished = run.done.wait(TIMEOUT_S[function] + 30)
        run.stop.set()
        proc.kill()
        proc.wait()
    server.shutdown()
    server.server_close()
    result: dict[str, Any] = {"outcome": run.outcome if finished else "timeout", "phases": {}}
    if run.next_at is not None:
        result["init_ms"] = (run.next_at - started) * 1000
    if run.sent_at is not None and run.done_at is not None:
        result["first_ms"] = (run.done_at - run.sent_at) * 1000
    if run.outcome != "ok":
        result["body"] = run.body.decode(errors="replace")[:300]
    with open(log, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if '"cold start"' in line:
                try:
                    fields = json.loads(line).get("fields", {})
                except json.JSONDecodeError:
                    continue
                result["phases"] = {k: float(v) for k, v in PHASES.findall(fields.get("init_phases", ""))}
                result["main_ms"] = float(fields.get("init_ms", "nan"))
    return result


def summary(values: list[float]) -> str:
    if not values:
        return f"{'-':>8} {'-':>8}"
    return f"{statistics.median(values):8.1f} {max(values):8.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", required=True, help="the stack's lambda.env")
    parser.add_argument("--build", action="append", required=True, help="LABEL=DIR with the five binaries")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--functions", default=",".join(FUNCTIONS))
    parser.add_argument("--log-dir", required=True)
    args = parser.parse_args()

    env: dict[str, str] = {}
    with open(args.env_file, encoding="utf-8") as fh:
        for line in fh:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                env[k] = v
    builds = [tuple(b.split("=", 1)) for b in args.build]
    functions = [f for f in args.functions.split(",") if f]
    events = Events(env)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for function in functions:
        for i in range(args.runs):
            for label, directory in builds:
                log = os.path.join(args.log_dir, f"{label}-{function}-{i}.log")
                fenv = {**env, **events.overrides.get(function, {})}
                r = cold_start(os.path.join(directory, function), function, fenv, events.event(function), log)
                results.setdefault((label, function), []).append(r)
                if r["outcome"] != "ok":
                    print(f"  note: {label} {function} run {i}: {r['outcome']} {r.get('body', '')} (log {log})", file=sys.stderr)
        print(f"  measured {function}", file=sys.stderr)

    print()
    print(f"Cold starts, {args.runs} per function and build, each process alone (ms; median and max)")
    print(f"{'build':<10} {'function':<14} {'init med':>8} {'init max':>8} {'1st med':>8} {'1st max':>8} {'main med':>8}  ok")
    for label, _ in builds:
        for function in functions:
            rs = results[(label, function)]
            init = [r["init_ms"] for r in rs if "init_ms" in r]
            first = [r["first_ms"] for r in rs if "first_ms" in r]
            main_ms = [r["main_ms"] for r in rs if "main_ms" in r]
            ok = sum(1 for r in rs if r["outcome"] == "ok")
            med_main = f"{statistics.median(main_ms):8.1f}" if main_ms else f"{'-':>8}"
            print(f"{label:<10} {function:<14} {summary(init)} {summary(first)} {med_main}  {ok}/{len(rs)}")
    print()
    print("Inside main, by phase (InitTimer; ms, median)")
    for label, _ in builds:
        for function in functions:
            rs = results[(label, function)]
            names: list[str] = []
            for r in rs:
                for n in r["phases"]:
                    if n not in names:
                        names.append(n)
            parts = [f"{n} {statistics.median([r['phases'][n] for r in rs if n in r['phases']]):.2f}" for n in names]
            print(f"{label:<10} {function:<14} {', '.join(parts) or '-'}")
    with open(os.path.join(args.log_dir, "results.json"), "w", encoding="utf-8") as fh:
        json.dump({f"{k[0]}/{k[1]}": v for k, v in results.items()}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
