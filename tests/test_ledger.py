"""The request ledger: every row arrives exactly once, through outages and shutdowns;
spend reports read it back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from llmops.cli import main as cli_main
from llmops.db import get_engine, normalize_url
from llmops.errors import InvalidInput
from llmops.governance import ledger as ledger_module
from llmops.governance.ledger import LedgerWriter
from llmops.governance.spend import parse_since, spend_report

# ------------------------------------------------------------------------- helpers


def make_row(i: int, **fields) -> dict:
    row = {
        "id": f"req-{i:06d}",
        "created_at": datetime.now(UTC),
        "key_id": "key_ab12",
        "key_name": "checkout",
        "user": f"user-{i % 3}",
        "team": "payments",
        "model": "gpt-4o",
        "deployment": "openai/gpt-4o",
        "provider": "openai",
        "upstream_model": "gpt-4o-2024-08-06",
        "input_tokens": 100,
        "output_tokens": 20,
        "cached_tokens": 0,
        "usage_source": "reported",
        "cost": 0.001,
        "latency_ms": 42.5,
        "ttft_ms": None,
        "status": 200,
        "outcome": "success",
        "error_type": None,
        "guardrail_verdicts": None,
        "streamed": False,
        "endpoint": "/v1/chat/completions",
    }
    row.update(fields)
    return row


def read_rows(url: str) -> list[dict]:
    # A separate engine: what another process would see.
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM ledger ORDER BY id"))]
    finally:
        engine.dispose()


def count_rows(url: str) -> int:
    """Rows in the ledger, or -1 while the database or its table does not exist yet."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM ledger")).scalar_one()
    except (OperationalError, ProgrammingError):
        return -1
    finally:
        engine.dispose()


def empty_ledger(url: str) -> None:
    get_engine(url)  # creates the table on first use
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM ledger"))
    finally:
        engine.dispose()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def spill_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("ledger-*.jsonl")) if directory.is_dir() else []


@pytest.fixture
def spill_dir(tmp_path) -> Path:
    return tmp_path / "spill"


