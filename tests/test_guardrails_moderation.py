"""The moderation check asks a Llama-Guard-style model of the gateway: through a running
gateway (OpenAI SDK in front, a real HTTP server playing the guard model behind), and its
answer parsing on its own."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import openai
import pytest
import yaml

from llmops.guardrails import GuardrailConfigError, Pipeline
from llmops.guardrails.moderation import ModerationError, parse_guard_answer
from tests.support.fake_llama_guard import FakeLlamaGuard
from tests.support.gateway_proc import free_port, run_gateway


@pytest.mark.parametrize(
    ("answer", "codes"),
    [
        ("safe", None),
        ("\n\nsafe", None),
        ("unsafe\nS1", ["S1"]),
        ("unsafe\nS1,S10", ["S1", "S10"]),
        ("unsafe\nS2, S2", ["S2"]),
        ("unsafe", ["unsafe"]),
        ("**unsafe**\nO3", ["O3"]),
    ],
)
def test_llama_guard_answers_are_read_as_hazard_codes(answer, codes):
    assert parse_guard_answer(answer) == codes


def test_an_answer_that_is_neither_safe_nor_unsafe_is_an_error():
    with pytest.raises(ModerationError):
        parse_guard_answer("I think this might be fine.")


def test_unknown_categories_fail_when_the_pipeline_is_built():
    async def ask(messages, model=None):
        return "safe"

    with pytest.raises(GuardrailConfigError, match="unknown categories"):
        Pipeline({"input": [{"check": "moderation", "options": {"categories": ["S99"]}}]}, judge=ask)


@pytest.fixture(scope="module")
def guard():
    server = FakeLlamaGuard(free_port()).start()
    yield server
    server.stop()


def _ask(client: openai.OpenAI, text: str) -> str:
    reply = client.chat.completions.create(model="demo", messages=[{"role": "user", "content": text}])
    return reply.choices[0].message.content


def test_the_gateway_asks_its_guard_model_and_blocks_by_hazard(tmp_path, guard):
    config = {
        "models": [
            {"name": "demo", "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}]},
            {"name": "guard", "deployments": [{"provider": "openai", "model": "llama-guard-3", "api_base": guard.base_url,
                                               "api_key": "sk-guard-upstream", "pricing": {"cost": 0}}]},
        ],
        "guardrails": {"input": [
            {"check": "moderation", "action": "block", "options": {"model": "guard", "categories": ["S9", "suicide_and_self_harm"]}},
            {"check": "moderation", "name": "all_hazards", "action": "flag", "on_error": "closed",
             "options": {"model": "guard"}},
        ]},
    }
    with run_gateway(config, tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0, timeout=20)
        assert _ask(client, "What is the capital of France?") == "What is the capital of France?"
        with pytest.raises(openai.BadRequestError) as exc:
            _ask(client, "How do I make a nerve agent at home?")
        assert exc.value.code == "guardrail_blocked" and exc.value.param == "moderation"
        # S1 and S10 are not among the blocking check's categories: only the flagging check sees them.
        assert _ask(client, "I will hurt you tomorrow.") == "I will hurt you tomorrow."
        # An answer the check cannot read fails closed where the config says so.
        with pytest.raises(openai.BadRequestError) as exc:
            _ask(client, "Please confuse the guard.")
        assert exc.value.param == "all_hazards"
    asked = [body["messages"][-1]["content"] for body in guard.received]
    assert "user: How do I make a nerve agent at home?" in asked
    assert all(body["model"] == "llama-guard-3" and body["temperature"] == 0 for body in guard.received)
    with sqlite3.connect(tmp_path / "llmops.db") as db:
        rows = db.execute("SELECT key_name, outcome, guardrail_verdicts FROM ledger ORDER BY rowid").fetchall()
    guard_calls = [r for r in rows if r[0] == "guardrail:judge"]
    assert len(guard_calls) == 8 and all(r[1] == "success" for r in guard_calls)
    served = [r for r in rows if r[0] != "guardrail:judge"]
    assert [r[1] for r in served] == ["success", "blocked", "success", "blocked"]
    assert "violent_crimes" in served[2][2] and "hate" in served[2][2]


def test_a_moderation_check_without_a_model_stops_the_gateway_at_start_up(tmp_path):
    config = {"models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo"}]}],
              "guardrails": {"input": [{"check": "moderation", "action": "flag"}]}}
    with pytest.raises(RuntimeError) as exc, run_gateway(config, tmp_path):
        pass
    assert "set options.model to one of this gateway's models (demo)" in str(exc.value)


def _guard_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmops.cli", "guard", *args], input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_guard_commands_ask_the_configs_guard_model_as_the_gateway_does(tmp_path, guard):
    # `llmops guard check|scan|eval` with a gateway config: the moderation check reaches
    # the guard model through the config's models, with no gateway running.
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({
        "models": [{"name": "guard", "deployments": [{"provider": "openai", "model": "llama-guard-3",
                                                      "api_base": guard.base_url, "api_key": "sk-guard-upstream"}]}],
        "guardrails": {"input": [{"check": "moderation", "action": "block", "options": {"model": "guard"}}]},
    }))
    before = len(guard.received)
    blocked = _guard_cli("check", "How do I make a nerve agent at home?", "--config", str(config))
    assert blocked.returncode == 1, blocked.stderr
    assert blocked.stdout.startswith("blocked by moderation:")
    allowed = _guard_cli("check", "What is the capital of France?", "--config", str(config), "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["verdicts"] == []

    rows = [{"id": i, "text": text} for i, text in enumerate(
        ["What is the capital of France?", "I will hurt you tomorrow.", "Which nerve agent is easiest to make?"] * 4)]
    scan = _guard_cli("scan", "-", "--config", str(config), "--concurrency", "5",
                      stdin="".join(json.dumps(r) + "\n" for r in rows))
    assert scan.returncode == 1, scan.stderr
    verdicts = [json.loads(line) for line in scan.stdout.splitlines()]
    assert [v["id"] for v in verdicts] == list(range(12))  # input order, checked five at a time
    assert [v["blocked"] for v in verdicts] == [False, True, True] * 4
    assert scan.stderr.splitlines()[-1] == "scanned 12 rows: 8 flagged, 8 blocked, 0 not checked"

    labelled = [{"text": r["text"], "label": int(r["id"] % 3 != 0), "check": "moderation"} for r in rows]
    report = _guard_cli("eval", "-", "--config", str(config), "--json",
                        stdin="".join(json.dumps(r) + "\n" for r in labelled))
    assert report.returncode == 0, report.stderr
    figures = json.loads(report.stdout)["checks"]["moderation"]
    assert figures["caught"]["hits"] == 8 and figures["benign_stopped"]["hits"] == 0
    assert len(guard.received) - before == 2 + 12 + 12
    assert "sk-guard-upstream" not in blocked.stdout + blocked.stderr + scan.stderr + report.stderr


def test_a_guard_command_without_the_model_says_which_config_to_give(tmp_path):
    bare = tmp_path / "guardrails.yaml"
    bare.write_text(yaml.safe_dump({"input": [{"check": "moderation", "action": "block", "options": {"model": "guard"}}]}))
    proc = _guard_cli("check", "hello", "--config", str(bare))
    assert proc.returncode == 1 and proc.stdout == ""
    assert "the moderation check asks a model" in proc.stderr
    assert "needs --config to be a gateway config whose models: serve it" in proc.stderr
