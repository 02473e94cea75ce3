"""How the `ledger` table is laid out on Postgres so that it stays fast at 10^8 rows.

- **Monthly partitions** (`ledger_pYYYYMM`, range on `created_at`), a few months made
  ahead by `maintain`, and a DEFAULT partition (`ledger_pdefault`) so that a row whose
  month has no partition (a clock far off, a spill file from long ago) is still stored.
- **The request id is unique per partition**: a partitioned table can only have
  unique keys that include the partition key, so the parent has no primary key and
  each partition gets its own unique index on `id`. INSERT ... ON CONFLICT DO NOTHING
  (no conflict target) checks it: a replayed row (same id, same time, so the same
  partition) is skipped, by an index, whatever the planner thinks of a new, empty
  partition. (A lookup of the id across partitions was tried first: on a partition
  too new to have statistics the planner scanned it for every row, and a batch took
  over 10 s.) Two rows of one id in different months would both be kept; the gateway
  makes a new id for every call, so only a bug could do that.
- **Retention** (`ledger.retention_days`): `maintain` drops whole partitions whose
  every row is older than the cutoff (no DELETE, no bloat, no VACUUM), so up to a month
  more than asked is kept. SQLite deletes rows older than the cutoff.
- **An hourly rollup** (`ledger_rollup`): per dimension of `llmops spend` (model, key,
  user, team, prompt, variant), per UTC hour, the sums the report shows. A statement
  trigger on `ledger` adds each INSERT's rows to it in the same transaction (one
  aggregate upsert per batch), so it is never behind and no writer has to know about
  it. A report reads rollup rows for whole hours and ledger rows only for the part of
  the first hour inside its window: on 10 million rows here a scan took 7 s, the
  rollup 10-400 ms by grouping and window (benchmarks/bench_ledger_scale.py).

An existing, unpartitioned `ledger` becomes the first partition (`ledger_legacy`,
from MINVALUE to the month after its newest row) without copying a row: see
`convert_to_partitions`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

PARENT = "ledger"
LEGACY = "ledger_legacy"
DEFAULT_PARTITION = "ledger_pdefault"
ROLLUP = "ledger_rollup"
MONTHS_AHEAD = 2  # partitions exist for this month and the next MONTHS_AHEAD
MAINTENANCE_LOCK = 7243111  # pg advisory lock: one replica maintains at a time

# (dimension, group column, second column) as `llmops spend --by` reads them.
DIMENSIONS: dict[str, tuple[str, str | None]] = {
    "model": ("model", None),
    "key": ("key_id", None),
    "user": ("user", None),
    "team": ("team", None),
    "prompt": ("prompt_name", None),
    "variant": ("experiment", "variant"),
}

# Secondary indexes of the partitioned ledger (each partition gets its own); each costs
# every insert. The first three have the definition ledger.0001 gave the unpartitioned
# table, so a converted table's are attached as they are, not rebuilt. Windows of time,
# a key's or a user's budget and a request id are what readers look up; the reports
# by model and prompt read the rollup, so those two columns lost their indexes.
INDEXES = {
    "ledger_created_at_idx": "(created_at)",
    "ledger_key_id_idx": "(key_id)",
    "ledger_user_idx": '("user")',
    # An experiment's report and charts read its rows by name.
    "ledger_experiment_idx": "(experiment, variant) WHERE experiment IS NOT NULL",
    # A team budget's first read sums its team's spend in the period.
    "ledger_team_idx": "(team, created_at) WHERE team IS NOT NULL",
}


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def is_partitioned(conn: Connection) -> bool:
    kind = conn.execute(
        text("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(:name)"), {"name": PARENT}
    ).scalar()
    return kind == "p"


# ------------------------------------------------------------------------- rollup


def _encode(column: str) -> str:
    # '' stands for NULL and '=' prefixes a value, so the rollup's key needs no NULLs
    # (a NULL never equals another in a unique index before Postgres 15).
    return f"CASE WHEN n.{column} IS NULL THEN '' ELSE '=' || n.{column} END"


def _rollup_select(source: str) -> str:
    """One aggregate row per (dimension, hour, group) of the rows in `source` (alias n)."""
    values = []
    for dimension, (group, second) in DIMENSIONS.items():
        quoted = f'"{group}"' if group == "user" else group
        second_sql = _encode(second) if second else "''"
        key_name = "n.key_name" if dimension == "key" else "NULL::varchar"
        values.append(f"('{dimension}', {_encode(quoted)}, {second_sql}, {key_name})")
    return f"""
        SELECT d.dimension, date_trunc('hour', n.created_at AT TIME ZONE 'UTC') AS bucket, d.grp, d.sub,
               count(*) AS requests,
               sum(CASE WHEN n.outcome <> 'success' THEN 1 ELSE 0 END) AS errors,
               sum(n.input_tokens::bigint) AS input_tokens,
               sum(n.output_tokens::bigint) AS output_tokens,
               sum(n.cost) AS cost,
               sum(CASE WHEN n.cost IS NOT NULL THEN 1 ELSE 0 END) AS priced,
               sum(CASE WHEN n.cost IS NULL AND n.input_tokens + n.output_tokens > 0 THEN 1 ELSE 0 END)
                   AS unpriced,
               max(d.key_name) AS key_name
        FROM {source} n
        CROSS JOIN LATERAL (VALUES {", ".join(values)}) AS d(dimension, grp, sub, key_name)
        GROUP BY 1, 2, 3, 4
        ORDER BY 1, 2, 3, 4
    """


# Sorted input, so that writers upserting overlapping rollup rows lock them in one order.
_UPSERT = """
    INSERT INTO ledger_rollup AS r
        (dimension, bucket, grp, sub, requests, errors, input_tokens, output_tokens, cost, priced, unpriced,
         key_name)
    {select}
    ON CONFLICT (dimension, bucket, grp, sub) DO UPDATE SET
        requests = r.requests + excluded.requests,
        errors = r.errors + excluded.errors,
        input_tokens = r.input_tokens + excluded.input_tokens,
        output_tokens = r.output_tokens + excluded.output_tokens,
        cost = CASE WHEN r.cost IS NULL THEN excluded.cost
                    WHEN excluded.cost IS NULL THEN r.cost ELSE r.cost + excluded.cost END,
        priced = r.priced + excluded.priced,
        unpriced = r.unpriced + excluded.unpriced,
        key_name = greatest(r.key_name, excluded.key_name)
