"""Comparing prompt versions on models: a small eval suite built in memory and run.

A comparison is an eval run whose cases are the rows the author picked (typed by hand
or taken from a dataset), whose prompts are pinned versions (`summarize:2`) and whose
checks are ordinary assertions; so it is run by the eval runner, graded the same way
as CI grades, and saved with `llmops.evaluation.storage.save_run` as an eval run.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from llmops.errors import InvalidInput, LLMOpsError
from llmops.evaluation.assertions import AssertionSpec, EvalContext, parse_assertions, render_value
from llmops.evaluation.client import ModelClient
from llmops.evaluation.runner import CaseResult, Runner, RunResult, inline_view
from llmops.evaluation.storage import load_run, save_run
from llmops.evaluation.suites import (
    CaseSpec,
    Defaults,
    ModelSpec,
    PromptSpec,
    Suite,
    load_suite,
    read_case_file,
)
from llmops.registry import templates
from llmops.registry.views import PromptVersionView
from llmops.ui.matrix_view import EXPECTED

MIN_VERSIONS, MAX_VERSIONS = 2, 4
MIN_MODELS, MAX_MODELS = 1, 3
CASE_FILE_SUFFIXES = (".csv", ".jsonl", ".ndjson")
DEFAULT_NAME = "ui-compare"
TYPED_CASE_PREFIX = "typed-"


# --- datasets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """Rows to run: an eval suite's cases (with their checks) or a CSV/JSONL case file."""

    path: Path
    kind: str  # "suite" | "cases"

    @property
    def label(self) -> str:
        return f"{self.path.name} ({'suite' if self.kind == 'suite' else 'case file'})"


def list_datasets(evals_dir: Path) -> list[Dataset]:
    """Suites (`*.yaml` at the top of `evals_dir`) and case files anywhere below it."""
    if not evals_dir.is_dir():
        return []
    found = [Dataset(p, "suite") for p in sorted(evals_dir.glob("*.y*ml"))]
    found += [
        Dataset(p, "cases") for p in sorted(evals_dir.rglob("*")) if p.suffix.lower() in CASE_FILE_SUFFIXES
    ]
    return found


def _case_with_context(case: CaseSpec, suite: Suite) -> CaseSpec:
    # The suite's `defaults.context` ("{{ text }}") is what faithfulness checks against;
    # rendered into each row here because the comparison is a different suite.
    if case.context is not None or suite.defaults.context is None:
        return case
    ctx = EvalContext(output="", variables=case.vars, expected=case.expected)
    return case.model_copy(update={"context": render_value(suite.defaults.context, ctx)})


def dataset_rows(dataset: Dataset) -> list[CaseSpec]:
    """A dataset's rows as cases: a suite's come with their checks and context."""
    if dataset.kind == "suite":
        suite = load_suite(dataset.path)
        return [_case_with_context(case, suite) for case in suite.expanded_cases()]
    return read_case_file(dataset.path)


def uploaded_rows(filename: str, data: bytes) -> list[CaseSpec]:
    """Rows of an uploaded CSV or JSONL file (columns are variables, plus id/expected)."""
    suffix = Path(filename).suffix.lower()
    if suffix not in CASE_FILE_SUFFIXES:
        raise InvalidInput(f"{filename}: upload a .csv or .jsonl file of rows")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            cases = read_case_file(path)
        except UnicodeDecodeError:
            raise InvalidInput(f"{filename}: not UTF-8 text") from None
        except InvalidInput as exc:
            raise InvalidInput(exc.message.replace(str(path), filename)) from None
    return [c if c.id else c.model_copy(update={"id": f"row-{i}"}) for i, c in enumerate(cases, 1)]


# --- what to fill in and check ------------------------------------------------------------


def template_sources(view: PromptVersionView) -> list[str]:
    return [view.template or ""] if view.kind == "text" else [m["content"] for m in view.messages or []]


def prompt_variables(views: Sequence[PromptVersionView]) -> list[str]:
    """Every variable any of the versions uses or declares, in a stable order."""
    names: dict[str, None] = {}
    for view in views:
        for name in view.variables:
            names.setdefault(name, None)
        for name in sorted(templates.used_variables(template_sources(view))):
            names.setdefault(name, None)
    return list(names)


LABEL_ORDER = ("production", "staging")


