"""The `ledger` table: one row per gateway request, whatever its end.

Rows are written in batches by `llmops.governance.ledger.LedgerWriter` and read by
`llmops.governance.spend`. The primary key is the request id, which is what makes replaying a
spill file idempotent. `key_id` holds a key's id or prefix, never the secret.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Integer, String, Table
from sqlmodel import Field, SQLModel

from llmops.columns import UTCDateTime, table_of
from llmops.governance.ledger_storage import convert_to_partitions
from llmops.migrations import Migration, add_columns, create_tables

OUTCOMES = ("success", "upstream_error", "gateway_error", "blocked", "refused", "client_error", "cancelled")
USAGE_SOURCES = ("reported", "estimated")


class UTCTimestamp(UTCDateTime):
    """UTCDateTime that takes a naive time as UTC instead of refusing it: ledger rows come
    back from spill files and other processes, and a row is never lost over its clock."""

    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Column widths; the writer truncates longer values rather than failing a whole batch.
STRING_LENGTHS: dict[str, int] = {
    "id": 200,
    "key_id": 200,
    "key_name": 200,
    "user": 200,
    "team": 200,
    "model": 200,
    "deployment": 300,
    "provider": 64,
    "upstream_model": 200,
    "prompt_name": 200,
    "experiment": 200,
    "variant": 200,
    "usage_source": 16,
    "outcome": 32,
    "error_type": 200,
    "endpoint": 200,
    "upstream_request_id": 200,
}


def _str(name: str, *, index: bool = False, nullable: bool = True, primary_key: bool = False) -> Any:
    return Field(
        default=None,
        sa_column=Column(
            name, String(STRING_LENGTHS[name]), index=index, nullable=nullable, primary_key=primary_key
        ),
    )


class LedgerRow(SQLModel, table=True):
    __tablename__ = "ledger"

    id: str = _str("id", primary_key=True, nullable=False)  # the request id
    created_at: datetime = Field(sa_column=Column(UTCTimestamp, nullable=False, index=True))
    key_id: str | None = _str("key_id", index=True)
    key_name: str | None = _str("key_name")
    user: str | None = _str("user", index=True)
    team: str | None = _str("team")
    model: str | None = _str("model", index=True)  # as the client asked
    deployment: str | None = _str("deployment")
    provider: str | None = _str("provider")
    upstream_model: str | None = _str("upstream_model")
    prompt_name: str | None = _str("prompt_name", index=True)
    prompt_version: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    experiment: str | None = _str("experiment")
    variant: str | None = _str("variant")
    input_tokens: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    output_tokens: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    cached_tokens: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))
    usage_source: str | None = _str("usage_source")  # "reported" | "estimated"
    cost: float | None = Field(default=None, sa_column=Column(Float, nullable=True))  # None: unknown price
    latency_ms: float = Field(default=0.0, sa_column=Column(Float, nullable=False, default=0.0))
    ttft_ms: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    status: int = Field(default=0, sa_column=Column(Integer, nullable=False, default=0))  # HTTP status
    outcome: str = _str("outcome", nullable=False)  # one of OUTCOMES
    error_type: str | None = _str("error_type")
    guardrail_verdicts: Any = Field(default=None, sa_column=Column(JSON(none_as_null=True), nullable=True))
    streamed: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))
    endpoint: str | None = _str("endpoint")
    # The upstream's own id for the call (its x-request-id), to find it in the provider's logs.
    upstream_request_id: str | None = _str("upstream_request_id")


LEDGER_TABLE: Table = table_of(LedgerRow)  # for Core queries and bulk inserts

MIGRATIONS = [
    Migration("ledger.0001", create_tables("ledger")),
    Migration("ledger.0002", add_columns("ledger", "upstream_request_id")),
    # Postgres: monthly partitions and the hourly rollup; both: indexes for experiments and teams.
    Migration("ledger.0003", convert_to_partitions),
]
