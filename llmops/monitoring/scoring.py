"""Online evaluation: the offline scorers, run on captured calls, stored per request.

Each captured call not yet scored gets, by metric name:
  faithfulness   the evaluation package's `faithfulness` assertion, when the call had a context
  refusal        1 when the reply declines (the `refusal` assertion), else 0
  guardrails     1 when no guardrail check fired on the call (its ledger verdicts), else 0
  <assertion>    each default assertion of the configured suite, for calls of the suite's
                 prompts; those that need a judge only when one is given (`llmops monitor
                 score` with the suite's judge or `online_eval.judge`), else listed as skipped
Scores carry the call's prompt version, model and variant. Runs off the request path: the
gateway's worker every `online_eval.interval`, or `llmops monitor score`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from llmops.errors import LLMOpsError
from llmops.evaluation.assertions import AssertionResult, AssertionSpec, EvalContext, grade, grade_sync
from llmops.governance.ledger_models import LEDGER_TABLE
from llmops.monitoring.config import OnlineEvalConfig
from llmops.monitoring.models import PAYLOADS, SCORES
from llmops.monitoring.texts import last_user_text

if TYPE_CHECKING:
    from llmops.evaluation.judge import Judge

log = logging.getLogger("llmops.monitoring")

REFUSAL = AssertionSpec(type="refusal")


@dataclass
class SuiteChecks:
    """A suite's default assertions, for calls of the suite's registry prompts (all calls
    when the suite's prompts are inline)."""

    assertions: list[AssertionSpec]
    prompts: frozenset[str] | None
    judge: str | None = None  # the suite's judge model, for its judged assertions
    judge_params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str) -> SuiteChecks:
        from llmops.evaluation.suites import load_suite

        suite = load_suite(path)
        names = {p.ref.split("@")[0].split(":")[0] for p in suite.prompts if p.ref}
        inline = any(p.ref is None for p in suite.prompts)
        judge = suite.judge
        return cls(
            list(suite.defaults.assertions),
            None if inline else frozenset(names),
            judge.model if judge else None,
            dict(judge.params) if judge else {},
        )

    def applies_to(self, prompt_name: str | None) -> bool:
        return self.prompts is None or (prompt_name is not None and prompt_name in self.prompts)


@dataclass
class ScoreSummary:
    calls: int = 0
    scores: int = 0
    by_metric: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, str] = field(default_factory=dict)  # assertion -> why it could not run

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "scores": self.scores,
            "by_metric": dict(self.by_metric),
            "skipped": dict(self.skipped),
        }


def _verdicts_by_request(engine: Engine, ids: list[str]) -> dict[str, Any]:
    t = LEDGER_TABLE.c
    with engine.connect() as conn:
        return dict(conn.execute(select(t.id, t.guardrail_verdicts).where(t.id.in_(ids))).all())


async def _grade(spec: AssertionSpec, ctx: EvalContext, judge: Judge | None) -> AssertionResult:
    """By name through the evaluation package: offline graders at once, a judged one awaited."""
    if judge is not None and spec.needs_judge:
        return await grade(spec, replace(ctx, judge=judge, client=judge.client))
    return grade_sync(spec, ctx)


