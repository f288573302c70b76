#!/usr/bin/env python3
"""Run moto server for DOFS tests, with the few gaps the Terraform AWS provider needs filled.

    python scripts/moto/launcher.py --host 127.0.0.1 --port 5000

What it adds around moto's own server application:

* ``stepfunctions.execute_state_machine`` is switched on *before* anything is created, so
  executions started on a state machine actually run its states (moto otherwise only records
  them as RUNNING). ``lambda.use_docker`` is switched off: no Docker here, and moto's simple
  Lambda backend answers an invoke by echoing its payload, which lets the DOFS workflow run
  end to end (Validate -> Store -> SQS sendMessage) against placeholder Lambda code.
* ``AWSStepFunctions.ValidateStateMachineDefinition`` and
  ``AWSStepFunctions.ListStateMachineVersions`` are not implemented by moto 5.2.5, but the
  Terraform AWS provider (5.x) calls the first while planning/creating an
  ``aws_sfn_state_machine`` and the second while reading/deleting one. They are answered
  here: the definition is checked for being a JSON object with ``StartAt`` and ``States``
  (FAIL with a diagnostic otherwise), and the version list is empty (DOFS does not publish
  state machine versions).
* SQS ``RedriveAllowPolicy`` is returned by GetQueueAttributes once set (moto 5.2.5 keeps
  it but never returns it, so ``aws_sqs_queue_redrive_allow_policy`` would wait forever).
* Every SQS and DynamoDB request is atomic, as on AWS. moto's server runs each request on
  its own thread, and its SQS and DynamoDB backends take no locks, so concurrent requests
  interleave. Two seen in DOFS's tests: two ReceiveMessage calls that meet a message due
  for the DLQ both try to move it, and the loser answers 500 after it has already marked
  its batch received (the client retries, so that batch is lost for a visibility timeout
  and each message's receive count jumps by one); and TransactWriteItems deep-copies whole
  tables while other threads write them ("dictionary changed size during iteration"), and
  restores that copy when a condition fails, undoing other requests' writes. Such
  requests therefore run one at a time; an SQS long poll releases the lock while it waits.
* TransactWriteItems undoes a failed transaction from copies of the items it wrote,
  taken before each write, instead of moto's deep copy of each table it touches, taken
  before the first. The copy made a transaction's cost grow with the table: about 4 ms on
  an empty table and 260 ms at 3,000 items, all under the lock above, so a few hundred
  orders slowed every other request to seconds (requests timed out, fulfillment leases
  ran out). The checks, errors and cancellation reasons are moto's, in moto's order.

Everything else goes to moto unchanged. The server binds to the given host only
(127.0.0.1 by default) and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from typing import Any, Callable, Iterable

from moto.core.config import default_user_config
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

StartResponse = Callable[..., Any]

SFN_PREFIX = "AWSStepFunctions."


def configure_moto() -> None:
    """Set moto's in-process configuration before any backend object exists."""
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}
    # AWS managed policies (e.g. AmazonAPIGatewayPushToCloudWatchLogs) exist, as on AWS.
    default_user_config["iam"] = {"load_aws_managed_policies": True}

    # moto 5.2.5 stores an SQS queue's RedriveAllowPolicy (SetQueueAttributes) but never
    # returns it, and rejects it as an attribute name in GetQueueAttributes; the provider's
    # aws_sqs_queue_redrive_allow_policy then waits forever for it to "propagate".
    # Listing it among the queue's base attributes makes moto return what was set.
    from moto.sqs.models import Queue

    if "RedriveAllowPolicy" not in Queue.BASE_ATTRIBUTES:
        Queue.BASE_ATTRIBUTES = [*Queue.BASE_ATTRIBUTES, "RedriveAllowPolicy"]

        # Setting it to "" removes it (as on AWS), so that deleting the policy completes.
        def _get(self: Queue) -> str | None:
            return getattr(self, "_dofs_redrive_allow_policy", None)

        def _set(self: Queue, value: str | None) -> None:
            self._dofs_redrive_allow_policy = value or None  # type: ignore[attr-defined]

        Queue.redrive_allow_policy = property(_get, _set)  # type: ignore[attr-defined]


