"""A database read that, run as side work nobody waits for, does not come back (as on a
saturated core, where a thread at nice 19 gets little CPU) until the test lets it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class HeldWhenIdle(Generic[T]):
    """`read`, whose answer, when it ran as side work, waits for `release`: it then
    holds what the database said before the test changed it (`has_read` tells when)."""

    def __init__(self, read: Callable[..., T]):
        self.read = read
        self.has_read = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: object) -> T:
        answer = self.read(*args)
        if threading.current_thread().name.startswith("llmops-side-work"):
            self.has_read.set()
            self.release.wait(10)
        return answer


async def expire_behind_a_held_read_ahead(
    refused: Callable[[], Awaitable[bool]], change: Callable[[], object], held: HeldWhenIdle, ttl: float = 1.0
) -> float:
    """Against a cache entry of `ttl` seconds just read: call near its end (a read ahead
    starts, and is held), `change()` the database once that read has read, call after the
    entry expired (refused: it read the change for itself), then let the read ahead answer
    with what it read before, and call again (still refused: the older answer was dropped).
    Returns how long the call after expiry took."""
    start = time.monotonic()
    await asyncio.sleep(0.85 * ttl - (time.monotonic() - start))
    assert not await refused()
    assert await asyncio.to_thread(held.has_read.wait, 5)
    change()
    await asyncio.sleep(1.1 * ttl - (time.monotonic() - start))
    before = time.monotonic()
    assert await refused()
    waited = time.monotonic() - before
    held.release.set()
    await asyncio.sleep(0.2)
    assert await refused()
    return waited
