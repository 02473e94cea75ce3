"""Tables of the A/B experiments: experiments, their variants, and feedback on requests.

An experiment is never deleted: the ledger names it on every request it assigned, and
its report must stay readable after it stops. Hence names are unique for all time.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from llmops.columns import UTCDateTime, utcnow
from llmops.migrations import Migration, create_tables

RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"
STATUSES = (RUNNING, PAUSED, STOPPED)


class ExperimentRow(SQLModel, table=True):
    __tablename__ = "experiments"
    __table_args__ = (
        # At most one open (running or paused) experiment per prompt, enforced by the
        # database so two replicas syncing the same config cannot both start one.
        Index(
            "uq_experiments_open_prompt",
            "prompt_name",
            unique=True,
            sqlite_where=text("status != 'stopped'"),
            postgresql_where=text("status != 'stopped'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(128), nullable=False, unique=True))
    prompt_name: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    unit: str = Field(sa_column=Column(String(16), nullable=False))  # user | session | request
    allocation: str = Field(sa_column=Column(String(16), nullable=False))  # fixed | thompson
    status: str = Field(sa_column=Column(String(16), nullable=False))
    created_by: str | None = Field(default=None, sa_column=Column(String(200)))
    updated_by: str | None = Field(default=None, sa_column=Column(String(200)))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    stopped_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Set by `promote`: the variant that won and the prompt version the label moved to.
    winner: str | None = Field(default=None, sa_column=Column(String(64)))
    promoted_version: int | None = None
    promoted_label: str | None = Field(default=None, sa_column=Column(String(200)))


class ExperimentVariantRow(SQLModel, table=True):
    __tablename__ = "experiment_variants"
    __table_args__ = (UniqueConstraint("experiment_id", "name", name="uq_experiment_variants_name"),)

    id: int | None = Field(default=None, primary_key=True)
    experiment_id: int = Field(foreign_key="experiments.id", index=True)
    position: int
    name: str = Field(sa_column=Column(String(64), nullable=False))
    # Exactly one of label / version is set: a variant follows a label or pins a version.
    label: str | None = Field(default=None, sa_column=Column(String(200)))
    version: int | None = None
    weight: float


class FeedbackRow(SQLModel, table=True):
    __tablename__ = "feedback"

    id: int | None = Field(default=None, primary_key=True)
    # Not a foreign key: the ledger is written in batches, so feedback may arrive
    # before its request's row does. The report joins the two when it runs.
    request_id: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    score: float | None = None  # 0..1; thumbs up is 1.0, down 0.0; None for a comment alone
    thumbs: str | None = Field(default=None, sa_column=Column(String(4)))
    comment: str | None = Field(default=None, sa_column=Column(Text))
    source: str | None = Field(default=None, sa_column=Column(String(200)))  # e.g. the caller's key id
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


MIGRATIONS = [
    Migration("experiments.0001", create_tables("experiments", "experiment_variants", "feedback")),
]
