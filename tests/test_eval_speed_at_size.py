"""Speed at size (issue 24): 429s waited out and retried, a run that slows down for a server
that keeps refusing, Ctrl-C that keeps the answers received, the default concurrency.

Against real HTTP servers: tests/support's fake upstream (its `rate429-N`, `busy503-N`,
`parallel-N`, `slow-MS` models) and a real `llmops serve` with a limited virtual key.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llmops.cli import main
from llmops.evaluation.client import LOCAL_CONCURRENCY, REMOTE_CONCURRENCY, HttpModelClient
from llmops.evaluation.runner import default_concurrency, run_suite
from llmops.evaluation.suites import load_suite
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_proc import free_port, run_gateway

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream(free_port()).start()
    yield fake
    fake.stop()


def write_suite(tmp_path: Path, model: str, cases: int, name: str = "speed") -> Path:
    """`cases` cases of one inline prompt on `model`, each passing on the fake's reply."""
    rows = "\n".join(f"  - {{id: c{i:04d}, vars: {{n: {i}}}}}" for i in range(cases))
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nprompts: [{{id: ask, template: 'Question {{{{ n }}}}: what does the fox do?'}}]\n"
        f"models: [{model}]\ndefaults:\n  assert: [{{type: icontains, value: quick brown fox}}]\ncases:\n{rows}\n"
    )
    return path


