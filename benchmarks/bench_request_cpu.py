"""CPU per request of the gateway's own work, and what each part of it costs.

    python benchmarks/bench_request_cpu.py [--requests 3000] [--rounds 3]

Calls the gateway's ASGI app in process (no HTTP server in front) for one chat call at
a time against gatewaybench's nginx upstream, and reads the CPU time the process used
per request, all threads together, with the same config as bench_gateway.py. Each
variant runs in a fresh process, the variants take turns, and the medians over the
rounds are printed: CPU time moves much less with a busy machine than latency does.

Variants:
  full        the default governance: virtual key, limits, guardrails, cost, ledger
  no-ledger   the same, rows not queued (what the ledger writer costs)
  bare        no key and no guardrails (open gateway), ledger on
  bare-no-ledger
  noguard-no-ledger  the key and limits on, guardrails and ledger off (bench_instructions.py
              uses it; not among this script's variants)
  floor       floor_proxy.py's pass-through app on the same upstream client: full minus
              floor is the gateway's own work
The main thread's and the ledger writer's shares are printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO.parent / "shared" / "tools" / "gatewaybench"))

import bench_gateway  # noqa: E402
import gatewaybench  # noqa: E402

VARIANTS = ("full", "no-ledger", "bare", "bare-no-ledger", "floor")
GUARDRAILS_OFF = "guardrails: {enabled: false, input: [], output: []}\n"
WARMUP = 500


def thread_cpu(native_id: int | None) -> float:
    """Seconds of CPU a thread of this process has used so far (Linux); 0 for no thread."""
    if native_id is None:
        return 0.0
    stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class InProcess:
    """One variant's app, warmed up, with `one()` making one chat call through it."""

    def __init__(self, app, ledger, one):
        self.app, self.ledger, self.one = app, ledger, one

    async def close(self) -> None:
        if self.ledger is not None:
            await self.app.shutdown()


async def prepare(variant: str, work: Path) -> InProcess:
    """The gateway's ASGI app (or the floor's) for `variant`, called WARMUP times."""
    import orjson

    from llmops.gateway.app import create_app
    from llmops.governance.keys import KeyStore

    bare = variant.startswith("bare") or variant == "floor"
    config = work / "bench.yaml"
    guardrails_off = bare or variant.startswith("noguard")
    config.write_text(bench_gateway.CONFIG + (GUARDRAILS_OFF if guardrails_off else ""))
    key = "none"
    if not bare:
        key, _ = KeyStore().create("bench", **bench_gateway.KEY_LIMITS)
    if variant == "floor":
        import floor_proxy

        from llmops.gateway.upstream_http import UpstreamClient

        floor_proxy.client = UpstreamClient()  # as its lifespan would
        app, ledger = floor_proxy.app, None
    else:
        app = create_app(config)
        await app.startup()
        ledger = app.services.governance.ledger
        if variant.endswith("no-ledger"):
            ledger.record = lambda row: None
    body = orjson.dumps(gatewaybench.BODY)
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [
        (b"authorization", b"Bearer " + key.encode()), (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode())]}
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    async def one() -> None:
        sent.clear()
        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"{variant}: the gateway answered {sent[0]['status']}: {sent[-1].get('body', b'')[:300]!r}")

    for _ in range(WARMUP):
        await one()
    if ledger is not None:
        ledger.flush()
    return InProcess(app, ledger, one)


async def measure(variant: str, requests: int, work: Path) -> dict[str, float]:
    run = await prepare(variant, work)
    writer = next((t.native_id for t in threading.enumerate() if t.name == "llmops-ledger"), None)
    writer_cpu, cpu, wall = thread_cpu(writer), time.process_time(), time.perf_counter()
    for _ in range(requests):
        await run.one()
    wall = time.perf_counter() - wall
    if run.ledger is not None:
        run.ledger.flush()  # the rows of this window are written, and counted
    cpu, writer_cpu = time.process_time() - cpu, thread_cpu(writer) - writer_cpu
    await run.close()
    return {"cpu_us": cpu / requests * 1e6, "wall_us": wall / requests * 1e6,
            "writer_us": writer_cpu / requests * 1e6}


def child_env(variant: str, work: Path) -> dict[str, str]:
    env = bench_gateway.gateway_env(work)
    if variant.startswith("bare"):
        del env["LLMOPS_MASTER_KEY"]  # open gateway: no key asked
    return env


def run_child(variant: str, requests: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="llmops-cpu-"))
    env = child_env(variant, work)
    # One core, as bench_gateway pins the gateway: the writer thread shares it.
    cmd = ["taskset", "-c", "0", sys.executable, __file__, "--child", variant, "--requests", str(requests), "--work", str(work)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", choices=VARIANTS)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.child, args.requests, args.work))))
        return
    bench_gateway.ensure_tools(with_litellm=False)
    upstream = Path(tempfile.mkdtemp(prefix="llmops-cpu-upstream-"))
    gatewaybench.start_upstream(str(upstream))
    results: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    try:
        for round_ in range(args.rounds):
            for variant in VARIANTS:
                res = run_child(variant, args.requests)
                results[variant].append(res)
                print(json.dumps({"round": round_ + 1, "variant": variant, **{k: round(v, 1) for k, v in res.items()}}),
                      flush=True)
    finally:
        gatewaybench.stop_upstream(str(upstream))
    print(f"{'variant':16s} {'CPU us/request':>15s} {'of it, ledger writer':>21s} {'wall us/request':>16s}  (medians)")
    for variant, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{variant:16s} {med['cpu_us']:15.1f} {med['writer_us']:21.1f} {med['wall_us']:16.1f}")


if __name__ == "__main__":
    main()
