"""The app's pages under streamlit.testing (AppTest), on a real SQLite database.

Each test starts the app from app.py as `streamlit run` would, goes to a page, uses its
widgets and checks what a person would see and what changed in the database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from llmops import Registry
from llmops.evaluation.storage import list_runs, load_run
from llmops.ui.eval_runs import NO_BASELINE
from llmops.ui.gateway_client import close_all
from tests.e2e import seed

ROOT = Path(__file__).resolve().parents[1]
PAGES = {
    "prompts": "llmops/ui/pages/prompts.py",
    "compare": "llmops/ui/pages/compare.py",
    "eval_runs": "llmops/ui/pages/eval_runs.py",
    "experiments": "llmops/ui/pages/experiments.py",
    "spend": "llmops/ui/pages/spend.py",
    "gateway": "llmops/ui/pages/gateway.py",
}
CHART = "vega_lite_chart"
ARTICLE = (
    "The harbour bridge reopened on Monday after a two-year repair costing £85m. "
    "About 40,000 vehicles are expected to cross it each day. "
    "The mayor said tolls would stay at £2. Cyclists get a new protected lane."
)


@pytest.fixture
def app_database(tmp_path, monkeypatch) -> str:
    """A fresh SQLite file the app reads through LLMOPS_DATABASE_URL, as `streamlit run` would."""
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    monkeypatch.setenv("LLMOPS_DATABASE_URL", url)
    monkeypatch.setenv("LLMOPS_EVALS_DIR", str(ROOT / "evals"))
    for name in ("LLMOPS_GATEWAY_URL", "LLMOPS_GATEWAY_CONFIG", "LLMOPS_MASTER_KEY", "LLMOPS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    yield url
    close_all()  # the in-process gateway the pages started, with its ledger writer


@pytest.fixture
def synced(app_database) -> str:
    seed.sync_prompts(app_database)
    return app_database


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    if page != "prompts":
        at.switch_page(PAGES[page]).run()
    assert_no_exception(at)
    return at


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def outputs_of(at: AppTest) -> list[str]:
    """Each cell's output text, in the matrix's order."""
    return [part.split("</div>")[0] for part in matrix_of(at).split('<div class="text llmops-output">')[1:]]


def row_case(fragment: str) -> str:
    return fragment.split('"')[1]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


# --- every page ---------------------------------------------------------------------------


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_in_one_navigation(synced, page):
    at = open_page(page)
    titles = [t.value for t in at.title]
    assert titles == [{"eval_runs": "Eval runs"}.get(page, page.capitalize())]
    assert not at.error, texts(at.error)


def test_an_empty_database_tells_the_user_what_to_run(app_database):
    prompts = open_page("prompts")
    assert "llmops prompts sync prompts/" in texts(prompts.info)
    runs = open_page("eval_runs")
    assert "llmops eval run" in texts(runs.info)
    experiments = open_page("experiments")
    assert "llmops experiments create" in texts(experiments.info)
    spend = open_page("spend")
    assert "No requests in this period" in texts(spend.info)


def test_an_unreachable_database_is_a_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_DATABASE_URL", "postgresql://ui:s3cret-pw@127.0.0.1:1/llmops")
    for page in ("prompts", "eval_runs", "spend"):
        at = open_page(page)
        message = texts(at.error)
        assert "could not be read" in message and "LLMOPS_DATABASE_URL" in message
        assert "s3cret-pw" not in message and "***" in message


# --- Prompts -----------------------------------------------------------------------------------


def test_prompts_page_shows_versions_labels_template_and_config(synced):
    at = open_page("prompts")
    listing = at.dataframe[0].value
    assert list(listing["prompt"]) == ["summarize"]
    assert "production→v2" in listing["labels"][0] and "staging→v3" in listing["labels"][0]
    versions = at.dataframe[1].value
    assert list(versions["version"]) == [3, 2, 1]
    # The production version is shown first: its messages, model config and variables.
    assert at.selectbox(key="prompt_version:summarize").value == 2
    code = texts(at.code)
    assert "Summarize the news article in at most three sentences." in code
    assert "{{ text }}" in code
    configs = [j.value for j in at.json]
    assert any('"model": "demo"' in c.replace("'", '"') or "demo" in c for c in configs)

    at.selectbox(key="prompt_version:summarize").set_value(3).run()
    assert "You are a news editor." in texts(at.code)


def test_prompts_page_diffs_two_versions_side_by_side(synced):
    at = open_page("prompts")
    at.radio(key="prompt_view").set_value("Diff").run()
    assert (
        at.selectbox(key="diff_old:summarize").value == 2
        and at.selectbox(key="diff_new:summarize").value == 3
    )
    table = texts(at.html)
    assert 'data-kind="changed"' in table
    assert "Summarize the news article in at most three sentences." in table  # v2, left
    assert "You are a news editor. Summarize the article in three sentences." in table  # v3, right

    at.selectbox(key="diff_old:summarize").set_value(1).run()
    at.selectbox(key="diff_new:summarize").set_value(1).run()
    assert "same template, variables and model config" in texts(at.info)


def test_moving_a_label_asks_first_and_cancel_changes_nothing(synced):
    at = open_page("prompts")
    at.radio(key="prompt_view").set_value("Labels").run()
    at.selectbox(key="move_label:summarize").set_value("production")
    at.selectbox(key="move_version:summarize").set_value(3)
    at.button(key="move_button").click().run()
    assert "Move summarize@production from version 2 to version 3?" in texts(at.warning)
    assert Registry(synced).get("summarize@production").version == 2  # nothing yet

    at.button(key="move:cancel").click().run()
    assert "Move summarize@production" not in texts(at.warning)
    assert Registry(synced).get("summarize@production").version == 2


def test_moving_a_label_then_rolling_it_back_with_confirmation(synced):
    at = open_page("prompts")
    at.radio(key="prompt_view").set_value("Labels").run()
    at.selectbox(key="move_label:summarize").set_value("production")
    at.selectbox(key="move_version:summarize").set_value(3)
    at.button(key="move_button").click().run()
    at.button(key="move:confirm").click().run()
    assert_no_exception(at)
    assert "summarize@production now points at version 3." in texts(at.success)
    assert Registry(synced).get("summarize@production").version == 3
    assert "production→v3" in at.dataframe[0].value["labels"][0]
    # The confirmed move reran the page on the Labels view, not the first one.
    assert at.radio(key="prompt_view").value == "Labels" and at.subheader[0].value == "Move a label"

    at.selectbox(key="rollback_label:summarize").set_value("production")
    at.button(key="rollback_button").click().run()
    assert "back from version 3 to version 2" in texts(at.warning)
    at.button(key="rollback:confirm").click().run()
    assert "rolled back to version 2" in texts(at.success)
    assert Registry(synced).get("summarize@production").version == 2
    events = at.dataframe[-1].value
    assert list(events["action"][:2]) == ["rollback", "move"]


def test_a_label_that_never_moved_cannot_be_rolled_back(synced):
    Registry(synced).create_version("greet", template="Hello {{ name }}", labels=["production"])
    at = open_page("prompts")
    at.radio(key="prompt_view").set_value("Labels").run()
    at.selectbox(key="prompt_name").set_value("greet").run()
    at.selectbox(key="rollback_label:greet").set_value("production")
    at.button(key="rollback_button").click().run()
    assert_no_exception(at)
    assert "greet@production had no earlier target to roll back to" in texts(at.warning)


def test_switching_prompts_shows_the_other_prompts_versions(synced):
    Registry(synced).create_version("greet", template="Hello {{ name }}")
    Registry(synced).create_version("greet", template="Hi {{ name }}!", labels=["production"])
    at = open_page("prompts")
    assert at.selectbox(key="prompt_name").value == "greet"  # listed by name
    at.selectbox(key="prompt_name").set_value("summarize").run()
    at.selectbox(key="prompt_version:summarize").set_value(3).run()
    at.selectbox(key="prompt_name").set_value("greet").run()
    assert_no_exception(at)
    assert at.selectbox(key="prompt_version:greet").value == 2
    assert "Hi {{ name }}!" in texts(at.code)

    compare = open_page("compare")
    compare.selectbox(key="compare_prompt").set_value("summarize").run()
    compare.selectbox(key="compare_prompt").set_value("greet").run()
    assert_no_exception(compare)
    assert compare.multiselect(key="compare_versions:greet").value == ["greet:2", "greet:1"]
    assert [t.label for t in compare.text_area][0] == "name"


# --- Compare -----------------------------------------------------------------------------------


def test_compare_runs_two_versions_on_demo_and_saves_an_eval_run(synced):
    at = open_page("compare")
    assert at.multiselect(key="compare_versions:summarize").value == ["summarize:2", "summarize:3"]
    assert at.multiselect(key="compare_models").value == ["demo"]
    at.text_area(key="compare_var_text").input(ARTICLE)
    at.button(key="compare_run").click().run()
    assert_no_exception(at)
    assert not at.error, texts(at.error)

    summary = at.dataframe[0].value
    # Named as picked (by label, as CLI suites name them) with the version that ran.
    assert list(summary["Version · model"]) == [
        "summarize@production (summarize:2) · demo",
        "summarize@staging (summarize:3) · demo",
    ]
    assert list(summary["Passed"]) == ["1/1", "1/1"]
    page = matrix_of(at)
    assert [o.count("The harbour bridge reopened on Monday") for o in outputs_of(at)] == [1, 1]
    assert (
        "summarize@production (summarize:2) · demo" in page
        and "summarize@staging (summarize:3) · demo" in page
    )
    assert "$0.000000" in page and "None" not in page

    at.text_input(key="compare_save_name").input("bridge check")
    at.button(key="compare_save").click().run()
    assert_no_exception(at)
    [saved] = list_runs(synced)
    assert saved.suite == "bridge check" and saved.total == 2 and saved.passed == 2
    assert f"Saved as comparison {saved.id}" in texts(at.success)
    # A throwaway comparison is marked as such: not eval evidence for these versions.
    assert saved.parameters["origin"] == "app-compare" and saved.parameters["evidence"] is False
    run = load_run(saved.id, synced)
    assert {r.prompt_ref for r in run.results} == {"summarize:2", "summarize:3"}
    assert all(r.assertions for r in run.results)  # graded by the default checks
    assert run.prompts == {"summarize@production": "summarize:2", "summarize@staging": "summarize:3"}


def test_a_comparison_lines_up_with_a_cli_run_of_the_same_suite(synced):
    from llmops.ui import eval_runs as er

    cli = seed.run_suite_file(synced, ROOT / "evals" / "summarize.yaml")
    assert cli.prompts == {"summarize@production": "summarize:2", "summarize@staging": "summarize:3"}
    at = open_page("compare")
    at.radio(key="compare_source").set_value("Rows of a dataset").run()
    at.multiselect(key="compare_rows").set_value(["council-budget", "rail-strike"])
    at.button(key="compare_run").click().run()
    at.button(key="compare_save_run").click().run()
    assert_no_exception(at)
    app_run = load_run(next(r.id for r in list_runs(synced) if r.id != cli.id), synced)
    assert app_run.prompts == cli.prompts  # the reference as chosen, and the version it resolved to

    verdict = er.baseline_verdict(er.compare_with_baseline(synced, cli.id, app_run))
    assert verdict.kind == "no regression" and "4 in common" in verdict.message


def test_compare_calls_carry_the_prompt_name_and_version_to_the_ledger(synced):
    from sqlmodel import select

    from llmops.db import session_scope
    from llmops.governance.ledger_models import LedgerRow

    at = open_page("compare")
    at.text_area(key="compare_var_text").input(ARTICLE)
    at.button(key="compare_run").click().run()
    assert_no_exception(at)
    assert not at.error, texts(at.error)
    assert [o.count("The harbour bridge reopened on Monday") for o in outputs_of(at)] == [1, 1]
    close_all()  # drains the in-process gateway's ledger writer
    with session_scope(synced) as session:
        rows = session.exec(select(LedgerRow).where(LedgerRow.user == "llmops-ui")).all()
        calls = sorted((r.prompt_name, r.prompt_version) for r in rows)
    assert calls == [("summarize", 2), ("summarize", 3)]


def matrix_of(at: AppTest) -> str:
    """The results matrix's HTML (st.html), with every cell's details."""
    return texts(at.html)


def test_compare_saved_as_an_eval_run_counts_as_evidence(synced):
    at = open_page("compare")
    at.text_area(key="compare_var_text").input(ARTICLE)
    at.button(key="compare_run").click().run()
    at.button(key="compare_save_run").click().run()
    assert_no_exception(at)
    [saved] = list_runs(synced)
    assert saved.parameters["evidence"] is True and f"Saved as eval run {saved.id}" in texts(at.success)

    runs = open_page("eval_runs")
    assert list(runs.dataframe[0].value["Kind"]) == ["app, saved as eval run"]


def test_rows_with_no_checks_show_no_checks_not_a_pass(synced, tmp_path):
    at = open_page("compare")
    at.text_area(key="compare_var_text").input(ARTICLE)
    at.text_area(key="compare_checks:summarize:Type the variables").input("")
    at.button(key="compare_run").click().run()
    assert_no_exception(at)
    assert list(at.dataframe[0].value["Passed"]) == ["no checks", "no checks"]
    page = matrix_of(at)
    assert page.count('class="badge nochecks">no checks<') == 2 and "badge pass" not in page
    at.button(key="compare_save").click().run()

    runs = open_page("eval_runs")
    assert "not counted as eval evidence" in texts(runs.info)
    assert list(runs.dataframe[0].value["Kind"]) == ["app comparison"]
    assert list(runs.dataframe[1].value["Passed"]) == ["no checks", "no checks"]
    assert matrix_of(runs).count('class="badge nochecks">no checks<') == 2


def test_compare_marks_words_that_differ_between_versions(synced):
    at = open_page("compare")
    at.multiselect(key="compare_versions:summarize").set_value(["summarize:1", "summarize:2"])
    at.text_area(key="compare_var_text").input(ARTICLE)
    at.button(key="compare_run").click().run()
    assert_no_exception(at)
    # v2's user message starts "Article:", which the demo model echoes; v1's does not.
    at.radio(key="compare_mode").set_value("differences").run()
    page = matrix_of(at)
    assert 'tr data-case="typed-' in page  # the row's outputs differ, so it is shown
    assert '<span style="background:#fde68a;border-radius:2px">Article:' in page


def test_compare_runs_rows_of_a_dataset_with_their_checks(synced):
    at = open_page("compare")
    at.radio(key="compare_source").set_value("Rows of a dataset").run()
    dataset = at.selectbox(key="compare_dataset")
    assert dataset.value.path.name == "summarize.yaml"
    at.multiselect(key="compare_rows").set_value(["council-budget", "rail-strike", "exoplanet-water"])
    at.button(key="compare_run").click().run()
    assert_no_exception(at)
    assert not at.error, texts(at.error)
    summary = at.dataframe[1].value  # [0] is the picked rows' preview
    assert list(summary["Passed"]) == ["3/3", "3/3"]
    page = matrix_of(at)
    for case in ("council-budget", "rail-strike", "exoplanet-water"):
        assert f'<tr data-case="{case}">' in page
    assert "<b>rouge-l</b>" in page  # the suite's own checks, in each cell's details
    assert '<div class="k">Expected</div><pre>' in page  # the suite's expected summaries


def test_switching_prompt_resets_the_checks_and_the_results(synced):
    Registry(synced).create_version("greet", template="Say hello to {{ name }}.")
    Registry(synced).create_version("greet", template="Greet {{ name }} warmly.")
    at = open_page("compare")
    at.selectbox(key="compare_prompt").set_value("summarize").run()
    at.text_area(key="compare_var_text").input(ARTICLE)
    at.button(key="compare_run").click().run()
    assert_no_exception(at)
    assert [b.key for b in at.button if b.key == "compare_save"]

    at.selectbox(key="compare_prompt").set_value("greet").run()
    assert_no_exception(at)
    # summarize's results and its Save button are gone, and greet's checks are greet's own.
    assert "Results" not in [h.value for h in at.subheader]
    assert not [b for b in at.button if b.key == "compare_save"]
    checks = at.text_area(key="compare_checks:greet:Type the variables").value
    assert "{{ name }}" in checks and "{{ text }}" not in checks

    at.text_area(key="compare_var_name").input("Ada Lovelace")
    at.button(key="compare_run").click().run()
    assert_no_exception(at)
    assert not at.error, texts(at.error)
    assert list(at.dataframe[0].value["Version · model"]) == [
        "greet@latest (greet:2) · demo",
        "greet:1 · demo",
    ]
    page = matrix_of(at)
    assert "<b>not-refusal</b>" in page and "is undefined" not in page
    assert [("Lovelace" in o) for o in outputs_of(at)] == [True, True]  # the outputs are shown


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"compare_versions:summarize": ["summarize:2"]}, "pick 2 to 4 different prompt versions"),
        ({"compare_models": []}, "pick 1 to 3 models"),
        ({}, "nothing to run"),
    ],
)
def test_compare_says_what_to_fix_before_calling_a_model(synced, change, message):
    at = open_page("compare")
    for key, value in change.items():
        at.multiselect(key=key).set_value(value)
    if change:
        at.text_area(key="compare_var_text").input(ARTICLE)
    at.button(key="compare_run").click().run()
    assert_no_exception(at)
    assert message in texts(at.error)
    assert not list_runs(synced)


def test_compare_reports_unreadable_checks(synced):
    at = open_page("compare")
    at.text_area(key="compare_var_text").input(ARTICLE)
    at.text_area(key="compare_checks:summarize:Type the variables").input("- type: no-such-check\n")
    at.button(key="compare_run").click().run()
    assert_no_exception(at)
    assert "unknown assertion type 'no-such-check'" in texts(at.error)


# --- Eval runs ---------------------------------------------------------------------------------


@pytest.fixture
def eval_runs(synced, tmp_path):
    return seed.seed_eval_runs(synced, tmp_path)


def test_eval_runs_page_shows_the_matrix_and_filters(eval_runs):
    baseline, current = eval_runs
    at = open_page("eval_runs")
    at.selectbox(key="eval_run").set_value(baseline.id).run()
    listing = at.dataframe[0].value
    assert set(listing["Run"]) == {baseline.id, current.id} and set(listing["Suite"]) == {"summary-checks"}
    summary = at.dataframe[1].value
    assert list(summary["Version · model"]) == [
        "candidate (summarize:2) · demo",
        "first (summarize:1) · demo",
    ]
    assert list(summary["Passed"]) == ["2/3", "1/3"]
    page = matrix_of(at)
    assert [row_case(r) for r in page.split("<tr data-case=")[1:]] == ["figures", "echo-prefix", "impossible"]
    echo = page.split('<tr data-case="echo-prefix">')[1].split("</tr>")[0]
    assert echo.index("badge pass") < echo.index("badge fail")

    at.radio(key="eval_mode").set_value("failures").run()
    assert [row_case(r) for r in matrix_of(at).split("<tr data-case=")[1:]] == ["echo-prefix", "impossible"]
    assert at.query_params["mode"] in ("failures", ["failures"]) and at.query_params["run"] in (
        baseline.id,
        [baseline.id],
    )
    assert [b.label for b in at.download_button] == ["Download CSV", "Download JSON", "Download HTML report"]


def test_eval_runs_page_compares_with_the_baseline(eval_runs):
    baseline, current = eval_runs
    at = open_page("eval_runs")
    at.selectbox(key="eval_run").set_value(current.id).run()
    # The run names its baseline, so the comparison is already chosen.
    assert at.selectbox(key=f"eval_baseline:{current.id}").value == baseline.id
    assert f"Regressed against {baseline.id}: 1 case(s) that passed now fail" in texts(at.error)
    changes = at.dataframe[-1].value
    assert list(changes["Change"]) == ["regressed"] and list(changes["Case"]) == ["echo-prefix"]

    at.selectbox(key=f"eval_baseline:{current.id}").set_value(NO_BASELINE).run()
    assert "Regressed" not in texts(at.error)


def test_eval_runs_page_shows_a_case_in_detail(eval_runs):
    baseline, _ = eval_runs
    at = open_page("eval_runs")
    at.selectbox(key="eval_run").set_value(baseline.id).run()
    at.selectbox(key=f"eval_rate:{baseline.id}:case").set_value("impossible").run()
    detail = texts(at.text)
    assert "Astronomers detected water vapour" in detail
    rendered = texts(at.code)  # the rendered prompt
    assert rendered.startswith("system: Summarize the news article") and "user: " in rendered
    assert "Astronomers detected water vapour" in rendered
    why = [w for d in at.dataframe if "Why" in d.value.columns for w in d.value["Why"]]
    assert any("does not contain 'unicorns'" in w for w in why)


# --- Experiments, Spend, Gateway -----------------------------------------------------------------


@pytest.fixture
def traffic(synced):
    return seed.seed_traffic(synced)


def test_experiments_page_shows_variants_intervals_verdict_and_charts(traffic):
    at = open_page("experiments")
    assert at.selectbox(key="experiment").value == seed.EXPERIMENT
    verdict = texts(at.success)
    assert "candidate: feedback +" in verdict and "significant" in verdict
    variants = at.dataframe[0].value
    assert list(variants["variant"]) == ["control (control)", "candidate"]
    assert sum(variants["requests"]) == len(traffic)
    for _, row in variants.iterrows():
        assert row["feedback 95% CI low"] <= row["feedback mean"] <= row["feedback 95% CI high"]
    assert len(at.get(CHART)) == 2  # feedback with intervals, and the measure over time
    split = next(d.value for d in at.dataframe if "actual %" in d.value.columns)
    assert sum(split["requests"]) == len(traffic) and list(split["configured %"]) == [50.0, 50.0]
    assert "split" in texts(at.caption) + texts(at.error)

    at.selectbox(key="experiment_metric").set_value("Mean feedback").run()
    assert_no_exception(at)
    assert len(at.get(CHART)) == 2


def test_spend_page_charts_cost_and_tokens_by_model_key_user_and_prompt(traffic):
    at = open_page("spend")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests"] == str(len(traffic))
    assert float(metrics["Cost"].lstrip("$")) > 0
    assert [t.label for t in at.tabs] == ["By model", "By key", "By user", "By team", "By prompt", "Budgets"]
    assert len(at.get(CHART)) == 10  # cost and tokens in each tab
    tables = [d.value for d in at.dataframe]
    assert set(tables[0]["Model"]) == {"demo", "demo-large"}
    assert set(tables[1]["Key name"]) == {"web-app", "batch-jobs"}
    assert set(tables[2]["User"]) == {f"reader-{i}" for i in range(seed.READERS)}
    assert set(tables[3]["Team"]) == {"news", "data"}
    assert list(tables[4]["Prompt"]) == ["summarize"]
    for table in tables:  # titled columns, and no Python None in any cell
        assert not [c for c in table.columns if "_" in c]
        assert "None" not in set(table.astype(str).values.ravel())
    assert "No budgets" in texts(at.caption)

    at.selectbox(key="spend_span").set_value("Last hour").run()
    assert at.selectbox(key="spend_bucket:1h").value == "minute"
    assert {m.label: m.value for m in at.metric}["Requests"] == str(len(traffic))


def test_gateway_page_lists_models_deployments_and_health(synced):
    at = open_page("gateway")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Ready"] == "yes" and metrics["Database"] == "ok"
    models = at.dataframe[0].value
    assert "demo" in set(models["model"])
    deployments = frame_with(at, "state")
    demo = deployments[deployments["model"] == "demo"].iloc[0]
    assert demo["state"] == "available" and demo["provider"] == "mock"


def test_gateway_page_sends_a_test_request(synced):
    at = open_page("gateway")
    at.selectbox(key="gateway_model").set_value("demo")
    at.text_area(key="gateway_message").input(
        "The ferry leaves at noon. It returns at six. Tickets cost £4. Bring a coat."
    )
    at.button(key="gateway_send").click().run()
    assert_no_exception(at)
    assert "The ferry leaves at noon. It returns at six. Tickets cost £4." in texts(at.text)
    assert "deployment demo/mock/0" in texts(at.caption)
    # The call went through the router: the deployment's success count shows it.
    at.button(key="gateway_refresh").click().run()
    deployments = frame_with(at, "state")
    assert deployments[deployments["model"] == "demo"].iloc[0]["succeeded"] >= 1


def frame_with(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_gateway_page_checks_each_model_and_shows_a_dead_one_cooling_down(synced, tmp_path, monkeypatch):
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "demo",
                        "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}],
                    },
                    {
                        "name": "offline",
                        # Nothing listens on port 1: every call is refused.
                        "deployments": [
                            {
                                "provider": "openai",
                                "model": "gpt-4o-mini",
                                "api_base": "http://127.0.0.1:1/v1",
                                "api_key": "unused",
                            }
                        ],
                    },
                ],
                "router": {
                    "retries": 2,
                    "cooldown_failures": 3,
                    "cooldown_seconds": 600,
                    "backoff_base": 0.01,
                },
            }
        )
    )
    monkeypatch.setenv("LLMOPS_GATEWAY_CONFIG", str(config))
    at = open_page("gateway")
    assert {m.label: m.value for m in at.metric}["Available deployments"] == "2/2"
    at.button(key="gateway_probe").click().run()
    assert_no_exception(at)
    probes = frame_with(at, "answers").set_index("model")
    assert probes.loc["demo", "answers"] == "yes"
    assert probes.loc["offline", "answers"] == "no"
    assert "offline" in probes.loc["offline", "detail"]
    deployments = frame_with(at, "state").set_index("model")
    assert deployments.loc["offline", "state"].startswith("cooling down")
    assert deployments.loc["offline", "failed"] == 3
    assert {m.label: m.value for m in at.metric}["Available deployments"] == "1/2"


def test_gateway_page_shows_a_dead_vllm_server_and_says_why_models_are_off(synced, tmp_path, monkeypatch):
    monkeypatch.delenv("LLMOPS_TEST_UNSET_KEY", raising=False)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "demo",
                        "deployments": [{"provider": "mock", "model": "demo", "pricing": {"cost": 0}}],
                    },
                    {
                        "name": "local",
                        # A vLLM server that is not running: nothing listens on port 1.
                        "deployments": [
                            {"provider": "vllm", "model": "qwen", "api_base": "http://127.0.0.1:1/v1"}
                        ],
                    },
                    {
                        "name": "hosted",
                        "deployments": [
                            {
                                "provider": "openai",
                                "model": "gpt-4o-mini",
                                "api_key": "os.environ/LLMOPS_TEST_UNSET_KEY",
                            }
                        ],
                    },
                ]
            }
        )
    )
    monkeypatch.setenv("LLMOPS_GATEWAY_CONFIG", str(config))
    at = open_page("gateway")
    deployments = frame_with(at, "state").set_index("model")
    assert deployments.loc["local", "state"] == "unreachable (fails its health check)"
    assert deployments.loc["demo", "state"] == "available"
    assert {m.label: m.value for m in at.metric}["Available deployments"] == "1/2"
    models = frame_with(at, "deployments").set_index("model")
    assert models.loc["local", "deployments"] == "0/1 available"
    off = frame_with(at, "off because").set_index("model")
    assert list(off.index) == ["hosted"] and "LLMOPS_TEST_UNSET_KEY" in off.loc["hosted", "off because"]
    assert "hosted" in texts(at.warning)


def test_a_gateway_that_cannot_be_reached_is_a_message(synced, monkeypatch):
    monkeypatch.setenv("LLMOPS_GATEWAY_URL", "http://127.0.0.1:1")
    at = open_page("gateway")
    assert "cannot reach the gateway at http://127.0.0.1:1" in texts(at.error)
