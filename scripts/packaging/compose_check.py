"""Reads deploy/compose.yaml for scripts/test-packaging.sh.

  compose_check.py check COMPOSE_FILE
      Checks what no Compose implementation checks without a container engine: every
      file a service mounts exists, the build context holds the Dockerfile, every port
      is published on 127.0.0.1 only, Prometheus scrapes the dofs service by its name on
      the port the image serves, and Grafana's data source is that Prometheus service.
      Prints one line per check; exits 1 on the first failure.

  compose_check.py service COMPOSE_FILE NAME
      Prints a service's command, environment and mounts as bash assignments, for
      scripts/packaging/run-compose.sh: COMMAND=(...), ENVIRONMENT=(K=V ...),
      BINDS=(SOURCE:TARGET:MODE ...) with sources made absolute, VOLUMES=(TARGET ...)
      for named volumes.
"""

import os
import shlex
import sys

import yaml


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def mounts(service, base):
    """(binds, named): binds as (absolute source, target, mode), named as targets."""
    binds, named = [], []
    for v in service.get("volumes", []):
        parts = v.split(":")
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) > 2 else "rw"
        if source.startswith((".", "/")):
            binds.append((os.path.normpath(os.path.join(base, source)), target, mode))
        else:
            named.append(target)
    return binds, named


def fail(message):
    print(f"compose: {message}", file=sys.stderr)
    sys.exit(1)


def ok(message):
    print(f"ok: {message}")


def check(path):
    base = os.path.dirname(os.path.abspath(path))
    compose = load(path)
    services = compose.get("services", {})
    for name in ("dofs", "prometheus", "grafana"):
        if name not in services:
            fail(f"no service {name}")
    for name, service in services.items():
        binds, named = mounts(service, base)
        for source, _, _ in binds:
            if not os.path.exists(source):
                fail(f"service {name} mounts {source}, which does not exist")
        for target in named:
            volume = next(v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == target)
            if volume not in (compose.get("volumes") or {}):
                fail(f"service {name} uses volume {volume}, not declared under volumes")
        for port in service.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                fail(f"service {name} publishes {port} beyond loopback")
        ok(f"service {name}: {len(binds)} files mounted, all present; ports {service.get('ports', [])} on loopback")

    build = services["dofs"]["build"]
    dockerfile = os.path.join(base, build["context"], build.get("dockerfile", "Dockerfile"))
    if not os.path.isfile(dockerfile):
        fail(f"the dofs service's build has no {dockerfile}")
    with open(dockerfile) as f:
        serves_8080 = any(
            line.startswith("CMD") and "0.0.0.0:8080" in line for line in f
        )
    if not serves_8080:
        fail(f"{dockerfile}'s CMD does not serve on 0.0.0.0:8080")
    ok(f"the dofs service builds {os.path.relpath(dockerfile, base)}, whose CMD serves 0.0.0.0:8080")

    binds, _ = mounts(services["prometheus"], base)
    config_flag = next(
        (a.split("=", 1)[1] for a in services["prometheus"].get("command", [])
         if a.startswith("--config.file=")),
        None,
    )
    config = next((s for s, t, _ in binds if t == config_flag), None)
    if config is None:
        fail(f"prometheus reads {config_flag}, which no mount provides")
    targets = [
        t
        for job in load(config).get("scrape_configs", [])
        for sc in job.get("static_configs", [])
        for t in sc.get("targets", [])
    ]
    if "dofs:8080" not in targets:
        fail(f"{config} scrapes {targets}, not dofs:8080")
    for rule_file in load(config).get("rule_files", []):
        target = os.path.join(os.path.dirname(config_flag), rule_file)
        if not any(t == target for _, t, _ in binds):
            fail(f"prometheus loads rules from {target}, which no mount provides")
    ok(f"prometheus reads {os.path.relpath(config, base)} (mounted at {config_flag}), scrapes dofs:8080, its rule files mounted")

    datasources = [
        d
        for s, t, _ in mounts(services["grafana"], base)[0]
        if t == "/etc/grafana/provisioning"
        for root, _, files in os.walk(os.path.join(s, "datasources"))
        for f in files
        for d in load(os.path.join(root, f)).get("datasources", [])
    ]
    urls = [d.get("url") for d in datasources]
    if "http://prometheus:9090" not in urls:
        fail(f"grafana's provisioned data sources are {urls}, not http://prometheus:9090")
    ok("grafana's provisioned data source is the prometheus service, http://prometheus:9090")


def service(path, name):
    base = os.path.dirname(os.path.abspath(path))
    s = load(path)["services"][name]
    binds, named = mounts(s, base)
    env = s.get("environment", {})
    if isinstance(env, dict):
        env = [f"{k}={v}" for k, v in env.items()]
    print(f"COMMAND=({' '.join(shlex.quote(a) for a in s.get('command', []))})")
    print(f"ENVIRONMENT=({' '.join(shlex.quote(e) for e in env)})")
    print(f"BINDS=({' '.join(shlex.quote(':'.join(b)) for b in binds)})")
    print(f"VOLUMES=({' '.join(shlex.quote(t) for t in named)})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        check(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "service":
        service(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
