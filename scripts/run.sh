#!/usr/bin/env bash
# Set up and run the gateway on its embedded defaults (SQLite, the offline `demo` model).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/llmops prompts sync prompts/
exec .venv/bin/llmops serve --config gateway/config.yaml --host "${HOST:-127.0.0.1}" --port "${PORT:-4000}" "$@"
