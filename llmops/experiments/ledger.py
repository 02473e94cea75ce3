"""The governance ledger as experiments read it: one row per gateway call."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import Engine

from llmops.governance.ledger_models import LEDGER_TABLE

__all__ = ["LEDGER_TABLE", "ledger_has_request"]


def ledger_has_request(engine: Engine, request_id: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(LEDGER_TABLE.c.id).where(LEDGER_TABLE.c.id == request_id).limit(1)).first() is not None
