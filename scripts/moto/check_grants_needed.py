#!/usr/bin/env python3
"""Every AWS operation each Lambda function's code can call is granted to that function's role,
on the resource it calls it on.

moto cannot prove this (README, "What is checked here"): its IAM enforcement knows actions but
not, for DynamoDB, Step Functions, SSM, EventBridge, SNS or CloudWatch, the resource of a
request, so a least-privilege policy is refused there whatever it grants. This check reads the Rust
sources and the Terraform instead:

1. The code (mechanical). Every AWS SDK call in the crates with an AWS SDK dependency that the
   Lambdas link (crates/aws, lambdas; the Cargo manifests are read to make sure there is no
   other) is found: a fluent call on an SDK client (`client.put_item()...send()`), a
   transaction item (`Put::builder().table_name(..)`, `Update::builder()..`) or an event
   entry (`PutEventsRequestEntry::builder().event_bus_name(..)`). Its IAM action comes from
   the operation's name (`send_message_batch` is sqs:SendMessage) and its resource from the
   chain (`.table_name(&self.orders_table)`, `.index_name(STATUS_INDEX)`, `.queue_url(..)`,
   `.state_machine_arn(..)`, `.execution_arn(..)`, `.event_bus_name(..)`, `.name(..)`).
2. Which function can reach which call (mechanical, with small declared tables). A call
   graph over crates/aws, lambdas and crates/core is built from each function's body: method
   calls are resolved through the types of `self`, struct fields, parameters and `let`
   bindings; calls through a port trait object (`&dyn OrderStore`) go to the adapter that
   function's cold start puts behind it (BINDINGS below), and api_handler's HTTP routes
   (crates/server, a generic crate reached through `dofs_server::router_with`) call every
   port method whose name they use. Each binary's `main` is the root. Code no Lambda runs
   is declared (NOT_IN_LAMBDAS_*); any other call no function reaches is a failure.
3. Where each resource is. A call's resource is a field of an adapter (`SqsQueue.dlq_url`),
   which Terraform fills through one environment variable (FIELD_ENV below), or a parameter
   whose possible resources are declared (PARAM_RESOURCES); the variable's value in the
   function's configuration in the state gives the ARN.
4. The grants. `terraform show -json` of the applied environment (the state: an environment's
   plan leaves every ARN unknown) gives each function's role and its inline policies. Each
   (action, ARN) must be allowed by an Allow statement whose Action and Resource patterns
   match and whose conditions hold (dynamodb:LeadingKeys from the item's key, cloudwatch:
   namespace from DOFS_METRICS_NAMESPACE; a condition on any other key is not taken as
   granting). The Lambda platform's own needs are checked too: the function's log group,
   X-Ray (tracing Active), kms:Decrypt of its environment key, the SQS event source's
   receive/delete/attributes, and the KMS rights SQS needs for an encrypted queue.

Anything the tables do not account for fails: an SDK call whose resource expression has no
entry, a field with no variable, an operation with no resource, a call through a port no
binding covers, a method call whose receiver cannot be typed while its name is one of the
adapters' AWS-reaching methods, or an entry no call uses any more.

Usage:
  check_grants_needed.py --code-only          # steps 1-3: the derived map, no Terraform
  check_grants_needed.py --state state.json   # all of it (terraform show -json of dev)
  --print-map                                 # also print each function's operations
  --verbose                                   # with --state: every grant and its statement

Exit 1 with one line per problem ("MISSING: fulfill_order: sqs:SendMessage on arn:... ").
"""

import argparse
import json
import pathlib
import re
import sys
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parents[2]

# --- Declared tables (each entry is checked against the source) -------------------------------

# Which adapter stands behind each port trait object in each function: what its cold start
# builds (crates/aws/src/lib.rs: AwsAdapters::fulfiller, ::backend; the binaries pass
# &adapters.store where a &dyn OrderStore is taken). A trait with no entry for a function
# that reaches a call through it is a failure.
BINDINGS = {
    "api_handler": {
        # AwsAdapters::backend(): dofs_core::ports::Backend
        "OrderStore": ["AcceptedOrderStore"],
        "Queue": ["SqsQueue"],
        "WorkflowStarter": ["StepFunctionsWorkflowStarter"],
        "ExecutionLog": ["StepFunctionsExecutionLog"],
        "Operations": ["AwsOperations"],
        "EventLog": ["DynamoDbEventLog"],
        # lambdas/src/api.rs: Observability::fleet(.., CloudWatchCounters)
        "FleetCounters": ["CloudWatchCounters"],
    },
    "validator": {},
    "order_storage": {"OrderStore": ["DynamoDbOrderStore"]},  # &adapters.store
    "fulfill_order": {"OrderStore": ["DynamoDbOrderStore"], "Queue": ["SqsQueue"]},  # AwsAdapters::fulfiller
    "dlq_processor": {"OrderStore": ["DynamoDbOrderStore"]},  # &adapters.store
}
# Traits whose implementations are outside the analysed code and call no AWS service
# (the clock; the fulfillment backends: simulated, or an HTTP service).
FOREIGN_TRAITS = {"Clock", "Fulfillment"}

# Generic crates reached through a path call into them: every method name used in their
# (non-test) sources that is a method of a bound port trait counts as called.
GENERIC_CRATES = {"dofs_server": "crates/server/src"}

# Adapter fields that hold a resource, and the environment variable each is filled from
# (crates/aws/src/lib.rs AwsAdapters::new/backend/publisher, from AwsSettings, from the
# variables terraform/modules/lambdas sets).
FIELD_ENV = {
    "DynamoDbOrderStore.orders_table": "DOFS_ORDERS_TABLE",
    "DynamoDbOrderStore.failed_table": "DOFS_FAILED_ORDERS_TABLE",
    "DynamoDbOrderStore.events.name": "DOFS_EVENTS_TABLE",
    "SendDedup.table": "DOFS_IDEMPOTENCY_TABLE",
    "StepFunctionsWorkflowStarter.idempotency_table": "DOFS_IDEMPOTENCY_TABLE",
    "StepFunctionsWorkflowStarter.state_machine_arn": "DOFS_STATE_MACHINE_ARN",
    "StepFunctionsExecutionLog.state_machine_arn": "DOFS_STATE_MACHINE_ARN",
    "AcceptedOrderStore.state_machine_arn": "DOFS_STATE_MACHINE_ARN",
    "DynamoDbEventLog.table.name": "DOFS_EVENTS_TABLE",
    "EventBridgePublisher.table": "DOFS_EVENTS_TABLE",
    "EventBridgePublisher.bus": "DOFS_EVENTS_BUS_NAME",
    "SqsQueue.queue_url": "DOFS_ORDERS_QUEUE_URL",
    "SqsQueue.dlq_url": "DOFS_DLQ_URL",
    "CloudWatchMetrics.namespace": "DOFS_METRICS_NAMESPACE",
}

# Calls whose resource is a parameter: the resources its callers pass, as (variable, index
# constant or None). Keyed by "function:operation".
PARAM_RESOURCES = {
    # query_page's listings: orders by status, all orders, all failed orders.
    "DynamoDbOrderStore::query_partition:query": [
        ("DOFS_ORDERS_TABLE", "STATUS_INDEX"),
        ("DOFS_ORDERS_TABLE", "ALL_ORDERS_INDEX"),
        ("DOFS_FAILED_ORDERS_TABLE", "ALL_FAILED_INDEX"),
    ],
    # queue_attrs(url): dead_count, ready, depth, lease_every_dead_letter pass both queues.
    "SqsQueue::queue_attrs:get_queue_attributes": [("DOFS_ORDERS_QUEUE_URL", None), ("DOFS_DLQ_URL", None)],
    # The http mode's signing secret (SecretSource::Parameter, from this variable).
    "secrets::fulfillment_secret:get_parameter": [("DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER", None)],
}

