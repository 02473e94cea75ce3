"""Schema upgrades with many replicas on one Postgres database.

- Processes that start at once on a fresh database apply each migration once (the
  upgrade holds a database-wide advisory lock).
- An existing, unpartitioned ledger (a release before partitioning) is converted in
  place: every row kept, readable through the same table name.
- A replica still running the older code keeps writing while a newer one adds a column.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import text

from llmops import migrations
from llmops.db import dispose_all, get_engine
from llmops.governance import ledger_models, ledger_storage
from llmops.governance.ledger import LedgerWriter
from llmops.governance.spend import GROUPINGS, spend_report
from tests.test_ledger_scale import _row, _scan

LLMOPS = str(Path(sys.executable).with_name("llmops"))


def test_replicas_starting_at_once_apply_each_migration_once(fresh_postgres):
    env = {**os.environ, "LLMOPS_DATABASE_URL": fresh_postgres}
    # Six processes at the same moment: four `llmops db upgrade` (a migration Job run
    # twice, say) and two commands that open the database as any replica does.
    commands = [[LLMOPS, "db", "upgrade"]] * 4 + [[LLMOPS, "spend", "--json"]] * 2
    go = time.time() + 3.0
    starter = (
        f"import time,os,sys; time.sleep(max(0, {go} - time.time())); os.execv(sys.argv[1], sys.argv[1:])"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", starter, *cmd],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, _out, err in results:
        assert code == 0, err
    upgrades = [out.strip() for _, out, _ in results[:4]]
    applied = [line for line in upgrades if line.startswith("applied: ")]
    everything = {m.id for m in migrations.all_migrations()}
    # Whoever took the lock first applied what was pending: the others found it done.
    assert sum(len(line.removeprefix("applied: ").split(", ")) for line in applied) <= len(everything)
    assert all(line == "the schema is current" for line in upgrades if line not in applied)
    with get_engine(fresh_postgres).connect() as conn:
        rows = conn.execute(text("SELECT id, count(*) FROM llmops_migrations GROUP BY id")).all()
        assert ledger_storage.is_partitioned(conn)
    assert {r[0] for r in rows} == everything and all(r[1] == 1 for r in rows)
    again = subprocess.run([LLMOPS, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == "the schema is current"


def _old_release(monkeypatch) -> None:
    """The migrations a release before partitioning knew of the ledger."""
    monkeypatch.setattr(
        ledger_models, "MIGRATIONS", [m for m in ledger_models.MIGRATIONS if m.id != "ledger.0003"]
    )


def _old_insert(url: str, rows: list[dict]) -> None:
    """The statement an older writer sends: its own columns, ON CONFLICT on the request id
    (before partitioning) - the shape of ledger.py's Postgres insert in that release."""
    import psycopg

    from llmops.governance.ledger import normalize_row

    columns = [c for c in ledger_models.LEDGER_TABLE.columns.keys() if c != "upstream_request_id"]
    names = ", ".join(f'"{c}"' for c in columns)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO ledger ({names}) SELECT {names} FROM json_populate_recordset(NULL::ledger, %s) "
            "ON CONFLICT (id) DO NOTHING",
            (orjson.dumps([normalize_row(r) for r in rows]).decode(),),
        )


