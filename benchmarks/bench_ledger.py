"""The ledger writer's speed: the cost of `record()` on the hot path, and the sustained
write rate into SQLite and Postgres (target: >= 20,000 rows/s, batched).

    python benchmarks/bench_ledger.py [--rows 100000] [--backends sqlite,postgres]

Write rate: N rows are queued while the writer is stopped, then the writer starts and
the clock runs until every row is committed (normalization + executemany + commit,
batch_size 1000): the most the writer sustains. Postgres runs in a scratch database
created on LLMOPS_BENCH_POSTGRES_URL's server (default: the local one) and dropped after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from llmops.governance.ledger import LedgerWriter

ADMIN_URL = os.environ.get("LLMOPS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def make_row(i: int, prefix: str) -> dict:
    """A realistic row, as the gateway builds it for a successful chat call."""
    return {
        "id": f"{prefix}-{i:08d}",
        "created_at": datetime.now(UTC),
        "key_id": "key_3f9a",
        "key_name": "checkout-service",
        "user": f"user-{i % 500}",
        "team": "payments",
        "model": "gpt-4o-mini",
        "deployment": "openai/gpt-4o-mini@https://api.openai.com/v1",
        "provider": "openai",
        "upstream_model": "gpt-4o-mini-2024-07-18",
        "prompt_name": "support-reply",
        "prompt_version": 7,
        "experiment": "tone",
        "variant": "b",
        "input_tokens": 812,
        "output_tokens": 164,
        "cached_tokens": 512,
        "usage_source": "reported",
        "cost": 0.00021,
        "latency_ms": 934.25,
        "ttft_ms": 212.5,
        "status": 200,
        "outcome": "success",
        "error_type": None,
        "guardrail_verdicts": [{"check": "pii", "action": "pass"}, {"check": "toxicity", "action": "pass"}],
        "streamed": True,
        "endpoint": "/v1/chat/completions",
    }


class _Empty:
    def record(self, row: dict) -> None:
        pass


def bench_empty_call(calls: int) -> float:
    """ns per call of a method that does nothing, on the same rows: this machine's yardstick."""
    rows = [make_row(i, "empty") for i in range(calls)]
    record = _Empty().record
    start = time.perf_counter_ns()
    for row in rows:
        record(row)
    return (time.perf_counter_ns() - start) / calls


def bench_record_cost(calls: int, spill_dir: Path) -> float:
    """ns per record() with no writer thread competing: the call itself."""
    writer = LedgerWriter("sqlite:///:memory:", spill_dir=spill_dir, max_queue=calls + 1)
    rows = [make_row(i, "rec") for i in range(calls)]
    record = writer.record
    start = time.perf_counter_ns()
    for row in rows:
        record(row)
    elapsed = time.perf_counter_ns() - start
    return elapsed / calls


def bench_record_under_load(url: str, calls: int, spill_dir: Path) -> tuple[float, float]:
    """ns per record() (median and p99 of 1,000-call slices) while the writer thread
    inserts: what the event loop pays, GIL contention included."""
    writer = LedgerWriter(url, spill_dir=spill_dir, max_queue=calls + 1).start()
    prefix = uuid.uuid4().hex[:6]
    rows = [make_row(i, prefix) for i in range(calls)]
    record = writer.record
    slices = []
    for offset in range(0, calls, 1000):
        start = time.perf_counter_ns()
        for row in rows[offset : offset + 1000]:
            record(row)
        slices.append((time.perf_counter_ns() - start) / 1000)
        time.sleep(0.0005)  # a gateway also does other things between requests
    writer.close(timeout=120)
    slices.sort()
    return statistics.median(slices), slices[int(len(slices) * 0.99) - 1]


def bench_write_rate(url: str, rows: int, spill_dir: Path) -> tuple[float, dict]:
    writer = LedgerWriter(url, spill_dir=spill_dir, max_queue=rows + 1, batch_size=1000)
    prefix = uuid.uuid4().hex[:6]
    for i in range(rows):
        writer.record(make_row(i, prefix))
    # Connect and create the table before the clock starts.
    from llmops.db import get_engine

    get_engine(url)
    start = time.perf_counter()
    writer.start()
    if not writer.flush(timeout=600):
        raise SystemExit("the writer did not drain within 10 minutes")
    elapsed = time.perf_counter() - start
    stats = writer.stats()
    writer.close()
    return rows / elapsed, stats


def postgres_scratch() -> tuple[str, Callable[[], None]] | None:
    try:
        import psycopg

        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - report and skip
        print(f"postgres: skipped ({str(exc).strip().splitlines()[0]})")
        return None
    name = f"llmops_bench_{os.getpid()}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rpartition("/")[0]

    def drop() -> None:
        from llmops.db import dispose_all

        dispose_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"{base}/{name}", drop


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--record-calls", type=int, default=200_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        spill = Path(tmp) / "spill"
        ns = bench_record_cost(args.record_calls, spill)
        empty = bench_empty_call(args.record_calls)
        print(
            f"record(): {ns:,.0f} ns per call (queue append, no writer thread running; "
            f"an empty method call costs {empty:,.0f} ns here now)"
        )

        targets: list[tuple[str, str]] = []
        cleanups = []
        if "sqlite" in backends:
            targets.append(("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}"))
        if "postgres" in backends:
            scratch = postgres_scratch()
            if scratch:
                targets.append(("postgres", scratch[0]))
                cleanups.append(scratch[1])
        try:
            for name, url in targets:
                rate, stats = bench_write_rate(url, args.rows, spill)
                assert stats["written"] == args.rows, stats
                print(f"{name}: {rate:,.0f} rows/s sustained ({args.rows:,} rows, batches of 1000)")
                median, p99 = bench_record_under_load(url, min(args.rows, 50_000), spill)
                print(
                    f"{name}: record() while the writer inserts: median {median:,.0f} ns, p99 {p99:,.0f} ns"
                )
        finally:
            for cleanup in cleanups:
                cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