async def score_call(
    payload: dict[str, Any],
    *,
    verdicts: Any,
    in_ledger: bool,
    config: OnlineEvalConfig,
    suite: SuiteChecks | None,
    summary: ScoreSummary,
    judge: Judge | None = None,
) -> list[tuple[str, float, bool | None, str]]:
    """(metric, score, passed, reason) for one captured call."""
    output = payload["response_text"] or ""
    out: list[tuple[str, float, bool | None, str]] = []
    context = payload.get("context")
    if config.faithfulness and context:
        spec = AssertionSpec(type="faithfulness", scorer=config.faithfulness_scorer)
        try:
            r = await _grade(spec, EvalContext(output=output, context=context), judge)
            out.append(("faithfulness", r.score, r.passed, r.reason))
        except LLMOpsError as exc:  # a scorer that needs a model here (judge)
            summary.skipped["faithfulness"] = exc.message
    r = grade_sync(REFUSAL, EvalContext(output=output))
    out.append(("refusal", r.score, None, r.reason))
    if config.guardrails and in_ledger:
        fired = sorted({v.get("check", "?") for v in verdicts or [] if isinstance(v, dict)})
        out.append(("guardrails", 0.0 if fired else 1.0, not fired, ", ".join(fired) or "no check fired"))
    if suite is not None and suite.applies_to(payload.get("prompt_name")):
        ctx = EvalContext(output=output, context=context, query=last_user_text(payload["request_text"] or ""))
        for spec in suite.assertions:
            try:
                r = await _grade(spec, ctx, judge)
            except LLMOpsError as exc:  # needs a judge, an embedder or an expected answer
                summary.skipped[spec.name] = exc.message
                continue
            out.append((spec.name, r.score, r.passed, r.reason))
    return out


def score_pending(
    database_url: str | None = None,
    config: OnlineEvalConfig | None = None,
    *,
    limit: int | None = None,
    now: datetime | None = None,
) -> ScoreSummary:
    """Score captured calls not scored yet, oldest first, `batch_size` at a time; assertions
    that need a judge are skipped (see `score_pending_async`)."""
    return asyncio.run(score_pending_async(database_url, config, limit=limit, now=now))


async def score_pending_async(
    database_url: str | None = None,
    config: OnlineEvalConfig | None = None,
    *,
    limit: int | None = None,
    now: datetime | None = None,
    judge: Judge | None = None,
) -> ScoreSummary:
    """`score_pending`, with a judge (a model client and model) for the assertions that need one."""
    from llmops.db import get_engine

    config = config or OnlineEvalConfig()
    suite = SuiteChecks.load(config.suite) if config.suite else None
    engine = get_engine(database_url)
    summary = ScoreSummary()
    p = PAYLOADS.c
    while limit is None or summary.calls < limit:
        size = config.batch_size if limit is None else min(config.batch_size, limit - summary.calls)
        query = select(PAYLOADS).where(p.scored_at.is_(None)).order_by(p.created_at).limit(size)
        with engine.connect() as conn:
            batch = [dict(row._mapping) for row in conn.execute(query)]
        if not batch:
            break
        verdicts = _verdicts_by_request(engine, [b["id"] for b in batch])
        stamp = now or datetime.now(UTC)
        rows = []
        for payload in batch:
            for metric, score, passed, reason in await score_call(
                payload,
                verdicts=verdicts.get(payload["id"]),
                in_ledger=payload["id"] in verdicts,
                config=config,
                suite=suite,
                summary=summary,
                judge=judge,
            ):
                rows.append(
                    {
                        "request_id": payload["id"],
                        "created_at": payload["created_at"],
                        "scored_at": stamp,
                        "metric": metric[:100],
                        "score": float(score),
                        "passed": passed,
                        "model": payload["model"],
                        "prompt_name": payload["prompt_name"],
                        "prompt_version": payload["prompt_version"],
                        "variant": payload["variant"],
                        "reason": (reason or "")[:500],
                    }
                )
                summary.by_metric[metric] += 1
        _store(engine, rows, [b["id"] for b in batch], stamp)
        summary.calls += len(batch)
        summary.scores += len(rows)
    return summary


def _store(engine: Engine, rows: list[dict[str, Any]], ids: list[str], stamp: datetime) -> None:
    mark = update(PAYLOADS).where(PAYLOADS.c.id.in_(ids)).values(scored_at=stamp)
    try:
        with engine.begin() as conn:
            if rows:
                conn.execute(SCORES.insert(), rows)
            conn.execute(mark)
    except IntegrityError:
        # Another worker scored some of these meanwhile: keep what is new, row by row.
        for row in rows:
            try:
                with engine.begin() as conn:
                    conn.execute(SCORES.insert(), [row])
            except IntegrityError:
                pass
        with engine.begin() as conn:
            conn.execute(mark)