"""


def _create_rollup(conn: Connection) -> None:
    conn.exec_driver_sql(
        f"""
        CREATE TABLE IF NOT EXISTS {ROLLUP} (
            dimension varchar(16) NOT NULL,
            bucket timestamp NOT NULL,  -- the UTC hour
            grp text NOT NULL,
            sub text NOT NULL,
            requests bigint NOT NULL,
            errors bigint NOT NULL,
            input_tokens bigint NOT NULL,
            output_tokens bigint NOT NULL,
            cost double precision,
            priced bigint NOT NULL,
            unpriced bigint NOT NULL,
            key_name varchar(200),
            PRIMARY KEY (dimension, bucket, grp, sub)
        )
        """
    )
    conn.exec_driver_sql(
        f"""
        CREATE OR REPLACE FUNCTION ledger_rollup_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            {_UPSERT.format(select=_rollup_select("new_rows"))};
            RETURN NULL;
        END
        $fn$
        """
    )
    conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS ledger_rollup_insert ON {PARENT}")
    conn.exec_driver_sql(
        f"CREATE TRIGGER ledger_rollup_insert AFTER INSERT ON {PARENT} REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_rollup_insert()"
    )


def rebuild_rollup(conn: Connection) -> None:
    """Recompute the rollup from the ledger's rows (one scan)."""
    conn.exec_driver_sql(f"DELETE FROM {ROLLUP}")
    conn.exec_driver_sql(_UPSERT.format(select=_rollup_select(PARENT)))


