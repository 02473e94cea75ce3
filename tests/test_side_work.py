"""Database calls on the request path run beside the event loop, giving way to it."""

import asyncio
import os
import sys

import pytest

from llmops.governance.side_work import SIDE_WORK_NICE, SIDE_WORK_SWITCH_INTERVAL, run_side_work


def _seen_by_the_thread() -> dict:
    return {
        "nice": os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None,
        "policy": os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None,
        "interval": sys.getswitchinterval(),
    }


def _fails() -> None:
    raise ValueError("the database said no")


def test_a_call_returns_or_raises_as_it_would_inline_and_leaves_the_interval_as_it_was():
    before = sys.getswitchinterval()

    async def main():
        seen = await run_side_work(_seen_by_the_thread)
        awaited = await run_side_work(_seen_by_the_thread, awaited=True)
        with pytest.raises(ValueError, match="the database said no"):
            await run_side_work(_fails)
        # Many at once: the interval is restored once the last one ends.
        results = await asyncio.gather(*(run_side_work(pow, 2, n) for n in range(20)))
        return seen, awaited, results

    seen, awaited, results = asyncio.run(main())
    assert results == [2**n for n in range(20)]
    assert seen["interval"] == awaited["interval"] == pytest.approx(min(before, SIDE_WORK_SWITCH_INTERVAL))
    assert sys.getswitchinterval() == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread scheduling is Linux's")
def test_work_nobody_waits_for_runs_at_the_lowest_niceness_and_awaited_work_at_normal_priority():
    async def main():
        return await run_side_work(_seen_by_the_thread), await run_side_work(_seen_by_the_thread, awaited=True)

    background, awaited = asyncio.run(main())
    # Not SCHED_IDLE: a starved idle-class thread holding the GIL stops the event loop (issue 19).
    assert background["policy"] == os.SCHED_OTHER and background["nice"] == SIDE_WORK_NICE
    assert awaited["policy"] == os.sched_getscheduler(0)
    assert awaited["nice"] == os.getpriority(os.PRIO_PROCESS, 0)
