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


def test_a_column_added_by_a_later_release_reaches_an_older_keys_table(database_url):
    """gateway_keys as keys.0001 made it, before keys.0002 added `guardrails`."""
    from sqlalchemy import MetaData, Table
    from sqlmodel import SQLModel

    engine = get_engine(database_url)
    current = SQLModel.metadata.tables["gateway_keys"]
    older = Table("gateway_keys", MetaData(), *(c._copy() for c in current.columns if c.name != "guardrails"))
    with engine.begin() as conn:
        current.drop(conn)
        older.create(conn)
        conn.execute(migrations.applied_table.delete().where(migrations.applied_table.c.id == "keys.0002"))
    assert migrations.upgrade(engine) == ["keys.0002"]
    assert "guardrails" in {c["name"] for c in inspect(engine).get_columns("gateway_keys")}
    from llmops.governance.keys import KeyStore

    _, info = KeyStore(database_url).create("after", guardrails={"enabled": False})
    assert KeyStore(database_url).get(info.id).guardrails == {"enabled": False}
