"""Assertions: what a case checks about a model's output, each graded to a score in 0..1.

An assertion is an `AssertionSpec` (type, value, threshold, weight, negate). Offline
graders are plain functions, so thousands of cases grade per second; those that need a
model (a judge, an embedding model) are coroutines. Every assertion can be negated
(`not-contains` or `negate: true`): the verdict flips and the score becomes 1 - score.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmops.errors import InvalidInput
from llmops.evaluation import textmetrics
from llmops.evaluation.faithfulness import FaithfulnessResult
from llmops.evaluation.faithfulness_scorers import offline_scorer

if TYPE_CHECKING:
    from llmops.evaluation.client import ModelClient
    from llmops.evaluation.judge import Judge
    from llmops.evaluation.semantic import Embedder


class AssertionSpec(BaseModel):
    """One check, as written in a suite (`assert:` list) or passed to `assert_eval`."""

    model_config = ConfigDict(extra="forbid")

    type: str
    value: Any = None
    threshold: float | None = None
    weight: float = Field(default=1.0, ge=0)
    negate: bool = False
    # A name for reports; defaults to the type (with "not-" when negated).
    metric: str | None = None
    # faithfulness: "offline" (default), "lexical" (the same, by its other name) or "judge";
    # similar: "local" or an embeddings model.
    scorer: str | None = None
    # faithfulness: a local Hugging Face detector (a directory) for the offline scorer.
    model: str | None = None
    # The judge or embeddings model for this assertion, overriding the suite's.
    provider: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_not_prefix(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            kind = data["type"].strip().lower()
            if kind.startswith("not-") and kind[4:] in GRADERS:
                data = {**data, "type": kind[4:], "negate": not data.get("negate", False)}
            else:
                data = {**data, "type": kind}
        return data

    @model_validator(mode="after")
    def _known_type(self) -> AssertionSpec:
        if self.type not in GRADERS:
            known = ", ".join(sorted(GRADERS))
            raise ValueError(f"unknown assertion type {self.type!r}; known types: {known} (prefix with not- to negate)")
        grader = GRADERS[self.type]
        if grader.needs_value and self.value is None:
            raise ValueError(f"assertion {self.type!r} needs a value")
        return self

    @property
    def name(self) -> str:
        return self.metric or (f"not-{self.type}" if self.negate else self.type)

    @property
    def needs_judge(self) -> bool:
        return self.type in ("llm-rubric", "factuality", "answer-relevance") or (
            self.type == "faithfulness" and self.scorer == "judge"
        )


@dataclass
class EvalContext:
    """What an assertion may look at besides the output."""

    output: str
    expected: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    # The source the output must be faithful to (a document, retrieved passages).
    context: str | list[str] | None = None
    # The question the output answers; defaults to the last user message of the prompt.
    query: str | None = None
    latency_ms: float | None = None
    cost: float | None = None
    judge: Judge | None = None
    embedder: Embedder | None = None
    client: ModelClient | None = None
    # Where `python` assertions given as a file (checks.py:function) are looked up: the suite's directory.
    base_dir: str | None = None
    # The reply's tool calls ({id, type, function: {name, arguments}}) and the request's `tools`.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


@dataclass
class Grade:
    score: float
    passed: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class AssertionResult:
    type: str
    name: str
    passed: bool
    score: float
    threshold: float | None
    weight: float
    negate: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "name": self.name,
            "passed": self.passed,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "weight": self.weight,
            "negate": self.negate,
            "reason": self.reason,
            **({"details": self.details} if self.details else {}),
        }


SyncGrader = Callable[[AssertionSpec, EvalContext, Any], Grade]
AsyncGrader = Callable[[AssertionSpec, EvalContext, Any], Awaitable[Grade]]


@dataclass(frozen=True)
class Grader:
    fn: SyncGrader | None = None
    afn: AsyncGrader | None = None
    # Graded types pass at score >= threshold; binary ones score 0 or 1.
    default_threshold: float | None = None
    needs_value: bool = False

    def is_async_for(self, spec: AssertionSpec) -> bool:
        if self.fn is None:
            return True
        if self.afn is None:
            return False
        # Only faithfulness has both: offline by default, a judge when asked.
        return spec.scorer == "judge"

    def grade_sync(self, spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
        if self.fn is None:
            raise InvalidInput(f"assertion {spec.type!r} has no grader that runs without a model")
        return self.fn(spec, ctx, value)

    async def grade_async(self, spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
        if self.afn is None:
            raise InvalidInput(f"assertion {spec.type!r} has no grader that awaits a model")
        return await self.afn(spec, ctx, value)


GRADERS: dict[str, Grader] = {}


_G = TypeVar("_G", SyncGrader, AsyncGrader)


def grader(
    name: str, *, default_threshold: float | None = None, needs_value: bool = False
) -> Callable[[_G], _G]:
    """Register a grader; a sync and an async function may share a name (sync is the default)."""

    def register(fn: _G) -> _G:
        known = GRADERS.get(name, Grader(default_threshold=default_threshold, needs_value=needs_value))
        slot = "afn" if inspect.iscoroutinefunction(fn) else "fn"
        GRADERS[name] = Grader(**{**known.__dict__, slot: fn})
        return fn

    return register


def _binary(ok: bool, reason_ok: str, reason_fail: str) -> Grade:
    return Grade(1.0 if ok else 0.0, ok, reason_ok if ok else reason_fail)


def _short(text: str, limit: int = 80) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    return [str(value)]


def _graded(score: float, threshold: float, what: str) -> Grade:
    ok = score >= threshold
    return Grade(score, ok, f"{what} {score:.3f} {'>=' if ok else '<'} {threshold}")


# --- text -----------------------------------------------------------------------------


@grader("equals", needs_value=True)
def _equals(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    expected = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    output = ctx.output.strip()
    if not isinstance(value, str):
        try:
            output = json.dumps(json.loads(output), sort_keys=True)
        except ValueError:
            pass
    return _binary(output == expected.strip(), "output equals the value", f"output is not {_short(expected)!r}")


@grader("contains", needs_value=True)
def _contains(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    return _binary(str(value) in ctx.output, f"contains {_short(str(value))!r}", f"does not contain {_short(str(value))!r}")


@grader("icontains", needs_value=True)
def _icontains(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    found = str(value).lower() in ctx.output.lower()
    return _binary(found, f"contains {_short(str(value))!r}", f"does not contain {_short(str(value))!r} (any case)")


def _contains_many(ctx: EvalContext, value: Any, *, fold: bool, every: bool, threshold: float | None) -> Grade:
    items = _as_list(value)
    haystack = ctx.output.lower() if fold else ctx.output
    found = [item for item in items if (item.lower() if fold else item) in haystack]
    missing = [item for item in items if item not in found]
    if every:
        # Graded by the share found, so `threshold: 0.75` allows one of four to be missing.
        score = len(found) / len(items) if items else 1.0
        ok = score >= (threshold if threshold is not None else 1.0)
        reason = "contains all" if not missing else f"missing {', '.join(repr(m) for m in missing)}"
        return Grade(score, ok, reason, {"missing": missing})
    ok = bool(found)
    return _binary(ok, f"contains {found[0]!r}" if found else "", f"contains none of {', '.join(map(repr, items))}")


@grader("contains-any", needs_value=True)
def _contains_any(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    return _contains_many(ctx, value, fold=False, every=False, threshold=spec.threshold)


@grader("icontains-any", needs_value=True)
def _icontains_any(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    return _contains_many(ctx, value, fold=True, every=False, threshold=spec.threshold)


@grader("contains-all", needs_value=True)
def _contains_all(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    return _contains_many(ctx, value, fold=False, every=True, threshold=spec.threshold)


@grader("icontains-all", needs_value=True)
def _icontains_all(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    return _contains_many(ctx, value, fold=True, every=True, threshold=spec.threshold)


@grader("starts-with", needs_value=True)
def _starts_with(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    ok = ctx.output.lstrip().startswith(str(value))
    return _binary(ok, f"starts with {_short(str(value))!r}", f"does not start with {_short(str(value))!r}")


@lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InvalidInput(f"invalid regex {pattern!r}: {exc}") from None


@grader("regex", needs_value=True)
def _regex(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    ok = _compile(str(value)).search(ctx.output) is not None
    return _binary(ok, f"matches /{value}/", f"does not match /{value}/")


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


@grader("is-json")
def _is_json(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    """Valid JSON (a surrounding ```json fence is allowed); with a value, valid against that JSON Schema."""
    text = ctx.output
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except ValueError as exc:
        return Grade(0.0, False, f"not JSON: {exc}")
    if value is None:
        return Grade(1.0, True, "valid JSON")
    import jsonschema

    schema = json.loads(value) if isinstance(value, str) else value
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(map(str, first.path)) or "(root)"
        return Grade(0.0, False, f"JSON does not match the schema at {where}: {first.message}")
    return Grade(1.0, True, "valid JSON matching the schema")


# --- similarity to a reference ------------------------------------------------------------


def _reference(spec: AssertionSpec, ctx: EvalContext, value: Any) -> str:
    reference = value if value is not None else ctx.expected
    if reference is None:
        raise InvalidInput(f"assertion {spec.type!r} needs a value or the case's expected output")
    return str(reference)


@grader("levenshtein", default_threshold=0.8)
def _levenshtein(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    score = textmetrics.levenshtein_similarity(ctx.output.strip(), _reference(spec, ctx, value).strip())
    return _graded(score, spec.threshold if spec.threshold is not None else 0.8, "Levenshtein similarity")


@grader("rouge-l", default_threshold=0.5)
def _rouge_l(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    score = textmetrics.rouge_l(ctx.output, _reference(spec, ctx, value))
    return _graded(score, spec.threshold if spec.threshold is not None else 0.5, "ROUGE-L")


@grader("bleu", default_threshold=0.5)
def _bleu(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    score = textmetrics.bleu(ctx.output, _reference(spec, ctx, value))
    return _graded(score, spec.threshold if spec.threshold is not None else 0.5, "BLEU")


@grader("similar", default_threshold=0.75)
async def _similar(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    from llmops.evaluation.semantic import cosine, make_embedder

    # `provider:` names an embeddings model; without one, the suite's embedder or the local MiniLM.
    embedder = make_embedder(spec.provider, ctx.client) if spec.provider else ctx.embedder
    embedder = embedder or make_embedder(None, None)
    reference = _reference(spec, ctx, value)
    first, second = await embedder.embed([ctx.output, reference])
    score = max(0.0, cosine(first, second))
    return _graded(score, spec.threshold if spec.threshold is not None else 0.75, "cosine similarity")


# --- operational ceilings -------------------------------------------------------------------


@grader("latency")
def _latency(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    ceiling = spec.threshold if spec.threshold is not None else value
    if ceiling is None:
        raise InvalidInput("assertion 'latency' needs a threshold in milliseconds")
    if ctx.latency_ms is None:
        return Grade(0.0, False, "latency unknown (cached response?)")
    ok = ctx.latency_ms <= float(ceiling)
    return _binary(ok, f"{ctx.latency_ms:.0f} ms <= {ceiling} ms", f"{ctx.latency_ms:.0f} ms > {ceiling} ms")


@grader("cost")
def _cost(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    ceiling = spec.threshold if spec.threshold is not None else value
    if ceiling is None:
        raise InvalidInput("assertion 'cost' needs a threshold in dollars")
    if ctx.cost is None:
        return Grade(0.0, False, "cost unknown: the model reported none")
    ok = ctx.cost <= float(ceiling)
    return _binary(ok, f"${ctx.cost:.6f} <= ${ceiling}", f"${ctx.cost:.6f} > ${ceiling}")


# --- behaviour ------------------------------------------------------------------------------

_REFUSAL = re.compile(
    r"\b(?:I\s*(?:'m| am)\s*(?:sorry|afraid|unable|not able)|I\s*(?:can(?:no|')t|cannot|won't|will not|must decline)"
    r"|as an (?:AI|artificial intelligence|language model)|I'm not (?:allowed|permitted)"
    r"|(?:against|violates?) (?:my|the|our) (?:guidelines|policy|policies)|I (?:do not|don't) (?:feel comfortable|provide))",
    re.IGNORECASE,
)


@grader("refusal")
def _refusal(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    """Passes when the output declines to answer; `not-refusal` when it does answer."""
    match = _REFUSAL.search(ctx.output[:600])
    if match:
        return Grade(1.0, True, f"refusal: {match.group(0)!r}")
    return Grade(0.0, False, "no refusal phrase found")


@grader("python", needs_value=True)
async def _python(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    """`value: package.module:function` or `file.py:function` (next to the suite), called as
    function(output, context) with context a dict.

    It may return a bool, a score (passes at >= threshold, default 0.5), or a dict with
    pass/score/reason; it may be a coroutine function.
    """
    function = load_callable(str(value), ctx.base_dir)
    info = {
        "vars": dict(ctx.variables),
        "expected": ctx.expected,
        "context": ctx.context,
        "query": ctx.query,
        "latency_ms": ctx.latency_ms,
        "cost": ctx.cost,
        "tool_calls": ctx.tool_calls,
    }
    try:
        result = function(ctx.output, info)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:  # the user's function failed: that is a failed check, not a crash
        return Grade(0.0, False, f"{value} raised {type(exc).__name__}: {exc}")
    threshold = spec.threshold if spec.threshold is not None else 0.5
    if isinstance(result, bool):
        return _binary(result, f"{value} returned True", f"{value} returned False")
    if isinstance(result, int | float):
        return _graded(float(result), threshold, f"{value} scored")
    if isinstance(result, Mapping):
        score = float(result.get("score", 1.0 if result.get("pass", result.get("passed")) else 0.0))
        ok = bool(result.get("pass", result.get("passed", score >= threshold)))
        return Grade(score, ok, str(result.get("reason", "")))
    raise InvalidInput(f"{value} returned {type(result).__name__}; return a bool, a number or a dict")


@lru_cache(maxsize=256)
def load_callable(path: str, base_dir: str | None = None) -> Callable[..., Any]:
    module_name, sep, attribute = path.rpartition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise InvalidInput(f"python assertion {path!r}: write it as package.module:function or file.py:function")
    if module_name.endswith(".py"):
        return _load_from_file(path, Path(base_dir or ".") / module_name, attribute)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"python assertion {path!r}: cannot import {module_name}: {exc}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise InvalidInput(f"python assertion {path!r}: {module_name} has no function {attribute}")
    return function


def _load_from_file(path: str, file: Path, attribute: str) -> Callable[..., Any]:
    if not file.is_file():
        raise InvalidInput(f"python assertion {path!r}: no file {file}")
    spec = importlib.util.spec_from_file_location(f"llmops_eval_checks_{abs(hash(str(file.resolve())))}", file)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"python assertion {path!r}: {file} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InvalidInput(f"python assertion {path!r}: {file} failed to load: {type(exc).__name__}: {exc}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise InvalidInput(f"python assertion {path!r}: {file} has no function {attribute}")
    return function


# --- grounding and judged quality ----------------------------------------------------------


def _context_of(spec: AssertionSpec, ctx: EvalContext, value: Any) -> str | list[str]:
    context = value if value is not None else ctx.context
    if context is None:
        raise InvalidInput(f"assertion {spec.type!r} needs the case's context (or a value with it)")
    return context


def _faithfulness_grade(result: FaithfulnessResult, spec: AssertionSpec) -> Grade:
    grade = _graded(result.score, spec.threshold if spec.threshold is not None else 0.5, "faithfulness")
    if result.unsupported:
        grade.reason += f"; unsupported: {'; '.join(_short(c, 120) for c in result.unsupported)}"
    # Each unsupported claim with the context passage it was judged against.
    grade.details = {
        "unsupported": result.unsupported,
        "evidence": {c.claim: c.evidence for c in result.claims if not c.supported and c.evidence},
    }
    return grade


@grader("faithfulness", default_threshold=0.5)
def _faithfulness_offline(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    key = (spec.scorer, spec.model, spec.threshold)
    scorer = _offline_scorers.get(key)
    if scorer is None:
        scorer = _offline_scorers[key] = offline_scorer(spec.scorer, spec.model, spec.threshold)
    return _faithfulness_grade(scorer.score(ctx.output, _context_of(spec, ctx, value)), spec)


# Built once per (scorer, model, threshold); a detector's model loads once per process.
_offline_scorers: dict[tuple[str | None, str | None, float | None], Any] = {}


@grader("faithfulness", default_threshold=0.5)
async def _faithfulness_judge(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    result = await _require_judge(spec, ctx).faithfulness(ctx.output, _context_of(spec, ctx, value))
    return _faithfulness_grade(result, spec)


def _require_judge(spec: AssertionSpec, ctx: EvalContext) -> Judge:
    """The suite's judge, or the model this assertion names in `provider:`."""
    if spec.provider and ctx.client is not None:
        from llmops.evaluation.judge import Judge

        return ctx.judge.using(spec.provider) if ctx.judge else Judge(ctx.client, spec.provider)
    if ctx.judge is None:
        raise InvalidInput(f"assertion {spec.type!r} needs a judge model: set `judge:` in the suite or `provider:`")
    return ctx.judge


@grader("llm-rubric", default_threshold=0.5, needs_value=True)
async def _llm_rubric(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    verdict = await _require_judge(spec, ctx).rubric(ctx.output, str(value))
    threshold = spec.threshold if spec.threshold is not None else 0.5
    ok = verdict.passed and verdict.score >= threshold
    return Grade(verdict.score, ok, verdict.reason)


@grader("factuality", default_threshold=0.5)
async def _factuality(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    reference = _reference(spec, ctx, value)
    verdict = await _require_judge(spec, ctx).factuality(ctx.output, reference, question=ctx.query)
    return Grade(verdict.score, verdict.passed, verdict.reason)


@grader("answer-relevance", default_threshold=0.5)
async def _answer_relevance(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    question = str(value) if value is not None else ctx.query
    if not question:
        raise InvalidInput("assertion 'answer-relevance' needs the question: a value or the prompt's user message")
    verdict = await _require_judge(spec, ctx).relevance(ctx.output, question)
    threshold = spec.threshold if spec.threshold is not None else 0.5
    return _graded(verdict.score, threshold, "answer relevance")


# --- running a list of assertions --------------------------------------------------------------


def render_value(value: Any, ctx: EvalContext) -> Any:
    """`{{ name }}` in a string value is filled from the case's variables and `expected`."""
    if isinstance(value, str) and "{{" in value:
        from llmops.registry.templates import render_source

        return render_source(value, {**ctx.variables, "expected": ctx.expected}, "assertion value")
    if isinstance(value, list):
        return [render_value(v, ctx) for v in value]
    return value


def _finish(spec: AssertionSpec, grade: Grade) -> AssertionResult:
    threshold = spec.threshold if spec.threshold is not None else GRADERS[spec.type].default_threshold
    passed, score, reason = grade.passed, grade.score, grade.reason
    if spec.negate:
        passed, score = not passed, 1.0 - score
        reason = f"negated: {reason}"
    return AssertionResult(spec.type, spec.name, passed, score, threshold, spec.weight, spec.negate, reason, grade.details)


def grade_sync(spec: AssertionSpec, ctx: EvalContext) -> AssertionResult:
    """Grade one assertion without an event loop; one that needs a model raises InvalidInput."""
    value = render_value(spec.value, ctx)
    grader_ = GRADERS[spec.type]
    if not grader_.is_async_for(spec):
        return _finish(spec, grader_.grade_sync(spec, ctx, value))
    if spec.type == "python":  # a user's function: may be sync or async, needs no model
        import asyncio

        return _finish(spec, asyncio.run(grader_.grade_async(spec, ctx, value)))
    needs = "a judge model" if spec.needs_judge else "an embedding model"
    raise InvalidInput(f"assertion {spec.type!r} needs {needs}; grade it with `await grade(...)` and a context that has one")


async def grade(spec: AssertionSpec, ctx: EvalContext) -> AssertionResult:
    """Grade one assertion, awaiting a judge or an embedding model when it needs one."""
    value = render_value(spec.value, ctx)
    grader_ = GRADERS[spec.type]
    if grader_.is_async_for(spec):
        return _finish(spec, await grader_.grade_async(spec, ctx, value))
    return _finish(spec, grader_.grade_sync(spec, ctx, value))


async def grade_all(specs: Sequence[AssertionSpec], ctx: EvalContext) -> list[AssertionResult]:
    return [await grade(spec, ctx) for spec in specs]


def parse_assertions(items: Sequence[AssertionSpec | Mapping[str, Any] | str]) -> list[AssertionSpec]:
    """Specs from dicts as written in YAML; a bare string is `{type: that}` (e.g. "is-json")."""
    specs = []
    for item in items:
        if isinstance(item, AssertionSpec):
            specs.append(item)
        elif isinstance(item, str):
            specs.append(AssertionSpec(type=item))
        else:
            specs.append(AssertionSpec.model_validate(dict(item)))
    return specs


@dataclass
class CaseScore:
    score: float
    passed: bool
    reason: str


def combine(results: Sequence[AssertionResult], threshold: float | None = None) -> CaseScore:
    """The case's weighted score; it passes when every weighted assertion passes, or, when the
    case sets a threshold, when the weighted score reaches it. Weight 0 is informational."""
    counted = [r for r in results if r.weight > 0]
    total = sum(r.weight for r in counted)
    score = sum(r.weight * r.score for r in counted) / total if total else 1.0
    failed = [r for r in counted if not r.passed]
    if threshold is not None:
        ok = score >= threshold
        reason = f"weighted score {score:.3f} {'>=' if ok else '<'} {threshold}"
    else:
        ok = not failed
        reason = "all assertions passed" if ok else "failed: " + ", ".join(f"{r.name} ({r.reason})" for r in failed)
    return CaseScore(score, ok, reason)


# Tool-call and structured-output graders register themselves into GRADERS on import.
from llmops.evaluation import tool_assertions as _tool_assertions  # noqa: E402,F401
