"""Running suites: against the gateway in process, caching, parallel calls, errors, storage, baselines."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from llmops import Registry
from llmops.errors import NotFound
from llmops.evaluation.client import HttpModelClient
from llmops.evaluation.service import run_suite_async
from llmops.evaluation.storage import list_runs, load_run
from llmops.evaluation.suites import load_suite
from llmops.gateway.clients import in_process_client, run_suite_file
from tests.test_eval_fakes import COST, FakeModelServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def synced(database_url, monkeypatch) -> str:
    """A database holding prompts/ as committed; the in-process gateway uses it too."""
    monkeypatch.setenv("LLMOPS_DATABASE_URL", database_url)
    from llmops.settings import get_settings

    get_settings.cache_clear()
    Registry(database_url=database_url).sync(REPO / "prompts")
    yield database_url
    get_settings.cache_clear()


@pytest.fixture
def fake():
    with FakeModelServer() as server:
        yield server


def suite_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(body))
    return path


ECHO_SUITE = """
name: echo
prompts:
  - id: plain
    template: "{{ text }}"
models: [echo]
cases:
  - id: budget
    vars: {text: "The budget is £2bn. It starts in April. Unions object."}
    assert: [{type: contains, value: "£2bn"}]
  - id: strike
    vars: {text: "Drivers strike for 48 hours. Talks failed."}
    assert: [{type: contains, value: "48 hours"}]
  - id: clinic
    vars: {text: "A clinic opened on Monday. It cost £4.5m."}
    assert: [{type: contains, value: "£4.5m"}]
