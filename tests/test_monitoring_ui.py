"""The app's Monitoring page under streamlit.testing (AppTest), on a real SQLite database
holding a week of calls whose recent day is slower, failing and refusing: the page names
the alarms, charts the online scores per prompt version, and lists the calls behind a point."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from streamlit.testing.v1 import AppTest

from llmops.monitoring.config import DriftConfig, OnlineEvalConfig
from llmops.monitoring.drift import build_report, save_report
from llmops.monitoring.scoring import score_pending
from tests.support.synthetic_traffic import degraded_week

ROOT = Path(__file__).resolve().parents[1]
PAGE = "llmops/ui/pages/monitoring.py"


def _open(monkeypatch, url: str) -> AppTest:
    monkeypatch.setenv("LLMOPS_DATABASE_URL", url)
    for name in ("LLMOPS_GATEWAY_URL", "LLMOPS_GATEWAY_CONFIG", "LLMOPS_MASTER_KEY", "LLMOPS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_an_empty_database_says_what_to_turn_on(tmp_path, monkeypatch):
    at = _open(monkeypatch, f"sqlite:///{tmp_path / 'llmops.db'}")
    assert [t.value for t in at.title] == ["Monitoring"]
    assert "payload capture" in " ".join(i.value for i in at.info)
    assert not at.get("vega_lite_chart")


def test_alarms_scores_over_time_and_the_calls_behind_a_point(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    now = datetime.now(UTC)
    degraded_week(url, now)
    score_pending(url, OnlineEvalConfig(faithfulness_scorer="lexical"))
    config = DriftConfig(min_calls=30, topic="lexical")
    for hours_ago in (30, 20, 0):  # three saved reports: the drift chart's points
        save_report(build_report(url, config, now=now - timedelta(hours=hours_ago)), url)
    at = _open(monkeypatch, url)
    at.number_input(key="monitor_min_calls").set_value(30).run()
    errors = " ".join(e.value for e in at.error)
    assert "p:1|m: latency_ms shifted" in errors and "p:1|m: refusal_rate rose" in errors
    assert "p:1|m: faithfulness dropped" in errors
    checks = at.dataframe[0].value
    assert {"latency_ms", "topic", "language"} <= set(checks["check"])
    assert len(at.get("vega_lite_chart")) == 2, "a chart of drift and one of the scores"
    assert "latency_ms" in at.selectbox(key="monitor_drift_metric").options
    assert at.selectbox(key="monitor_metric").value == "faithfulness"
    assert at.selectbox(key="monitor_subject").value == "p:1|m"
    # The newest point is first: recent calls that refuse, lowest score first.
    calls = at.dataframe[1].value
    assert len(calls) > 0 and all(r.startswith("req-") for r in calls["request_id"])
    assert (calls["response_text"] == "I can't help with that.").all()
    assert list(calls["score"]) == sorted(calls["score"])
    # Another point, one click away: the oldest bucket, of faithful answers.
    (points,) = [s for s in at.selectbox if str(s.key).startswith("monitor_point:")]
    points.set_value(points.options[-1]).run()
    older = at.dataframe[1].value
    assert (older["response_text"] == "The blue chair costs 40 euros.").all()
    assert older["score"].min() > calls["score"].max() + 0.2
