"""Eval runs as a reader wants them: the list, where a run came from, a baseline and its verdict.

The matrix of a run is llmops.ui.matrix_view's."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from llmops.evaluation.models import EvalRun, is_evidence
from llmops.evaluation.reports import Comparison, compare, compare_rows
from llmops.evaluation.runner import RunResult
from llmops.evaluation.storage import list_runs, load_run

# The baseline picker's "no baseline" choice (a selectbox's None means "nothing picked yet").
NO_BASELINE = "(none)"

__all__ = [
    "NO_BASELINE",
    "RunListing",
    "recent_runs",
    "load_run",
    "compare_with_baseline",
    "baseline_table",
    "changes_table",
    "Verdict",
    "baseline_verdict",
]


@dataclass(frozen=True)
class RunListing:
    id: str
    suite: str
    status: str
    passed: int
    total: int
    score: float
    cost: float
    started_at: str
    prompts: str
    models: str
    origin: str = "eval run"

    @property
    def label(self) -> str:
        return f"{self.suite} · {self.id} · {self.started_at} · {self.passed}/{self.total} passed"


def _listing(row: EvalRun) -> RunListing:
    return RunListing(
        id=row.id,
        suite=row.suite,
        status=row.status,
        passed=row.passed,
        total=row.total,
        score=row.score,
        cost=row.cost,
        started_at=row.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        prompts=", ".join(dict.fromkeys(row.prompts.values())),
        models=", ".join(row.models),
        origin=origin_text(row.parameters or {}),
    )


def recent_runs(database_url: str, *, suite: str | None = None, limit: int = 200) -> list[RunListing]:
    return [_listing(row) for row in list_runs(database_url, suite=suite, limit=limit)]


# Saved comparisons from the app: kept for reading, not eval evidence for a prompt version.
ORIGIN_COMPARE = "app-compare"


def origin_text(parameters: dict[str, Any]) -> str:
    if parameters.get("origin") == ORIGIN_COMPARE:
        return "app comparison" if not is_evidence(parameters) else "app, saved as eval run"
    return "eval run"


def aligned_baseline(baseline: RunResult, current: RunResult) -> RunResult:
    """The baseline with its prompt ids renamed to the current run's where both name the same
    resolved version differently (`summarize:2` in one, `summarize@production` → summarize:2
    in the other), so a run from the app and one from the CLI line up. Ids both runs use
    are kept: `summarize@production` then and now is the comparison CI makes."""
    by_ref: dict[str, list[str]] = {}
    for prompt_id, ref in current.prompts.items():
        by_ref.setdefault(ref, []).append(prompt_id)
    rename = {}
    for prompt_id, ref in baseline.prompts.items():
        if prompt_id in current.prompts:
            continue
        ids = by_ref.get(ref, [])
        if len(ids) == 1 and ids[0] not in baseline.prompts:
            rename[prompt_id] = ids[0]
    if not rename:
        return baseline
    return dataclasses.replace(
        baseline,
        prompts={rename.get(k, k): v for k, v in baseline.prompts.items()},
        results=[
            dataclasses.replace(r, prompt_id=rename.get(r.prompt_id, r.prompt_id)) for r in baseline.results
        ],
    )


def compare_with_baseline(database_url: str, baseline_id: str, current: RunResult) -> Comparison:
    return compare(aligned_baseline(load_run(baseline_id, database_url), current), current)


def baseline_table(comparison: Comparison) -> list[dict[str, str]]:
    return [
        dict(zip(("Prompt", "Model", "Baseline", "Current", "Change"), row, strict=True))
        for row in compare_rows(comparison)
    ]


def changes_table(comparison: Comparison) -> list[dict[str, Any]]:
    """Cases whose verdict changed: regressions first, then fixes."""
    rows = []
    for kind, items in (("regressed", comparison.regressions), ("fixed", comparison.fixes)):
        for item in items:
            case_id, prompt_id, model_id = item.key
            rows.append(
                {
                    "Change": kind,
                    "Case": case_id,
                    "Prompt": prompt_id,
                    "Model": model_id,
                    "Baseline score": "–" if item.before is None else f"{item.before:.3f}",
                    "Current score": "–" if item.after is None else f"{item.after:.3f}",
                }
            )
    return rows


@dataclass(frozen=True)
class Verdict:
    kind: str  # "regressed" | "no regression" | "nothing in common"
    message: str


def baseline_verdict(comparison: Comparison) -> Verdict:
    """What the comparison says; runs that share no case × prompt × model say so, not a verdict."""
    baseline_id = comparison.baseline.id
    common = [i for i in comparison.items if i.before is not None and i.after is not None]
    if not common:
        return Verdict(
            "nothing in common",
            f"Nothing to compare with {baseline_id}: the two runs share no case on the same prompt and model "
            "(typed rows match only when their variables are the same).",
        )
    if comparison.regressed:
        message = (
            f"Regressed against {baseline_id}: {len(comparison.regressions)} case(s) that passed now fail"
        )
        if comparison.score_drops:
            message += f", {len(comparison.score_drops)} prompt × model score drop(s)"
        return Verdict("regressed", message + f" ({len(common)} in common).")
    return Verdict(
        "no regression",
        f"No regression against {baseline_id} ({len(comparison.fixes)} case(s) fixed, {len(common)} in common).",
    )
