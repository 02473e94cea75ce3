"""Eval runs in the database: save, list, load (by id, id prefix, or `last`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from llmops.db import session_scope
from llmops.errors import NotFound
from llmops.evaluation.assertions import AssertionResult
from llmops.evaluation.models import EvalResult, EvalRun
from llmops.evaluation.repeats import RepeatStats
from llmops.evaluation.runner import CaseResult, RunResult


def save_run(run: RunResult, database_url: str | None = None) -> None:
    with session_scope(database_url) as session:
        session.add(
            EvalRun(
                id=run.id,
                suite=run.suite,
                suite_path=run.suite_path,
                status=run.status,
                prompts=run.prompts,
                models=run.models,
                parameters=run.parameters,
                git_commit=run.git_commit,
                total=run.total,
                passed=run.passed_count,
                errors=run.errors,
                score=run.score,
                cost=run.cost,
                latency_ms=run.latency_ms,
                baseline_run_id=run.baseline_run_id,
                started_at=run.started_at,
                finished_at=run.finished_at,
            )
        )
        for r in run.results:
            session.add(
                EvalResult(
                    run_id=run.id,
                    case_id=r.case_id,
                    prompt_id=r.prompt_id,
                    prompt_ref=r.prompt_ref,
                    model_id=r.model_id,
                    model=r.model,
                    params=r.params,
                    variables=r.variables,
                    output=r.output,
                    error=r.error,
                    score=r.score,
                    passed=r.passed,
                    reason=r.reason,
                    assertions=[a.to_dict() for a in r.assertions],
                    latency_ms=r.latency_ms,
                    cost=r.cost,
                    usage=r.usage,
                    cached=r.cached,
                    tool_calls=r.tool_calls or None,
                    repeats=(
                        {"stats": r.repeat.to_dict(), "attempts": [a.attempt_dict() for a in r.attempts]}
                        if r.repeat is not None
                        else None
                    ),
                )
            )


def list_runs(database_url: str | None = None, *, suite: str | None = None, limit: int = 20) -> list[EvalRun]:
    with session_scope(database_url) as session:
        query = select(EvalRun).order_by(col(EvalRun.started_at).desc()).limit(limit)
        if suite:
            query = query.where(EvalRun.suite == suite)
        return list(session.exec(query).all())


def resolve_run_id(ref: str, database_url: str | None = None, *, suite: str | None = None) -> str:
    """A run id from an id, a unique id prefix, or `last` (the latest run, of `suite` if given)."""
    with session_scope(database_url) as session:
        if ref == "last":
            query = select(EvalRun.id).order_by(col(EvalRun.started_at).desc()).limit(1)
            if suite:
                query = query.where(EvalRun.suite == suite)
            found = session.exec(query).first()
            if found is None:
                raise NotFound(f"no earlier eval run{f' of suite {suite}' if suite else ''} to compare with")
            return found
        matches = session.exec(select(EvalRun.id).where(col(EvalRun.id).startswith(ref)).limit(2)).all()
    if not matches:
        raise NotFound(f"no eval run {ref!r}; see `llmops eval list`")
    if len(matches) > 1:
        raise NotFound(f"eval run prefix {ref!r} is ambiguous; give more characters")
    return matches[0]


def load_run(ref: str, database_url: str | None = None, *, suite: str | None = None) -> RunResult:
    run_id = resolve_run_id(ref, database_url, suite=suite)
    with session_scope(database_url) as session:
        row = session.get(EvalRun, run_id)
        if row is None:
            raise NotFound(f"no eval run {ref!r}")
        results = session.exec(
            select(EvalResult).where(EvalResult.run_id == run_id).order_by(col(EvalResult.id))
        ).all()
    return RunResult(
        id=row.id,
        suite=row.suite,
        suite_path=row.suite_path,
        prompts=dict(row.prompts),
        models=list(row.models),
        parameters=dict(row.parameters),
        git_commit=row.git_commit,
        results=[_case_result(r) for r in results],
        started_at=row.started_at,
        finished_at=row.finished_at,
        baseline_run_id=row.baseline_run_id,
    )


def _assertion(a: dict[str, Any]) -> AssertionResult:
    return AssertionResult(
        type=a["type"],
        name=a["name"],
        passed=a["passed"],
        score=a["score"],
        threshold=a.get("threshold"),
        weight=a.get("weight", 1.0),
        negate=a.get("negate", False),
        reason=a.get("reason", ""),
        details=a.get("details", {}),
    )


def _attempt(row: EvalResult, data: dict[str, Any]) -> CaseResult:
    return CaseResult(
        case_id=row.case_id,
        prompt_id=row.prompt_id,
        prompt_ref=row.prompt_ref,
        model_id=row.model_id,
        model=row.model,
        params=dict(row.params),
        variables=dict(row.variables),
        output=data.get("output"),
        error=data.get("error"),
        score=data.get("score", 0.0),
        passed=data.get("passed", False),
        reason=data.get("reason", ""),
        assertions=[_assertion(a) for a in data.get("assertions", [])],
        latency_ms=data.get("latency_ms"),
        cost=data.get("cost"),
        usage=dict(data.get("usage") or {}),
        cached=data.get("cached", False),
        tool_calls=list(data.get("tool_calls") or []),
    )


def _repeat_stats(stats: dict[str, Any]) -> RepeatStats:
    return RepeatStats(
        runs=stats["runs"], passes=stats["passes"], errors=stats.get("errors", 0), min_pass_rate=stats["min_pass_rate"]
    )


def _case_result(row: EvalResult) -> CaseResult:
    repeats = row.repeats or {}
    return CaseResult(
        case_id=row.case_id,
        prompt_id=row.prompt_id,
        prompt_ref=row.prompt_ref,
        model_id=row.model_id,
        model=row.model,
        params=dict(row.params),
        variables=dict(row.variables),
        output=row.output,
        error=row.error,
        score=row.score,
        passed=row.passed,
        reason=row.reason,
        assertions=[_assertion(a) for a in row.assertions],
        latency_ms=row.latency_ms,
        cost=row.cost,
        usage=dict(row.usage),
        cached=row.cached,
        tool_calls=list(row.tool_calls or []),
        attempts=[_attempt(row, a) for a in repeats.get("attempts", [])],
        repeat=_repeat_stats(repeats["stats"]) if repeats.get("stats") else None,
    )


@dataclass(frozen=True)
class DatasetVersion:
    """One version of a suite's cases (by content hash) and the runs made on it."""

    suite: str
    cases: str
    case_count: int
    case_files: dict[str, str]
    runs: list[str]  # newest first
    first_run: datetime
    last_run: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "first_run": self.first_run.isoformat(),
            "last_run": self.last_run.isoformat(),
        }


def list_datasets(database_url: str | None = None, *, suite: str | None = None) -> list[DatasetVersion]:
    """Every suite's case versions, newest use first; runs from before fingerprints are left out."""
    with session_scope(database_url) as session:
        query = select(EvalRun).order_by(col(EvalRun.started_at).desc())
        if suite:
            query = query.where(EvalRun.suite == suite)
        runs = list(session.exec(query).all())
    found: dict[tuple[str, str], list[EvalRun]] = {}
    for run in runs:
        printed = (run.parameters or {}).get("fingerprint")
        if printed:
            found.setdefault((run.suite, printed["cases"]), []).append(run)
    versions = []
    for (suite_name, cases), made in found.items():
        printed = made[0].parameters["fingerprint"]
        versions.append(
            DatasetVersion(
                suite=suite_name,
                cases=cases,
                case_count=int(printed.get("case_count", 0)),
                case_files=dict(printed.get("case_files", {})),
                runs=[r.id for r in made],
                first_run=made[-1].started_at,
                last_run=made[0].started_at,
            )
        )
    return sorted(versions, key=lambda v: (v.suite, v.last_run), reverse=True)
