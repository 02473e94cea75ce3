#!/usr/bin/env bash
# Installs Debian's `chromium` for the UI's browser test (tests/e2e), unless it is there.
# Idempotent: does nothing when /usr/bin/chromium exists. Needs root (or sudo).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi
run_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
export DEBIAN_FRONTEND=noninteractive
run_as_root apt-get update
# A font too: a bare container has none, and pages would render without text.
run_as_root apt-get install -y --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
