"""Faithfulness scorers beyond the default from the outside: a detector from a local
directory (the SummaC recipe over its entailment scores), scorer names in one place, and
`llmops eval calibrate` as typed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from llmops.errors import InvalidInput
from llmops.evaluation.entailment import EntailmentFaithfulnessScorer
from llmops.evaluation.faithfulness_scorers import offline_scorer

REPO = Path(__file__).resolve().parents[1]
LLMOPS = [sys.executable, "-m", "llmops.cli"]

REPORT = (
    "Shares in Northwind Traders fell 12% on Tuesday after the company cut its profit forecast. "
    "Chief executive Maria Lopez said demand in Europe had weakened since the spring. "
    "The company, founded in 1998, employs about 4,000 people. "
    "Analysts at Halden Bank said the cut was not a surprise."
)

def test_scorer_names_resolve_in_one_place(tmp_path):
    assert type(offline_scorer()).__name__ == "LexicalFaithfulnessScorer"
    assert type(offline_scorer("lexical")).__name__ == "LexicalFaithfulnessScorer"
    assert isinstance(offline_scorer(model=str(tmp_path)), EntailmentFaithfulnessScorer)
    with pytest.raises(InvalidInput, match="does not run offline"):
        offline_scorer("judge")
    with pytest.raises(InvalidInput, match="known scorers: offline, lexical, entailment, judge"):
        offline_scorer("magic")


# ---- a detector the project does not ship, from a local directory ----


def tiny_detector(path: Path, labels: dict[int, str], lean: float = 0.0) -> Path:
    """A random-weight BERT sequence classifier and its own word-piece tokenizer, saved in
    Hugging Face format: what a user's HHEM- or MiniCheck-style directory holds. `lean`
    biases the output named "supported" (or "entailment") by that many logits."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = sorted({w.lower().strip(".,%") for w in REPORT.split()} | {"rose", "fell", "the", "a"})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()},
    )  # fmt: skip
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        for i, name in labels.items():
            if name in ("supported", "entailment"):
                model.classifier.bias[i] += lean
    model.save_pretrained(path)
    return path


def test_a_local_detector_loads_and_its_supported_label_is_found_by_name(tmp_path):
    from llmops.evaluation.nli import LocalDetector

    first = LocalDetector(str(tiny_detector(tmp_path / "a", {0: "unsupported", 1: "supported"})))
    # The same seed gives the same weights; only the label names are swapped.
    second = LocalDetector(str(tiny_detector(tmp_path / "b", {0: "supported", 1: "unsupported"})))
    pairs = [(REPORT, "Shares in Northwind Traders rose 12% on Tuesday."), (REPORT, "The company employs 4,000 people.")]
    a, b = first.scores(pairs), second.scores(pairs)
    assert a.shape == (2, 2) and ((a[:, 0] > 0) & (a[:, 0] < 1)).all()
    assert a[:, 0] + b[:, 0] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert (a[:, 1] == 0).all()  # no label says contradiction

    with pytest.raises(InvalidInput, match="no Hugging Face model"):
        LocalDetector(str(tmp_path / "missing"))


def test_a_detector_names_each_unsupported_sentence_with_its_evidence(tmp_path):
    doubting = tiny_detector(tmp_path / "doubting", {0: "not_entailment", 1: "entailment"}, lean=-8.0)
    trusting = tiny_detector(tmp_path / "trusting", {0: "not_entailment", 1: "entailment"}, lean=8.0)
    output = "Shares in Northwind Traders fell 12% on Tuesday. Maria Lopez resigned in June."
    passes = offline_scorer(model=str(trusting)).score(output, REPORT)
    assert passes.passed and passes.unsupported == [] and len(passes.claims) == 2
    fails = offline_scorer(model=str(doubting)).score(output, REPORT)
    assert not fails.passed
    assert fails.unsupported == ["Shares in Northwind Traders fell 12% on Tuesday.", "Maria Lopez resigned in June."]
    # Each is named with the context passage the detector found most supporting.
    assert all(c.evidence and c.evidence.split(". ")[0].rstrip(".") in REPORT for c in fails.claims)
    assert "resign" in fails.claims[1].unsupported_terms and "june" in fails.claims[1].unsupported_terms
    assert fails.score == min(c.score for c in fails.claims)


