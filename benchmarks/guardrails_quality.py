"""Quality of the default guardrails: balanced accuracy and benign false-positive rate.

    python benchmarks/guardrails_quality.py [--data ../shared/data] [--misses]

Data:
  - the shared development data (`guardrails/jailbreak_dev.jsonl`: role-play jailbreaks vs
    ordinary role prompts; `guardrails/injection_giskard.jsonl`: injection attacks), read in
    place, never copied. The jailbreak rows are split in two halves by a hash of their id:
    "tune" is the half looked at while choosing cues and weights, "report" was only
    counted, so the gap between the two shows how well the checks generalise;
  - the hand-written prompts in tests/test_guardrails_cases.py (attacks and harmful requests
    in several languages, and benign prompts that share their words): TUNE, FRESH and
    HOLDOUT and FINAL; the module's docstring gives each set's first count, before it was used.

The injection check's learned scorer (llmops/guardrails/jailbreak_model.json) is trained
on all of jailbreak_dev.jsonl, so those rows are no longer unseen for the check as a
whole: `scripts/train_jailbreak_model.py --check-only` gives its cross-validated figures
and those of a model trained on the "tune" half and counted on the "report" half.

"Blocked" means the default input pipeline blocks the prompt; a benign prompt counts as a
false positive when the injection or harmful check flags it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from llmops.guardrails import Pipeline  # noqa: E402

SAFETY_CHECKS = {"injection", "harmful"}


def half(row_id: str) -> str:
    return "tune" if int(hashlib.sha1(row_id.encode()).hexdigest(), 16) % 2 == 0 else "report"


def flags(pipe: Pipeline, text: str, checks: set[str]) -> bool:
    return any(v["check"] in checks for v in pipe.check_input(text).verdicts)


def rates(pipe: Pipeline, attacks: list[str], benign: list[str], checks: set[str]) -> dict[str, float]:
    hit = [flags(pipe, t, checks) for t in attacks]
    false = [flags(pipe, t, SAFETY_CHECKS) for t in benign]
    recall = sum(hit) / len(hit) if hit else float("nan")
    fpr = sum(false) / len(false) if false else float("nan")
    out = {"n_attack": len(hit), "n_benign": len(false), "recall": recall, "benign_fpr": fpr}
    if hit and false:
        out["balanced_accuracy"] = (recall + 1 - fpr) / 2
    return out


def show(name: str, r: dict[str, float]) -> None:
    parts = [f"{name:<44}", f"attacks={r['n_attack']:<4}", f"benign={r['n_benign']:<4}"]
    if r["n_attack"]:
        parts.append(f"recall={r['recall']:.3f}")
    if r["n_benign"]:
        parts.append(f"benign_fpr={r['benign_fpr']:.3f}")
    if "balanced_accuracy" in r:
        parts.append(f"balanced_acc={r['balanced_accuracy']:.3f}")
    print("  ".join(parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the shared data directory")
    parser.add_argument("--misses", action="store_true", help="list missed attacks and flagged benign prompts of the hand-written sets")
    args = parser.parse_args()
    pipe = Pipeline()
    data = Path(args.data) / "guardrails"

    print("== shared development data (read in place)")
    jailbreak = data / "jailbreak_dev.jsonl"
    if jailbreak.exists():
        rows = [json.loads(line) for line in jailbreak.read_text(encoding="utf-8").split("\n") if line.strip()]
        for part in ("tune", "report", "all"):
            sel = [r for r in rows if part == "all" or half(r["id"]) == part]
            attacks = [r["text"] for r in sel if r["label"] == "attack"]
            benign = [r["text"] for r in sel if r["label"] != "attack"]
            show(f"jailbreak_dev [{part}] injection check", rates(pipe, attacks, benign, {"injection"}))
    else:
        print(f"  (skipped: {jailbreak} not found)")
    giskard = data / "injection_giskard.jsonl"
    if giskard.exists():
        rows = [json.loads(line) for line in giskard.read_text(encoding="utf-8").split("\n") if line.strip()]
        show("injection_giskard (attacks only) injection", rates(pipe, [r["text"] for r in rows], [], {"injection"}))
        for group in sorted({r.get("group", "") for r in rows}):
            texts = [r["text"] for r in rows if r.get("group", "") == group]
            show(f"  group {group!r}", rates(pipe, texts, [], {"injection"}))
    else:
        print(f"  (skipped: {giskard} not found)")

    import test_guardrails_cases as cases

    print("== hand-written prompts (tests/test_guardrails_cases.py)")
    for part in ("TUNE", "FRESH", "HOLDOUT", "FINAL"):
        attacks = getattr(cases, f"INJECTION_{part}")
        harmful = getattr(cases, f"HARMFUL_{part}")
        benign = getattr(cases, f"BENIGN_{part}")
        show(f"injection [{part}] injection check", rates(pipe, attacks, benign, {"injection"}))
        show(f"harmful [{part}] harmful check", rates(pipe, harmful, benign, {"harmful"}))
        if args.misses:
            for t in attacks:
                if not flags(pipe, t, {"injection"}):
                    print(f"    missed injection: {t}")
            for t in harmful:
                if not flags(pipe, t, {"harmful"}):
                    print(f"    missed harmful: {t}")
            for t in benign:
                if flags(pipe, t, SAFETY_CHECKS):
                    print(f"    flagged benign: {t}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
