"""The monitoring library on each backend (SQLite and Postgres): scores stored once per
request and metric, feedback joined through the ledger, the report's windows, alerts
claimed once per window by concurrent senders."""

from __future__ import annotations

import json
import random
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sqlalchemy import func, select

from llmops.governance.ledger_models import LEDGER_TABLE
from llmops.monitoring.alerts import send_alerts
from llmops.monitoring.config import AlertsConfig, DriftConfig, OnlineEvalConfig
from llmops.monitoring.drift import build_report, save_report
from llmops.monitoring.models import ALERTS, PAYLOADS, SCORES
from llmops.monitoring.scoring import score_pending
from tests.support.synthetic_traffic import degraded_week


def test_scores_report_and_alerts(database_url):
    from llmops.db import get_engine

    now = datetime.now(UTC)
    degraded_week(database_url, now)
    config = OnlineEvalConfig(faithfulness_scorer="lexical")
    first = score_pending(database_url, config, limit=50)
    rest = score_pending(database_url, config)
    assert (first.calls, rest.calls) == (50, 70)
    assert score_pending(database_url, config).calls == 0  # each call scored once
    engine = get_engine(database_url)
    with engine.connect() as conn:
        metrics = dict(conn.execute(select(SCORES.c.metric, func.count()).group_by(SCORES.c.metric)).all())
    assert metrics == {"faithfulness": 120, "refusal": 120, "guardrails": 120}

    drift = DriftConfig(min_calls=30, topic="lexical")
    report = build_report(database_url, drift, now=now)
    (subject,) = [s for s in report.subjects if s.key == "p:1|m"]
    checks = {c.metric: c for c in subject.checks}
    assert (subject.calls_reference, subject.calls_recent) == (60, 60)
    for metric in ("latency_ms", "error_rate", "refusal_rate", "faithfulness", "feedback"):
        assert checks[metric].status == "alarm", (metric, checks[metric])
    assert "p50" in checks["latency_ms"].note and "p95" in checks["latency_ms"].note
    assert checks["feedback"].reference == 1.0 and checks["feedback"].recent == 0.0
    for metric in ("input_tokens", "language", "topic", "cost_per_call", "guardrail_fired_rate"):
        assert checks[metric].status == "ok", (metric, checks[metric])
    # A window larger than max_calls is sampled at random by the database, per subject.
    thin = build_report(database_url, DriftConfig(min_calls=10, max_calls=25, max_texts=25, topic="lexical"), now=now)
    (sampled,) = [s for s in thin.subjects if s.key == "p:1|m"]
    assert sampled.sampled and 10 <= sampled.calls_reference <= 45 and 10 <= sampled.calls_recent <= 45
    thin_checks = {c.metric: c for c in sampled.checks}
    assert thin_checks["latency_ms"].status == "alarm" and thin_checks["faithfulness"].n_recent <= 45
    assert not subject.sampled
    # Saved for drift over time once per run, however many gateway workers ran it.
    assert save_report(report, database_url, every=300) == len([c for s in report.subjects for c in s.checks])
    assert save_report(report, database_url, every=300) == 0
    # Fewer than min_calls in a window: measured, never an alarm.
    assert not build_report(database_url, DriftConfig(min_calls=61, topic="lexical"), now=now).alarms()

    received: list[bytes] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        alerts = AlertsConfig(webhook=f"http://127.0.0.1:{server.server_address[1]}/")
        # Two replicas at once, then a rerun: the alarms go out once.
        sent: list[list] = []
        senders = [threading.Thread(target=lambda: sent.append(send_alerts(report, drift, alerts, database_url)))
                   for _ in range(2)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        assert send_alerts(report, drift, alerts, database_url) == []
    finally:
        server.shutdown()
        server.server_close()
    # Between them the two senders posted every alarm, each once (which one posts is a race).
    posted = [(a["subject"], a["metric"]) for s in sent for a in s]
    assert sorted(posted) == sorted((s.key, c.metric) for s, c in report.alarms())
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ALERTS).where(ALERTS.c.delivered)).scalar_one() == len(
            report.alarms())


def test_first_week_reference_and_a_webhook_that_fails_once(database_url):
    """`first_week`: each subject's first seven days are its reference. A webhook that
    fails is tried again on the next run, and once delivered is not sent again."""
    now = datetime.now(UTC)
    degraded_week(database_url, now)
    score_pending(database_url, OnlineEvalConfig(faithfulness_scorer="lexical"))
    drift = DriftConfig(min_calls=30, topic="lexical", reference="first_week")
    report = build_report(database_url, drift, now=now)
    assert report.reference == "first_week" and report.reference_start is None
    (subject,) = [s for s in report.subjects if s.key == "p:1|m"]
    assert (subject.calls_reference, subject.calls_recent) == (60, 60)
    assert {c.metric for c in subject.alarms} >= {"latency_ms", "error_rate", "faithfulness"}

    answers = [500, 200, 200]
    bodies: list[bytes] = []

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            bodies.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(answers.pop(0))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        alerts = AlertsConfig(webhook=f"http://127.0.0.1:{server.server_address[1]}/", timeout=0.1)
        assert send_alerts(report, drift, alerts, database_url) == []  # refused: left undelivered
        import time

        time.sleep(0.25)  # past the retry delay (twice the timeout)
        assert len(send_alerts(report, drift, alerts, database_url)) == len(report.alarms())
        assert send_alerts(report, drift, alerts, database_url) == []
    finally:
        server.shutdown()
        server.server_close()
    assert len(bodies) == 2


def test_online_scores_of_ab_variants_side_by_side(database_url, capsys):
    from llmops.cli import main
    from llmops.db import get_engine

    now = datetime.now(UTC)
    rng = random.Random(9)
    ledger, payloads = [], []
    for i in range(80):
        variant = "a" if i % 2 else "b"
        at = now - timedelta(minutes=i)
        rid = f"req-{int(at.timestamp() * 1e6):013x}{rng.getrandbits(80):020x}"
        ledger.append({"id": rid, "created_at": at, "model": "m", "prompt_name": "p", "prompt_version": 1 + i % 2,
                       "experiment": "tone", "variant": variant, "outcome": "success", "status": 200})
        payloads.append({
            "id": rid, "created_at": at, "expires_at": at + timedelta(days=7), "model": "m", "prompt_name": "p",
            "prompt_version": 1 + i % 2, "variant": variant, "request_text": "user: price?", "chars": 1,
            "context": "The blue chair costs 40 euros.", "truncated": False,
            "response_text": "The blue chair costs 40 euros." if variant == "a" else "Chairs are made on Mars by elves.",
        })
    with get_engine(database_url).begin() as conn:
        conn.execute(LEDGER_TABLE.insert(), ledger)
        conn.execute(PAYLOADS.insert(), payloads)
    score_pending(database_url, OnlineEvalConfig(faithfulness_scorer="lexical"))

    assert main(["monitor", "variants", "--experiment", "tone", "--database-url", database_url, "--json"]) == 0
    rows = {(r["variant"], r["metric"]): r for r in json.loads(capsys.readouterr().out)}
    a, b = rows[("a", "faithfulness")], rows[("b", "faithfulness")]
    assert (a["n"], b["n"]) == (40, 40) and a["mean"] > 0.8 > 0.2 > b["mean"]
    assert a["p_value"] is None and b["p_value"] < 0.001  # b against the first variant, a
    assert a["ci_low"] <= a["mean"] <= a["ci_high"]
