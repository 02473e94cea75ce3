"""A small TTL cache for resolved prompt references in long-running processes.

A hit is a dict lookup and a clock read (well under a microsecond), so the gateway can
resolve `name@label` on every request. An entry lives `ttl` seconds: a label moved
by another process is seen within that bound. Writes made through the same Registry
clear the cache at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from threading import Lock
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    def __init__(self, ttl: float, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, V]] = {}
        self._lock = Lock()

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return None

    def put(self, key: str, value: V) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (self._clock() + self.ttl, value)
            while len(self._entries) > self.max_entries:
                # Oldest insertion first: dicts keep insertion order.
                self._entries.pop(next(iter(self._entries)))

    def get_or_load(self, key: str, load: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = load()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
