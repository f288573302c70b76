"""Checks that .dockerignore leaves in the build context everything `cargo build -p
dofs-cli` reads: the workspace manifest and lock file, every member's Cargo.toml, and every
file named by include_str!/include_bytes! outside tests. Docker's matching is Go's
filepath.Match per pattern, with `**` and `!` exceptions; fnmatch on the path and each
of its parents covers the patterns used here (plain paths, `*` globs, `**/` prefixes)."""

import fnmatch
import pathlib
import re
import sys
import tomllib

root = pathlib.Path(sys.argv[1])
patterns = [
    line.strip()
    for line in (root / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.strip().startswith("#")
]


def excluded(rel):
    """Whether .dockerignore leaves `rel` out. fnmatch's `*` also crosses `/`, so this
    errs towards "left out": a false alarm, never a miss."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    out = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        hit = any(fnmatch.fnmatch(p, pat) for p in prefixes)
        if pat.startswith("**/"):
            hit = hit or any(fnmatch.fnmatch(part, pat[3:]) for part in parts)
        if hit:
            out = not negate
    return out


needed = ["Cargo.toml", "Cargo.lock", "Dockerfile"]
workspace = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]
needed += [f"{m}/Cargo.toml" for m in workspace["members"]]
include = re.compile(r'include_(?:str|bytes)!\(\s*"([^"]+)"')
for member in workspace["members"]:
    for src in (root / member).rglob("*.rs"):
        rel = src.relative_to(root).as_posix()
        if "/tests/" in rel or "/benches/" in rel:
            continue
        for name in include.findall(src.read_text(encoding="utf-8")):
            target = (src.parent / name).resolve().relative_to(root.resolve()).as_posix()
            needed.append(target)

bad = [n for n in sorted(set(needed)) if excluded(n) or not (root / n).exists()]
for n in bad:
    print(f"left out of the build context (or missing): {n}")
print(f"{len(set(needed))} files the build reads; {len(bad)} left out")
sys.exit(1 if bad else 0)
