"""Quality of the offline faithfulness scorer on the SummaC development slice.

    python benchmarks/faithfulness_quality.py [--data FILE] [--refit] [--splits N]

Prints balanced accuracy (mean recall of consistent and inconsistent) of the shipped
weights on all rows and per source, then checks generalisation: for N random halves it
refits the weights on one half and reports the other, per source too. `--refit` also
prints weights fitted on all rows, to paste into llmops/evaluation/faithfulness.py.

The data is never copied into the repository (see /work/shared/data/README.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from llmops.evaluation.faithfulness import (
    BIAS,
    FEATURE_NAMES,
    FIXED_WEIGHTS,
    THRESHOLD,
    WEIGHTS,
    ContextIndex,
    OfflineFaithfulnessScorer,
    claim_features,
    probability,
    split_claims,
)

DEFAULT_DATA = Path("/work/shared/data/faithfulness/dev.jsonl")


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    positives, negatives = labels == 1, labels == 0
    recalls = []
    if positives.any():
        recalls.append(float((predicted[positives] == 1).mean()))
    if negatives.any():
        recalls.append(float((predicted[negatives] == 0).mean()))
    return sum(recalls) / len(recalls)


def row_claim_features(rows: list[dict]) -> list[np.ndarray]:
    """Per row, the features of each of its claims (sentences)."""
    out = []
    for row in rows:
        index = ContextIndex(row["document"])
        claims = split_claims(row["claim"]) or [row["claim"]]
        out.append(np.array([claim_features(c, index)[0] for c in claims]))
    return out


def row_scores(features: list[np.ndarray], weights: np.ndarray, bias: float) -> np.ndarray:
    # A row is as faithful as its weakest claim, as in OfflineFaithfulnessScorer.
    return np.array([min(probability(tuple(f), tuple(weights), bias) for f in claims) for claims in features])


def fit(
    features: list[np.ndarray], labels: np.ndarray, l2: float = 0.001, steps: int = 50
) -> tuple[np.ndarray, float]:
    """Class-balanced logistic regression on each row's weakest claim.

    Starts from each row's mean features, then refits twice on the claim the current
    weights find weakest, which is the claim the scorer will judge the row by. Features
    in FIXED_WEIGHTS keep their weight and enter the fit as an offset.
    """
    fixed = np.array([FEATURE_NAMES.index(name) for name in FIXED_WEIGHTS], dtype=int)
    free = np.array([i for i in range(len(FEATURE_NAMES)) if i not in fixed], dtype=int)
    weights = np.zeros(len(FEATURE_NAMES))
    weights[fixed] = list(FIXED_WEIGHTS.values())
    rows = np.array([claims.mean(axis=0) for claims in features])
    for attempt in range(3):
        if attempt:
            rows = np.array([claims[int(np.argmin(claims @ weights))] for claims in features])
        weights[free], bias = _logistic(rows[:, free], labels, rows[:, fixed] @ weights[fixed], l2, steps)
    return weights, _calibrated_bias(rows @ weights, labels, bias)


def _calibrated_bias(margins: np.ndarray, labels: np.ndarray, bias: float) -> float:
    """The bias that maximises balanced accuracy at probability 0.5 (the scorer's threshold).

    The likelihood optimum is not the accuracy optimum; of equally good biases, take the
    middle of the best run, so the threshold sits between the classes, not on an example.
    """
    candidates = np.sort(-margins)
    scores = [balanced_accuracy(labels, (margins + b >= 0).astype(int)) for b in candidates]
    best = max(scores)
    winners = [b for b, s in zip(candidates, scores, strict=True) if s >= best - 1e-12]
    return float(np.median(winners)) if winners else bias


def _logistic(
    x: np.ndarray, y: np.ndarray, offset: np.ndarray, l2: float, steps: int
) -> tuple[np.ndarray, float]:
    """Newton's method (a handful of parameters), classes weighted to count equally."""
    sample_weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    xb = np.c_[x, np.ones(len(x))]
    w = np.zeros(xb.shape[1])
    penalty = l2 * np.diag(np.r_[np.ones(xb.shape[1] - 1), 0])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(xb @ w + offset)))
        gradient = xb.T @ ((p - y) * sample_weight) / len(y) + penalty @ w
        hessian = (xb * (p * (1 - p) * sample_weight)[:, None]).T @ xb / len(y) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w[:-1], float(w[-1])


def report(name: str, labels: np.ndarray, scores: np.ndarray, sources: np.ndarray) -> str:
    predicted = (scores >= THRESHOLD).astype(int)
    parts = [f"{name:<22} all {balanced_accuracy(labels, predicted):.3f}"]
    for source in sorted(set(sources)):
        mask = sources == source
        parts.append(f"{source} {balanced_accuracy(labels[mask], predicted[mask]):.3f} (n={mask.sum()})")
    return "  ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--refit", action="store_true", help="print weights fitted on all rows")
    parser.add_argument("--splits", type=int, default=10, help="random half splits for the generalisation check")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    labels = np.array([1 if r["label"] == "consistent" else 0 for r in rows])
    sources = np.array([r.get("source", "all") for r in rows])

    scorer = OfflineFaithfulnessScorer()
    scorer.score("Loads the tokenizer once.", "Loads the tokenizer once.")
    started = time.process_time()  # CPU time of this process: the machine is shared
    shipped = np.array([scorer.score(r["claim"], r["document"]).score for r in rows])
    elapsed = time.process_time() - started
    print(f"{len(rows)} rows from {args.data} scored in {elapsed:.2f}s CPU ({len(rows) / elapsed:.0f} rows/s)")
    print(report("shipped weights", labels, shipped, sources))

    features = row_claim_features(rows)
    rng = np.random.default_rng(0)
    tuned, held = [], []
    per_source: dict[str, list[float]] = {}
    for split in range(args.splits):
        order = rng.permutation(len(rows))
        first, second = order[: len(rows) // 2], order[len(rows) // 2 :]
        weights, bias = fit([features[i] for i in first], labels[first])
        for half, store in ((first, tuned), (second, held)):
            scores = row_scores([features[i] for i in half], weights, bias)
            store.append(balanced_accuracy(labels[half], (scores >= THRESHOLD).astype(int)))
        scores = row_scores([features[i] for i in second], weights, bias)
        for source in sorted(set(sources)):
            mask = sources[second] == source
            predicted = (scores[mask] >= THRESHOLD).astype(int)
            per_source.setdefault(source, []).append(balanced_accuracy(labels[second][mask], predicted))
        if split == 0:
            print(report("split 0, tuned half", labels[first], row_scores([features[i] for i in first], weights, bias), sources[first]))
            print(report("split 0, held-out half", labels[second], scores, sources[second]))
    print(
        f"{args.splits} random splits: tuned half {statistics.mean(tuned):.3f}, "
        f"held-out half {statistics.mean(held):.3f} (min {min(held):.3f}); held-out per source: "
        + ", ".join(f"{s} {statistics.mean(v):.3f}" for s, v in per_source.items())
    )
    if args.refit:
        weights, bias = fit(features, labels)
        print("fitted on all rows: WEIGHTS =", tuple(round(float(w), 2) for w in weights), "BIAS =", round(bias, 2))
        print(report("refit (in-sample)", labels, row_scores(features, weights, bias), sources))
    print(f"shipped: WEIGHTS = {WEIGHTS} BIAS = {BIAS}")


if __name__ == "__main__":
    main()
