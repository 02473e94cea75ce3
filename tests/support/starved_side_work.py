"""A database read that, run as side work nobody waits for, does not come back (as on a
saturated core, where a thread in SCHED_IDLE gets no CPU) until the test lets it."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class HeldWhenIdle(Generic[T]):
    """`read`, whose answer, when it ran in the idle class, waits for `release`: it then
    holds what the database said before the test changed it (`has_read` tells when)."""

    def __init__(self, read: Callable[..., T]):
        self.read = read
        self.has_read = threading.Event()
        self.release = threading.Event()

    def __call__(self, *args: object) -> T:
        answer = self.read(*args)
        if os.sched_getscheduler(0) == os.SCHED_IDLE:
            self.has_read.set()
            self.release.wait(10)
        return answer
