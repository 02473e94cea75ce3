"""A 3.5 MB prompt must not stall the gateway for everyone else (issue 19): it raises
the latency of concurrent small requests by less than 50 ms.

A real `llmops serve` with the default guardrails; small chat requests to the mock
model on two keep-alive connections, first alone (the baseline), then while 3.5 MB
chat requests go to an OpenAI-compatible upstream (a fake in a process of its own, so
its JSON parsing shares no interpreter with the client here). The small requests that
overlapped a large one are compared with the baseline.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.gateway_proc import REPO, free_port, run_gateway
from tests.support.loadgen import _read_response, build_request

BIG_BYTES = 3_500_000
MASTER = "sk-master-large-body"
BOUND_MS = 50.0
WORDS = ("the quick brown fox jumps over a lazy dog while seven tired engineers review quarterly "
         "latency budgets for the northern data centre and argue about coffee").split()


@pytest.fixture(scope="module")
def upstream_process():
    port = free_port()
    code = ("import sys, time\nfrom tests.support.fake_upstream import FakeUpstream\n"
            "FakeUpstream(int(sys.argv[1])).start()\ntime.sleep(3600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=REPO)
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "the fake upstream did not start"
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/v1"
    proc.kill()
    proc.wait(5)


def _big_text(size: int) -> str:
    rng = random.Random(7)
    words: list[str] = []
    total = 0
    while total < size:
        sentence = " ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + ". "
        words.append(sentence)
        total += len(sentence)
    return "".join(words)[:size]


async def _small_loop(host: str, port: int, request: bytes, until: list[float], out: list[tuple[float, float]]):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until[0]:
            sent = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            assert status == 200, status
            out.append((sent, time.perf_counter()))
            await asyncio.sleep(0.005)
    finally:
        writer.close()


async def _measure(url: str, small: bytes, big: bytes, bigs: int) -> dict[str, float]:
    """Small requests run all along; a large one goes out every so often. Each small
    request is counted as overlapping a large one or not, so both sets see the machine
    under the same load (other tests share its two cores)."""
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])
    small_done: list[tuple[float, float]] = []
    windows: list[tuple[float, float]] = []
    until = [time.perf_counter() + 1.0]
    await asyncio.gather(*(_small_loop(host, port, small, until, []) for _ in range(2)))  # warm-up

    async def big_loop() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(bigs):
                await asyncio.sleep(0.8)
                sent = time.perf_counter()
                writer.write(big)
                status = await _read_response(reader)
                assert status == 200, status
                windows.append((sent, time.perf_counter()))
            await asyncio.sleep(0.8)
        finally:
            writer.close()
            until[0] = 0.0

    until[0] = float("inf")
    await asyncio.gather(*(_small_loop(host, port, small, until, small_done) for _ in range(2)), big_loop())
    overlapping, alone = [], []
    for sent, done in small_done:
        during = any(sent < end and done > start for start, end in windows)
        (overlapping if during else alone).append(done - sent)

    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {
        "alone_n": len(alone), "alone_p50_ms": p(alone, 0.5), "alone_p99_ms": p(alone, 0.99),
        "alone_max_ms": max(alone) * 1000,
        "overlapping_n": len(overlapping), "overlapping_p50_ms": p(overlapping, 0.5),
        "overlapping_p99_ms": p(overlapping, 0.99), "overlapping_max_ms": max(overlapping) * 1000,
        "big_ms": sum(end - start for start, end in windows) / len(windows) * 1000,
    }


def test_a_35mb_prompt_raises_small_request_latency_by_less_than_50ms(upstream_process, tmp_path):
    config = {
        "models": [
            {"name": "demo", "deployments": [{"provider": "mock", "model": "demo"}]},
            {"name": "big", "deployments": [{"provider": "openai", "model": "ok", "api_base": upstream_process,
                                             "api_key": "sk-upstream-big"}]},
        ],
        "max_body_bytes": 4 * 1024 * 1024,
        "auth": "keys",
    }
    small_body = {"model": "demo", "messages": [{"role": "user", "content": "Hello there."}], "max_tokens": 8}
    big_body = {"model": "big", "messages": [{"role": "user", "content": _big_text(BIG_BYTES)}], "max_tokens": 8}
    with run_gateway(config, tmp_path, env={"LLMOPS_MASTER_KEY": MASTER}) as gw:
        # A key with a budget: the gateway counts each prompt's tokens to reserve its cost.
        made = httpx.post(gw.url + "/admin/keys", json={"name": "big", "budget": 1000.0},
                          headers={"authorization": f"Bearer {MASTER}"}, timeout=30)
        assert made.status_code == 200, made.text
        key = made.json()["key"]
        _, _, small = build_request(gw.base_url + "/chat/completions", small_body, key)
        _, _, big = build_request(gw.base_url + "/chat/completions", big_body, key)
        assert len(big) > BIG_BYTES
        figures = asyncio.run(_measure(gw.url, small, big, bigs=5))
    print("\nlarge-body latency:", json.dumps({k: round(v, 1) for k, v in figures.items()}))
    raised_p99 = figures["overlapping_p99_ms"] - figures["alone_p99_ms"]
    raised_max = figures["overlapping_max_ms"] - figures["alone_max_ms"]
    print(f"a 3.5 MB prompt raised small requests' p99 by {raised_p99:.1f} ms and their max by "
          f"{raised_max:.1f} ms (bound {BOUND_MS:g} ms)")
    assert figures["overlapping_n"] >= 10
    assert raised_p99 < BOUND_MS
