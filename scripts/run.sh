#!/usr/bin/env bash
# Set up and run the gateway on its embedded defaults (SQLite, the offline `demo` model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Named, so the sync may create the database on a first run; the gateway reads the same one.
# The sync keeps labels someone moved in the registry (it says so) and stops the start on a
# conflict: a version in prompts/ edited after it reached the registry.
export LLMOPS_DATABASE_URL="${LLMOPS_DATABASE_URL:-sqlite:///./llmops.db}"
.venv/bin/llmops prompts sync prompts/
exec .venv/bin/llmops serve --config gateway/config.yaml --host "${HOST:-127.0.0.1}" --port "${PORT:-4000}" "$@"
