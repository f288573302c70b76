#!/usr/bin/env bash
# The kill campaign: builds `dofs` with the embedded runtime's fail points
# (as target/<profile>/dofs-failpoints, so the normal `dofs` stays without
# them) and the `dofs-kill-campaign` tool, then runs the campaign.
#
# Usage: scripts/kill-campaign.sh [--short | --full] [--release] [campaign flags...]
#   --short    the CI version: 3,000 orders, 32 clients, 12 kills (default)
#   --full     20,000 orders, 32 clients, 50 kills
#   --release  build and run release binaries
# Further flags go to dofs-kill-campaign (see `--help`), e.g. --seed 42.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=(--orders 3000 --clients 32 --kills 12)
profile=debug
cargo_profile=()
extra=()
for arg in "$@"; do
  case "$arg" in
    --short) preset=(--orders 3000 --clients 32 --kills 12) ;;
    --full) preset=(--orders 20000 --clients 32 --kills 50) ;;
    --release) profile=release; cargo_profile=(--release) ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) extra+=("$arg") ;;
  esac
done

# Where cargo puts binaries (CARGO_TARGET_DIR, a config file, or ./target).
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target_dir/$profile"
# Both builds select the same packages, so they share every dependency build.
cargo build --locked "${cargo_profile[@]}" -p dofs-cli -p dofs-chaos --features dofs-cli/fail-points
cp "$bin/dofs" "$bin/dofs-failpoints.tmp"
mv -f "$bin/dofs-failpoints.tmp" "$bin/dofs-failpoints"
# Put the normal `dofs` (no fail points) back in place; its build is cached.
cargo build --locked "${cargo_profile[@]}" -p dofs-cli -p dofs-chaos
"$bin/dofs-kill-campaign" --dofs "$bin/dofs-failpoints" "${preset[@]}" "${extra[@]}"
