"""Suite files: what loads, what each case becomes, and errors that name the file and field."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from llmops.errors import InvalidInput
from llmops.evaluation.suites import load_suite

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_shipped_summarize_suite_loads():
    suite = load_suite(REPO / "evals" / "summarize.yaml")
    assert [p.key for p in suite.prompts] == ["summarize@production", "summarize@staging"]
    assert [m.key for m in suite.models] == ["demo", "demo-brief"]
    cases = suite.expanded_cases()
    assert len(cases) >= 7  # inline cases and the rows of cases/summarize_more.csv
    assert all(case.vars["text"] for case in cases)
    # defaults come first in each case's assertions
    assert cases[0].assertions[0].type == "faithfulness"


def test_prompts_models_cases_and_defaults(tmp_path):
    (tmp_path / "more.csv").write_text('id,text,expected,threshold\nfrom-csv,"Some text.",Some,0.4\n,"Other text.",,\n')
    (tmp_path / "more.jsonl").write_text(
        json.dumps({"id": "flat", "text": "Flat row.", "expected": "Flat"}) + "\n\n"
        + json.dumps({"id": "full", "vars": {"text": "Full."}, "assert": [{"type": "contains", "value": "F"}]}) + "\n"
    )
    path = write(
        tmp_path,
        """
        name: demo-suite
        prompts:
          - summarize@production
          - id: inline
            messages: [{role: user, content: "Summarise: {{ text }}"}]
            params: {model: demo}
        models: [demo, {id: cold, model: demo, params: {temperature: 0}}]
        defaults:
          vars: {lang: en}
          assert: [not-refusal]
          threshold: 0.5
        cases:
          - id: inline-case
            vars: {text: "Hello there."}
            assert:
              - {type: not-contains, value: "x", weight: 2}
          - file: more.csv
          - more.jsonl
        """,
    )
    suite = load_suite(path)
    cases = {c.id: c for c in suite.expanded_cases()}
    assert list(cases) == ["inline-case", "from-csv", "case-3", "flat", "full"]
    inline = cases["inline-case"]
    assert inline.vars == {"lang": "en", "text": "Hello there."}
    assert [(a.type, a.negate, a.weight) for a in inline.assertions] == [("refusal", True, 1.0), ("contains", True, 2.0)]
    assert inline.threshold == 0.5
    assert cases["from-csv"].expected == "Some" and cases["from-csv"].threshold == 0.4
    assert cases["from-csv"].vars == {"lang": "en", "text": "Some text."}
    assert cases["case-3"].expected is None
    assert cases["flat"].vars["text"] == "Flat row."
    assert cases["full"].assertions[-1].type == "contains"
    assert suite.prompts[1].messages and suite.models[1].params == {"temperature": 0}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: x\nprompts: [p]\ncases: [{vars: {}, assert: [{type: contians, value: a}]}]", "unknown assertion type 'contians'"),
        ("name: x\nprompts: [p]\ncases: [{vars: {}, assert: [{type: regex}]}]", "needs a value"),
        ("name: x\nprompts: []\ncases: [{}]", "prompts"),
        ("name: x\nprompts: [{id: a, template: t, messages: []}]\ncases: [{}]", "exactly one"),
        ("name: x\nprompts: [{template: t}]\ncases: [{}]", "needs an id"),
        ("name: x\nprompts: [p, p]\ncases: [{}]", "duplicate prompt ids"),
        ("name: x\nprompts: [p]\ncases: [{id: a}, {id: a}]", "duplicate case id"),
        ("name: x\nprompts: [p]\ncases: [missing.csv]", "missing.csv not found"),
        ("name: x\nprompts: [p]\ncases: [{colour: red}]", "colour"),
        ("- just\n- a list", "a suite is a mapping"),
        ("name: [unclosed", "not valid YAML"),
    ],
)
def test_errors_name_the_file_and_what_is_wrong(tmp_path, body, message):
    path = write(tmp_path, body)
    with pytest.raises(InvalidInput, match=message) as error:
        load_suite(path)
    assert str(path) in error.value.message or "missing.csv" in error.value.message


def test_a_bad_row_in_a_case_file_is_reported_with_its_line(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"id": "ok", "text": "fine"}\nnot json\n')
    path = write(tmp_path, "name: x\nprompts: [p]\ncases: [rows.jsonl]\n")
    with pytest.raises(InvalidInput, match="rows.jsonl, line 2: not JSON"):
        load_suite(path)
