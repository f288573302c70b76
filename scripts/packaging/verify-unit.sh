#!/usr/bin/env bash
# Runs inside `unshare --mount` (scripts/test-packaging.sh): puts the dofs binary and its
# man page where the unit names them, on tmpfs mounts only this namespace sees, then
# `systemd-analyze verify` and the unit's exposure score (`security --offline`).
# Usage: verify-unit.sh UNIT   (env: DOFS_BIN, WORK)
set -euo pipefail
unit="$1"
mount --make-rprivate /
mount -t tmpfs tmpfs /usr/local/bin
install -m 0755 "$DOFS_BIN" /usr/local/bin/dofs
mkdir -p /usr/local/share/man
mount -t tmpfs tmpfs /usr/local/share/man
mkdir -p /usr/local/share/man/man1
/usr/local/bin/dofs man >/usr/local/share/man/man1/dofs.1
cp "$unit" "$WORK/dofs.service"
systemd-analyze verify "$WORK/dofs.service"
systemd-analyze security --offline=yes "$WORK/dofs.service" | tail -n 1
