"""Budget periods: which period a moment falls in, and when that period resets.

Periods are UTC calendar periods: a "day" budget resets at 00:00 UTC, a "month" budget
at 00:00 UTC on the 1st, a "total" budget never.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

PERIODS = ("day", "month", "total")


def period_window(period: str, now: float) -> tuple[str, float | None]:
    """(period id, reset time as a UNIX timestamp or None) for the period holding `now`."""
    if period == "total":
        return "total", None
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("d%Y-%m-%d"), (start + timedelta(days=1)).timestamp()
    if period == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if start.month == 12:
            end = start.replace(year=start.year + 1, month=1)
        else:
            end = start.replace(month=start.month + 1)
        return start.strftime("m%Y-%m"), end.timestamp()
    raise ValueError(f"unknown budget period {period!r}: use one of {', '.join(PERIODS)}")


class PeriodClock:
    """`period_window`, recomputed only when a boundary passes: the hot path pays a compare."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, float | None, float]] = {}

    def current(self, period: str, now: float) -> tuple[str, float | None]:
        hit = self._cache.get(period)
        if hit is not None and hit[2] <= now and (hit[1] is None or now < hit[1]):
            return hit[0], hit[1]
        period_id, reset = period_window(period, now)
        start = 0.0 if reset is None else _period_start(period, now)
        self._cache[period] = (period_id, reset, start)
        return period_id, reset


def _period_start(period: str, now: float) -> float:
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def period_start(period_id: str) -> datetime | None:
    """When the period named by `period_window`'s id began (None for "total")."""
    if period_id.startswith("d"):
        return datetime.strptime(period_id[1:], "%Y-%m-%d").replace(tzinfo=UTC)
    if period_id.startswith("m"):
        return datetime.strptime(period_id[1:], "%Y-%m").replace(tzinfo=UTC)
    return None


def describe_reset(reset: float | None, now: float) -> str:
    """'resets at 2025-12-01 00:00 UTC (in 5d 3h)', or a note that it never does."""
    if reset is None:
        return "A total budget never resets"
    when = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"Resets at {when} (in {describe_duration(reset - now)})"


def describe_duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.999))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
