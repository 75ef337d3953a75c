#!/usr/bin/env bash
# Debian's Chromium for the headless browser tests (tests/e2e), installed only when missing.
# Playwright drives this binary; `playwright install` would download a browser build of its
# own, which a machine that reaches only package registries cannot do.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
