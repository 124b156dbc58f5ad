#!/usr/bin/env bash
# Makes headless Chromium and its WebDriver available for the docs-page e2e test:
#   /usr/bin/chromium and /usr/bin/chromedriver (Debian packages chromium, chromium-driver).
# Idempotent: exits 0 at once when both are already present.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "chromium.sh: not root and sudo is not available; cannot install chromium" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
echo "chromium.sh: installing chromium and chromium-driver (Debian packages)" >&2
if ! $SUDO apt-get update; then
  echo "chromium.sh: apt-get update failed" >&2
  exit 1
fi
if ! $SUDO apt-get install -y --no-install-recommends chromium chromium-driver; then
  echo "chromium.sh: apt-get install chromium chromium-driver failed" >&2
  exit 1
fi

for bin in /usr/bin/chromium /usr/bin/chromedriver; do
  if [[ ! -x "$bin" ]]; then
    echo "chromium.sh: $bin is still missing after installing chromium and chromium-driver" >&2
    exit 1
  fi
done
echo "chromium.sh: chromium and chromedriver are installed" >&2