# One request at a time for these services (see the module docstring).
SERIALISED_SERVICES = {"sqs", "dynamodb"}
_SERIAL = threading.Lock()
_HOLDING = threading.local()
_SCOPE = re.compile(r"Credential=[^/,]+/[0-9]{8}/[^/,]+/([a-z0-9-]+)/aws4_request")
_TARGET_SERVICES = {"AmazonSQS": "sqs", "DynamoDB_20120810": "dynamodb"}


def request_service(environ: dict[str, Any]) -> str | None:
    """The AWS service a request is for: from its signature's scope, else its X-Amz-Target."""
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if scope:
        return scope.group(1)
    target = environ.get("HTTP_X_AMZ_TARGET", "").split(".", 1)[0]
    return _TARGET_SERVICES.get(target)


def serialise_data_plane() -> None:
    """Lets an SQS long poll give up the request lock while it waits for messages."""
    from moto.sqs.models import Queue

    if getattr(Queue.wait_for_messages, "_dofs_serialised", False):
        return
    waiting = Queue.wait_for_messages

    def wait_for_messages(self: Queue, timeout: int) -> None:
        held = getattr(_HOLDING, "held", False)
        if held:
            _HOLDING.held = False
            _SERIAL.release()
        try:
            waiting(self, timeout)
        finally:
            if held:
                _SERIAL.acquire()
                _HOLDING.held = True

    wait_for_messages._dofs_serialised = True  # type: ignore[attr-defined]
    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]


def transactions_without_table_copies() -> None:
    """TransactWriteItems with an undo log of the items written (see the module docstring)."""
    import copy

    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.transact_write_items, "_dofs_undo_log", False):
        return

    def item_key(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> dict[str, Any]:
        if op_type != "Put":
            return op["Key"]
        table = backend.get_table(op["TableName"])
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key

    def write(backend: DynamoDBBackend, op_type: str, op: dict[str, Any], key: dict[str, Any]) -> None:
        table_name = op["TableName"]
        if op_type == "Put":
            backend.put_item(table_name, op["Item"])
        elif op_type == "Delete":
            backend.delete_item(table_name, key)
        elif op_type == "Update":
            backend.update_item(
                table_name,
                key,
                update_expression=op["UpdateExpression"],
                expression_attribute_names=op.get("ExpressionAttributeNames"),
                expression_attribute_values=op.get("ExpressionAttributeValues"),
            )

    def undo(backend: DynamoDBBackend, written: list[tuple[str, dict[str, Any], Any]]) -> None:
        for table_name, key, before in reversed(written):
            if before is None:
                backend.delete_item(table_name, key)
            else:
                backend.put_item(table_name, before.to_json()["Attributes"])

    # moto's own loop, item by item (the same checks, errors and cancellation
    # reasons, in the same order), with one change: what it undoes on failure
    # is the items written, from copies of them taken before each write.
    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        targets: set[tuple[str, str]] = set()
        written: list[tuple[str, dict[str, Any], Any]] = []
        # One entry per item, as the cancellation reasons of TransactionCanceledException.
        errors: list[tuple[Any, Any, Any]] = []
        for entry in transact_items:
            old_item: dict[str, Any] | None = None
            if len(entry) > 1:
                undo(self, written)
                raise TransactWriteSingleOpException
            try:
                op_type, op = next(iter(entry.items()))
                if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                    raise ValueError("Unsupported transaction operation")
                key = item_key(self, op_type, op)
                target = (str(op["TableName"]), str(dict(sorted(key.items()))))
                if target in targets:
                    raise MultipleTransactionsException()
                targets.add(target)
                current = self.get_item(op["TableName"], key)
                condition = op.get("ConditionExpression")
                if condition is not None:
                    test = get_filter_expression(
                        condition,
                        op.get("ExpressionAttributeNames"),
                        op.get("ExpressionAttributeValues"),
                    )
                    if not test.expr(current):
                        if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                            old_item = current.to_json()["Attributes"]
                        raise ConditionalCheckFailed(item=old_item)
                if op_type != "ConditionCheck":
                    written.append((op["TableName"], key, copy.deepcopy(current)))
                    write(self, op_type, op, key)
                errors.append((None, None, None))
            except (MultipleTransactionsException, MockValidationException):
                undo(self, written)
                raise
            except ConditionalCheckFailed as e:
                errors.append(("ConditionalCheckFailed", str(e.message), old_item))
            except Exception as e:  # noqa: BLE001 - reported per item, as moto does
                errors.append((type(e).__name__, str(e), old_item))
        if any(code is not None for code, _, _ in errors):
            undo(self, written)
            raise TransactionCanceledException(errors)

    transact_write_items._dofs_undo_log = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def validate_definition(body: dict[str, Any]) -> dict[str, Any]:
    """A small stand-in for ValidateStateMachineDefinition (structure only)."""
    diagnostics: list[dict[str, str]] = []
    definition = body.get("definition")
    try:
        parsed = json.loads(definition) if isinstance(definition, str) else None
    except ValueError as err:
        parsed = None
        diagnostics.append(
            {
                "severity": "ERROR",
                "code": "INVALID_JSON_DESCRIPTION",
                "message": f"definition is not valid JSON: {err}",
                "location": "/",
            }
        )
    if parsed is not None:
        if not isinstance(parsed, dict):
            diagnostics.append(
                {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
                 "message": "definition must be a JSON object", "location": "/"}
            )
        else:
            for field in ("StartAt", "States"):
                if field not in parsed:
                    diagnostics.append(
                        {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
                         "message": f"missing required field '{field}'", "location": "/"}
                    )
            states = parsed.get("States")
            if isinstance(states, dict) and parsed.get("StartAt") not in states:
                diagnostics.append(
                    {"severity": "ERROR", "code": "MISSING_TRANSITION_TARGET",
                     "message": "StartAt does not name a state", "location": "/StartAt"}
                )
    elif definition is None:
        diagnostics.append(
            {"severity": "ERROR", "code": "SCHEMA_VALIDATION_FAILED",
             "message": "definition is required", "location": "/"}
        )
    return {"result": "FAIL" if diagnostics else "OK", "diagnostics": diagnostics, "truncated": False}


HANDLERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ValidateStateMachineDefinition": validate_definition,
    "ListStateMachineVersions": lambda _body: {"stateMachineVersions": []},
}


