"""Blocking database calls on the request path, run so that they give way to requests.

Key reads, budget-rule reads, and the spend counters' loads and flushes run in threads
beside the event loop: on one core, under one GIL. Such a call costs 0.4-2 ms of
SQLAlchemy with cold caches (measured in the running gateway). Run through
`asyncio.to_thread`, it kept the GIL for whole switch intervals (1 ms), and a request
that arrived meanwhile waited that long.

`run_side_work(fn, *args)` is for work no request waits for (reads ahead of expiry,
spend flushes). It runs `fn` on threads at nice 19. Not in SCHED_IDLE, as it once did:
such a thread gets no CPU while anything else on the machine wants it, and if it holds
the GIL then, the event loop waits as long (priority inversion). On a machine at load 8,
alternating 10 s runs at one connection gave a lower p99 without SCHED_IDLE (for side
work and the ledger writer) in 8 of 8 pairs, median 13.9 against 17.9 ms, worst single
request 32-69 against 50-126 ms (benchmarks/sched_idle_ab.py). No request waits for
side work all the same: a busy core gives it little.

`run_side_work(fn, *args, awaited=True)` is for a read a request waits for (a key seen
for the first time): the default executor, at normal priority.

Either way, while such a call runs, the switch interval is SIDE_WORK_SWITCH_INTERVAL,
so the event loop waits at most that long for the GIL; only then, since a short
interval throughout made streaming 12-37% slower.

At one connection on an idle machine, five 10 s runs of each in turn (p99, ms): 0.64-1.29
(median 0.73) with this and the ledger writer's finer pacing, 0.94-1.38 (median 1.07)
before (measured while side work still ran in SCHED_IDLE).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["run_side_work"]

T = TypeVar("T")

SIDE_WORK_NICE = 19
SIDE_WORK_SWITCH_INTERVAL = 0.0001
SIDE_WORK_THREADS = 4

_lock = threading.Lock()
_running = 0
_normal_interval = 0.0
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def set_nice(native_id: int, nice: int) -> None:
    """Set a thread's niceness (Linux sets it per thread); elsewhere, or if not allowed,
    the thread keeps its priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, native_id, nice)
    except (AttributeError, OSError):
        pass


def _lower_priority() -> None:
    set_nice(threading.get_native_id(), SIDE_WORK_NICE)


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                SIDE_WORK_THREADS, thread_name_prefix="llmops-side-work", initializer=_lower_priority
            )
        return _pool


def _call(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    global _running, _normal_interval
    with _lock:
        if _running == 0:
            _normal_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_normal_interval, SIDE_WORK_SWITCH_INTERVAL))
        _running += 1
    try:
        return fn(*args)
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                sys.setswitchinterval(_normal_interval)


async def run_side_work(fn: Callable[..., T], *args: Any, awaited: bool = False) -> T:
    """`fn(*args)` in a thread that lets the event loop keep the core and the GIL:
    at the lowest priority, or at normal priority when a request is `awaited` on it."""
    executor = None if awaited else _executor()
    return await asyncio.get_running_loop().run_in_executor(executor, _call, fn, args)
