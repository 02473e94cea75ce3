"""The app's data helpers, without Streamlit: what each page computes from the library.

Helpers that aggregate in SQL run on SQLite and on the machine's PostgreSQL (the
`database_url` fixture), since time buckets are written per dialect.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from llmops import Registry
from llmops.db import session_scope
from llmops.errors import Conflict, InvalidInput
from llmops.evaluation.assertions import AssertionSpec
from llmops.evaluation.suites import CaseSpec
from llmops.experiments.models import FeedbackRow
from llmops.experiments.service import ExperimentService
from llmops.governance.ledger_models import LedgerRow
from llmops.ui import compare as cmp
from llmops.ui import eval_runs as er
from llmops.ui import experiments_view as ex
from llmops.ui import matrix_view as mv
from llmops.ui import prompts_view as pv
from llmops.ui import spend_view as sv
from llmops.ui.errors import describe_error
from llmops.ui.settings import UISettings, safe_database_url
from llmops.ui.textdiff import side_by_side, word_diff_html
from llmops.ui.timebuckets import bucket_for
from tests.e2e import seed

ROOT = Path(__file__).resolve().parents[1]


# --- ledger rows as the gateway writes them ---------------------------------------------------


def ledger_row(at: datetime, **fields) -> LedgerRow:
    defaults = dict(
        id=f"req-{uuid.uuid4().hex}",
        created_at=at,
        model="demo",
        outcome="success",
        status=200,
        input_tokens=10,
        output_tokens=5,
        cost=0.001,
        latency_ms=20.0,
    )
    return LedgerRow(**{**defaults, **fields})


def add(database_url: str, *rows) -> None:
    with session_scope(database_url) as session:
        for row in rows:
            session.add(row)


# --- spend over time ------------------------------------------------------------------------


def test_spend_is_bucketed_by_hour_and_group(database_url):
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    add(
        database_url,
        ledger_row(base + timedelta(minutes=5), model="gpt-4o", cost=0.010, key_name="web"),
        ledger_row(base + timedelta(minutes=50), model="gpt-4o", cost=0.020, key_name="web"),
        ledger_row(base + timedelta(minutes=55), model="demo", cost=0.0, key_id="key_1"),
        ledger_row(base + timedelta(hours=2, minutes=1), model="gpt-4o", cost=0.005, input_tokens=100),
        ledger_row(base + timedelta(hours=2, minutes=2), model="mystery", cost=None, input_tokens=7),
    )
    points = sv.spend_over_time(database_url, by="model", bucket="hour")
    by_key = {(p.bucket, p.group): p for p in points}
    first = by_key[(base, "gpt-4o")]
    assert first.requests == 2 and first.cost == pytest.approx(0.030) and first.tokens == 30
    assert by_key[(base, "demo")].cost == 0.0
    later = base + timedelta(hours=2)
    assert by_key[(later, "gpt-4o")].input_tokens == 100
    assert by_key[(later, "mystery")].unpriced_requests == 1 and by_key[(later, "mystery")].cost == 0.0
    assert [p.bucket for p in points] == sorted(p.bucket for p in points)

    keys = {p.group for p in sv.spend_over_time(database_url, by="key", bucket="day")}
    assert keys == {"web", "key_1", sv.NONE_LABEL}  # key by name, else by id; never a secret

    # A window that starts exactly at `later`, whatever the time of day the test runs.
    recent = sv.spend_over_time(database_url, by="model", bucket="minute", since=datetime.now(UTC) - later)
    assert {(p.group, p.bucket) for p in recent} == {
        ("gpt-4o", later + timedelta(minutes=1)),
        ("mystery", later + timedelta(minutes=2)),
    }


def test_spend_beyond_the_top_groups_is_summed_as_other(database_url):
    now = datetime.now(UTC) - timedelta(minutes=5)
    add(database_url, *[ledger_row(now, user=f"user-{i}", cost=0.01 * (i + 1)) for i in range(5)])
    points = sv.spend_over_time(database_url, by="user", bucket="day", top=2)
    groups = {p.group: p for p in points}
    assert set(groups) == {"user-4", "user-3", sv.OTHER_LABEL}
    assert groups[sv.OTHER_LABEL].requests == 3
    assert groups[sv.OTHER_LABEL].cost == pytest.approx(0.01 + 0.02 + 0.03)


def test_spend_span_sizes_the_buckets(database_url):
    assert sv.ledger_span(database_url) is None
    add(database_url, ledger_row(datetime.now(UTC) - timedelta(minutes=20)))
    span = sv.ledger_span(database_url, timedelta(days=7))
    assert timedelta(minutes=19) < span < timedelta(minutes=22)
    assert bucket_for(span) == "minute"
    assert bucket_for(timedelta(days=2)) == "hour" and bucket_for(None) == "day"


def test_spend_rejects_an_unknown_dimension(database_url):
    with pytest.raises(InvalidInput, match="choose one of model, key, user, prompt, team"):
        sv.spend_over_time(database_url, by="colour")


# --- experiments ---------------------------------------------------------------------------------


def test_experiment_series_per_variant_with_feedback(database_url):
    Registry(database_url).sync(ROOT / "prompts")
    ExperimentService(database_url).create("ab", "summarize", ["control=production", "candidate=staging"])
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    rows = [
        ledger_row(hour + timedelta(minutes=1), experiment="ab", variant="control", latency_ms=10.0),
        ledger_row(hour + timedelta(minutes=2), experiment="ab", variant="control", latency_ms=30.0),
        ledger_row(
            hour + timedelta(minutes=3),
            experiment="ab",
            variant="control",
            outcome="upstream_error",
            latency_ms=999.0,
        ),
        ledger_row(hour + timedelta(minutes=4), experiment="ab", variant="candidate", latency_ms=50.0),
        ledger_row(hour + timedelta(minutes=5), experiment="other", variant="control"),
    ]
    add(database_url, *rows)
    add(
        database_url,
        FeedbackRow(request_id=rows[0].id, score=1.0),
        FeedbackRow(request_id=rows[1].id, score=0.0),
        FeedbackRow(request_id=rows[3].id, score=1.0),
        FeedbackRow(request_id=rows[3].id, comment="great", score=None),
    )
    points = {p.variant: p for p in ex.experiment_over_time(database_url, "ab", bucket="hour")}
    control, candidate = points["control"], points["candidate"]
    assert control.bucket == hour and control.requests == 3 and control.errors == 1
    assert control.error_rate == pytest.approx(1 / 3)
    assert control.latency_ms == pytest.approx(20.0)  # failures say nothing about latency
    assert control.feedback_mean == pytest.approx(0.5) and control.feedback_count == 2
    assert candidate.requests == 1 and candidate.feedback_mean == 1.0 and candidate.feedback_count == 1
    assert ex.traffic_span(database_url, "ab") == timedelta(minutes=3)
    assert ex.traffic_span(database_url, "nothing") is None


def test_variant_rows_carry_intervals_and_name_the_control(database_url):
    Registry(database_url).sync(ROOT / "prompts")
    ExperimentService(database_url).create("ab", "summarize", ["control=production", "candidate=staging"])
    now = datetime.now(UTC) - timedelta(minutes=1)
    rows = [ledger_row(now, experiment="ab", variant="control" if i % 2 else "candidate") for i in range(12)]
    add(database_url, *rows)
    add(database_url, *[FeedbackRow(request_id=r.id, score=float(i % 3 == 0)) for i, r in enumerate(rows)])
    report = ex.experiment_report("ab", database_url=database_url)
    table = {r["variant"]: r for r in ex.variant_rows(report)}
    assert set(table) == {"control (control)", "candidate"}
    for row in table.values():
        assert row["requests"] == 6 and row["rated"] == 6
        assert row["feedback 95% CI low"] <= row["feedback mean"] <= row["feedback 95% CI high"]
    intervals = ex.feedback_intervals(report)
    assert [i["variant"] for i in intervals] == ["control", "candidate"]
    assert [e.name for e in ex.list_experiments(database_url)] == ["ab"]


def test_the_actual_split_is_shown_and_a_sample_ratio_mismatch_flagged(database_url):
    Registry(database_url).sync(ROOT / "prompts")
    ExperimentService(database_url).create("ab", "summarize", ["control=production", "candidate=staging"])
    now = datetime.now(UTC) - timedelta(minutes=1)
    # 50 vs 77 on a 50/50 split: p ≈ 0.017, not a mismatch at 0.01; 50 vs 90 is one.
    add(database_url, *[ledger_row(now, experiment="ab", variant="control") for _ in range(50)])
    add(database_url, *[ledger_row(now, experiment="ab", variant="candidate") for _ in range(77)])
    check = ex.split_check(ex.experiment_report("ab", database_url=database_url))
    assert check.counts == {"control": 50, "candidate": 77} and not check.mismatch
    assert check.p_value == pytest.approx(0.01657, abs=1e-4) and "control 50, candidate 77" in check.message
    assert {r["variant"]: r["actual %"] for r in check.rows()} == {"control": 39.37, "candidate": 60.63}
    rows = ex.variant_rows(ex.experiment_report("ab", database_url=database_url))
    assert [(r["configured share %"], r["actual share %"]) for r in rows] == [(50.0, 39.37), (50.0, 60.63)]

    add(database_url, *[ledger_row(now, experiment="ab", variant="candidate") for _ in range(13)])
    check = ex.split_check(ex.experiment_report("ab", database_url=database_url))
    assert check.mismatch and check.p_value < 0.01
    assert "Sample-ratio mismatch: control 50, candidate 90" in check.message
    assert "expect control 70, candidate 70" in check.message


def test_chi_square_tail_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for statistic, df in [
        (0.0, 1),
        (0.5, 1),
        (5.74, 1),
        (11.4, 1),
        (3.2, 2),
        (40.0, 3),
        (150.0, 5),
        (7.0, 12),
    ]:
        assert ex.chi_square_sf(statistic, df) == pytest.approx(
            scipy_stats.chi2.sf(statistic, df), rel=1e-9, abs=1e-15
        )


# --- prompts -------------------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path) -> Registry:
    registry = Registry(f"sqlite:///{tmp_path / 'llmops.db'}", cache_ttl=0)
    registry.sync(ROOT / "prompts")
    return registry


def test_label_questions_say_what_will_happen(registry):
    history = registry.history("summarize")
    assert pv.current_labels(history) == {"production": 2, "staging": 3}
    assert pv.move_question(history, "production", 3).startswith(
        "Move summarize@production from version 2 to version 3?"
    )
    assert "(new label) to version 1" in pv.move_question(history, "canary", 1)
    with pytest.raises(Conflict, match="already points at version 2"):
        pv.move_question(history, "production", 2)
    with pytest.raises(InvalidInput, match="no version 9"):
        pv.move_question(history, "production", 9)
    with pytest.raises(InvalidInput, match="'latest' is implied"):
        pv.move_question(history, "latest", 1)

    registry.set_label("summarize", 3, "production")
    history = registry.history("summarize")
    question, target = pv.rollback_question(history, "production")
    assert target == 2 and "back from version 3 to version 2" in question
    registry.rollback("summarize", "production")
    assert registry.get("summarize@production").version == target  # the question told the truth


def test_version_diff_lines_up_changes_side_by_side(registry):
    diff = pv.diff_versions(registry, "summarize", 1, 2)
    kinds = [line.kind for line in diff.lines]
    assert "changed" in kinds or "added" in kinds
    assert diff.lines[0].left == diff.lines[0].right == "[system]"
    assert pv.config_changes_rows(diff.diff.model_config_changes) == []
    rows = pv.config_changes_rows(
        {"added": {"top_p": 0.9}, "removed": {}, "changed": {"temperature": {"from": 0.2, "to": 0.7}}}
    )
    assert rows == [
        {"key": "top_p", "change": "added", "before": "", "after": "0.9"},
        {"key": "temperature", "change": "changed", "before": "0.2", "after": "0.7"},
    ]


def test_side_by_side_and_word_diffs():
    lines = side_by_side("a\nb\nc", "a\nB\nc\nd")
    assert [(line.left, line.right, line.kind) for line in lines] == [
        ("a", "a", "equal"),
        ("b", "B", "changed"),
        ("c", "c", "equal"),
        (None, "d", "added"),
    ]
    marked = word_diff_html("The cat sat.", "The big cat sat <b>.")
    assert "big" in marked and "&lt;b&gt;" in marked and "<b>" not in marked  # text is escaped
    assert word_diff_html("same words", "same words") == "same words"
    assert "line-through" in word_diff_html("keep drop", "keep")


# --- compare ------------------------------------------------------------------------------------


def test_datasets_are_suites_and_case_files(tmp_path):
    found = cmp.list_datasets(ROOT / "evals")
    assert [(d.path.name, d.kind) for d in found] == [
        ("summarize.yaml", "suite"),
        ("summarize_more.csv", "cases"),
    ]
    suite_rows = cmp.dataset_rows(found[0])
    council = next(r for r in suite_rows if r.id == "council-budget")
    assert council.context == council.vars["text"]  # the suite's `context: "{{ text }}"`, rendered
    assert {"faithfulness", "contains", "rouge-l"} <= {a.type for a in council.assertions}
    assert [r.id for r in cmp.dataset_rows(found[1])] == ["walk-in-clinic", "library-reopens"]
    assert cmp.list_datasets(tmp_path / "missing") == []


def test_uploaded_rows_get_ids_and_errors_name_the_file():
    rows = cmp.uploaded_rows("mine.csv", b"text,expected\nOne. Two.,One.\nThree.,\n")
    assert [(r.id, r.vars, r.expected) for r in rows] == [
        ("row-1", {"text": "One. Two."}, "One."),
        ("row-2", {"text": "Three."}, None),
    ]
    jsonl = cmp.uploaded_rows("mine.jsonl", b'{"id": "a", "text": "x"}\n')
    assert [(r.id, r.vars) for r in jsonl] == [("a", {"text": "x"})]
    with pytest.raises(InvalidInput, match="mine.jsonl, line 1: not JSON"):
        cmp.uploaded_rows("mine.jsonl", b"{nope\n")
    with pytest.raises(InvalidInput, match="upload a .csv or .jsonl"):
        cmp.uploaded_rows("mine.xlsx", b"")


def test_checks_are_read_as_suite_assertions():
    assert cmp.parse_checks("") == []
    specs = cmp.parse_checks(cmp.default_checks(["text"]))
    assert [(s.type, s.negate) for s in specs] == [("refusal", True), ("faithfulness", False)]
    assert specs[1].value == "{{ text }}"
    with pytest.raises(InvalidInput, match="must be a YAML list"):
        cmp.parse_checks("type: contains")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        cmp.parse_checks("- [unclosed")
    with pytest.raises(InvalidInput, match="needs a value"):
        cmp.parse_checks("- type: contains")


def test_a_request_is_checked_before_any_call(registry):
    views = [registry.get("summarize:2"), registry.get("summarize:3")]
    assert cmp.prompt_variables(views) == ["text"]
    ok = cmp.ComparisonRequest(["summarize:2", "summarize:3"], ["demo"], [cmp.manual_case({"text": "x"})])
    cmp.validate_request(ok, views)
    too_many_models = cmp.ComparisonRequest(ok.prompt_refs, ["a", "b", "c", "d"], ok.cases)
    with pytest.raises(InvalidInput, match="pick 1 to 3 models"):
        cmp.validate_request(too_many_models, views)
    missing = cmp.ComparisonRequest(ok.prompt_refs, ["demo"], [CaseSpec(id="r1", vars={"body": "x"})])
    with pytest.raises(
        InvalidInput, match="row r1 lacks variables: summarize:2 needs text; summarize:3 needs text"
    ):
        cmp.validate_request(missing, views)
    suite = cmp.build_suite(
        cmp.ComparisonRequest(ok.prompt_refs, ["demo"], ok.cases, checks=[AssertionSpec(type="is-json")])
    )
    assert [p.ref for p in suite.prompts] == ["summarize:2", "summarize:3"]
    assert suite.params == {"user": "llmops-ui"}  # the app's calls show as one user in Spend
    assert [a.type for a in suite.expanded_cases()[0].assertions] == ["is-json"]


# --- eval runs ------------------------------------------------------------------------------


def test_matrix_modes_csv_and_baseline(tmp_path):
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    seed.sync_prompts(url)
    baseline, current = seed.seed_eval_runs(url, tmp_path)

    run = er.load_run(baseline.id, url)
    matrix = mv.build_matrix(run, database_url=url)
    assert [r.case_id for r in matrix.rows] == ["figures", "echo-prefix", "impossible"]
    assert [c.label for c in matrix.columns] == [
        "candidate (summarize:2) · demo",
        "first (summarize:1) · demo",
    ]
    assert matrix.variable_names == ["text"]
    assert [r.case_id for r in matrix.shown("failures")] == ["echo-prefix", "impossible"]
    # v2 echoes "Article: ..." and v1 does not: every row's outputs differ.
    assert [r.case_id for r in matrix.shown("differences")] == ["figures", "echo-prefix", "impossible"]
    assert [c.verdict for c in matrix.rows[1].present()] == ["pass", "fail"]

    rows = list(
        csv.DictReader(io.StringIO(mv.results_csv(current, mv.build_matrix(current, database_url=url))))
    )
    assert len(rows) == 6
    assert {r["prompt_ref"] for r in rows} == {"summarize:1"}
    assert all(r["output"] and r["rendered_prompt"] and r["variables"].startswith('{"text"') for r in rows)

    comparison = er.compare_with_baseline(url, baseline.id, current)
    assert comparison.regressed
    assert er.changes_table(comparison) == [
        {
            "Change": "regressed",
            "Case": "echo-prefix",
            "Prompt": "candidate",
            "Model": "demo",
            "Baseline score": "1.000",
            "Current score": "0.000",
        }
    ]
    assert {r["Prompt"]: r["Change"] for r in er.baseline_table(comparison)} == {
        "candidate": "-0.333",
        "first": "+0.000",
    }
    listed = er.recent_runs(url)
    assert [r.id for r in listed] == [current.id, baseline.id]
    assert listed[0].label.startswith(f"summary-checks · {current.id} ·") and listed[0].label.endswith(
        "2/6 passed"
    )


def case_result(case_id: str, passed: bool, *, prompt_id: str = "summarize:2", checks: bool = True, **kw):
    from llmops.evaluation.assertions import AssertionResult
    from llmops.evaluation.runner import CaseResult

    assertions = (
        [AssertionResult("contains", "contains", passed, float(passed), None, 1.0, False, "")]
        if checks
        else []
    )
    return CaseResult(
        case_id=case_id,
        prompt_id=prompt_id,
        prompt_ref=kw.pop("prompt_ref", prompt_id),
        model_id="demo",
        model="demo",
        params={},
        variables=kw.pop("variables", {}),
        output="out",
        error=None,
        score=float(passed),
        passed=passed,
        reason="",
        assertions=assertions,
        **kw,
    )


def run_of(*results, run_id: str | None = None, prompts: dict | None = None, **kw):
    from llmops.evaluation.runner import RunResult

    return RunResult(
        id=run_id or uuid.uuid4().hex[:12],
        suite="s",
        suite_path=None,
        prompts=prompts if prompts is not None else {r.prompt_id: r.prompt_ref for r in results},
        models=["demo"],
        parameters=kw.pop("parameters", {}),
        git_commit=None,
        results=list(results),
        started_at=datetime.now(UTC),
        finished_at=datetime.now(UTC),
    )


def test_typed_rows_are_cases_named_by_their_variables():
    bridge, budget = cmp.manual_case({"text": "The bridge reopened."}), cmp.manual_case({"text": "A budget."})
    assert bridge.id != budget.id and bridge.id.startswith("typed-")
    assert cmp.manual_case({"text": "The bridge reopened."}).id == bridge.id  # the same inputs, the same case
    assert cmp.manual_case({"a": "1", "b": "2"}).id == cmp.manual_case({"b": "2", "a": "1"}).id
    assert cmp.manual_case({"text": "x"}, "mine").id == "mine"


def test_runs_with_no_case_in_common_get_no_verdict():
    # Two comparisons of typed rows that have nothing to do with each other.
    first = run_of(case_result(cmp.manual_case({"text": "bridge"}).id, True))
    second = run_of(case_result(cmp.manual_case({"text": "budget"}).id, False))
    verdict = er.baseline_verdict(reports_compare(first, second))
    assert verdict.kind == "nothing in common" and "share no case" in verdict.message

    again = run_of(case_result(cmp.manual_case({"text": "bridge"}).id, False))
    verdict = er.baseline_verdict(reports_compare(first, again))
    assert verdict.kind == "regressed" and "1 case(s) that passed now fail" in verdict.message
    same = run_of(case_result(cmp.manual_case({"text": "bridge"}).id, True))
    assert er.baseline_verdict(reports_compare(first, same)).kind == "no regression"


def test_a_result_nothing_checked_is_no_pass(tmp_path):
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    unchecked = case_result("r1", True, checks=False)
    assert mv.verdict_of(unchecked) == "no checks"
    assert mv.verdict_of(case_result("r1", True)) == "pass"
    matrix = mv.build_matrix(run_of(unchecked), database_url=url, with_feedback=False)
    assert matrix.shown("failures") == [] and matrix.shown("differences") == []
    both = mv.build_matrix(
        run_of(unchecked, case_result("r2", False, checks=False)), database_url=url, with_feedback=False
    )
    [summary] = both.summary_rows()
    assert summary["Passed"] == "no checks" and summary["Mean score"] == "–"
    assert 'class="badge nochecks">no checks<' in mv.matrix_html(both, both.rows)
    assert "badge pass" not in mv.matrix_html(both, both.rows)
    assert er.is_evidence({}) and not er.is_evidence({"origin": "app-compare", "evidence": False})


def test_a_baseline_naming_the_same_version_another_way_lines_up():
    # CI pinned `summarize:2`; the app picked v2 by its label, production.
    ci = run_of(case_result("council", True, prompt_id="summarize:2"))
    app = run_of(case_result("council", False, prompt_id="summarize@production", prompt_ref="summarize:2"))
    assert er.baseline_verdict(reports_compare(ci, app)).kind == "nothing in common"
    verdict = er.baseline_verdict(reports_compare(er.aligned_baseline(ci, app), app))
    assert verdict.kind == "regressed" and "1 in common" in verdict.message
    # The same id on both sides is kept, whatever it resolved to: production then and now.
    before = run_of(case_result("council", True, prompt_id="summarize@production", prompt_ref="summarize:1"))
    assert er.aligned_baseline(before, app) is before


def reports_compare(baseline, current):
    from llmops.evaluation.reports import compare

    return compare(baseline, current)


# --- settings and errors -------------------------------------------------------------------------


def test_settings_never_show_a_password(monkeypatch):
    monkeypatch.setenv("LLMOPS_DATABASE_URL", "postgresql://app:hunter2@db.internal:5432/llmops")
    monkeypatch.setenv("LLMOPS_GATEWAY_URL", "http://gateway:4000")
    monkeypatch.setenv("LLMOPS_API_KEY", "sk-llmops-secret")
    settings = UISettings.from_env()
    assert "hunter2" not in settings.database_label and "***" in settings.database_label
    assert settings.gateway_label == "gateway at http://gateway:4000"
    assert "sk-llmops-secret" not in repr(settings)
    assert safe_database_url("not a url") == "(unreadable database URL; check LLMOPS_DATABASE_URL)"


def test_errors_read_as_actions():
    from sqlalchemy.exc import OperationalError

    db = OperationalError("SELECT 1", {}, Exception("connection refused\nmore detail"))
    message = describe_error(db, "postgresql://app:***@db/llmops")
    assert message.startswith(
        "The database postgresql://app:***@db/llmops could not be read (connection refused)"
    )
    assert "Check LLMOPS_DATABASE_URL" in message
    assert describe_error(InvalidInput("pick 2 to 4 versions"), "x") == "pick 2 to 4 versions"
    assert "reload the page" in describe_error(RuntimeError("boom"), "x")


# --- per-version numbers and app ratings, on both backends ------------------------------------


def test_version_numbers_and_series_on_each_backend(database_url):
    from llmops.experiments.feedback import record_feedback
    from llmops.ui import version_stats as vs

    now = datetime.now(UTC)
    rows = [
        ledger_row(
            now - timedelta(hours=h),
            id=f"req-{v}-{h}",
            prompt_name="summarize",
            prompt_version=v,
            latency_ms=10.0 * (h + 1),
        )
        for v in (2, 3)
        for h in range(4)
    ]
    add(database_url, *rows, ledger_row(now, prompt_name="other", prompt_version=1))
    record_feedback("req-3-0", thumbs="up", source="llmops-ui", database_url=database_url)
    record_feedback("req-3-1", score=0.5, database_url=database_url)
    v3, v2 = vs.version_numbers(database_url, "summarize", [3, 2])
    assert (v3.requests, v2.requests) == (4, 4)
    assert (v3.latency_p50_ms, v3.latency_p95_ms) == (25.0, 40.0)
    assert v3.rated == 2 and v3.feedback_mean == pytest.approx(0.75) and v2.rated == 0
    points = vs.version_series(database_url, "summarize", bucket="hour", since=timedelta(hours=2, minutes=30))
    assert {p.version for p in points} == {"v2", "v3"} and sum(p.requests for p in points) == 6
    assert vs.app_ratings(database_url, "summarize", [2, 3]) == {3: (1, 1.0)}


def test_a_prompts_chart_buckets_fit_its_calls(database_url):
    from llmops.ui import version_stats as vs

    assert vs.prompt_span(database_url, "summarize") is None
    add(
        database_url,
        ledger_row(datetime.now(UTC) - timedelta(minutes=50), prompt_name="summarize", prompt_version=1),
    )
    span = vs.prompt_span(database_url, "summarize", since=timedelta(days=7))
    assert span is not None and timedelta(minutes=49) < span < timedelta(minutes=52)
    assert bucket_for(span) == "minute"
