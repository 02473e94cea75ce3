"""Engine and sessions: SQLite (WAL) by default, Postgres by URL; schema kept current.

Every table module registers its SQLModel classes by being imported in `_load_tables`;
`migrations.upgrade` brings an existing database to the current schema in place.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from llmops.settings import get_settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()

# Postgres: a database that stops answering must not hold a request (or the ledger
# writer) for long. Seconds to establish a connection (libpq's own, client-side timer,
# so a frozen server is covered too), and the most a statement may run on the server
# (a lock wait or a slow server, not a frozen one: the request path bounds that itself,
# see read_ahead.py's read_timeout). A pool with no free connection fails after
# POOL_TIMEOUT instead of queueing behind ones that hang.
CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 10_000
POOL_TIMEOUT = 5


def normalize_url(url: str) -> str:
    # Users paste `postgresql://` or `postgres://`; psycopg 3 is the driver we ship.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    # Several processes write one file (CLI, gateway replicas): wait, don't fail.
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL per process, created and migrated on first use."""
    return _engine_and_upgrade(url)[0]


def upgrade(url: str | None = None) -> list[str]:
    """Bring the database to the current schema now; returns the migration ids applied
    by this call (none when it was current, or when this process had already opened it)."""
    return _engine_and_upgrade(url)[1]


def _engine_and_upgrade(url: str | None) -> tuple[Engine, list[str]]:
    url = normalize_url(url or get_settings().database_url)
    engine = _engines.get(url)
    if engine is not None:
        return engine, []
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine, []
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                                   pool_timeout=POOL_TIMEOUT, connect_args=_postgres_args(url))
        from llmops import migrations

        applied = migrations.upgrade(engine)
        _engines[url] = engine
    return engine, applied


def _postgres_args(url: str) -> dict[str, object]:
    if not url.startswith("postgresql"):
        return {}
    return {"connect_timeout": CONNECT_TIMEOUT, "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"}


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