def test_a_suite_names_a_local_detector(tmp_path):
    detector = tiny_detector(tmp_path / "detector", {0: "not_entailment", 1: "entailment"})
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        textwrap.dedent(
            f"""
            name: detector
            prompts: [summarize@production]
            models: [demo]
            cases:
              - id: report
                vars: {{text: {json.dumps(REPORT)}}}
                context: "{{{{ text }}}}"
                assert: [{{type: faithfulness, model: {json.dumps(str(detector))}, threshold: 0.0}}]
            """
        )
    )
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    subprocess.run([*LLMOPS, "prompts", "sync", str(REPO / "prompts"), "--database-url", db], check=True, cwd=REPO,
                   capture_output=True)  # fmt: skip
    done = subprocess.run([*LLMOPS, "eval", "run", str(suite), "--json", "--database-url", db],
                          cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    (result,) = run["results"]
    (check,) = result["assertions"]
    assert check["name"] == "faithfulness" and check["passed"]


# ---- `llmops eval calibrate`, as typed ----


def labelled_rows(path: Path) -> Path:
    rows = [
        ("Shares in Northwind Traders fell 12% on Tuesday.", 1),
        ("Maria Lopez said demand in Europe had weakened.", 1),
        ("The company employs about 4,000 people.", 1),
        ("Analysts said the cut was not a surprise.", 1),
        ("Shares in Northwind Traders rose 12% on Tuesday.", 0),
        ("Anna Berg said demand in Europe had weakened.", 0),
        ("The company was founded in 2008.", 0),
        ("Analysts at Halden Bank said the cut was a surprise.", 0),
    ]
    path.write_text("".join(json.dumps({"context": REPORT, "output": o, "label": y}) + "\n" for o, y in rows))
    return path


def test_calibrate_prints_agreement_the_best_threshold_and_the_confusion_matrix(tmp_path):
    rows = labelled_rows(tmp_path / "labelled.jsonl")
    done = subprocess.run([*LLMOPS, "eval", "calibrate", "--metric", "faithfulness", str(rows)],
                          cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "8 rows, 4 labelled pass, 4 labelled fail" in done.stdout
    assert "at the current threshold 0.500: balanced accuracy" in done.stdout
    assert "should pass" in done.stdout and "should fail" in done.stdout
    assert "To pin it in a suite: assert: [{type: faithfulness, threshold:" in done.stdout

    done = subprocess.run([*LLMOPS, "eval", "calibrate", "--json", str(rows)], cwd=REPO, capture_output=True, text=True)
    report = json.loads(done.stdout)
    now, best = report["at_threshold"], report["best"]
    assert report["rows"] == 8 and report["positives"] == 4
    assert now["true_pass"] + now["false_fail"] == 4 and now["false_pass"] + now["true_fail"] == 4
    assert best["balanced_accuracy"] >= now["balanced_accuracy"]
    # Words, not meaning: "rose" for "fell" keeps every word, so the lexical scorer passes it.
    assert now["false_pass"] >= 1

    detector = tiny_detector(tmp_path / "detector", {0: "not_entailment", 1: "entailment"})
    done = subprocess.run([*LLMOPS, "eval", "calibrate", "--model", str(detector), "--json", str(rows)],
                          cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 8

    (tmp_path / "unlabelled.jsonl").write_text(json.dumps({"context": REPORT, "output": "x y z"}) + "\n")
    done = subprocess.run([*LLMOPS, "eval", "calibrate", str(tmp_path / "unlabelled.jsonl")],
                          cwd=REPO, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 1 and "needs a human `label`" in done.stderr
