"""The request ledger's writer: one row per request, off the hot path, never lost.

`LedgerWriter.record(row)` is called on the event loop for every request. It appends
the row as a JSON line to a journal file (one plain write(2), no fsync; see Journal),
then the dict to an in-memory queue, and returns (O(1), never raises). A
background thread takes rows off the queue in batches (up to `batch_size`, or whatever
arrived within `flush_interval`) and inserts each batch with one statement, ON
CONFLICT DO NOTHING (see `batch_insert_for` for how, per database).

When the database is unreachable, batches go to spill files instead (JSON lines,
fsync per batch, default directory `./llmops-spill/`), and the writer probes the
database with a growing back-off; once it answers, every spill file is replayed,
idempotently (the primary key holds the request id; duplicates ignored) and deleted. When the
queue is full (the database is slower than the traffic), `record` appends the row to
the spill file itself rather than dropping it, so memory stays bounded either way.
Files left by a writer that died (spill files and journals) are replayed by the next
writer on that directory: a SIGKILL or a crash of the process loses no row the kernel
has; a crash of the machine can lose the rows of the last few seconds not yet on disk.

`close(timeout)` drains the queue into the database (or the spill file) before
returning; the gateway calls it at shutdown, SIGTERM included. Rows the database
refuses for their content (not for an outage) are set aside in
`rejected-ledger-<writer>.jsonl` and counted as `rejected`, so one bad row never
blocks the rest.

Rows are dicts keyed by the `ledger` table's columns (see ledger_models.py); unknown
keys are ignored, missing ones take their defaults, strings longer than their column
are truncated. `record` takes ownership of the dict (it may set `created_at`).
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert as generic_insert
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from llmops.governance.ledger_models import LEDGER_TABLE, STRING_LENGTHS
from llmops.governance.side_work import set_nice

try:  # POSIX; elsewhere a writer replays only its own spill files
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # the module or None; every use checks for None

__all__ = ["LedgerWriter", "normalize_row", "DEFAULT_SPILL_DIR"]

log = logging.getLogger(__name__)

DEFAULT_SPILL_DIR = "./llmops-spill"

# ---------------------------------------------------------------------------- rows

_STRING_COLUMNS = tuple(STRING_LENGTHS.items())
_INT_COLUMNS = (("input_tokens", 0), ("output_tokens", 0), ("cached_tokens", 0), ("status", 0))
_FLOAT_COLUMNS = ("cost", "ttft_ms")


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return _as_datetime(datetime.fromisoformat(value))
        except ValueError:
            pass
    return datetime.now(UTC)


def _as_string(value: Any, length: int) -> str:
    value = value if isinstance(value, str) else str(value)
    return value[:length]


def _as_int(value: Any, default: int | None) -> int | None:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _default_outcome(status: int) -> str:
    if 0 < status < 400:
        return "success"
    return "upstream_error" if status >= 500 else "client_error"


def normalize_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A dict with exactly the ledger's columns, each of its column's type.

    Runs on the writer thread for every row, hence the fast paths: a value already of
    its column's type is taken as it is.
    """
    get = row.get
    out: dict[str, Any] = {}
    for name, length in _STRING_COLUMNS:
        value = get(name)
        if value is not None and (value.__class__ is not str or len(value) > length):
            value = _as_string(value, length)
        out[name] = value
    if not out["id"]:
        # Without an id the row cannot be replayed idempotently; keep it anyway.
        out["id"] = "ledger-" + uuid.uuid4().hex
        log.warning("ledger row without an id; stored as %s", out["id"])
    created = get("created_at")
    if created.__class__ is not datetime or created.tzinfo is not UTC:
        created = _as_datetime(created)
    out["created_at"] = created
    for name, default in _INT_COLUMNS:
        value = get(name)
        out[name] = value if value.__class__ is int else _as_int(value, default)
    value = get("prompt_version")
    out["prompt_version"] = value if value is None or value.__class__ is int else _as_int(value, None)
    for name in _FLOAT_COLUMNS:
        value = get(name)
        if value is not None and (value.__class__ is not float or not math.isfinite(value)):
            value = _as_float(value)
        out[name] = value
    out["latency_ms"] = _as_float(get("latency_ms")) or 0.0
    out["streamed"] = get("streamed") is True or bool(get("streamed"))
    if out["outcome"] is None:
        out["outcome"] = _default_outcome(out["status"])
    verdicts = get("guardrail_verdicts")
    if verdicts is not None:
        try:
            orjson.dumps(verdicts)
        except TypeError:
            # Whatever the guardrails attached, store what JSON can say about it.
            verdicts = orjson.loads(orjson.dumps(verdicts, default=str))
    out["guardrail_verdicts"] = verdicts
    return out


