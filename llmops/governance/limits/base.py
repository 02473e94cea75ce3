"""What every limiter shares: errors, reservations, budget targets and spend persistence.

Semantics, the same for the local and the Redis limiter:

- rpm and tpm use a sliding window log: each admitted request counts (1 request, and
  its tokens) for exactly 60 seconds after it was admitted. tpm counts
  `estimated_tokens` at admit and is corrected to `actual_tokens` at settle.
  A request refused for rpm/tpm is not counted.
- parallel counts requests between admit and settle/release.
- budgets (key, user, team) reserve `max_cost` at admit, and settle to the actual cost.
  A call is admitted when spent + reserved + max_cost <= budget. When `max_cost` is
  None (the price is unknown), the call is admitted while spent + reserved < budget,
  reserves nothing, and its actual cost (if known at settle) is counted.
  A call is charged to the period it was admitted in.
- `release` refunds tokens and budget and frees the parallel slot; the request still
  counts for rpm (it was made).
- user and team budgets set in the database are read again every `rules_ttl` seconds;
  under traffic the read starts in the background during the last fifth of that time,
  so no request waits on it (one read took 1-2 ms here).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from llmops.errors import LLMOpsError
from llmops.governance.limits.periods import PeriodClock, describe_reset
from llmops.governance.limits.spend import Budget, SpendBook, SpendKey
from llmops.governance.read_ahead import ReadAheadCache
from llmops.governance.side_work import run_side_work

if TYPE_CHECKING:
    from llmops.governance.keys import KeyInfo

log = logging.getLogger("llmops.governance.limits")

WINDOW_SECONDS = 60.0
DEFAULT_FAIL_OPEN = {"rate_limits": True, "budgets": False}
EPSILON = 1e-9  # float slack, so ten $0.10 calls fit a $1.00 budget


class LimitExceeded(LLMOpsError):
    """429: a rate limit or a budget said no. `retry_after` is in seconds, or None when
    waiting will not help (a total budget, a request larger than the limit)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        limit: str,
        scope: str = "key",
        retry_after: float | None = None,
        reset_at: float | None = None,
        code: str | None = None,
    ):
        super().__init__(message, code=code)
        self.limit = limit  # "rpm" | "tpm" | "parallel" | "budget"
        self.scope = scope  # "key" | "user" | "team"
        self.retry_after = retry_after
        self.reset_at = reset_at
        if limit == "budget":
            self.type = "insufficient_quota"

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}


class LimiterUnavailable(LLMOpsError):
    """503: the shared store (Redis) is down and the setting fails closed."""

    status = 503
    type = "service_unavailable"
    code = "limiter_unavailable"
    retry_after = 1.0

    def headers(self) -> dict[str, str]:
        return {"retry-after": "1"}


class BudgetTarget:
    """One budget a request is charged to, in the current period (read-only by convention)."""

    __slots__ = ("scope", "subject", "label", "budget", "period", "period_id", "reset", "spend_key")

    def __init__(
        self, scope: str, subject: str, label: str, budget: float, period: str, period_id: str, reset: float | None
    ):
        self.scope = scope  # "key" | "user" | "team"
        self.subject = subject  # key id, user name, team name
        self.label = label  # how messages name it
        self.budget = budget
        self.period = period
        self.period_id = period_id
        self.reset = reset  # UNIX time of the next reset, None for "total"
        self.spend_key: SpendKey = (scope, subject, period_id)

    def __repr__(self) -> str:
        return f"BudgetTarget({self.label}, {self.budget} per {self.period}, {self.period_id})"


class Reservation:
    """What `admit` took; give it back to `settle` or `release` exactly once (more is a no-op).

    `degraded` is True when it was admitted unchecked (the shared store was down and the
    setting fails open). `state` is the limiter's own bookkeeping.
    """

    # A plain slotted class: built on every request, a dataclass __init__ costs twice as much.
    __slots__ = ("id", "key_id", "estimated_tokens", "max_cost", "budgets", "state", "degraded", "done", "unchecked")

    def __init__(
        self,
        id: str | int,
        key_id: str,
        estimated_tokens: int,
        max_cost: float | None,
        budgets: tuple[BudgetTarget, ...],
        state: Any = None,
    ):
        self.id = id
        self.key_id = key_id
        self.estimated_tokens = estimated_tokens
        self.max_cost = max_cost
        self.budgets = budgets
        self.state = state
        self.degraded = False
        self.done = False
        # Budgets charged but not checked (their spend was unreadable; fail_open.budgets).
        self.unchecked: tuple[BudgetTarget, ...] = ()

    def __repr__(self) -> str:
        return f"Reservation({self.id}, key={self.key_id}, tokens={self.estimated_tokens}, max_cost={self.max_cost})"


