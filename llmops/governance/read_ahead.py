"""The one cache of database reads on the request path: keys and budget rules.

An answer is kept `ttl` seconds. A request that finds an entry in the last
READ_AHEAD_SHARE of its life gets the cached answer at once and starts a read ahead, as
side work nobody waits for, so steady traffic never waits on the database; only a key
not seen for a whole `ttl` does. One read per key at a time: requests that miss wait for
the same read. A change made through this process (`forget`) is seen at once: an answer
read before it is never stored after it, and a read ahead never overwrites what a newer
read stored meanwhile.

When the source is down (a read raises `down`, or takes longer than `read_timeout`),
an answer that expired less than `grace` seconds ago is served as it was, and the
source is tried again in the background only: for DOWN_RETRY seconds after a failed
read no request waits on the source for an answer it had before. A key never read
before still waits (at most `read_timeout`) and gets the error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from llmops.governance.side_work import run_side_work

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# A cached answer in use is read again during this last share of its life.
READ_AHEAD_SHARE = 0.2
# Seconds after a failed read during which stale answers are served without waiting.
DOWN_RETRY = 5.0


class _Entry(Generic[V]):
    __slots__ = ("ahead_from", "expires", "value")

    def __init__(self, value: V, ttl: float):
        self.value = value
        self.expires = time.monotonic() + ttl
        self.ahead_from = self.expires - ttl * READ_AHEAD_SHARE


class ReadAheadCache(Generic[K, V]):
    """`read(key)` is blocking (a database read); it runs in a worker thread.

    `negative(value)` marks answers that say "nothing there" (an unknown token): at most
    `max_negative` are kept, so a scanner's random tokens cannot grow memory without bound.
    `stored(key, value)` is called with every answer stored, on the event loop.
    """

    def __init__(
        self,
        read: Callable[[K], V],
        ttl: float,
        *,
        negative: Callable[[V], bool] | None = None,
        max_negative: int = 10_000,
        stored: Callable[[K, V], None] | None = None,
        down: type[Exception] | None = None,
        grace: float = 0.0,
        read_timeout: float | None = None,
    ):
        self.read = read
        self.ttl = ttl
        self._down = down  # the error type that means "the source is unreachable"
        self._grace = grace
        self._read_timeout = read_timeout
        self._down_until = 0.0  # monotonic: the source failed a read less than DOWN_RETRY ago
        self._warm = False  # a read has worked since start
        self.stale_served = 0
        self._negative = negative
        self._max_negative = max_negative
        self._stored = stored
        self._entries: dict[K, _Entry[V]] = {}
        self._negatives = 0
        self._awaited: dict[K, asyncio.Task[V]] = {}  # reads requests wait for
        self._ahead: dict[K, asyncio.Task[V]] = {}  # reads ahead: never waited for
        self._generation = 0  # bumped by every forget

    def fresh(self, key: K) -> _Entry[V] | None:
        """The entry while it is fresh (starting a read ahead near its end), else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = time.monotonic()
        if now >= entry.expires:
            return None
        if now >= entry.ahead_from:
            self._read_ahead(key, entry)
        return entry

    def has(self, key: K) -> bool:
        """Whether an answer for `key` was ever stored (fresh or not)."""
        return key in self._entries

    async def get(self, key: K) -> V:
        entry = self.fresh(key)
        if entry is not None:
            return entry.value
        return await self.load(key)

    async def load(self, key: K) -> V:
        """Read now (joining a read under way); a read ahead still running is not waited
        for: it runs at the lowest priority. While the source is down, a stale answer
        within its grace (see the module doc)."""
        stale = self._stale(key)
        if stale is not None and time.monotonic() < self._down_until:
            self._read_ahead(key, stale)
            self.stale_served += 1
            return stale.value
        task = self._awaited.get(key)
        if task is None:
            task = self._awaited[key] = asyncio.get_running_loop().create_task(self._fetch(key))
            task.add_done_callback(lambda t: self._done(self._awaited, key, t))
        try:
            return await asyncio.shield(task)
        except Exception as exc:
            stale = self._stale(key)
            if stale is None or not self._is_down(exc):
                raise
            self.stale_served += 1
            return stale.value

    def _stale(self, key: K) -> _Entry[V] | None:
        """The last answer for `key` if the source being down would still let it serve."""
        if not self._grace:
            return None
        entry = self._entries.get(key)
        if entry is None or time.monotonic() >= entry.expires + self._grace:
            return None
        return entry

    def _is_down(self, exc: BaseException) -> bool:
        return self._down is not None and isinstance(exc, self._down)

    def _read_ahead(self, key: K, entry: _Entry[V]) -> None:
        if key not in self._ahead and key not in self._awaited:
            task = self._ahead[key] = asyncio.get_running_loop().create_task(self._fetch(key, entry))
            task.add_done_callback(lambda t: self._done(self._ahead, key, t))

    def forget(self, key: K) -> None:
        """Drop `key`'s answer; no read that started before this may store one."""
        self._generation += 1
        entry = self._entries.pop(key, None)
        if entry is not None and self._negative is not None and self._negative(entry.value):
            self._negatives -= 1

    async def aclose(self) -> None:
        """Wait for reads still under way (reads ahead included); call on shutdown."""
        await asyncio.gather(*self._awaited.values(), *self._ahead.values(), return_exceptions=True)

    async def _fetch(self, key: K, ahead_of: _Entry[V] | None = None) -> V:
        generation = self._generation
        try:
            read = run_side_work(self.read, key, awaited=ahead_of is None)
            # The thread of a read that times out runs on; only the request stops waiting.
            # Not before a first read has worked: that one may set up the engine and
            # migrate the schema (the driver's connect timeout bounds it).
            timeout = self._read_timeout if self._warm else None
            value = await (read if timeout is None else asyncio.wait_for(read, timeout))
        except TimeoutError:
            self._down_until = time.monotonic() + DOWN_RETRY
            if self._down is None:
                raise
            raise self._down(f"no answer from the database within {self._read_timeout:g} s; retry shortly") from None
        except Exception as exc:
            if self._is_down(exc):
                self._down_until = time.monotonic() + DOWN_RETRY
            raise
        self._down_until, self._warm = 0.0, True
        if generation == self._generation and (ahead_of is None or self._entries.get(key) is ahead_of):
            self._store(key, value)
        return value

    def _store(self, key: K, value: V) -> None:
        replaced = self._entries.get(key)
        if replaced is not None and self._negative is not None and self._negative(replaced.value):
            self._negatives -= 1
        if self._negative is not None and self._negative(value):
            if self._negatives >= self._max_negative:
                self._entries = {k: e for k, e in self._entries.items() if not self._negative(e.value)}
                self._negatives = 0
            self._negatives += 1
        self._entries[key] = _Entry(value, self.ttl)
        if self._stored is not None:
            self._stored(key, value)

    @staticmethod
    def _done(reads: dict[K, asyncio.Task[V]], key: K, task: asyncio.Task[V]) -> None:
        reads.pop(key, None)
        # A read ahead has no caller to raise to: the entry stays until it expires, and
        # the first request after that reads (and reports) for itself.
        if not task.cancelled():
            task.exception()