class TcpProxy:
    """A TCP forwarder we can cut and restore: the database 'goes away' for real."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        if self._server is not None:
            try:  # wakes the blocked accept(); close() alone leaves the port listening on Linux
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            self._server = None
        with self._lock:
            connections, self._connections = self._connections, []
        for s in connections:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


# ------------------------------------------------------------------------- writing


def test_rows_arrive_in_batches_with_every_field(database_url, spill_dir):
    writer = LedgerWriter(database_url, spill_dir=spill_dir, batch_size=100, flush_interval=0.05).start()
    outcomes = ["success", "upstream_error", "blocked", "refused", "client_error", "cancelled"]
    for i in range(1200):
        writer.record(make_row(i, outcome=outcomes[i % 6], status=200 if i % 6 == 0 else 502))
    writer.record(
        make_row(
            5000,
            cost=None,
            usage_source="estimated",
            ttft_ms=12.25,
            streamed=True,
            prompt_name="support-reply",
            prompt_version=3,
            experiment="tone",
            variant="b",
            guardrail_verdicts=[{"check": "pii", "action": "redact", "matches": 2}],
        )
    )
    assert writer.flush(30)
    writer.close()
    rows = read_rows(database_url)
    assert len(rows) == 1201
    assert {r["outcome"] for r in rows} == set(outcomes)
    special = next(r for r in rows if r["id"] == "req-005000")
    assert special["cost"] is None
    assert special["usage_source"] == "estimated"
    assert special["ttft_ms"] == pytest.approx(12.25)
    assert bool(special["streamed"]) is True
    assert special["prompt_name"] == "support-reply" and special["prompt_version"] == 3
    assert (special["experiment"], special["variant"]) == ("tone", "b")
    verdicts = special["guardrail_verdicts"]
    verdicts = json.loads(verdicts) if isinstance(verdicts, str) else verdicts
    assert verdicts == [{"check": "pii", "action": "redact", "matches": 2}]
    plain = next(r for r in rows if r["id"] == "req-000000")
    assert plain["guardrail_verdicts"] is None
    assert plain["cost"] == pytest.approx(0.001)
    assert writer.stats()["written"] == 1201
    assert writer.stats()["spilled"] == 0 and writer.stats()["dropped"] == 0
    assert spill_files(spill_dir) == []


def test_close_drains_rows_that_were_still_queued(database_url, spill_dir):
    # A flush interval far longer than the test: only close() can write these rows.
    writer = LedgerWriter(database_url, spill_dir=spill_dir, batch_size=100_000, flush_interval=3600).start()
    for i in range(3000):
        writer.record(make_row(i))
    assert writer.stats()["queued"] == 3000
    writer.close(timeout=30)
    assert count_rows(database_url) == 3000
    assert writer.stats()["queued"] == 0
    # After close, a late row is not lost: it waits in the spill file for the next writer.
    writer.record(make_row(9999))
    assert writer.stats()["spilled"] == 1
    LedgerWriter(database_url, spill_dir=spill_dir).start().close()
    assert count_rows(database_url) == 3001


def test_odd_rows_are_stored_not_raised(database_url, spill_dir):
    class Verdict:
        def __str__(self) -> str:
            return "verdict-object"

    writer = LedgerWriter(database_url, spill_dir=spill_dir, flush_interval=0.05).start()
    writer.record(make_row(1, guardrail_verdicts=[Verdict()], input_tokens="12", cost=float("nan")))
    writer.record(make_row(2, model="m" * 1000, created_at=datetime(2024, 5, 1, 12, 0)))  # naive: UTC
    writer.record(make_row(3, outcome=None, status=429, unexpected_field="ignored"))
    writer.record({"outcome": "refused", "status": 401})  # no id, no time
    writer.record("not a row")  # type: ignore[arg-type]
    writer.close()
    rows = {r["id"]: r for r in read_rows(database_url)}
    assert len(rows) == 4
    first = rows["req-000001"]
    verdicts = first["guardrail_verdicts"]
    assert (json.loads(verdicts) if isinstance(verdicts, str) else verdicts) == ["verdict-object"]
    assert first["input_tokens"] == 12 and first["cost"] is None
    second = rows["req-000002"]
    assert len(second["model"]) == 200
    created = second["created_at"]  # a datetime from Postgres, text from SQLite
    if isinstance(created, datetime):
        created = str(created.astimezone(UTC).replace(tzinfo=None))
    assert created.startswith("2024-05-01 12:00:00")
    assert rows["req-000003"]["outcome"] == "client_error"
    assert writer.stats()["rejected"] + writer.stats()["dropped"] == 1  # the string


def test_duplicate_request_ids_are_stored_once(database_url, spill_dir):
    writer = LedgerWriter(database_url, spill_dir=spill_dir, flush_interval=0.05).start()
    writer.record(make_row(1, cost=0.5))
    writer.record(make_row(1, cost=0.7))
    writer.record(make_row(2))
    writer.close()
    rows = read_rows(database_url)
    assert [r["id"] for r in rows] == ["req-000001", "req-000002"]


def test_full_queue_spills_to_disk_instead_of_dropping(tmp_path, spill_dir):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = LedgerWriter(url, spill_dir=spill_dir, max_queue=50, flush_interval=0.05)
    for i in range(500):  # not started yet: nothing drains the queue
        writer.record(make_row(i))
    stats = writer.stats()
    assert stats["queued"] == 50 and stats["spilled"] == 450 and stats["dropped"] == 0
    assert sum(1 for f in spill_files(spill_dir) for _ in f.open()) == 450
    writer.start()
    assert wait_for(lambda: count_rows(url) == 500)
    writer.close()
    assert count_rows(url) == 500
    assert spill_files(spill_dir) == []
    assert writer.stats()["replayed"] == 450


# ----------------------------------------------------------------------- outages


def test_sqlite_unreachable_then_back_every_row_once(tmp_path, spill_dir):
    home = tmp_path / "not-yet"
    url = f"sqlite:///{home / 'ledger.db'}"  # its directory does not exist: SQLite cannot open it
    writer = LedgerWriter(url, spill_dir=spill_dir, batch_size=200, flush_interval=0.05).start()
    for i in range(1000):
        writer.record(make_row(i))
    assert writer.flush(30)
    assert wait_for(lambda: writer.stats()["spilled"] == 1000)
    assert writer.stats()["database_up"] == 0
    assert spill_files(spill_dir)
    home.mkdir()  # the database is back
    for i in range(1000, 1500):
        writer.record(make_row(i))
    assert wait_for(lambda: count_rows(url) == 1500, timeout=30)
    writer.close()
    ids = [r["id"] for r in read_rows(url)]
    assert ids == [f"req-{i:06d}" for i in range(1500)]
    assert spill_files(spill_dir) == []
    stats = writer.stats()
    # Rows recorded before the writer's next probe noticed the return were spilled too.
    assert stats["replayed"] >= 1000 and stats["written"] + stats["replayed"] == 1500
    assert stats["dropped"] == 0


@pytest.mark.postgres
def test_postgres_unreachable_then_back_every_row_once(postgres_database_url, spill_dir):
    empty_ledger(postgres_database_url)
    base, _, database = postgres_database_url.rpartition("/")
    proxy = TcpProxy(("127.0.0.1", 5432))
    proxy.start()
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
    writer = LedgerWriter(url, spill_dir=spill_dir, batch_size=250, flush_interval=0.05).start()
    try:
        for i in range(500):
            writer.record(make_row(i))
        assert wait_for(lambda: writer.stats()["written"] == 500)

        proxy.stop()  # the database disappears, pooled connections included
        for i in range(500, 2000):
            writer.record(make_row(i))
        assert wait_for(lambda: writer.stats()["spilled"] == 1500)
        assert writer.stats()["database_up"] == 0
        assert spill_files(spill_dir)
        assert count_rows(postgres_database_url) == 500

        proxy.start()  # back
        for i in range(2000, 2500):
            writer.record(make_row(i))
        assert wait_for(lambda: count_rows(postgres_database_url) == 2500, timeout=30)
        writer.close()
    finally:
        writer.close()
        proxy.stop()
    ids = [r["id"] for r in read_rows(postgres_database_url)]
    assert ids == [f"req-{i:06d}" for i in range(2500)]
    assert spill_files(spill_dir) == []
    stats = writer.stats()
    assert stats["replayed"] >= 1500 and stats["written"] + stats["replayed"] == 2500


def test_a_row_sqlite_cannot_store_is_set_aside(tmp_path, spill_dir):
    url = f"sqlite:///{tmp_path}/ledger.db"
    writer = LedgerWriter(url, spill_dir=spill_dir, flush_interval=0.05).start()
    writer.record(make_row(1))
    writer.record(make_row(2, input_tokens=2**70))  # beyond a 64-bit SQLite integer
    writer.record(make_row(3))
    writer.close()
    assert [r["id"] for r in read_rows(url)] == ["req-000001", "req-000003"]
    assert writer.stats()["rejected"] == 1 and writer.stats()["database_up"] == 1
    assert spill_files(spill_dir) == []


@pytest.mark.postgres
def test_rows_the_database_refuses_do_not_block_the_batch(postgres_database_url, spill_dir):
    empty_ledger(postgres_database_url)
    writer = LedgerWriter(postgres_database_url, spill_dir=spill_dir, flush_interval=0.05).start()
    writer.record(make_row(1))
    writer.record(make_row(2, input_tokens=2**40))  # beyond a Postgres integer
    writer.record(make_row(3))
    writer.close()
    assert [r["id"] for r in read_rows(postgres_database_url)] == ["req-000001", "req-000003"]
    assert writer.stats()["rejected"] == 1
    rejected = list(spill_dir.glob("rejected-ledger-*.jsonl"))
    assert len(rejected) == 1 and "req-000002" in rejected[0].read_text()
    assert spill_files(spill_dir) == []  # refused rows are never replayed


def test_a_dead_writers_spill_file_is_replayed_once_by_the_next(tmp_path, spill_dir):
    home = tmp_path / "db"
    url = f"sqlite:///{home / 'ledger.db'}"
    first = LedgerWriter(url, spill_dir=spill_dir, flush_interval=0.05).start()
    for i in range(300):
        first.record(make_row(i))
    first.close()  # the database never came: everything is on disk
    files = spill_files(spill_dir)
    assert len(files) == 1
    copy = tmp_path / "copy.jsonl"
    shutil.copy(files[0], copy)

    home.mkdir()
    second = LedgerWriter(url, spill_dir=spill_dir, flush_interval=0.05).start()
    assert wait_for(lambda: second.stats()["replayed"] == 300)
    assert spill_files(spill_dir) == []
    # The same file again (a crash between replay and delete): no duplicates.
    shutil.copy(copy, spill_dir / "ledger-crashed-1.jsonl")
    second.close()
    third = LedgerWriter(url, spill_dir=spill_dir, flush_interval=0.05).start()
    assert wait_for(lambda: third.stats()["replayed"] == 300)
    third.close()
    assert count_rows(url) == 300
    assert spill_files(spill_dir) == []


def test_a_live_writers_spill_file_is_left_alone(tmp_path, spill_dir):
    down = f"sqlite:///{tmp_path / 'missing' / 'ledger.db'}"
    up = f"sqlite:///{tmp_path / 'ledger.db'}"
    spilling = LedgerWriter(down, spill_dir=spill_dir, flush_interval=0.05).start()
    for i in range(10):
        spilling.record(make_row(i))
    assert wait_for(lambda: spilling.stats()["spilled"] == 10)
    other = LedgerWriter(up, spill_dir=spill_dir, flush_interval=0.05).start()
    other.record(make_row(100))
    assert other.flush()
    time.sleep(0.3)
    assert other.stats()["replayed"] == 0  # the file is locked by its living owner
    assert len(spill_files(spill_dir)) == 1
    other.close()
    spilling.close()


# ------------------------------------------------------------------------ shutdown

CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from datetime import UTC, datetime
    from llmops.governance.ledger import LedgerWriter

    url, spill, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # Nothing would be written before the SIGTERM without close(): a long flush interval.
    writer = LedgerWriter(url, spill_dir=spill, batch_size=1_000_000, flush_interval=3600).start()

    def on_term(signum, frame):
        writer.close(timeout=60)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    for i in range(count):
        writer.record({"id": f"child-{i:06d}", "created_at": datetime.now(UTC), "model": "gpt-4o",
                       "outcome": "success", "status": 200, "input_tokens": 5, "output_tokens": 5})
    print("recorded", writer.stats()["queued"], flush=True)
    while True:
        time.sleep(1)
    """
)


