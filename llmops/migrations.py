"""In-place schema upgrades, so a user never loses a registry or a ledger on upgrade.

Each table module lists its own migrations as `MIGRATIONS = [Migration(id, apply)]`,
ids like "registry.0001". `upgrade` applies, in order, the ones a database has not
seen and records them in `llmops_migrations`. It holds a database-wide lock while it
does so, because several processes (CLI, gateway workers) may start on a fresh
database at the same moment.

A later release that changes a table adds a migration (an ALTER TABLE, a data copy)
rather than editing an applied one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, DateTime, MetaData, String, Table, func, select, text
from sqlalchemy.engine import Connection, Engine

# Modules that define tables and their MIGRATIONS, in dependency order.
TABLE_MODULES = [
    "llmops.registry.models",
    "llmops.governance.ledger_models",
    "llmops.governance.tables",
    "llmops.evaluation.models",
    "llmops.experiments.models",
    "llmops.conversations",
    "llmops.monitoring.models",
]

_meta = MetaData()
applied_table = Table(
    "llmops_migrations",
    _meta,
    Column("id", String(200), primary_key=True),
    Column("applied_at", DateTime(timezone=True), server_default=func.now()),
)


@dataclass(frozen=True)
class Migration:
    id: str
    apply: Callable[[Connection], None]


def create_tables(*names: str) -> Callable[[Connection], None]:
    """A migration step that creates the named SQLModel tables as currently declared."""

    def apply(conn: Connection) -> None:
        from sqlmodel import SQLModel

        for name in names:
            SQLModel.metadata.tables[name].create(conn, checkfirst=True)

    return apply


def add_columns(table_name: str, *column_names: str) -> Callable[[Connection], None]:
    """A migration step that adds columns declared on a SQLModel table to an older database.

    A database created after the column was declared already has it (create_tables builds
    tables as currently declared), so only missing columns are added; they must be nullable.
    """

    def apply(conn: Connection) -> None:
        from sqlalchemy import inspect
        from sqlmodel import SQLModel

        table = SQLModel.metadata.tables[table_name]
        present = {c["name"] for c in inspect(conn).get_columns(table_name)}
        for name in column_names:
            if name not in present:
                kind = table.c[name].type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE {table_name} ADD COLUMN "{name}" {kind}')

    return apply


def all_migrations() -> list[Migration]:
    found: list[Migration] = []
    for module_name in TABLE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # that part of the product is not installed in this tree
            raise
        found.extend(getattr(module, "MIGRATIONS", []))
    return found


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        # A migration may rewrite a large table, and a replica starting meanwhile waits
        # here for it: no statement timeout (db.py sets one for every connection).
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        conn.execute(text("SELECT pg_advisory_xact_lock(7243110)"))
    elif conn.dialect.name == "sqlite":
        # Take SQLite's write lock now, not at the first write, so two processes
        # cannot both decide a migration is pending.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade(engine: Engine) -> list[str]:
    """Apply pending migrations; returns the ids applied."""
    migrations = all_migrations()
    done: list[str] = []
    if engine.dialect.name == "sqlite":
        conn = engine.connect()
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # we BEGIN ourselves
        try:
            _lock(conn)
            done = _apply_pending(conn, migrations)
            conn.exec_driver_sql("COMMIT")
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        finally:
            conn.close()
    else:
        with engine.begin() as conn:
            _lock(conn)
            done = _apply_pending(conn, migrations)
    return done


def _apply_pending(conn: Connection, migrations: list[Migration]) -> list[str]:
    applied_table.create(conn, checkfirst=True)
    seen = {row[0] for row in conn.execute(select(applied_table.c.id))}
    done = []
    for migration in migrations:
        if migration.id in seen:
            continue
        migration.apply(conn)
        conn.execute(applied_table.insert().values(id=migration.id))
        done.append(migration.id)
    return done