def chosen_reference(view: PromptVersionView) -> str:
    """How a version is named where it was picked: by its label (`summarize@production`), as
    CLI suites name it, else by number (`summarize:4`); production first, then staging."""

    def rank(label: str) -> tuple[int, str]:
        if label in LABEL_ORDER:
            return LABEL_ORDER.index(label), label
        return (len(LABEL_ORDER) + (label == "latest"), label)

    labels = sorted(view.labels, key=rank)
    return f"{view.name}@{labels[0]}" if labels else view.ref


def missing_for(views: Sequence[PromptVersionView], case: CaseSpec) -> dict[str, list[str]]:
    """{version ref: variables it needs that the case lacks}, for versions that lack any."""
    missing = {}
    for view in views:
        names = templates.missing_variables(template_sources(view), view.variables, case.vars)
        if names:
            missing[view.ref] = names
    return missing


def default_checks(variables: Sequence[str]) -> str:
    """Checks for hand-typed rows, as suite YAML: no refusal, faithful to the first variable."""
    checks: list[dict[str, Any]] = [{"type": "not-refusal"}]
    if variables:
        checks.append({"type": "faithfulness", "value": "{{ " + variables[0] + " }}", "threshold": 0.5})
    return yaml.safe_dump(checks, sort_keys=False)


