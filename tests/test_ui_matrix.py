"""The results matrix: rating a cell, shared links, the exported report, and its cost to draw.

Pages run under streamlit.testing (AppTest) on a real SQLite database, with the
in-process gateway writing its real ledger.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from llmops.evaluation.assertions import AssertionResult
from llmops.evaluation.runner import CaseResult, RunResult
from llmops.evaluation.storage import list_runs, load_run
from llmops.experiments.feedback import feedback_for_request
from llmops.ui import matrix_view as mv
from llmops.ui.gateway_client import close_all
from tests.e2e import seed

ROOT = Path(__file__).resolve().parents[1]
ARTICLE = (
    "The harbour bridge reopened on Monday after a two-year repair costing £85m. "
    "About 40,000 vehicles are expected to cross it each day."
)


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


def open_page(page: str, **query: str | list[str]) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(f"llmops/ui/pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def param(at: AppTest, key: str) -> list[str]:
    """A query parameter as a list of its values (AppTest gives one value as a string)."""
    value = at.query_params.get(key)
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def html_of(at: AppTest) -> str:
    return "\n".join(str(h.value) for h in at.html)


CHECKS = "- type: not-refusal\n- type: contains\n  value: bridge\n"


def run_comparison(at: AppTest) -> None:
    at.text_area(key="compare_var_text").input(ARTICLE)
    at.text_area(key="compare_checks:summarize:Type the variables").input(CHECKS)
    at.button(key="compare_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def ledger_row(database_url: str, request_id: str):
    from llmops.db import session_scope
    from llmops.governance.ledger_models import LedgerRow

    with session_scope(database_url) as session:
        row = session.get(LedgerRow, request_id)
        return None if row is None else (row.prompt_name, row.prompt_version, row.model)


def test_rating_a_cell_is_feedback_on_its_ledger_row_and_shows_on_eval_runs(synced):
    at = open_page("compare")
    run_comparison(at)
    run_id = param(at, "run")[0]
    rate = f"compare_rate:{run_id}"
    at.selectbox(key=f"{rate}:column").set_value("summarize@staging|demo").run()
    at.radio(key=f"{rate}:rating").set_value("👍 Good")
    at.text_input(key=f"{rate}:comment").input("keeps the figures")
    at.button(key=f"{rate}:save").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    notice = "\n".join(s.value for s in at.success)
    [request_id] = re.findall(r"Feedback saved on request (\S+) ", notice)

    [feedback] = feedback_for_request(request_id, database_url=synced)
    assert (feedback.thumbs, feedback.score, feedback.comment) == ("up", 1.0, "keeps the figures")
    assert feedback.source == "llmops-ui"
    close_all()  # the ledger writer drains: the rated request is the call that produced the cell
    assert ledger_row(synced, request_id) == ("summarize", 3, "demo")
    page = html_of(at)
    staging = page.split('data-column="summarize@staging|demo"')[1].split("</td>")[0]
    assert "👍 1 👎 0 · rated 1.00 · 1 comment" in staging and "keeps the figures" in staging

    # A score, on the other cell, then the run saved: Eval runs shows both.
    at = open_page("compare", run=run_id, prompt="summarize")
    at.radio(key=f"{rate}:rating").set_value("Score 0–1")
    at.slider(key=f"{rate}:score").set_value(0.25)
    at.button(key=f"{rate}:save").click().run()
    at.button(key="compare_save").click().run()
    assert [r.id for r in list_runs(synced)] == [run_id]
    saved = load_run(run_id, synced)
    assert len(saved.parameters[mv.REQUEST_IDS]) == 2

    runs = open_page("eval_runs", run=run_id)
    assert "Feedback: 2 output(s) rated (👍 1 👎 0, mean rating 0.62)" in "\n".join(
        c.value for c in runs.caption
    )
    assert "rated 0.25" in html_of(runs)

    # The experiment on these versions shows the ratings given in the app beside its own figures.
    seed.seed_traffic(synced, requests=12)
    experiments = open_page("experiments")
    captions = "\n".join(c.value for c in experiments.caption)
    assert "Ratings given in the app to these versions' outputs" in captions
    assert "v2 1 rated, mean 0.25, v3 1 rated, mean 1.00" in captions


def test_an_output_without_a_request_cannot_be_rated(synced, tmp_path):
    seed.seed_eval_runs(synced, tmp_path)
    # The same suite again: every answer comes from the cache, so no gateway request made it.
    again = asyncio.run(seed._run_suite(synced, seed.write_suite(tmp_path, "summary-checks", "summarize:2"), None))
    assert all(r.cached for r in again.results) and not again.parameters["request_ids"]
    baseline = again
    at = open_page("eval_runs", run=baseline.id)
    assert at.selectbox(key="eval_run").value == baseline.id
    captions = "\n".join(c.value for c in at.caption)
    assert "Feedback needs the output's gateway request" in captions
    assert not [b for b in at.button if b.key and b.key.endswith(":save")]
    cell = mv.build_matrix(baseline, database_url=synced).rows[0].cells[0]
    assert cell is not None
    with pytest.raises(Exception, match="no gateway request to rate"):
        mv.rate_cell(cell, database_url=synced, thumbs="up")


def test_a_reload_or_a_shared_link_reopens_the_comparison_and_its_choices(synced):
    at = open_page("compare")
    at.multiselect(key="compare_versions:summarize").set_value(["summarize:1", "summarize:3"])
    run_comparison(at)
    at.radio(key="compare_mode").set_value("differences").run()
    query = {k: param(at, k) for k in ("prompt", "versions", "models", "mode", "run")}
    assert query["versions"] == ["summarize:1", "summarize:3"] and query["mode"] == ["differences"]

    # A new session (a reload, or the link in another browser) on the same server.
    again = open_page("compare", **{k: v if len(v) > 1 else v[0] for k, v in query.items()})
    assert again.multiselect(key="compare_versions:summarize").value == ["summarize:1", "summarize:3"]
    assert again.radio(key="compare_mode").value == "differences"
    assert html_of(again) == html_of(at)  # the same unsaved comparison, not run again
    assert param(again, "run") == query["run"]


def test_the_eval_run_link_opens_the_run_and_its_filter(synced, tmp_path):
    baseline, current = seed.seed_eval_runs(synced, tmp_path)
    at = open_page("eval_runs", run=baseline.id, mode="failures")
    assert at.selectbox(key="eval_run").value == baseline.id  # not the newest
    assert at.radio(key="eval_mode").value == "failures"
    assert html_of(at).count("<tr data-case=") == 2
    # The run picked by hand then wins over the link's.
    at.selectbox(key="eval_run").set_value(current.id).run()
    at.run()
    assert at.selectbox(key="eval_run").value == current.id and param(at, "run") == [current.id]


def test_the_html_report_is_self_contained_with_every_output(synced, tmp_path):
    baseline, _ = seed.seed_eval_runs(synced, tmp_path)
    run = load_run(baseline.id, synced)
    matrix = mv.build_matrix(run, database_url=synced)
    report = mv.report_html(run, matrix)
    assert report.startswith("<!DOCTYPE html>") and "<style>" in report
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", report) and "@import" not in report
    for result in run.results:
        assert (result.output or "").split(".")[0] in report
    assert report.count("<details>") == len(run.results)
    assert "does not contain &#x27;unicorns&#x27;" in report  # a check's reason
    assert "None" not in report

    data = mv.results_json(run, matrix)
    assert '"rendered_prompt": "system: Summarize the news article' in data


def synthetic_run(versions: int, models: int, rows: int) -> RunResult:
    words = "the council approved a budget for new schools and roads after a long debate on tuesday".split()
    results = []
    for case in range(rows):
        for v in range(1, versions + 1):
            for m in range(models):
                text = " ".join(words[(case + v + i) % len(words)] for i in range(60))
                passed = (case + v + m) % 3 != 0
                results.append(
                    CaseResult(
                        case_id=f"case-{case:02d}",
                        prompt_id=f"summarize:{v}",
                        prompt_ref=f"summarize:{v}",
                        model_id=f"model-{m}",
                        model=f"model-{m}",
                        params={},
                        variables={"text": " ".join(words) * 3, "tone": "neutral"},
                        output=text,
                        error=None,
                        score=float(passed),
                        passed=passed,
                        reason="",
                        assertions=[
                            AssertionResult(
                                "contains", "contains", passed, float(passed), None, 1.0, False, "why"
                            )
                        ],
                        latency_ms=120.0,
                        cost=0.0001,
                    )
                )
    return RunResult(
        id=uuid.uuid4().hex[:12],
        suite="perf",
        suite_path=None,
        prompts={f"summarize:{v}": f"summarize:{v}" for v in range(1, versions + 1)},
        models=[f"model-{m}" for m in range(models)],
        parameters={mv.REQUEST_IDS: {}},
        git_commit=None,
        results=results,
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
    )


def test_four_versions_by_two_models_by_twenty_rows_build_in_well_under_three_seconds(synced):
    run = synthetic_run(4, 2, 20)
    started = time.perf_counter()
    matrix = mv.build_matrix(run, database_url=synced)
    page = mv.matrix_html(matrix, matrix.shown("all"))
    elapsed = time.perf_counter() - started
    assert len(matrix.columns) == 8 and len(matrix.rows) == 20 and page.count("<details>") == 160
    assert elapsed < 1.5, f"{elapsed:.2f} s to build the matrix"


def test_experiment_and_spend_links_open_what_they_name(synced):
    from llmops.experiments.service import ExperimentService

    seed.seed_traffic(synced, requests=8)
    service = ExperimentService(synced)
    service.stop(seed.EXPERIMENT, actor="test")
    service.create("newer", "summarize", ["a=production", "b=staging"], actor="test")
    plain = open_page("experiments")
    assert plain.selectbox(key="experiment").value == "newer"  # running ones first
    linked = open_page("experiments", experiment=seed.EXPERIMENT)
    assert linked.selectbox(key="experiment").value == seed.EXPERIMENT
    assert param(linked, "experiment") == [seed.EXPERIMENT]

    spend = open_page("spend", period="Last hour")
    assert spend.selectbox(key="spend_span").value == "Last hour"
    spend.selectbox(key="spend_span").set_value("All time").run()
    assert param(spend, "period") == ["All time"]


def test_a_cli_runs_expected_outputs_come_from_its_suite_file(synced, tmp_path):
    import yaml

    suite = tmp_path / "expected.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "expected",
                "prompts": ["summarize:2"],
                "models": ["demo"],
                "cases": [
                    {
                        "id": "bridge",
                        "vars": {"text": ARTICLE},
                        "expected": "The bridge reopened.",
                        "assert": [{"type": "contains", "value": "bridge"}],
                    },
                    {"id": "no-expectation", "vars": {"text": "A short note."}},
                ],
            }
        ),
        encoding="utf-8",
    )
    run = seed.run_suite_file(synced, suite)
    matrix = mv.build_matrix(run, database_url=synced)
    assert {r.case_id: r.expected for r in matrix.rows} == {
        "bridge": "The bridge reopened.",
        "no-expectation": None,
    }
    assert all(c.rendered_prompt.startswith("system: ") for r in matrix.rows for c in r.present())
    assert "<pre>The bridge reopened.</pre>" in mv.matrix_html(matrix, matrix.rows)
