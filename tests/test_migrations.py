"""A database made by an older release upgrades in place, keeping its rows."""

from __future__ import annotations

from sqlalchemy import inspect, select

from llmops import Registry, migrations
from llmops.db import dispose_all, get_engine


def test_older_database_is_upgraded_in_place(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/old.db"
    # An "older release" that knew only the registry's tables.
    monkeypatch.setattr(migrations, "TABLE_MODULES", ["llmops.registry.models"])
    dispose_all()
    Registry(url).create_version("kept", template="Hello {{ name }}", message="before the upgrade")
    assert "ledger" not in inspect(get_engine(url)).get_table_names()
    dispose_all()
    monkeypatch.undo()

    engine = get_engine(url)  # the new release opens it: pending migrations run
    assert {"ledger", "eval_runs", "experiments", "feedback"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        applied = {row[0] for row in conn.execute(select(migrations.applied_table.c.id))}
    assert applied == {m.id for m in migrations.all_migrations()}
    assert Registry(url).get("kept").message == "before the upgrade"
    assert migrations.upgrade(engine) == []  # a second start applies nothing
    dispose_all()