# --------------------------------------------------------------------- spill files
# Each writer appends JSON lines to files of its own, `ledger-<writer>-<n>.jsonl`, and
# holds an exclusive flock on each for as long as it owns it. A file nobody holds a
# lock on belongs to a writer that exited (cleanly or not): any writer may claim it,
# replay it and delete it. Files are created under a temporary name and renamed once
# locked, so nobody can claim a file its creator has not locked yet.


def _dump_line(row: Mapping[str, Any]) -> bytes:
    # default=str: a row must reach the disk even if a field holds an odd object.
    try:
        return orjson.dumps(row, default=str) + b"\n"
    except TypeError:  # an int past 64 bits, which orjson refuses and json writes
        return json.dumps(row, default=str, ensure_ascii=False).encode() + b"\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass(eq=False)
class SpillFile:
    path: Path
    fd: int

    def lines(self) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            yield from handle


SPILL_PREFIX = "ledger-"
SPILL_SUFFIX = ".jsonl"
JOURNAL_SUFFIX = ".journal"  # see Journal
REJECTED_PREFIX = "rejected-ledger-"


class SpillStore:
    """Spill files of one writer; thread-safe (the event loop appends when the queue is full)."""

    def __init__(self, directory: str | Path, writer_id: str, prefix: str = SPILL_PREFIX):
        self.directory = Path(directory)
        self.writer_id = writer_id
        self.prefix = prefix  # the spend book spills its counters beside the ledger as "spend-"
        self.lock = threading.Lock()
        self._active: SpillFile | None = None
        self._active_bytes = 0
        self._pending: list[SpillFile] = []  # closed for appends, awaiting replay
        self._sequence = 0
        self._dirty = False

    # -- appending -----------------------------------------------------------------

    def append(self, lines: list[bytes], fsync: bool) -> None:
        """Append encoded rows; OSError if the disk refuses (the caller decides)."""
        data = b"".join(lines)
        with self.lock:
            if self._active is None:
                self._active, self._active_bytes = self._create_file(), 0
            active = self._active
            _write_all(active.fd, data)  # O_APPEND: one write per batch
            self._active_bytes += len(data)
            # The fsync below covers every byte written so far; a later append sets it again.
            self._dirty = not fsync
            fd = active.fd
        if fsync:
            os.fsync(fd)  # outside the lock: the event loop may need it meanwhile

    def write_detached(self, lines: list[bytes]) -> None:
        """Rows for a file of their own, synced and released at once (after close():
        nobody will replay or release this writer's files any more)."""
        with self.lock:
            spill = self._create_file()
        try:
            _write_all(spill.fd, b"".join(lines))
            os.fsync(spill.fd)
        finally:
            os.close(spill.fd)

    def sync(self) -> None:
        """fsync rows appended without it (the overflow path on the event loop)."""
        if not self._dirty:
            return
        with self.lock:
            fd = self._active.fd if self._active else None
            self._dirty = False
        if fd is not None:
            try:
                os.fsync(fd)
            except OSError:  # closed meanwhile by a rotation: its fd was synced then
                pass

    def _create_file(self) -> SpillFile:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = f"{self.prefix}{self.writer_id}-{self._sequence}{SPILL_SUFFIX}"
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = self.directory / name
        os.rename(temporary, path)
        return SpillFile(path, fd)

    # -- replaying -----------------------------------------------------------------

    def has_pending(self) -> bool:
        return bool(self._pending) or self._active_bytes > 0

    def take_for_replay(self, claim_orphans: bool) -> list[SpillFile]:
        """Close the active file for appends and hand over every file to replay:
        this writer's own, then (optionally) those left by writers that exited."""
        rotated = None
        with self.lock:
            if self._active is not None and self._active_bytes > 0:
                rotated = self._active
                self._pending.append(rotated)
                self._active, self._active_bytes = None, 0
            files = list(self._pending)
        if rotated is not None:
            os.fsync(rotated.fd)  # outside the lock: record() may be waiting to spill
        if claim_orphans:
            files.extend(self._claim_orphans({f.path.name for f in files}))
        return files

    def _claim_orphans(self, mine: set[str]) -> list[SpillFile]:
        if fcntl is None or not self.directory.is_dir():
            return []
        claimed = []
        own_prefix = f"{self.prefix}{self.writer_id}-"
        paths = [*self.directory.glob(f"{self.prefix}*{SPILL_SUFFIX}"),
                 *self.directory.glob(f"{self.prefix}*{JOURNAL_SUFFIX}")]
        for path in sorted(paths):
            if path.name in mine or path.name.startswith(own_prefix):
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # Another claimant may have replayed and unlinked it meanwhile.
                if os.fstat(fd).st_ino != os.stat(path).st_ino:
                    raise OSError("replaced")
            except OSError:
                os.close(fd)
                continue
            claimed.append(SpillFile(path, fd))
            with self.lock:
                self._pending.append(claimed[-1])
        return claimed

    def done(self, spill: SpillFile) -> None:
        """A file fully replayed: delete it, then release its lock."""
        with self.lock:
            if spill in self._pending:
                self._pending.remove(spill)
        try:
            spill.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(spill.fd)

    # -- rejected rows and shutdown ---------------------------------------------------

    def reject(self, lines: list[bytes]) -> None:
        """Rows the database refuses (not outages): kept aside for a person, never replayed."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{REJECTED_PREFIX}{self.writer_id}{SPILL_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _write_all(fd, b"".join(lines))
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Sync and release every file; what is unreplayed waits for the next writer."""
        with self.lock:
            files = ([self._active] if self._active else []) + self._pending
            self._active, self._pending, self._active_bytes = None, [], 0
        for spill in files:
            try:
                os.fsync(spill.fd)
            except OSError:
                pass
            try:
                # An empty file (opened, never written) is just noise in the directory.
                if os.fstat(spill.fd).st_size == 0:
                    spill.path.unlink(missing_ok=True)
            except OSError:
                pass
            os.close(spill.fd)