# --------------------------------------------------------------------- partitions

_BOUND = re.compile(r"FROM \((.+?)\) TO \((.+?)\)")


def _parse_bound(value: str) -> datetime | None:
    value = value.strip().strip("'")
    if value.upper() in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def partitions(conn: Connection) -> list[tuple[str, datetime | None, datetime | None]]:
    """(name, lower, upper) of each range partition, oldest first; None is MINVALUE."""
    conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")  # bounds print in the session's zone
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(:parent)"
        ),
        {"parent": PARENT},
    ).all()
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:  # the DEFAULT partition has no range
            found.append((name, _parse_bound(match.group(1)), _parse_bound(match.group(2))))
    far_past = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda p: p[1] or far_past)


def ensure_partitions(
    conn: Connection, now: datetime, months_ahead: int = MONTHS_AHEAD, first: datetime | None = None
) -> list[str]:
    """Create the monthly partitions from this month (or `first`'s) to `months_ahead`
    later; returns the new ones. Rows the DEFAULT partition holds for a new month move
    into it (same transaction)."""
    existing = partitions(conn)
    created = []
    start = month_start(min(first or now, now))
    last = month_start(now)
    for _ in range(months_ahead):
        last = next_month(last)
    while start <= last:
        end = next_month(start)
        overlaps = any(
            (lower is None or lower < end) and (upper is None or upper > start)
            for _, lower, upper in existing
        )
        if not overlaps:
            name = f"ledger_p{start:%Y%m}"
            bounds = {"start": start, "end": end}
            conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS)")
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD CONSTRAINT {name}_id_key UNIQUE (id)")
            conn.execute(
                text(
                    f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE created_at >= :start "
                    f"AND created_at < :end RETURNING *) INSERT INTO {name} SELECT * FROM moved"
                ),
                bounds,
            )
            # Bounds as literals: ATTACH takes no parameters.
            conn.exec_driver_sql(
                f"ALTER TABLE {PARENT} ATTACH PARTITION {name} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
            created.append(name)
        start = end
    return created


def convert_to_partitions(conn: Connection) -> None:
    """Migration step (Postgres): partition `ledger`, keeping every row it has.

    An unpartitioned `ledger` is renamed `ledger_legacy`; a partitioned `ledger` of the
    same columns takes its name; if the old table has rows, it is attached as the range
    partition (MINVALUE, first month after its newest row and after now), keeping its
    primary key on `id` as its unique key: this builds the indexes the old table lacked
    (experiment, team) and checks the range in one scan; no row is copied. An empty one
    is dropped.
    Then: the DEFAULT partition, the monthly ones, the rollup and its trigger, and the
    rollup's backfill (one more scan). All in the migration's transaction: a failure
    leaves the table as it was. Writers wait meanwhile (their rows go to spill files
    after 5 s and are replayed), readers of `ledger` too.
    """
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS ledger_experiment_idx ON ledger (experiment, variant) "
            "WHERE experiment IS NOT NULL"
        )
        conn.exec_driver_sql(
            "CREATE INDEX IF NOT EXISTS ledger_team_idx ON ledger (team, created_at) WHERE team IS NOT NULL"
        )
        return
    if is_partitioned(conn):
        return
    now = datetime.now(UTC)
    conn.exec_driver_sql(f"ALTER TABLE {PARENT} RENAME TO {LEGACY}")
    conn.exec_driver_sql(f"ALTER TABLE {LEGACY} RENAME CONSTRAINT ledger_pkey TO ledger_legacy_pkey")
    conn.exec_driver_sql(
        f"CREATE TABLE {PARENT} (LIKE {LEGACY} INCLUDING DEFAULTS) PARTITION BY RANGE (created_at)"
    )
    for name, definition in INDEXES.items():
        column_list, _, predicate = definition.partition(" WHERE ")
        where = f" WHERE {predicate}" if predicate else ""
        conn.exec_driver_sql(f"CREATE INDEX {name} ON {PARENT} {column_list}{where}")
    newest = conn.exec_driver_sql(f"SELECT max(created_at) FROM {LEGACY}").scalar()
    if newest is None:
        conn.exec_driver_sql(f"DROP TABLE {LEGACY}")
    else:
        upper = next_month(month_start(max(newest, now)))
        # A validated CHECK proves the range, so ATTACH does not scan again.
        conn.exec_driver_sql(
            f"ALTER TABLE {LEGACY} ADD CONSTRAINT ledger_legacy_range CHECK (created_at < '{upper.isoformat()}')"
        )
        conn.exec_driver_sql(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {LEGACY} FOR VALUES FROM (MINVALUE) TO ('{upper.isoformat()}')"
        )
        conn.exec_driver_sql(f"ALTER TABLE {LEGACY} DROP CONSTRAINT ledger_legacy_range")
    conn.exec_driver_sql(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {PARENT} DEFAULT")
    conn.exec_driver_sql(
        f"ALTER TABLE {DEFAULT_PARTITION} ADD CONSTRAINT {DEFAULT_PARTITION}_id_key UNIQUE (id)"
    )
    ensure_partitions(conn, now)
    _create_rollup(conn)
    if newest is not None:
        rebuild_rollup(conn)


# ---------------------------------------------------------------------- retention


def apply_retention(conn: Connection, retention_days: float, now: datetime) -> list[str]:
    """Drop what is older than `retention_days`; returns the partitions dropped.

    Postgres: whole partitions whose upper bound is at or before the cutoff, the DEFAULT
    partition's rows before the newest such bound, and the rollup's hours before it.
    SQLite: rows older than the cutoff.
    """
    cutoff = now - timedelta(days=retention_days)
    if conn.dialect.name != "postgresql" or not is_partitioned(conn):
        from llmops.governance.ledger_models import LEDGER_TABLE

        conn.execute(delete(LEDGER_TABLE).where(LEDGER_TABLE.c.created_at < cutoff))
        return []
    dropped = []
    boundary: datetime | None = None
    for name, _lower, upper in partitions(conn):
        if upper is not None and upper <= cutoff:
            conn.exec_driver_sql(f'DROP TABLE "{name}"')
            dropped.append(name)
            boundary = upper
    if boundary is not None:
        conn.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE created_at < :b"), {"b": boundary})
        conn.execute(
            text(f"DELETE FROM {ROLLUP} WHERE bucket < :b"),
            {"b": boundary.astimezone(UTC).replace(tzinfo=None)},
        )
    return dropped


def maintain(
    engine: Engine, retention_days: float | None, now: datetime | None = None
) -> dict[str, list[str]]:
    """Make the coming months' partitions and apply retention; one replica at a time.

    Returns {"created": [...], "dropped": [...]}; both empty when another process holds
    the maintenance lock (it is doing the same work).
    """
    now = now or datetime.now(UTC)
    result: dict[str, list[str]] = {"created": [], "dropped": []}
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            if not conn.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": MAINTENANCE_LOCK}
            ).scalar():
                return result
            # DDL waits for the parent's lock behind long readers: give up and retry later
            # rather than queue every writer behind this.
            conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            if is_partitioned(conn):
                result["created"] = ensure_partitions(conn, now)
        if retention_days is not None:
            result["dropped"] = apply_retention(conn, retention_days, now)
    return result


class Maintenance:
    """`maintain` at start and then every `interval` seconds, on a daemon thread."""

    def __init__(
        self, engine_for: Callable[[], Engine], retention_days: float | None, interval: float = 3600.0
    ):
        self._engine_for = engine_for
        self._retention_days = retention_days
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llmops-ledger-maintenance", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                done = maintain(self._engine_for(), self._retention_days)
                if done["created"] or done["dropped"]:
                    log.info("ledger maintenance: created %s, dropped %s", done["created"], done["dropped"])
            except Exception as exc:  # the database is down or busy: try again next time
                log.warning("ledger maintenance failed: %s", type(exc).__name__)
            self._stop.wait(self._interval)
