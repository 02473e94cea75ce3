#!/usr/bin/env bash
# Build (once) a separate virtual environment holding MLflow, for the test that logs eval runs to a
# real `mlflow server` (tests/test_eval_mlflow.py). llmops itself talks to MLflow over its REST API
# and does not need the package (llmops/evaluation/mlflow_log.py says why).
#
#   scripts/install-mlflow.sh [DIR]
#
# DIR defaults to ${LLMOPS_MLFLOW_ENV:-$HOME/.cache/llmops/mlflow-env}: outside the repo, so CI runs
# and sessions on the same machine reuse it. Measured here: 50 s of CPU (5 min of wall time on a
# machine loaded 7x over its 2 cores), 850 MB on disk; later runs find the marker and return at once. The marker is written last, after an import check: a half-built env is
# rebuilt on the next run.
set -euo pipefail

MLFLOW_SPEC="${LLMOPS_MLFLOW_SPEC:-mlflow>=3.1,<4}"
ENV_DIR="${1:-${LLMOPS_MLFLOW_ENV:-$HOME/.cache/llmops/mlflow-env}}"
MARKER="$ENV_DIR/.llmops-mlflow-ready"
PYTHON_BIN="${LLMOPS_MLFLOW_PYTHON:-python3}"

if [[ -f "$MARKER" ]] && grep -qxF "$MLFLOW_SPEC" "$MARKER"; then
    echo "mlflow env ready: $ENV_DIR ($("$ENV_DIR/bin/python" -c 'import mlflow; print(mlflow.__version__)'))"
    exit 0
fi

echo "building the mlflow env ($MLFLOW_SPEC) in $ENV_DIR" >&2
rm -rf "$ENV_DIR"
mkdir -p "$(dirname "$ENV_DIR")"
"$PYTHON_BIN" -m venv "$ENV_DIR"
"$ENV_DIR/bin/python" -m pip install --quiet --upgrade pip
"$ENV_DIR/bin/python" -m pip install --quiet "$MLFLOW_SPEC"
"$ENV_DIR/bin/python" -c 'import mlflow, mlflow.server; print("mlflow", mlflow.__version__)'
echo "$MLFLOW_SPEC" > "$MARKER"
