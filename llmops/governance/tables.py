"""Tables for virtual keys, user/team budgets and budget spend counters.

A key's plaintext is never stored: only its sha256 (keys are 190+ bits of randomness,
so a fast hash is enough) and a short prefix to tell keys apart in listings.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Float, Integer, String
from sqlmodel import Field, SQLModel

from llmops.columns import UTCDateTime, utcnow
from llmops.migrations import Migration, add_columns, create_tables


class ApiKey(SQLModel, table=True):
    __tablename__ = "gateway_keys"

    id: str = Field(sa_column=Column(String(40), primary_key=True))
    name: str = Field(sa_column=Column(String(200), nullable=False))
    key_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True, index=True))
    prefix: str = Field(sa_column=Column(String(32), nullable=False))
    # None: every model; otherwise a list of names or fnmatch patterns ("openai/*").
    models: list | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    rpm: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    tpm: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    parallel: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    budget: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    period: str = Field(default="total", sa_column=Column(String(8), nullable=False, default="total"))
    expires_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    # `user` is a reserved word in Postgres: the columns say what they hold instead.
    user: str | None = Field(default=None, sa_column=Column("user_id", String(200), nullable=True, index=True))
    team: str | None = Field(default=None, sa_column=Column("team_id", String(200), nullable=True, index=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    # A guardrails override for this key's calls (the shape of a per-model override).
    guardrails: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class BudgetRule(SQLModel, table=True):
    """A spending cap for a user or a team, over a period (day, month or total)."""

    __tablename__ = "gateway_budgets"

    scope: str = Field(sa_column=Column(String(8), primary_key=True))  # "user" | "team"
    subject: str = Field(sa_column=Column(String(200), primary_key=True))
    budget: float = Field(sa_column=Column(Float, nullable=False))
    period: str = Field(sa_column=Column(String(8), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class SpendCounter(SQLModel, table=True):
    """USD charged to one budget in one period, so budgets survive restarts.

    `period_id` is "d2025-11-25", "m2025-11" or "total". Rows grow by batched increments
    from every gateway process (see limits/spend.py).
    """

    __tablename__ = "gateway_spend"

    scope: str = Field(sa_column=Column(String(8), primary_key=True))  # "key" | "user" | "team"
    subject: str = Field(sa_column=Column(String(200), primary_key=True))
    period_id: str = Field(sa_column=Column(String(16), primary_key=True))
    spend: float = Field(default=0.0, sa_column=Column(Float, nullable=False, default=0.0))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class SpendFlush(SQLModel, table=True):
    """The last spend batch of one gateway process (one SpendBook) that reached the
    database, written in the batch's own transaction. A batch spilled to disk at shutdown
    may yet have been committed (its answer lost to a frozen connection); replayed, it is
    skipped if its number is not above this one (see limits/spend.py)."""

    __tablename__ = "gateway_spend_flushes"

    writer: str = Field(sa_column=Column(String(40), primary_key=True))
    seq: int = Field(sa_column=Column(Integer, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


MIGRATIONS = [
    Migration("keys.0001", create_tables("gateway_keys", "gateway_budgets", "gateway_spend")),
    Migration("keys.0002", add_columns("gateway_keys", "guardrails")),
    Migration("keys.0003", create_tables("gateway_spend_flushes")),
]
