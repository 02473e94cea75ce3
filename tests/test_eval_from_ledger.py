"""`llmops eval cases from-ledger`: production calls a real gateway captured, as eval cases.

A gateway process with payload capture on serves registry prompts to the OpenAI SDK
(with a follow-up turn, an e-mail address capture redacts, feedback on one call); the
command then writes cases with the recovered variables, the extra turns, the context and
the served reply, and a suite runs them. Without capture it says what to turn on.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from llmops.evaluation.from_ledger import parse_request_text
from tests.support.gateway_proc import REPO, run_gateway

TEXTS = {
    "budget": "The council approved a £2.4bn budget on Tuesday. Ask bob@example.com for the papers. Schools get £310m.",
    "strike": "Train drivers will strike for 48 hours from 14 March. About 600 services a day are cancelled.",
    "rates": "Rates rose 2% in May. Lenders expect a further rise in June.",
}


def llmops(*args: str, database_url: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "LLMOPS_DATABASE_URL": database_url, **(env or {})}
    for name in ("LLMOPS_GATEWAY_URL", "LLMOPS_MASTER_KEY", "LLMOPS_GATEWAY_CONFIG"):
        if name not in (env or {}):
            full.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args], capture_output=True, text=True, timeout=180, cwd=cwd, env=full
    )


def _rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM monitor_payloads").fetchone()[0]


def _config(capture: dict | None) -> dict:
    config: dict = {
        "models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo"}]}],
        "guardrails": {"enabled": False, "input": [], "output": []},
    }
    if capture is not None:
        config["monitoring"] = {"capture": capture}
    return config


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """A database holding the registry and four captured calls: (dir, database URL, request ids)."""
    tmp = tmp_path_factory.mktemp("from-ledger")
    database_url = f"sqlite:///{tmp}/llmops.db"
    synced = llmops("prompts", "sync", str(REPO / "prompts"), database_url=database_url, cwd=tmp)
    assert synced.returncode == 0, synced.stderr
    capture = {"enabled": True, "sample": 1.0, "flush_interval": 0.1, "context_variable": "text"}
    ids = {}
    with run_gateway(_config(capture), tmp) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)

        def ask(key: str, prompt: dict, messages: list | None = None) -> None:
            r = client.chat.completions.with_raw_response.create(
                model="demo", messages=messages or [], extra_body={"prompt": prompt}
            )
            ids[key] = r.headers["x-llmops-request-id"]

        ask("budget", {"name": "summarize", "label": "production", "variables": {"text": TEXTS["budget"]}})
        ask("strike", {"name": "summarize", "label": "production", "variables": {"text": TEXTS["strike"]}},
            [{"role": "assistant", "content": "Drivers strike."}, {"role": "user", "content": "Shorter, please."}])  # fmt: skip
        ask("rates", {"name": "summarize", "version": 3, "variables": {"text": TEXTS["rates"]}})
        client.chat.completions.create(model="demo", messages=[{"role": "user", "content": "no prompt here"}])
        deadline = time.monotonic() + 15
        while _rows(tmp / "llmops.db") < 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        feedback = httpx.post(f"{gw.base_url}/feedback", json={"request_id": ids["budget"], "score": "down",
                                                               "comment": "missed the schools"})  # fmt: skip
        assert feedback.status_code == 200, feedback.text
    assert _rows(tmp / "llmops.db") == 4
    return tmp, database_url, ids


def _export(tmp: Path, database_url: str, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    out = tmp / "cases.jsonl"
    out.unlink(missing_ok=True)
    done = llmops("eval", "cases", "from-ledger", *args, "-o", str(out), "--database-url", database_url,
                  database_url=database_url, cwd=tmp)  # fmt: skip
    cases = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return done, cases


def test_captured_calls_become_cases_with_their_variables_turns_and_served_reply(captured):
    tmp, database_url, ids = captured
    done, cases = _export(tmp, database_url, "--prompt", "summarize@production", "--since", "1h")
    assert done.returncode == 0, done.stderr
    assert "wrote 2 cases from 2 captured calls to" in done.stdout
    by_id = {c["id"]: c for c in cases}
    budget, strike = by_id[ids["budget"]], by_id[ids["strike"]]
    # Capture redacted the address before storing it: the case holds what capture kept.
    assert budget["vars"] == {"text": TEXTS["budget"].replace("bob@example.com", "[EMAIL]")}
    assert budget["context"] == budget["vars"]["text"]
    assert budget["expected"].startswith("Article:") or "£2.4bn" in budget["expected"]
    assert budget["metadata"]["prompt"] == "summarize:2" and budget["metadata"]["model"] == "demo"
    assert budget["metadata"]["feedback"] == [{"score": 0.0, "thumbs": "down", "comment": "missed the schools"}]
    assert "messages" not in budget
    assert strike["vars"] == {"text": TEXTS["strike"]}
    assert strike["messages"] == [{"role": "assistant", "content": "Drivers strike."},
                                  {"role": "user", "content": "Shorter, please."}]  # fmt: skip

    # Every version of the prompt; only calls with down feedback; a repeatable sample.
    done, cases = _export(tmp, database_url, "--prompt", "summarize", "--since", "1h")
    assert {c["metadata"]["prompt"] for c in cases} == {"summarize:2", "summarize:3"} and len(cases) == 3
    done, cases = _export(tmp, database_url, "--prompt", "summarize", "--with-feedback", "down")
    assert [c["id"] for c in cases] == [ids["budget"]]
    first = _export(tmp, database_url, "--prompt", "summarize", "--sample", "2", "--seed", "7")[1]
    second = _export(tmp, database_url, "--prompt", "summarize", "--sample", "2", "--seed", "7")[1]
    assert len(first) == 2 and first == second

    # The file is a cases file: a suite runs it against another version, the reply as reference.
    _export(tmp, database_url, "--prompt", "summarize", "--since", "1h")
    suite = tmp / "replay.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "replay", "prompts": ["summarize@staging"], "models": ["demo"], "cases": [{"file": "cases.jsonl"}],
        "defaults": {"assert": [{"type": "rouge-l", "threshold": 0.2}]},
    }))  # fmt: skip
    run = llmops("eval", "run", str(suite), "--json", "--database-url", database_url, database_url=database_url, cwd=tmp)
    result = json.loads(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert result["total"] == 3 and result["passed"] == 3


def test_without_capture_it_says_what_to_turn_on(tmp_path):
    database_url = f"sqlite:///{tmp_path}/empty.db"
    llmops("prompts", "sync", str(REPO / "prompts"), database_url=database_url, cwd=tmp_path)
    off = tmp_path / "off.yaml"
    off.write_text(yaml.safe_dump(_config(None)))
    done, cases = _export(tmp_path, database_url, "--prompt", "summarize@production", "--gateway-config", str(off))
    assert done.returncode == 1 and not cases
    assert f"payload capture is off in {off}" in done.stderr
    assert 'monitoring: {capture: {enabled: true, rules: [{prompt: "summarize", sample: 1.0}]}}' in done.stderr
    assert "restart the gateway" in done.stderr

    on = tmp_path / "on.yaml"
    on.write_text(yaml.safe_dump(_config({"enabled": True, "sample": 0.0})))
    done, _ = _export(tmp_path, database_url, "--prompt", "summarize", "--gateway-config", str(on))
    assert done.returncode == 1
    assert "capture is on in" in done.stderr and "keeps 0% of this prompt's calls" in done.stderr
    assert 'raise its share with a rule `{prompt: "summarize", sample: 1.0}`' in done.stderr

    done, _ = _export(tmp_path, database_url, "--prompt", "nosuch@production")
    assert done.returncode == 1 and "nosuch" in done.stderr
    done, _ = _export(tmp_path, database_url, "--prompt", "summarize", "--since", "soon")
    assert done.returncode == 1 and "cannot read 'soon' as a time span" in done.stderr


def test_request_text_parses_back_into_messages():
    text = "system: Be brief.\nuser: Article:\nline two\nassistant: ok\nuser: again"
    assert parse_request_text(text) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Article:\nline two"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "again"},
    ]
    assert parse_request_text("no role here") == []
