"""Pacing a run's model calls: at most `concurrency` in flight, fewer while the server says 429.

A call answered 429 (or 503 with a Retry-After) is retried after the server's wait, at
most `retries` times, with a little jitter so a crowd of retries does not land at once;
a server that names no wait gets an exponential backoff (equal jitter). A wait longer
than `max_wait` is not waited for: the case fails now, saying what the server asked.

Each model has its own lane, so one rate-limited model does not stall another's calls:
  - a 429 to a call started after the lane's last cut halves its limit; answers grow it
    back by one per `limit` answers (AIMD, as TCP does), up to the run's concurrency. So a
    server that takes only so many calls at once settles at about that many;
  - a 429 at a limit of one call pauses the lane until the server's wait is over: no
    call of that model starts before then, so a per-minute limit sees one refusal per
    wait, not the whole queue.
A call waiting out its 429 holds no slot: the lane's limit and pause keep the others back.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from llmops.evaluation.client import ModelCallError, ModelClient, ModelResponse, PromptRef, RateLimited

DEFAULT_RETRIES = 6
MAX_WAIT = 90.0  # seconds; a gateway's per-minute limit asks for up to 60
BACKOFF_BASE = 1.0  # seconds, doubled each retry when the server names no wait
BACKOFF_MAX = 30.0

T = TypeVar("T")


class Lane:
    """One model's calls: its current limit (at most `ceiling`), calls in flight, its pause."""

    def __init__(self, ceiling: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self.paused_until = 0.0
        self.cuts = 0  # how many times the limit was cut: a call's ticket is the count it started under
        self.clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> int:
        """Wait for the pause to end and a slot under the limit; returns the call's ticket."""
        while True:
            pause = self.paused_until - self.clock()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if self.in_flight < max(1, int(self.limit)):
                self.in_flight += 1
                return self.cuts
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: the slot goes to the next in line
                else:
                    self._remove(waiter)
                raise

    def release(self, *, answered: bool) -> None:
        self.in_flight -= 1
        if answered:
            self.limit = min(float(self.ceiling), self.limit + 1 / max(1.0, self.limit))
        self._wake()

    def throttle(self, ticket: int, wait: float) -> None:
        """A call started under `ticket` was told to wait `wait` seconds."""
        if ticket != self.cuts:
            return  # it started before the last cut, which was the answer to it
        if self.limit < 2:
            # One call at a time is still refused: fewer calls cannot help, so none starts
            # until the server's wait is over (a refusal comes back at once: without the
            # pause, even one call at a time would hammer a per-minute limit).
            self.paused_until = max(self.paused_until, self.clock() + wait)
        self.limit = max(1.0, self.limit / 2)
        self.cuts += 1

    def _wake(self) -> None:
        free = max(1, int(self.limit)) - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass


class PacedClient:
    """A ModelClient that keeps to a concurrency limit and retries what the server refused for now."""

    def __init__(
        self,
        client: ModelClient,
        concurrency: int,
        *,
        retries: int = DEFAULT_RETRIES,
        max_wait: float = MAX_WAIT,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.concurrency = concurrency
        self.retries = retries
        self.max_wait = max_wait
        self.rng = rng or random.Random()
        self.clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._lanes: dict[str, Lane] = {}
        self.retried = 0  # retries made, all calls
        self.waited = 0.0  # seconds the retried calls waited, all calls
        self.gave_up = 0  # calls still refused after their retries

    def lane(self, model: str) -> Lane:
        lane = self._lanes.get(model)
        if lane is None:
            lane = self._lanes[model] = Lane(self.concurrency, self.clock)
        return lane

    async def chat(
        self, model: str, messages: list[dict], params: dict[str, Any], prompt: PromptRef | None = None
    ) -> ModelResponse:
        response, retries = await self._paced(
            model, lambda: self.client.chat(model, messages, params, prompt)
        )
        response.retries = retries
        return response

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        vectors, _ = await self._paced(model, lambda: self.client.embed(model, texts))
        return vectors

    def delay(self, error: RateLimited, retry: int) -> float:
        """How long to wait before retry number `retry` (0 for the first)."""
        if error.retry_after is not None:
            # Up to 10% more than asked (at least 0.1 s), so retries told the same wait spread out.
            return error.retry_after + self.rng.uniform(0, max(0.1, error.retry_after * 0.1))
        ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2**retry)
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    async def _paced(self, model: str, call: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        lane = self.lane(model)
        retries, waited = 0, 0.0
        while True:
            ticket = await lane.acquire()
            try:
                async with self._slots:
                    result = await call()
            except RateLimited as exc:
                lane.release(answered=False)
                too_long = exc.retry_after is not None and exc.retry_after > self.max_wait
                if retries >= self.retries or too_long:
                    self.gave_up += 1
                    raise _gave_up(exc, retries, waited, self.max_wait if too_long else None) from None
                wait = self.delay(exc, retries)
                lane.throttle(ticket, wait)
                retries += 1
                waited += wait
                self.retried += 1
                self.waited += wait
                await asyncio.sleep(wait)
                continue
            except BaseException:
                lane.release(answered=False)
                raise
            lane.release(answered=True)
            return result, retries


def _gave_up(error: RateLimited, retries: int, waited: float, max_wait: float | None) -> ModelCallError:
    if max_wait is not None:
        why = f"it asked to retry in {error.retry_after:.0f} s, longer than the {max_wait:.0f} s a run waits"
    else:
        why = f"still refused after {retries} retries ({waited:.1f} s waiting)"
    return ModelCallError(f"{error.message} ({why})", code="rate_limited")
