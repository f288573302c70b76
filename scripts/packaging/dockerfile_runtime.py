"""Reads the last stage of a Dockerfile (the runtime image) and prints it as shell
assignments for scripts/packaging/run-runtime.sh: its RUN commands, USER, WORKDIR, ENV,
ENTRYPOINT, CMD and HEALTHCHECK command, so the test runs exactly what the image would."""

import json
import shlex
import sys


def instructions(text):
    """(keyword, arguments) per instruction, continuation lines joined, comments dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        out.append((keyword.upper(), args.strip()))
        current = ""
    return out


def exec_form(args):
    value = json.loads(args)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SystemExit(f"not an exec-form list: {args}")
    return value


def main(path):
    stages, stage = [], None
    for keyword, args in instructions(open(path, encoding="utf-8").read()):
        if keyword == "FROM":
            stage = []
            stages.append(stage)
        elif stage is not None:
            stage.append((keyword, args))
    if not stages:
        raise SystemExit("no FROM")
    runtime = stages[-1]
    runs, env, user, workdir = [], [], "", "/"
    entrypoint, cmd, health = [], [], []
    for keyword, args in runtime:
        if keyword == "RUN":
            runs.append(args)
        elif keyword == "ENV":
            env.extend(shlex.split(args))
        elif keyword == "USER":
            user = args
        elif keyword == "WORKDIR":
            workdir = args
        elif keyword == "ENTRYPOINT":
            entrypoint = exec_form(args)
        elif keyword == "CMD":
            cmd = exec_form(args)
        elif keyword == "HEALTHCHECK":
            _, _, rest = args.partition(" CMD ")
            health = exec_form(rest.strip())
    if not user or not cmd or not health:
        raise SystemExit("the runtime stage needs USER, CMD and HEALTHCHECK")
    q = shlex.quote
    print(f"RUNTIME_USER={q(user)}")
    print(f"RUNTIME_WORKDIR={q(workdir)}")
    print("RUNTIME_RUN=(" + " ".join(q(r) for r in runs) + ")")
    print("RUNTIME_ENV=(" + " ".join(q(e) for e in env) + ")")
    print("RUNTIME_COMMAND=(" + " ".join(q(a) for a in entrypoint + cmd) + ")")
    print("RUNTIME_HEALTH=(" + " ".join(q(a) for a in health) + ")")


if __name__ == "__main__":
    main(sys.argv[1])