def run_cli(capsys, *args: str) -> tuple[int, dict]:
    code = main(["eval", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.mark.parametrize("model, refusals", [("rate429-3", 3), ("rate429date-2", 2), ("busy503-2", 2)])
def test_a_429_or_busy_503_is_waited_out_and_retried_through_the_cli(
    upstream, tmp_path, capsys, model, refusals
):
    upstream.reset()
    suite = write_suite(tmp_path, model, 6)
    started = time.monotonic()
    code, run = run_cli(capsys, "run", str(suite), "--gateway-url", upstream.base_url, "--concurrency", "4",
                        "--database-url", f"sqlite:///{tmp_path}/llmops.db")  # fmt: skip
    took = time.monotonic() - started
    assert code == 0, run
    assert (run["passed"], run["errors"]) == (6, 0)
    assert upstream.calls[model] == 6 + refusals  # each refusal retried once, nothing more
    assert sum(r.get("retries", 0) for r in run["results"]) == refusals
    assert run["parameters"]["retries"] == refusals
    assert took >= 1.0  # the server's Retry-After (1 s, or the HTTP date's 1-2 s) was honoured


def test_a_server_that_keeps_refusing_gets_fewer_calls_and_every_case_still_passes(upstream, tmp_path):
    """A server that takes 2 calls at a time and answers 429 (Retry-After: 1) to the rest:
    a run of 16 calls in flight halves its limit on each round of refusals and pauses,
    so the server sees a few refusals a second rather than the whole queue over and over."""
    upstream.reset()
    model, cases = "parallel-2", 24
    suite = load_suite(write_suite(tmp_path, model, cases))

    async def go():
        async with HttpModelClient(upstream.base_url) as client:
            return await run_suite(
                suite, client, concurrency=16, database_url=f"sqlite:///{tmp_path}/llmops.db"
            )

    run = asyncio.run(go())
    assert (run.passed_count, run.errors) == (cases, 0)
    refused = upstream.refused[model]
    assert refused == run.parameters["retries"] == sum(r.retries for r in run.results)
    # 14 refusals on the first burst of 16, then each round at most half the one before,
    # and a refusal for each probe above 2.
    assert refused <= 32, refused  # without the cuts: about 45
    assert upstream.max_in_flight[model] == 2


def test_a_call_still_refused_after_its_retries_is_a_failed_case_and_a_spent_quota_or_an_hour_is_not_waited(
    upstream, tmp_path
):
    upstream.reset()
    suite = load_suite(write_suite(tmp_path, "always429", 2))
    spent = load_suite(write_suite(tmp_path, "quota429", 1, name="spent"))
    hour = load_suite(write_suite(tmp_path, "wait429", 1, name="hour"))

    async def go():
        async with HttpModelClient(upstream.base_url) as client:
            refused = await run_suite(
                suite, client, retries=2, database_url=f"sqlite:///{tmp_path}/llmops.db"
            )
            quota = await run_suite(spent, client, database_url=f"sqlite:///{tmp_path}/llmops.db")
            later = await run_suite(hour, client, database_url=f"sqlite:///{tmp_path}/llmops.db")
            return refused, quota, later

    refused, quota, later = asyncio.run(go())
    assert [r.passed for r in refused.results] == [False, False]
    for result in refused.results:
        assert result.error is not None
        assert "HTTP 429: slow down" in result.error and "still refused after 2 retries" in result.error
    assert upstream.calls["always429"] == 2 * 3
    assert upstream.calls["quota429"] == 1  # waiting does not refill a quota
    assert "You exceeded your current quota" in (quota.results[0].error or "")
    # An hour is not waited for: the case fails at once, saying what the server asked.
    assert upstream.calls["wait429"] == 1
    assert "asked to retry in 3600 s, longer than the 90 s a run waits" in (later.results[0].error or "")


def test_default_concurrency_follows_the_target():
    async def suggested(url: str | None) -> int:
        transport = None if url else httpx.MockTransport(lambda request: httpx.Response(200))
        async with HttpModelClient(url or "http://gateway.in-process", transport=transport) as client:
            return default_concurrency(client)

    assert asyncio.run(suggested(None)) == LOCAL_CONCURRENCY  # the gateway in this process
    assert asyncio.run(suggested("http://127.0.0.1:4000")) == LOCAL_CONCURRENCY
    assert asyncio.run(suggested("https://api.openai.com/v1")) == REMOTE_CONCURRENCY
    assert LOCAL_CONCURRENCY > REMOTE_CONCURRENCY


def _cli_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("LLMOPS_GATEWAY_URL", "LLMOPS_API_KEY", "LLMOPS_MASTER_KEY", "LLMOPS_GATEWAY_CONFIG"):
        env.pop(name, None)
    return env


def test_ctrl_c_keeps_every_answer_received_and_the_printed_command_calls_only_for_the_rest(upstream, tmp_path):
    upstream.reset()
    model, cases = "slow-100", 60
    suite = write_suite(tmp_path, model, cases)
    database = tmp_path / "llmops.db"
    command = ["eval", "run", str(suite), "--database-url", f"sqlite:///{database}", "--gateway-url",
               upstream.base_url, "--concurrency", "4", "--json"]  # fmt: skip
    # As from a terminal: a job started in the background by a non-interactive shell (a CI
    # runner's) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    first = subprocess.Popen([sys.executable, "-m", "llmops.cli", *command], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_cli_env(), cwd=tmp_path,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    deadline = time.monotonic() + 30
    while upstream.calls[model] < 12:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)
    out, err = first.communicate(timeout=30)
    assert first.returncode == 130, err
    assert "Traceback" not in err and out == ""
    with sqlite3.connect(database) as db:
        stored = db.execute("SELECT count(*) FROM eval_cache").fetchone()[0]
    # Every answer received is kept: only the calls in flight at Ctrl-C (at most 4) are lost.
    asked = upstream.calls[model]
    assert 12 - 4 <= asked - 4 <= stored < cases
    said = re.search(rf"interrupted: (\d+) of {cases} calls done, their answers kept in the cache", err)
    assert said, err
    # Each case done had its answer committed first; answers still being graded are kept too.
    assert stored - 4 <= int(said.group(1)) <= stored
    resume = err.strip().splitlines()[-1].strip()
    assert resume == shlex.join(["llmops", *command])

    upstream.reset()
    second = subprocess.run([sys.executable, "-m", "llmops.cli", *shlex.split(resume)[1:]], capture_output=True,
                            text=True, env=_cli_env(), cwd=tmp_path, timeout=60)  # fmt: skip
    assert second.returncode == 0, second.stderr
    run = json.loads(second.stdout)
    assert upstream.calls[model] == cases - stored  # only the rest were called
    assert (run["total"], run["passed"], run["parameters"]["cache_hits"]) == (cases, cases, stored)
    assert sum(r["cached"] for r in run["results"]) == stored


def test_through_llmops_serve_a_keys_parallel_limit_and_an_upstreams_429s_are_waited_out(
    upstream, tmp_path, capsys, monkeypatch
):
    """A real gateway: its own 429 (a virtual key allowing 2 calls at a time, Retry-After: 1)
    and an upstream's 429 it passes on (router retries off) are both waited out; after
    three upstream 429s the deployment rests, and the gateway's 503 names when it is back."""
    upstream.reset()
    fox = "The quick brown fox jumps over the lazy dog."
    config = {
        "models": [
            {"name": "demo", "deployments": [{"provider": "mock", "model": "demo",
                                              "options": {"reply": fox, "latency_ms": 50}}]},
            {"name": "limited", "deployments": [{"provider": "openai", "model": "rate429-3",
                                                 "api_base": upstream.base_url, "api_key": "sk-upstream"}]},
        ],
        "router": {"retries": 0, "cooldown_seconds": 1},
        "guardrails": {"enabled": False, "input": [], "output": []},
    }  # fmt: skip
    with run_gateway(config, tmp_path) as gw:
        created = subprocess.run(
            [sys.executable, "-m", "llmops.cli", "keys", "create", "--name", "evals", "--parallel", "2", "--json",
             "--database-url", f"sqlite:///{tmp_path}/llmops.db"],
            capture_output=True, text=True, env=_cli_env(), timeout=60,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        monkeypatch.setenv("LLMOPS_API_KEY", json.loads(created.stdout)["key"])
        evals = f"sqlite:///{tmp_path}/evals.db"
        code, run = run_cli(capsys, "run", str(write_suite(tmp_path, "demo", 16)), "--gateway-url", gw.url,
                            "--concurrency", "8", "--database-url", evals)  # fmt: skip
        assert code == 0, run
        assert (run["passed"], run["errors"]) == (16, 0)
        assert run["parameters"]["retries"] >= 1  # the key's limit said 429 and was waited out

        code, run = run_cli(capsys, "run", str(write_suite(tmp_path, "limited", 6, name="upstream")),
                            "--gateway-url", gw.url, "--concurrency", "4", "--database-url", evals)  # fmt: skip
        assert code == 0, run
        assert (run["passed"], run["errors"]) == (6, 0)
        assert upstream.calls["rate429-3"] == 6 + 3
        assert run["parameters"]["retries"] >= 3