# ------------------------------------------------------------------------- journal
# Every row queued is first appended to a journal file of its writer's, one plain
# write(2) per row, no fsync: a SIGKILL, an OOM kill or a crash of the process loses
# nothing the kernel already has (only a crash of the machine itself can lose what is
# not yet on the disk). The writer thread rotates the journal at the start of each cycle
# and deletes the retired files once every row they hold is in the database or a spill
# file. Journal files (`ledger-<writer>-<n>.journal`) are claimed like spill files, so a
# writer that died leaves them for the next writer on the directory to replay; rows a batch
# had already written are skipped then (ON CONFLICT on the request id).

class Journal:
    """The journal files of one writer. `append` runs on the event loop, `rotate` and
    `retire` on the writer thread; `lock` orders appends against a rotation."""

    def __init__(self, directory: Path, writer_id: str):
        self.directory = directory
        self.writer_id = writer_id
        self.lock = threading.Lock()
        self._sequence = 0
        self._fd: int | None = None
        self._path: Path | None = None
        self._bytes = 0
        self._retired: list[tuple[Path, int]] = []  # rotated out, rows not all written yet
        self._failed = False

    def open(self) -> bool:
        """Open the first journal file; False (and no journal) if the directory refuses."""
        try:
            self._fd, self._path = self._create()
            return True
        except OSError as exc:
            log.warning("ledger: no journal in %s (%s); a crash loses queued rows", self.directory, exc)
            return False

    def _create(self) -> tuple[int, Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = f"{SPILL_PREFIX}{self.writer_id}-{self._sequence}{JOURNAL_SUFFIX}"
        temporary = self.directory / f".{name}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this writer lives
        path = self.directory / name
        os.rename(temporary, path)
        return fd, path

    def append(self, line: bytes) -> None:
        """One row's line, written before the row is queued (the caller holds `lock`)."""
        fd = self._fd
        if fd is None:
            return
        try:
            _write_all(fd, line)
            self._bytes += len(line)
        except OSError as exc:  # a full disk: the row still goes in the queue
            if not self._failed:
                self._failed = True
                log.error("ledger: journal write failed (%s); a crash now loses queued rows", exc)

    def next_file(self) -> tuple[int, Path] | None:
        """The file to rotate to, created before `rotate` takes the lock (the event loop
        may be waiting for it); None when there is nothing to rotate."""
        if self._fd is None or self._bytes == 0:
            return None
        try:
            return self._create()
        except OSError:
            return None  # keep appending to the current file; it is retired at a later cycle

    def rotate(self, new: tuple[int, Path] | None) -> None:
        """Switch to `new` for rows recorded from now on (the caller holds `lock`): every
        row in the retired files is in the queue by then."""
        if new is None:
            return
        if self._fd is None:  # closed meanwhile
            os.close(new[0])
            new[1].unlink(missing_ok=True)
            return
        assert self._path is not None
        self._retired.append((self._path, self._fd))
        (self._fd, self._path), self._bytes = new, 0

    def retire(self) -> None:
        """Every row of the rotated-out files is in the database or a spill file."""
        retired, self._retired = self._retired, []
        for path, fd in retired:
            try:
                path.unlink()
            except OSError:
                pass
            os.close(fd)

    def close(self, written: bool) -> None:
        """Delete every file when all rows are `written`; otherwise leave them to replay."""
        with self.lock:
            if self._fd is not None and self._path is not None:
                self._retired.append((self._path, self._fd))
            self._fd, self._path, self._bytes = None, None, 0
        if written:
            self.retire()
        else:
            for _, fd in self._retired:
                os.close(fd)
            self._retired = []


# -------------------------------------------------------------------------- writer

_MIN_BACKOFF = 0.5
_MAX_BACKOFF = 5.0
_ORPHAN_SCAN_INTERVAL = 30.0


class _Unavailable(Exception):
    """The database cannot take rows now: down, unreachable, refusing, misconfigured."""


def _describe(exc: BaseException) -> str:
    # The driver's message, first line only: statements and parameters stay out of logs.
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0][:200] if lines else ''}"


