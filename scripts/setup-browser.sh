#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its WebDriver, which the
# dashboard test (crates/cli/tests/dashboard.rs) drives. Idempotent: does
# nothing when both are already installed. Needs root (or sudo) and apt.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "setup-browser: chromium and chromedriver already installed"
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "setup-browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
