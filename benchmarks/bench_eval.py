"""Throughput of offline grading: the offline assertions and the lexical faithfulness scorer together.

    python benchmarks/bench_eval.py [--cases N] [--data FILE]

Each case is a news article (about 400 words), a one- or multi-sentence summary (the
output) and the article's lead sentence (the reference), graded by thirteen assertions:
equals, contains, icontains, contains-any, contains-all, regex, starts-with, is-json,
refusal, ROUGE-L, BLEU and Levenshtein against the reference, and faithfulness to the
article with the lexical scorer (the default scorer is a model; its cost per pair is in
benchmarks/faithfulness_quality.py). Cases
come from the SummaC development slice when it is on this machine (real vocabulary, so
caches warm as in real use), else from generated articles. Time is this process's CPU
time, on one core: the machine is shared, and wall time would count the neighbours.
Target: at least 500 cases per second.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from llmops.evaluation.assertions import EvalContext, combine, grade_sync, parse_assertions
from llmops.evaluation.faithfulness import LexicalFaithfulnessScorer, sentences

DEFAULT_DATA = Path("/work/shared/data/faithfulness/dev.jsonl")
TARGET = 500

ASSERTIONS = parse_assertions(
    [
        {"type": "equals", "value": "never equal"},
        {"type": "contains", "value": "the"},
        {"type": "icontains", "value": "said"},
        {"type": "contains-any", "value": ["police", "club", "government"]},
        {"type": "contains-all", "value": ["the", "a"], "threshold": 0.5},
        {"type": "regex", "value": r"\b\d{2,4}\b"},
        {"type": "starts-with", "value": "The"},
        {"type": "not-is-json"},
        {"type": "not-refusal"},
        {"type": "rouge-l", "threshold": 0.2},
        {"type": "bleu", "threshold": 0.1},
        {"type": "levenshtein", "threshold": 0.3},
        {"type": "faithfulness", "scorer": "lexical", "threshold": 0.5, "weight": 2},
    ]
)


def generated_cases(count: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5000)] + "the a of council police said club year people".split()
    cases = []
    for _ in range(count):
        sentences = [" ".join(rng.choice(words) for _ in range(20)) + "." for _ in range(20)]
        cases.append({"document": " ".join(sentences), "claim": " ".join(rng.sample(sentences, 2))})
    return cases


def load_cases(path: Path, count: int) -> tuple[list[dict], str]:
    if path.exists():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        source = f"{path.name} ({len(rows)} rows, cycled)"
    else:
        rows = generated_cases(500)
        source = "generated articles"
    return [rows[i % len(rows)] for i in range(count)], source


def reference_of(document: str) -> str:
    """The article's lead sentence: the reference summary the text metrics compare with."""
    return sentences(document)[0]


def grade_case(case: dict) -> bool:
    document = case["document"]
    ctx = EvalContext(output=case["claim"], expected=case["reference"], context=document)
    results = [grade_sync(spec, ctx) for spec in ASSERTIONS]
    return combine(results).passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    cases, source = load_cases(args.data, args.cases)
    for case in cases:
        case["reference"] = reference_of(case["document"])
    grade_case(cases[0])  # load the tokenizer once, outside the timing
    words = statistics.mean(len(c["document"].split()) for c in cases)
    output_words = statistics.mean(len(c["claim"].split()) for c in cases)
    reference_words = statistics.mean(len(c["reference"].split()) for c in cases)
    print(
        f"{len(cases)} cases from {source}: articles of {words:.0f} words, outputs of {output_words:.0f}, "
        f"references of {reference_words:.0f} on average; {len(ASSERTIONS)} assertions each"
    )

    rates = []
    for _ in range(args.repeats):
        started = time.process_time()
        for case in cases:
            grade_case(case)
        rates.append(len(cases) / (time.process_time() - started))
    print(f"assertions + faithfulness: {max(rates):,.0f} cases/s (best of {args.repeats}; runs: "
          + ", ".join(f"{r:,.0f}" for r in rates) + f"), target {TARGET}: {'met' if max(rates) >= TARGET else 'MISSED'}")

    scorer = LexicalFaithfulnessScorer()
    started = time.process_time()
    for case in cases:
        scorer.score(case["claim"], case["document"])
    print(f"faithfulness alone:         {len(cases) / (time.process_time() - started):,.0f} cases/s")

    offline = [s for s in ASSERTIONS if s.type != "faithfulness"]
    started = time.process_time()
    for case in cases:
        ctx = EvalContext(output=case["claim"], expected=case["reference"], context=case["document"])
        for spec in offline:
            grade_sync(spec, ctx)
    print(f"other assertions alone:     {len(cases) / (time.process_time() - started):,.0f} cases/s")


if __name__ == "__main__":
    main()
