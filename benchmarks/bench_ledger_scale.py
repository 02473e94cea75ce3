"""The ledger at scale on Postgres: insert rate with several writer processes, then
`llmops spend` / GET /admin/spend query times on N million rows, then retention.

    python benchmarks/bench_ledger_scale.py [--rows 10000000] [--writers 3] [--writer-rows 100000]
                                            [--days 90] [--repeat 20] [--keep]

1. Insert rate: `--writers` processes, each a gateway's real `LedgerWriter` (journal
   on, batch 1000, the partitioned table and its rollup trigger) fed `--writer-rows`
   rows as fast as `record()` takes them; the clock runs from the first row to the
   last commit of the slowest writer.
2. `--rows` rows over the last `--days` days go in with COPY (chunks of 500,000: the
   rollup trigger adds each COPY's rows), keys, users and models skewed like real
   traffic (a few keys make most calls).
3. `spend_report` (what both `llmops spend` and GET /admin/spend run) for every
   grouping, for all time and for --since 24h / 7d / 30d: p50 and p95 of `--repeat`
   runs each; one `llmops spend` typed as a subprocess, start-up included; and the
   same query without the rollup (a scan of the ledger) for comparison.
4. Retention: `maintain()` with a retention that drops the oldest partitions.

Runs in a scratch database on LLMOPS_BENCH_POSTGRES_URL's server (default: the local
one), dropped afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ADMIN_URL = os.environ.get("LLMOPS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MODELS = [
    "gpt-4o-mini",
    "gpt-4o",
    "claude-sonnet",
    "claude-haiku",
    "gemini-flash",
    "local",
    "demo",
    "o3-mini",
    "text-embedding-3-small",
    "llama-70b",
    "mistral-large",
    "qwen-32b",
]
PROMPTS = [None] * 5 + [f"prompt-{i}" for i in range(40)]
COLUMNS = (
    "id",
    "created_at",
    "key_id",
    "key_name",
    "user",
    "team",
    "model",
    "deployment",
    "provider",
    "upstream_model",
    "prompt_name",
    "prompt_version",
    "experiment",
    "variant",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "usage_source",
    "cost",
    "latency_ms",
    "ttft_ms",
    "status",
    "outcome",
    "error_type",
    "guardrail_verdicts",
    "streamed",
    "endpoint",
    "upstream_request_id",
)


def _url_for(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def _row(i: int, prefix: str, created: datetime) -> dict:
    key = min(int(random.paretovariate(1.2)), 500)
    model = MODELS[min(int(random.paretovariate(1.5)) - 1, len(MODELS) - 1)]
    tokens_in, tokens_out = random.randint(50, 4000), random.randint(10, 800)
    experiment = "tone" if i % 10 == 0 else None
    return {
        "id": f"{prefix}-{i:09d}",
        "created_at": created,
        "key_id": f"key_{key:04d}",
        "key_name": f"service-{key}",
        "user": f"user-{key * 4 + i % 4}",
        "team": f"team-{key % 20}",
        "model": model,
        "deployment": f"openai/{model}",
        "provider": "openai",
        "upstream_model": model,
        "prompt_name": PROMPTS[i % len(PROMPTS)],
        "prompt_version": 3,
        "experiment": experiment,
        "variant": ("a" if i % 20 == 0 else "b") if experiment else None,
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "cached_tokens": 0,
        "usage_source": "reported",
        "cost": None if model == "local" else (tokens_in * 0.15 + tokens_out * 0.6) / 1e6,
        "latency_ms": 400.0 + i % 900,
        "ttft_ms": 120.0,
        "status": 200 if i % 50 else 502,
        "outcome": "success" if i % 50 else "upstream_error",
        "error_type": None,
        "guardrail_verdicts": None,
        "streamed": i % 2 == 0,
        "endpoint": "/v1/chat/completions",
        "upstream_request_id": None,
    }


# ------------------------------------------------------------------ insert rate


def _writer_process(url: str, rows: int, spill_dir: str, start_at: float, done) -> None:
    from llmops.governance.ledger import LedgerWriter

    writer = LedgerWriter(url, spill_dir=spill_dir).start()
    prefix = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    batch = [_row(i, prefix, now) for i in range(rows)]
    while time.time() < start_at:
        time.sleep(0.001)
    began, cpu = time.time(), time.process_time()
    for row in batch:
        writer.record(row)
    writer.close(timeout=600)
    done.put((began, time.time(), writer.stats(), time.process_time() - cpu))


def _backend_cpu(database: str, seen: dict[int, float]) -> None:
    """CPU seconds so far of each Postgres backend connected to `database` (from /proc),
    the last reading kept for backends that have gone."""
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        pids = [
            r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))
        ]
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # another machine's server, or the backend just ended
        seen[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def insert_rate(url: str, writers: int, rows_each: int) -> None:
    from llmops.db import get_engine

    get_engine(url)  # migrate once, before the writers start
    context = multiprocessing.get_context("spawn")
    done = context.Queue()
    start_at = time.time() + 8.0  # every writer has built its rows and connected by then
    with tempfile.TemporaryDirectory() as spill:
        procs = [
            context.Process(target=_writer_process, args=(url, rows_each, f"{spill}/{n}", start_at, done))
            for n in range(writers)
        ]
        for proc in procs:
            proc.start()
        database = url.rsplit("/", 1)[1]
        while time.time() < start_at - 0.5:
            time.sleep(0.1)
        before: dict[int, float] = {}
        _backend_cpu(database, before)
        after = dict(before)
        results = []
        while len(results) < len(procs):
            _backend_cpu(database, after)
            try:
                results.append(done.get(timeout=0.5))
            except Exception:  # queue.Empty: still writing
                continue
        for proc in procs:
            proc.join()
    first = min(r[0] for r in results)
    last = max(r[1] for r in results)
    written = sum(r[2]["written"] for r in results)
    spilled = sum(r[2]["spilled"] for r in results)
    writer_cpu = sum(r[3] for r in results)
    server_cpu = sum(after[pid] - before.get(pid, 0.0) for pid in after)
    print(
        f"insert: {writers} writer processes, {written:,} rows written ({spilled} spilled) "
        f"in {last - first:.2f} s: {written / (last - first):,.0f} rows/s (load average {os.getloadavg()[0]:.1f})"
    )
    per_row = (writer_cpu + server_cpu) / max(written, 1)
    print(
        f"  CPU per 1,000 rows: {writer_cpu / written * 1000 * 1000:.0f} ms in the writers (record, normalize, "
        f"journal, send), {server_cpu / written * 1000 * 1000:.0f} ms in Postgres' backends; "
        f"{1 / per_row:,.0f} rows/s per core of both"
    )


# ------------------------------------------------------------------------ COPY


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def load(url: str, rows: int, days: int, chunk: int = 500_000) -> None:
    import psycopg

    from llmops.db import get_engine
    from llmops.governance.ledger_storage import ensure_partitions

    now = datetime.now(UTC)
    span = days * 86400.0
    with get_engine(url).begin() as conn:  # the months the gateway would have made as they came
        ensure_partitions(conn, now, first=now - timedelta(days=days))
    started = time.perf_counter()
    names = ", ".join(f'"{c}"' for c in COLUMNS)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")
        # Every column but the id and the time from one of 50,000 generated rows: Python
        # would otherwise take longer to write the rows than Postgres to store them.
        tails = []
        for i in range(50_000):
            row = _row(i, "", now)
            tails.append("\t".join(_copy_text(row[c]) for c in COLUMNS[2:]))
        for begin in range(0, rows, chunk):
            end = min(rows, begin + chunk)
            buffer = io.StringIO()
            write = buffer.write
            for i in range(begin, end):
                # Evenly spread, oldest first, as a ledger fills.
                created = now - timedelta(seconds=span * (1 - i / rows))
                write(f"copy-{i:09d}\t{created.isoformat()}\t{tails[(i * 7919) % 50_000]}\n")
            with conn.cursor() as cur, cur.copy(f"COPY ledger ({names}) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
            print(f"  copied {end:,} rows ({time.perf_counter() - started:.0f} s)", flush=True)
        conn.execute("ANALYZE ledger")
        conn.execute("ANALYZE ledger_rollup")
        size = conn.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits "
            "WHERE inhparent = 'ledger'::regclass"
        ).fetchone()
        rollup = conn.execute(
            "SELECT count(*), pg_size_pretty(pg_total_relation_size('ledger_rollup')) FROM ledger_rollup"
        ).fetchone()
        per_dimension = conn.execute(
            "SELECT dimension, count(*) FROM ledger_rollup GROUP BY 1 ORDER BY 1"
        ).fetchall()
    elapsed = time.perf_counter() - started
    print(
        f"load: {rows:,} rows by COPY in {elapsed:.0f} s ({rows / elapsed:,.0f} rows/s); ledger {size[0]}, "
        f"rollup {rollup[0]:,} rows ({rollup[1]}): " + ", ".join(f"{d} {n:,}" for d, n in per_dimension)
    )


# ------------------------------------------------------------------------ queries


def _timed(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]


def queries(url: str, repeat: int) -> None:
    from sqlalchemy import text

    from llmops.db import get_engine
    from llmops.governance.spend import GROUPINGS, _group_columns, _ledger_rows, spend_report

    spans = {"all": None, "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
    worst = 0.0
    print(f"spend_report (llmops spend, GET /admin/spend), {repeat} runs each: p50 / p95 in ms")
    for by in GROUPINGS:
        cells = []
        for label, since in spans.items():
            p50, p95 = _timed(lambda by=by, since=since: spend_report(url, by=by, since=since), repeat)
            worst = max(worst, p95)
            cells.append(f"{label} {p50 * 1000:.0f}/{p95 * 1000:.0f}")
        print(f"  by {by:<8} " + "  ".join(cells))
    print(f"  worst p95: {worst * 1000:.0f} ms")
    engine = get_engine(url)
    group_by, label_col, extras = _group_columns("model")
    with engine.connect() as conn:
        conn.execute(text("SET statement_timeout = 0"))
        p50, _ = _timed(lambda: _ledger_rows(conn, group_by, label_col, extras, None, None), 3)
    print(f"  without the rollup (a scan of the ledger, by model, all time): {p50 * 1000:,.0f} ms")
    env = {**os.environ, "LLMOPS_DATABASE_URL": url}
    llmops = str(Path(sys.executable).with_name("llmops"))
    times = []
    for _ in range(5):
        began = time.perf_counter()
        subprocess.run(
            [llmops, "spend", "--by", "key", "--since", "7d"], env=env, check=True, stdout=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - began)
    print(
        f"  `llmops spend --by key --since 7d` as a subprocess (start-up included): "
        f"median {statistics.median(times) * 1000:.0f} ms"
    )
    admin_spend(url, repeat)


def admin_spend(url: str, repeat: int) -> None:
    """GET /admin/spend through a real `llmops serve` on this database, with the master key."""
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    master = "sk-bench-" + uuid.uuid4().hex
    env = {**os.environ, "LLMOPS_DATABASE_URL": url, "LLMOPS_MASTER_KEY": master}
    llmops = str(Path(sys.executable).with_name("llmops"))
    with tempfile.TemporaryDirectory() as spill:
        env["LLMOPS_SPILL_DIR"] = spill
        server = subprocess.Popen(
            [llmops, "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            headers = {"Authorization": f"Bearer {master}"}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                for query in ("by=model", "by=key&since=7d", "by=user&since=30d", "by=variant"):

                    def get(query=query):
                        response = client.get(f"/admin/spend?{query}")
                        response.raise_for_status()

                    p50, p95 = _timed(get, repeat)
                    print(f"  GET /admin/spend?{query}: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
        finally:
            server.terminate()
            server.wait(timeout=60)


def retention(url: str, days: int) -> None:
    from llmops.db import get_engine
    from llmops.governance.ledger_storage import maintain

    keep = max(1, days - 45)
    began = time.perf_counter()
    result = maintain(get_engine(url), retention_days=keep)
    print(
        f"retention {keep} days: dropped {result['dropped']} in {(time.perf_counter() - began) * 1000:.0f} ms"
    )


def clickhouse_trial(rows: int, repeat: int) -> None:
    """The same reports from ClickHouse (chdb, the engine in-process) over `rows` rows: is a
    ClickHouse sink for the ledger worth it? Needs `pip install chdb`; no Postgres."""
    import json

    import chdb.session

    session = chdb.session.Session()
    session.query("CREATE DATABASE IF NOT EXISTS bench")
    session.query(
        "CREATE TABLE bench.ledger (id String, created_at DateTime64(6, 'UTC'), key_id Nullable(String), "
        "key_name Nullable(String), user Nullable(String), team Nullable(String), model LowCardinality(String), "
        "prompt_name Nullable(String), experiment Nullable(String), variant Nullable(String), "
        "input_tokens UInt32, output_tokens UInt32, cost Nullable(Float64), outcome LowCardinality(String)) "
        "ENGINE = MergeTree PARTITION BY toYYYYMM(created_at) ORDER BY (created_at, id)"
    )
    began = time.perf_counter()
    # Generated in the engine, with the shape of _row's: skewed keys, 12 models, 1 in 50 failing.
    session.query(
        f"INSERT INTO bench.ledger SELECT concat('ch-', toString(number)), "
        f"now64(6) - toIntervalSecond(90 * 86400 * (1 - number / {rows})), "
        "concat('key_', toString(least(toUInt32(1 / pow(1 - randCanonical(), 1 / 1.2)), 500))), "
        "'service', concat('user-', toString(number % 2000)), concat('team-', toString(number % 20)), "
        "concat('model-', toString(least(toUInt32(1 / pow(1 - randCanonical(), 1 / 1.5)) - 1, 11))), "
        "if(number % 9 < 5, NULL, concat('prompt-', toString(number % 40))), "
        "if(number % 10 = 0, 'tone', NULL), if(number % 10 = 0, if(number % 20 = 0, 'a', 'b'), NULL), "
        "50 + number % 3950, 10 + number % 790, if(number % 12 = 5, NULL, (number % 1000) * 1e-6), "
        f"if(number % 50 = 0, 'upstream_error', 'success') FROM numbers({rows})"
    )
    print(
        f"clickhouse (chdb {chdb.__version__}): {rows:,} rows generated in {time.perf_counter() - began:.1f} s"
    )
    for by, column in (("model", "model"), ("key", "key_id"), ("user", "user")):
        for label, where in (("all", ""), ("7d", "WHERE created_at >= now64(6) - toIntervalDay(7)")):
            query = (
                f"SELECT {column}, count(), countIf(outcome != 'success'), sum(input_tokens), sum(output_tokens), "
                f"sum(cost), countIf(cost IS NULL AND input_tokens + output_tokens > 0) FROM bench.ledger "
                f"{where} GROUP BY {column}"
            )
            p50, p95 = _timed(lambda query=query: session.query(query, "CSV"), repeat)
            print(f"  by {by:<5} {label:<3}: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    # Inserts as the ledger writer would send them: batches of 1,000 rows, one process.
    now = datetime.now(UTC)
    batches = []
    for b in range(50):
        batch = []
        for i in range(1000):
            row = _row(b * 1000 + i, "ins", now)
            batch.append(
                json.dumps(
                    {
                        **{
                            k: row[k]
                            for k in (
                                "id",
                                "key_id",
                                "key_name",
                                "user",
                                "team",
                                "model",
                                "prompt_name",
                                "experiment",
                                "variant",
                                "input_tokens",
                                "output_tokens",
                                "cost",
                                "outcome",
                            )
                        },
                        "created_at": now.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    }
                )
            )
        batches.append("\n".join(batch))
    began = time.perf_counter()
    for batch in batches:
        session.query(f"INSERT INTO bench.ledger FORMAT JSONEachRow {batch}")
    elapsed = time.perf_counter() - began
    print(f"  inserts: 50 batches of 1,000 rows in {elapsed:.2f} s: {50_000 / elapsed:,.0f} rows/s")
    session.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--writers", type=int, default=3)
    # A writer queues at most 100,000 rows (ledger.max_queue); more go to spill files, its
    # overload path, which is not what this measures.
    parser.add_argument("--writer-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--url", help="use this existing database (loaded by an earlier --keep run)")
    parser.add_argument(
        "--clickhouse", action="store_true", help="only the ClickHouse trial (chdb, in-process; no Postgres)"
    )
    args = parser.parse_args()
    if args.clickhouse:
        clickhouse_trial(args.rows, args.repeat)
        return 0

    import psycopg

    from llmops.db import dispose_all

    name = None
    url = args.url
    if url is None:
        name = f"llmops_bench_scale_{os.getpid()}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = _url_for(name)
        print(f"scratch database {name}")
    try:
        if args.writers and args.writer_rows:
            insert_rate(url, args.writers, args.writer_rows)
        if args.rows:
            load(url, args.rows, args.days)
        queries(url, args.repeat)
        if not args.keep:
            retention(url, args.days)
    finally:
        dispose_all()
        if name is not None and not args.keep:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