def _is_row_error(exc: BaseException) -> bool:
    """Refused for this row's content, not because the database is away."""
    # TypeError/ValueError: a value the driver or JSON cannot encode (an int past 64 bits).
    # (sqlite3's own errors: SQLite batches go to its cursor directly, unwrapped.)
    if isinstance(exc, (sa_exc.IntegrityError, sa_exc.DataError, sqlite3.IntegrityError, sqlite3.DataError,
                        TypeError, ValueError, OverflowError)):
        return True
    # A value that could not even be bound never reached the database.
    return isinstance(exc, sa_exc.StatementError) and not isinstance(exc, sa_exc.DBAPIError)


# (connection, normalized rows, pace): `pace`, when given, is called between slices of
# work done in this process, to give the core back (see yield_cpu).
BatchInsert = Callable[[Connection, list[dict[str, Any]], Callable[[], None] | None], None]


def batch_insert_for(engine: Engine) -> BatchInsert:
    """How a batch of normalized rows goes into `ledger` on this engine's database.

    Every path is one statement per batch with ON CONFLICT DO NOTHING on the request
    id. SQLAlchemy Core's executemany of dicts costs more per row in bind processing
    than the database's own work, so where it matters (measured in
    benchmarks/bench_ledger.py) the values are prepared here and handed to the driver:
    - Postgres: the whole batch as one JSON document, expanded server-side by
      json_populate_recordset (one round trip instead of one per row: about 4x);
    - SQLite: the Core-compiled INSERT, executemany with plain tuples (about 2x).
    Other databases take the Core `insert(table)` with the list of dicts.
    """
    if engine.dialect.name == "postgresql":
        return _postgres_batch_insert(engine)
    if engine.dialect.name == "sqlite":
        return _sqlite_batch_insert(engine)
    statement = generic_insert(LEDGER_TABLE)  # duplicates surface as IntegrityError, handled per row

    def insert_core(conn: Connection, rows: list[dict[str, Any]], pace: Callable[[], None] | None = None) -> None:
        conn.execute(statement, rows)

    return insert_core


def _postgres_batch_insert(engine: Engine) -> BatchInsert:
    quote = engine.dialect.identifier_preparer.quote
    table = quote(LEDGER_TABLE.name)
    names = ", ".join(quote(column.name) for column in LEDGER_TABLE.columns)
    # No conflict target: the request id's unique key is the table's on a ledger made
    # before partitioning, each partition's own on a partitioned one (ledger_storage.py).
    sql = (
        f"INSERT INTO {table} ({names}) SELECT {names} "
        f"FROM json_populate_recordset(NULL::{table}, %s) ON CONFLICT DO NOTHING"
    )

    def insert_postgres(conn: Connection, rows: list[dict[str, Any]], pace: Callable[[], None] | None = None) -> None:
        # orjson writes datetimes as RFC 3339 and nested verdicts as JSON: Postgres casts each field.
        conn.exec_driver_sql(sql, (orjson.dumps(rows).decode(),))

    return insert_postgres


