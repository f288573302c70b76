#!/usr/bin/env python3
"""AWS calls and Lambda invocations per order on the local AWS stack.

Called by bench/aws-calls.sh, which starts moto and dofs-local-aws with --count-calls.
This sends ORDERS orders through the API Gateway stand-in (POST /order), waits until
every one is terminal (read straight from moto's orders table with boto3, so the
waiting itself calls no function and is not counted), and prints the difference of the
stack's counts (GET /local/counts) between just before the first order and just after
the last one turned terminal:

    calls         every AWS API call, by caller, service and action, with its count per order
    invocations   every Lambda invocation, by function, per order
    transitions   Step Functions state transitions, per order

Two kinds of calls do not follow the orders: the event source's empty long polls
(ReceiveMessage, once a second per poller while the queue is empty) and dlq_processor's
scheduled runs; they depend on how long the run took, which is printed. Never fails on
a number.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3

# The path of an order, in the order the callers act on it.
CALLERS = [
    "api_handler",
    "step-functions",
    "validator",
    "order_storage",
    "event-source",
    "fulfill_order",
    "dlq_processor",
    "functions",
]
FUNCTIONS = ["api_handler", "validator", "order_storage", "fulfill_order", "dlq_processor"]
TERMINAL = {"FULFILLED", "FAILED", "CANCELLED"}


def counts(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def submit(api: str, i: int) -> str:
    body = json.dumps(
        {
            "customerId": f"CUST-{1000 + i % 9000:04d}",
            "productId": "PROD-2001",
            "quantity": 1 + i % 5,
            "price": 29.99,
            "metadata": {"source": "bench-aws-calls"},
        }
    ).encode()
    for _ in range(20):
        req = urllib.request.Request(
            f"{api}/order", data=body, headers={"content-type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                if r.status == 202:
                    return json.load(r)["orderId"]
        except urllib.error.HTTPError as e:
            if e.code not in (429, 503):
                raise
        time.sleep(0.5)
    raise RuntimeError("an order was refused 20 times")


def statuses(table: Any, ids: list[str]) -> tuple[Counter[str], int]:
    """The orders' statuses, and their fulfillment attempts added up."""
    dynamodb = table.meta.client
    seen: Counter[str] = Counter()
    attempts = 0
    for i in range(0, len(ids), 100):
        keys = [{"orderId": o} for o in ids[i : i + 100]]
        while keys:
            out = dynamodb.batch_get_item(
                RequestItems={
                    table.name: {
                        "Keys": keys,
                        "ConsistentRead": True,
                        "ProjectionExpression": "orderId, #s, attempts",
                        "ExpressionAttributeNames": {"#s": "status"},
                    }
                }
            )
            for item in out["Responses"].get(table.name, []):
                seen[item["status"]] += 1
                attempts += int(item.get("attempts", 0))
            keys = out.get("UnprocessedKeys", {}).get(table.name, {}).get("Keys", [])
    seen["(not stored yet)"] = len(ids) - sum(seen.values())
    return seen, attempts


def diff(before: dict[str, Any], after: dict[str, Any]) -> tuple[Counter, Counter, int]:
    def calls(c: dict[str, Any]) -> Counter:
        return Counter({(x["caller"], x["service"], x["action"]): x["count"] for x in c["calls"]})

    def inv(c: dict[str, Any]) -> Counter:
        return Counter({x["function"]: x["count"] for x in c["invocations"]})

    return (
        calls(after) - calls(before),
        inv(after) - inv(before),
        after["stateTransitions"] - before["stateTransitions"],
    )


