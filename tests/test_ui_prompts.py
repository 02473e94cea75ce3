"""The Prompts page's playground, per-version numbers and label-move warnings (AppTest on SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from llmops import Registry
from llmops.db import session_scope
from llmops.errors import InvalidInput
from llmops.experiments.feedback import record_feedback
from llmops.experiments.service import ExperimentService
from llmops.governance.ledger_models import LedgerRow
from llmops.ui import playground as pg
from llmops.ui import version_stats as vs
from llmops.ui.gateway_client import close_all
from tests.e2e import seed

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = "The harbour bridge reopened on Monday after a two-year repair costing £85m."


@pytest.fixture
def synced(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    monkeypatch.setenv("LLMOPS_DATABASE_URL", url)
    monkeypatch.setenv("LLMOPS_EVALS_DIR", str(ROOT / "evals"))
    for name in ("LLMOPS_GATEWAY_URL", "LLMOPS_GATEWAY_CONFIG", "LLMOPS_MASTER_KEY", "LLMOPS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    seed.sync_prompts(url)
    yield url
    close_all()


def prompts_page(view: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    if view:
        at.radio(key="prompt_view").set_value(view).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_the_playground_runs_a_draft_beside_the_version_and_saves_it_as_a_new_version(synced):
    at = prompts_page("Playground")
    assert at.selectbox(key="play_base:summarize").value == 2  # production
    template = at.text_area(key="play_template:summarize:2")
    assert "role: system" in template.value and "{{ text }}" in template.value
    edited = template.value.replace("Article:", "News story:")
    assert edited != template.value
    template.input(edited)
    at.text_area(key="play_params:summarize:2").input("model: demo\ntemperature: 0.1\nmax_tokens: 120\n")
    at.text_area(key="play_var_text").input(ARTICLE)
    at.button(key="play_run").click().run()
    assert not at.exception and not at.error, texts(at.error)
    page = texts(at.html)
    outputs = [p.split("</div>")[0] for p in page.split('<div class="text llmops-output">')[1:]]
    assert len(outputs) == 2 and all("harbour bridge" in o for o in outputs)
    assert "News story:" in page  # the draft's rendered prompt, in its cell's details
    summary = next(d.value for d in at.dataframe if "Version · model" in d.value.columns)
    assert list(summary["Version · model"]) == [
        "summarize@production (summarize:2) · demo",
        "draft · demo",
    ]

    at.text_input(key="play_message:summarize").input("call it a news story")
    at.button(key="play_save").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert "Saved summarize:4" in texts(at.success)
    registry = Registry(synced)
    new, old = registry.get("summarize:4"), registry.get("summarize:2")
    assert "News story:" in new.messages[-1]["content"] and "Article:" in old.messages[-1]["content"]
    assert new.model_config == {"model": "demo", "temperature": 0.1, "max_tokens": 120}
    assert new.message.startswith("call it a news story") and new.author == "llmops-ui"
    assert registry.get("summarize@production").version == 2  # no label moved


def test_a_draft_that_cannot_be_read_says_why_and_saving_needs_a_message(synced):
    view = Registry(synced).get("summarize:2")
    with pytest.raises(InvalidInput, match="must be a YAML mapping"):
        pg.parse_draft(view, pg.template_text(view), "- 1\n- 2\n")
    with pytest.raises(InvalidInput, match="role:"):
        pg.parse_draft(view, "just text", "model: demo")
    draft = pg.parse_draft(view, pg.template_text(view), pg.params_text(view))
    with pytest.raises(InvalidInput, match="needs a message"):
        pg.save_draft(synced, view, draft, "  ")
    assert [v.version for v in Registry(synced).history("summarize").versions] == [1, 2, 3]


def test_moving_a_label_a_running_experiment_serves_warns_first(synced):
    ExperimentService(synced).create(
        "summarize-ab", "summarize", ["control=production", "candidate=staging"], unit="user", actor="test"
    )
    at = prompts_page("Labels")
    at.selectbox(key="move_label:summarize").set_value("production")
    at.selectbox(key="move_version:summarize").set_value(3)
    at.button(key="move_button").click().run()
    warning = texts(at.warning)
    assert "running experiment summarize-ab (variant control) serves this label" in warning
    at.button(key="move:confirm").click().run()
    assert at.radio(key="prompt_view").value == "Labels"
    assert Registry(synced).get("summarize@production").version == 3

    ExperimentService(synced).stop("summarize-ab", actor="test")
    at.selectbox(key="move_label:summarize").set_value("staging")
    at.selectbox(key="move_version:summarize").set_value(1)
    at.button(key="move_button").click().run()
    assert "Move summarize@staging" in texts(at.warning) and "experiment" not in texts(at.warning)


def ledger(url: str, *rows: LedgerRow) -> None:
    with session_scope(url) as session:
        for row in rows:
            session.add(row)


def call(version: int, latency: float, *, cost: float = 0.001, outcome: str = "success", ago: int = 0, **kw):
    return LedgerRow(
        id=f"req-v{version}-{latency}-{ago}-{outcome}",
        created_at=datetime.now(UTC) - timedelta(minutes=ago),
        model="demo",
        prompt_name="summarize",
        prompt_version=version,
        outcome=outcome,
        status=200 if outcome == "success" else 502,
        input_tokens=10,
        output_tokens=5,
        cost=cost,
        latency_ms=latency,
        **kw,
    )


def test_per_version_numbers_from_the_ledger_feedback_and_eval_runs(synced, tmp_path):
    ledger(synced, *[call(2, float(ms)) for ms in range(10, 210, 10)])  # 20 calls: 10..200 ms
    ledger(synced, call(3, 50.0), call(3, 70.0), call(3, 0.0, outcome="upstream_error", cost=0.0))
    record_feedback("req-v2-10.0-0-success", thumbs="up", database_url=synced)
    record_feedback("req-v2-10.0-0-success", thumbs="down", database_url=synced)  # one request: mean 0.5
    record_feedback("req-v2-20.0-0-success", score=0.9, database_url=synced)
    seed.seed_eval_runs(synced, tmp_path)  # summarize:2 passes 2 of 3, summarize:1 1 of 3

    v3, v2, v1 = vs.version_numbers(synced, "summarize", [3, 2, 1])
    assert (v2.requests, v2.errors, round(v2.cost, 6)) == (20, 0, 0.02)
    assert (v2.latency_p50_ms, v2.latency_p95_ms) == (105.0, 190.0)
    assert v2.rated == 2 and v2.feedback_mean == pytest.approx(0.7)
    assert v2.eval_pass_rate == pytest.approx(2 / 3) and v2.eval_runs == 1
    assert (v3.requests, v3.errors, v3.latency_p50_ms) == (3, 1, 60.0) and v3.eval_pass_rate is None
    assert v1.requests == 0 and v1.row()["Latency p50"] == "–" and "None" not in str(v1.row())

    points = vs.version_series(synced, "summarize", bucket="hour")
    assert {p.version for p in points} == {"v2", "v3"} and sum(p.requests for p in points) == 23

    at = prompts_page("Numbers")
    table = at.dataframe[1].value
    assert list(table["Version"]) == ["v3", "v2", "v1"]
    assert list(table["Latency p95"])[1] == "190 ms" and list(table["Eval pass rate"])[1] == "67% (1 run)"
    assert len(at.get("vega_lite_chart")) == 1
    at.selectbox(key="prompt_numbers_measure").set_value("Mean feedback").run()
    assert not at.exception and len(at.get("vega_lite_chart")) == 1


def test_budgets_show_how_much_is_left(synced):
    from llmops.governance.keys import KeyStore
    from llmops.ui import spend_view as sv

    seed.seed_traffic(synced, requests=24)  # keys web-app (team news) and batch-jobs (team data)
    store = KeyStore(synced)
    store.set_budget("team", "news", 0.001, "month")
    store.set_budget("user", "reader-1", 5.0, "day")
    key = next(k for k in store.list() if k.name == "batch-jobs")
    store.update(key.id, budget=2.0, period="total")

    budgets = {f"{b.scope} {b.subject}": b for b in sv.budgets_left(synced)}
    assert set(budgets) == {"team news", "user reader-1", "key batch-jobs"}
    news = budgets["team news"]
    assert news.spent > 0.001 and news.left == 0 and news.row()["Used"].endswith("%")
    assert list(budgets)[0] == "team news"  # most used first
    assert budgets["key batch-jobs"].resets == "A total budget never resets"

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page("llmops/ui/pages/spend.py").run()
    assert not at.exception
    assert "Spent out, so calls are refused until the period resets: team news" in texts(at.error)
    table = next(d.value for d in at.dataframe if "Left" in d.value.columns)
    assert list(table["Budget of"]) == [
        "team news",
        *sorted(set(budgets) - {"team news"}, key=lambda k: -budgets[k].used),
    ]
    assert list(table["Left"])[0] == "$0.000000"


def test_the_playground_runs_a_few_rows_of_a_dataset(synced):
    at = prompts_page("Playground")
    at.radio(key="play_source").set_value("Rows of a dataset").run()
    assert at.multiselect(key="play_rows").value == ["council-budget", "rail-strike", "exoplanet-water"]
    at.button(key="play_run").click().run()
    assert not at.exception and not at.error, texts(at.error)
    page = texts(at.html)
    assert [row.split('"')[1] for row in page.split("<tr data-case=")[1:]] == [
        "council-budget",
        "rail-strike",
        "exoplanet-water",
    ]
    assert page.count('<div class="text llmops-output">') == 6


def frames(at: AppTest):
    return [d.value for d in at.dataframe]


def test_no_table_shows_python_none_or_a_raw_column_name(synced, tmp_path):
    """Every table of every page, on a database with traffic, feedback, eval runs and an experiment."""
    seed.seed_traffic(synced, requests=24)
    seed.seed_eval_runs(synced, tmp_path)
    pages = {
        "prompts": [("prompt_view", v) for v in ("Versions", "Numbers", "Diff", "Labels")],
        "eval_runs": [],
        "experiments": [],
        "spend": [],
        "gateway": [],
        "monitoring": [],
    }
    checked = 0
    for page, views in pages.items():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        at.run()
        if page != "prompts":
            at.switch_page(f"llmops/ui/pages/{page}.py").run()
        for key, value in views or [(None, None)]:
            if key:
                at.radio(key=key).set_value(value).run()
            assert not at.exception, [e.value for e in at.exception]
            for frame in frames(at):
                checked += 1
                columns = [str(c) for c in frame.columns]
                assert not [c for c in columns if "_" in c], (page, value, columns)
                cells = {str(v) for v in frame.astype(str).values.ravel()}
                assert not cells & {"None", "nan", "NaN", "<NA>"}, (
                    page,
                    value,
                    columns,
                    cells & {"None", "nan"},
                )
    assert checked >= 12
