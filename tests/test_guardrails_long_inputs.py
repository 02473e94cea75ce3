"""Long inputs: checked off the event loop, so other requests go on meanwhile."""

from __future__ import annotations

import asyncio
import time

from llmops.guardrails import Pipeline
from llmops.guardrails.pipeline import OFF_LOOP_CHARS

DOC = (
    "Quarterly report. Revenue grew 12% to 4.2 million; the team shipped build 5.5.0.1 and "
    "moved the cluster to 10 new nodes. Contact the office for details. "
)


async def _ticks_while(work) -> tuple[int, object]:
    """How often a 1 ms ticker ran on the loop while `work` was awaited."""
    ticks = 0
    done = False

    async def ticker():
        nonlocal ticks
        while not done:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.005)
    ticks = 0
    result = await work
    done = True
    await task
    return ticks, result


def test_a_long_input_is_checked_in_a_thread_and_the_loop_goes_on():
    pipe = Pipeline()
    text = DOC * (400_000 // len(DOC))  # ~400 KB: tens of milliseconds of checks
    assert Pipeline.off_loop([{"role": "user", "content": text}]) and not Pipeline.off_loop("short")

    async def main():
        started = time.perf_counter()
        ticks, result = await _ticks_while(pipe.check_input_async([{"role": "user", "content": text}]))
        return ticks, result, time.perf_counter() - started

    ticks, result, took = asyncio.run(main())
    assert not result.blocked and result.text == text
    assert ticks >= 1, f"the loop never ran during {took * 1000:.0f} ms of checks"


def test_a_short_input_stays_on_the_loop_with_the_same_verdicts():
    pipe = Pipeline()
    text = "Call me at 0711/4445683 or mail jane@example.com"
    assert len(text) < OFF_LOOP_CHARS
    sync = pipe.check_input(text)
    async_ = asyncio.run(pipe.check_input_async(text))
    assert sync.verdicts == async_.verdicts
    long_text = DOC * (OFF_LOOP_CHARS // len(DOC) + 1) + text
    assert [v["check"] for v in asyncio.run(pipe.check_input_async(long_text)).verdicts] == ["pii"]


def test_a_long_prompt_through_the_gateway_is_checked_and_redacted(tmp_path):
    import openai

    from tests.support.gateway_proc import run_gateway

    key = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    text = f"The staging key is {key} today. " + DOC * (100_000 // len(DOC))
    config = {"models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}]}]}
    with run_gateway(config, tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0, timeout=30)
        reply = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": text}])
    echoed = reply.choices[0].message.content  # the mock model echoes the opening sentences it was sent
    assert echoed.startswith("The staging key is [OPENAI_KEY] today. Quarterly report.")