# Variables a function may lack: the calls on their resource cannot happen then (the events
# publisher exists only with a bus, the SSM read only in the http mode).
OPTIONAL_ENV = {"DOFS_EVENTS_BUS_NAME", "DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER", "DOFS_STATE_MACHINE_ARN"}

# Code no Lambda function runs, and why: its calls are not required of any role (and a
# Lambda that does reach one is still checked).
NOT_IN_LAMBDAS_FILES = {"crates/aws/src/setup.rs": "the emulator's and tests' resource creation (Terraform creates them on AWS)"}
NOT_IN_LAMBDAS_FNS = {"SqsQueue::receive": "Queue::receive serves the local shape's pollers; on AWS the SQS event source receives for fulfill_order"}

# SDK operations whose IAM action is not the operation's name in CamelCase.
OP_ACTION = {
    ("sqs", "send_message_batch"): "SendMessage",
    ("sqs", "delete_message_batch"): "DeleteMessage",
    ("sqs", "change_message_visibility_batch"): "ChangeMessageVisibility",
    ("dynamodb", "transact_write_items"): None,  # authorised item by item (below)
}
IAM_PREFIX = {"dynamodb": "dynamodb", "sqs": "sqs", "sfn": "states", "cloudwatch": "cloudwatch",
              "eventbridge": "events", "ssm": "ssm", "sns": "sns", "s3": "s3", "kms": "kms", "sts": "sts"}
# SDK operations whose IAM action has no resource (Resource "*").
NO_RESOURCE = {("cloudwatch", "get_metric_data"), ("cloudwatch", "list_metrics"), ("cloudwatch", "put_metric_data")}
# Transaction items (aws_sdk_dynamodb::types builders) and their action.
ITEM_BUILDERS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
# Resource-naming builder methods, by service.
RESOURCE_METHODS = {
    "dynamodb": ["table_name", "request_items"],
    "sqs": ["queue_url"],
    "sfn": ["state_machine_arn", "execution_arn"],
    "ssm": ["name"],
    "eventbridge": ["event_bus_name"],
    "cloudwatch": ["namespace"],
}

# Method names too common to tell an adapter's call from a library's when the receiver's type
# is unknown (HashMap::get, Sender::send, ...). Any other unresolved call to a name that one
# of the adapters' AWS-reaching methods has is a failure.
COMMON_NAMES = {"get", "send", "new", "clone", "insert", "remove", "len", "is_empty", "delete", "list",
                "start", "after", "publish", "ready", "from", "into", "map", "build", "parse", "now",
                "contains", "push", "extend", "iter", "lock", "query", "flush", "handle", "redrive"}

# Zero-argument methods of an SDK client that are not operations.
NOT_OPERATIONS = {"clone", "config", "to_owned"}

KEYWORDS = {"if", "while", "match", "for", "return", "loop", "fn", "let", "in", "as", "move", "async",
            "await", "Some", "Ok", "Err", "None", "self", "Self", "mut", "ref", "where", "impl", "dyn",
            "unsafe", "else", "use", "pub", "crate", "super", "struct", "enum", "trait", "type", "const",
            "static", "mod", "break", "continue"}


def camel(snake):
    return "".join(p[:1].upper() + p[1:] for p in snake.split("_"))


# --- A small reader of Rust source ----------------------------------------------------------------


