"""The in-process limiter: one gateway process, state in dicts, no I/O on the hot path.

With several gateway processes and no Redis, each process enforces the limits on its
own (N processes let through up to N times a limit); budgets start from the spend the
database held when the process first charged them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from itertools import count
from typing import TYPE_CHECKING

from llmops.governance.limits.base import (
    EPSILON,
    WINDOW_SECONDS,
    Limiter,
    LimiterUnavailable,
    Reservation,
    budget_error,
    parallel_error,
    rpm_error,
    tpm_error,
)
from llmops.governance.limits.spend import SpendKey

if TYPE_CHECKING:
    from llmops.governance.keys import KeyInfo


# Requests of the last minute are counted per tenth of a second: at most 600 buckets
# per key however fast it calls (a log of single requests held 150,000 entries, about
# 19 MB, for a key at 2,500 req/s). An entry leaves the window up to 0.1 s early.
BUCKETS_PER_SECOND = 10


class _Window:
    """One key's requests and tokens of the last minute, by tenth of a second, and its
    requests in flight."""

    __slots__ = ("buckets", "count", "tokens", "inflight")

    def __init__(self) -> None:
        self.buckets: deque[list] = deque()  # [expires_at, requests, tokens], oldest first
        self.count = 0
        self.tokens = 0
        self.inflight = 0

    def expire(self, now: float) -> None:
        buckets = self.buckets
        while buckets and buckets[0][0] <= now:
            expired = buckets.popleft()
            self.count -= expired[1]
            self.tokens -= expired[2]

    def add(self, now: float, tokens: int) -> list:
        """Count one request; returns its bucket (settle corrects the tokens in it)."""
        expires_at = int(now * BUCKETS_PER_SECOND) / BUCKETS_PER_SECOND + WINDOW_SECONDS
        buckets = self.buckets
        if buckets and buckets[-1][0] == expires_at:
            bucket = buckets[-1]
            bucket[1] += 1
            bucket[2] += tokens
        else:
            bucket = [expires_at, 1, tokens]
            buckets.append(bucket)
        self.count += 1
        self.tokens += tokens
        return bucket

    def seconds_until_free(self, tokens_needed: int, now: float) -> float:
        freed = 0
        for expires_at, _, tokens in self.buckets:
            freed += tokens
            if freed >= tokens_needed:
                return expires_at - now
        return WINDOW_SECONDS


class _Counter:
    __slots__ = ("spent", "reserved")

    def __init__(self, spent: float) -> None:
        self.spent = spent
        self.reserved = 0.0


class LocalLimiter(Limiter):
    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._windows: dict[str, _Window] = {}
        self._counters: dict[SpendKey, _Counter] = {}
        self._loading: dict[SpendKey, asyncio.Task] = {}
        self._ids = count()

    async def admit(
        self, info: KeyInfo, *, user: str | None = None, estimated_tokens: int = 0, max_cost: float | None = None
    ) -> Reservation:
        now = self.clock()
        if self.rules_due():
            await self.refresh_rules()
        targets = self.targets_now(info, user, now)
        counters = self._counters
        budgets: list[_Counter] = []
        checked = targets
        degraded = False
        if targets:
            for target in targets:
                if target.spend_key not in counters:
                    try:
                        await self._load(target.spend_key)
                    except LimiterUnavailable:
                        # The database is down: a budget whose spend was never read
                        # follows fail_open.budgets (closed by default: the 503).
                        if not self.fail_open["budgets"]:
                            raise
                        degraded = True
            if degraded:
                checked = tuple(target for target in targets if target.spend_key in counters)
            budgets = [counters[target.spend_key] for target in checked]

        # From here on nothing awaits: the checks and the bookkeeping are one atomic step.
        window = self._windows.get(info.id)
        if window is None:
            window = self._windows[info.id] = _Window()
        rpm, tpm = info.rpm, info.tpm
        rated = rpm is not None or tpm is not None
        if rated:
            window.expire(now)
            if rpm is not None and window.count >= rpm:
                self.rejected_total["rpm"] += 1
                raise rpm_error(info, window.buckets[0][0] - now if window.buckets else None)
            if tpm is not None and window.tokens + estimated_tokens > tpm:
                self.rejected_total["tpm"] += 1
                wait = window.seconds_until_free(window.tokens + estimated_tokens - tpm, now)
                raise tpm_error(info, window.tokens, estimated_tokens, wait)
        if info.parallel is not None and window.inflight >= info.parallel:
            self.rejected_total["parallel"] += 1
            raise parallel_error(info)
        for target, counter in zip(checked, budgets, strict=True):
            committed = counter.spent + counter.reserved
            if max_cost is None:
                over = committed >= target.budget - EPSILON
            else:
                over = committed + max_cost > target.budget + EPSILON
            if over:
                self.rejected_total["budget"] += 1
                raise budget_error(target, counter.spent, counter.reserved, max_cost, now)

        bucket = window.add(now, estimated_tokens) if rated else None
        window.inflight += 1
        if max_cost:
            for counter in budgets:
                counter.reserved += max_cost
        self.admitted_total += 1
        reservation = Reservation(next(self._ids), info.id, estimated_tokens, max_cost, targets, (window, bucket, budgets))
        reservation.degraded = degraded
        return reservation

    async def settle(self, res: Reservation, actual_tokens: int, actual_cost: float | None) -> None:
        self._finish(res, actual_tokens, actual_cost or 0.0)

    async def release(self, res: Reservation) -> None:
        self._finish(res, 0, 0.0)

    def _finish(self, res: Reservation, tokens: int, cost: float) -> None:
        if res.done:
            return
        res.done = True
        window, bucket, budgets = res.state
        # A bucket already out of the window no longer counts; leave it as it was.
        if bucket is not None and bucket[0] > self.clock():
            window.tokens += tokens - res.estimated_tokens
            bucket[2] += tokens - res.estimated_tokens
        window.inflight -= 1
        if budgets:
            reserved = res.max_cost or 0.0
            for counter in budgets:
                counter.reserved -= reserved
                counter.spent += cost
        if res.budgets:  # those not checked (the database was down) are charged too
            self.record_spend(res.budgets, cost)

    async def _load(self, key: SpendKey) -> None:
        # One database read per counter, however many requests wait for it.
        task = self._loading.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._load_counter(key))
            self._loading[key] = task
            task.add_done_callback(lambda _t: self._loading.pop(key, None))
        await asyncio.shield(task)

    async def _load_counter(self, key: SpendKey) -> None:
        try:
            spent = await self.load_spend(key)
        except Exception as exc:
            raise LimiterUnavailable(
                "Cannot read budget spend from the database; budgets fail closed. Retry shortly."
            ) from exc
        if key not in self._counters:
            self._counters[key] = _Counter(spent)

    def prune(self) -> None:
        now = self.clock()
        for key_id, window in list(self._windows.items()):
            window.expire(now)
            if not window.buckets and window.inflight == 0:
                del self._windows[key_id]
        current = {"total", self.periods.current("day", now)[0], self.periods.current("month", now)[0]}
        for key, counter in list(self._counters.items()):
            if key[2] not in current and abs(counter.reserved) <= EPSILON:
                del self._counters[key]
