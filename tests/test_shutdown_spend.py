"""SIGTERM while Postgres is frozen (issue 19): the gateway exits within a bound, and
the budget spend it could not write is spilled to disk and written by the next start,
once, with none lost. Real `llmops serve`, real Postgres behind a TCP proxy the test
freezes."""

from __future__ import annotations

import signal
import time
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from llmops.governance.keys import KeyStore
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_proc import free_port, run_gateway
from tests.support.tcp_proxy import ProxyServer
from tests.test_hardening_database import _via

MSG = [{"role": "user", "content": "hi"}]
MASTER = "sk-master-shutdown-test"
# The fake upstream reports 21 prompt and 10 completion tokens per call.
PRICE = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
COST = 21 * 0.001 + 10 * 0.002
EXIT_BOUND = 15.0  # seconds from SIGTERM to exit, the database frozen


def _calls(gw, token: str, n: int) -> None:
    for _ in range(n):
        r = httpx.post(
            gw.base_url + "/chat/completions",
            json={"model": "plain", "messages": MSG},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert float(r.headers["x-llmops-cost"]) == pytest.approx(COST)


def _counter(url: str, key_id: str) -> float | None:
    with psycopg.connect(url, connect_timeout=3) as conn:
        row = conn.execute(
            "SELECT spend FROM gateway_spend WHERE scope = 'key' AND subject = %s", (key_id,)
        ).fetchone()
    return None if row is None else float(row[0])


@pytest.mark.postgres
def test_sigterm_with_the_database_frozen_exits_in_time_and_keeps_the_spend(postgres_database_url, tmp_path):
    store = KeyStore(postgres_database_url)
    token, info = store.create(name="shutdown", budget=100.0)
    port = urlsplit(postgres_database_url).port or 5432
    proxy = ProxyServer(port).start()
    upstream = FakeUpstream(free_port()).start()
    config = {
        "auth": "keys",
        "models": [
            {
                "name": "plain",
                "deployments": [
                    {
                        "provider": "openai",
                        "model": "ok",
                        "api_base": upstream.base_url,
                        "api_key": "k",
                        "pricing": PRICE,
                    }
                ],
            }
        ],
        "guardrails": {"input": [], "output": []},
        "limits": {"database_timeout": 1.0, "key_grace": 120, "flush_interval": 0.5},
    }
    env = {
        "LLMOPS_DATABASE_URL": _via(postgres_database_url, proxy.port),
        "LLMOPS_MASTER_KEY": MASTER,
        "LLMOPS_SPILL_DIR": str(tmp_path / "spill"),
    }
    try:
        with run_gateway(config, tmp_path, env=env) as gw:
            _calls(gw, token, 3)  # flushed while the database answers
            deadline = time.monotonic() + 10
            while _counter(postgres_database_url, info.id) != pytest.approx(3 * COST):
                assert time.monotonic() < deadline, _counter(postgres_database_url, info.id)
                time.sleep(0.1)

            proxy.freeze()  # Postgres stops answering; connections stay open
            _calls(gw, token, 4)
            time.sleep(1.5)  # a flush of these four is now inside an INSERT that gets no answer
            _calls(gw, token, 2)  # and these wait behind it, in memory

            started = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
            try:
                gw.proc.wait(EXIT_BOUND)
            except Exception:
                pytest.fail(f"still running {EXIT_BOUND} s after SIGTERM:\n{gw.log()}")
            took = time.monotonic() - started
            log = gw.log()
        print(f"exit {took:.2f} s after SIGTERM")
        assert took < EXIT_BOUND, took
        lines = [line for f in (tmp_path / "spill").glob("spend-*") for line in f.read_text().splitlines()]
        assert len(lines) == 2, lines  # the batch stuck in its INSERT, and the two calls after it
        spilled = list((tmp_path / "spill").glob("spend-*"))
        assert spilled, f"no spend spill file; log:\n{log}"
        assert "spend" in log and "spilled" in log, log

        # The frozen connection's bytes reach Postgres now, before the next start.
        proxy.restore()
        time.sleep(1.0)
        assert _counter(postgres_database_url, info.id) == pytest.approx(3 * COST)

        with run_gateway(config, tmp_path, env=env) as gw:
            deadline = time.monotonic() + 15
            while _counter(postgres_database_url, info.id) != pytest.approx(9 * COST):
                assert time.monotonic() < deadline, (_counter(postgres_database_url, info.id), gw.log())
                time.sleep(0.1)
            assert not list((tmp_path / "spill").glob("spend-*"))
            # The replayed spend is what the limiter starts from, and the admin API reads.
            _calls(gw, token, 1)
            r = httpx.get(f"{gw.url}/admin/keys/{info.id}", headers={"authorization": f"Bearer {MASTER}"})
            assert r.status_code == 200, r.text
        # Once more, to be sure nothing replays twice: a third start changes nothing.
        with run_gateway(config, tmp_path, env=env):
            time.sleep(1.0)
        assert _counter(postgres_database_url, info.id) == pytest.approx(10 * COST)
    finally:
        proxy.stop()
        upstream.stop()


def test_a_spilled_batch_is_written_once_whether_or_not_its_stuck_write_committed(tmp_path):
    from llmops.governance.limits.spend import SpendBook

    url = f"sqlite:///{tmp_path}/llmops.db"
    key = ("key", "k1", "total")
    book = SpendBook(url, spill_dir=tmp_path / "spill")
    book.add({key: 1.0})
    committed = book.hold({key: 2.0})  # stuck at shutdown, yet its commit lands later
    book.hold({key: 4.0})  # stuck, and never reaches the database
    assert book.spill({key: 8.0}) == 3  # and what never left memory
    book.write(committed)
    assert SpendBook(url).spent("key", "k1", "total", time.time()) == 3.0

    later = SpendBook(url, spill_dir=tmp_path / "spill")
    assert later.replay_spilled() == 2  # the committed batch is skipped
    assert later.spent("key", "k1", "total", time.time()) == 15.0
    assert not list((tmp_path / "spill").glob("spend-*"))
    assert SpendBook(url, spill_dir=tmp_path / "spill").replay_spilled() == 0
    assert later.spent("key", "k1", "total", time.time()) == 15.0


def test_side_work_stuck_for_good_does_not_hold_up_the_exit():
    import subprocess
    import sys

    script = (
        "import asyncio, threading\n"
        "from llmops.governance.side_work import run_side_work\n"
        "async def main():\n"
        "    for awaited in (False, True):\n"
        "        try:\n"
        "            await asyncio.wait_for(run_side_work(threading.Event().wait, awaited=awaited), 0.2)\n"
        "        except asyncio.TimeoutError:\n"
        "            pass\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], timeout=30, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
