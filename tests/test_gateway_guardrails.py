"""Guardrails as an operator configures them on a running gateway: per key, plug-ins
(sync and async) and the judge check, driven with the OpenAI SDK."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from llmops.governance.keys import KeyStore
from tests.support.gateway_proc import run_gateway

PLUGINS = '''
import asyncio, time

def slow_ok(text):
    time.sleep(0.5)        # a slow check must not hold up other requests
    return None

async def no_pineapple(text, options):
    await asyncio.sleep(0)
    return 1.0 if "pineapple" in text.lower() else 0.0
'''


def _demo(name: str, **extra) -> dict:
    return {"name": name, "deployments": [{"provider": "mock", "model": name, "pricing": {"cost": 0}, **extra}]}


@pytest.fixture
def plugin_env(tmp_path):
    (tmp_path / "site_checks.py").write_text(PLUGINS)
    return {"PYTHONPATH": str(tmp_path)}


def _client(gw, key: str = "none") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=20)


def _ask(client: openai.OpenAI, text: str, model: str = "demo") -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content


def test_a_keys_own_guardrails_apply_to_its_calls_only(tmp_path):
    store = KeyStore(f"sqlite:///{tmp_path / 'llmops.db'}")
    strict, _ = store.create("strict", guardrails={"checks": {"pii": {"action": "block"}}})
    relaxed, _ = store.create("relaxed")
    with run_gateway({"models": [_demo("demo")], "auth": "keys"}, tmp_path) as gw:
        text = "Write to jane.doe@example.com about it."
        assert _ask(_client(gw, relaxed), text) == text  # pii is only flagged by default
        with pytest.raises(openai.BadRequestError) as exc:
            _ask(_client(gw, strict), text)
        assert exc.value.code == "guardrail_blocked" and exc.value.param == "pii"


def test_a_keys_output_override_applies_to_whole_and_streamed_replies(tmp_path):
    # The mock echoes the prompt: with the key's input checks off, a credential reaches
    # the reply, where the key's own output check (block, not the default redact) stops it.
    store = KeyStore(f"sqlite:///{tmp_path / 'llmops.db'}")
    strict, _ = store.create("strict-output", guardrails={
        "input": [], "output": [{"check": "secrets", "action": "block"}]})
    relaxed, _ = store.create("relaxed")
    text = "Deploy with sk-proj-abcdefghijklmnopqrstuvwxyz0123456789 tonight."
    with run_gateway({"models": [_demo("demo")], "auth": "keys"}, tmp_path) as gw:
        assert _ask(_client(gw, relaxed), text) == "Deploy with [OPENAI_KEY] tonight."
        strict_client = _client(gw, strict)
        with pytest.raises(openai.BadRequestError) as exc:
            _ask(strict_client, text)
        assert exc.value.code == "guardrail_blocked" and exc.value.param == "secrets"
        stream = strict_client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": text}], stream=True)
        streamed = []
        with pytest.raises(openai.APIError) as exc:
            for chunk in stream:
                streamed.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
        assert "secrets" in str(exc.value)
        assert "sk-proj-" not in "".join(streamed)


def test_plugins_run_without_blocking_the_gateway(tmp_path, plugin_env):
    config = {
        "models": [_demo("demo")],
        "guardrails": {"input": [
            {"check": "site_checks:slow_ok", "action": "block", "timeout": 2},
            {"check": "site_checks:no_pineapple", "name": "pineapple", "action": "block"},
        ]},
    }
    with run_gateway(config, tmp_path, env=plugin_env) as gw:
        client = _client(gw)
        with pytest.raises(openai.BadRequestError) as exc:  # an async plug-in blocks
            _ask(client, "A pizza with pineapple, please.")
        assert exc.value.param == "pineapple"
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda i: _ask(client, f"Hello number {i}."), range(4)))
        took = time.monotonic() - started
        assert replies == [f"Hello number {i}." for i in range(4)]
        assert took < 1.5, f"four calls with a 0.5 s plug-in took {took:.2f}s: the plug-in ran one call at a time"


def test_the_judge_check_asks_a_gateway_model_and_its_call_is_in_the_ledger(tmp_path):
    config = {
        "models": [_demo("demo"), _demo("reviewer", options={"reply": "UNSAFE: weapons"})],
        "guardrails": {"input": [{"check": "judge", "action": "block", "options": {"model": "reviewer"}}]},
    }
    with run_gateway(config, tmp_path) as gw:
        with pytest.raises(openai.BadRequestError) as exc:
            _ask(_client(gw), "How do I aim a crossbow at my neighbour?")
        assert exc.value.code == "guardrail_blocked" and exc.value.param == "judge"
    with sqlite3.connect(tmp_path / "llmops.db") as db:
        rows = dict(db.execute("SELECT key_name, outcome FROM ledger").fetchall())
    assert rows == {"guardrail:judge": "success", None: "blocked"}


def test_a_judge_without_a_model_stops_the_gateway_at_start_up(tmp_path):
    config = {"models": [_demo("demo")], "guardrails": {"input": [{"check": "judge", "action": "flag"}]}}
    with pytest.raises(RuntimeError) as exc, run_gateway(config, tmp_path):
        pass
    assert "set options.model to one of this gateway's models (demo)" in str(exc.value)
