"""The lexical faithfulness scorer (`scorer: lexical`): supported claims pass, invented facts are named.

The quality check on the SummaC development slice lives in
benchmarks/faithfulness_quality.py; here a floor guards against regressions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops.evaluation.faithfulness import LexicalFaithfulnessScorer, split_claims

ARTICLE = (
    "The chancellor announced a £2bn budget for schools on Monday. "
    "Teachers' unions welcomed the money but said it was not enough. "
    "The funding will be spread over three years, starting in April."
)
DEV_DATA = Path("/work/shared/data/faithfulness/dev.jsonl")

scorer = LexicalFaithfulnessScorer()


@pytest.mark.parametrize(
    "output",
    [
        "The chancellor announced a £2bn budget for schools on Monday.",
        "A £2bn schools budget was announced by the chancellor on Monday.",
        "Unions said the money was not enough. The funding is spread over three years.",
    ],
)
def test_outputs_drawn_from_the_context_pass(output):
    result = scorer.score(output, ARTICLE)
    assert result.passed, result.to_dict()
    assert result.unsupported == []
    assert 0.5 <= result.score <= 1.0


@pytest.mark.parametrize(
    ("output", "invented"),
    [
        ("The chancellor announced a £5bn budget for schools on Monday.", "5bn"),
        ("Boris Johnson announced a budget for hospitals on Friday.", "johnson"),
        ("The funding will be spread over ten years, starting in April.", "10"),
    ],
)
def test_invented_figures_names_and_dates_are_unsupported(output, invented):
    result = scorer.score(output, ARTICLE)
    assert not result.passed
    assert result.unsupported == [output]
    assert invented in result.claims[0].unsupported_terms


def test_a_flipped_negation_is_unsupported():
    result = scorer.score("Teachers' unions said the money was enough.", ARTICLE)
    assert not result.passed
    restated = scorer.score("Teachers' unions said the money was not enough.", ARTICLE)
    assert restated.passed


def test_each_sentence_is_a_claim_and_the_weakest_sets_the_score():
    output = "The chancellor announced a £2bn budget for schools on Monday. The minister resigned in disgrace."
    result = scorer.score(output, ARTICLE)
    assert [c.claim for c in result.claims] == split_claims(output)
    assert len(result.claims) == 2
    assert result.claims[0].supported and not result.claims[1].supported
    assert result.score == min(c.score for c in result.claims)
    assert result.unsupported == ["The minister resigned in disgrace."]
    assert result.claims[0].evidence.startswith("The chancellor announced")


def test_headings_and_fragments_do_not_become_claims():
    assert split_claims("Summary:\nThe budget is £2bn. It starts in April. Yes.") == [
        "Summary: The budget is £2bn.",
        "It starts in April. Yes.",
    ]


def test_context_may_be_a_list_of_passages_and_empty_output_is_trivially_faithful():
    passages = ARTICLE.split(". ")
    assert scorer.score("The funding will be spread over three years.", passages).passed
    assert scorer.score("", ARTICLE).score == 1.0


def test_threshold_is_configurable():
    output = "Unions welcomed the money for schools on Monday."
    score = scorer.score(output, ARTICLE).score
    assert LexicalFaithfulnessScorer(threshold=score - 0.01).score(output, ARTICLE).passed
    assert not LexicalFaithfulnessScorer(threshold=score + 0.01).score(output, ARTICLE).passed


@pytest.mark.skipif(not DEV_DATA.exists(), reason=f"development data not on this machine ({DEV_DATA})")
def test_balanced_accuracy_on_the_development_slice_stays_above_its_floor():
    rows = [json.loads(line) for line in DEV_DATA.read_text().splitlines() if line.strip()]
    recalls = []
    for label in ("consistent", "inconsistent"):
        subset = [r for r in rows if r["label"] == label]
        right = sum(scorer.score(r["claim"], r["document"]).passed == (label == "consistent") for r in subset)
        recalls.append(right / len(subset))
    balanced_accuracy = sum(recalls) / 2
    assert balanced_accuracy >= 0.78, recalls  # measured 0.818; a plain word-overlap score gets 0.54
