"""Scale-out shapes, with the ledger on Postgres and limits in Redis (issues 19 and 26).

    .venv/bin/python benchmarks/bench_scaleout.py [--seconds 6] [--shapes connections,workers,replicas]

- connections: one gateway (one worker) at 32, 256 and 1,024 connections: req/s, errors,
  latency, and Redis script calls and round trips per request (from /metrics).
- workers: `llmops serve --workers 1` and `--workers 2` at 256 connections: req/s and the
  per-worker figure.
- replicas: 1, 2 and 3 `llmops serve` processes behind nginx at 256 connections.

Every call uses a virtual key with an rpm limit and a budget (both checked in Redis,
spend settled) and writes a ledger row to Postgres; the model is the built-in mock
provider, so the figures are the gateway's own work. The load generator
(tests/support/loadgen.py) runs in this process and takes CPU from the same cores:
on a 2-core machine, 2 workers compete with it, so read the per-worker figure with
that in mind. The machine's load average is printed before and after each shape.
Needs the machine's Postgres and Redis, and nginx for the replicas shape
(scripts/install-nginx.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.cluster import Cluster, Nginx, limiter_figures, services_missing, wait_ready  # noqa: E402
from tests.support.loadgen import run_load  # noqa: E402

CONFIG = {
    "models": [{"name": "demo", "deployments": [{
        "provider": "mock", "model": "demo",
        "pricing": {"input_cost_per_token": 1e-9, "output_cost_per_token": 1e-9}}]}],
}
CALL = {"model": "demo", "messages": [{"role": "user", "content": "Hello there."}], "max_tokens": 8}


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds(session: int) -> float:
    """CPU time (user + system) of every process in a gateway's session (its workers too)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # field 6 of stat: the session id
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def warm_up(url: str, key: str) -> None:
    """Budget counters seeded in Redis, tokenizer loaded, connections opened."""
    asyncio.run(run_load(url, connections=32, seconds=1, body=CALL, key=key))


def drive(url: str, key: str, connections: int, seconds: float, warm: bool = True):
    if warm:
        warm_up(url, key)
    return asyncio.run(run_load(url, connections=connections, seconds=seconds, body=CALL, key=key))


def shape_connections(cluster: Cluster, key: dict, seconds: float) -> None:
    print(f"\n== one gateway, one worker ({load()})")
    for connections in (32, 256, 1024):
        gw = cluster.start()
        try:
            result = drive(gw.base_url + "/chat/completions", key["key"], connections, seconds)
            figures = limiter_figures(gw)
        finally:
            gw.stop()
            cluster.gateways.remove(gw)
        admitted = max(1.0, figures["admitted_total"])
        print(f"  {result.line()}")
        print(f"      Redis per request: {figures['redis_calls_total'] / admitted:.2f} script calls, "
              f"{figures['redis_round_trips_total'] / admitted:.3f} round trips; "
              f"Redis errors {figures['redis_errors_total']:.0f}, degraded admits "
              f"{figures['degraded_admits_total']:.0f} ({load()})")


def shape_workers(cluster: Cluster, key: dict, seconds: float) -> None:
    print(f"\n== llmops serve --workers N, 256 connections ({load()})")
    for workers in (1, 2):
        gw = cluster.start(workers=workers)
        try:
            warm_up(gw.base_url + "/chat/completions", key["key"])
            before = cpu_seconds(gw.proc.pid)
            result = drive(gw.base_url + "/chat/completions", key["key"], 256, seconds, warm=False)
            cpu = cpu_seconds(gw.proc.pid) - before
        finally:
            gw.stop()
            cluster.gateways.remove(gw)
        # CPU per request moves far less with the machine's load than req/s: flat from
        # 1 to 2 workers means the work scales, given the cores.
        served = result.completed
        print(f"  --workers {workers}: {result.rps:7.1f} req/s = {result.rps / workers:7.1f} per worker, "
              f"errors {result.errors}, p50 {result.percentile(0.5) * 1000:.1f} ms, "
              f"p99 {result.percentile(0.99) * 1000:.1f} ms; gateway CPU {cpu * 1000 / max(1, served):.2f} ms "
              f"per request ({load()})")


def shape_replicas(cluster: Cluster, key: dict, seconds: float) -> None:
    print(f"\n== N replicas behind nginx, 256 connections ({load()})")
    for n in (1, 2, 3):
        replicas = [cluster.start(wait=False) for _ in range(n)]
        for gw in replicas:
            wait_ready(gw)
        lb = Nginx(cluster.tmp / f"nginx-{n}", [gw.port for gw in replicas]).start()
        try:
            result = drive(lb.url + "/v1/chat/completions", key["key"], 256, seconds)
        finally:
            lb.stop()
            for gw in replicas:
                gw.stop()
                cluster.gateways.remove(gw)
        print(f"  {n} replica(s): {result.rps:7.1f} req/s = {result.rps / n:7.1f} per replica, errors {result.errors}, "
              f"p50 {result.percentile(0.5) * 1000:.1f} ms, p99 {result.percentile(0.99) * 1000:.1f} ms ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--shapes", default="connections,workers,replicas")
    args = parser.parse_args()
    reason = services_missing()
    if reason:
        sys.exit(reason)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        cluster = Cluster(Path(tmp), CONFIG)
        try:
            key = cluster.create_key(rpm=100_000_000, budget=1_000_000)
            shapes = {"connections": shape_connections, "workers": shape_workers, "replicas": shape_replicas}
            for name in args.shapes.split(","):
                shapes[name](cluster, key, args.seconds)
        finally:
            cluster.close()


if __name__ == "__main__":
    main()
