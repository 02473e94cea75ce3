"""The gateway when its database goes away or stops answering (issue 19): keys seen
recently keep working for `limits.key_grace`, nothing waits longer than
`limits.database_timeout`, and ledger rows are kept. Real `llmops serve`, real Postgres,
behind a TCP proxy the test freezes and closes."""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from llmops.governance.keys import KeyStore
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_proc import free_port, run_gateway
from tests.support.tcp_proxy import ProxyServer
from tests.test_hardening import redis_prefix  # noqa: F401  (a fixture)

MSG = [{"role": "user", "content": "hi"}]
MASTER = "sk-master-db-outage-test"


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def _call(gw, token: str) -> tuple[int, float, str]:
    start = time.monotonic()
    r = httpx.post(gw.base_url + "/chat/completions", json={"model": "plain", "messages": MSG},
                   headers={"authorization": f"Bearer {token}"}, timeout=30)
    return r.status_code, time.monotonic() - start, r.text


def _served_rows(url: str, key_ids: tuple[str, ...]) -> int:
    import psycopg

    # The session's database is shared with other tests: count this test's keys' rows only.
    with psycopg.connect(url, connect_timeout=3) as conn:
        return conn.execute("SELECT count(*) FROM ledger WHERE status = 200 AND key_id = ANY(%s)",
                            (list(key_ids),)).fetchone()[0]


@pytest.mark.postgres
def test_keys_seen_recently_keep_working_while_the_database_is_frozen_or_down(postgres_database_url, tmp_path):
    store = KeyStore(postgres_database_url)
    seen, seen_info = store.create(name="seen", budget=5.0)
    unseen, unseen_info = store.create(name="unseen")
    ids = (seen_info.id, unseen_info.id)
    port = urlsplit(postgres_database_url).port or 5432
    proxy = ProxyServer(port).start()
    upstream = FakeUpstream(free_port()).start()
    config = {
        "auth": "keys",
        "models": [{"name": "plain", "deployments": [
            {"provider": "openai", "model": "ok", "api_base": upstream.base_url, "api_key": "k"}]}],
        "guardrails": {"input": [], "output": []},
        "limits": {"database_timeout": 1.0, "key_grace": 120},
    }
    env = {"LLMOPS_DATABASE_URL": _via(postgres_database_url, proxy.port), "LLMOPS_MASTER_KEY": MASTER}
    try:
        with run_gateway(config, tmp_path, env=env) as gw:
            first = _call(gw, seen)
            assert first[0] == 200, first  # read once, budget spend loaded
            time.sleep(5.5)  # past the key cache's 5 s: the next call must ask the database

            proxy.freeze()  # Postgres stops answering; connections stay open
            frozen = [_call(gw, seen) for _ in range(5)]
            assert [s for s, _, _ in frozen] == [200] * 5, frozen
            assert max(t for _, t, _ in frozen) < 3.0, frozen  # not the 12 s of a hung read
            status, took, text = _call(gw, unseen)
            assert status == 503 and took < 3.0, (status, took, text)
            assert "database" in text and "127.0.0.1" not in text

            proxy.refuse()  # Postgres down: connections reset and refused
            down = [_call(gw, seen) for _ in range(5)]
            assert [s for s, _, _ in down] == [200] * 5, down
            assert max(t for _, t, _ in down) < 3.0, down
            status, took, _ = _call(gw, unseen)
            assert status == 503 and took < 3.0

            proxy.restore()
            deadline = time.monotonic() + 15
            while _call(gw, unseen)[0] != 200:
                assert time.monotonic() < deadline, "the database came back, the key did not"
                time.sleep(0.5)
            # Every call served meanwhile has its ledger row (spilled or journaled, then replayed).
            deadline = time.monotonic() + 20
            while _served_rows(postgres_database_url, ids) < 12 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _served_rows(postgres_database_url, ids) == 12
    finally:
        proxy.stop()
        upstream.stop()


@pytest.mark.parametrize("fail_open", [False, True])
@pytest.mark.parametrize("store", ["local", pytest.param("redis", marks=pytest.mark.redis)])
def test_budgets_follow_fail_open_while_the_database_is_down(tmp_path, fail_open, store, request):
    import asyncio

    from llmops.governance.limits import LimiterUnavailable, make_limiter
    from tests.test_limits import REDIS_URL, key

    redis_url, prefix = None, "llmops:"
    if store == "redis":
        prefix = request.getfixturevalue("redis_prefix")
        redis_url = REDIS_URL
    dead = ProxyServer(free_port())  # listening, forwarding to nothing: connections reset
    dead.refuse()
    dead.start()
    url = f"postgresql://nobody@127.0.0.1:{dead.port}/none"

    async def scenario():
        limiter = make_limiter(redis_url, {"budgets": fail_open}, database_url=url, database_timeout=1.0,
                               redis_prefix=prefix)
        info = key(budget=1.0)
        try:
            start = time.monotonic()
            try:
                res = await limiter.admit(info, estimated_tokens=10, max_cost=0.01)
            except LimiterUnavailable as exc:
                return "503", time.monotonic() - start, str(exc)
            await limiter.settle(res, 10, 0.01)
            assert limiter._pending  # the spend waits for the database
            return ("degraded" if res.degraded else "checked"), time.monotonic() - start, ""
        finally:
            limiter._pending.clear()  # nowhere to flush it to
            await limiter.aclose()

    try:
        outcome, took, message = asyncio.run(scenario())
    finally:
        dead.stop()
    assert outcome == ("degraded" if fail_open else "503"), (outcome, message)
    assert took < 5


@pytest.mark.postgres
def test_the_ledger_spills_while_the_database_is_frozen(postgres_database_url, tmp_path):
    import uuid

    import psycopg

    from llmops.governance.ledger import STALL_SECONDS, LedgerWriter

    run = f"t{uuid.uuid4().hex[:8]}-"  # the session's database is shared: this test's rows
    port = urlsplit(postgres_database_url).port or 5432
    proxy = ProxyServer(port).start()
    writer = LedgerWriter(_via(postgres_database_url, proxy.port), spill_dir=tmp_path / "spill", flush_interval=0.05)
    writer.start()
    try:
        for i in range(10):
            writer.record({"id": f"{run}before-{i}", "model": "m", "status": 200})
        assert writer.flush(10) and writer.stats()["written"] == 10
        proxy.freeze()
        for i in range(100):
            writer.record({"id": f"{run}held-{i}", "model": "m", "status": 200})
        time.sleep(STALL_SECONDS + 0.5)  # the writer is inside an INSERT that gets no answer
        for i in range(500):
            writer.record({"id": f"{run}frozen-{i}", "model": "m", "status": 200})
        assert writer.stats()["spilled"] >= 400  # to disk, not piling up in memory
        assert writer.stats()["queued"] < 200
        proxy.refuse()  # the connection breaks: the held batch is spilled too
        time.sleep(0.5)
        proxy.restore()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with psycopg.connect(postgres_database_url) as conn:
                stored = conn.execute("SELECT count(*) FROM ledger WHERE id LIKE %s", (run + "%",)).fetchone()[0]
            if stored == 610:
                break
            time.sleep(0.3)
        assert stored == 610
    finally:
        writer.close()
        proxy.stop()
