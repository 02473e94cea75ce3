"""SIGTERM drains a gateway: not ready, connections closed after each response, then
no new connections, the calls in progress finish, the ledger is flushed, the process
exits. Real `llmops serve` processes; the mock provider's latency keeps calls in flight."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import httpx
import pytest

from tests.support.gateway_proc import run_gateway

CONFIG = {"models": [{"name": "slow", "deployments": [{"provider": "mock", "model": "slow",
                                                        "options": {"latency_ms": 2500}}]}]}
CALL = {"model": "slow", "messages": [{"role": "user", "content": "Hello."}]}


def _calls_in_flight(url: str, n: int) -> tuple[list[threading.Thread], list]:
    """`n` calls sent from threads; returns once each has its connection open."""
    results: list = []
    clients = [httpx.Client(base_url=url, timeout=20) for _ in range(n)]
    for client in clients:
        client.get("/health/live")  # connected: the call below reuses the connection

    def call(client: httpx.Client) -> None:
        try:
            r = client.post("/v1/chat/completions", json=CALL)
            results.append((r.status_code, r.headers.get("x-llmops-request-id")))
        except httpx.HTTPError as exc:
            results.append((repr(exc), None))
        finally:
            client.close()

    threads = [threading.Thread(target=call, args=(client,)) for client in clients]
    for t in threads:
        t.start()
    return threads, results


def _ledger_ids(tmp_path) -> set[str]:
    with sqlite3.connect(tmp_path / "llmops.db") as db:
        return {row[0] for row in db.execute("SELECT id FROM ledger")}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_then_finishes_calls_in_progress_and_flushes_the_ledger(tmp_path, workers):
    with run_gateway(CONFIG, tmp_path, workers=workers, args=("--drain-seconds", "1.5")) as gw:
        with httpx.Client(base_url=gw.url, timeout=10) as kept_alive:
            assert kept_alive.get("/health/ready").status_code == 200  # a keep-alive connection, open before
            threads, results = _calls_in_flight(gw.url, 6)
            time.sleep(1.0)  # the calls are in the upstream phase (2.5 s)
            gw.proc.send_signal(signal.SIGTERM)
            time.sleep(0.8)  # uvicorn's supervisor passes SIGTERM on to its workers within 0.5 s
            # Draining: still served, but not ready, and the connection is closed after the answer.
            ready = kept_alive.get("/health/ready")
            assert ready.status_code == 503 and ready.json()["status"] == "draining"
            assert ready.headers["connection"] == "close"
            assert httpx.get(gw.url + "/health/live", timeout=5).status_code == 200
            during = httpx.post(gw.url + "/v1/chat/completions", json=CALL, timeout=20)
            assert during.status_code == 200 and during.headers["connection"] == "close"
        time.sleep(1.5)  # the drain period is over: no new connections
        with pytest.raises(httpx.ConnectError):
            httpx.get(gw.url + "/health/live", timeout=2)
        for t in threads:
            t.join(20)
        assert gw.proc.wait(20) is not None  # exited
    assert [status for status, _ in results] == [200] * 6, results
    served = {rid for _, rid in results} | {during.headers["x-llmops-request-id"]}
    assert served <= _ledger_ids(tmp_path)  # flushed before exit


def test_without_a_drain_period_sigterm_stops_accepting_at_once_and_finishes_calls(tmp_path):
    with run_gateway(CONFIG, tmp_path) as gw:
        threads, results = _calls_in_flight(gw.url, 4)
        time.sleep(1.0)
        gw.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.ConnectError):
            httpx.get(gw.url + "/health/live", timeout=2)
        for t in threads:
            t.join(20)
        gw.proc.wait(20)
    assert [status for status, _ in results] == [200] * 4, results
    assert {rid for _, rid in results} <= _ledger_ids(tmp_path)