class _SqliteTime:
    """A UTC datetime as SQLAlchemy's DateTime stores it on SQLite (naive text with
    microseconds), so that reads agree. Rows of one second share their text up to the
    fraction, so that part is kept: 1.3 instead of 4 us per row here, against
    replace(tzinfo=None).isoformat(), on the writer's share of the core."""

    def __init__(self) -> None:
        # (second, its text) in one tuple: replaced whole, so two threads never mix them.
        self._last: tuple[tuple[int, ...], str] = ((), "")

    def __call__(self, value: datetime) -> str:
        second = (value.year, value.month, value.day, value.hour, value.minute, value.second)
        last = self._last
        if second != last[0]:
            last = self._last = (second, "{:04d}-{:02d}-{:02d} {:02d}:{:02d}:{:02d}.".format(*second))
        return f"{last[1]}{value.microsecond:06d}"


def _null(value: None) -> None:
    return None


def _sqlite_batch_insert(engine: Engine) -> BatchInsert:
    from sqlalchemy.dialects.sqlite import insert

    # sqlite3 binds int, float and str directly, but sends None through its adapter
    # lookup, which fails with a formatted AttributeError on each miss (a ledger row
    # has about 20 NULLs). A registered adapter for None is found at once: executemany
    # took 3.9 instead of 7.0 us per row of 8 NULLs. It still binds NULL, for every
    # sqlite3 user in the process.
    sqlite3.register_adapter(type(None), _null)

    compiled = insert(LEDGER_TABLE).on_conflict_do_nothing().compile(dialect=engine.dialect)
    sql = str(compiled)
    order = tuple(compiled.positiontup or ())
    created_at = order.index("created_at")
    verdicts = order.index("guardrail_verdicts")

    sqlite_time = _SqliteTime()

    def insert_sqlite(conn: Connection, rows: list[dict[str, Any]], pace: Callable[[], None] | None = None) -> None:
        # SQLite works inside this process, on the gateway's core: a few rows at a time,
        # pacing in between.
        cursor = conn.connection.cursor()
        step = YIELD_EVERY_ROWS if pace is not None else max(1, len(rows))
        try:
            for start in range(0, len(rows), step):
                params = []
                for row in rows[start : start + step]:
                    values = [row[name] for name in order]
                    values[created_at] = sqlite_time(values[created_at])
                    if values[verdicts] is not None:
                        values[verdicts] = orjson.dumps(values[verdicts]).decode()
                    params.append(tuple(values))
                cursor.executemany(sql, params)
                if pace is not None:
                    pace()
        finally:
            cursor.close()

    return insert_sqlite


# The writer shares the gateway's core (SQLite runs in this process), and a request that
# wakes up must not wait for the scheduler to end the writer's time slice (a few ms).
# So while it keeps up, the writer gives the core back every few rows (yield_cpu), and it
# runs at nice 5, which still leaves it a quarter of a saturated core (it needs about
# 27 us per row; at nice 10 it fell behind at 4,000 req/s). Measured at one connection
# on one core, p99 of the added latency: 6.2 ms with neither, 3.6 ms with nice 10 alone,
# 0.6-1.0 ms with both (0.7-0.9 ms with no ledger at all).
# Giving the core back also hands the GIL to a request waiting for it. A stretch of
# Python with no such point makes that request wait for the switch interval (1 ms): so
# every step of a cycle, down to freeing the written rows, goes a few rows at a time.
WRITER_NICE = 5
YIELD_EVERY_ROWS = 8
_sched_yield = getattr(os, "sched_yield", None)


def yield_cpu() -> None:
    """Let a runnable request handler have the core now (it releases the GIL, too)."""
    if _sched_yield is not None:
        _sched_yield()


def _release(items: list[Any], pace: Callable[[], None] | None) -> None:
    """Empty a list of written rows a few at a time, pacing in between."""
    if pace is None:
        items.clear()
        return
    while items:
        del items[-YIELD_EVERY_ROWS:]
        pace()


def _lower_priority() -> None:
    """Lower this thread's scheduling priority to WRITER_NICE, where allowed."""
    set_nice(threading.get_native_id(), WRITER_NICE)


# While it keeps up, the writer gives the core back every few rows; once BACKLOG_ROWS
# // 4 rows wait (the gateway is saturated), it writes flat out: pacing then let the
# queue grow, and memory with it (+5-10 MB resident at 32 connections). It used to run
# in SCHED_IDLE while it kept up; a SCHED_IDLE thread that holds the GIL when other
# processes take the core stops the event loop (priority inversion). On a machine at
# load 8, alternating 10 s runs at one connection, the gateway's p99 was lower without
# it in 8 of 8 pairs (median 13.9 against 17.9 ms; benchmarks/sched_idle_ab.py).
BACKLOG_ROWS = 2000
# A write to the database taking longer than this means it has stopped answering.
STALL_SECONDS = 5.0


