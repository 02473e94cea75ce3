"""Spend over time from the gateway's ledger: cost and tokens per time bucket and group.

Totals per group come from `llmops.governance.spend.spend_report` (the same figures as `llmops
spend` and GET /admin/spend); this adds the time axis for the charts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, case, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from llmops.db import get_engine
from llmops.errors import InvalidInput
from llmops.governance.ledger_models import LEDGER_TABLE
from llmops.ui.timebuckets import bucket_column, parse_bucket

# The dimensions the Spend page charts, and the ledger column each reads.
DIMENSIONS: tuple[str, ...] = ("model", "key", "user", "prompt", "team")
NONE_LABEL = "(none)"
OTHER_LABEL = "(other)"


def _group_column(by: str) -> ColumnElement:
    t = LEDGER_TABLE.c
    if by == "model":
        return t.model
    if by == "key":
        # Keys are shown by name, else by id or prefix: never the secret, which is not stored.
        return func.coalesce(t.key_name, t.key_id)
    if by == "user":
        return t.user
    if by == "prompt":
        return t.prompt_name
    if by == "team":
        return t.team
    raise InvalidInput(f"cannot chart spend by {by!r}; choose one of {', '.join(DIMENSIONS)}")


def ledger_span(database_url: str, since: timedelta | None = None) -> timedelta | None:
    """How far back the period's oldest request is (None: no request), to size the chart's buckets."""
    t = LEDGER_TABLE.c
    query = select(func.min(t.created_at))
    if since is not None:
        query = query.where(t.created_at >= datetime.now(UTC) - since)
    with get_engine(database_url).connect() as conn:
        first = conn.execute(query).scalar()
    return None if first is None else datetime.now(UTC) - first


@dataclass(frozen=True)
class SpendPoint:
    bucket: datetime
    group: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost: float
    # Rows that used tokens at an unknown price: their spend is missing from `cost`.
    unpriced_requests: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def spend_over_time(
    database_url: str,
    *,
    by: str = "model",
    since: timedelta | None = None,
    bucket: str = "hour",
    top: int = 8,
) -> list[SpendPoint]:
    """Per bucket and group, oldest first; groups beyond the `top` dearest are summed as (other)."""
    t = LEDGER_TABLE.c
    engine = get_engine(database_url)
    when = bucket_column(t.created_at, engine.dialect.name, bucket).label("bucket")
    group = _group_column(by).label("grp")
    query = select(
        when,
        group,
        func.count().label("requests"),
        func.coalesce(func.sum(t.input_tokens), literal(0, Integer)).label("input_tokens"),
        func.coalesce(func.sum(t.output_tokens), literal(0, Integer)).label("output_tokens"),
        func.coalesce(func.sum(t.cost), literal(0.0)).label("cost"),
        func.sum(case((t.cost.is_(None) & ((t.input_tokens + t.output_tokens) > 0), 1), else_=0)).label(
            "unpriced"
        ),
    ).group_by(when, group)
    if since is not None:
        query = query.where(t.created_at >= datetime.now(UTC) - since)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    totals: dict[str, tuple[float, int]] = {}
    for row in rows:
        name = NONE_LABEL if row["grp"] is None else str(row["grp"])
        cost, tokens = totals.get(name, (0.0, 0))
        totals[name] = (
            cost + float(row["cost"] or 0.0),
            tokens + int(row["input_tokens"]) + int(row["output_tokens"]),
        )
    kept = {name for name, _ in sorted(totals.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:top]}
    merged: dict[tuple[datetime, str], list[float]] = {}
    for row in rows:
        name = NONE_LABEL if row["grp"] is None else str(row["grp"])
        key = (parse_bucket(row["bucket"]), name if name in kept else OTHER_LABEL)
        acc = merged.setdefault(key, [0, 0, 0, 0.0, 0])
        acc[0] += int(row["requests"])
        acc[1] += int(row["input_tokens"])
        acc[2] += int(row["output_tokens"])
        acc[3] += float(row["cost"] or 0.0)
        acc[4] += int(row["unpriced"] or 0)
    return [
        SpendPoint(when, name, int(a[0]), int(a[1]), int(a[2]), float(a[3]), int(a[4]))
        for (when, name), a in sorted(merged.items())
    ]


# --- budgets and how much of each is left -------------------------------------------------------


@dataclass(frozen=True)
class BudgetLeft:
    scope: str  # "key" | "user" | "team"
    subject: str  # the key's name, the user, the team
    period: str
    budget: float
    spent: float
    resets: str

    @property
    def left(self) -> float:
        return max(0.0, self.budget - self.spent)

    @property
    def used(self) -> float:
        return self.spent / self.budget if self.budget else 1.0

    def row(self) -> dict[str, str]:
        return {
            "Budget of": f"{self.scope} {self.subject}",
            "Period": self.period,
            "Budget": f"${self.budget:,.2f}",
            "Spent": f"${self.spent:,.6f}",
            "Left": f"${self.left:,.6f}",
            "Used": f"{self.used:.1%}",
            "Resets": self.resets,
        }


def budgets_left(database_url: str) -> list[BudgetLeft]:
    """Every budget (user and team rules, and keys with one) with the period's spend, most used first.

    Spend is what the gateway's limiter counts (`llmops keys budgets` and GET /admin/budgets
    read the same), so it lags a running gateway by its flush interval.
    """
    from llmops.governance.keys import KeyStore
    from llmops.governance.limits.periods import describe_reset, period_window

    store = KeyStore(database_url)
    now = time.time()
    found = [
        BudgetLeft(
            rule.scope,
            rule.subject,
            rule.period,
            rule.budget,
            store.spent(rule.scope, rule.subject, rule.period),
            describe_reset(period_window(rule.period, now)[1], now),
        )
        for rule in store.budgets()
    ]
    for key in store.list(include_revoked=False):
        if key.budget is not None:
            found.append(
                BudgetLeft(
                    "key",
                    key.name or key.id,
                    key.period,
                    key.budget,
                    store.spent("key", key.id, key.period),
                    describe_reset(period_window(key.period, now)[1], now),
                )
            )
    return sorted(found, key=lambda b: (-b.used, b.scope, b.subject))


# Column titles for spend_report's rows (`llmops spend`'s field names).
SPEND_COLUMNS = {
    "group": "Group",
    "key_name": "Key name",
    "variant": "Variant",
    "requests": "Requests",
    "input_tokens": "Input tokens",
    "output_tokens": "Output tokens",
    "cost": "Cost",
    "unknown_cost_requests": "Requests at an unknown price",
}


def spend_table(rows: list[dict], by: str) -> list[dict[str, str]]:
    """spend_report's rows as a reader sees them: titled columns, dollars, no None."""
    out = []
    for row in rows:
        shown: dict[str, str] = {}
        for key, value in row.items():
            title = SPEND_COLUMNS.get(key, key.replace("_", " ").capitalize())
            if key == "group":
                title = {
                    "key": "Key",
                    "model": "Model",
                    "user": "User",
                    "prompt": "Prompt",
                    "team": "Team",
                }.get(by, title)
                shown[title] = NONE_LABEL if value is None else str(value)
            elif key == "cost":
                shown[title] = "unknown" if value is None else f"${value:,.6f}"
            elif isinstance(value, int | float) and not isinstance(value, bool):
                shown[title] = f"{value:,}"
            else:
                shown[title] = "–" if value is None else str(value)
        out.append(shown)
    return out
