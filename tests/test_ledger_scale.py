"""The ledger's layout at scale: Postgres partitions, the hourly rollup behind `llmops
spend`, retention, and the `llmops db` commands that run them.

The figures at 10 million rows come from benchmarks/bench_ledger_scale.py; these tests
check that what the rollup answers is what a scan of the ledger answers, row for row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from llmops.db import get_engine
from llmops.governance import ledger_storage
from llmops.governance.ledger import LedgerWriter
from llmops.governance.spend import GROUPINGS, _group_columns, _ledger_rows, spend_report

LLMOPS = str(Path(sys.executable).with_name("llmops"))


def _row(i: int, created: datetime, **fields) -> dict:
    row = {
        "id": f"scale-{i:06d}",
        "created_at": created,
        "key_id": f"key_{i % 4}" if i % 9 else None,
        "key_name": f"service-{i % 4}",
        "user": f"user-{i % 7}",
        "team": None if i % 5 == 0 else f"team-{i % 2}",
        "model": ["gpt-4o", "local", "claude"][i % 3],
        "prompt_name": None if i % 4 else "greet",
        "experiment": "tone" if i % 6 == 0 else None,
        "variant": ("a" if i % 12 == 0 else "b") if i % 6 == 0 else None,
        "input_tokens": 10 + i % 50,
        "output_tokens": i % 3,
        "cost": None if i % 3 == 1 else 0.001 * (i % 10),
        "status": 200 if i % 8 else 502,
        "outcome": "success" if i % 8 else "upstream_error",
    }
    row.update(fields)
    return row


def _write(url: str, rows: list[dict], spill_dir: Path) -> None:
    writer = LedgerWriter(url, spill_dir=spill_dir, flush_interval=0.05).start()
    for row in rows:
        writer.record(row)
    writer.close()
    assert writer.stats()["written"] == len(rows), writer.stats()


def _scan(url: str, by: str, since: timedelta | None) -> list[dict]:
    """What the report would say from a scan of the ledger alone (the rollup ignored)."""
    group_by, label, extras = _group_columns(by)
    start = None if since is None else datetime.now(UTC) - since
    with get_engine(url).connect() as conn:
        rows = _ledger_rows(conn, group_by, label, extras, start, None)
    return sorted(
        (
            (
                r["group"],
                r.get("variant"),
                r["requests"],
                r["errors"],
                r["input_tokens"],
                r["output_tokens"],
                None if r["cost"] is None else round(r["cost"], 9),
                r.get("key_name"),
            )
            for r in rows
        ),
        key=repr,
    )


def _report(url: str, by: str, since: timedelta | None) -> list[tuple]:
    return sorted(
        (
            (
                r["group"],
                r.get("variant"),
                r["requests"],
                r["errors"],
                r["input_tokens"],
                r["output_tokens"],
                None if r["cost"] is None else round(r["cost"], 9),
                r.get("key_name"),
            )
            for r in spend_report(url, by=by, since=since)
        ),
        key=repr,
    )


def test_a_new_postgres_ledger_is_partitioned_by_month_with_a_rollup(fresh_postgres):
    engine = get_engine(fresh_postgres)
    with engine.begin() as conn:
        assert ledger_storage.is_partitioned(conn)
        names = [name for name, _, _ in ledger_storage.partitions(conn)]
        default = conn.execute(text("SELECT to_regclass('ledger_pdefault')")).scalar()
    this_month = ledger_storage.month_start(datetime.now(UTC))
    assert names[0] == f"ledger_p{this_month:%Y%m}" and len(names) == 1 + ledger_storage.MONTHS_AHEAD
    assert default is not None


def test_the_rollup_answers_what_a_scan_of_the_ledger_answers(fresh_postgres, tmp_path):
    now = datetime.now(UTC)
    # Rows over the last 40 days, several per hour near now: every window has a partial
    # first hour, whole hours and whole days.
    rows = [_row(i, now - timedelta(minutes=37 * i + 3)) for i in range(1600)]
    rows.append(_row(5000, now - timedelta(minutes=5), key_name="zz-renamed", key_id="key_1"))
    with get_engine(fresh_postgres).begin() as conn:
        ledger_storage.ensure_partitions(conn, now, first=now - timedelta(days=45))
    _write(fresh_postgres, rows, tmp_path / "spill")
    with get_engine(fresh_postgres).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_pdefault")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM ledger_rollup")).scalar() > 0
    for by in GROUPINGS:
        for since in (
            None,
            timedelta(minutes=30),
            timedelta(hours=5, minutes=17),
            timedelta(days=7),
            timedelta(days=39, hours=23),
        ):
            report = _report(fresh_postgres, by, since)
            scan = _scan(fresh_postgres, by, since)
            # spend_report turns an all-unpriced-but-tokenless group's None into 0.0, as before.
            assert [r[:6] for r in report] == [s[:6] for s in scan], (by, since)
            for got, want in zip(report, scan, strict=True):
                assert got[6] == pytest.approx(want[6] if want[6] is not None else got[6]), (by, since)
                if by == "key":
                    assert got[7] == want[7]
    keys = {r["group"]: r for r in spend_report(fresh_postgres, by="key")}
    assert keys["key_1"]["key_name"] == "zz-renamed"  # the greatest name seen, as a scan's max()


def test_replayed_and_repeated_request_ids_are_stored_once(fresh_postgres, tmp_path):
    # Mid-month: the request id is unique within its month's partition.
    now = ledger_storage.month_start(datetime.now(UTC)) + timedelta(days=14)
    first = [_row(i, now - timedelta(minutes=i)) for i in range(50)]
    _write(fresh_postgres, first, tmp_path / "a")
    # A spill replay sends the same rows again; a buggy caller the same id a second later.
    again = [dict(r) for r in first[:20]] + [
        _row(i, now - timedelta(minutes=i) + timedelta(seconds=1)) for i in range(20, 30)
    ]
    _write(fresh_postgres, again, tmp_path / "b")
    # Twice in one batch: the first is kept.
    _write(
        fresh_postgres,
        [_row(77, now, cost=0.5), _row(77, now + timedelta(seconds=1), cost=0.7)],
        tmp_path / "c",
    )
    with get_engine(fresh_postgres).connect() as conn:
        assert conn.execute(text("SELECT count(*), count(DISTINCT id) FROM ledger")).one() == (51, 51)
        assert conn.execute(text("SELECT cost FROM ledger WHERE id = 'scale-000077'")).scalar() == 0.5
    assert sum(r["requests"] for r in spend_report(fresh_postgres, by="model")) == 51


def test_a_row_outside_every_partition_is_kept_and_moves_when_its_month_is_made(fresh_postgres, tmp_path):
    now = datetime.now(UTC)
    far = ledger_storage.next_month(
        ledger_storage.next_month(ledger_storage.next_month(ledger_storage.month_start(now)))
    ) + timedelta(days=3)  # past the months made ahead
    _write(fresh_postgres, [_row(1, far), _row(2, now)], tmp_path / "spill")
    with get_engine(fresh_postgres).begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_pdefault")).scalar() == 1
        created = ledger_storage.ensure_partitions(conn, far)
        assert f"ledger_p{far:%Y%m}" in created
        assert conn.execute(text("SELECT count(*) FROM ledger_pdefault")).scalar() == 0
        assert conn.execute(text(f"SELECT count(*) FROM ledger_p{far:%Y%m}")).scalar() == 1
    assert sum(r["requests"] for r in spend_report(fresh_postgres)) == 2


def test_retention_drops_whole_partitions_and_their_rollup(fresh_postgres, tmp_path):
    now = datetime.now(UTC)
    this_month = ledger_storage.month_start(now)
    old = this_month - timedelta(days=80)  # its month ends before any 40-day cutoff
    with get_engine(fresh_postgres).begin() as conn:
        ledger_storage.ensure_partitions(conn, now, first=old)
    rows = [_row(i, old + timedelta(hours=7 * i)) for i in range(300)]
    rows = [r for r in rows if r["created_at"] < now]
    _write(fresh_postgres, rows, tmp_path / "spill")
    cutoff = now - timedelta(days=40)
    env = {**os.environ, "LLMOPS_DATABASE_URL": fresh_postgres}
    done = subprocess.run(
        [LLMOPS, "db", "maintain", "--retention-days", "40"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    dropped_line = done.stdout.splitlines()[1]
    assert dropped_line.startswith("partitions dropped: ledger_p"), done.stdout
    with get_engine(fresh_postgres).connect() as conn:
        parts = ledger_storage.partitions(conn)
        oldest = parts[0][1]
        kept = conn.execute(text("SELECT count(*), min(created_at) FROM ledger")).one()
    assert oldest is not None and oldest <= cutoff  # whole months: the one holding the cutoff stays
    expected = [r for r in rows if r["created_at"] >= oldest]
    assert kept[0] == len(expected) and kept[1] >= oldest
    assert len(expected) < len(rows)
    for by in ("model", "key", "variant"):
        assert [r[:6] for r in _report(fresh_postgres, by, None)] == [
            s[:6] for s in _scan(fresh_postgres, by, None)
        ]
    # Nothing left to drop: a second run changes nothing.
    again = subprocess.run(
        [LLMOPS, "db", "maintain", "--retention-days", "40"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "partitions dropped: none" in again.stdout


def test_retention_on_sqlite_deletes_older_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    now = datetime.now(UTC)
    _write(url, [_row(i, now - timedelta(days=i)) for i in range(20)], tmp_path / "spill")
    env = {**os.environ, "LLMOPS_DATABASE_URL": url}
    done = subprocess.run(
        [LLMOPS, "db", "maintain", "--retention-days", "10.5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert sum(r["requests"] for r in spend_report(url)) == 11  # days 0..10
    bad = subprocess.run(
        [LLMOPS, "db", "maintain", "--retention-days", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "greater than zero" in bad.stderr


def test_the_gateway_config_takes_retention_days():
    from pydantic import ValidationError

    from llmops.governance.config import LedgerConfig

    assert LedgerConfig(retention_days=90).retention_days == 90
    with pytest.raises(ValidationError):
        LedgerConfig(retention_days=0)


def test_spend_json_from_the_cli_on_a_partitioned_ledger(fresh_postgres, tmp_path):
    now = datetime.now(UTC)
    _write(fresh_postgres, [_row(i, now - timedelta(minutes=i)) for i in range(30)], tmp_path / "spill")
    env = {**os.environ, "LLMOPS_DATABASE_URL": fresh_postgres}
    done = subprocess.run(
        [LLMOPS, "spend", "--by", "model", "--since", "20m", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert sum(r["requests"] for r in json.loads(done.stdout)) == 20  # minutes 0..19