@pytest.mark.parametrize("reachable", [True, False], ids=["database-up", "database-down"])
def test_sigterm_loses_no_row(tmp_path, spill_dir, reachable):
    home = tmp_path / "db"
    if reachable:
        home.mkdir()
    url = f"sqlite:///{home / 'ledger.db'}"
    count = 20_000
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(spill_dir), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("recorded"), child.stderr.read()
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=120) == 0, child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
    if reachable:
        assert count_rows(url) == count
        assert spill_files(spill_dir) == []
    else:
        on_disk = sum(1 for f in spill_files(spill_dir) for _ in f.open())
        assert on_disk == count
        home.mkdir()
        LedgerWriter(url, spill_dir=spill_dir).start().close()
        assert count_rows(url) == count


def test_writer_records_from_an_event_loop_without_awaiting(tmp_path, spill_dir):
    import asyncio

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    writer = LedgerWriter(url, spill_dir=spill_dir, flush_interval=0.05).start()

    async def handle(i: int) -> None:
        await asyncio.sleep(0)
        writer.record(make_row(i))  # a plain call: nothing to await, nothing raised

    async def serve() -> None:
        await asyncio.gather(*(handle(i) for i in range(2000)))

    asyncio.run(serve())
    writer.close()
    assert count_rows(url) == 2000


