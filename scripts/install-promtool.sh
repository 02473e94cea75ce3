#!/usr/bin/env bash
# Installs Debian's `prometheus` package for its `promtool`, which checks the alert rules in
# gateway/ (tests/test_monitoring_dashboards.py). Idempotent: does nothing when promtool is
# there. Needs root (or sudo). The package's server is not started by this script.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  echo "promtool already installed: $(promtool --version 2>&1 | head -1)"
  exit 0
fi
run_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
export DEBIAN_FRONTEND=noninteractive
run_as_root apt-get update
run_as_root apt-get install -y --no-install-recommends prometheus
promtool --version 2>&1 | head -1
