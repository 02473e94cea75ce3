"""The `limits:` and `ledger:` sections of the gateway's configuration, typed.

An unknown field or a bad value stops start-up with one line naming the field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    model_validator,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FailOpen(_Strict):
    """While Redis is down: rate limits let calls through, budgets refuse them (503)."""

    rate_limits: bool = True
    budgets: bool = False


class BudgetEntry(_Strict):
    """A user's or a team's budget from configuration; one set in the database wins."""

    user: str | None = None
    team: str | None = None
    budget: float = Field(ge=0)
    period: Literal["day", "month", "total"] = "month"

    @model_validator(mode="after")
    def _one_subject(self) -> BudgetEntry:
        if bool(self.user) == bool(self.team):
            raise ValueError("give exactly one of user or team")
        return self


class LimitsConfig(_Strict):
    fail_open: FailOpen = Field(default_factory=FailOpen)
    budgets: list[BudgetEntry] = Field(default_factory=list)
    redis_prefix: str = "llmops:"
    rules_ttl: PositiveFloat = 5.0  # seconds between re-reads of database budgets
    flush_interval: PositiveFloat = 1.0  # seconds between batched writes of spend
    lease_seconds: PositiveFloat = 900.0
    redis_timeout: PositiveFloat = 0.5
    # While the database is down or slow: the longest a request waits for a key (or
    # budget) read, and for how long after its cache entry expired a key read before
    # the outage keeps working (0: every virtual-key call gets 503 during an outage).
    database_timeout: PositiveFloat = 2.0
    key_grace: NonNegativeFloat = 300.0


class LedgerConfig(_Strict):
    batch_size: PositiveInt = 1000
    flush_interval: PositiveFloat = 0.25  # seconds a row may wait for its batch
    max_queue: PositiveInt = 100_000
    spill_dir: str | None = None  # default: LLMOPS_SPILL_DIR, else ./llmops-spill
    # Each row is appended to a journal file in spill_dir (no fsync) before it is queued,
    # and replayed at the next start after a crash; off: a crash loses the queue.
    journal: bool = True
    # Keep ledger rows this many days (None: forever). Postgres drops whole monthly
    # partitions, so up to a month more is kept; SQLite deletes rows. See ledger_storage.py.
    retention_days: PositiveFloat | None = None
