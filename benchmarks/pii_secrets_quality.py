"""Recall and false alarms of the pii and secrets checks on synthetic labelled texts.

    python benchmarks/pii_secrets_quality.py [--n 40] [--seed 7] [--show 5]

The texts come from tests/support/pii_secrets_synth.py: each positive holds one value in a
real format, each negative the numbers and tokens ordinary texts hold (build numbers,
dates, prices, hashes...). Printed per check: recall and false-alarm rate overall and on
the formats held out from tuning, with 95% Wilson intervals, then the recall per format.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmops.guardrails import Pipeline  # noqa: E402
from tests.support.pii_secrets_synth import pii_rows, probe_rows, probe_rows_2, secret_rows  # noqa: E402


def wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    z = 1.96
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(check: str, rows: list[dict], show: int = 0) -> dict:
    pipe = Pipeline({"input": [{"check": check, "action": "flag"}], "output": []})
    by_format: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    tally = defaultdict(lambda: [0, 0])  # (label, split) -> [flagged, total]
    misses: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        flagged = int(bool(pipe.check_input(row["text"]).verdicts))
        for split in ("all", row["split"]):
            t = tally[(row["label"], split)]
            t[0] += flagged
            t[1] += 1
        f = by_format[f"{'+' if row['label'] else '-'} {row['format']}"]
        f[0] += flagged
        f[1] += 1
        if flagged != row["label"] and len(misses[row["format"]]) < show:
            misses[row["format"]].append(row["text"])
    return {"tally": tally, "by_format": by_format, "misses": misses}


def report(check: str, result: dict) -> None:
    tally = result["tally"]
    print(f"\n== {check}")
    for split in ("all", "tuned", "held_out", "probe", "probe2"):
        if split != "all" and not tally[(1, split)][1]:
            continue
        k1, n1 = tally[(1, split)]
        k0, n0 = tally[(0, split)]
        lo1, hi1 = wilson(k1, n1)
        lo0, hi0 = wilson(k0, n0)
        print(f"{split:<9} recall {k1 / max(n1, 1):6.1%} [{lo1:.1%}, {hi1:.1%}] of {n1}   "
              f"false alarms {k0 / max(n0, 1):5.1%} [{lo0:.1%}, {hi0:.1%}] of {n0}")
    for name, (k, n) in sorted(result["by_format"].items()):
        rate = k / n
        if (name[0] == "+" and rate < 1) or (name[0] == "-" and rate > 0):
            print(f"   {name:<28} {rate:6.1%} of {n}")
    for fmt, texts in result["misses"].items():
        for text in texts:
            print(f"   wrong on {fmt}: {text!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=40, help="texts per format")
    parser.add_argument("--seed", type=int, default=7, help="not the seed the checks were tuned with (1)")
    parser.add_argument("--show", type=int, default=0, help="wrong texts to print per format")
    args = parser.parse_args()
    probes = max(1, args.n // 4)
    for check, rows in (("pii", pii_rows), ("secrets", secret_rows)):
        all_rows = rows(args.seed, args.n) + probe_rows(check, args.seed, probes) + probe_rows_2(check, args.seed, probes)
        report(check, evaluate(check, all_rows, args.show))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
