"""The ledger's verdict on streams that go wrong (issue 19): a real `llmops serve` against
a fake upstream that is a real HTTP server (tests/support/fake_upstream.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.fake_upstream import REPLY, FakeUpstream
from tests.support.gateway_proc import free_port, ledger_row, run_gateway

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream(free_port()).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    def dep(model: str, **extra) -> dict:
        return {"provider": "openai", "model": model, "api_base": upstream.base_url, "api_key": "k", **extra}

    config = {
        "models": [
            {"name": "plain", "deployments": [dep("ok", name="ok-dep")]},
            {"name": "err-first", "deployments": [dep("error-event", name="err-dep")], "fallbacks": ["plain"]},
            {"name": "err-only", "deployments": [dep("error-event")]},
            {"name": "err-mid", "deployments": [dep("error-mid-stream")]},
            {"name": "no-done", "deployments": [dep("no-done")]},
            {"name": "slow", "deployments": [dep("slow-stream", timeouts={"total": 0.8, "idle": 5, "first_byte": 5})]},
            {"name": "stall", "deployments": [dep("stall-mid-stream", timeouts={"total": 30, "idle": 0.5})]},
            {"name": "lite-slow", "deployments": [{**dep("openai/slow-stream"), "provider": "litellm",
                                                   "timeouts": {"total": 0.8, "idle": 5, "first_byte": 5}}]},
        ],
        "router": {"retries": 0, "backoff_base": 0.01, "cooldown_failures": 100},
        "guardrails": {"input": [], "output": []},
    }
    tmp = tmp_path_factory.mktemp("streams")
    with run_gateway(config, tmp) as gw:
        gw.database = tmp / "llmops.db"
        yield gw


def _row(database, request_id: str) -> dict:
    import sqlite3
    import time

    deadline = time.monotonic() + 10
    while True:
        try:
            return ledger_row(database, request_id)
        except sqlite3.OperationalError:  # the writer has not created the table yet
            assert time.monotonic() < deadline
            time.sleep(0.1)


def _stream(gw, model: str) -> tuple[int, str, dict]:
    with httpx.Client(timeout=30) as client:
        r = client.post(gw.base_url + "/chat/completions", json={"model": model, "messages": MSG, "stream": True})
        row = _row(gw.database, r.headers["x-llmops-request-id"])
        return r.status_code, r.text, row


def test_an_error_event_at_stream_start_fails_over(gateway, upstream):
    upstream.reset()
    status, text, row = _stream(gateway, "err-first")
    assert status == 200 and "quick" in text and "[DONE]" in text, text
    assert upstream.calls["error-event"] == 1 and upstream.calls["ok"] == 1
    assert (row["outcome"], row["status"], row["deployment"]) == ("success", 200, "ok-dep"), row


def test_an_error_event_at_stream_start_with_nowhere_to_go_is_an_error(gateway):
    status, text, row = _stream(gateway, "err-only")
    assert status == 502, text
    assert "error event" in text
    assert row["outcome"] == "upstream_error" and row["status"] == 502, row


def test_an_error_event_mid_stream_ends_it_as_an_error(gateway):
    status, text, row = _stream(gateway, "err-mid")
    assert status == 200  # the headers went out with the first chunk
    assert "quick" in text and '"error"' in text and "[DONE]" not in text, text
    assert row["outcome"] == "upstream_error" and row["status"] >= 500, row


def test_a_finished_stream_without_done_is_a_success(gateway):
    status, text, row = _stream(gateway, "no-done")
    assert status == 200 and text.rstrip().endswith("data: [DONE]"), text
    assert (row["outcome"], row["status"], row["error_type"]) == ("success", 200, None), row
    assert row["output_tokens"] == len(REPLY.split(" "))  # the upstream's own usage chunk


@pytest.mark.parametrize("model", ["slow", "lite-slow"])
def test_a_stream_cut_by_the_total_timeout_says_so(gateway, model):
    status, text, row = _stream(gateway, model)
    assert status == 200 and "total timeout" in text and "stalled" not in text, text
    assert row["outcome"] == "upstream_error" and row["error_type"] == "upstream_total_timeout", row


def test_a_stalled_stream_is_still_a_stall(gateway):
    status, text, row = _stream(gateway, "stall")
    assert "stalled mid-stream" in text, text
    assert row["error_type"] == "upstream_timeout", row
