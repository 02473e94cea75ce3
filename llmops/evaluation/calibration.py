"""How well a scorer agrees with human labels, and the threshold that agrees best.

`llmops eval calibrate` prints this for a scorer on labelled rows. Scores are "higher is
better" (a faithfulness score: supported); a label is True when the row should pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llmops.errors import InvalidInput

_TRUE = {"1", "true", "yes", "pass", "passed", "consistent", "faithful", "supported", "correct", "entailment"}
_FALSE = {"0", "false", "no", "fail", "failed", "inconsistent", "unfaithful", "unsupported", "hallucinated",
          "hallucination", "incorrect", "contradiction", "not_entailment"}  # fmt: skip


def parse_label(value: Any) -> bool:
    """A human label as "should pass": 1/0, true/false, consistent/inconsistent, ..."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidInput(f"label {value!r} is not one of: {', '.join(sorted(_TRUE | _FALSE))}")


@dataclass(frozen=True)
class Agreement:
    threshold: float
    balanced_accuracy: float
    kappa: float
    # Rows by (label, verdict): true_pass = labelled pass and passed, etc.
    true_pass: int
    false_fail: int
    false_pass: int
    true_fail: int

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def agreement(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> Agreement:
    """Balanced accuracy (mean recall of both classes) and Cohen's kappa at one threshold."""
    tp = fn = fp = tn = 0
    for score, label in zip(scores, labels, strict=True):
        if label:
            tp, fn = (tp + 1, fn) if score >= threshold else (tp, fn + 1)
        else:
            fp, tn = (fp + 1, tn) if score >= threshold else (fp, tn + 1)
    return _agreement(threshold, tp, fn, fp, tn)


def _agreement(threshold: float, tp: int, fn: int, fp: int, tn: int) -> Agreement:
    recalls = [tp / (tp + fn)] if tp + fn else []
    recalls += [tn / (tn + fp)] if tn + fp else []
    balanced = sum(recalls) / len(recalls) if recalls else 0.0
    n = tp + fn + fp + tn
    observed = (tp + tn) / n if n else 0.0
    expected = ((tp + fn) * (tp + fp) + (tn + fp) * (tn + fn)) / (n * n) if n else 0.0
    kappa = (observed - expected) / (1 - expected) if expected < 1 else 0.0
    return Agreement(threshold, balanced, kappa, tp, fn, fp, tn)


@dataclass(frozen=True)
class Calibration:
    rows: int
    positives: int
    at_threshold: Agreement
    best: Agreement

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "positives": self.positives,
            "at_threshold": self.at_threshold.to_dict(),
            "best": self.best.to_dict(),
        }


def calibrate(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> Calibration:
    """Agreement at `threshold`, and at the threshold that maximises balanced accuracy
    (ties: the higher kappa, then the threshold nearest the current one)."""
    if len(scores) != len(labels):
        raise InvalidInput("calibration needs one label per score")
    if not scores:
        raise InvalidInput("calibration needs labelled rows; the file has none")
    if all(labels) or not any(labels):
        raise InvalidInput(
            "calibration needs rows of both labels (some that should pass, some that should fail)"
        )
    # Candidates: one threshold below every score, one between each pair of neighbouring
    # scores, one above all. Swept upwards, each step fails the rows at the score it passes,
    # so every candidate costs a count update, not a pass over the rows.
    at_score: dict[float, list[int]] = {}
    for score, label in zip(scores, labels, strict=True):
        at_score.setdefault(score, [0, 0])[0 if label else 1] += 1
    values = sorted(at_score)
    tp, fp = sum(labels), len(labels) - sum(labels)
    fn = tn = 0
    found = [_agreement(values[0] - 1e-6, tp, fn, fp, tn)]
    for i, value in enumerate(values):
        positives, negatives = at_score[value]
        tp, fn, fp, tn = tp - positives, fn + positives, fp - negatives, tn + negatives
        above = (value + values[i + 1]) / 2 if i + 1 < len(values) else value + 1e-6
        found.append(_agreement(above, tp, fn, fp, tn))
    best = max(
        found, key=lambda a: (round(a.balanced_accuracy, 9), round(a.kappa, 9), -abs(a.threshold - threshold))
    )
    return Calibration(len(scores), sum(labels), agreement(scores, labels, threshold), best)
