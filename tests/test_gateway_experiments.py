"""Prompt references and A/B experiments through the gateway, with the OpenAI SDK:
10,000 simulated users split by the weights, every user sticky (across a restart too),
feedback tied to requests, and a report whose statistics match an independent count."""

from __future__ import annotations

import concurrent.futures
import math
import sqlite3
import statistics
import subprocess
import sys
import time

import httpx
import openai
import pytest
from scipy import stats as scipy_stats

from tests.support.gateway_proc import REPO, run_gateway

CONFIG = {"models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}]}]}
TEXT = "Rates rose 2% in May. Markets fell. Then they recovered."


def llmops(*args: str, env: dict) -> str:
    out = subprocess.run([sys.executable, "-m", "llmops.cli", *args], env=env, capture_output=True, text=True,
                         cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture()
def env(tmp_path):
    import os

    e = {**os.environ, "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path}/llmops.db"}
    llmops("prompts", "sync", str(REPO / "prompts"), env=e)
    return e


def test_prompt_reference_renders_and_applies_defaults(env, tmp_path):
    with run_gateway(CONFIG, tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        r = httpx.post(gw.base_url + "/chat/completions", json={
            "prompt": {"name": "summarize", "label": "production", "variables": {"text": TEXT}}})
        assert r.status_code == 200, r.text
        assert r.headers["x-llmops-prompt-version"] == "summarize:2"
        assert "x-llmops-variant" not in r.headers
        assert TEXT.split(".")[0] in r.json()["choices"][0]["message"]["content"]
        r = httpx.post(gw.base_url + "/chat/completions", json={
            "model": "demo", "prompt": {"name": "summarize", "version": 3, "variables": {"text": TEXT}}})
        assert r.headers["x-llmops-prompt-version"] == "summarize:3"
        # errors: unknown prompt 404, missing variable 400, both in OpenAI's shape
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="demo", messages=[], extra_body={"prompt": {"name": "nope"}})
        with pytest.raises(openai.BadRequestError) as exc:
            client.chat.completions.create(model="demo", messages=[], extra_body={
                "prompt": {"name": "summarize", "variables": {}}})
        assert "text" in exc.value.message


def test_experiment_split_stickiness_feedback_report(env, tmp_path):
    llmops("experiments", "create", "sum-ab", "--prompt", "summarize", "--variant", "control=production:70",
           "--variant", "candidate=staging:30", "--unit", "user", env=env)
    prompt = {"name": "summarize", "variables": {"text": TEXT}}
    users = [f"user-{i}" for i in range(10_000)]
    assigned: dict[str, str] = {}
    request_ids: dict[str, list[str]] = {"control": [], "candidate": []}
    with run_gateway(CONFIG, tmp_path) as gw:
        sdk = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0, timeout=30)

        def call(user: str) -> tuple[str, str, str, str]:
            # As an application sends it: the OpenAI SDK, the prompt reference in extra_body.
            raw = sdk.chat.completions.with_raw_response.create(
                model="demo", messages=[], user=user, extra_body={"prompt": prompt})
            assert raw.parse().choices[0].message.content
            return user, raw.headers["x-llmops-variant"], raw.headers["x-llmops-prompt-version"], \
                raw.headers["x-llmops-request-id"]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for user, variant, version, rid in pool.map(call, users):
                assigned[user] = variant
                request_ids[variant].append(rid)
                assert version == {"control": "summarize:2", "candidate": "summarize:3"}[variant]
            # The same users again: the same variants.
            again = list(pool.map(call, users[:500]))
        assert all(assigned[u] == v for u, v, _, _ in again)
        share = sum(v == "candidate" for v in assigned.values()) / len(users)
        assert abs(share - 0.30) <= 0.02
        # A request that pins a label is not part of the experiment.
        client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="demo", messages=[], user="user-1", extra_body={"prompt": {**prompt, "label": "staging"}})
        assert "x-llmops-variant" not in raw.headers

        # Feedback: candidate replies rated higher than control's, deterministically.
        scores = {"control": [], "candidate": []}
        for variant, ids in request_ids.items():
            for i, rid in enumerate(ids[:200]):
                score = round((0.55 if variant == "control" else 0.7) + ((i * 37) % 21 - 10) / 50, 2)
                scores[variant].append(score)
                r = httpx.post(gw.url + "/v1/feedback", json={"request_id": rid, "score": score,
                                                                   "comment": "auto"})
                assert r.status_code == 200, r.text
        assert httpx.post(gw.url + "/v1/feedback", json={"score": 0.5}).status_code == 400
        unknown = httpx.post(gw.url + "/v1/feedback", json={"request_id": "req-mistyped", "score": 0.5})
        assert unknown.status_code == 404 and "req-mistyped" in unknown.json()["error"]["message"]

    # After a restart, now with a master key (the operator's own calls, and the admin
    # report), the same users get the same variants.
    master = {"Authorization": "Bearer sk-master-experiments-0123456789"}
    restarted = run_gateway(CONFIG, tmp_path, env={"LLMOPS_MASTER_KEY": master["Authorization"][7:]})
    with restarted as gw, httpx.Client(base_url=gw.base_url, headers=master) as c:
        for user in users[:200]:
            r = c.post("/chat/completions", json={"user": user, "prompt": prompt})
            assert r.headers["x-llmops-variant"] == assigned[user]
        # The ledger is written in batches off the hot path: wait for the last rows.
        for _ in range(50):
            r = httpx.get(gw.url + "/admin/experiments/sum-ab", headers=master)
            assert r.status_code == 200, r.text
            report = r.json()
            if sum(v["requests"] for v in report["variants"]) >= 10_700:
                break
            time.sleep(0.1)

    variants = {v["name"]: v for v in report["variants"]}
    assert variants["control"]["requests"] + variants["candidate"]["requests"] == 10_000 + 500 + 200
    for name in ("control", "candidate"):
        fb = variants[name]["feedback"]
        assert fb["rated_requests"] == 200
        assert fb["mean"] == pytest.approx(statistics.fmean(scores[name]))
    # Welch's t computed here, independently of the library.
    a, b = scores["candidate"], scores["control"]
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.fmean(a) - statistics.fmean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    comparison = report["comparisons"][0]
    assert comparison["variant"] == "candidate"
    assert comparison["feedback"]["t"] == pytest.approx(t)
    assert comparison["feedback"]["df"] == pytest.approx(df)
    assert comparison["feedback"]["p"] == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-6)
    for name in ("control", "candidate"):  # Student's t interval of each feedback mean
        low, high = scipy_stats.t.interval(0.95, len(scores[name]) - 1, loc=statistics.fmean(scores[name]),
                                           scale=scipy_stats.sem(scores[name]))
        assert variants[name]["feedback"]["ci95"] == pytest.approx([low, high])
    # Per-call latency and tokens, from the ledger rows themselves.
    with sqlite3.connect(tmp_path / "llmops.db") as db:
        for name in ("control", "candidate"):
            n, latency, tokens_in, tokens_out = db.execute(
                "SELECT count(*), avg(latency_ms), avg(input_tokens), avg(output_tokens) FROM ledger"
                " WHERE experiment = 'sum-ab' AND variant = ?", (name,)).fetchone()
            assert variants[name]["requests"] == n
            assert variants[name]["latency_ms"]["mean"] == pytest.approx(latency)
            assert variants[name]["tokens_per_call"] == pytest.approx({"input": tokens_in, "output": tokens_out})
    assert "candidate: feedback +0.15" in comparison["verdict"]

    out = llmops("experiments", "promote", "sum-ab", "candidate", env=env)
    assert "candidate" in out
    shown = llmops("prompts", "show", "summarize@production", "--json", env=env)
    assert '"version": 3' in shown
