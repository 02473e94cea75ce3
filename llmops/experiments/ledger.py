"""Read access to the gateway's `ledger` table, without depending on the gateway package.

The table is declared in `llmops.gateway.ledger_models`, a plain table module. When
that module is not installed but a database holds the table anyway (written by a
gateway of the same release elsewhere), the table is reflected from the database.
"""

from __future__ import annotations

import importlib
import threading

from sqlalchemy import MetaData, Table, inspect, select
from sqlalchemy.engine import Engine

LEDGER_TABLE = "ledger"
_reflected: dict[str, Table | None] = {}
_lock = threading.Lock()


def ledger_table(engine: Engine) -> Table | None:
    """The ledger table, or None when this database has none (no gateway ever ran)."""
    try:
        importlib.import_module("llmops.gateway.ledger_models")
    except ModuleNotFoundError as exc:
        if exc.name not in ("llmops.gateway.ledger_models", "llmops.gateway"):
            raise
    else:
        from sqlmodel import SQLModel

        table = SQLModel.metadata.tables.get(LEDGER_TABLE)
        if table is not None:
            return table
    key = str(engine.url)
    with _lock:
        if key not in _reflected or _reflected[key] is None:
            if inspect(engine).has_table(LEDGER_TABLE):
                _reflected[key] = Table(LEDGER_TABLE, MetaData(), autoload_with=engine)
            else:
                _reflected[key] = None  # looked again next time: a gateway may create it
        return _reflected[key]


def ledger_has_request(engine: Engine, request_id: str) -> bool:
    table = ledger_table(engine)
    if table is None:
        return False
    with engine.connect() as conn:
        return conn.execute(select(table.c.id).where(table.c.id == request_id).limit(1)).first() is not None