def test_an_unpartitioned_ledger_becomes_partitioned_keeping_every_row(fresh_postgres, monkeypatch, tmp_path):
    _old_release(monkeypatch)
    engine = get_engine(fresh_postgres)
    with engine.connect() as conn:
        assert not ledger_storage.is_partitioned(conn)
    now = datetime.now(UTC)
    old_rows = [_row(i, now - timedelta(hours=11 * i)) for i in range(400)]  # back about 6 months
    _old_insert(fresh_postgres, old_rows)
    before = {by: _scan(fresh_postgres, by, None) for by in GROUPINGS}
    dispose_all()
    monkeypatch.undo()

    env = {**os.environ, "LLMOPS_DATABASE_URL": fresh_postgres}
    done = subprocess.run([LLMOPS, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "applied: ledger.0003"
    engine = get_engine(fresh_postgres)
    with engine.connect() as conn:
        assert ledger_storage.is_partitioned(conn)
        parts = ledger_storage.partitions(conn)
        legacy_rows = conn.execute(text("SELECT count(*) FROM ledger_legacy")).scalar()
        ids = {r[0] for r in conn.execute(text("SELECT id FROM ledger"))}
    assert parts[0][0] == "ledger_legacy" and parts[0][1] is None  # from MINVALUE
    assert parts[0][2] == ledger_storage.next_month(ledger_storage.month_start(now))
    assert legacy_rows == len(old_rows) and ids == {r["id"] for r in old_rows}
    for by in GROUPINGS:  # the rollup was backfilled from the old rows
        assert before[by] == _scan(fresh_postgres, by, None)
        assert [
            (r["group"], r.get("variant"), r["requests"], r["errors"], r["input_tokens"], r["output_tokens"])
            for r in sorted(
                spend_report(fresh_postgres, by=by), key=lambda r: repr((r["group"], r.get("variant")))
            )
        ] == [s[:6] for s in before[by]]
    # New rows (and a replay of an old one) through today's writer.
    writer = LedgerWriter(fresh_postgres, spill_dir=tmp_path / "spill", flush_interval=0.05).start()
    writer.record(dict(old_rows[0]))
    next_month = ledger_storage.next_month(ledger_storage.month_start(now)) + timedelta(days=2)
    writer.record(_row(9001, now))
    writer.record(_row(9002, next_month))
    writer.close()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger")).scalar() == len(old_rows) + 2
        where = conn.execute(
            text("SELECT tableoid::regclass::text FROM ledger WHERE id = 'scale-009002'")
        ).scalar()
    assert where == f"ledger_p{next_month:%Y%m}"


def test_an_older_replica_keeps_writing_while_a_newer_one_adds_a_column(
    fresh_postgres, tmp_path, monkeypatch
):
    get_engine(fresh_postgres)
    # The older replica: today's writer, writing without pause from a thread.
    writer = LedgerWriter(fresh_postgres, spill_dir=tmp_path / "old", flush_interval=0.02).start()
    stop = threading.Event()
    sent = []

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            row = _row(i, datetime.now(UTC), id=f"old-{i:06d}")
            writer.record(row)
            sent.append(row["id"])
            i += 1
            time.sleep(0.002)

    thread = threading.Thread(target=traffic)
    thread.start()
    time.sleep(0.5)
    # The newer replica starts: its release adds a nullable column to the ledger.
    dispose_all()

    def add_region(conn) -> None:
        conn.exec_driver_sql("ALTER TABLE ledger ADD COLUMN region varchar(64)")

    monkeypatch.setattr(
        ledger_models,
        "MIGRATIONS",
        [*ledger_models.MIGRATIONS, migrations.Migration("ledger.9001", add_region)],
    )
    from llmops.db import _engine_and_upgrade

    _, applied = _engine_and_upgrade(fresh_postgres)
    assert applied == ["ledger.9001"]
    time.sleep(0.5)
    stop.set()
    thread.join()
    writer.close()
    assert writer.stats()["spilled"] == 0 and writer.stats()["rejected"] == 0
    # An insert shaped like an even older release (without upstream_request_id) works too.
    _old_shape = [_row(1, datetime.now(UTC), id="older-shape")]
    import psycopg

    columns = [c for c in ledger_models.LEDGER_TABLE.columns.keys() if c != "upstream_request_id"]
    names = ", ".join(f'"{c}"' for c in columns)
    from llmops.governance.ledger import normalize_row

    with psycopg.connect(fresh_postgres, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO ledger ({names}) SELECT {names} FROM json_populate_recordset(NULL::ledger, %s) "
            "ON CONFLICT DO NOTHING",
            (orjson.dumps([normalize_row(r) for r in _old_shape]).decode(),),
        )
        stored = {r[0] for r in conn.execute("SELECT id FROM ledger")}
        region = conn.execute("SELECT count(region) FROM ledger").fetchone()[0]
    assert stored == set(sent) | {"older-shape"}
    assert region == 0  # the new column, NULL for the older replica's rows
    assert sum(r["requests"] for r in spend_report(fresh_postgres)) == len(sent) + 1


def test_a_replica_of_the_release_before_partitions_spills_and_a_new_one_writes_its_rows(
    fresh_postgres, tmp_path, monkeypatch
):
    """The one upgrade older replicas cannot write through (README: cross it by replacing
    every replica): their `ON CONFLICT (id)` has no key to match on a partitioned table.
    Their rows are not lost: they wait in the spill directory for a current writer."""
    import llmops.governance.ledger as ledger_module

    get_engine(fresh_postgres)  # partitioned already
    columns = ", ".join(f'"{c}"' for c in ledger_models.LEDGER_TABLE.columns.keys())

    def old_batch_insert(engine):
        sql = (
            f"INSERT INTO ledger ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::ledger, %s) "
            "ON CONFLICT (id) DO NOTHING"
        )
        return lambda conn, rows, pace=None: conn.exec_driver_sql(sql, (orjson.dumps(rows).decode(),))

    spill = tmp_path / "spill"
    monkeypatch.setattr(ledger_module, "batch_insert_for", old_batch_insert)
    old = LedgerWriter(fresh_postgres, spill_dir=spill, flush_interval=0.05, journal=False).start()
    rows = [_row(i, datetime.now(UTC), id=f"older-{i}") for i in range(40)]
    for row in rows:
        old.record(dict(row))
    old.close()
    assert old.stats()["written"] == 0 and old.stats()["spilled"] == len(rows)
    monkeypatch.undo()
    new = LedgerWriter(fresh_postgres, spill_dir=spill, flush_interval=0.05).start()
    deadline = time.time() + 30
    while time.time() < deadline and new.stats()["replayed"] < len(rows):
        time.sleep(0.1)
    new.close()
    with get_engine(fresh_postgres).connect() as conn:
        stored = {r[0] for r in conn.execute(text("SELECT id FROM ledger"))}
    assert stored == {r["id"] for r in rows}
