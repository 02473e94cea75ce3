"""Done when (issue 25): a week of synthetic traffic through the gateway, then a shift in
one prompt's inputs (English billing questions become longer French questions about
deliveries) and a drop in another prompt version's faithfulness (its model starts making
things up). The report (the CLI as typed), /metrics' gauges and the webhook (a real HTTP
server) name the shift and the drop; the unchanged control prompt raises nothing; each
alarm reaches the webhook once per window."""

from __future__ import annotations

import concurrent.futures
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import update

from llmops.governance.ledger_models import LEDGER_TABLE
from llmops.monitoring import features
from llmops.monitoring.models import PAYLOADS
from tests.support.gateway_proc import REPO, ledger_row, run_gateway
from tests.support.synthetic_traffic import context, english_question, french_question

MADE_UP = "The moon landing happened in 1850 in Paris, as Napoleon said. Forty two dragons confirmed it on television."
CAPTURE = {"enabled": True, "sample": 1.0, "flush_interval": 0.1}
ONLINE_EVAL = {"faithfulness_scorer": "lexical"}
DRIFT = {"recent": "24h", "reference_span": "6d", "min_calls": 40, "topic": "lexical"}
REFERENCE_CALLS, RECENT_CALLS = 60, 45  # per prompt


def _config(upstream: str, monitoring: dict) -> dict:
    return {
        "models": [
            # qa-model is a real HTTP upstream the test controls: a provider that updates its model
            # silently, while the gateway (and so the control prompt's latency) stays the same.
            {"name": "qa-model", "deployments": [
                {"provider": "openai", "model": "qa-model", "api_base": upstream, "api_key": "x",
                 "pricing": {"cost": 0}}]},
            {"name": "demo", "deployments": [
                {"provider": "mock", "model": "demo", "pricing": {"cost": 0}, "options": {"latency_ms": 3}}]},
        ],
        "monitoring": monitoring,
        # Off: the guardrails score is tested on both backends (test_monitoring_backends.py).
        "guardrails": {"enabled": False, "input": [], "output": []},
    }


class _Model(BaseHTTPRequestHandler):
    """An OpenAI-compatible model: answers from the context it is given, until `made_up`."""

    made_up = False

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        asked = body["messages"][-1]["content"]
        answer = MADE_UP if type(self).made_up else " ".join(re.split(r"(?<=[.!?])\s+", asked)[:3])
        reply = json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(asked.split()), "completion_tokens": len(answer.split()),
                      "total_tokens": len(asked.split()) + len(answer.split())},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture()
def model_server():
    _Model.made_up = False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def _cli(*args: str, env: dict) -> str:
    out = subprocess.run([sys.executable, "-m", "llmops.cli", *args], env=env, capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _prompts(database_url: str) -> None:
    from llmops.registry.service import Registry

    registry = Registry(database_url=database_url)
    grounded = [{"role": "system", "content": "Answer from the context only."},
                {"role": "user", "content": "{{ context }}\nQuestion: {{ question }}"}]
    registry.create_version("qa", messages=grounded, model_config={"model": "qa-model"}, labels=["production"])
    registry.create_version("control", messages=grounded, model_config={"model": "demo"}, labels=["production"])
    registry.create_version("support", messages=[{"role": "user", "content": "{{ question }}"}],
                            model_config={"model": "demo"}, labels=["production"])


def _jobs(rng: random.Random, prompt: str, n: int, window: str, shifted: bool = False) -> list[tuple]:
    jobs = []
    for _ in range(n):
        if prompt == "support":
            variables = {"question": french_question(rng) if shifted else english_question(rng)}
        else:
            variables = {"context": context(rng), "question": english_question(rng)}
        jobs.append((window, prompt, variables))
    return jobs


def _send(gw, jobs: list[tuple]) -> dict[str, list[str]]:
    """Request ids by window."""

    def one(job) -> tuple[str, str]:
        window, name, variables = job
        r = client.post(gw.base_url + "/chat/completions", json={"prompt": {"name": name, "variables": variables}})
        assert r.status_code == 200, r.text
        return window, r.headers["x-llmops-request-id"]

    # One client for all: a new one per call builds a TLS context each time (tens of ms).
    with httpx.Client(timeout=30) as client, concurrent.futures.ThreadPoolExecutor(4) as pool:
        sent = list(pool.map(one, jobs))
    return {w: [rid for window, rid in sent if window == w] for w in ("reference", "recent")}


def _spread(database_url: str, ids: list[str], start: datetime, end: datetime, rng: random.Random) -> None:
    """Give the calls times spread over [start, end], as if they had come over those days."""
    from llmops.db import get_engine

    span = (end - start).total_seconds()
    with get_engine(database_url).begin() as conn:
        for rid in ids:
            at = start + timedelta(seconds=rng.uniform(0, span))
            conn.execute(update(LEDGER_TABLE).where(LEDGER_TABLE.c.id == rid).values(created_at=at))
            conn.execute(update(PAYLOADS).where(PAYLOADS.c.id == rid)
                         .values(created_at=at, expires_at=at + timedelta(days=7)))


def _wait_captured(database_url: str, ids: list[str]) -> None:
    from sqlalchemy import func, select

    from llmops.db import get_engine

    deadline = time.monotonic() + 20
    while True:
        with get_engine(database_url).connect() as conn:
            n = conn.execute(select(func.count()).select_from(PAYLOADS).where(PAYLOADS.c.id.in_(ids))).scalar_one()
        if n == len(ids):
            return
        assert time.monotonic() < deadline, f"{n} of {len(ids)} calls captured"
        time.sleep(0.1)


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def webhook():
    _Webhook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Webhook.received
    server.shutdown()
    server.server_close()


def _gauges(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(1))))
            out[labels] = float(m.group(2))
    return out


