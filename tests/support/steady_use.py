"""Steady traffic against a cache in front of a slow database, for the read-ahead tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def use_steadily(
    call: Callable[[], Awaitable[bool]], change: Callable[[], object], *, seconds: float = 4.0, change_after: float = 1.5
) -> tuple[list[float], float]:
    """Await `call()` every 20 ms for `seconds`, and run `change()` once after
    `change_after` seconds. `call` returns True when it was refused. Returns how long
    each call took, and how long after the change the first refusal came."""
    waits: list[float] = []
    changed_at = refused_at = None
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        before = time.monotonic()
        refused = await call()
        waits.append(time.monotonic() - before)
        if refused and refused_at is None:
            refused_at = time.monotonic()
        if changed_at is None and time.monotonic() - start > change_after:
            change()
            changed_at = time.monotonic()
        await asyncio.sleep(0.02)
    assert changed_at is not None and refused_at is not None, "no refusal after the change"
    return waits, refused_at - changed_at
