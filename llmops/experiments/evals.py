"""Eval scores of a prompt version, where an eval run used that version.

A database where no eval run ever used the version gives None, and the report simply
has no eval figures. A run saved as a comparison only (not evidence) does not count.

Read from the harness's tables (llmops.evaluation.models): `eval_runs.prompts` maps
each prompt id of a suite to the reference it resolved to (`{"summarize@production":
"summarize:2"}`); `eval_results` holds one scored row per case, prompt and model,
with `prompt_id`, `prompt_ref`, `score` (0..1) and `passed`. A result counts for
`name:version` when its `prompt_ref` is that reference, or its run resolved its
`prompt_id` to it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.exc import SQLAlchemyError

from llmops.columns import table_of
from llmops.db import get_engine
from llmops.evaluation.models import EvalResult, EvalRun, is_evidence

log = logging.getLogger(__name__)


def _eval_tables() -> tuple[Table, Table]:
    return table_of(EvalRun), table_of(EvalResult)


def eval_scores_for(
    prompt_name: str, version: int, *, database_url: str | None = None
) -> dict[str, Any] | None:
    """{"runs", "cases", "mean_score", "pass_rate", "latest_run"} for `name:version`, or None."""
    runs, results = _eval_tables()
    ref = f"{prompt_name}:{version}"
    try:
        with get_engine(database_url).connect() as conn:
            # Few runs exist next to the many requests: find the ones that used this
            # version in Python, which reads the JSON column the same on every backend.
            run_prompts: dict[str, dict] = {}
            started: dict[str, Any] = {}
            comparisons = set()  # runs saved as comparisons only: no evidence
            for run_id, prompts, started_at, parameters in conn.execute(
                select(runs.c.id, runs.c.prompts, runs.c.started_at, runs.c.parameters)
            ):
                if not is_evidence(parameters):
                    comparisons.add(run_id)
                elif isinstance(prompts, dict) and ref in prompts.values():
                    run_prompts[run_id] = prompts
                    started[run_id] = started_at
            rows = conn.execute(
                select(
                    results.c.run_id,
                    results.c.prompt_id,
                    results.c.prompt_ref,
                    results.c.score,
                    results.c.passed,
                ).where((results.c.prompt_ref == ref) | results.c.run_id.in_(list(run_prompts) or [""]))
            ).all()
            missing_runs = {r[0] for r in rows} - set(started)
            if missing_runs:
                for run_id, started_at in conn.execute(
                    select(runs.c.id, runs.c.started_at).where(runs.c.id.in_(list(missing_runs)))
                ):
                    started[run_id] = started_at
    except SQLAlchemyError as exc:  # an extra in the report, never its failure
        log.warning("experiments: cannot read eval scores for %s (%s)", ref, exc)
        return None
    scores, passed, used_runs = [], 0, set()
    for run_id, prompt_id, prompt_ref, score, ok in rows:
        if run_id in comparisons:
            continue
        if prompt_ref == ref or run_prompts.get(run_id, {}).get(prompt_id) == ref:
            scores.append(float(score))
            passed += bool(ok)
            used_runs.add(run_id)
    if not scores:
        return None
    latest = max(used_runs, key=lambda r: (started[r], r))
    return {
        "runs": len(used_runs),
        "cases": len(scores),
        "mean_score": sum(scores) / len(scores),
        "pass_rate": passed / len(scores),
        "latest_run": latest,
    }
