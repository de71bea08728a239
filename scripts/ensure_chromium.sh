#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (tests/integration/app/test_inspector*.py)
# when /usr/bin/chromium is missing. Playwright drives this binary through executable_path:
# never `playwright install` (its browser download is not reachable here, and CI pins Debian's).
# Needs root (CI runs as root on a clean machine); waits for another apt run's lock.
set -euo pipefail
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure_chromium: $CHROMIUM is missing and this is not root: run 'apt-get install -y chromium'" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
"$CHROMIUM" --version
