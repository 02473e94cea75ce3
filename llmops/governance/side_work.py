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

The threads are daemons, in pools of this module's own: concurrent.futures (and so
asyncio's default executor) joins its threads at exit, and a call stuck on a database
that stopped answering then kept a SIGTERMed gateway alive for good. The callers bound
their waits (`limits.database_timeout`); what a stuck call was writing is theirs to keep
(the spend book spills it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["run_side_work"]

T = TypeVar("T")

SIDE_WORK_NICE = 19
SIDE_WORK_SWITCH_INTERVAL = 0.0001
SIDE_WORK_THREADS = 4
AWAITED_THREADS = 8  # reads a request waits for; more than side work, fewer than a default executor's 32

_lock = threading.Lock()
_running = 0
_normal_interval = 0.0


def set_nice(native_id: int, nice: int) -> None:
    """Set a thread's niceness (Linux sets it per thread); elsewhere, or if not allowed,
    the thread keeps its priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, native_id, nice)
    except (AttributeError, OSError):
        pass


class _DaemonPool:
    """A fixed set of daemon threads taking calls from one queue; started on first use."""

    def __init__(self, threads: int, name: str, nice: int | None = None):
        self._size, self._name, self._nice = threads, name, nice
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._started = False

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if not self._started:
            with _lock:
                if not self._started:
                    for i in range(self._size):
                        threading.Thread(target=self._work, name=f"{self._name}_{i}", daemon=True).start()
                    self._started = True
        self._queue.put((future, fn, args))
        return future

    def _work(self) -> None:
        if self._nice is not None:
            set_nice(threading.get_native_id(), self._nice)
        while True:
            future, fn, args = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiting caller, as an executor does
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, fn, args  # a finished call's objects are not kept alive until the next


_side_pool = _DaemonPool(SIDE_WORK_THREADS, "llmops-side-work", nice=SIDE_WORK_NICE)
_awaited_pool = _DaemonPool(AWAITED_THREADS, "llmops-awaited-read")


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
    """`fn(*args)` in a daemon thread that lets the event loop keep the core and the GIL:
    at the lowest priority, or at normal priority when a request is `awaited` on it."""
    pool = _awaited_pool if awaited else _side_pool
    return await asyncio.wrap_future(pool.submit(_call, fn, args))
