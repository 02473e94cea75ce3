"""Spend reports over the request ledger: who and what used how many tokens, at what cost.

Definitions, per group:
- `requests`: ledger rows (every request, whatever its end);
- `errors`: rows whose outcome is not "success" (upstream errors, blocks, refusals,
  client errors, cancellations);
- `cost`: the sum of known costs; None when tokens were used but no row of the group
  had a known price;
- `unknown_cost_requests`: rows that used tokens but whose cost is unknown (no price
  for the model): their spend is missing from `cost`, not zero.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Integer, case, func, literal, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from llmops.db import get_engine
from llmops.errors import InvalidInput
from llmops.governance.ledger_models import LEDGER_TABLE
from llmops.governance.ledger_storage import is_partitioned

__all__ = ["spend_report", "parse_since", "GROUPINGS"]

Grouping = Literal["model", "key", "user", "team", "prompt", "variant"]
GROUPINGS: tuple[str, ...] = ("model", "key", "user", "team", "prompt", "variant")

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)


def parse_since(value: str) -> timedelta:
    """ "30m", "24h", "7d" (also "45s", "2w") as a timedelta."""
    match = _SINCE.match(value or "")
    if not match:
        raise InvalidInput(
            f"cannot read {value!r} as a time span; use a number and a unit: 30m, 24h, 7d, 2w",
            param="since",
        )
    amount = float(match.group(1))
    if amount <= 0:
        raise InvalidInput(f"the time span {value!r} must be greater than zero", param="since")
    return timedelta(**{_UNITS[match.group(2).lower()]: amount})


def _group_columns(by: str) -> tuple[list[ColumnElement], ColumnElement, list[tuple[str, ColumnElement]]]:
    """(GROUP BY columns, the group's label, extra output columns)."""
    t = LEDGER_TABLE.c
    if by == "model":
        return [t.model], t.model, []
    if by == "key":
        # The id (or prefix) identifies a key; its name is shown beside it.
        return [t.key_id], t.key_id, [("key_name", func.max(t.key_name))]
    if by == "user":
        return [t.user], t.user, []
    if by == "team":
        return [t.team], t.team, []
    if by == "prompt":
        return [t.prompt_name], t.prompt_name, []
    if by == "variant":
        return [t.experiment, t.variant], t.experiment, [("variant", t.variant)]
    raise InvalidInput(f"cannot group spend by {by!r}; choose one of {', '.join(GROUPINGS)}", param="by")


def spend_report(
    database_url: str | None = None,
    by: Grouping | str = "model",
    since: timedelta | None = None,
) -> list[dict[str, Any]]:
    """Requests, errors, tokens and cost per group, dearest first.

    Each dict: group, requests, errors, input_tokens, output_tokens, cost,
    unknown_cost_requests (plus key_name for by="key"; for by="variant" the group is
    the experiment and `variant` the arm). A group of None collects rows without that
    attribute (no key, no prompt...).

    On Postgres the whole hours of the window come from the hourly rollup
    (ledger_storage.py) and only the rows of its first, partial hour from the ledger.
    """
    group_by, label, extras = _group_columns(by)
    start = None if since is None else datetime.now(UTC) - since
    engine = get_engine(database_url)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql" and is_partitioned(conn):
            boundary = None if start is None else _next_hour(start)
            rows = _rollup_rows(conn, by, boundary)
            if start is not None and boundary is not None and start < boundary:
                rows += _ledger_rows(conn, group_by, label, extras, start, boundary)
            rows = _merge(rows, by)
        else:
            rows = _ledger_rows(conn, group_by, label, extras, start, None)
    report = []
    for row in rows:
        unknown = int(row.pop("unknown_cost_requests") or 0)
        known = int(row.pop("known_cost_requests") or 0)
        cost = row["cost"]
        if cost is None and (known or not unknown):
            cost = 0.0  # nothing was priced because nothing cost anything
        report.append(
            {
                "group": row.pop("group"),
                **{name: row[name] for name, _ in extras},
                "requests": int(row["requests"]),
                "errors": int(row["errors"] or 0),
                "input_tokens": int(row["input_tokens"] or 0),
                "output_tokens": int(row["output_tokens"] or 0),
                "cost": None if cost is None else float(cost),
                "unknown_cost_requests": unknown,
            }
        )
    report.sort(key=lambda r: (-(r["cost"] or 0.0), -r["requests"], str(r["group"])))
    return report


def _next_hour(moment: datetime) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour if hour == moment else hour + timedelta(hours=1)


def _ledger_rows(
    conn: Connection,
    group_by: list[ColumnElement],
    label: ColumnElement,
    extras: list[tuple[str, ColumnElement]],
    start: datetime | None,
    end: datetime | None,
) -> list[dict[str, Any]]:
    t = LEDGER_TABLE.c
    used_tokens = (t.input_tokens + t.output_tokens) > 0
    known_cost_rows = func.sum(case((t.cost.is_not(None), 1), else_=0))
    query = select(
        label.label("group"),
        *[column.label(name) for name, column in extras],
        func.count().label("requests"),
        func.sum(case((t.outcome != "success", 1), else_=0)).label("errors"),
        func.coalesce(func.sum(t.input_tokens), literal(0, Integer)).label("input_tokens"),
        func.coalesce(func.sum(t.output_tokens), literal(0, Integer)).label("output_tokens"),
        func.sum(t.cost).label("cost"),
        known_cost_rows.label("known_cost_requests"),
        func.sum(case(((t.cost.is_(None)) & used_tokens, 1), else_=0)).label("unknown_cost_requests"),
    ).group_by(*group_by)
    if start is not None:
        query = query.where(t.created_at >= start)
    if end is not None:
        query = query.where(t.created_at < end)
    return [dict(row._mapping) for row in conn.execute(query)]


def _decode(value: str) -> str | None:
    return None if value == "" else value[1:]  # see ledger_storage._encode


def _rollup_rows(conn: Connection, by: str, start: datetime | None) -> list[dict[str, Any]]:
    where = "dimension = :dimension" + ("" if start is None else " AND bucket >= :start")
    params: dict[str, Any] = {"dimension": by}
    if start is not None:
        params["start"] = start.astimezone(UTC).replace(tzinfo=None)  # buckets are naive UTC hours
    query = text(
        "SELECT grp, sub, sum(requests) AS requests, sum(errors) AS errors, sum(input_tokens) AS input_tokens, "
        "sum(output_tokens) AS output_tokens, sum(cost) AS cost, sum(priced) AS known_cost_requests, "
        "sum(unpriced) AS unknown_cost_requests, max(key_name) AS key_name "
        f"FROM ledger_rollup WHERE {where} GROUP BY grp, sub"
    )
    rows = []
    for row in conn.execute(query, params):
        item = dict(row._mapping)
        item["group"] = _decode(item.pop("grp"))
        sub = _decode(item.pop("sub"))
        if by == "variant":
            item["variant"] = sub
        if by != "key":
            item.pop("key_name")
        rows.append(item)
    return rows


_SUMMED = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "known_cost_requests",
    "unknown_cost_requests",
)


def _merge(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Rows of the same group (from the rollup and from the ledger) summed into one."""
    merged: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        key = (row["group"], row.get("variant"))
        into = merged.get(key)
        if into is None:
            merged[key] = dict(row)
            continue
        for name in _SUMMED:
            into[name] = (into[name] or 0) + (row[name] or 0)
        if row["cost"] is not None:
            into["cost"] = row["cost"] if into["cost"] is None else into["cost"] + row["cost"]
        if by == "key":
            names = [n for n in (into.get("key_name"), row.get("key_name")) if n is not None]
            into["key_name"] = max(names) if names else None
    return list(merged.values())
