"""Rate limits (rpm, tpm, parallel) and budgets (key, user, team) for the gateway.

    limiter = make_limiter(settings.redis_url, config.limits.get("fail_open"))
    res = await limiter.admit(info, user=body.get("user"), estimated_tokens=n, max_cost=c)
    try:
        ...call upstream...
        await limiter.settle(res, actual_tokens, actual_cost)
    except BaseException:
        await limiter.release(res)
        raise
    ...
    await limiter.aclose()   # on shutdown: flushes spend to the database

Without a Redis URL the state lives in this process (LocalLimiter); with one, in Redis
(RedisLimiter), shared by every gateway process. See base.py for the exact semantics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from llmops.errors import InvalidInput
from llmops.governance.config import LimitsConfig
from llmops.governance.limits.base import (
    DEFAULT_FAIL_OPEN,
    BudgetTarget,
    Limiter,
    LimiterUnavailable,
    LimitExceeded,
    Reservation,
)
from llmops.governance.limits.local import LocalLimiter
from llmops.governance.limits.periods import PERIODS, period_window
from llmops.governance.limits.spend import Budget, SpendBook, validate_budget

__all__ = [
    "DEFAULT_FAIL_OPEN",
    "PERIODS",
    "Budget",
    "BudgetTarget",
    "Limiter",
    "LimiterUnavailable",
    "LimitExceeded",
    "LocalLimiter",
    "Reservation",
    "SpendBook",
    "limiter_from_config",
    "make_limiter",
    "period_window",
]


def make_limiter(
    redis_url: str | None = None,
    fail_open: Mapping[str, bool] | None = None,
    *,
    database_url: str | None = None,
    persist: bool = True,
    budgets: Iterable[Budget | Mapping[str, Any]] = (),
    redis_prefix: str = "llmops:",
    rules_ttl: float = 5.0,
    flush_interval: float = 1.0,
    lease_seconds: float = 900.0,
    redis_timeout: float = 0.5,
    database_timeout: float = 2.0,
    clock: Callable[[], float] = time.time,
) -> Limiter:
    """A limiter: in-process without `redis_url`, shared through Redis with it.

    fail_open: {"rate_limits": bool, "budgets": bool}, what to do while Redis is down
      (default rate limits open, budgets closed: a 503 rather than unbounded spend).
    database_url: where user/team budgets and spend counters live (default: settings).
    persist: False keeps spend in memory only (no database at all).
    budgets: user/team budgets from configuration, e.g. [{"team": "ml", "budget": 100,
      "period": "month"}]; a budget set in the database (`llmops keys budget`) wins.
    rules_ttl: seconds between re-reads of the database's user/team budgets.
    flush_interval: seconds between batched writes of spend to the database.
    database_timeout: the longest a request waits for a database read (spend, rules).
    """
    unknown = set(fail_open or {}) - set(DEFAULT_FAIL_OPEN)
    if unknown:
        raise InvalidInput(f"limits.fail_open: unknown setting(s) {sorted(unknown)}; known: rate_limits, budgets")
    options: dict[str, Any] = dict(
        spend_book=SpendBook(database_url) if persist else None,
        budgets=[_budget(b) for b in budgets],
        fail_open=dict(fail_open or {}),
        rules_ttl=rules_ttl,
        flush_interval=flush_interval,
        database_timeout=database_timeout,
        clock=clock,
    )
    if not redis_url:
        return LocalLimiter(**options)
    from llmops.governance.limits.redis_limiter import RedisLimiter

    return RedisLimiter(
        redis_url, prefix=redis_prefix, lease_seconds=lease_seconds, timeout=redis_timeout, **options
    )


def limiter_from_config(limits: LimitsConfig, *, redis_url: str | None, database_url: str | None) -> Limiter:
    """`make_limiter` from the gateway config's `limits:` section."""
    options = limits.model_dump(exclude={"fail_open", "budgets", "key_grace"})
    budgets = [b.model_dump(exclude_none=True) for b in limits.budgets]
    return make_limiter(
        redis_url, limits.fail_open.model_dump(), database_url=database_url, budgets=budgets, **options
    )


def _budget(item: Budget | Mapping[str, Any]) -> Budget:
    if isinstance(item, Budget):
        return item
    data = dict(item)
    if ("user" in data) == ("team" in data):
        raise InvalidInput(f"limits.budgets: each entry needs exactly one of user or team: {item!r}")
    scope = "user" if "user" in data else "team"
    return validate_budget(scope, data[scope], data.get("budget"), data.get("period", "month"))