def usd(amount: float) -> str:
    """Cents above $1; below, up to six decimals so a call's cost shows ($0.70, $0.0004)."""
    amount = round(amount, 9)  # 0.1 * 10 is $1.00, not $0.99999
    if abs(amount) >= 1 or amount == 0:
        return f"${amount:,.2f}"
    digits = f"{amount:.6f}".rstrip("0")
    if len(digits.partition(".")[2]) < 2:
        digits = f"{amount:.2f}"
    return "$" + digits


def budget_error(target: BudgetTarget, spent: float, reserved: float, max_cost: float | None, now: float) -> LimitExceeded:
    head = f"Budget exceeded for {target.label}: {usd(target.budget)} per {target.period}, {usd(spent)} spent"
    if reserved > EPSILON:
        head += f", {usd(reserved)} reserved by requests in flight"
    if max_cost is not None:
        head += f"; this request may cost up to {usd(max_cost)}"
    in_flight_only = max_cost is not None and spent + max_cost <= target.budget + EPSILON
    if max_cost is not None and max_cost > target.budget + EPSILON:
        tail = "Lower max_tokens or raise the budget."
        retry = None
    elif in_flight_only:
        tail = "Requests in flight hold the rest; retry when they finish."
        retry = 1.0
    elif target.reset is None:
        tail = "A total budget never resets: raise it (`llmops keys update` / `llmops keys budget`)."
        retry = None
    else:
        tail = describe_reset(target.reset, now) + "."
        retry = max(1.0, target.reset - now)
    return LimitExceeded(
        f"{head}. {tail}", limit="budget", scope=target.scope, retry_after=retry, reset_at=target.reset,
        code="budget_exceeded",
    )


def rpm_error(info: KeyInfo, retry_after: float | None) -> LimitExceeded:
    if info.rpm == 0:
        return LimitExceeded(f"{info.label} has a limit of 0 requests per minute.", limit="rpm", retry_after=None)
    wait = max(0.001, retry_after or 0.0)
    return LimitExceeded(
        f"Rate limit reached for {info.label}: {info.rpm} requests per minute. Retry in {wait:.1f} s.",
        limit="rpm", retry_after=wait,
    )


def tpm_error(info: KeyInfo, used: int, wanted: int, retry_after: float | None) -> LimitExceeded:
    if info.tpm is not None and wanted > info.tpm:
        return LimitExceeded(
            f"This request needs about {wanted} tokens, more than the {info.tpm} tokens per minute allowed to "
            f"{info.label}. Lower max_tokens or raise the key's tpm.",
            limit="tpm", retry_after=None, code="tokens_limit_exceeded",
        )
    wait = max(0.001, retry_after if retry_after is not None else WINDOW_SECONDS)
    return LimitExceeded(
        f"Token rate limit reached for {info.label}: {info.tpm} tokens per minute, {used} used in the last "
        f"minute, this request needs about {wanted}. Retry in {wait:.1f} s.",
        limit="tpm", retry_after=wait, code="tokens_limit_exceeded",
    )


def parallel_error(info: KeyInfo) -> LimitExceeded:
    return LimitExceeded(
        f"Too many parallel requests for {info.label}: at most {info.parallel} at a time. "
        "Retry when one finishes.",
        limit="parallel", retry_after=1.0, code="parallel_limit_exceeded",
    )


