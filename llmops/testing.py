"""Eval assertions in hand-written tests.

    from llmops.testing import assert_eval

    def test_summary_keeps_the_figure():
        output = my_app.summarize(article)
        assert_eval(output, [
            {"type": "icontains", "value": "£2.4bn"},
            {"type": "faithfulness", "threshold": 0.6},
            "not-refusal",
        ], context=article)

`assert_eval` raises AssertionError naming each failed assertion with its score and
reason, and the output; it returns the outcome when the output passes. Assertions that
need a model (llm-rubric, factuality, answer-relevance, similar, judge faithfulness)
take a `judge` (llmops.evaluation.judge.Judge) or an `embedder`; in async tests use
`await assert_eval_async(...)`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmops.evaluation.assertions import (
    AssertionResult,
    AssertionSpec,
    EvalContext,
    combine,
    grade_all,
    grade_sync,
    parse_assertions,
)

__all__ = ["EvalOutcome", "assert_eval", "assert_eval_async"]

AssertionLike = AssertionSpec | Mapping[str, Any] | str


@dataclass
class EvalOutcome:
    output: str
    score: float
    passed: bool
    results: list[AssertionResult]

    def __str__(self) -> str:
        lines = [f"eval {'passed' if self.passed else 'FAILED'}: weighted score {self.score:.3f}"]
        for r in self.results:
            threshold = "" if r.threshold is None else f" (threshold {r.threshold})"
            lines.append(f"  {'ok  ' if r.passed else 'FAIL'} {r.name}: score {r.score:.3f}{threshold}: {r.reason}")
        lines.append("output:")
        lines.extend("  " + line for line in self.output.splitlines() or [""])
        return "\n".join(lines)


def _context(output: str, options: dict[str, Any]) -> EvalContext:
    return EvalContext(
        output=output,
        expected=options.get("expected"),
        variables=options.get("variables") or {},
        context=options.get("context"),
        query=options.get("query"),
        latency_ms=options.get("latency_ms"),
        cost=options.get("cost"),
        judge=options.get("judge"),
        embedder=options.get("embedder"),
    )


def _outcome(output: str, results: list[AssertionResult], threshold: float | None) -> EvalOutcome:
    verdict = combine(results, threshold)
    outcome = EvalOutcome(output, verdict.score, verdict.passed, results)
    if not outcome.passed:
        raise AssertionError(str(outcome))
    return outcome


def assert_eval(
    output: str,
    assertions: Sequence[AssertionLike],
    *,
    expected: str | None = None,
    context: str | list[str] | None = None,
    variables: Mapping[str, Any] | None = None,
    query: str | None = None,
    threshold: float | None = None,
    latency_ms: float | None = None,
    cost: float | None = None,
    judge: Any = None,
    embedder: Any = None,
) -> EvalOutcome:
    """Grade `output`; raise AssertionError unless every assertion (or the weighted score) passes."""
    options = dict(
        expected=expected, context=context, variables=variables, query=query,
        latency_ms=latency_ms, cost=cost, judge=judge, embedder=embedder,
    )  # fmt: skip
    specs = parse_assertions(assertions)
    ctx = _context(output, options)
    if any(s.needs_judge or s.type == "similar" for s in specs):
        results = asyncio.run(grade_all(specs, ctx))  # one event loop for every model call
    else:
        results = [grade_sync(spec, ctx) for spec in specs]
    return _outcome(output, results, threshold)


async def assert_eval_async(
    output: str, assertions: Sequence[AssertionLike], *, threshold: float | None = None, **options: Any
) -> EvalOutcome:
    """`assert_eval` for async tests (a judge or an embedder awaits inside the running loop)."""
    specs = parse_assertions(assertions)
    results = await grade_all(specs, _context(output, options))
    return _outcome(output, results, threshold)