class LedgerWriter:
    """Batched, crash-safe writer of ledger rows (see the module doc)."""

    def __init__(
        self,
        database_url: str | None = None,
        spill_dir: str | Path | None = None,
        batch_size: int = 1000,
        flush_interval: float = 0.25,
        max_queue: int = 100_000,
        journal: bool = True,
    ):
        if batch_size < 1 or max_queue < 1 or flush_interval <= 0:
            raise ValueError("batch_size and max_queue must be >= 1, flush_interval > 0")
        self.database_url = database_url
        self.writer_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.spill_dir = Path(spill_dir if spill_dir is not None else DEFAULT_SPILL_DIR)
        self._spill = SpillStore(self.spill_dir, self.writer_id)
        self._journal = Journal(self.spill_dir, self.writer_id)
        self._journal_wanted = journal
        self._journal_on = False  # set at start() once its first file is open
        self._requeued = False  # rows went back to the queue during this cycle
        self._writing_since = 0.0  # monotonic start of the database write under way (0: none)
        self._stalled = False  # that write has taken over STALL_SECONDS: record() spills
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._max_queue = max_queue
        self._accept_limit = max_queue  # 0 once closed: record() then spills directly
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._draining = False
        self._inflight: list[dict[str, Any]] | None = None
        self._engine: Engine | None = None
        self._insert_batch: BatchInsert | None = None
        self._db_up = False
        self._warned_down = False
        self._next_probe = 0.0
        self._backoff = _MIN_BACKOFF
        self._next_orphan_scan = 0.0
        self._counts_lock = threading.Lock()  # spilled/dropped move on two threads
        self._written = 0
        self._spilled = 0
        self._replayed = 0
        self._dropped = 0
        self._rejected = 0

    # -- public API ------------------------------------------------------------------

    def start(self) -> LedgerWriter:
        if self._thread is None and not self._closed:
            self._journal_on = self._journal_wanted and self._journal.open()
            self._thread = threading.Thread(target=self._run, name="llmops-ledger", daemon=True)
            self._thread.start()
            # A process that forgets close() still drains at interpreter exit.
            atexit.register(self.close)
        return self

    def record(self, row: dict[str, Any]) -> None:
        """Queue one row. O(1), one write(2) to the journal (no fsync), never raises."""
        try:
            if "created_at" not in row:
                row["created_at"] = time.time()
            queue = self._queue
            queued = len(queue)
            if queued < self._accept_limit:
                if self._journal_on:
                    line = _dump_line(row)
                    journal = self._journal
                    with journal.lock:  # a rotation sees the row in both places or neither
                        journal.append(line)
                        queue.append(row)
                else:
                    queue.append(row)
                # A full batch wakes the writer early; otherwise it wakes every flush_interval.
                if queued >= self._batch_size and not self._wake.is_set():
                    self._wake.set()
                if not queued & 63 and self._writing_since:
                    self._check_stall()
            else:
                self._overflow(row)
        except Exception:  # the request is served already; losing its row must not fail it
            self._count(dropped=1)
            log.exception("ledger: a row could not be recorded")

    @property
    def flush_interval(self) -> float:
        """Seconds a row may wait in the queue before the writer takes it."""
        return self._flush_interval

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row recorded so far is in the database or a spill file."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while time.monotonic() < deadline:
            if not self._queue and not self._draining:
                return True
            time.sleep(0.005)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Drain the queue into the database (or the spill file), then stop. Idempotent.

        Rows recorded after close() go straight to the spill file, fsynced, for the
        next writer to replay.
        """
        if self._closed:
            return
        self._closed = True
        self._accept_limit = 0
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            # A write the database has not answered for STALL_SECONDS (frozen) will not end
            # within any timeout: spill what is left now rather than hold up the exit.
            deadline = time.monotonic() + timeout
            while thread.is_alive() and time.monotonic() < deadline:
                since = self._writing_since
                if since and time.monotonic() - since > STALL_SECONDS:
                    break
                thread.join(0.05)
        finished = thread is not None and not thread.is_alive()
        if thread is None or thread.is_alive():
            if thread is not None:
                log.error("ledger writer did not finish within %ss; spilling what is left", timeout)
            leftovers = list(self._inflight or [])
            while self._queue:
                try:
                    leftovers.append(self._queue.popleft())
                except IndexError:
                    break
            if leftovers:
                self._spill_rows(leftovers, requeue=False)
        self._spill.close()
        # Journal files stay for the next writer to replay unless every row went in.
        self._journal.close(written=finished and not self._queue and self._dropped == 0)
        atexit.unregister(self.close)

    def stats(self) -> dict[str, int]:
        return {
            "queued": len(self._queue),
            "written": self._written,
            "spilled": self._spilled,
            "replayed": self._replayed,
            "dropped": self._dropped,
            "rejected": self._rejected,
            "database_up": int(self._db_up),
        }

    # -- hot-path helpers ------------------------------------------------------------

    def _overflow(self, row: dict[str, Any]) -> None:
        # The queue is full (or closed): the disk, not memory, absorbs the excess.
        try:
            if self._closed:
                self._spill.write_detached([_dump_line(row)])
            else:
                self._spill.append([_dump_line(row)], fsync=False)  # the writer thread syncs it
            self._count(spilled=1)
        except OSError:
            self._count(dropped=1)
            log.exception("ledger: spill file refused a row; it is lost")

    def _check_stall(self) -> None:
        # A database that stops answering (frozen, not down: no error comes) holds the
        # writer inside a statement no timeout of ours can end. Rows then go to the spill
        # files from here until it answers, instead of filling memory up to max_queue.
        if time.monotonic() - self._writing_since > STALL_SECONDS and not self._stalled:
            self._stalled = True
            self._accept_limit = 0
            log.warning("ledger: the database has not answered a write for %gs; rows go to %s",
                        STALL_SECONDS, self.spill_dir)

    def _count(self, spilled: int = 0, dropped: int = 0) -> None:
        with self._counts_lock:
            self._spilled += spilled
            self._dropped += dropped

    # -- background thread -------------------------------------------------------------

    def _run(self) -> None:
        _lower_priority()
        try:  # at once, not after a flush interval: replays what a dead writer left (journals)
            self._probe()
        except Exception:
            log.exception("ledger: first probe of the database failed")
        while True:
            if not self._stopping and len(self._queue) < self._batch_size:
                self._wake.wait(self._flush_interval)
            self._wake.clear()
            try:
                self._cycle()
            except Exception:  # the writer thread must outlive any surprise
                log.exception("ledger writer cycle failed")
                self._draining = False
                time.sleep(self._flush_interval)
            if self._stopping and not self._queue:
                return

    def _cycle(self) -> None:
        now = time.monotonic()
        if not self._db_up and now >= self._next_probe:
            self._probe()
        self._draining = True
        # Only the rows queued by now: rows that arrive while they are written wait for
        # the next cycle. Draining those too kept the writer going in batches of a few
        # rows under steady traffic, a transaction each. The journal rotates at the same
        # point, so the retired journal files hold exactly those rows (and older ones).
        if self._journal_on:
            new = self._journal.next_file()
            with self._journal.lock:
                self._journal.rotate(new)
                due = len(self._queue)
        else:
            due = len(self._queue)
        self._requeued = False
        try:
            while due > 0 and self._queue:
                queue = self._queue
                batch = [queue.popleft() for _ in range(min(len(queue), self._batch_size, due))]
                due -= len(batch)
                self._inflight = batch
                try:
                    self._write_batch(batch)
                except Exception:  # a bug, not an outage: keep the rows on disk, not in limbo
                    log.exception("ledger: writing a batch failed unexpectedly; spilling it")
                    self._spill_rows(batch)
                finally:
                    self._inflight = None
        finally:
            self._draining = False
        if self._journal_on and due == 0 and not self._requeued:
            self._journal.retire()
        if self._db_up and not self._stopping:
            if now >= self._next_orphan_scan:
                self._next_orphan_scan = now + _ORPHAN_SCAN_INTERVAL
                self._replay(claim_orphans=True)
            elif self._spill.has_pending():
                self._replay(claim_orphans=False)
        self._spill.sync()

    def _normalize_all(self, batch: list[Any], pace: Callable[[], None] | None = None) -> list[dict[str, Any]]:
        rows = []
        for i, row in enumerate(batch, 1):
            if pace is not None and i % YIELD_EVERY_ROWS == 0:
                pace()
            try:
                rows.append(normalize_row(row))
            except Exception as exc:  # not a mapping, a value JSON cannot hold...
                self._reject(row if isinstance(row, dict) else {"row": row}, exc)
        return rows

    def _write_batch(self, batch: list[dict[str, Any]]) -> None:
        """Write a batch, then empty the list (it is in the database or a spill file)."""
        # Give the core back every few rows while keeping up; flat out with a backlog
        # (see BACKLOG_ROWS).
        pace: Callable[[], None] | None = yield_cpu if len(self._queue) < BACKLOG_ROWS // 4 else None
        rows = self._normalize_all(batch, pace)
        if rows and not self._db_up:
            self._spill_rows(rows)
        elif rows:
            try:
                self._written += self._insert_rows(rows, pace)
            except _Unavailable as exc:
                self._mark_down(exc)
                self._spill_rows(rows)
        # Freeing a batch of ~600 row dicts at once held the GIL for 0.7 ms, each list.
        _release(rows, pace)
        _release(batch, pace)

    def _insert_rows(self, rows: list[dict[str, Any]], pace: Callable[[], None] | None = None) -> int:
        """Insert normalized rows in one statement; returns how many were accepted.

        Raises _Unavailable when the database is away; rows it refuses for their
        content are set aside one by one so the rest still go in.
        """
        assert self._engine is not None and self._insert_batch is not None
        self._writing_since = time.monotonic()
        try:
            with self._engine.begin() as conn:
                self._insert_batch(conn, rows, pace)
            return len(rows)
        except Exception as exc:
            if not _is_row_error(exc):
                raise _Unavailable(_describe(exc)) from exc
        finally:
            self._writing_since = 0.0
            if self._stalled:
                self._stalled = False
                if not self._closed:
                    self._accept_limit = self._max_queue
                    log.warning("ledger: the database answered again; rows are queued again")
        accepted = 0
        for row in rows:
            try:
                with self._engine.begin() as conn:
                    self._insert_batch(conn, [row], None)
                accepted += 1
            except Exception as exc:
                if isinstance(exc, sa_exc.IntegrityError):
                    accepted += 1  # generic dialects: the request id is already stored
                elif _is_row_error(exc):
                    self._reject(row, exc)
                else:
                    raise _Unavailable(_describe(exc)) from exc
        return accepted

    def _reject(self, row: Mapping[str, Any], exc: BaseException) -> None:
        self._rejected += 1
        log.error(
            "ledger: row %s refused (%s); kept in %s",
            row.get("id"),
            _describe(exc),
            self.spill_dir,
        )
        try:
            self._spill.reject([_dump_line(row)])
        except OSError:
            self._count(dropped=1)

    def _spill_rows(self, rows: list[dict[str, Any]], requeue: bool = True) -> None:
        try:
            self._spill.append([_dump_line(row) for row in rows], fsync=True)
            self._count(spilled=len(rows))
        except OSError:
            if requeue and not self._stopping and len(self._queue) < self._max_queue:
                log.exception("ledger: neither the database nor the spill directory takes rows; retrying")
                self._queue.extendleft(reversed(rows))
                self._requeued = True
                time.sleep(self._flush_interval)
            else:
                self._count(dropped=len(rows))
                log.exception("ledger: %d rows lost (no database, no spill directory)", len(rows))

    # -- database availability -------------------------------------------------------

    def _probe(self) -> None:
        try:
            if self._engine is None:
                from llmops.db import get_engine

                engine = get_engine(self.database_url)  # creates the table on a new database
                self._insert_batch = batch_insert_for(engine)
                self._engine = engine
            with self._engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            self._mark_down(exc)
            return
        if self._warned_down:
            log.warning("ledger: database reachable again; replaying spilled rows")
        self._db_up, self._warned_down, self._backoff = True, False, _MIN_BACKOFF
        self._next_orphan_scan = time.monotonic() + _ORPHAN_SCAN_INTERVAL
        self._replay(claim_orphans=True)

    def _mark_down(self, exc: BaseException) -> None:
        if not self._warned_down:
            log.warning(
                "ledger: database unavailable (%s); rows go to %s until it returns",
                _describe(exc),
                self.spill_dir,
            )
            self._warned_down = True
        self._db_up = False
        self._next_probe = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF)

    def _replay(self, claim_orphans: bool) -> None:
        try:
            files = self._spill.take_for_replay(claim_orphans)
        except OSError:
            log.exception("ledger: spill directory unreadable")
            return
        for spill in files:
            try:
                count = self._replay_file(spill)
            except _Unavailable as exc:
                self._mark_down(exc)
                return
            self._spill.done(spill)
            self._replayed += count

    def _replay_file(self, spill: SpillFile) -> int:
        count = 0
        batch: list[dict[str, Any]] = []
        for line in spill.lines():
            line = line.strip()
            if not line:
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                # Only a crash mid-write leaves a torn line, and only the last one.
                self._count(dropped=1)
                log.error("ledger: unreadable line in %s skipped", spill.path)
                continue
            batch.extend(self._normalize_all([row]))
            if len(batch) >= self._batch_size:
                count += self._insert_rows(batch)
                batch = []
        if batch:
            count += self._insert_rows(batch)
        return count
