"""Many connections and shared limits, with the ledger on Postgres and limits in Redis
(issues 19 and 26).

Before the limiter pipelined its calls, each admit and settle waited for one of the
process's pooled Redis connections; with hundreds of requests in flight on a busy event
loop the wait ran out, and with budgets failing closed those calls got 503 (1,024
connections: 272 of 5,974 calls here). Now the calls of concurrent requests share one
pipeline per round trip and never wait for a connection.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.cluster import Cluster, limiter_figures, services_missing
from tests.support.loadgen import run_load
from tests.test_limits import redis_prefix  # noqa: F401,F811  (a fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CONFIG = {
    "models": [{"name": "demo", "deployments": [{
        "provider": "mock", "model": "demo",
        "pricing": {"input_cost_per_token": 1e-9, "output_cost_per_token": 1e-9}}]}],
}
CALL = {"model": "demo", "messages": [{"role": "user", "content": "Hello there."}], "max_tokens": 8}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = services_missing()
    if reason:
        pytest.skip(reason)
    c = Cluster(tmp_path_factory.mktemp("scaleout"), CONFIG)
    yield c
    c.close()


@pytest.mark.redis
def test_pipelined_limiter_calls_never_wait_for_a_connection(tmp_path, redis_prefix):  # noqa: F811
    """1,000 admits and settles at once with a budget whose Redis counter is cold, on a
    pool of 8 connections that gives up after 50 ms: every call answered (none degraded
    to fail-closed 503s), in far fewer round trips than calls, with one database read."""
    from llmops.governance.limits.redis_limiter import RedisLimiter
    from llmops.governance.limits.spend import SpendBook
    from tests.test_limits import REDIS_URL, key

    async def scenario() -> tuple[list, int, int]:
        book = SpendBook(f"sqlite:///{tmp_path / 'spend.db'}")
        load = book.load

        def counted_load(*args):
            reads.append(args)
            return load(*args)

        book.load = counted_load  # type: ignore[method-assign]
        limiter = RedisLimiter(REDIS_URL, prefix=redis_prefix, max_connections=8, pool_timeout=0.05,
                               spend_book=book)
        info = key(rpm=100_000, budget=1000.0)
        try:
            results = await asyncio.gather(*(limiter.admit(info, max_cost=0.001) for _ in range(1000)),
                                           return_exceptions=True)
            admitted = [r for r in results if not isinstance(r, BaseException)]
            await asyncio.gather(*(limiter.settle(r, 10, 0.0005) for r in admitted))
            figures = limiter.metrics()
        finally:
            await limiter.aclose()
        return results, figures["redis_round_trips_total"], figures["redis_calls_total"]

    reads: list = []
    results, round_trips, calls = asyncio.run(scenario())
    failed = [r for r in results if isinstance(r, BaseException)]
    assert failed == [] and not any(r.degraded for r in results)
    print(f"\n1000 admits + 1000 settles at once: {calls} script calls in {round_trips} round trips, "
          f"{len(reads)} database read(s) to seed the budget's counter")
    assert calls >= 2000 and round_trips <= calls / 20
    assert len(reads) == 1  # the cold counter is seeded once, not once per waiting call


@pytest.mark.parametrize("connections", [256, 1024])
def test_many_connections_with_redis_limits_and_a_postgres_ledger_give_no_errors(cluster, connections):
    key = cluster.create_key(rpm=10_000_000, budget=1_000_000)
    gw = cluster.start()
    try:
        before = cluster.ledger_count(key["id"])
        result = asyncio.run(run_load(gw.base_url + "/chat/completions", connections=connections, seconds=3,
                                      body=CALL, key=key["key"]))
        figures = limiter_figures(gw)
    finally:
        gw.stop()  # flushes the ledger
    print(f"\none gateway, ledger on Postgres, limits in Redis: {result.line()}")
    per_request = figures["redis_round_trips_total"] / max(1, figures["admitted_total"])
    print(f"Redis: {figures['redis_calls_total'] / max(1, figures['admitted_total']):.2f} script calls and "
          f"{per_request:.3f} round trips per request")
    assert result.errors == 0, result.summary()
    assert result.ok >= connections  # every connection was answered
    assert figures["redis_errors_total"] == 0 and figures["degraded_admits_total"] == 0
    assert cluster.ledger_count(key["id"]) - before == result.ok  # one row per served call


async def _burst(urls: list[str], key: str, calls: int) -> list[int]:
    """`calls` requests at once, spread over `urls`; their statuses."""
    limits = httpx.Limits(max_connections=calls, max_keepalive_connections=calls)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        async def one(i: int) -> int:
            r = await client.post(urls[i % len(urls)] + "/v1/chat/completions", json=CALL,
                                  headers={"authorization": f"Bearer {key}"})
            return r.status_code
        return list(await asyncio.gather(*(one(i) for i in range(calls))))


def test_rpm_40_admits_at_most_40_of_200_calls_at_once_on_one_process(cluster):
    key = cluster.create_key(rpm=40)
    gw = cluster.start()
    try:
        statuses = asyncio.run(_burst([gw.url], key["key"], 200))
    finally:
        gw.stop()
    print(f"\nrpm=40, 200 calls at once, one process: {statuses.count(200)} admitted, {statuses.count(429)} refused")
    assert statuses.count(200) == 40 and statuses.count(429) == 160


def test_rpm_40_admits_at_most_40_of_200_calls_at_once_across_two_processes(cluster):
    key = cluster.create_key(rpm=40)
    one, two = cluster.start(wait=False), cluster.start()
    from tests.support.cluster import wait_ready

    wait_ready(one)
    try:
        started = time.perf_counter()
        statuses = asyncio.run(_burst([one.url, two.url], key["key"], 200))
        took = time.perf_counter() - started
    finally:
        one.stop()
        two.stop()
    print(f"\nrpm=40, 200 calls at once over two processes: {statuses.count(200)} admitted, "
          f"{statuses.count(429)} refused ({took:.2f} s)")
    assert statuses.count(200) == 40 and statuses.count(429) == 160


@pytest.mark.redis
def test_a_script_redis_does_not_know_is_loaded_and_its_calls_sent_again():
    """NOSCRIPT (Redis restarted or its scripts flushed): the calls did not run, so the
    pipeline loads the script and sends them again; each gets its own answer."""
    import uuid

    import redis.asyncio as aioredis

    from llmops.governance.limits.redis_pipeline import AutoPipeline, Script
    from tests.test_limits import REDIS_URL

    async def scenario() -> tuple[list, int]:
        client = aioredis.Redis.from_url(REDIS_URL)
        # A source no one has loaded (its SHA-1 is new), so the first pipeline gets NOSCRIPT.
        script = Script(f"return ARGV[1] .. ':' .. KEYS[1] -- {uuid.uuid4().hex}")
        pipeline = AutoPipeline(client)
        try:
            replies = await asyncio.gather(*(pipeline.call(script, [f"k{i}"], [i]) for i in range(50)))
            again = await pipeline.call(script, ["k"], ["x"])  # loaded now: one round trip
        finally:
            await pipeline.aclose()
            await client.aclose()
        return [*replies, again], pipeline.round_trips

    replies, round_trips = asyncio.run(scenario())
    assert replies == [f"{i}:k{i}".encode() for i in range(50)] + [b"x:k"]
    assert round_trips == 3  # NOSCRIPT, the same calls again, the last call
