"""Gateway throughput, added latency and memory against LiteLLM's proxy, in one run.

Drives ../shared/tools/gatewaybench (nginx fake upstream, wrk load, each gateway on
one core) with the default governance on: a virtual key (limits checked, spend
settled), cost accounting, the ledger (SQLite), the default input guardrails.

    python benchmarks/bench_gateway.py [--seconds 8] [--no-litellm] [--rounds 1]

Also runs the "floor" target, benchmarks/floor_proxy.py: a bare pass-through on the
gateway's own stack (uvicorn with the gateway's HTTP protocol, and its upstream client)
with no gateway logic, i.e. what the stack alone costs here; the gap between floor and
gateway is the gateway's work.

On a shared machine one 8-second window per target can land in a slow minute for one
target and a fast one for the next. `--rounds N` measures direct, floor and the gateway
N times in turn (LiteLLM once, in the first round), prints every round, and ends with
the median of each latency figure over the rounds.

The gateway, the floor and LiteLLM's environment (when this script creates it) run on
the interpreter that runs this script, which is printed first: the build matters (see
scripts/setup.sh; pyenv's default build of 3.11 added about 0.03 ms at p50 here against
Debian's PGO-built one), so run it with .venv/bin/python.

Needs nginx-light and wrk (apt) and, for the LiteLLM column, a virtual environment
with litellm[proxy]; both are set up by this script when missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "tools" / "gatewaybench" / "gatewaybench.py"
LITELLM_ENV = Path(os.environ.get("LLMOPS_LITELLM_ENV", Path.home() / ".cache" / "llmops" / "litellm-proxy-env"))

CONFIG = """
models:
  - name: bench-model
    deployments:
      - {provider: openai, model: gpt-4o-mini, api_base: "http://127.0.0.1:18080/v1", api_key: sk-fake}
  - name: bench-stream
    deployments:
      - {provider: openai, model: gpt-4o-mini, api_base: "http://127.0.0.1:18081/v1", api_key: sk-fake}
router: {retries: 0}
"""


def ensure_tools(with_litellm: bool) -> None:
    missing = [t for t in ("nginx", "wrk") if not shutil.which(t)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-qq", "nginx-light", "wrk"], check=True)
    if with_litellm and not (LITELLM_ENV / "bin" / "litellm").exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_ENV)], check=True)
        subprocess.run([str(LITELLM_ENV / "bin" / "pip"), "install", "-q",
                        "litellm[proxy]>=1.80,!=1.82.7,!=1.82.8,<2"], check=True)


# The virtual key every gateway benchmark calls with: limits checked and spend settled,
# never reached.
KEY_LIMITS = {"rpm": 10_000_000, "tpm": 10_000_000_000, "budget": 1e9, "period": "total"}
MASTER_KEY = "sk-bench-master-0123456789abcdef"


def gateway_env(work: Path) -> dict[str, str]:
    """The environment of a benchmarked gateway: its SQLite database and spill files in `work`."""
    return {**os.environ, "LLMOPS_DATABASE_URL": f"sqlite:///{work}/bench.db", "LLMOPS_MASTER_KEY": MASTER_KEY,
            "LLMOPS_SPILL_DIR": str(work / "spill")}


def make_key(env: dict) -> str:
    code = f"from llmops.governance.keys import KeyStore; k, _ = KeyStore().create('bench', **{KEY_LIMITS!r}); print(k)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--only", default=None, help="passed to gatewaybench (e.g. direct,project)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat direct, floor and gateway this many times")
    args = ap.parse_args()
    ensure_tools(not args.no_litellm)
    print(f"INTERPRETER {os.path.realpath(sys.executable)} {sys.version.split()[0]}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="llmops-bench-"))
    (work / "bench.yaml").write_text(CONFIG)
    env = gateway_env(work)
    key = make_key(env)
    llmops_bin = Path(sys.executable).parent / "llmops"
    cmd = [sys.executable, str(BENCH), "--seconds", str(args.seconds), "--project-key", key,
           "--project-cmd", f"{llmops_bin} serve --config {work}/bench.yaml --port 4100 --log-level warning",
           "--project-url", "http://127.0.0.1:4100/v1/chat/completions"]
    floor = Path(__file__).resolve().parent / "floor_proxy.py"
    cmd += ["--floor-cmd", f"{sys.executable} {floor} --port 4100"]
    if not args.no_litellm:
        env["LITELLM_BIN"] = str(LITELLM_ENV / "bin" / "litellm")
    summaries = []
    for round_ in range(args.rounds):
        only = args.only or ("direct,floor,project" if round_ else None)
        summaries.append(run_round(cmd + (["--only", only] if only else []), env))
    if args.rounds > 1:
        print_medians(summaries)


def run_round(cmd: list[str], env: dict) -> dict:
    """One gatewaybench run, its lines echoed; returns its SUMMARY."""
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    print(out, end="", flush=True)
    for line in out.splitlines():
        if line.startswith("SUMMARY "):
            return json.loads(line[len("SUMMARY "):])
    return {}


def print_medians(summaries: list[dict]) -> None:
    keys = [k for k in summaries[0] if k.endswith("_ms") or k.endswith("_vs_floor")]
    medians = {}
    for k in keys:
        values = [s[k] for s in summaries if k in s]
        medians[k] = round(statistics.median(values), 3)
        print(f"{k}: {values} median {medians[k]}")
    print("MEDIANS " + json.dumps(medians))


if __name__ == "__main__":
    main()