# ------------------------------------------------------------------------- reports


def _seed(url: str, spill_dir: Path) -> None:
    now = datetime.now(UTC)
    rows = [
        make_row(
            1, model="gpt-4o", cost=0.01, input_tokens=1000, output_tokens=100, key_id="key_a", key_name="web"
        ),
        make_row(
            2,
            model="gpt-4o",
            cost=0.02,
            input_tokens=2000,
            output_tokens=200,
            key_id="key_b",
            key_name="batch",
        ),
        make_row(
            3,
            model="gpt-4o",
            cost=None,
            outcome="upstream_error",
            status=502,
            input_tokens=0,
            output_tokens=0,
        ),
        make_row(
            4,
            model="local-llama",
            cost=None,
            input_tokens=500,
            output_tokens=50,
            key_id="key_a",
            key_name="web",
        ),
        make_row(5, model="free-model", cost=0.0, input_tokens=10, output_tokens=10, prompt_name="greet"),
        make_row(
            6,
            model="gpt-4o",
            cost=0.5,
            input_tokens=10,
            output_tokens=10,
            created_at=now - timedelta(days=3),
            prompt_name="greet",
            prompt_version=2,
            experiment="tone",
            variant="a",
        ),
        make_row(
            7,
            model="gpt-4o",
            cost=0.1,
            outcome="refused",
            status=429,
            input_tokens=0,
            output_tokens=0,
            experiment="tone",
            variant="b",
        ),
    ]
    writer = LedgerWriter(url, spill_dir=spill_dir, flush_interval=0.05).start()
    for row in rows:
        writer.record(row)
    writer.close()