class Limiter:
    """Shared machinery; subclasses implement admit/settle/release.

    Not thread-safe: use it from one event loop (one per gateway worker process).
    """

    def __init__(
        self,
        *,
        spend_book: SpendBook | None = None,
        budgets: Iterable[Budget] = (),
        fail_open: dict[str, bool] | None = None,
        rules_ttl: float = 5.0,
        flush_interval: float = 1.0,
        database_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ):
        self.spend_book = spend_book
        self.database_timeout = database_timeout
        self.fail_open = {**DEFAULT_FAIL_OPEN, **(fail_open or {})}
        self.clock = clock
        self.periods = PeriodClock()
        self.rules_ttl = rules_ttl
        self.flush_interval = flush_interval
        self._static_rules = {(b.scope, b.subject): b for b in budgets}
        self._rules: dict[tuple[str, str], Budget] = dict(self._static_rules)
        # User and team budgets from the database: one cache entry, read ahead of expiry.
        self._rules_cache: ReadAheadCache[None, dict[tuple[str, str], Budget]] = ReadAheadCache(
            lambda _: self._read_rules(), rules_ttl, stored=self._rules_stored,
            # A database that stops answering: the last rules stay in force meanwhile.
            down=LimiterUnavailable, grace=float("inf"), read_timeout=database_timeout,
        )
        self._pending: dict[SpendKey, float] = {}
        self._key_targets: dict[str, tuple[KeyInfo, BudgetTarget]] = {}
        self._rule_targets: dict[tuple[str, str], BudgetTarget] = {}
        self._flush_task: asyncio.Task | None = None
        self._write_lock: asyncio.Lock | None = None  # made on first use, inside the running loop
        # Figures for /metrics.
        self.admitted_total = 0
        self.rejected_total: dict[str, int] = {"rpm": 0, "tpm": 0, "parallel": 0, "budget": 0}
        self.redis_errors_total = 0
        self.degraded_total = 0  # admitted unchecked because the shared store was down
        self.spend_flush_errors_total = 0

    # --- public API, implemented by subclasses ------------------------------------------

    async def admit(
        self, info: KeyInfo, *, user: str | None = None, estimated_tokens: int = 0, max_cost: float | None = None
    ) -> Reservation:
        raise NotImplementedError

    async def settle(self, res: Reservation, actual_tokens: int, actual_cost: float | None) -> None:
        raise NotImplementedError

    async def release(self, res: Reservation) -> None:
        raise NotImplementedError

    def metrics(self) -> dict[str, Any]:
        """Counters for /metrics; `rejected_total` is by limit (rpm, tpm, parallel, budget)."""
        return {
            "admitted_total": self.admitted_total,
            "rejected_total": dict(self.rejected_total),
            "redis_errors_total": self.redis_errors_total,
            "degraded_admits_total": self.degraded_total,
            "spend_flush_errors_total": self.spend_flush_errors_total,
        }

    async def flush(self) -> None:
        """Write pending spend to the database now."""
        task, self._flush_task = self._flush_task, None
        if task is not None and not task.done():
            task.cancel()
        await self._write_pending()

    async def aclose(self) -> None:
        """Flush spend and drop connections; call on gateway shutdown. A database that
        does not take the spend within `database_timeout` gets it at the next start:
        it is spilled to disk (SpendBook.spill), so shutdown is bounded and none is lost."""
        await self._rules_cache.aclose()
        try:
            await asyncio.wait_for(self.flush(), self.database_timeout)
        except TimeoutError:
            pass
        if self.spend_book is None:
            return
        pending, self._pending = self._pending, {}
        try:
            spilled = self.spend_book.spill(pending)
        except OSError:
            log.exception("budget spend could not be written nor spilled; it is lost: %s", pending)
            return
        if spilled:
            log.warning("budget spend not written within %ss: %d batch(es) spilled for the next start",
                        self.database_timeout, spilled)

    # --- budgets a request is charged to ------------------------------------------------

    def tracks_spend(self, info: KeyInfo, user: str | None = None) -> bool:
        """Whether a budget applies to this key's requests, i.e. whether the caller should
        work out `max_cost` before `admit`. True until user/team budgets were first read."""
        if info.budget is not None:
            return True
        if self.spend_book is not None and not self._rules_cache.has(None):
            return True  # not read yet: err on the side of pricing the request
        rules = self._rules
        if not rules:
            return False
        # A key bound to a user speaks for that user: the request's `user` field cannot
        # move its calls onto someone else's budget.
        who = info.user or user
        return (who is not None and ("user", who) in rules) or (
            info.team is not None and ("team", info.team) in rules
        )

    async def budget_targets(self, info: KeyInfo, user: str | None, now: float) -> tuple[BudgetTarget, ...]:
        """The budgets a request is charged to (re-reading user/team budgets when due)."""
        if self.rules_due():
            await self.refresh_rules()
        return self.targets_now(info, user, now)

    def targets_now(self, info: KeyInfo, user: str | None, now: float) -> tuple[BudgetTarget, ...]:
        """`budget_targets` without the refresh: call only when `rules_due()` is False."""
        if info.budget is None and not self._rules:
            return ()
        targets: list[BudgetTarget] = []
        if info.budget is not None:
            period_id, reset = self.periods.current(info.period, now)
            # Targets are cached: the KeyStore hands out the same KeyInfo object while cached.
            cached = self._key_targets.get(info.id)
            if cached is not None and cached[0] is info and cached[1].period_id == period_id:
                targets.append(cached[1])
            else:
                target = BudgetTarget("key", info.id, info.label, info.budget, info.period, period_id, reset)
                self._key_targets[info.id] = (info, target)
                targets.append(target)
        rules = self._rules
        if rules:
            who = info.user or user
            if who is not None:
                rule = rules.get(("user", who))
                if rule is not None:
                    targets.append(self._target(rule, now))
            if info.team is not None:
                rule = rules.get(("team", info.team))
                if rule is not None:
                    targets.append(self._target(rule, now))
        return tuple(targets)

    def rules_due(self) -> bool:
        """True when the rules must be read before this request; near the end of their
        time, starts reading them in the background instead."""
        return self.spend_book is not None and self._rules_cache.fresh(None) is None

    def _target(self, rule: Budget, now: float) -> BudgetTarget:
        period_id, reset = self.periods.current(rule.period, now)
        cached = self._rule_targets.get((rule.scope, rule.subject))
        if cached is not None and cached.budget == rule.budget and cached.period_id == period_id:
            return cached
        target = BudgetTarget(
            rule.scope, rule.subject, f"{rule.scope} '{rule.subject}'", rule.budget, rule.period, period_id, reset
        )
        self._rule_targets[(rule.scope, rule.subject)] = target
        return target

    async def refresh_rules(self) -> None:
        try:
            await self._rules_cache.load(None)
        except LimiterUnavailable:  # no answer in time, none before: the configured rules
            log.warning("reading user/team budgets timed out; keeping the previous ones")

    def _read_rules(self) -> dict[tuple[str, str], Budget]:
        """Runs in a worker thread. A failed read keeps the last rules rather than fail
        requests; it is tried again when they expire."""
        assert self.spend_book is not None
        try:
            return {**self._static_rules, **self.spend_book.budgets()}
        except Exception:
            log.exception("reading user/team budgets failed; keeping the previous ones")
            return self._rules

    def _rules_stored(self, _: None, rules: dict[tuple[str, str], Budget]) -> None:
        self._rules = rules
        self._key_targets.clear()  # also bounds them to the keys seen since the last refresh
        self.prune()

    def prune(self) -> None:
        """Drop state no longer needed (idle windows, past periods). Called every rules refresh."""

    # --- spend persistence --------------------------------------------------------------

    async def load_spend(self, key: SpendKey) -> float:
        if self.spend_book is None:
            return 0.0
        return await asyncio.wait_for(run_side_work(self.spend_book.load, *key, awaited=True), self.database_timeout)

    def record_spend(self, targets: tuple[BudgetTarget, ...], cost: float) -> None:
        if self.spend_book is None or not targets or not cost:
            return
        pending = self._pending
        for target in targets:
            key = target.spend_key
            pending[key] = pending.get(key, 0.0) + cost
        if self._flush_task is None:
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        self._flush_task = None
        await self._write_pending()

    async def _write_pending(self) -> None:
        if self.spend_book is None:
            return
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        # The lock makes `flush()` wait for a write already under way.
        async with self._write_lock:
            if self._pending:
                await self._write_batch()

    async def _write_batch(self) -> None:
        assert self.spend_book is not None
        batch, self._pending = self._pending, {}
        try:
            await run_side_work(self.spend_book.write, self.spend_book.hold(batch))
        except Exception:
            # Keep the spend for the next flush rather than lose it.
            self.spend_flush_errors_total += 1
            log.exception("writing spend counters failed; will retry")
            for key, amount in batch.items():
                self._pending[key] = self._pending.get(key, 0.0) + amount
            if self._flush_task is None:
                self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())
