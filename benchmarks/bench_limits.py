"""Cost of the gateway's limit checks on the hot path, in microseconds.

Measures, per request: a key-cache hit (`KeyStore.authenticate`), and admit + settle on
the local limiter and on the Redis limiter (sequential latency, and throughput with
concurrent requests). Prints a table; asserts nothing.

    python benchmarks/bench_limits.py [--n 20000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from llmops.governance.keys import KeyInfo, KeyStore
from llmops.governance.limits import make_limiter

HEAVY = dict(rpm=10**9, tpm=10**12, parallel=10**6, budget=10**9, period="month")


def key(**limits) -> KeyInfo:
    return KeyInfo(id="key_bench_" + uuid.uuid4().hex[:8], name="bench", prefix="sk-llmops-benchxxx", **limits)


def _report(rounds: list[float]) -> str:
    rounds = sorted(rounds)
    return f"{rounds[0]:.2f} µs (median {statistics.median(rounds):.2f})"


async def bench_auth(db_url: str, n: int) -> str:
    """CPU µs per cache hit: best and median of 10 rounds."""
    store = KeyStore(db_url)
    plaintext, _ = store.create("bench")
    await store.check(plaintext)  # fill the cache
    rounds = []
    for _ in range(10):
        start = time.process_time()
        for _ in range(n // 10):
            await store.check(plaintext)
        rounds.append((time.process_time() - start) / (n // 10) * 1e6)
    return _report(rounds)


async def local_cost(limiter, info: KeyInfo, n: int) -> str:
    """CPU µs of admit+settle, one request at a time: best and median of 10 rounds.

    CPU time, not wall time: on a shared machine wall time mostly measures the neighbours.
    """
    rounds = []
    for _ in range(10):
        start = time.process_time()
        for _ in range(n // 10):
            res = await limiter.admit(info, user=None, estimated_tokens=500, max_cost=0.001)
            await limiter.settle(res, 420, 0.0008)
        rounds.append((time.process_time() - start) / (n // 10) * 1e6)
    return _report(rounds)


async def sequential(limiter, info: KeyInfo, n: int) -> str:
    """Wall µs of admit+settle through Redis, one request at a time (two round trips)."""
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n // 5):
            res = await limiter.admit(info, user=None, estimated_tokens=500, max_cost=0.001)
            await limiter.settle(res, 420, 0.0008)
        rounds.append((time.perf_counter() - start) / (n // 5) * 1e6)
    return _report(rounds)


async def ping(limiter, n: int) -> str:
    """Wall µs of two PINGs: the floor under an admit+settle through Redis."""
    start = time.perf_counter()
    for _ in range(n):
        await limiter.redis.ping()
        await limiter.redis.ping()
    return f"{(time.perf_counter() - start) / n * 1e6:.2f} µs"


async def concurrent(limiter, info: KeyInfo, n: int, workers: int) -> float:
    """Requests per second with `workers` requests in flight."""

    async def worker(count: int) -> None:
        for _ in range(count):
            res = await limiter.admit(info, user=None, estimated_tokens=500, max_cost=0.001)
            await limiter.settle(res, 420, 0.0008)

    start = time.perf_counter()
    await asyncio.gather(*(worker(n // workers) for _ in range(workers)))
    return (n // workers * workers) / (time.perf_counter() - start)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="requests per local measurement")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Redis URL ('' to skip)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        rows: list[tuple[str, str]] = []
        rows.append(("key cache hit (authenticate), CPU", await bench_auth(db_url, args.n)))

        local = make_limiter(None, database_url=db_url)
        await local_cost(local, key(), 1000)  # warm up
        rows.append(("local admit+settle, no limits, CPU", await local_cost(local, key(), args.n)))
        rows.append(("local admit+settle, rpm+tpm+parallel+budget, CPU", await local_cost(local, key(**HEAVY), args.n)))
        await local.aclose()

        if args.redis:
            prefix = f"llmops-bench:{uuid.uuid4().hex[:8]}:"
            shared = make_limiter(args.redis, database_url=db_url, redis_prefix=prefix)
            try:
                info = key(**HEAVY)
                redis_n = max(1000, args.n // 10)
                await sequential(shared, info, 500)  # warm up: scripts loaded, counters initialised
                rows.append(("redis: two PINGs, wall (floor)", await ping(shared, redis_n // 2)))
                rows.append(("redis admit+settle, sequential, wall", await sequential(shared, info, redis_n)))
                rps = await concurrent(shared, info, redis_n, 32)
                rows.append(("redis admit+settle, 32 in flight, wall", f"{1e6 / rps:.1f} µs/request ({rps:,.0f} req/s)"))
                rows.append(("redis errors during the run", str(shared.redis_errors_total)))
            finally:
                await shared.clear()
                await shared.aclose()

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    asyncio.run(main())
