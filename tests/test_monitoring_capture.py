"""Payload capture through a real gateway: off stores nothing; on, a sampled share of
calls keeps redacted text (a secret in the request and in the reply never reaches the
table), linked to its ledger row; retention and the size cap prune on schedule."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import openai
import pytest
from sqlalchemy import func, select

from llmops.monitoring.capture import PayloadCapture, prune_payloads
from llmops.monitoring.config import CaptureConfig
from llmops.monitoring.models import PAYLOADS
from tests.support.gateway_proc import REPO, ledger_row, run_gateway
from tests.test_gateway_experiments import llmops

SECRET = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEf"
REPLY = f"Here you go: {SECRET} and mail bob@example.com"


def _config(capture: dict | None) -> dict:
    config: dict = {
        "models": [
            {"name": "kept", "deployments": [{"provider": "mock", "model": "kept", "options": {"reply": REPLY}}]},
            {"name": "skipped", "deployments": [{"provider": "mock", "model": "skipped"}]},
        ],
        # The gateway's own guardrails off: capture must redact by itself.
        "guardrails": {"enabled": False, "input": [], "output": []},
    }
    if capture is not None:
        config["monitoring"] = {"capture": capture}
    return config


def _payloads(db) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM monitor_payloads")]


def _ask(client, model: str, text: str, stream: bool = False):
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model=model, messages=[{"role": "user", "content": text}], stream=True
        ) as r:
            list(r.iter_lines())
            return r.headers["x-llmops-request-id"]
    r = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": text}])
    return r.headers["x-llmops-request-id"]


def test_capture_off_by_default_stores_nothing(tmp_path):
    with run_gateway(_config(None), tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        rid = _ask(client, "kept", "hello")
        ledger_row(tmp_path / "llmops.db", rid)
    assert _payloads(tmp_path / "llmops.db") == []


def test_capture_on_keeps_a_sample_redacted_and_linked_to_the_ledger(tmp_path):
    capture = {
        "enabled": True,
        "sample": 0,
        "rules": [{"model": "kept", "sample": 1.0}],
        "flush_interval": 0.1,
        "max_chars": 60,
    }
    with run_gateway(_config(capture), tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        asked = f"my key is {SECRET}, call me at +1 415 555 0100 " + "x" * 40
        kept = [_ask(client, "kept", asked), _ask(client, "kept", asked, stream=True)]
        skipped = [_ask(client, "skipped", "nothing to see") for _ in range(5)]
        for rid in kept + skipped:
            ledger_row(tmp_path / "llmops.db", rid)
        deadline = time.monotonic() + 10
        while len(_payloads(tmp_path / "llmops.db")) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    rows = {r["id"]: r for r in _payloads(tmp_path / "llmops.db")}
    assert set(rows) == set(kept)  # the rule's share: all of "kept", none of "skipped"
    for row in rows.values():
        stored = row["request_text"] + row["response_text"]
        assert SECRET not in stored and "AbCdEfGh" not in stored
        assert "[OPENAI_KEY]" in row["response_text"] and "bob@example.com" not in row["response_text"]
        assert "555" not in row["request_text"]  # the phone number: personal data, redacted too
        assert row["request_text"].startswith("user: my key is [OPENAI_KEY]")
        assert len(row["request_text"]) <= 60 and row["truncated"]
        assert row["model"] == "kept"
        expires = datetime.fromisoformat(row["expires_at"]) - datetime.fromisoformat(row["created_at"])
        assert expires == timedelta(days=7)


def test_capture_keeps_the_prompt_version_and_its_context(tmp_path):
    env = {**os.environ, "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path}/llmops.db"}
    llmops("prompts", "sync", str(REPO / "prompts"), env=env)
    capture = {"enabled": True, "sample": 1.0, "flush_interval": 0.1, "context_variable": "text"}
    with run_gateway(_config(capture), tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        r = client.chat.completions.with_raw_response.create(
            model="skipped", messages=[],
            extra_body={"prompt": {"name": "summarize", "version": 2, "variables": {"text": "Rates rose 2% in May."}}},
        )
        rid = r.headers["x-llmops-request-id"]
        deadline = time.monotonic() + 10
        while not _payloads(tmp_path / "llmops.db") and time.monotonic() < deadline:
            time.sleep(0.1)
    (row,) = _payloads(tmp_path / "llmops.db")
    assert (row["id"], row["prompt_name"], row["prompt_version"]) == (rid, "summarize", 2)
    assert row["context"] == "Rates rose 2% in May."
    assert "Rates rose 2% in May." in row["response_text"]


class _Call:
    endpoint = "/v1/chat/completions"
    prompt_name = prompt_version = variant = prompt_variables = None

    def __init__(self, rid: str, created: datetime, model: str = "m"):
        self.id, self.created_at, self.model = rid, created, model


def test_retention_and_size_cap_prune_oldest_first(database_url):
    from llmops.db import get_engine

    now = datetime.now(UTC)
    cap = PayloadCapture(CaptureConfig(enabled=True, sample=1, retention_days=2), database_url)
    body = {"messages": [{"role": "user", "content": "q" * 30}]}
    for i in range(6):  # one a day, the oldest 5 days and an hour ago
        cap.keep(_Call(f"req-{i}", now - timedelta(days=5 - i, hours=1)), body, ["a" * 30])
    assert cap.flush() == 6
    engine = get_engine(database_url)

    def left() -> list[str]:
        with engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(select(PAYLOADS.c.id)))

    assert cap.prune(now=now) == 4  # older than two days
    assert left() == ["req-4", "req-5"]
    # Each row holds 66 characters ("user: " + 30, and 30): a cap of 100 keeps the newest.
    assert prune_payloads(engine, max_chars_total=100, now=now) == 1
    assert left() == ["req-5"]
    with engine.connect() as conn:
        assert conn.execute(select(func.sum(PAYLOADS.c.chars))).scalar_one() == 66


@pytest.mark.parametrize("value", ["0s", "-1h", "soon"])
def test_bad_spans_are_refused_with_the_field_named(value):
    from llmops.errors import InvalidInput
    from llmops.gateway.config import parse_config

    with pytest.raises(InvalidInput, match="monitoring.drift.recent"):
        parse_config({"monitoring": {"drift": {"recent": value}}})


def test_a_webhook_that_is_not_http_is_refused_without_echoing_it():
    from llmops.errors import InvalidInput
    from llmops.gateway.config import parse_config

    with pytest.raises(InvalidInput, match="monitoring.alerts.webhook: must be an http") as exc:
        parse_config({"monitoring": {"alerts": {"webhook": "hooks.example/T0KEN"}}})
    assert "T0KEN" not in exc.value.message