def binary_of(function: str, prefix: str) -> str:
    name = function.removeprefix(prefix + "-").replace("-", "_")
    return name if name in FUNCTIONS else function


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--api", required=True)
    p.add_argument("--counts", required=True)
    p.add_argument("--endpoint", required=True, help="moto")
    p.add_argument("--prefix", required=True)
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--label", default="")
    a = p.parse_args()

    table = boto3.resource("dynamodb", endpoint_url=a.endpoint, region_name="us-east-1").Table(
        f"{a.prefix}-orders"
    )
    before = counts(a.counts)
    started = time.monotonic()
    with ThreadPoolExecutor(a.concurrency) as pool:
        ids = list(pool.map(lambda i: submit(a.api, i), range(a.orders)))
    accepted_s = time.monotonic() - started
    deadline = started + a.timeout
    while True:
        seen, attempts = statuses(table, ids)
        waiting = sum(n for s, n in seen.items() if s not in TERMINAL)
        if waiting == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    after = counts(a.counts)
    calls, invocations, transitions = diff(before, after)
    n = len(ids)

    print(f"## {a.label}" if a.label else "")
    outcome = ", ".join(f"{s} {c}" for s, c in sorted(seen.items()) if c)
    print(f"{n} orders accepted in {accepted_s:.1f} s; all terminal after {elapsed:.1f} s ({outcome})")
    print(f"{attempts} fulfillment attempts ({attempts / n:.2f} per order; order ids are random, so the seed fixes the rate, not each outcome)")
    if waiting:
        print(f"WARNING: {waiting} orders were not terminal after {a.timeout:.0f} s")
    print()
    print(f"| {'caller':<15} | {'service':<10} | {'action':<26} | {'calls':>6} | {'per order':>9} |")
    print(f"|{'-' * 17}|{'-' * 12}|{'-' * 28}|{'-' * 8}|{'-' * 11}|")
    order = {c: i for i, c in enumerate(CALLERS)}
    rows = sorted(calls.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][0], kv[0][1], kv[0][2]))
    by_service: Counter[str] = Counter()
    for (caller, service, action), count in rows:
        by_service[service] += count
        print(f"| {caller:<15} | {service:<10} | {action:<26} | {count:>6} | {count / n:>9.2f} |")
    total = sum(calls.values())
    polls = sum(c for (caller, _, action), c in calls.items() if caller == "event-source" and action == "ReceiveMessage")
    scheduled = sum(c for (caller, _, _), c in calls.items() if caller == "dlq_processor")
    print(f"| {'all callers':<15} | {'all':<10} | {'all':<26} | {total:>6} | {total / n:>9.2f} |")
    for service, count in sorted(by_service.items()):
        print(f"| {'all callers':<15} | {service:<10} | {'all':<26} | {count:>6} | {count / n:>9.2f} |")
    per_order = total - polls - scheduled
    print(
        f"| {'order path':<15} | {'all':<10} | {'all but the event source':<26} | {per_order:>6} | {per_order / n:>9.2f} |"
    )
    print(f"| {'':<15} | {'':<10} | {'receives, dlq_processor':<26} | {'':>6} | {'':>9} |")
    print()
    print(f"| {'Lambda function':<15} | {'invocations':>11} | {'per order':>9} |")
    print(f"|{'-' * 17}|{'-' * 13}|{'-' * 11}|")
    inv_by_bin = Counter()
    for function, count in invocations.items():
        inv_by_bin[binary_of(function, a.prefix)] += count
    for f in sorted(inv_by_bin, key=lambda f: FUNCTIONS.index(f) if f in FUNCTIONS else 99):
        print(f"| {f:<15} | {inv_by_bin[f]:>11} | {inv_by_bin[f] / n:>9.2f} |")
    inv_total = sum(inv_by_bin.values())
    print(f"| {'all':<15} | {inv_total:>11} | {inv_total / n:>9.2f} |")
    print()
    print(f"Step Functions state transitions: {transitions} ({transitions / n:.2f} per order)")
    print(
        f"Driven by time more than by orders: {polls} ReceiveMessage calls by the event source "
        f"(long polls of 1 s by 2 pollers over {elapsed:.0f} s; on AWS, Lambda's pollers) "
        f"and {scheduled} calls by dlq_processor's schedule (every 60 s)."
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
