"""Quality and cost of the faithfulness scorers, per source.

    python benchmarks/faithfulness_quality.py [--data FILE ...] [--model DIR ...]
        [--subsets NAME ...] [--limit N]

For each source (`source` or `subset` of a row) it prints, for the default scorer (`lexical`),
the shipped entailment model (`entailment`) and each detector directory given with --model,
balanced accuracy
(mean recall of supported and unsupported rows) at the scorer's shipped threshold, and, for
reference only, at the best threshold for that source (which a user cannot know in advance).
Then the cost: CPU time per (1 KB context, one sentence) pair, p50 and p99, and the memory
that loading the detectors adds.

Rows are the development shape (`document`, `claim`, `label` consistent/inconsistent) or the
training shape (`premise`, `hypothesis`, `consistent` 0/1). The default data is
`faithfulness/dev.jsonl`: its XSum-Faith and SummEval slices were never trained on, so each
is a source held out whole (the lexical scorer was tuned on them, so its figures there are
flattering). Leave-one-source-out figures for the training sources come from
`scripts/train_faithfulness_model.py --loso`.

The data is never copied into the repository (see ../shared/data/README.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from llmops.evaluation.calibration import agreement, calibrate  # noqa: E402
from llmops.evaluation.faithfulness import FaithfulnessScorer  # noqa: E402
from llmops.evaluation.faithfulness_scorers import offline_scorer  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "faithfulness" / "dev.jsonl"
CONTEXT_1KB = (
    "The city council approved a budget of 2.1 billion euros for the coming year on Tuesday, after a debate "
    "that lasted more than six hours. Schools will receive 300 million euros, an increase of 4% on last "
    "year, while spending on roads falls by 12%. The mayor, Elena Brandt, said the plan protected services "
    "without raising taxes. The opposition Green group voted against it, arguing that the cuts to public "
    "transport would hurt commuters in the outer districts. A vote on the transport plan itself was "
    "postponed until March. The council also agreed to sell two office buildings in the centre, which are "
    "expected to raise about 45 million euros. Officials said the sale would be completed by the end of the "
    "year. Unions representing council staff welcomed the decision not to cut jobs."
)


def load_rows(paths: list[Path], subsets: set[str], limit: int) -> dict[str, list[tuple[str, str, bool]]]:
    by_source: dict[str, list[tuple[str, str, bool]]] = defaultdict(list)
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            source = row.get("source") if "document" in row else row.get("subset")
            if subsets and source not in subsets:
                continue
            if "document" in row:
                item = (row["document"], row["claim"], row["label"] == "consistent")
            else:
                item = (row["premise"], row["hypothesis"], bool(row["consistent"]))
            if not limit or len(by_source[source]) < limit:
                by_source[source].append(item)
    return by_source


def quality(scorer: FaithfulnessScorer, rows: list[tuple[str, str, bool]]) -> tuple[float, float, float]:
    results = [scorer.score(claim, document) for document, claim, _ in rows]
    scores = [r.score for r in results]
    labels = [y for _, _, y in rows]
    threshold = results[0].threshold
    shipped = agreement(scores, labels, threshold).balanced_accuracy
    best = calibrate(scores, labels, threshold).best if any(labels) and not all(labels) else None
    return shipped, (best.balanced_accuracy if best else float("nan")), (best.threshold if best else float("nan"))


def cost(scorer: FaithfulnessScorer, repeats: int = 60) -> tuple[float, float]:
    claims = [
        "Schools will receive 300 million euros, an increase of 4%.",
        "Spending on roads rises by 12%.",
        "The mayor, Elena Brandt, said taxes would go up.",
    ]
    scorer.score(claims[0], CONTEXT_1KB)  # loads the model
    times = []
    for i in range(repeats):
        started = time.process_time()
        scorer.score(claims[i % len(claims)], CONTEXT_1KB + f" Note {i}.")
        times.append((time.process_time() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="*", default=[DEFAULT_DATA])
    parser.add_argument("--model", nargs="*", default=[], help="detector directories to score with too")
    parser.add_argument("--subsets", nargs="*", default=[], help="only these sources")
    parser.add_argument("--limit", type=int, default=0, help="at most N rows per source")
    args = parser.parse_args()

    by_source = load_rows(args.data, set(args.subsets), args.limit)
    names = ["lexical", "entailment", *args.model]
    print(f"{'source':<24} {'rows':>5} " + " ".join(f"{n + ' BA':>14} {'(best@t)':>14}" for n in names))
    before = rss_mb()
    scorers = {n: offline_scorer(n) if n in ("lexical", "entailment") else offline_scorer(model=n) for n in names}
    for source, rows in sorted(by_source.items()):
        cells = []
        for name in names:
            shipped, best, at = quality(scorers[name], rows)
            cells.append(f"{shipped:>14.3f} {f'({best:.3f}@{at:.2f})':>14}")
        print(f"{source:<24} {len(rows):>5} " + " ".join(cells), flush=True)
    print("\ncost per (1 KB context, one sentence), CPU ms:")
    for name in names:
        p50, p99 = cost(scorers[name])
        print(f"  {name:<10} p50 {p50:.1f}  p99 {p99:.1f}")
    print(f"memory: peak RSS {rss_mb():.0f} MB (was {before:.0f} MB before the scorers loaded)")


if __name__ == "__main__":
    main()