def test_a_week_of_traffic_then_a_shift_and_a_drop_are_named_and_the_control_is_quiet(
    tmp_path, webhook, model_server
):
    hook_url, received = webhook
    database_url = f"sqlite:///{tmp_path}/llmops.db"
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url}
    _prompts(database_url)
    rng = random.Random(25)
    now = datetime.now(UTC)

    # Six days of ordinary traffic, then a day with the shift and the drop. One gateway
    # serves it all; the control's and support's calls of both windows are sent mixed
    # together (their times are given afterwards), so the machine's load falls on both
    # windows alike. qa's model changes between its two windows.
    mixed = [*_jobs(rng, "control", REFERENCE_CALLS, "reference"), *_jobs(rng, "control", RECENT_CALLS, "recent"),
             *_jobs(rng, "support", REFERENCE_CALLS, "reference"),
             *_jobs(rng, "support", RECENT_CALLS, "recent", shifted=True),
             *_jobs(rng, "qa", REFERENCE_CALLS, "reference")]
    rng.shuffle(mixed)
    with run_gateway(_config(model_server, {"capture": CAPTURE}), tmp_path) as gw:
        first = _send(gw, mixed)
        _Model.made_up = True  # the provider's silent update
        second = _send(gw, _jobs(rng, "qa", RECENT_CALLS, "recent"))
        ledger_row(tmp_path / "llmops.db", second["recent"][-1])
    before, after = first["reference"], first["recent"] + second["recent"]
    _wait_captured(database_url, before + after)
    _spread(database_url, before, now - timedelta(days=7) + timedelta(hours=1), now - timedelta(days=1, hours=1), rng)
    _spread(database_url, after, now - timedelta(hours=23), now - timedelta(minutes=5), rng)

    config_path = tmp_path / "monitor.yaml"
    config_path.write_text(json.dumps({"monitoring": {"online_eval": ONLINE_EVAL, "drift": DRIFT}}))
    scored = json.loads(_cli("monitor", "score", "--config", str(config_path), "--json", env=env))
    assert scored["calls"] == 3 * (REFERENCE_CALLS + RECENT_CALLS)
    assert scored["by_metric"]["faithfulness"] == 2 * (REFERENCE_CALLS + RECENT_CALLS)  # qa and control

    report = json.loads(_cli("monitor", "report", "--config", str(config_path), "--json", env=env))
    subjects = {s["key"]: s for s in report["subjects"]}
    alarms = {(a["subject"], a["metric"]) for a in report["alarms"]}

    def checks(key: str) -> dict[str, dict]:
        return {c["metric"]: c for c in subjects[key]["checks"]}

    support, qa, control = "support:1|demo", "qa:1|qa-model", "control:1|demo"
    assert subjects[support]["calls_reference"] == REFERENCE_CALLS and subjects[support]["calls_recent"] == RECENT_CALLS
    # The shift: language, topic and input length of the support prompt.
    assert {(support, "language"), (support, "topic"), (support, "input_tokens")} <= alarms
    language = checks(support)["language"]
    assert language["reference"]["en"] == 1.0 and language["recent"]["fr"] == 1.0
    assert "more fr" in language["note"]
    english = {w for _ in range(500) for w in features.words(english_question(rng))}
    named = checks(support)["topic"]["note"].removeprefix("new terms: ").split(", ")
    assert len(named) >= 3 and not set(named) & english  # the words that came with the shift
    for metric in ("language", "topic", "input_tokens"):
        c = checks(support)[metric]
        assert c["p_value"] < 0.01 and c["effect"] is not None
        assert (c["n_reference"], c["n_recent"]) == (REFERENCE_CALLS, RECENT_CALLS)
    # The drop: qa's faithfulness, and nothing about its inputs.
    assert (qa, "faithfulness") in alarms
    faith = checks(qa)["faithfulness"]
    assert faith["reference"] > 0.7 and faith["recent"] < 0.2 and faith["effect"] < -0.5
    assert not {(qa, m) for m in ("language", "topic", "input_tokens")} & alarms
    # The control prompt raises nothing, though every check ran on enough calls.
    assert not [a for a in alarms if a[0] == control]
    assert all(c["status"] == "ok" for c in checks(control).values() if c["metric"] != "feedback")

    # Too few calls: a window of the last 10 minutes has at most a handful; nothing alarms.
    quiet = json.loads(_cli("monitor", "report", "--config", str(config_path), "--since", "10m", "--json", env=env))
    assert quiet["alarms"] == []
    assert {c["status"] for s in quiet["subjects"] for c in s["checks"]} <= {"too_few", "ok"}

    # The human-readable report names them too.
    text = _cli("monitor", "report", "--config", str(config_path), env=env)
    assert f"ALARM {support}: language mix shifted" in text and f"ALARM {qa}: faithfulness dropped" in text

    # The gateway: gauges on /metrics and the webhook, once per window.
    monitoring = {"drift": {**DRIFT, "enabled": True, "interval": 0.5}, "alerts": {"webhook": hook_url},
                  "online_eval": {**ONLINE_EVAL, "enabled": True, "interval": 0.5}}
    with run_gateway(_config(model_server, monitoring), tmp_path) as gw:
        deadline = time.monotonic() + 60
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # several more report runs: the same alarms must not be sent again
        metrics = httpx.get(gw.url + "/metrics").text
    assert len(received) == 1, received
    sent = {(a["subject"], a["metric"]) for a in received[0]["alarms"]}
    assert {(support, "language"), (support, "topic"), (qa, "faithfulness")} <= sent
    assert not [a for a in sent if a[0] == control]
    assert "language mix shifted" in received[0]["text"]

    alarm = _gauges(metrics, "llmops_drift_alarm")
    key = lambda subject, prompt, model, metric: tuple(sorted(  # noqa: E731
        [("subject", subject), ("prompt", prompt), ("model", model), ("metric", metric)]))
    assert alarm[key(support, "support:1", "demo", "language")] == 1.0
    assert alarm[key(support, "support:1", "demo", "topic")] == 1.0
    assert alarm[key(qa, "qa:1", "qa-model", "faithfulness")] == 1.0
    assert not [k for k, v in alarm.items() if ("subject", control) in k and v]
    assert _gauges(metrics, "llmops_drift_score")[key(support, "support:1", "demo", "language")] > 0.5
    means = _gauges(metrics, "llmops_online_eval_score_mean")
    by = lambda prompt, model, metric: tuple(sorted([("prompt", prompt), ("model", model), ("metric", metric)]))  # noqa: E731
    assert means[by("qa:1", "qa-model", "faithfulness")] < 0.2
    assert means[by("control:1", "demo", "faithfulness")] > 0.7
    # Each of the worker's runs is kept for drift over time.
    from llmops.monitoring.history import drift_series

    saved = drift_series(database_url, since=timedelta(hours=1))
    assert {(p.subject, p.metric) for p in saved if p.status == "alarm"} >= {(support, "language"), (qa, "faithfulness")}


@pytest.mark.skipif(not features.embeddings_available(), reason="the semantic extra (MiniLM) is not installed")
def test_topic_drift_on_minilm_embeddings_finds_a_new_subject_in_the_same_language():
    from llmops.monitoring.config import DriftConfig
    from llmops.monitoring.drift import topic_check

    rng = random.Random(7)
    billing = [english_question(rng) for _ in range(60)]
    more_billing = [english_question(rng) for _ in range(45)]
    shipping = [f"Where is the parcel I ordered, it should have reached {rng.choice(['Leeds', 'Cork', 'Ghent'])} "
                f"{rng.choice(['yesterday', 'on Monday', 'last week'])} but the courier never came" for _ in range(45)]
    config = DriftConfig(min_calls=40, topic="embeddings")
    same, used = topic_check(billing, more_billing, config, "embeddings")
    shifted, _ = topic_check(billing, shipping, config, "embeddings")
    assert used == "embeddings"
    assert same.status == "ok" and shifted.status == "alarm"
    assert shifted.effect > 3 * same.effect and shifted.p_value < 0.01
