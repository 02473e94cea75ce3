"""Judge-graded assertions through a real (fake) model server: rubric, factuality, relevance, faithfulness."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from llmops.errors import InvalidInput
from llmops.evaluation.client import HttpModelClient
from llmops.evaluation.judge import Judge, parse_json_reply
from llmops.gateway.clients import run_suite_file
from llmops.testing import assert_eval_async
from tests.test_eval_fakes import FakeModelServer

SOURCE = "The council approved a budget of £2bn on Tuesday. Schools receive £300m."


@pytest.fixture
def fake():
    with FakeModelServer() as server:
        yield server


def with_judge(fake, model: str, work):
    async def go():
        async with HttpModelClient(fake.url) as client:
            return await work(Judge(client, model))

    return asyncio.run(go())


def test_faithfulness_by_judge_splits_claims_and_verifies_each(fake):
    output = "The council approved a budget of £2bn on Tuesday. Hospitals receive £900m."
    result = with_judge(fake, "judge", lambda judge: judge.faithfulness(output, SOURCE))
    assert result.score == 0.5
    assert result.unsupported == ["Hospitals receive £900m."]
    assert [c.supported for c in result.claims] == [True, False]
    judge_calls = fake.chat_requests("judge")
    assert len(judge_calls) == 3  # one to split the claims, one per claim
    assert all(call["temperature"] == 0 for call in judge_calls)


def test_rubric_factuality_and_relevance_verdicts(fake):
    async def work(judge: Judge):
        return (
            await judge.rubric("The budget is £2bn.", "mentions the budget"),
            await judge.rubric("Nice weather today.", "mentions the budget"),
            await judge.factuality("The budget is £2bn.", "The budget is £2bn, approved Tuesday."),
            await judge.factuality("The budget is £9bn.", "The budget is £2bn."),
            await judge.relevance("The budget is £2bn.", "How big is the budget?"),
        )

    rubric_ok, rubric_bad, fact_ok, fact_bad, relevant = with_judge(fake, "judge", work)
    assert rubric_ok.passed and rubric_ok.score == 0.9
    assert not rubric_bad.passed and rubric_bad.score == 0.1
    assert fact_ok.passed and fact_ok.reason.startswith("(A)")
    assert not fact_bad.passed and fact_bad.reason.startswith("(D)")
    assert relevant.score == 1.0


def test_a_judge_that_answers_without_json_fails_the_grade_with_its_reply(fake):
    verdict = with_judge(fake, "garbled", lambda judge: judge.rubric("output", "rubric"))
    assert not verdict.passed and "no JSON verdict" in verdict.reason and "more or less" in verdict.reason
    # claims fall back to the output's sentences, each then unverifiable
    result = with_judge(fake, "garbled", lambda judge: judge.faithfulness("One claim here. Another one here.", SOURCE))
    assert result.score == 0.0 and len(result.unsupported) == 2


def test_parse_json_reply_tolerates_fences_and_prose():
    assert parse_json_reply('```json\n{"score": 1}\n```') == {"score": 1}
    assert parse_json_reply('Sure! {"pass": true, "reason": "ok"} Hope {this} helps') == {"pass": True, "reason": "ok"}
    assert parse_json_reply("no json at all") is None


def test_a_suite_with_judge_assertions(fake, tmp_path, database_url):
    path = tmp_path / "judged.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: judged
            prompts: [{{id: p, template: "{{{{ text }}}}"}}]
            models: [echo]
            judge: judge
            defaults:
              context: "{{{{ text }}}}"
            cases:
              - id: budget
                vars: {{text: "{SOURCE}"}}
                expected: "{SOURCE} The vote was close."
                assert:
                  - {{type: llm-rubric, value: "states the budget"}}
                  - {{type: factuality}}
                  - {{type: answer-relevance, value: "What budget did the council approve?"}}
                  - {{type: faithfulness, scorer: judge, threshold: 1.0}}
                  - {{type: not-llm-rubric, value: "weather forecast"}}
            """
        )
    )
    result, _ = run_suite_file(path, gateway_url=fake.url, database_url=database_url)
    [case] = result.results
    assert case.passed, case.reason
    assert [a.name for a in case.assertions] == [
        "llm-rubric", "factuality", "answer-relevance", "faithfulness", "not-llm-rubric",
    ]  # fmt: skip
    assert case.assertions[2].score == 1.0


def test_a_suite_using_a_judge_assertion_without_a_judge_fails_before_calling(fake, tmp_path, database_url):
    path = tmp_path / "nojudge.yaml"
    path.write_text(
        "name: nojudge\nprompts: [{id: p, template: 'x'}]\nmodels: [echo]\n"
        "cases: [{id: c, assert: [{type: llm-rubric, value: polite}]}]\n"
    )
    with pytest.raises(InvalidInput, match="needs a judge model"):
        run_suite_file(path, gateway_url=fake.url, database_url=database_url)
    assert fake.requests == []


def test_assert_eval_async_with_a_judge(fake):
    async def go():
        async with HttpModelClient(fake.url) as client:
            judge = Judge(client, "judge")
            await assert_eval_async("The budget is £2bn.", [{"type": "llm-rubric", "value": "budget"}], judge=judge)
            with pytest.raises(AssertionError, match="FAIL llm-rubric"):
                await assert_eval_async("It rained.", [{"type": "llm-rubric", "value": "budget"}], judge=judge)

    asyncio.run(go())


def test_an_assertion_may_name_its_own_judge_model(fake, tmp_path, database_url):
    path = tmp_path / "own.yaml"
    path.write_text(
        "name: own\nprompts: [{id: p, template: '{{ text }}'}]\nmodels: [echo]\n"
        "cases: [{id: c, vars: {text: 'The budget is £2bn.'},"
        " assert: [{type: llm-rubric, value: budget, provider: judge}]}]\n"
    )
    result, _ = run_suite_file(path, gateway_url=fake.url, database_url=database_url)
    assert result.passed, result.results[0].reason
    assert len(fake.chat_requests("judge")) == 1
