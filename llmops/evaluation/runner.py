"""Running a suite: every case × prompt × model, calls in parallel, graded, one RunResult.

Prompts are resolved once at the start (`summarize@production` -> `summarize:2`), so a
label moved during a run cannot mix versions. A failed model call or a case whose
variables do not fit its prompt is an errored case, not a crashed run; a suite that
names a prompt the registry lacks fails before any call is made.

A case with `repeat: n` makes n attempts (each its own call and cache entry); its
result is then their aggregate: the gate's verdict, the mean score, and each attempt
under `attempts` (repeats.py says how the rate decides).

Model calls go through pacing.py (at most `concurrency` in flight, 429s waited out and
retried, fewer calls while a server keeps refusing) and then the response cache, which
commits each answer as it arrives: a run stopped by Ctrl-C keeps what it received, and
the same run started again calls only for the rest.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.errors import InvalidInput, LLMOpsError
from llmops.evaluation.assertions import AssertionResult, EvalContext, combine, grade_all, render_value
from llmops.evaluation.cache import CachedClient, ResponseCache
from llmops.evaluation.client import REMOTE_CONCURRENCY, ModelClient, ModelResponse, PromptRef
from llmops.evaluation.fingerprint import fingerprint
from llmops.evaluation.judge import Judge
from llmops.evaluation.pacing import DEFAULT_RETRIES, PacedClient
from llmops.evaluation.repeats import DEFAULT_MIN_PASS_RATE, RepeatStats
from llmops.evaluation.semantic import make_embedder
from llmops.evaluation.suites import CaseSpec, ModelSpec, PromptSpec, Suite

DEFAULT_MODEL_KEY = "default"  # the test id part when each prompt runs on its own model
# A run's parameters[REQUEST_IDS]: {result test id: the gateway request that produced its
# output}, so a result can be rated (feedback on that ledger row) after the run.
REQUEST_IDS = "request_ids"


@dataclass
class CaseResult:
    case_id: str
    prompt_id: str
    prompt_ref: str | None
    model_id: str
    model: str
    params: dict[str, Any]
    variables: dict[str, Any]
    output: str | None
    error: str | None
    score: float
    passed: bool
    reason: str
    assertions: list[AssertionResult] = field(default_factory=list)
    latency_ms: float | None = None
    cost: float | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # A repeated case: each attempt (themselves CaseResults) and the rate's statistics.
    attempts: list[CaseResult] = field(default_factory=list)
    repeat: RepeatStats | None = None
    request_id: str | None = None  # the gateway's, for a call made in this run (not a cached answer)
    retries: int = 0  # the call's answers of 429 (or 503 with Retry-After) before the one it got

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.case_id, self.prompt_id, self.model_id)

    @property
    def calls(self) -> list[CaseResult]:
        """The model calls behind this result: its attempts, or itself."""
        return self.attempts or [self]

    @property
    def status(self) -> str:
        """passed, failed, or flaky (a repeated case that both passed and failed)."""
        if self.repeat is not None and self.repeat.flaky:
            return "flaky"
        return "passed" if self.passed else "failed"

    @property
    def test_id(self) -> str:
        return f"{self.case_id}[{self.prompt_id}|{self.model_id}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "prompt_id": self.prompt_id,
            "prompt_ref": self.prompt_ref,
            "model_id": self.model_id,
            "model": self.model,
            "params": self.params,
            "variables": self.variables,
            "output": self.output,
            "error": self.error,
            "score": round(self.score, 4),
            "passed": self.passed,
            "reason": self.reason,
            "assertions": [a.to_dict() for a in self.assertions],
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "cost": self.cost,
            "usage": self.usage,
            "cached": self.cached,
            "status": self.status,
            **({"retries": self.retries} if self.retries else {}),
            **({"tool_calls": self.tool_calls} if self.tool_calls else {}),
            **({"repeat": self.repeat.to_dict()} if self.repeat else {}),
            **({"attempts": [a.attempt_dict() for a in self.attempts]} if self.attempts else {}),
        }

    def attempt_dict(self) -> dict[str, Any]:
        """One attempt of a repeated case: what differs between attempts."""
        keep = (
            "output", "error", "score", "passed", "reason", "assertions", "latency_ms", "cost", "usage", "cached",
            "retries", "tool_calls",
        )  # fmt: skip
        full = self.to_dict()
        return {k: full[k] for k in keep if k in full}


def aggregate(attempts: list[CaseResult], min_pass_rate: float | None) -> CaseResult:
    """A repeated case as one result: the gate's verdict, the mean score, summed tokens and
    cost, the mean latency, and a failing attempt's output and assertions to show."""
    first = attempts[0]
    errors = sum(a.error is not None for a in attempts)
    stats = RepeatStats(
        runs=len(attempts),
        passes=sum(a.passed for a in attempts),
        errors=errors,
        min_pass_rate=DEFAULT_MIN_PASS_RATE if min_pass_rate is None else min_pass_rate,
    )
    shown = next((a for a in attempts if not a.passed), first)
    latencies = [a.latency_ms for a in attempts if a.latency_ms is not None]
    usage: dict[str, Any] = {}
    for a in attempts:
        for name, value in a.usage.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                usage[name] = usage.get(name, 0) + value
    costs = [a.cost for a in attempts if a.cost is not None]
    return CaseResult(
        case_id=first.case_id,
        prompt_id=first.prompt_id,
        prompt_ref=first.prompt_ref,
        model_id=first.model_id,
        model=first.model,
        params=first.params,
        variables=first.variables,
        output=shown.output,
        # The case errored only when no attempt got an answer; otherwise its attempts say which did.
        error=shown.error if errors == len(attempts) else None,
        score=sum(a.score for a in attempts) / len(attempts),
        # No attempt got an answer: an error, whatever the bar (it is no evidence of a rate).
        passed=stats.gate_passed and errors < len(attempts),
        reason=stats.describe() + ("" if shown.passed else f"; e.g. {shown.reason}"),
        assertions=shown.assertions,
        latency_ms=sum(latencies) / len(latencies) if latencies else None,
        cost=sum(costs) if costs else None,
        usage=usage,
        cached=all(a.cached for a in attempts),
        tool_calls=shown.tool_calls,
        request_id=shown.request_id,
        retries=sum(a.retries for a in attempts),
        attempts=attempts,
        repeat=stats,
    )


