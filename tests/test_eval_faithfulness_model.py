"""The entailment model llmops ships (`scorer: entailment`) from the outside: `llmops eval
score` as typed, on claims a user would write, and a floor on sources it was never trained
on (the SummaC development slices; benchmarks/README.md has the per-source figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmops.evaluation.alignment import HEAD_FILE, AlignmentDetector, shipped_detector
from llmops.evaluation.entailment import EntailmentFaithfulnessScorer
from llmops.evaluation.faithfulness_scorers import offline_scorer

REPO = Path(__file__).resolve().parents[1]
DEV_DATA = REPO.parent / "shared" / "data" / "faithfulness" / "dev.jsonl"

REPORT = (
    "Shares in Northwind Traders fell 12% on Tuesday after the company cut its profit forecast. "
    "Chief executive Maria Lopez said demand in Europe had weakened since the spring. "
    "The company, founded in 1998, employs about 4,000 people. "
    "Analysts at Halden Bank said the cut was not a surprise."
)

SUPPORTED = [
    "Northwind Traders shares fell 12% on Tuesday.",
    "Maria Lopez said demand in Europe had weakened.",
    "The company was founded in 1998.",
    "Analysts said the cut was not a surprise.",
]
UNSUPPORTED = {
    "direction": "Northwind Traders shares rose 12% on Tuesday.",
    "name": "Chief executive John Smith said demand in Europe had weakened.",
    "year": "The company was founded in 2004.",
    "negation": "Analysts said the cut was a surprise.",
    "figure": "Shares in Northwind Traders fell 30% on Tuesday.",
    "invented place": "Maria Lopez said demand in Asia had weakened since the spring.",
}


def test_entailment_names_the_shipped_model_and_the_default_stays_lexical():
    scorer = offline_scorer("entailment")
    assert isinstance(scorer, EntailmentFaithfulnessScorer)
    assert scorer.model is shipped_detector()
    assert type(offline_scorer()).__name__ == "LexicalFaithfulnessScorer"
    assert HEAD_FILE.stat().st_size < 30_000_000  # it ships inside the package


def test_eval_score_as_typed_catches_each_kind_of_error_and_passes_what_the_report_says(tmp_path):
    rows = [{"id": f"ok-{i}", "context": REPORT, "output": s} for i, s in enumerate(SUPPORTED)]
    rows += [{"id": kind, "context": REPORT, "output": s} for kind, s in UNSUPPORTED.items()]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "eval", "score", "--metric", "faithfulness-entailment", "--input", str(path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = {r["id"]: r for r in map(json.loads, done.stdout.splitlines())}
    wrong = {k: r["score"] for k, r in results.items() if r["passed"] != k.startswith("ok-")}
    assert not wrong, wrong
    for kind, sentence in UNSUPPORTED.items():
        assert results[kind]["unsupported"] == [sentence]


def test_only_the_unsupported_sentence_of_an_output_is_named():
    output = f"{SUPPORTED[0]} {UNSUPPORTED['year']} {SUPPORTED[1]}"
    result = offline_scorer("entailment").score(output, REPORT)
    assert not result.passed
    assert result.unsupported == [UNSUPPORTED["year"]]
    verdict = next(c for c in result.claims if not c.supported)
    assert "1998" in verdict.evidence


def test_a_context_window_is_read_once_for_every_claim_compared_with_it():
    detector = AlignmentDetector(encoder=shipped_detector().encoder)
    calls: list[int] = []
    encode = detector.encoder.encode

    def counting(texts, max_tokens, batch=32):
        calls.append(len(texts))
        return encode(texts, max_tokens, batch)

    detector.encoder.encode = counting  # type: ignore[method-assign]
    try:
        detector.scores([(REPORT, SUPPORTED[0]), (REPORT, SUPPORTED[1]), (REPORT, SUPPORTED[0])])
        detector.scores([(REPORT, UNSUPPORTED["year"])])
    finally:
        del detector.encoder.encode
    assert calls == [1, 2, 1]  # the report once, two distinct claims, then only the new claim


@pytest.mark.skipif(not DEV_DATA.exists(), reason=f"development data not on this machine ({DEV_DATA})")
def test_balanced_accuracy_on_a_source_it_never_saw_stays_above_its_floor():
    """SummEval's 100 rows (measured 0.665); XSum-Faith's first 100 are too noisy for a floor
    (0.47 there, 0.57 on all 485: benchmarks/README.md)."""
    rows = [json.loads(line) for line in DEV_DATA.read_text().splitlines() if line.strip()]
    scorer = offline_scorer("entailment")
    subset = [r for r in rows if r["source"] == "summeval"]
    recalls = []
    for label in ("consistent", "inconsistent"):
        labelled = [r for r in subset if r["label"] == label]
        right = sum(
            scorer.score(r["claim"], r["document"]).passed == (label == "consistent") for r in labelled
        )
        recalls.append(right / len(labelled))
    assert sum(recalls) / 2 >= 0.60, recalls


def test_calibrate_with_the_entailment_scorer_prints_the_line_that_pins_it(tmp_path):
    from test_eval_entailment import labelled_rows  # the same labelled rows as the lexical scorer's test

    rows = labelled_rows(tmp_path / "labelled.jsonl")
    done = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "eval", "calibrate", "--metric", "faithfulness-entailment", str(rows)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # "rose" for "fell", a swapped name, a wrong year and a dropped negation all fail here,
    # where the lexical scorer passes at least the first.
    assert "at the current threshold 0.500: balanced accuracy 1.000" in done.stdout
    assert "assert: [{type: faithfulness, scorer: entailment, threshold:" in done.stdout


def test_a_bad_label_names_its_row(tmp_path):
    rows = tmp_path / "labelled.jsonl"
    rows.write_text(json.dumps({"context": REPORT, "output": SUPPORTED[0], "label": "maybe"}) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "eval", "calibrate", "--metric", "faithfulness-lexical", str(rows)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert done.returncode != 0
    assert "row 1: label 'maybe' is not one of" in done.stderr
