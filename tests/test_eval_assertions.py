"""Assertions as a suite author writes them: types, negation, weights, thresholds, errors."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from llmops.errors import InvalidInput
from llmops.evaluation.assertions import AssertionSpec, EvalContext, combine, grade_sync, parse_assertions
from llmops.testing import assert_eval

OUTPUT = "Northbridge approved a £2.4bn budget on Tuesday, with £310m for schools."


def check(spec: dict | str, output: str = OUTPUT, **context):
    [parsed] = parse_assertions([spec])
    return grade_sync(parsed, EvalContext(output=output, **context))


@pytest.mark.parametrize(
    ("spec", "passed"),
    [
        ({"type": "equals", "value": OUTPUT}, True),
        ({"type": "equals", "value": "something else"}, False),
        ({"type": "contains", "value": "£2.4bn"}, True),
        ({"type": "contains", "value": "northbridge"}, False),
        ({"type": "icontains", "value": "northbridge"}, True),
        ({"type": "contains-any", "value": ["£9bn", "£2.4bn"]}, True),
        ({"type": "contains-any", "value": ["£9bn", "£8bn"]}, False),
        ({"type": "contains-all", "value": ["£2.4bn", "£310m"]}, True),
        ({"type": "contains-all", "value": ["£2.4bn", "£999m"]}, False),
        ({"type": "icontains-all", "value": ["NORTHBRIDGE", "TUESDAY"]}, True),
        ({"type": "starts-with", "value": "Northbridge"}, True),
        ({"type": "regex", "value": r"£\d+(\.\d+)?bn"}, True),
        ({"type": "regex", "value": r"^\d"}, False),
        ({"type": "not-contains", "value": "£3bn"}, True),
        ({"type": "not-contains", "value": "£2.4bn"}, False),
        ({"type": "contains", "value": "£2.4bn", "negate": True}, False),
        ("not-is-json", True),
        ("not-refusal", True),
    ],
)
def test_string_assertions(spec, passed):
    result = check(spec)
    assert result.passed is passed, result.reason
    if spec != {"type": "contains-all", "value": ["£2.4bn", "£999m"]}:
        assert result.score == (1.0 if passed else 0.0)
    else:
        assert result.score == 0.5  # contains-all is graded by the share found


def test_contains_all_with_a_threshold_allows_a_share_to_be_missing():
    result = check({"type": "contains-all", "value": ["£2.4bn", "£310m", "Friday", "schools"], "threshold": 0.75})
    assert result.passed and result.score == 0.75
    assert result.details["missing"] == ["Friday"]


def test_is_json_with_a_schema():
    schema = {"type": "object", "required": ["name", "age"], "properties": {"age": {"type": "integer"}}}
    good = json.dumps({"name": "Ada", "age": 36})
    assert check({"type": "is-json", "value": schema}, output=good).passed
    assert check({"type": "is-json"}, output=f"```json\n{good}\n```").passed  # a fenced block is fine
    wrong = check({"type": "is-json", "value": schema}, output=json.dumps({"name": "Ada", "age": "old"}))
    assert not wrong.passed and "age" in wrong.reason
    assert not check({"type": "is-json"}, output="{'single': 'quotes'}").passed


def test_reference_metrics_use_the_expected_output_and_a_threshold():
    expected = "Northbridge approved a £2.4bn budget on Tuesday."
    rouge = check({"type": "rouge-l", "threshold": 0.6}, expected=expected)
    assert rouge.passed and 0.6 <= rouge.score < 1
    assert not check({"type": "rouge-l", "threshold": 0.95}, expected=expected).passed
    assert check({"type": "levenshtein", "value": OUTPUT.upper(), "threshold": 0.0}).score < 0.5
    assert check({"type": "bleu", "threshold": 0.2}, expected=expected).passed
    # negated: "not like the reference", the score flips with the verdict
    negated = check({"type": "not-rouge-l", "threshold": 0.6}, expected=expected)
    assert not negated.passed and negated.score == pytest.approx(1 - rouge.score)
    with pytest.raises(InvalidInput, match="expected output"):
        check("rouge-l")


def test_values_are_filled_from_the_case_variables():
    result = check({"type": "icontains", "value": "{{ town }}"}, variables={"town": "Northbridge"})
    assert result.passed and "Northbridge" in result.reason


def test_latency_and_cost_ceilings():
    assert check({"type": "latency", "threshold": 500}, latency_ms=120).passed
    assert not check({"type": "latency", "threshold": 100}, latency_ms=120).passed
    assert check({"type": "cost", "threshold": 0.01}, cost=0.002).passed
    unknown = check({"type": "cost", "threshold": 0.01})
    assert not unknown.passed and "unknown" in unknown.reason


def test_refusal_detection():
    assert check("refusal", output="I'm sorry, but I can't help with that request.").passed
    assert check("refusal", output="As an AI language model, I cannot do this.").passed
    assert not check("refusal", output="Here is the summary you asked for.").passed


def test_faithfulness_against_the_case_context():
    context = "Northbridge council approved a £2.4bn budget on Tuesday. It includes £310m for new schools."
    assert check({"type": "faithfulness", "threshold": 0.5}, context=context).passed
    invented = check({"type": "faithfulness"}, output="Northbridge approved a £9bn budget for hospitals.", context=context)
    assert not invented.passed and invented.details["unsupported"]
    assert "unsupported:" in invented.reason


def test_python_assertions_by_import_path_and_by_file(tmp_path, monkeypatch):
    package = tmp_path / "mychecks"
    package.mkdir()
    (package / "__init__.py").write_text("def has_budget(output, context):\n    return 'budget' in output\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert check({"type": "python", "value": "mychecks:has_budget"}).passed
    assert check({"type": "python", "value": "mychecks.has_budget"}).passed
    assert not check({"type": "python", "value": "mychecks:has_budget"}, output="no money").passed
    (tmp_path / "checks.py").write_text(
        "def short(output, context):\n"
        "    return {'pass': len(output) < context['vars']['limit'], 'score': 0.4, 'reason': 'length'}\n"
        "def ratio(output, context):\n"
        "    return 0.3\n"
        "async def later(output, context):\n"
        "    return True\n"
        "def broken(output, context):\n"
        "    raise ValueError('bad input')\n"
    )
    base = str(tmp_path)
    short = check({"type": "python", "value": "checks.py:short"}, variables={"limit": 10}, base_dir=base)
    assert not short.passed and short.score == 0.4 and short.reason == "length"
    assert not check({"type": "python", "value": "checks.py:ratio"}, base_dir=base).passed  # 0.3 < 0.5
    assert check({"type": "python", "value": "checks.py:ratio", "threshold": 0.25}, base_dir=base).passed
    assert check({"type": "python", "value": "checks.py:later"}, base_dir=base).passed
    broken = check({"type": "python", "value": "checks.py:broken"}, base_dir=base)
    assert not broken.passed and "ValueError: bad input" in broken.reason
    with pytest.raises(InvalidInput, match="has no function"):
        check({"type": "python", "value": "checks.py:missing"}, base_dir=base)


def test_model_graded_assertions_say_what_they_need():
    with pytest.raises(InvalidInput, match="judge"):
        check({"type": "llm-rubric", "value": "is polite"})


def test_unknown_types_and_missing_values_are_rejected_when_the_suite_loads():
    with pytest.raises(ValidationError, match="unknown assertion type 'contians'"):
        AssertionSpec(type="contians", value="x")
    with pytest.raises(ValidationError, match="needs a value"):
        AssertionSpec(type="regex")
    assert AssertionSpec(type="not-contains", value="x").negate


def test_combine_weights_and_case_thresholds():
    specs = parse_assertions(
        [
            {"type": "contains", "value": "£2.4bn", "weight": 3},
            {"type": "contains", "value": "Friday", "weight": 1},
            {"type": "contains", "value": "missing too", "weight": 0},  # informational
        ]
    )
    results = [grade_sync(s, EvalContext(output=OUTPUT)) for s in specs]
    strict = combine(results)
    assert not strict.passed and strict.score == pytest.approx(0.75)
    assert "Friday" in strict.reason and "missing too" not in strict.reason
    assert combine(results, threshold=0.7).passed
    assert not combine(results, threshold=0.8).passed


def test_assert_eval_for_hand_written_tests():
    outcome = assert_eval(OUTPUT, [{"type": "icontains", "value": "£2.4BN"}, "not-refusal"])
    assert outcome.passed and outcome.score == 1.0
    with pytest.raises(AssertionError) as failure:
        assert_eval(OUTPUT, [{"type": "contains", "value": "£9bn"}, {"type": "rouge-l", "threshold": 0.9}],
                    expected="Something unrelated entirely.")
    message = str(failure.value)
    assert "FAIL contains" in message and "FAIL rouge-l" in message and "score 0.000" in message
    assert OUTPUT in message  # the output is shown