def parse_checks(text: str) -> list[AssertionSpec]:
    """Checks written as an eval suite's `assert:` list (YAML); empty text means none."""
    if not text.strip():
        return []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the checks are not valid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise InvalidInput("the checks must be a YAML list, e.g. `- type: contains` / `  value: 2024`")
    try:
        return parse_assertions(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidInput(
            f"check {error['loc'][0] if error['loc'] else ''}: {error['msg'].removeprefix('Value error, ')}"
        ) from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the checks could not be read: {exc}") from None


def typed_case_id(variables: dict[str, Any]) -> str:
    """A typed row's id: a hash of its variables, so the same inputs are the same case in any run."""
    canonical = json.dumps(variables, sort_keys=True, ensure_ascii=False, default=str)
    return TYPED_CASE_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def manual_case(variables: dict[str, str], case_id: str | None = None) -> CaseSpec:
    return CaseSpec(id=case_id or typed_case_id(variables), vars=dict(variables))


# --- page state -------------------------------------------------------------------------------


def checks_key(source: str, prompt: str) -> str:
    """The checks box's widget key: one per prompt, so another prompt's checks never carry over."""
    return f"compare_checks:{prompt}:{source}"


def result_for(state: Any, key: str, prompt: str) -> RunResult | None:
    """The comparison kept in `state[key]` if it was run on `prompt`; another prompt's is dropped."""
    kept = state.get(key)
    if kept is None:
        return None
    kept_prompt, run = kept
    if kept_prompt != prompt:
        del state[key]
        return None
    return run


# --- running --------------------------------------------------------------------------------


@dataclass
class ComparisonRequest:
    prompt_refs: list[str]  # pinned versions, e.g. ["summarize:2", "summarize:3"]
    models: list[str]
    cases: list[CaseSpec]
    checks: list[AssertionSpec] = field(default_factory=list)  # applied to every row
    # The dataset suite the rows came from: its python checks are found beside it.
    suite_path: str | None = None
    name: str = DEFAULT_NAME
    use_cache: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    # {pinned version: the reference as chosen}, e.g. {"summarize:2": "summarize@production"}:
    # the run's prompt ids, so it lines up with CLI runs of `summarize@production`.
    prompt_ids: dict[str, str] = field(default_factory=dict)
    # Unsaved versions run beside the pinned ones (the playground's draft): inline prompts.
    drafts: list[PromptSpec] = field(default_factory=list)


def validate_request(request: ComparisonRequest, views: Sequence[PromptVersionView]) -> None:
    """Raise InvalidInput saying what to change before any model is called."""
    refs = list(dict.fromkeys(request.prompt_refs)) + [d.key for d in request.drafts]
    if not MIN_VERSIONS <= len(refs) <= MAX_VERSIONS:
        raise InvalidInput(
            f"pick {MIN_VERSIONS} to {MAX_VERSIONS} different prompt versions (picked {len(refs)})"
        )
    models = list(dict.fromkeys(request.models))
    if not MIN_MODELS <= len(models) <= MAX_MODELS:
        raise InvalidInput(f"pick {MIN_MODELS} to {MAX_MODELS} models (picked {len(models)})")
    if not request.cases:
        raise InvalidInput("nothing to run: fill in the variables or pick at least one row of a dataset")
    for case in request.cases:
        missing = missing_for(views, case)
        if missing:
            detail = "; ".join(f"{ref} needs {', '.join(names)}" for ref, names in missing.items())
            raise InvalidInput(f"row {case.id or '(unnamed)'} lacks variables: {detail}")


def build_suite(request: ComparisonRequest) -> Suite:
    from llmops.ui.gateway_client import UI_USER

    return Suite(
        name=request.name or DEFAULT_NAME,
        description="comparison run from the llmops app",
        prompts=[
            PromptSpec(id=request.prompt_ids.get(ref) or None, ref=ref)
            for ref in dict.fromkeys(request.prompt_refs)
        ]
        + list(request.drafts),
        models=[ModelSpec(model=m) for m in dict.fromkeys(request.models)],
        params={"user": UI_USER, **request.params},
        defaults=Defaults.model_validate({"assert": list(request.checks)}),  # as a suite file names it
        cases=list(request.cases),
        path=request.suite_path,
    )


async def run_comparison(
    client: ModelClient,
    request: ComparisonRequest,
    *,
    database_url: str,
    progress: Callable[[int, int, CaseResult], None] | None = None,
) -> RunResult:
    """Every row × version × model, graded; not stored (see save_comparison)."""
    runner = Runner(
        build_suite(request),
        client,
        concurrency=4,
        use_cache=request.use_cache,
        database_url=database_url,
        progress=progress,
    )
    return await runner.run()


def draft_view(spec: PromptSpec) -> PromptVersionView:
    """An inline prompt (a draft) as the runner sees it: version 0 of a prompt named by its id."""
    view: PromptVersionView = inline_view(spec, message="draft")
    return view


def record_expected(run: RunResult, request: ComparisonRequest) -> None:
    """Note in the run each case's expected output (the matrix shows it beside the answers;
    the runner has noted each result's gateway request id)."""
    expected = {c.id: c.expected for c in request.cases if c.id and c.expected is not None}
    run.parameters = {**run.parameters, EXPECTED: expected}


class ComparisonJob:
    """A comparison running on a gateway's loop; poll `done`/`total` to show progress."""

    def __init__(self, gateway, request: ComparisonRequest, database_url: str) -> None:
        self.done = 0
        columns = len(set(request.prompt_refs)) + len(request.drafts)
        self.total = len(request.cases) * columns * len(set(request.models))

        def progress(done: int, total: int, _result: CaseResult) -> None:
            self.done, self.total = done, total

        async def work(client: ModelClient) -> RunResult:
            run = await run_comparison(client, request, database_url=database_url, progress=progress)
            record_expected(run, request)
            return run

        self.future: concurrent.futures.Future[RunResult] = gateway.submit(work)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def save_comparison(
    run: RunResult, database_url: str, name: str | None = None, *, as_eval_run: bool = False
) -> str:
    """Store the comparison (Eval runs page, `llmops eval list`); returns its id.

    It is marked as the app's comparison; only `as_eval_run` makes it eval evidence for
    the versions it ran (what experiments and per-version pass rates read).
    """
    from llmops.ui.eval_runs import ORIGIN_COMPARE

    if name:
        run.suite = name.strip()
    if not run.suite:
        raise InvalidInput("give the eval run a name")
    run.parameters = {**run.parameters, "origin": ORIGIN_COMPARE, "evidence": as_eval_run}
    save_run(run, database_url)
    return run.id


# --- comparisons kept for a reload or a shared link --------------------------------------------

_RECENT: OrderedDict[str, tuple[str, RunResult]] = OrderedDict()
_RECENT_LOCK = threading.Lock()
RECENT_KEPT = 50


def remember(prompt: str, run: RunResult) -> None:
    """Keep an unsaved comparison in this process, so its link (?run=ID) opens it after a reload."""
    with _RECENT_LOCK:
        _RECENT[run.id] = (prompt, run)
        _RECENT.move_to_end(run.id)
        while len(_RECENT) > RECENT_KEPT:
            _RECENT.popitem(last=False)


def recall(run_id: str, prompt: str, database_url: str) -> RunResult | None:
    """The comparison `run_id` of `prompt`: one run in this process, else one saved; None if neither."""
    with _RECENT_LOCK:
        kept = _RECENT.get(run_id)
    if kept is not None:
        return kept[1] if kept[0] == prompt else None
    try:
        run = load_run(run_id, database_url)
    except LLMOpsError:
        return None
    names = {ref.rpartition(":")[0] for ref in run.prompts.values()}
    return run if names == {prompt} else None


def is_saved(run_id: str, database_url: str) -> bool:
    try:
        load_run(run_id, database_url)
    except LLMOpsError:
        return False
    return True
