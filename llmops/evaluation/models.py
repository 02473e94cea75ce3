"""Eval tables: runs, one row per case × prompt × model, and the response cache.

A run row carries what makes it reproducible and comparable: the suite, the prompt
versions actually resolved (`summarize@production` -> `summarize:2`), the models and
parameters, and the git commit it ran at.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Float, Integer, String, Text
from sqlmodel import Field, SQLModel

from llmops.columns import UTCDateTime, utcnow
from llmops.migrations import Migration, add_columns, create_tables


class EvalRun(SQLModel, table=True):
    __tablename__ = "eval_runs"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    suite: str = Field(sa_column=Column(String(200), nullable=False, index=True))
    suite_path: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))  # passed | failed
    # {prompt id in the suite: resolved reference}, e.g. {"summarize@production": "summarize:2"}
    prompts: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    models: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    parameters: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    git_commit: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    total: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    passed: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    errors: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    score: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    # Dollars spent by this run (cached responses cost nothing) and mean model latency.
    cost: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    latency_ms: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    baseline_run_id: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    started_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False, index=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class EvalResult(SQLModel, table=True):
    __tablename__ = "eval_results"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    case_id: str = Field(sa_column=Column(String(200), nullable=False))
    prompt_id: str = Field(sa_column=Column(String(200), nullable=False))
    prompt_ref: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    model_id: str = Field(sa_column=Column(String(200), nullable=False))
    model: str = Field(sa_column=Column(String(200), nullable=False))
    params: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    variables: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    output: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    score: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    passed: bool = Field(default=False)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    assertions: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    latency_ms: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    cost: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    usage: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    cached: bool = Field(default=False)
    # The reply's tool calls; None for rows stored before they were recorded.
    tool_calls: list | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # A repeated case: {"stats": repeats.RepeatStats.to_dict(), "attempts": [each attempt]}.
    repeats: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class EvalCacheEntry(SQLModel, table=True):
    """A model response, keyed by a hash of (model, messages, parameters)."""

    __tablename__ = "eval_cache"

    key: str = Field(sa_column=Column(String(64), primary_key=True))
    model: str = Field(sa_column=Column(String(200), nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    usage: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    cost: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    latency_ms: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    tool_calls: list | None = Field(default=None, sa_column=Column(JSON, nullable=True))


MIGRATIONS = [
    Migration("evaluation.0001", create_tables("eval_runs", "eval_results", "eval_cache")),
    Migration("evaluation.0002", add_columns("eval_results", "tool_calls", "repeats")),
    Migration("evaluation.0003", add_columns("eval_cache", "tool_calls")),
]


def is_evidence(parameters: dict | None) -> bool:
    """Whether an eval run counts as evidence for the prompt versions it ran: every run
    does, unless it was saved as a comparison only (`"evidence": false`, as the app's
    Compare page saves them)."""
    return not isinstance(parameters, dict) or parameters.get("evidence", True) is not False
