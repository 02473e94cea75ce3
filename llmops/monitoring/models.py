"""Monitoring's tables, beside the ledger in the same database.

`monitor_payloads`: the redacted request and reply text of a sampled call, keyed by its
request id (the ledger row's id), kept until `expires_at`. `monitor_scores`: one online
eval score per (request, metric), with the prompt version, model and variant copied from
the call so reports need no join. `monitor_alerts`: one row per alert sent, keyed by what
crossed its threshold and the window, which is what makes "once per window" hold across
gateway replicas. `monitor_drift`: each saved report's checks (the gateway's worker saves
every run), for drift over time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from llmops.columns import UTCDateTime, table_of
from llmops.migrations import Migration, create_tables


class PayloadRow(SQLModel, table=True):
    __tablename__ = "monitor_payloads"

    id: str = Field(sa_column=Column(String(200), primary_key=True))  # the request id
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    endpoint: str | None = Field(default=None, sa_column=Column(String(200)))
    model: str | None = Field(default=None, sa_column=Column(String(200), index=True))
    prompt_name: str | None = Field(default=None, sa_column=Column(String(200), index=True))
    prompt_version: int | None = Field(default=None, sa_column=Column(Integer))
    variant: str | None = Field(default=None, sa_column=Column(String(200)))
    request_text: str = Field(default="", sa_column=Column(Text, nullable=False))
    response_text: str = Field(default="", sa_column=Column(Text, nullable=False))
    context: str | None = Field(default=None, sa_column=Column(Text))
    truncated: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))
    chars: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))  # for the size cap
    scored_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, index=True))


class ScoreRow(SQLModel, table=True):
    __tablename__ = "monitor_scores"
    __table_args__ = (UniqueConstraint("request_id", "metric", name="uq_monitor_scores_request_metric"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))  # the call's
    scored_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    metric: str = Field(sa_column=Column(String(100), nullable=False))
    score: float = Field(sa_column=Column(Float, nullable=False))
    passed: bool | None = Field(default=None, sa_column=Column(Boolean))
    model: str | None = Field(default=None, sa_column=Column(String(200)))
    prompt_name: str | None = Field(default=None, sa_column=Column(String(200), index=True))
    prompt_version: int | None = Field(default=None, sa_column=Column(Integer))
    variant: str | None = Field(default=None, sa_column=Column(String(200)))
    reason: str | None = Field(default=None, sa_column=Column(String(500)))


class AlertRow(SQLModel, table=True):
    __tablename__ = "monitor_alerts"

    id: str = Field(sa_column=Column(String(400), primary_key=True))  # subject|metric|window start
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    subject: str = Field(sa_column=Column(String(300), nullable=False))
    metric: str = Field(sa_column=Column(String(100), nullable=False))
    message: str = Field(sa_column=Column(Text, nullable=False))
    delivered: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))


class DriftRow(SQLModel, table=True):
    """One check of one saved drift report: the history behind the Monitoring page's chart."""

    __tablename__ = "monitor_drift"
    # One row per run, subject and check, however many gateway workers ran that report.
    __table_args__ = (Index("uq_monitor_drift_run", "run_at", "subject", "metric", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    run_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    subject: str = Field(sa_column=Column(String(300), nullable=False))
    metric: str = Field(sa_column=Column(String(100), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    effect: float | None = Field(default=None, sa_column=Column(Float))
    p_value: float | None = Field(default=None, sa_column=Column(Float))
    n_reference: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    n_recent: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))


PAYLOADS: Table = table_of(PayloadRow)
SCORES: Table = table_of(ScoreRow)
ALERTS: Table = table_of(AlertRow)
DRIFT: Table = table_of(DriftRow)


def _unique_drift_runs(conn: Connection) -> None:
    """The unique index on monitor_drift, for tables made before it was declared."""
    conn.exec_driver_sql(
        "CREATE UNIQUE INDEX IF NOT EXISTS uq_monitor_drift_run ON monitor_drift (run_at, subject, metric)"
    )


MIGRATIONS = [
    Migration("monitoring.0001", create_tables("monitor_payloads", "monitor_scores", "monitor_alerts")),
    Migration("monitoring.0002", create_tables("monitor_drift")),
    Migration("monitoring.0003", lambda conn: _unique_drift_runs(conn)),
]
