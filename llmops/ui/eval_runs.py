"""Eval runs as a reader wants them: the cases × prompt/model matrix, filters, a baseline, CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from typing import Any

from llmops.evaluation.models import EvalRun, is_evidence
from llmops.evaluation.reports import SCORE_TOLERANCE, Comparison, compare, compare_rows
from llmops.evaluation.runner import CaseResult, RunResult
from llmops.evaluation.storage import list_runs, load_run

# The baseline picker's "no baseline" choice (a selectbox's None means "nothing picked yet").
NO_BASELINE = "(none)"

__all__ = [
    "NO_BASELINE",
    "RunListing",
    "Matrix",
    "recent_runs",
    "load_run",
    "result_matrix",
    "results_csv",
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


def column_label(result: CaseResult) -> str:
    prompt = result.prompt_id
    if result.prompt_ref and result.prompt_ref != result.prompt_id:
        prompt = f"{prompt} ({result.prompt_ref})"
    return f"{prompt} | {result.model_id}"


NO_CHECKS = "no checks"


def checked(result: CaseResult) -> bool:
    """Whether anything graded the output: a row with no checks neither passed nor failed."""
    return result.error is not None or any(a.weight > 0 for a in result.assertions)


def cell_text(result: CaseResult | None) -> str:
    if result is None:
        return ""
    if result.error is not None:
        return f"error {result.score:.2f}"
    if not checked(result):
        return NO_CHECKS
    return f"{'pass' if result.passed else 'FAIL'} {result.score:.2f}"


# Saved comparisons from the app: kept for reading, not eval evidence for a prompt version.
ORIGIN_COMPARE = "app-compare"


def origin_text(parameters: dict[str, Any]) -> str:
    if parameters.get("origin") == ORIGIN_COMPARE:
        return "app comparison" if not is_evidence(parameters) else "app, saved as eval run"
    return "eval run"


@dataclass(frozen=True)
class Matrix:
    columns: list[str]
    rows: list[str]  # case ids
    cells: dict[tuple[str, str], CaseResult]  # (case id, column) -> result

    def get(self, case_id: str, column: str) -> CaseResult | None:
        return self.cells.get((case_id, column))

    def row_results(self, case_id: str) -> list[CaseResult]:
        return [r for c in self.columns if (r := self.get(case_id, c)) is not None]

    def failing(self, case_id: str) -> bool:
        return any(not r.passed and checked(r) for r in self.row_results(case_id))

    def differing(self, case_id: str) -> bool:
        """Its columns disagree: one passes where another fails, or scores part by more than noise."""
        results = [r for r in self.row_results(case_id) if checked(r)]
        if len({r.passed for r in results}) > 1:
            return True
        scores = [r.score for r in results]
        return bool(scores) and max(scores) - min(scores) > SCORE_TOLERANCE

    def filtered(self, *, failures_only: bool = False, differences_only: bool = False) -> list[str]:
        return [
            case_id
            for case_id in self.rows
            if (not failures_only or self.failing(case_id))
            and (not differences_only or self.differing(case_id))
        ]

    def table(self, case_ids: list[str]) -> list[dict[str, str]]:
        """One dict per case: `case` and one "pass 0.93" / "FAIL 0.41" / "error" per column."""
        return [{"case": c, **{col: cell_text(self.get(c, col)) for col in self.columns}} for c in case_ids]


def result_matrix(run: RunResult) -> Matrix:
    columns = list(dict.fromkeys(column_label(r) for r in run.results))
    rows = list(dict.fromkeys(r.case_id for r in run.results))
    return Matrix(columns, rows, {(r.case_id, column_label(r)): r for r in run.results})


CSV_COLUMNS = (
    "run_id",
    "suite",
    "case_id",
    "prompt_id",
    "prompt_ref",
    "model_id",
    "model",
    "passed",
    "score",
    "error",
    "reason",
    "latency_ms",
    "cost",
    "input_tokens",
    "output_tokens",
    "cached",
    "output",
)


def results_csv(run: RunResult) -> str:
    """Every result of a run, one row each, for a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for r in run.results:
        row: dict[str, Any] = {
            "run_id": run.id,
            "suite": run.suite,
            "case_id": r.case_id,
            "prompt_id": r.prompt_id,
            "prompt_ref": r.prompt_ref or "",
            "model_id": r.model_id,
            "model": r.model,
            "passed": r.passed,
            "score": round(r.score, 4),
            "error": r.error or "",
            "reason": r.reason,
            "latency_ms": "" if r.latency_ms is None else round(r.latency_ms, 1),
            "cost": "" if r.cost is None else r.cost,
            "input_tokens": r.usage.get("prompt_tokens", ""),
            "output_tokens": r.usage.get("completion_tokens", ""),
            "cached": r.cached,
            "output": r.output or "",
        }
        writer.writerow(row)
    return buffer.getvalue()


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
        dict(zip(("prompt", "model", "baseline", "current", "change"), row, strict=True))
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
                    "change": kind,
                    "case": case_id,
                    "prompt": prompt_id,
                    "model": model_id,
                    "baseline score": None if item.before is None else round(item.before, 3),
                    "current score": None if item.after is None else round(item.after, 3),
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