def clean(text):
    """Comments removed, string and char literal contents blanked (offsets kept)."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "rb" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) and re.match(r'(?:br|r)(#*)"', text[i:i + 40]):
            m = re.match(r'(?:br|r)(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j
            blank(i + m.end(), j)
            i = j + len(end)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'\n])'", text[i:])
            if m:
                blank(i + 1, i + m.end() - 1)
                i += m.end()
            else:
                i += 1  # a lifetime
        else:
            i += 1
    return "".join(out)


PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def match_close(s, i):
    """Index of the bracket closing the one at s[i] ((, [ or {)."""
    opening, closing = s[i], PAIRS[s[i]]
    depth = 0
    for j in range(i, len(s)):
        if s[j] == opening:
            depth += 1
        elif s[j] == closing:
            depth -= 1
            if depth == 0:
                return j
    return len(s) - 1


def match_open(s, j):
    """Index of the bracket opening the one closing at s[j] (), ] or })."""
    closing = s[j]
    opening = {")": "(", "]": "[", "}": "{"}[closing]
    depth = 0
    for i in range(j, -1, -1):
        if s[i] == closing:
            depth += 1
        elif s[i] == opening:
            depth -= 1
            if depth == 0:
                return i
    return 0


def split_top(s, sep=","):
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


def strip_tests(s):
    """Blank every #[cfg(test)] item."""
    while True:
        m = re.search(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", s)
        if not m:
            return s
        j = m.end()
        semi = s.find(";", j)
        brace = s.find("{", j)
        if brace < 0 or (0 <= semi < brace):
            end = semi + 1
        else:
            end = match_close(s, brace) + 1
        s = s[:m.start()] + re.sub(r"[^\n]", " ", s[m.start():end]) + s[end:]


WRAPPERS = {"Option", "Result", "Arc", "Box", "Rc", "Mutex", "RwLock", "Cow", "Pin"}


class Source:
    """Everything parsed: structs, impls, functions, consts, traits."""

    def __init__(self):
        self.structs = {}  # name -> {field: type}
        self.methods = defaultdict(lambda: defaultdict(list))  # type -> {name: [fn key]} (inherent and trait impls)
        self.impls = defaultdict(set)  # trait -> {type}
        self.trait_methods = defaultdict(set)  # trait -> {method}
        self.fns = {}  # key -> Fn
        self.free = defaultdict(list)  # name -> [fn key]
        self.consts = {}  # name -> string value
        self.types = set()
        self.file_imports = {}

    def norm(self, t, imports, self_type=None):
        """A type as a name: ours (SqsQueue), an SDK client (sdk:sqs), a port (dyn:Queue), or
        another name. Options, results and smart pointers are looked through."""
        t = t.strip()
        t = re.sub(r"'\w+\s*", "", t)
        while True:
            t = t.strip()
            for pre in ("&", "mut ", "dyn ", "impl ", "*const ", "*mut "):
                if t.startswith(pre):
                    t = t[len(pre):]
                    break
            else:
                break
        t = t.split("+")[0].strip()
        m = re.match(r"([\w:]+)\s*<(.*)>$", t, re.S)
        if m:
            base = m.group(1).split("::")[-1]
            if base in WRAPPERS:
                args = split_top(m.group(2))
                return self.norm(args[0], imports, self_type) if args else None
            t = m.group(1)
        if t.startswith("[") or t.startswith("("):
            return None
        path = t.split("::")
        last = path[-1]
        if last == "Self":
            return self_type
        if last == "Client":
            for seg in path:
                if seg.startswith("aws_sdk_"):
                    return "sdk:" + seg[len("aws_sdk_"):]
            return imports.get("Client")
        return last or None


class Fn:
    def __init__(self, key, name, file, self_type, params, ret, body, body_start, trait):
        self.key, self.name, self.file, self.self_type = key, name, file, self_type
        self.params, self.ret, self.body, self.body_start, self.trait = params, ret, body, body_start, trait


def parse_file(src, rel, text, analysed=True, inherited=None):
    raw = text
    for m in re.finditer(r'\bconst\s+(\w+)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([^"]*)"\s*;', raw):
        src.consts[m.group(1)] = m.group(2)
    s = strip_tests(clean(text))
    imports = dict(inherited or {}) if re.search(r"\buse\s+super::\*\s*;", s) else {}
    for m in re.finditer(r"\buse\s+aws_sdk_(\w+)::Client\s*;", s):
        imports["Client"] = "sdk:" + m.group(1)
    for m in re.finditer(r"\buse\s+aws_sdk_(\w+)::types::\{([^}]*)\}", s):
        for name in re.findall(r"\w+", m.group(2)):
            imports[name] = "sdk:" + m.group(1) + ":" + name
    for m in re.finditer(r"\buse\s+aws_sdk_(\w+)::types::(\w+)\s*;", s):
        imports[m.group(2)] = "sdk:" + m.group(1) + ":" + m.group(2)

    # impl and trait blocks
    blocks = []  # (start, end, type, trait)
    for m in re.finditer(r"\bimpl\b\s*(<[^{;]*?>)?\s*([^{;]*?)\s*\{", s):
        header = re.split(r"\bwhere\b", m.group(2))[0].strip()
        trait = None
        if re.search(r"\bfor\b", header):
            trait, typ = re.split(r"\s+for\s+", header, maxsplit=1)
            trait = re.sub(r"<.*", "", trait).split("::")[-1].strip()
        else:
            typ = header
        typ = re.sub(r"<.*", "", typ).split("::")[-1].strip()
        start = m.end() - 1
        blocks.append((start, match_close(s, start), typ, trait))
        if analysed:
            src.types.add(typ)
            if trait:
                src.impls[trait].add(typ)
    traits = []
    for m in re.finditer(r"\btrait\s+(\w+)[^{;]*\{", s):
        start = m.end() - 1
        end = match_close(s, start)
        traits.append((start, end))
        for f in re.finditer(r"\bfn\s+(\w+)", s[start:end]):
            src.trait_methods[m.group(1)].add(f.group(1))
    if not analysed:
        return
    for m in re.finditer(r"\bstruct\s+(\w+)\s*(<[^{;(]*?>)?\s*(\{|\(|;)", s):
        name = m.group(1)
        src.types.add(name)
        fields = {}
        if m.group(3) == "{":
            start = m.end() - 1
            body = s[start + 1:match_close(s, start)]
            for part in split_top(body):
                fm = re.match(r"\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:\s*(.+)", part, re.S)
                if fm:
                    fields[fm.group(1)] = fm.group(2).strip()
        src.structs[name] = (fields, imports)
    src.file_imports[rel] = imports
    for m in re.finditer(r"\bfn\s+(\w+)\s*", s):
        name = m.group(1)
        if any(a < m.start() < b for a, b in traits):
            continue
        j = m.end()
        if j < len(s) and s[j] == "<":
            depth = 0
            while j < len(s):
                depth += s[j] == "<"
                depth -= s[j] == ">"
                j += 1
                if depth == 0:
                    break
            while j < len(s) and s[j].isspace():
                j += 1
        if j >= len(s) or s[j] != "(":
            continue
        pend = match_close(s, j)
        params_text = s[j + 1:pend]
        k = pend + 1
        brace = s.find("{", k)
        semi = s.find(";", k)
        if brace < 0 or (0 <= semi < brace):
            continue
        head = s[k:brace]
        ret = None
        rm = re.search(r"->\s*(.*?)(?:\bwhere\b|$)", head, re.S)
        if rm:
            ret = rm.group(1).strip()
        end = match_close(s, brace)
        enclosing = [b for b in blocks if b[0] < m.start() < b[1]]
        self_type, trait = (enclosing[-1][2], enclosing[-1][3]) if enclosing else (None, None)
        params = {}
        for p in split_top(params_text):
            pm = re.match(r"\s*(?:mut\s+)?(\w+)\s*:\s*(.+)", p, re.S)
            if pm:
                params[pm.group(1)] = src.norm(pm.group(2), imports, self_type)
        module = rel.rsplit("/", 1)[-1].removesuffix(".rs")
        if module in ("mod", "lib"):
            module = rel.rsplit("/", 2)[-2]
        key = f"{self_type}::{name}" if self_type else f"{module}::{name}"
        if key in src.fns:  # a second impl (for another trait) of the same name
            key = f"{key}#{m.start()}"
        fn = Fn(key, name, rel, self_type, params, src.norm(ret, imports, self_type) if ret else None,
                s[brace:end + 1], brace, trait)
        fn.imports = imports
        fn.ret_text = ret
        src.fns[key] = fn
        if self_type:
            src.methods[self_type][name].append(key)
        else:
            src.free[name].append(key)


# --- Expressions: receivers and their types --------------------------------------------------------


def receiver_before(s, i):
    """The receiver expression ending just before s[i] (a '.')."""
    j = i - 1
    while True:
        while j >= 0 and s[j].isspace():
            j -= 1
        if j < 0:
            break
        if s[j] == "?":
            j -= 1
            continue
        if s[j] in ")]":
            j = match_open(s, j) - 1
            while j >= 0 and s[j].isspace():
                j -= 1
            if s[j + 1] == "(" and j >= 0 and not (s[j].isalnum() or s[j] == "_" or s[j] == ">"):
                # a parenthesised expression or tuple: (a, b).x
                break
        if j >= 0 and (s[j].isalnum() or s[j] == "_"):
            k = j
            while k >= 0 and (s[k].isalnum() or s[k] == "_"):
                k -= 1
            j = k
            # continue through '.' or '::'
            t = j
            while t >= 0 and s[t].isspace():
                t -= 1
            if t >= 0 and s[t] == ".":
                j = t - 1
                continue
            if t >= 1 and s[t] == ":" and s[t - 1] == ":":
                j = t - 2
                continue
            break
        break
    return s[j + 1:i].strip()


class Typer:
    def __init__(self, src):
        self.src = src

    def field_type(self, typ, field):
        entry = self.src.structs.get(typ)
        if not entry:
            return None
        fields, imports = entry
        if field not in fields:
            return None
        return self.src.norm(fields[field], imports, typ)

    def method_keys(self, typ, name):
        return list(self.src.methods[typ].get(name, ())) if typ in self.src.methods else []

    def method_key(self, typ, name):
        keys = self.method_keys(typ, name)
        return keys[0] if keys else None

    def segments(self, expr):
        """Postfix segments of an expression: ('path', [..], args|None), ('field', f), ('call', m, args)."""
        e = expr.strip()
        while e.startswith("&") or e.startswith("*"):
            e = e[1:].strip()
        if e.startswith("mut "):
            e = e[4:].strip()
        segs = []
        m = re.match(r"((?:\w+\s*::\s*)*\w+)", e)
        if not m:
            return None
        path = [p.strip() for p in m.group(1).split("::")]
        i = m.end()
        args = None
        while i < len(e) and e[i].isspace():
            i += 1
        if i < len(e) and e[i] == "(":
            close = match_close(e, i)
            args = e[i + 1:close]
            i = close + 1
        segs.append(("path", path, args))
        while i < len(e):
            c = e[i]
            if c.isspace() or c == "?":
                i += 1
                continue
            if c == ".":
                m = re.match(r"\.\s*(\w+)\s*", e[i:])
                if not m:
                    return None
                name = m.group(1)
                i += m.end()
                if i < len(e) and e[i] == "(":
                    close = match_close(e, i)
                    segs.append(("call", name, e[i + 1:close]))
                    i = close + 1
                elif name == "await":
                    continue
                else:
                    segs.append(("field", name))
                continue
            if c == "[":
                i = match_close(e, i) + 1
                segs.append(("index",))
                continue
            return None
        return segs

    def type_of(self, expr, env, fn):
        segs = self.segments(expr)
        if not segs:
            return None
        kind, path, args = segs[0]
        t = None
        if args is None:
            if len(path) == 1:
                if path[0] == "self":
                    t = fn.self_type
                else:
                    ts = env.get(path[0])
                    t = next(iter(ts)) if ts and len(ts) == 1 else None
            elif path[-1] in self.src.consts:
                t = "&str"
        else:
            t = self.call_type(path, args, env, fn)
        for seg in segs[1:]:
            if t is None:
                return None
            if seg[0] == "field":
                t = self.field_type(t, seg[1])
            elif seg[0] == "call":
                if seg[1] in ("clone", "as_ref", "unwrap", "expect", "as_deref", "to_owned", "borrow", "lock"):
                    continue
                k = self.method_key(t, seg[1])
                t = self.src.fns[k].ret if k else None
            else:
                return None
        return t

    def call_type(self, path, args, env, fn):
        if len(path) >= 2 and path[-2] in ("Arc", "Box", "Rc") and path[-1] in ("new", "clone"):
            first = split_top(args)
            return self.type_of(first[0], env, fn) if first else None
        if path == ["Some"]:
            first = split_top(args)
            return self.type_of(first[0], env, fn) if first else None
        if len(path) >= 2:
            owner = fn.self_type if path[-2] == "Self" else path[-2]
            k = self.method_key(owner, path[-1])
            if k:
                return self.src.fns[k].ret
            if path[-1] == "new" and owner in self.src.types:
                return owner
        for k in self.resolve_free(path):
            return self.src.fns[k].ret
        return None

    def resolve_free(self, path):
        keys = self.src.free.get(path[-1], [])
        if len(path) >= 2 and len(keys) > 1:
            narrowed = [k for k in keys if k.split("::")[0] == path[-2]]
            keys = narrowed or keys
        return keys


def bindings(typer, fn):
    """Local names and their possible types: parameters, let / if let / closure parameters."""
    env = defaultdict(set)
    for name, t in fn.params.items():
        if t:
            env[name].add(t)
    body = fn.body
    # closure parameters with a type
    for m in re.finditer(r"\|\s*(\w+)\s*:\s*([^|,]+)\|", body):
        t = typer.src.norm(m.group(2), fn.imports, fn.self_type)
        if t:
            env[m.group(1)].add(t)
    for _ in range(2):  # twice: a binding may use one defined later in the text
        for m in re.finditer(r"\b(?:let|if\s+let|while\s+let)\s+", body):
            i = m.end()
            # pattern up to '=' (not '==', '=>') at depth 0
            depth, j = 0, i
            while j < len(body):
                c = body[j]
                if c in "([{":
                    depth += 1
                elif c in ")]}":
                    depth -= 1
                elif c == "=" and depth == 0 and body[j + 1:j + 2] not in ("=", ">") and body[j - 1] not in "!<>=":
                    break
                elif c == ";" and depth == 0:
                    j = -1
                    break
                j += 1
            if j < 0 or j >= len(body):
                continue
            pattern = body[i:j].strip()
            annotated = None
            if ":" in pattern and not pattern.startswith("(") and "{" not in pattern and "::" not in pattern.split(":")[0]:
                pattern, annotated = pattern.split(":", 1)
                pattern = pattern.strip()
            k, depth = j + 1, 0
            while k < len(body):
                c = body[k]
                if c in "([":
                    depth += 1
                elif c in ")]":
                    depth -= 1
                elif c == "{":
                    if depth == 0 and m.group(0).strip() != "let":
                        break  # if let ... = expr {
                    depth += 1
                elif c == "}":
                    depth -= 1
                elif c == ";" and depth == 0:
                    break
                k += 1
            expr = body[j + 1:k].strip()
            expr = re.sub(r"\belse\s*\{.*$", "", expr, flags=re.S).strip()
            bind_pattern(typer, fn, env, pattern, expr, annotated)
    return env


def bind_pattern(typer, fn, env, pattern, expr, annotated=None):
    pattern = pattern.strip()
    if pattern.startswith("mut "):
        pattern = pattern[4:].strip()
    if annotated:
        t = typer.src.norm(annotated, fn.imports, fn.self_type)
        if t and re.fullmatch(r"\w+", pattern):
            env[pattern].add(t)
        return
    if re.fullmatch(r"\w+", pattern):
        t = typer.type_of(expr, env, fn)
        if t:
            env[pattern].add(t)
        return
    m = re.fullmatch(r"Some\s*\(\s*(?:ref\s+)?(\w+)\s*\)", pattern, re.S)
    if m:
        t = typer.type_of(expr, env, fn)
        if t:
            env[m.group(1)].add(t)
        return
    if pattern.startswith("(") and pattern.endswith(")") and expr.startswith("(") and expr.endswith(")"):
        names = split_top(pattern[1:-1])
        exprs = split_top(expr[1:-1])
        for p, e in zip(names, exprs):
            bind_pattern(typer, fn, env, p, e.strip())
        return
    m = re.fullmatch(r"([\w:]+)\s*\{(.*)\}", pattern, re.S)
    if m:
        typ = m.group(1).split("::")[-1]
        for part in split_top(m.group(2)):
            part = part.strip()
            if not part or part == "..":
                continue
            if ":" in part:
                field, name = [x.strip() for x in part.split(":", 1)]
            else:
                field = name = part
            if re.fullmatch(r"\w+", name):
                t = typer.field_type(typ, field)
                if t:
                    env[name].add(t)


# --- The analysis ------------------------------------------------------------------------------------


class Site:
    """One AWS operation in the source."""

    def __init__(self, fn, service, op, action, chain, pos, kind):
        self.fn, self.service, self.op, self.action = fn, service, op, action
        self.chain, self.pos, self.kind = chain, pos, kind
        self.resources = []  # [(env var or None, index or None)] ; None var = "*"
        self.context = {}  # condition keys known at the call (dynamodb:LeadingKeys)
        self.line = None


def statement_end(s, i):
    depth = 0
    while i < len(s):
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return i
        elif c == ";" and depth == 0:
            return i
        i += 1
    return i


class Analysis:
    def __init__(self):
        self.src = Source()
        self.typer = Typer(self.src)
        self.problems = []
        self.notes = []
        self.sites = []
        self.edges = defaultdict(set)  # fn key -> {fn key | ('dyn', trait, m) | ('generic', crate)}
        self.unresolved = []
        self.texts = {}

    def problem(self, text):
        self.problems.append(text)

    def load(self):
        analysed_dirs = ["crates/aws/src", "lambdas/src", "crates/core/src"]
        for d in analysed_dirs:
            # parents first (mod.rs, then the files of the module), for `use super::*;`
            files = sorted((ROOT / d).rglob("*.rs"), key=lambda p: (len(p.parts), p.name != "mod.rs", str(p)))
            for p in files:
                rel = str(p.relative_to(ROOT))
                if p.name == "tests.rs" or "/tests/" in rel or "conformance" in rel:
                    continue
                text = p.read_text()
                self.texts[rel] = text
                parent = p.parent / "mod.rs" if p.name != "mod.rs" else p.parent.parent / "mod.rs"
                if not parent.exists():
                    parent = p.parent.with_suffix(".rs")
                inherited = self.src.file_imports.get(str(parent.relative_to(ROOT))) if parent.exists() else None
                parse_file(self.src, rel, text, inherited=inherited)
        # port traits implemented elsewhere (method names only)
        for p in sorted((ROOT / "crates/server/src").rglob("*.rs")):
            parse_file(self.src, str(p.relative_to(ROOT)), p.read_text(), analysed=False)

    def check_manifests(self):
        """Only dofs-aws and dofs-lambdas, of the crates the Lambdas link, use an AWS SDK."""
        ws = (ROOT / "Cargo.toml").read_text()
        paths = dict(re.findall(r'^(dofs-[\w-]+)\s*=\s*\{\s*path\s*=\s*"([^"]+)"', ws, re.M))

        def deps(manifest):
            text = manifest.read_text()
            text = re.split(r"^\[(?:dev-dependencies|build-dependencies)\]", text, flags=re.M)[0]
            return set(re.findall(r"^(dofs-[\w-]+)\s*[.=]", text, re.M)), bool(re.search(r"^aws-sdk-", text, re.M))

        seen, todo, with_sdk = set(), ["lambdas"], []
        while todo:
            d = todo.pop()
            if d in seen:
                continue
            seen.add(d)
            names, sdk = deps(ROOT / d / "Cargo.toml")
            if sdk:
                with_sdk.append(d)
            todo.extend(paths[n] for n in names if n in paths)
        allowed = {"lambdas", "crates/aws"}
        for d in with_sdk:
            if d not in allowed:
                self.problem(f"{d} depends on an AWS SDK and is linked by the Lambdas, but this check does not read it")
        return sorted(seen)

    # -- sites --

    def find_sites(self):
        for fn in self.src.fns.values():
            if not (fn.file.startswith("crates/aws/") or fn.file.startswith("lambdas/")):
                continue
            env = bindings(self.typer, fn)
            fn.env = env
            body = fn.body
            heads = []
            for m in re.finditer(r"\.\s*(\w+)\s*\(\s*\)", body):
                recv = receiver_before(body, m.start())
                t = self.typer.type_of(recv, env, fn) if recv else None
                if isinstance(t, str) and t.startswith("sdk:") and t.count(":") == 1 and m.group(1) not in NOT_OPERATIONS:
                    heads.append((m.start(), t[4:], m.group(1)))
            sends = [m.start() for m in re.finditer(r"\.\s*send\s*\(\s*\)", body)]
            if len(sends) > len(heads):
                self.problem(f"{fn.key} ({fn.file}): {len(sends)} .send() but only {len(heads)} calls on a known AWS SDK client")
            for pos, service, op in heads:
                chain = body[pos:statement_end(body, pos)]
                if (service, op) in OP_ACTION:
                    action = OP_ACTION[(service, op)]
                else:
                    action = camel(op)
                site = Site(fn, service, op, action and f"{IAM_PREFIX.get(service, service)}:{action}", chain, pos, "call")
                self.sites.append(site)
            for m in re.finditer(r"\b(\w+)\s*::\s*builder\s*\(\s*\)", body):
                imp = fn.imports.get(m.group(1), "")
                if imp.startswith("sdk:dynamodb:") and m.group(1) in ITEM_BUILDERS:
                    chain = body[m.start():statement_end(body, m.start())]
                    chain = chain[:chain.find(".build()") if ".build()" in chain else len(chain)]
                    self.sites.append(Site(fn, "dynamodb", m.group(1), "dynamodb:" + ITEM_BUILDERS[m.group(1)], chain, m.start(), "item"))
            for site in [x for x in self.sites if x.fn is fn]:
                site.line = self.texts[fn.file][:fn.body_start + site.pos].count("\n") + 1
                if fn.file not in NOT_IN_LAMBDAS_FILES:
                    self.resolve_resource(site, env)

    def field_path(self, expr, env, fn):
        """'Type.field[.sub]' for an expression naming a field of an adapter (or a getter of one)."""
        e = expr.strip().lstrip("&").strip()
        m = re.fullmatch(r"(\w+)((?:\s*\.\s*\w+)+)(\s*\(\s*\))?", e)
        if not m:
            return None
        base = m.group(1)
        parts = [p.strip() for p in m.group(2).split(".") if p.strip()]
        t = fn.self_type if base == "self" else (next(iter(env.get(base, []))) if len(env.get(base, [])) == 1 else None)
        if not t:
            return None
        if m.group(3):  # a getter: self.store.orders_table()
            getter = parts.pop()
            for p in parts:
                t = self.typer.field_type(t, p)
                if not t:
                    return None
            k = self.typer.method_key(t, getter)
            if not k:
                return None
            gm = re.fullmatch(r"\{\s*&?\s*self\s*\.\s*(\w+)\s*\}", re.sub(r"\s+", " ", self.src.fns[k].body).strip())
            return f"{t}.{gm.group(1)}" if gm else None
        # the first (outermost) owner whose field path is declared; else the innermost, for the message
        owner, last = t, None
        for i in range(len(parts)):
            candidate = f"{owner}." + ".".join(parts[i:])
            if candidate in FIELD_ENV:
                return candidate
            last = candidate
            owner = self.typer.field_type(owner, parts[i])
            if not owner:
                break
        return last

    def resolve_resource(self, site, env):
        fn, chain = site.fn, site.chain
        key = f"{fn.key}:{site.op}"
        if key in PARAM_RESOURCES:
            self.used_params.add(key)
            for var, index in PARAM_RESOURCES[key]:
                if index is not None and index not in self.src.consts:
                    self.problem(f"PARAM_RESOURCES[{key!r}]: {index} is not a string constant of the source")
                site.resources.append((var, self.src.consts.get(index, index) if index else None))
            return
        if (site.service, site.op) in NO_RESOURCE:
            site.resources = [(None, None)]
            if site.op == "put_metric_data":
                m = re.search(r"\.\s*namespace\s*\(([^)]*)\)", chain)
                fp = m and self.field_path(m.group(1), env, fn)
                if not fp or fp not in FIELD_ENV:
                    self.problem(f"{fn.key}:{site.op} (line {site.line}): namespace {m.group(1) if m else '(none)'} has no entry in FIELD_ENV")
                else:
                    self.used_fields.add(fp)
                    site.context["cloudwatch:namespace"] = ("env", FIELD_ENV[fp])
            return
        if site.op == "transact_write_items":
            return  # its items are sites of their own
        if site.service == "eventbridge" and site.op == "put_events":
            entries = re.findall(r"PutEventsRequestEntry\s*::\s*builder\s*\(\s*\)(.*?)\.build\s*\(\s*\)", fn.body, re.S)
            buses = [re.search(r"\.\s*event_bus_name\s*\(([^)]*)\)", e) for e in entries]
            if not entries or not all(buses):
                self.problem(f"{fn.key}:put_events (line {site.line}): an entry without event_bus_name (the default bus) or entries built elsewhere")
                return
            for b in buses:
                fp = self.field_path(b.group(1), env, fn)
                if fp not in FIELD_ENV:
                    self.problem(f"{fn.key}:put_events: bus {b.group(1).strip()} ({fp}) has no entry in FIELD_ENV")
                    return
                self.used_fields.add(fp)
                site.resources.append((FIELD_ENV[fp], None))
            return
        names = RESOURCE_METHODS.get(site.service, [])
        found = None
        for meth in names:
            m = re.search(r"\.\s*" + meth + r"\s*\(", chain)
            if m:
                open_ = m.end() - 1
                found = (meth, split_top(chain[open_ + 1:match_close(chain, open_)])[0].strip())
                break
        if not found:
            self.problem(f"{fn.key}:{site.op} (line {site.line}): no resource in the call ({', '.join(names) or 'no resource method known for ' + site.service}) and no PARAM_RESOURCES entry")
            return
        meth, expr = found
        index = None
        im = re.search(r"\.\s*index_name\s*\(([^)]*)\)", chain)
        if im:
            iexpr = im.group(1).strip()
            if iexpr in self.src.consts:
                index = self.src.consts[iexpr]
            else:
                self.problem(f"{fn.key}:{site.op} (line {site.line}): index {iexpr} is not a constant; add a PARAM_RESOURCES entry")
                return
        execution = False
        if meth == "execution_arn":
            # let arn = execution_arn_of(&self.state_machine_arn, ..)
            lm = re.search(r"\blet\s+" + re.escape(expr.lstrip("&").strip()) + r"\s*=\s*execution_arn_of\s*\(([^,]*),", fn.body)
            if not lm:
                self.problem(f"{fn.key}:{site.op} (line {site.line}): execution ARN {expr} not made by execution_arn_of(state machine ARN, ..)")
                return
            expr, execution = lm.group(1), True
        fp = self.field_path(expr, env, fn)
        if fp not in FIELD_ENV:
            self.problem(f"{fn.key}:{site.op} (line {site.line}): resource {expr} ({fp or 'not a field of an adapter'}) has no FIELD_ENV or PARAM_RESOURCES entry")
            return
        self.used_fields.add(fp)
        site.resources = [(FIELD_ENV[fp], ("execution" if execution else index))]
        km = re.search(r'\.\s*key\s*\(\s*"\s*"\s*,\s*s\s*\(\s*(\w+)\s*\(', chain)
        if km and km.group(1) == "count_key" and "COUNT_PREFIX" in self.src.consts:
            site.context["dynamodb:LeadingKeys"] = ("value", self.src.consts["COUNT_PREFIX"] + "PENDING#0")

    # -- call graph --

    def build_graph(self):
        for fn in self.src.fns.values():
            env = getattr(fn, "env", None) or bindings(self.typer, fn)
            fn.env = env
            body = fn.body
            out = self.edges[fn.key]
            # method calls
            for m in re.finditer(r"\.\s*(\w+)\s*(?:::\s*<[^>]*>\s*)?\(", body):
                name = m.group(1)
                recv = receiver_before(body, m.start())
                if not recv:
                    continue
                t = self.typer.type_of(recv, env, fn)
                if t is None:
                    ts = None
                    base = re.match(r"&?\s*(\w+)$", recv)
                    if base and len(env.get(base.group(1), ())) > 1:
                        ts = env[base.group(1)]
                    if ts:
                        for tt in ts:
                            self.add_method_edge(out, tt, name)
                    else:
                        self.unresolved.append((fn, name, recv))
                    continue
                self.add_method_edge(out, t, name)
            # path calls
            for m in re.finditer(r"((?:\w+\s*::\s*)+)(\w+)\s*(?:::\s*<[^>]*>\s*)?\(", body):
                if body[m.start() - 1:m.start()] in (".", ":") or (m.start() >= 1 and (body[m.start() - 1].isalnum() or body[m.start() - 1] == "_")):
                    continue
                path = [p.strip() for p in m.group(1).split("::") if p.strip()] + [m.group(2)]
                if path[0] in GENERIC_CRATES:
                    out.add(("generic", path[0]))
                    continue
                owner = fn.self_type if path[-2] == "Self" else path[-2]
                if owner in self.src.types:
                    out.update(self.typer.method_keys(owner, path[-1]))
                    continue
                if owner in self.src.trait_methods:
                    close = match_close(body, m.end() - 1)
                    args = split_top(body[m.end():close])
                    t = self.typer.type_of(args[0], env, fn) if args else None
                    if t:
                        self.add_method_edge(out, t, path[-1])
                    else:
                        self.unresolved.append((fn, path[-1], args[0] if args else ""))
                    continue
                for k in self.typer.resolve_free(path):
                    out.add(k)
            # bare calls
            for m in re.finditer(r"(?<![\w.:])(\w+)\s*\(", body):
                name = m.group(1)
                if name in KEYWORDS or body[m.end() - 2:m.end() - 1] == "!":
                    continue
                for k in self.src.free.get(name, []):
                    out.add(k)

    def add_method_edge(self, out, t, name):
        if t.startswith("sdk:"):
            return
        if t in self.src.trait_methods and t not in self.src.structs:
            out.add(("dyn", t, name))
            return
        out.update(self.typer.method_keys(t, name))

    def generic_names(self, crate):
        names = set()
        for p in sorted((ROOT / GENERIC_CRATES[crate]).rglob("*.rs")):
            s = strip_tests(clean(p.read_text()))
            names.update(re.findall(r"\.\s*(\w+)\s*\(", s))
            names.update(re.findall(r"::\s*(\w+)\s*\(", s))
        return names

    def reach(self, function, main_key):
        binding = BINDINGS[function]
        seen, todo, via = set(), [main_key], {main_key: None}
        generic_cache = {}
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            seen.add(k)
            for e in sorted(self.edges.get(k, ()), key=str):
                targets = []
                if isinstance(e, tuple) and e[0] == "dyn":
                    _, trait, name = e
                    if trait in FOREIGN_TRAITS:
                        continue
                    if trait not in binding:
                        impls = [t for t in self.src.impls.get(trait, ()) if self.typer.method_key(t, name)]
                        if impls:
                            self.problem(f"{function}: {k} calls {trait}::{name} through a trait object, and BINDINGS[{function!r}] does not say which of {sorted(impls)} it is")
                        continue
                    for t in binding[trait]:
                        targets.extend(self.typer.method_keys(t, name))
                elif isinstance(e, tuple) and e[0] == "generic":
                    crate = e[1]
                    if crate not in generic_cache:
                        generic_cache[crate] = self.generic_names(crate)
                    for trait, types in binding.items():
                        for name in self.src.trait_methods.get(trait, ()):
                            if name in generic_cache[crate]:
                                for t in types:
                                    targets.extend(self.typer.method_keys(t, name))
                else:
                    targets.append(e)
                for t in targets:
                    if t not in via:
                        via[t] = k
                    todo.append(t)
        return seen, via

    def run(self):
        self.used_fields, self.used_params = set(), set()
        self.load()
        self.linked = self.check_manifests()
        self.find_sites()
        self.build_graph()
        bins = re.findall(r'\[\[bin\]\]\s*name\s*=\s*"(\w+)"\s*path\s*=\s*"([^"]+)"', (ROOT / "lambdas/Cargo.toml").read_text())
        if sorted(b for b, _ in bins) != sorted(BINDINGS):
            self.problem(f"lambdas/Cargo.toml binaries {sorted(b for b, _ in bins)} are not BINDINGS' {sorted(BINDINGS)}")
        self.functions = {}
        sites_by_fn = defaultdict(list)
        for s in self.sites:
            sites_by_fn[s.fn.key].append(s)
        reached_sites = set()
        for name, path in bins:
            main = f"{pathlib.Path(path).stem}::main"
            if main not in self.src.fns:
                self.problem(f"{path}: no main function found")
                continue
            seen, via = self.reach(name, main)
            ops = []
            for k in seen:
                for s in sites_by_fn.get(k, ()):
                    ops.append(s)
                    reached_sites.add(id(s))
            self.functions[name] = (ops, via)
        # Every AWS-reaching method name, for the unresolved-call check.
        changed = True
        aws_keys = {s.fn.key for s in self.sites}
        while changed:
            changed = False
            for k, es in self.edges.items():
                if k in aws_keys:
                    continue
                for e in es:
                    if (isinstance(e, str) and e in aws_keys) or (isinstance(e, tuple) and e[0] == "dyn"):
                        aws_keys.add(k)
                        changed = True
                        break
        reaching = {self.src.fns[k].name for k in aws_keys if self.src.fns[k].self_type}
        for fn, name, recv in self.unresolved:
            if name in reaching and name not in COMMON_NAMES and not fn.file.startswith("crates/core/"):
                self.problem(f"{fn.key} ({fn.file}): cannot tell the type of {recv!r} in {recv}.{name}(..), and {name} is an AWS-reaching adapter method")
        for s in self.sites:
            if id(s) in reached_sites and (s.fn.file in NOT_IN_LAMBDAS_FILES or s.fn.key in NOT_IN_LAMBDAS_FNS):
                self.problem(f"{s.fn.key}:{s.op} ({s.fn.file}:{s.line}) is declared as run by no Lambda, but a Lambda reaches it")
            if id(s) not in reached_sites and s.fn.file not in NOT_IN_LAMBDAS_FILES and s.fn.key not in NOT_IN_LAMBDAS_FNS and s.action:
                self.problem(f"{s.fn.key}:{s.op} ({s.fn.file}:{s.line}) is reached by no Lambda function: the call graph misses a path, or the code is dead (or add the file to NOT_IN_LAMBDAS_FILES)")
        for fp in FIELD_ENV:
            if fp not in self.used_fields:
                self.problem(f"FIELD_ENV[{fp!r}] is used by no call: remove it")
        for k in NOT_IN_LAMBDAS_FNS:
            if not any(x.fn.key == k for x in self.sites):
                self.problem(f"NOT_IN_LAMBDAS_FNS[{k!r}] makes no AWS call any more: remove it")
        for k in PARAM_RESOURCES:
            if k not in self.used_params:
                self.problem(f"PARAM_RESOURCES[{k!r}] matches no call: remove or update it")
        settings = (ROOT / "crates/aws/src/settings.rs").read_text()
        for var in sorted(set(FIELD_ENV.values()) | {v for rs in PARAM_RESOURCES.values() for v, _ in rs}):
            if f'"{var}"' not in settings:
                self.problem(f"{var} (FIELD_ENV, PARAM_RESOURCES) is not read by crates/aws/src/settings.rs")

    def requirements(self, function):
        """[(action, resource spec, context, origin)] of a function's code."""
        ops, via = self.functions[function]
        out = []
        for s in ops:
            if not s.action:
                continue
            path, k = [], s.fn.key
            while k is not None and len(path) < 12:
                path.append(k)
                k = via.get(k)
            origin = f"{s.fn.key} ({s.fn.file}:{s.line}; reached by {' > '.join(reversed(path[1:]))})"
            for var, index in s.resources or []:
                out.append((s.action, (var, index), dict(s.context), origin, s))
        return out


# --- Policies -------------------------------------------------------------------------------------


def as_list(v):
    return v if isinstance(v, list) else [v]


def cond_holds(cond, context):
    """Whether a statement's Condition holds for the known context; None when it names a key we
    do not know at this call (then the statement is not taken as granting)."""
    for op, tests in (cond or {}).items():
        base = op.split(":")[-1]
        quantifier = op.split(":")[0] if ":" in op else None
        for key, wanted in tests.items():
            if key not in context:
                return None
            have = as_list(context[key])
            wanted = as_list(wanted)
            if base in ("StringEquals",):
                ok = [h in wanted for h in have]
            elif base in ("StringLike",):
                ok = [any(iam_match(h, w) for w in wanted) for h in have]
            else:
                return None
            if quantifier == "ForAnyValue":
                if not any(ok):
                    return False
            elif not all(ok):
                return False
    return True


def iam_match(value, pattern, case=True):
    """IAM's wildcards: * any run of characters, ? one character (no [] classes)."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, 0 if case else re.I) is not None


def granted(policies, action, arn, context):
    """(statement Sid, None) when allowed; (None, why) when not."""
    conditional = None
    for name, doc in policies:
        for st in as_list(doc.get("Statement", [])):
            if st.get("Effect") != "Allow" or "Action" not in st or "Resource" not in st:
                continue
            if not any(iam_match(action, a, case=False) for a in as_list(st["Action"])):
                continue
            if not any(iam_match(arn, r) for r in as_list(st["Resource"])):
                continue
            held = cond_holds(st.get("Condition"), context)
            if held:
                return f"{name}/{st.get('Sid', '?')}", None
            conditional = f"{name}/{st.get('Sid', '?')} matches but its condition {json.dumps(st.get('Condition'))} {'does not hold' if held is False else 'names a key this check does not know at the call'}"
    return None, conditional


def state_resources(module):
    for r in module.get("resources", []):
        yield r
    for child in module.get("child_modules", []):
        yield from state_resources(child)


def sqs_arn(url, part, region, account):
    name = url.rstrip("/").rsplit("/", 1)[-1]
    acct = url.rstrip("/").rsplit("/", 2)[-2]
    return f"arn:{part}:sqs:{region}:{acct if acct.isdigit() else account}:{name}"


def check_state(analysis, state_path, verbose=False):
    doc = json.load(open(state_path))
    root = (doc.get("values") or doc.get("planned_values") or {}).get("root_module")
    if not root:
        return [f"{state_path}: no values.root_module (terraform show -json of an applied root is needed)"], []
    res = list(state_resources(root))
    by_type = defaultdict(list)
    for r in res:
        by_type[r["type"]].append(r)
    problems, passes = [], []
    roles = {r["values"]["name"]: r for r in by_type["aws_iam_role"]}
    inline = defaultdict(list)
    for r in by_type["aws_iam_role_policy"]:
        v = r["values"]
        role = v.get("role")
        if v.get("policy") is None:
            problems.append(f"{r['address']}: policy unknown (a plan? run against the applied state)")
            continue
        inline[role].append((f"{v.get('name')}", json.loads(v["policy"])))
    managed = {r["values"]["arn"]: json.loads(r["values"]["policy"]) for r in by_type["aws_iam_policy"] if r["values"].get("policy")}
    for r in by_type["aws_iam_role_policy_attachment"]:
        v = r["values"]
        if v["policy_arn"] in managed:
            inline[v["role"]].append((v["policy_arn"].rsplit("/", 1)[-1], managed[v["policy_arn"]]))
        else:
            problems.append(f"{r['address']}: attaches {v['policy_arn']}, which is not in the state: its grants are not checked")
    queues = {}
    for r in by_type["aws_sqs_queue"]:
        v = r["values"]
        queues[v.get("arn")] = v
    mappings = by_type["aws_lambda_event_source_mapping"]
    lambdas = by_type["aws_lambda_function"]
    matched = {}
    for name in BINDINGS:
        suffix = "-" + name.replace("_", "-")
        found = [f for f in lambdas if f["values"]["function_name"].endswith(suffix)]
        if len(found) != 1:
            problems.append(f"{name}: {len(found)} aws_lambda_function named *{suffix} in the state")
            continue
        matched[name] = found[0]
    for f in lambdas:
        if f not in matched.values():
            problems.append(f"{f['address']} ({f['values']['function_name']}): no binary in lambdas/Cargo.toml matches it")
    for name, f in matched.items():
        v = f["values"]
        arn = v["arn"]
        part, _, region, account = arn.split(":")[1:5]
        role_name = v["role"].rsplit("/", 1)[-1]
        if role_name not in roles:
            problems.append(f"{name}: its role {v['role']} is not in the state")
            continue
        policies = inline.get(role_name, []) + inline.get(roles[role_name]["values"].get("id"), [])
        env = {}
        for e in v.get("environment") or []:
            env.update(e.get("variables") or {})

        def arn_of(var, index):
            value = env.get(var)
            if value is None:
                return None
            if var.endswith("_TABLE"):
                base = f"arn:{part}:dynamodb:{region}:{account}:table/{value}"
                return base + (f"/index/{index}" if index else "")
            if var.endswith("_QUEUE_URL") or var == "DOFS_DLQ_URL":
                return sqs_arn(value, part, region, account)
            if var == "DOFS_STATE_MACHINE_ARN":
                return value.replace(":stateMachine:", ":execution:") + ":00000000-0000-4000-8000-000000000000" if index == "execution" else value
            if var == "DOFS_EVENTS_BUS_NAME":
                return value if value.startswith("arn:") else f"arn:{part}:events:{region}:{account}:event-bus/{value}"
            if var == "DOFS_FULFILLMENT_HTTP_SECRET_PARAMETER":
                return f"arn:{part}:ssm:{region}:{account}:parameter/{value.lstrip('/')}"
            raise KeyError(var)

        needs = []  # (action, arn, context, origin)
        for action, (var, index), context, origin, site in analysis.requirements(name):
            ctx = {}
            for k, (kind, val) in context.items():
                ctx[k] = env.get(val, "<unset>") if kind == "env" else val
            if var is None:
                needs.append((action, "*", ctx, origin))
                continue
            target = arn_of(var, index)
            if target is None:
                if var in OPTIONAL_ENV:
                    passes.append(f"{name}: {action} ({origin}) not configured here ({var} unset)")
                    continue
                problems.append(f"{name}: calls {action} ({origin}) on {var}, which its configuration does not set")
                continue
            needs.append((action, target, ctx, origin))
            if action.startswith("sqs:") and var in ("DOFS_ORDERS_QUEUE_URL", "DOFS_DLQ_URL"):
                key = (queues.get(target) or {}).get("kms_master_key_id")
                if key and not key.startswith("alias/aws/"):
                    key_arn = key if key.startswith("arn:") else f"arn:{part}:kms:{region}:{account}:key/{key}"
                    kctx = {"kms:ViaService": f"sqs.{region}.amazonaws.com"}
                    if action == "sqs:SendMessage":
                        needs.append(("kms:GenerateDataKey", key_arn, kctx, f"SQS SSE-KMS for {action} on {target}"))
                        needs.append(("kms:Decrypt", key_arn, kctx, f"SQS SSE-KMS for {action} on {target}"))
                    elif action == "sqs:ReceiveMessage":
                        needs.append(("kms:Decrypt", key_arn, kctx, f"SQS SSE-KMS for {action} on {target}"))
        # The platform's own needs.
        stream = f"arn:{part}:logs:{region}:{account}:log-group:/aws/lambda/{v['function_name']}:log-stream:2025/01/01/[$LATEST]0"
        for a in ("logs:CreateLogStream", "logs:PutLogEvents"):
            needs.append((a, stream, {}, "Lambda logs"))
        if any((t.get("mode") == "Active") for t in v.get("tracing_config") or []):
            for a in ("xray:PutTraceSegments", "xray:PutTelemetryRecords"):
                needs.append((a, "*", {}, "Lambda active tracing"))
        if v.get("kms_key_arn"):
            needs.append(("kms:Decrypt", v["kms_key_arn"], {}, "Lambda environment encryption"))
        for mp in mappings:
            mv = mp["values"]
            if mv.get("function_name") not in (arn, v["function_name"]) and not str(mv.get("function_arn", "")).startswith(arn):
                continue
            src = mv.get("event_source_arn", "")
            if ":sqs:" in src:
                for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
                    needs.append((a, src, {}, "SQS event source mapping"))
                key = (queues.get(src) or {}).get("kms_master_key_id")
                if key and not key.startswith("alias/aws/"):
                    key_arn = key if key.startswith("arn:") else f"arn:{part}:kms:{region}:{account}:key/{key}"
                    needs.append(("kms:Decrypt", key_arn, {"kms:ViaService": f"sqs.{region}.amazonaws.com"}, "SQS event source mapping (SSE-KMS)"))
        seen = set()
        ok = 0
        for action, target, ctx, origin in needs:
            k = (action, target, json.dumps(ctx, sort_keys=True))
            if k in seen:
                continue
            seen.add(k)
            sid, why = granted(policies, action, target, ctx)
            if sid:
                ok += 1
                if verbose:
                    passes.append(f"  {name}: {action} on {target}{' with ' + json.dumps(ctx) if ctx else ''}: {sid} ({origin})")
            else:
                problems.append(f"MISSING: {name} (role {role_name}): {action} on {target}{' with ' + json.dumps(ctx) if ctx else ''}, called by {origin}" + (f"; {why}" if why else ""))
        passes.append(f"{name}: {ok} of {len(seen)} (action, resource) pairs granted")
    return problems, passes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", help="terraform show -json of the applied environment root")
    ap.add_argument("--code-only", action="store_true", help="only the source analysis (no Terraform)")
    ap.add_argument("--print-map", action="store_true", help="print each function's operations and resources")
    ap.add_argument("--verbose", action="store_true", help="with --state: print every grant found and the statement granting it")
    args = ap.parse_args()
    if not args.state and not args.code_only:
        ap.error("--state or --code-only")
    a = Analysis()
    a.run()
    if args.print_map:
        for name in BINDINGS:
            ops, via = a.functions.get(name, ([], {}))
            print(f"{name}:")
            rows = sorted({(s.action, str(r), s.fn.key) for s in ops if s.action for r in s.resources})
            for action, r, key in rows:
                print(f"  {action:34} {r:55} {key}")
    problems = list(a.problems)
    lines = []
    if args.state:
        p, lines = check_state(a, args.state, args.verbose)
        problems += p
    for line in lines:
        print(line)
    for p in problems:
        print(p if p.startswith("MISSING") else "PROBLEM: " + p)
    summary = ", ".join(f"{n} {len({(s.action, str(r)) for s in a.functions.get(n, ([],))[0] if s.action for r in s.resources})}" for n in BINDINGS)
    print(f"{len(a.sites)} AWS SDK calls in {', '.join(x for x in a.linked if x in ('crates/aws', 'lambdas'))}; operations by function: {summary}; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
