#!/usr/bin/env bash
# Installs Debian's `nginx` for the multi-replica test (tests/test_scaleout_replicas.py),
# which runs its own nginx as a load balancer (`nginx -p <tmpdir> -c <conf>`, pid and logs
# in that directory, any user). Idempotent: does nothing when nginx is there. Needs root
# (or sudo). The package's own server is not used; where the package starts it, it is
# stopped again so nothing listens on port 80 because of this script.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  echo "nginx already installed: $( (nginx -v || /usr/sbin/nginx -v) 2>&1 | head -1)"
  exit 0
fi
run_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}
export DEBIAN_FRONTEND=noninteractive
run_as_root apt-get update
run_as_root apt-get install -y --no-install-recommends nginx
if [ -f /run/nginx.pid ]; then
  run_as_root /usr/sbin/nginx -s stop 2>/dev/null || true
fi
/usr/sbin/nginx -v 2>&1 | head -1