class GapFiller:
    """WSGI middleware: answers the Step Functions actions moto lacks, forwards the rest."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(SFN_PREFIX):
            handler = HANDLERS.get(target[len(SFN_PREFIX):])
            if handler is not None:
                try:
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                except ValueError:
                    length = 0
                raw = environ["wsgi.input"].read(length) if length > 0 else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                payload = json.dumps(handler(body)).encode()
                start_response(
                    "200 OK",
                    [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("Content-Length", str(len(payload))),
                        ("x-amzn-RequestId", "dofs-moto-launcher"),
                    ],
                )
                return [payload]
        if request_service(environ) in SERIALISED_SERVICES:
            with _SERIAL:
                _HOLDING.held = True
                try:
                    # moto renders the whole body inside the call; keep the list.
                    return list(self.app(environ, start_response))
                finally:
                    _HOLDING.held = False
        return self.app(environ, start_response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port to bind (default 5000)")
    args = parser.parse_args(argv)

    # moto's Step Functions engine calls Lambda and SQS through boto3 at
    # http://localhost:$MOTO_PORT; moto's own server sets this too.
    os.environ["MOTO_PORT"] = str(args.port)
    configure_moto()
    serialise_data_plane()
    transactions_without_table_copies()
    app = GapFiller(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(_signum: int, _frame: Any) -> None:
        # serve_forever() runs in this thread; leave through SystemExit.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"dofs moto launcher listening on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except SystemExit:
        pass
    finally:
        server.server_close()
    # moto's background workers (event source pollers, executions) are not daemon
    # threads: leave at once instead of waiting for them.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
