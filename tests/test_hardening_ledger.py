"""Ledger rows survive a SIGKILL of the gateway (issue 19): each row is journaled before
it waits for its batch and replayed, once, by the next start."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from llmops.governance.ledger import JOURNAL_SUFFIX, LedgerWriter
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_proc import free_port, run_gateway

MSG = [{"role": "user", "content": "hi"}]


def _count(database: Path) -> int:
    try:
        with sqlite3.connect(database) as db:
            return db.execute("SELECT count(*) FROM ledger").fetchone()[0]
    except sqlite3.OperationalError:  # no table yet
        return 0


async def _burst(base_url: str, calls: int, parallel: int) -> list[int]:
    limits = httpx.Limits(max_connections=parallel)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        gate = asyncio.Semaphore(parallel)

        async def one(i: int) -> int:
            async with gate:
                r = await client.post("/chat/completions", json={"model": "plain", "messages": MSG, "user": f"u{i}"})
                return r.status_code

        return await asyncio.gather(*(one(i) for i in range(calls)))


def test_sigkill_right_after_a_burst_keeps_the_rows(tmp_path):
    upstream = FakeUpstream(free_port()).start()
    try:
        config = {
            "models": [{"name": "plain", "deployments": [
                {"provider": "openai", "model": "ok", "api_base": upstream.base_url, "api_key": "k"}]}],
            # Rows wait up to 30 s for their batch: without the journal, all 500 are in memory at the kill.
            "ledger": {"flush_interval": 30},
            "guardrails": {"input": [], "output": []},  # the ledger is what is under test
        }
        database = tmp_path / "llmops.db"
        with run_gateway(config, tmp_path) as gw:
            statuses = asyncio.run(_burst(gw.base_url, 500, 32))
            gw.proc.kill()  # SIGKILL: no drain, no atexit
            gw.proc.wait(10)
        assert statuses == [200] * 500
        before = _count(database)
        assert before < 450, before  # most rows were still queued, not written, at the kill
        assert list((tmp_path / "spill").glob("*" + JOURNAL_SUFFIX))

        with run_gateway(config, tmp_path) as gw:
            deadline = time.monotonic() + 20
            while _count(database) < 500 and time.monotonic() < deadline:
                time.sleep(0.1)
            kept = _count(database)
            # Replayed once: the dead writer's journal is gone, and the rows are not doubled.
            time.sleep(0.5)
            left = [p.name for p in (tmp_path / "spill").glob("*" + JOURNAL_SUFFIX)]
        assert kept >= 495, kept  # issue 19: >= 99 %
        assert _count(database) == kept <= 500
        assert len(left) == 1, left  # the new writer's own, current journal
    finally:
        upstream.stop()


def test_journal_files_are_deleted_once_their_rows_are_written(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spill = tmp_path / "spill"
    writer = LedgerWriter(url, spill_dir=spill, flush_interval=0.05).start()
    try:
        for round_ in range(5):
            for i in range(200):
                writer.record({"id": f"r{round_}-{i}", "model": "m", "status": 200})
            assert writer.flush(10)
            time.sleep(0.12)  # a cycle that rotates and retires
        journals = list(spill.glob("*" + JOURNAL_SUFFIX))
        assert len(journals) <= 2 and sum(p.stat().st_size for p in journals) < 200 * 400
    finally:
        writer.close()
    assert list(spill.glob("*" + JOURNAL_SUFFIX)) == []  # closed cleanly: nothing to replay
    assert _count(tmp_path / "ledger.db") == 1000


def test_a_dead_writers_journal_is_replayed_once(tmp_path):
    """The journal of a writer that died with rows queued (its thread never ran here)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spill = tmp_path / "spill"
    dead = LedgerWriter(url, spill_dir=spill, flush_interval=60)
    dead._journal_on = dead._journal.open()  # started, but its thread never wrote a batch
    for i in range(300):
        dead.record({"id": f"d{i}", "model": "m", "status": 200})
    dead._journal.close(written=False)  # what the kernel does for a killed process: the lock goes
    second = LedgerWriter(url, spill_dir=spill, flush_interval=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while second.stats()["replayed"] < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.stats()["replayed"] == 300
    finally:
        second.close()
    third = LedgerWriter(url, spill_dir=spill, flush_interval=0.05).start()
    time.sleep(0.3)
    third.close()
    assert third.stats()["replayed"] == 0
    assert _count(tmp_path / "ledger.db") == 300


@pytest.mark.parametrize("journal", [False, True])
def test_record_cost_with_and_without_the_journal(tmp_path, journal, capsys):
    """Not an assertion on speed beyond a loose bound: prints the per-row cost for the README."""
    writer = LedgerWriter(None, spill_dir=tmp_path / "spill", flush_interval=60, max_queue=1_000_000, journal=journal)
    writer._journal_on = journal and writer._journal.open()  # no thread: only record()'s own cost
    rows = [{"id": f"req-{i:08d}", "key_id": "k1", "model": "gpt-4o-mini", "deployment": "openai/gpt-4o-mini",
             "input_tokens": 21, "output_tokens": 10, "cost": 0.00012, "latency_ms": 3.2, "status": 200,
             "outcome": "success", "endpoint": "/v1/chat/completions", "created_at": time.time()}
            for i in range(20_000)]
    start = time.perf_counter()
    for row in rows:
        writer.record(row)
    per_row_us = (time.perf_counter() - start) / len(rows) * 1e6
    writer._journal.close(written=True)
    with capsys.disabled():
        print(f"\nrecord() with journal={journal}: {per_row_us:.2f} us per row")
    assert per_row_us < 100
