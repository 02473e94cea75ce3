"""The whole of `llmops eval run` as one call, for the CLI, the UI and the pytest plugin.

Load a suite, run it against a gateway (remote by URL, or in this process), compare it
with a baseline run, store it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from llmops.evaluation.client import ModelClient, open_client
from llmops.evaluation.reports import Comparison, compare
from llmops.evaluation.runner import CaseResult, RunResult, run_suite
from llmops.evaluation.storage import load_run, save_run
from llmops.evaluation.suites import Suite, load_suite


async def run_suite_async(
    suite: Suite,
    *,
    client: ModelClient | None = None,
    gateway_url: str | None = None,
    api_key: str | None = None,
    gateway_config: str | Path | None = None,
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
    options = dict(
        concurrency=concurrency, use_cache=use_cache, database_url=database_url, progress=progress, select=select
    )
    if client is not None:
        run = await run_suite(suite, client, **options)
    else:
        async with open_client(gateway_url, api_key, gateway_config) as opened:
            run = await run_suite(suite, opened, **options)
    comparison = None
    if baseline_run is not None:
        comparison = compare(baseline_run, run)
        run.baseline_run_id = baseline_run.id
    if store:
        save_run(run, database_url)
    return run, comparison


def run_suite_file(path: str | Path, **options) -> tuple[RunResult, Comparison | None]:
    """`llmops eval run PATH` without the printing; options as for run_suite_async."""
    return asyncio.run(run_suite_async(load_suite(path), **options))