def test_spend_by_model(database_url, spill_dir):
    _seed(database_url, spill_dir)
    report = {r["group"]: r for r in spend_report(database_url, by="model")}
    gpt = report["gpt-4o"]
    assert gpt["requests"] == 5 and gpt["errors"] == 2
    assert gpt["input_tokens"] == 3010 and gpt["output_tokens"] == 310
    assert gpt["cost"] == pytest.approx(0.63)
    assert gpt["unknown_cost_requests"] == 0  # the failed call used no tokens: nothing unknown
    llama = report["local-llama"]
    assert llama["cost"] is None and llama["unknown_cost_requests"] == 1  # unknown, not $0
    assert report["free-model"]["cost"] == 0.0 and report["free-model"]["unknown_cost_requests"] == 0
    assert list(report)[0] == "gpt-4o"  # dearest first


def test_spend_since_and_other_groupings(database_url, spill_dir):
    _seed(database_url, spill_dir)
    recent = {r["group"]: r for r in spend_report(database_url, by="model", since=timedelta(hours=24))}
    assert recent["gpt-4o"]["requests"] == 4 and recent["gpt-4o"]["cost"] == pytest.approx(0.13)
    keys = {r["group"]: r for r in spend_report(database_url, by="key")}
    assert keys["key_a"]["key_name"] == "web" and keys["key_a"]["requests"] == 2
    assert keys["key_a"]["unknown_cost_requests"] == 1
    assert keys["key_b"]["cost"] == pytest.approx(0.02)
    prompts = {r["group"]: r for r in spend_report(database_url, by="prompt")}
    assert prompts["greet"]["requests"] == 2 and prompts[None]["requests"] == 5
    variants = {(r["group"], r["variant"]): r for r in spend_report(database_url, by="variant")}
    assert variants[("tone", "a")]["cost"] == pytest.approx(0.5)
    assert variants[("tone", "b")]["errors"] == 1
    users = spend_report(database_url, by="user")
    assert sum(r["requests"] for r in users) == 7
    teams = spend_report(database_url, by="team")
    assert [r["group"] for r in teams] == ["payments"]
    with pytest.raises(InvalidInput, match="choose one of"):
        spend_report(database_url, by="colour")


def test_parse_since():
    assert parse_since("30m") == timedelta(minutes=30)
    assert parse_since("24h") == timedelta(hours=24)
    assert parse_since("7d") == timedelta(days=7)
    assert parse_since("2w") == timedelta(weeks=2)
    for bad in ("", "7", "d7", "3 years", "0h"):
        with pytest.raises(InvalidInput):
            parse_since(bad)


def test_spend_cli(database_url, spill_dir, capsys):
    _seed(database_url, spill_dir)
    assert (
        cli_main(["spend", "--database-url", database_url, "--by", "model", "--since", "24h", "--json"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert {r["group"] for r in data} == {"gpt-4o", "local-llama", "free-model"}
    assert cli_main(["spend", "--database-url", database_url, "--by", "key"]) == 0
    out = capsys.readouterr().out
    assert "key_a" in out and "web" in out and "TOTAL" in out
    assert cli_main(["spend", "--database-url", database_url]) == 0
    table = capsys.readouterr().out
    assert "unknown" in table and "local-llama" in table
    assert cli_main(["spend", "--database-url", database_url, "--since", "soon"]) == 1
    assert "cannot read 'soon'" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread scheduling is Linux's")
def test_writer_runs_at_nice_5_in_the_normal_class(tmp_path):
    """Never SCHED_IDLE: starved while holding the GIL, it stopped the event loop (issue 19)."""
    writer = LedgerWriter(database_url=f"sqlite:///{tmp_path}/ledger.db", spill_dir=tmp_path / "spill",
                          flush_interval=0.05).start()
    try:
        tid = writer._thread.native_id
        assert os.sched_getscheduler(tid) == os.SCHED_OTHER
        deadline = time.monotonic() + 5
        while os.getpriority(os.PRIO_PROCESS, tid) != ledger_module.WRITER_NICE:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        writer.close()