@dataclass
class RunResult:
    id: str
    suite: str
    suite_path: str | None
    prompts: dict[str, str]
    models: list[str]
    parameters: dict[str, Any]
    git_commit: str | None
    results: list[CaseResult]
    started_at: datetime
    finished_at: datetime | None = None
    baseline_run_id: str | None = None

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def passed_count(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.results)

    @property
    def score(self) -> float:
        return sum(r.score for r in self.results) / len(self.results) if self.results else 0.0

    @property
    def flaky(self) -> int:
        return sum(r.status == "flaky" for r in self.results)

    @property
    def calls(self) -> list[CaseResult]:
        return [call for r in self.results for call in r.calls]

    @property
    def cost(self) -> float:
        """Dollars this run spent: cached responses were paid for by an earlier run."""
        return sum(r.cost or 0.0 for r in self.calls if not r.cached)

    @property
    def latency_ms(self) -> float | None:
        values = [r.latency_ms for r in self.calls if r.latency_ms is not None]
        return sum(values) / len(values) if values else None

    @property
    def pass_rate(self) -> float:
        """The share of attempts that passed (every call of every case)."""
        calls = self.calls
        return sum(c.passed for c in calls) / len(calls) if calls else 0.0

    @property
    def passed(self) -> bool:
        return self.passed_count == self.total

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "suite": self.suite,
            "status": self.status,
            "total": self.total,
            "passed": self.passed_count,
            "failed": self.total - self.passed_count,
            "flaky": self.flaky,
            "errors": self.errors,
            "attempts": len(self.calls),
            "pass_rate": round(self.pass_rate, 4),
            "score": round(self.score, 4),
            "cost": round(self.cost, 8),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "prompts": self.prompts,
            "models": self.models,
            "git_commit": self.git_commit,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "baseline_run_id": self.baseline_run_id,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "parameters": self.parameters, "results": [r.to_dict() for r in self.results]}


@dataclass(frozen=True)
class PreparedPrompt:
    key: str
    ref: str  # the resolved version ("summarize:2") or "inline:<id>"
    view: Any  # llmops.registry.views.PromptVersionView


@dataclass(frozen=True)
class Task:
    case: CaseSpec
    prompt: PreparedPrompt
    model_id: str
    model: str
    params: dict[str, Any]
    repeat: int = 1
    min_pass_rate: float | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.case.id or "", self.prompt.key, self.model_id)


