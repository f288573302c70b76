"""What a Prometheus sees of DOFS, through its HTTP API (scripts/packaging/run-compose.sh).

  prometheus_check.py URL JOB ENVIRONMENT

Waits (up to 60 s) until the target of job JOB is up, DOFS's series carry
environment=ENVIRONMENT, and every alert rule has been evaluated without error;
prints one line per check, or exits 1 saying what was last seen.
"""

import json
import sys
import time
import urllib.request


# Straight to the service: a proxy from the environment would not know its name.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def api(base, path):
    with OPENER.open(f"{base}/api/v1/{path}", timeout=5) as r:
        return json.load(r)["data"]


def wait(what, probe, seconds=60):
    deadline, last = time.time() + seconds, None
    while time.time() < deadline:
        try:
            done, last = probe()
            if done:
                return last
        except OSError as e:
            last = e
        time.sleep(0.2)
    sys.exit(f"{what}; last seen: {last}")


def main(base, job, environment):
    def target():
        up = [t for t in api(base, "targets")["activeTargets"]
              if t["labels"].get("job") == job and t["health"] == "up"]
        return bool(up), up or api(base, "targets")
    up = wait(f"the {job} target is not up", target)[0]
    print(f"ok: the {job} target is up, scraped at {up['scrapeUrl']}")

    def series():
        r = api(base, "query?query=dofs_orders")["result"]
        return bool(r) and all(s["metric"].get("environment") == environment for s in r), r
    r = wait(f"dofs_orders is not in Prometheus with environment={environment}", series)
    print(f"ok: Prometheus holds dofs_orders ({len(r)} series, environment={environment})")

    def rules():
        groups = api(base, "rules")["groups"]
        rs = [(g["file"], r) for g in groups for r in g["rules"]]
        return bool(rs) and all(r["health"] == "ok" for _, r in rs), rs
    rs = wait("the alert rules are not all evaluated without error", rules)
    names = ", ".join(r["name"] for _, r in rs)
    print(f"ok: {len(rs)} alert rules from {rs[0][0]} loaded and evaluated: {names}")

    version = api(base, "status/buildinfo")["version"]
    print(f"ok: {base} answers: Prometheus {version}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
