"""The whole of `llmops eval run` as one call, for the CLI, the UI and the pytest plugin.

Run a suite with a model client, compare it with a baseline run, store it. The client
(a gateway at a URL, or one in this process) comes from `llmops.gateway.clients`.
"""

from __future__ import annotations

from collections.abc import Callable

from llmops.evaluation.client import ModelClient
from llmops.evaluation.reports import Comparison, compare
from llmops.evaluation.runner import CaseResult, RunResult, run_suite
from llmops.evaluation.storage import load_run, save_run
from llmops.evaluation.suites import Suite


async def run_suite_async(
    suite: Suite,
    *,
    client: ModelClient,
    concurrency: int = 8,
    use_cache: bool = True,
    database_url: str | None = None,
    baseline: str | None = None,
    store: bool = True,
    progress: Callable[[int, int, CaseResult], None] | None = None,
    select: Callable[[tuple[str, str, str]], bool] | None = None,
) -> tuple[RunResult, Comparison | None]:
    # Resolve the baseline first: `last` means the run before this one.
    baseline_run = load_run(baseline, database_url, suite=suite.name) if baseline else None
    run = await run_suite(
        suite, client, concurrency=concurrency, use_cache=use_cache, database_url=database_url,
        progress=progress, select=select,
    )
    comparison = None
    if baseline_run is not None:
        comparison = compare(baseline_run, run)
        run.baseline_run_id = baseline_run.id
    if store:
        save_run(run, database_url)
    return run, comparison