"""


def run(path: Path, **options):
    return run_suite_file(path, **options)


def test_the_summarize_suite_passes_on_the_in_process_demo_gateway(synced):
    async def go():
        async with in_process_client() as client:
            return await run_suite_async(
                load_suite(REPO / "evals" / "summarize.yaml"), client=client, database_url=synced
            )

    result, comparison = asyncio.run(go())
    assert comparison is None
    assert result.prompts == {"summarize@production": "summarize:2", "summarize@staging": "summarize:3"}
    cases = len(load_suite(REPO / "evals" / "summarize.yaml").expanded_cases())
    assert result.total == cases * 2 * 2  # cases × prompts × models
    assert result.passed, [r.reason for r in result.results if not r.passed]
    first = result.results[0]
    assert first.output.startswith("Article:") and "£2.4bn" in first.output  # demo echoes the article
    assert {a.name for a in first.assertions} >= {"faithfulness", "not-refusal", "python", "latency", "cost"}

    stored = load_run(result.id, synced)
    assert stored.to_dict() == result.to_dict()
    assert load_run("last", synced).id == result.id
    assert [r.id for r in list_runs(synced)] == [result.id]
    assert stored.git_commit  # the repository's commit, recorded for reproducibility


def test_a_rerun_is_answered_from_the_cache_and_costs_nothing(synced, fake, tmp_path):
    path = suite_file(tmp_path, ECHO_SUITE)
    first, _ = run(path, gateway_url=fake.url, database_url=synced)
    assert first.passed and len(fake.requests) == 3
    assert first.cost == pytest.approx(3 * COST)
    assert not any(r.cached for r in first.results)

    second, _ = run(path, gateway_url=fake.url, database_url=synced)
    assert len(fake.requests) == 3  # no new call
    assert second.cost == 0 and all(r.cached for r in second.results)
    assert [r.output for r in second.results] == [r.output for r in first.results]
    assert second.results[0].cost == pytest.approx(COST)  # what the answer cost when it was made

    third, _ = run(path, gateway_url=fake.url, database_url=synced, use_cache=False)
    assert len(fake.requests) == 6 and third.cost == pytest.approx(3 * COST)


def test_calls_run_in_parallel_up_to_the_concurrency(synced, tmp_path):
    cases = "\n".join(f"  - {{id: c{i}, vars: {{text: 'Case number {i}.'}}}}" for i in range(8))
    path = suite_file(tmp_path, f"name: par\nprompts: [{{id: p, template: '{{{{ text }}}}'}}]\nmodels: [echo]\ncases:\n{cases}\n")
    with FakeModelServer(delay=0.3) as slow:
        result, _ = run(path, gateway_url=slow.url, database_url=synced, concurrency=3, use_cache=False)
        assert result.total == 8 and slow.max_in_flight == 3
    with FakeModelServer(delay=0.05) as slow:
        run(path, gateway_url=slow.url, database_url=synced, concurrency=1, use_cache=False)
        assert slow.max_in_flight == 1


def test_a_failed_call_or_a_missing_variable_errors_that_case_only(synced, fake, tmp_path):
    path = suite_file(
        tmp_path,
        """
        name: errors
        prompts: [{id: p, template: "{{ text }} {{ extra }}"}]
        models: [echo, fail]
        cases:
          - {id: ok, vars: {text: "Fine.", extra: "Yes."}}
          - {id: no-extra, vars: {text: "Missing one."}}
        """,
    )
    result, _ = run(path, gateway_url=fake.url, database_url=synced)
    by_key = {(r.case_id, r.model_id): r for r in result.results}
    assert by_key[("ok", "echo")].passed and by_key[("ok", "echo")].error is None
    assert "upstream exploded" in by_key[("ok", "fail")].error and not by_key[("ok", "fail")].passed
    assert "missing variable" in by_key[("no-extra", "echo")].error and "extra" in by_key[("no-extra", "echo")].error
    assert result.errors == 3 and not result.passed and result.status == "failed"


def test_an_unknown_prompt_fails_before_any_call(synced, fake, tmp_path):
    path = suite_file(tmp_path, "name: x\nprompts: [nosuch@production]\nmodels: [echo]\ncases: [{vars: {}}]\n")
    with pytest.raises(NotFound, match="prompts sync"):
        run(path, gateway_url=fake.url, database_url=synced)
    assert fake.requests == []


def test_each_prompt_runs_on_its_own_model_when_the_suite_names_none(synced):
    path = REPO / "evals" / "summarize.yaml"
    suite = load_suite(path).model_copy(update={"models": []})

    async def go():
        async with in_process_client() as client:
            return await run_suite_async(suite, client=client, database_url=synced, store=False)

    result, _ = asyncio.run(go())
    assert {r.model for r in result.results} == {"demo"}  # from the prompt's model_config
    assert {r.model_id for r in result.results} == {"default"}
    assert all(r.params.get("max_tokens") == 256 for r in result.results)


def test_a_regression_against_the_baseline_is_reported(synced, fake, tmp_path):
    path = suite_file(tmp_path, ECHO_SUITE)
    baseline, _ = run(path, gateway_url=fake.url, database_url=synced)
    # The prompt changes under the same id: the model no longer sees the article.
    path.write_text(ECHO_SUITE.replace('template: "{{ text }}"', 'template: "Say something. {{ text[:5] }}"'))
    current, comparison = run(path, gateway_url=fake.url, database_url=synced, baseline="last")
    assert current.baseline_run_id == baseline.id
    assert comparison.regressed
    assert {i.key[0] for i in comparison.regressions} == {"budget", "strike", "clinic"}
    assert comparison.score_drops[("plain", "echo")] == pytest.approx(-1.0)

    # Back to the first prompt: nothing regresses against the failing run, three are fixed.
    path.write_text(ECHO_SUITE)
    _, comparison = run(path, gateway_url=fake.url, database_url=synced, baseline=current.id[:8])
    assert not comparison.regressed and len(comparison.fixes) == 3


def test_an_http_client_accepts_a_base_url_with_or_without_v1(fake):
    async def go():
        for base in (fake.url, fake.url + "/v1", fake.url + "/v1/"):
            async with HttpModelClient(base) as client:
                reply = await client.chat("echo", [{"role": "user", "content": "One. Two. Three."}], {})
                assert reply.text == "One. Two." and reply.cost == pytest.approx(COST) and reply.latency_ms > 0

    asyncio.run(go())


def test_a_case_context_template_is_rendered_like_the_default_one(synced, fake, tmp_path):
    """`context: "{{ text }}"` on a case used to reach the scorer as the literal template."""
    path = suite_file(
        tmp_path,
        """
        name: grounded
        prompts:
          - id: plain
            template: "{{ text }}"
        models: [echo]
        cases:
          - id: own-template
            vars: {text: "The budget is £2bn. It starts in April.", notes: "Unrelated notes about parking."}
            context: "{{ text }}"
            assert: [{type: faithfulness, scorer: lexical}]
          - id: other-variable
            vars: {text: "The budget is £2bn. It starts in April.", notes: "Unrelated notes about parking."}
            context: "{{ notes }}"
            assert: [{type: faithfulness, scorer: lexical}]
        """,
    )
    result, _ = run(path, gateway_url=fake.url, database_url=synced)
    by_case = {r.case_id: r for r in result.results}
    assert by_case["own-template"].passed, by_case["own-template"].assertions
    assert not by_case["other-variable"].passed  # the echoed text is not in the notes


def test_eval_calls_carry_the_prompt_name_and_version_to_the_ledger(synced):
    """A suite run on the in-process gateway sends each registry version as its reference,
    so the ledger (and Spend) can tell which version each call served."""
    from sqlmodel import select

    from llmops.db import session_scope
    from llmops.governance.ledger_models import LedgerRow

    # The in-process gateway drains its ledger writer when the run ends.
    result, _ = run(REPO / "evals" / "summarize.yaml", database_url=synced, use_cache=False)
    assert result.passed
    with session_scope(synced) as session:
        rows = session.exec(select(LedgerRow)).all()
        calls = {(r.prompt_name, r.prompt_version) for r in rows}
    assert len(rows) == len(result.results)
    assert calls == {("summarize", 2), ("summarize", 3)}


def test_a_gateway_on_another_registry_is_sent_the_rendered_messages(synced, fake, tmp_path):
    """A server that is not known to read the eval's registry could hold another template
    under the same version number: it gets what the eval rendered."""
    path = suite_file(
        tmp_path,
        """
        name: registry
        prompts: [summarize@production]
        models: [echo]
        cases:
          - {id: one, vars: {text: "The budget is £2bn. It starts in April."}}
        """,
    )
    result, _ = run(path, gateway_url=fake.url, database_url=synced, use_cache=False)
    assert result.passed
    (request,) = fake.requests
    assert "prompt" not in request and request["messages"][-1]["content"].endswith("It starts in April.")
