"""Chat, Responses and Messages side by side: llmops against LiteLLM's proxy, one run.

Each gateway runs on one core (CPU 0) in front of gatewaybench's nginx upstream (chat
completions, JSON on :18080 and SSE on :18081), with wrk on CPU 1. For every surface,
32 connections whole and streamed; both gateways translate Responses and Messages to
the upstream's chat completions. llmops runs with governance on (a virtual key with
limits and budget, the ledger, the default guardrails), as in bench_gateway.py.

    .venv/bin/python benchmarks/bench_surfaces.py [--seconds 8] [--no-litellm]

Prints one JSON line per gateway, surface and shape (rps, p50_ms, p99_ms, errors,
non2xx), then SUMMARY with llmops' req/s over LiteLLM's per surface and shape. A
gateway that answers a shape with errors has its errors counted, not hidden.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_gateway import BENCH, CONFIG, LITELLM_ENV, ensure_tools, gateway_env, make_key  # noqa: E402


def _gatewaybench():
    spec = importlib.util.spec_from_file_location("gatewaybench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GB = _gatewaybench()
MESSAGES = GB.BODY["messages"]
SURFACES = {
    "chat": ("/v1/chat/completions", lambda model, stream: {**GB.BODY, "model": model, "stream": stream}),
    "responses": ("/v1/responses", lambda model, stream: {
        "model": model, "instructions": MESSAGES[0]["content"], "input": MESSAGES[1]["content"],
        "max_output_tokens": 32, "stream": stream}),
    "messages": ("/v1/messages", lambda model, stream: {
        "model": model, "system": MESSAGES[0]["content"], "messages": [MESSAGES[1]], "max_tokens": 32,
        "stream": stream}),
}
SHAPES = (("c32", False), ("c32-stream", True))
LITELLM_KEY = "sk-bench-litellm-master-0123456789"
# custom_openai/: LiteLLM bridges /v1/responses through the upstream's chat completions,
# as llmops does (an openai/ model would send it to the upstream's /v1/responses).
LITELLM_CONFIG = """model_list:
  - model_name: bench-model
    litellm_params: {model: custom_openai/gpt-4o-mini, api_base: 'http://127.0.0.1:18080/v1', api_key: sk-fake}
  - model_name: bench-stream
    litellm_params: {model: custom_openai/gpt-4o-mini, api_base: 'http://127.0.0.1:18081/v1', api_key: sk-fake}
litellm_settings: {num_retries: 0, request_timeout: 30, telemetry: false}
general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}
"""


def wrk(url: str, body: dict, key: str, seconds: int, work: Path) -> dict:
    lua = work / "post.lua"
    lua.write_text(
        'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\n'
        f'wrk.headers["Authorization"]="Bearer {key}"\nwrk.headers["x-api-key"]="{key}"\n'
        'wrk.headers["anthropic-version"]="2023-06-01"\n'
        f"wrk.body={json.dumps(json.dumps(body))}\n"
        "done=function(summary,latency,requests)\n"
        ' io.write(string.format("JSON {\\"p50_ms\\":%.3f,\\"p99_ms\\":%.3f,\\"rps\\":%.1f,\\"errors\\":%d,\\"non2xx\\":%d}\\n",'
        "latency:percentile(50)/1000,latency:percentile(99)/1000,summary.requests/(summary.duration/1e6),"
        "summary.errors.connect+summary.errors.read+summary.errors.write+summary.errors.timeout,summary.errors.status))\nend\n"
    )
    out = GB.sh(f"taskset -c 1 wrk -t1 -c32 -d{seconds}s --timeout 10s -s {lua} {url}")
    found = re.search(r"^JSON (.*)$", out.stdout, re.M)
    return json.loads(found.group(1)) if found else {"error": (out.stdout + out.stderr)[-300:]}


def probe(base: str, key: str) -> dict[str, str]:
    """One call per surface before the load: what each answers, so a refusal is visible."""
    seen = {}
    for surface, (path, make) in SURFACES.items():
        request = urllib.request.Request(
            base + path, data=json.dumps(make("bench-model", False)).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}", "x-api-key": key,
                     "anthropic-version": "2023-06-01"})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                seen[surface] = f"{reply.status}: {reply.read(120)!r}"
        except Exception as exc:  # a benchmark reports, it does not stop
            seen[surface] = f"{type(exc).__name__}: {str(exc)[:120]}"
    return seen


def run(name: str, cmd: str, base: str, key: str, env: dict, seconds: int, work: Path) -> list[dict]:
    log = open(work / f"{name}.log", "w")
    proc = subprocess.Popen(f"exec taskset -c 0 {cmd}", shell=True, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **env}, start_new_session=True)
    results = []
    try:
        if GB.wait_ready(base + "/v1/chat/completions", headers={"Authorization": "Bearer " + key}) is None:
            return [{"target": name, "error": f"not ready; see {log.name}"}]
        print(json.dumps({"target": name, "probe": probe(base, key)}), flush=True)
        for surface, (path, make) in SURFACES.items():
            for shape, stream in SHAPES:
                result = wrk(base + path, make("bench-stream" if stream else "bench-model", stream), key, seconds, work)
                result.update(target=name, surface=surface, shape=shape, rss_mb=GB.rss_mb(proc.pid))
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--no-litellm", action="store_true")
    args = ap.parse_args()
    ensure_tools(not args.no_litellm)
    print(f"INTERPRETER {os.path.realpath(sys.executable)} {sys.version.split()[0]}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="llmops-surfaces-"))
    (work / "bench.yaml").write_text(CONFIG)
    env = gateway_env(work)
    key = make_key(env)
    GB.start_upstream(str(work))
    results = []
    try:
        llmops = f"{Path(sys.executable).parent / 'llmops'} serve --config {work}/bench.yaml --port 4100 --log-level warning"
        results += run("llmops", llmops, "http://127.0.0.1:4100", key, env, args.seconds, work)
        if not args.no_litellm:
            (work / "litellm.yaml").write_text(LITELLM_CONFIG)
            litellm = f"{LITELLM_ENV / 'bin' / 'litellm'} --config {work}/litellm.yaml --host 127.0.0.1 --port 4000 --num_workers 1"
            litellm_env = {"LITELLM_MASTER_KEY": LITELLM_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                           "LITELLM_MODE": "PRODUCTION"}
            time.sleep(1)
            results += run("litellm", litellm, "http://127.0.0.1:4000", LITELLM_KEY, litellm_env, args.seconds, work)
    finally:
        GB.stop_upstream(str(work))
    by = {(r.get("target"), r.get("surface"), r.get("shape")): r for r in results}
    summary = {}
    for surface in SURFACES:
        for shape, _ in SHAPES:
            ours, theirs = by.get(("llmops", surface, shape)), by.get(("litellm", surface, shape))
            if not (ours and theirs and ours.get("rps") and theirs.get("rps")):
                continue
            failed = [r["target"] for r in (ours, theirs) if r.get("non2xx") or r.get("errors")]
            # A fast stream of refusals is no throughput: say who failed instead of a ratio.
            summary[f"{surface}_{shape}_rps_vs_litellm"] = (
                f"errors from {', '.join(failed)}" if failed else round(ours["rps"] / theirs["rps"], 2)
            )
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
