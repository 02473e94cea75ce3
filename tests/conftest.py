"""Shared fixtures: a database URL for each backend a test should run against.

`database_url` runs a test once per backend: a fresh SQLite file, and the machine's
PostgreSQL. For Postgres one uniquely named database is created per test session
(dropped at the end) and emptied before each test, so every test starts from an
empty, fully migrated schema on both backends.

LLMOPS_TEST_BACKENDS=sqlite | postgres | sqlite,postgres chooses (default: both).
LLMOPS_TEST_POSTGRES_URL overrides the server's maintenance database URL.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "LLMOPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
KNOWN_BACKENDS = ("sqlite", "postgres")


def _chosen_backends() -> list[str]:
    raw = os.environ.get("LLMOPS_TEST_BACKENDS", "sqlite,postgres")
    chosen = [b.strip() for b in raw.split(",") if b.strip()]
    unknown = [b for b in chosen if b not in KNOWN_BACKENDS]
    if unknown or not chosen:
        raise pytest.UsageError(f"LLMOPS_TEST_BACKENDS={raw!r}: use sqlite, postgres or sqlite,postgres")
    return chosen


def _backend_params() -> list:
    marks = {"postgres": [pytest.mark.postgres]}
    return [pytest.param(b, id=b, marks=marks.get(b, [])) for b in _chosen_backends()]


def _url_for(database: str) -> str:
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A new, empty database on the machine's PostgreSQL, dropped afterwards; the test is
    skipped when the server is unreachable."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {str(exc).strip().splitlines()[0]}")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _url_for(name)
    finally:
        from llmops.db import dispose_all

        dispose_all()  # our pooled connections would block the drop
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A fresh database for this test session, emptied before each test by `database_url`."""
    with scratch_postgres("llmops_test") as url:
        yield url


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A new database of this test's own, never migrated: for tests of the schema itself."""
    with scratch_postgres("llmops_test_fresh") as url:
        yield url


def _empty_postgres(url: str) -> None:
    """Delete every row of every table but the migration record, so each test starts empty."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'llmops_migrations'"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture(params=_backend_params())
def database_url(request, tmp_path) -> str:
    """A database URL with an empty registry: a temp SQLite file, or this session's Postgres database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'llmops.db'}"
    url = request.getfixturevalue("postgres_database_url")
    _empty_postgres(url)
    return url


# One real vLLM server for the whole session, shared by every test that asks for it.
from tests.support.vllm_server import vllm_server  # noqa: E402,F401


def pytest_collection_modifyitems(config, items):
    # The vLLM server lives from its first test to the end of the session and keeps a
    # core busy: run its tests last, so the timing-sensitive tests before them have the
    # machine to themselves.
    items.sort(key=lambda item: item.get_closest_marker("vllm") is not None)
