"""Grouping timestamps into minutes, hours or days inside the database, on SQLite and Postgres.

Both return the bucket's start as text `YYYY-MM-DD HH:MM:00` in UTC, read back with
`parse_bucket`; the ledger is aggregated by the database, not loaded row by row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, literal_column
from sqlalchemy.sql.elements import ColumnElement

from llmops.errors import InvalidInput

BUCKETS: dict[str, tuple[str, str]] = {
    # name: (SQLite strftime format, Postgres date_trunc unit)
    "minute": ("%Y-%m-%d %H:%M:00", "minute"),
    "hour": ("%Y-%m-%d %H:00:00", "hour"),
    "day": ("%Y-%m-%d 00:00:00", "day"),
}


def bucket_column(column: ColumnElement, dialect: str, bucket: str) -> ColumnElement:
    if bucket not in BUCKETS:
        raise InvalidInput(f"unknown time bucket {bucket!r}; choose one of {', '.join(BUCKETS)}")
    sqlite_format, unit = BUCKETS[bucket]
    # Constants inlined, not bound: Postgres sees the SELECT and GROUP BY expressions as
    # one only when they are textually equal, and each bound parameter gets a new number.
    if dialect == "sqlite":
        return func.strftime(literal_column(f"'{sqlite_format}'"), column)
    utc = func.timezone(literal_column("'UTC'"), column)
    return func.to_char(
        func.date_trunc(literal_column(f"'{unit}'"), utc), literal_column("'YYYY-MM-DD HH24:MI:SS'")
    )


def parse_bucket(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def bucket_for(since: timedelta | None) -> str:
    """A bucket that gives a readable number of points for a span of time (None: unbounded)."""
    if since is not None and since <= timedelta(hours=3):
        return "minute"
    if since is not None and since <= timedelta(days=3):
        return "hour"
    return "day"


# The periods pages offer, as `parse_since` text (None: all time).
PERIODS: dict[str, str | None] = {
    "Last hour": "1h",
    "Last 24 hours": "24h",
    "Last 7 days": "7d",
    "Last 30 days": "30d",
    "All time": None,
}
