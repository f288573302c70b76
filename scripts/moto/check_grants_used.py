#!/usr/bin/env python3
"""Every data-plane action the Lambda roles grant is called by the code.

Reads the IAM actions of terraform/modules/lambdas/main.tf (sqs:, dynamodb:, states:,
cloudwatch:, events:, ssm:) and looks for the matching aws-sdk-rust call (the action in snake_case,
`.receive_message(`; a batch call such as `.send_message_batch(` counts for its action)
in crates/aws/src and lambdas/src. A grant no code uses is reported: it widens what a
compromised function could do for nothing (for example sqs:PurgeQueue, cloudwatch:
DescribeAlarms). Exit 1 when one is found.
"""

import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parents[2]
tf = (root / "terraform/modules/lambdas/main.tf").read_text()
code = "\n".join(
    p.read_text() for d in ("crates/aws/src", "lambdas/src") for p in (root / d).rglob("*.rs")
)
# A quoted name followed by "=" is a condition key (such as "dynamodb:LeadingKeys"), not an action.
actions = sorted(set(re.findall(r'"((?:sqs|dynamodb|states|cloudwatch|events|ssm):[A-Za-z]+)"(?!\s*=)', tf)))
unused = []
for action in actions:
    name = action.split(":", 1)[1]
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    if not re.search(r"\.\s*" + re.escape(snake) + r"\w*\s*\(", code):
        unused.append(action)
for a in unused:
    print(f"UNUSED GRANT: {a} (no .{re.sub(r'(?<!^)(?=[A-Z])', '_', a.split(':')[1]).lower()}(...) call in crates/aws or lambdas)")
print(f"{len(actions)} data-plane actions granted to the functions, {len(unused)} unused")
sys.exit(1 if unused else 0)
