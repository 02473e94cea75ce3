"""Does putting the ledger writer and side work in SCHED_IDLE hurt the 1-connection tail
on a busy machine (issue 19's lead: priority inversion through the GIL)?

    python benchmarks/sched_idle_ab.py --other /path/to/a/copy/of/llmops/parent [--seconds 10] [--pairs 3]

Runs `llmops serve` from this checkout (A) and from `--other` (B, a copy of the package
with the variant to compare) in turn, `--pairs` times, each for `--seconds` of wrk at
one connection against the mock provider, with a virtual key that has a budget and an
rpm limit (so key reads ahead, spend flushes and the ledger writer all run). It prints
p50 / p99 / max per run and the machine's load average. Run as root to see SCHED_IDLE
used by the ledger writer (it needs CAP_SYS_NICE to leave it again); side work enters
it either way.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LUA = """wrk.method = "POST"
wrk.body = '{"model": "demo", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_once(root: Path, tmp: Path, token: str, seconds: int) -> dict[str, float]:
    port = _free_port()
    config = tmp / "gateway.yaml"
    env = {**os.environ, "PYTHONPATH": str(root), "LLMOPS_DATABASE_URL": f"sqlite:///{tmp}/llmops.db",
           "LLMOPS_SPILL_DIR": str(tmp / "spill"), "LLMOPS_MASTER_KEY": "sk-master-bench"}
    proc = subprocess.Popen([sys.executable, "-m", "llmops.cli", "serve", "--config", str(config), "--port",
                             str(port), "--log-level", "warning"], env=env, cwd=tmp,
                            stdout=open(tmp / "gateway.log", "a"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline and proc.poll() is None, (tmp / "gateway.log").read_text()[-2000:]
            time.sleep(0.2)
        script = tmp / "post.lua"
        script.write_text(LUA % token)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        subprocess.run(["wrk", "-t1", "-c1", "-d2s", "-s", str(script), url], capture_output=True, check=True)
        load = os.getloadavg()[0]
        out = subprocess.run(["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", "-s", str(script), url],
                             capture_output=True, text=True, check=True).stdout
    finally:
        proc.terminate()
        proc.wait(30)
    found = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    result = {"load": load}
    for pct, text in found.items():
        number, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        result[f"p{pct}"] = _ms(number, unit)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(rps.group(1)) if rps else 0.0
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(errors.group(1)) if errors else 0.0
    maximum = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(\w+)", out)
    if maximum:
        result["max"] = _ms(*maximum.groups())
    return result


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", required=True, type=Path, help="directory holding the llmops package of variant B")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk")
    tmp = Path(tempfile.mkdtemp(prefix="sched-idle-ab-"))
    config = {"auth": "keys", "guardrails": {"input": [], "output": []},
              "models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo",
                                                           "pricing": {"input_cost_per_token": 1e-9, "output_cost_per_token": 1e-9}}]}]}
    (tmp / "gateway.yaml").write_text(yaml.safe_dump(config))
    from llmops.governance.keys import KeyStore

    token, _ = KeyStore(f"sqlite:///{tmp}/llmops.db").create(name="bench", budget=1000.0, rpm=10_000_000)
    rows = []
    for pair in range(args.pairs):
        for name, root in (("A (this checkout)", REPO), ("B (--other)", args.other)):
            result = run_once(root, tmp, token, args.seconds)
            rows.append((pair, name, result))
            print(f"pair {pair} {name:18} load {result['load']:.1f}  p50 {result.get('p50', 0):.2f} ms  "
                  f"p99 {result.get('p99', 0):.2f} ms  max {result.get('max', 0):.1f} ms  rps {result['rps']:.0f}  non-2xx {result['non2xx']:.0f}",
                  flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