def git_commit(where: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=str(Path(where).parent if where else Path.cwd()),
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None  # not a git checkout
    return out.stdout.strip() or None


def inline_view(spec: PromptSpec, message: str = "inline prompt of an eval suite") -> Any:
    """An inline prompt as the runner renders it: version 0 of a prompt named by its key
    (also the app's unsaved drafts)."""
    from llmops.registry.views import PromptVersionView

    return PromptVersionView(
        name=spec.key,
        version=0,
        kind="text" if spec.template is not None else "chat",
        template=spec.template,
        messages=spec.messages,
        variables=dict(spec.variables),
        model_config=dict(spec.params),
        message=message,
        author=None,
        content_hash="",
        created_at=datetime.now(UTC),
    )


def resolve_prompts(suite: Suite, database_url: str | None = None) -> list[PreparedPrompt]:
    """Registry references resolved now, once; inline prompts as they are written."""
    prepared = []
    registry = None
    for spec in suite.prompts:
        if spec.ref is None:
            prepared.append(PreparedPrompt(spec.key, f"inline:{spec.key}", inline_view(spec)))
            continue
        if registry is None:
            from llmops.registry.service import Registry

            registry = Registry(database_url=database_url)
        try:
            view = registry.get(spec.ref)
        except LLMOpsError as exc:
            raise type(exc)(f"suite {suite.name}: prompt {spec.ref!r}: {exc.message} (run `llmops prompts sync prompts/`?)") from None
        prepared.append(PreparedPrompt(spec.key, view.ref, view))
    return prepared


def plan(suite: Suite, prompts: list[PreparedPrompt], repeat: int | None = None) -> list[Task]:
    """Every case × prompt × model; `repeat` (the --repeat option) overrides the suite's and
    the cases' own."""
    tasks = []
    for case in suite.expanded_cases():
        attempts = repeat or case.repeat or suite.repeat
        bar = case.min_pass_rate if case.min_pass_rate is not None else suite.min_pass_rate
        for prompt in prompts:
            prompt_params = {k: v for k, v in prompt.view.model_config.items() if k != "model"}
            models = suite.models or [ModelSpec(id=DEFAULT_MODEL_KEY, model=str(prompt.view.model_config.get("model") or ""))]
            for model in models:
                if not model.model:
                    raise InvalidInput(f"suite {suite.name}: prompt {prompt.key} names no model; list `models:` in the suite")
                params = {**prompt_params, **suite.params, **model.params}
                tasks.append(Task(case, prompt, model.key, model.model, params, attempts, bar))
    return tasks


def _context_for(case: CaseSpec, suite: Suite) -> str | list[str] | None:
    """The case's own context, else the suite's default; either may be a template over
    the case's variables (`context: "{{ text }}"`)."""
    context = case.context if case.context is not None else suite.defaults.context
    if context is None:
        return None
    return render_value(context, EvalContext(output="", variables=case.vars, expected=case.expected))


def _last_user_message(messages: list[dict]) -> str | None:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return None


def default_concurrency(client: ModelClient) -> int:
    """Model calls in flight when the run names none: the client's own suggestion (an
    HttpModelClient's depends on where it points), else the remote default."""
    suggested = getattr(client, "suggested_concurrency", None)
    return suggested if isinstance(suggested, int) and suggested >= 1 else REMOTE_CONCURRENCY


class Runner:
    def __init__(
        self,
        suite: Suite,
        client: ModelClient,
        *,
        concurrency: int | None = None,
        use_cache: bool = True,
        database_url: str | None = None,
        progress: Callable[[int, int, CaseResult], None] | None = None,
        select: Callable[[tuple[str, str, str]], bool] | None = None,
        repeat: int | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        if concurrency is None:
            concurrency = default_concurrency(client)
        if concurrency < 1:
            raise InvalidInput("concurrency must be at least 1")
        if retries < 0:
            raise InvalidInput("retries must be 0 or more")
        if repeat is not None and not 1 <= repeat <= 1000:
            raise InvalidInput("repeat must be between 1 and 1000")
        self.repeat = repeat
        self.suite = suite
        self.database_url = database_url
        self.pacer = PacedClient(client, concurrency, retries=retries)
        self.client = CachedClient(self.pacer, ResponseCache(database_url), read=use_cache)
        self.concurrency = concurrency
        self.use_cache = use_cache
        self.progress = progress
        # Runs only the (case, prompt, model) keys it accepts, e.g. the items pytest selected.
        self.select = select
        self.judge = Judge(self.client, suite.judge.model, suite.judge.params) if suite.judge else None
        self.embedder = make_embedder(suite.embedder, self.client) if suite.embedder else None

    def _check_judge(self, tasks: list[Task]) -> None:
        if self.judge is not None:
            return
        for task in tasks:
            for spec in task.case.assertions:
                if spec.needs_judge and not spec.provider:
                    raise InvalidInput(
                        f"suite {self.suite.name}: case {task.case.id} uses {spec.type!r}, which needs a judge model: "
                        "add `judge: MODEL` to the suite"
                    )

    async def run(self) -> RunResult:
        started = datetime.now(UTC)
        prompts = await asyncio.to_thread(resolve_prompts, self.suite, self.database_url)
        tasks = plan(self.suite, prompts, self.repeat)
        if self.select is not None:
            tasks = [t for t in tasks if self.select(t.key)]
        self._check_judge(tasks)
        done, total = 0, sum(t.repeat for t in tasks)

        async def run_one(task: Task, attempt: int) -> CaseResult:
            nonlocal done
            # No slot is held here: the pacer limits the model calls, and a call waiting
            # out a 429 holds none; a cached answer needs none.
            result = await self._run_task(task, attempt)
            done += 1
            if self.progress:
                self.progress(done, total, result)
            return result

        async def run_task(task: Task) -> CaseResult:
            attempts = await asyncio.gather(*(run_one(task, n) for n in range(task.repeat)))
            return attempts[0] if task.repeat == 1 else aggregate(list(attempts), task.min_pass_rate)

        try:
            results = await asyncio.gather(*(run_task(t) for t in tasks))
        finally:
            await self.client.drain()  # also when cancelled: the answers received stay cached
        printed = await asyncio.to_thread(fingerprint, self.suite, prompts)
        models = list(dict.fromkeys(t.model_id for t in tasks))  # as the suite names them (model and params)
        return RunResult(
            id=uuid.uuid4().hex[:12],
            suite=self.suite.name,
            suite_path=self.suite.path,
            prompts={p.key: p.ref for p in prompts},
            models=models,
            parameters={
                "concurrency": self.concurrency,
                "cache": self.use_cache,
                "repeat": self.repeat or self.suite.repeat,
                "min_pass_rate": self.suite.min_pass_rate,
                "params": self.suite.params,
                "models": {m.key: {"model": m.model, "params": m.params} for m in self.suite.models},
                "judge": self.suite.judge.model if self.suite.judge else None,
                "cache_hits": self.client.hits,
                "cache_misses": self.client.misses,
                "retries": self.pacer.retried,
                "retry_wait_s": round(self.pacer.waited, 1),
                "fingerprint": printed,
                REQUEST_IDS: {r.test_id: r.request_id for r in results if r.request_id},
            },
            git_commit=await asyncio.to_thread(git_commit, self.suite.path),
            results=list(results),
            started_at=started,
            finished_at=datetime.now(UTC),
        )

    async def _run_task(self, task: Task, attempt: int = 0) -> CaseResult:
        from llmops.registry.service import render_view

        case = task.case
        result = CaseResult(
            case_id=case.id or "",
            prompt_id=task.prompt.key,
            prompt_ref=task.prompt.ref,
            model_id=task.model_id,
            model=task.model,
            params=task.params,
            variables=dict(case.vars),
            output=None,
            error=None,
            score=0.0,
            passed=False,
            reason="",
        )
        try:
            view = task.prompt.view
            turns = list(case.messages or [])
            messages = render_view(view, case.vars).as_messages() + turns
            # A registry version (inline prompts are version 0) is sent as its reference.
            prompt = PromptRef(view.name, view.version, dict(case.vars), turns) if view.version >= 1 else None
            response: ModelResponse = await self.client.chat(task.model, messages, task.params, prompt, attempt=attempt)
        except LLMOpsError as exc:
            result.error = result.reason = exc.message
            return result
        result.output, result.usage, result.cost = response.text, response.usage, response.cost
        result.latency_ms, result.cached = response.latency_ms, response.cached
        result.tool_calls, result.request_id = response.tool_calls, response.request_id
        result.retries = response.retries
        ctx = EvalContext(
            output=response.text,
            expected=case.expected,
            variables=case.vars,
            context=_context_for(case, self.suite),
            query=_last_user_message(messages),
            latency_ms=response.latency_ms,
            cost=response.cost,
            judge=self.judge,
            embedder=self.embedder,
            client=self.client,
            base_dir=str(Path(self.suite.path).parent) if self.suite.path else None,
            tool_calls=response.tool_calls,
            tools=task.params.get("tools"),
        )
        try:
            result.assertions = await grade_all(case.assertions, ctx)
        except LLMOpsError as exc:
            result.error = result.reason = f"grading failed: {exc.message}"
            return result
        verdict = combine(result.assertions, case.threshold)
        result.score, result.passed, result.reason = verdict.score, verdict.passed, verdict.reason
        return result


async def run_suite(
    suite: Suite,
    client: ModelClient,
    *,
    concurrency: int | None = None,
    use_cache: bool = True,
    database_url: str | None = None,
    progress: Callable[[int, int, CaseResult], None] | None = None,
    select: Callable[[tuple[str, str, str]], bool] | None = None,
    repeat: int | None = None,
    retries: int = DEFAULT_RETRIES,
) -> RunResult:
    """Run every case × prompt × model of a suite (or those `select` accepts); not stored here.
    `concurrency` None: the client's suggestion (default_concurrency)."""
    runner = Runner(
        suite,
        client,
        concurrency=concurrency,
        use_cache=use_cache,
        database_url=database_url,
        progress=progress,
        select=select,
        repeat=repeat,
        retries=retries,
    )
    return await runner.run()
