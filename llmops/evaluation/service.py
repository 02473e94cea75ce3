"""The whole of `llmops eval run` as one call, for the CLI, the UI and the pytest plugin.

Run a suite with a model client, compare it with a baseline run, log it to MLflow when
asked, store it. The client
(a gateway at a URL, or one in this process) comes from `llmops.gateway.clients`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from llmops.evaluation.client import ModelClient
from llmops.evaluation.mlflow_log import MlflowError, MlflowLogged, log_run, tracking_uri
from llmops.evaluation.reports import Comparison, compare
from llmops.evaluation.runner import CaseResult, RunResult, run_suite
from llmops.evaluation.storage import load_run, save_run
from llmops.evaluation.suites import MlflowSpec, Suite


async def run_suite_async(
    suite: Suite,
    *,
    client: ModelClient,
    concurrency: int | None = None,
    use_cache: bool = True,
    database_url: str | None = None,
    baseline: str | None = None,
    store: bool = True,
    progress: Callable[[int, int, CaseResult], None] | None = None,
    select: Callable[[tuple[str, str, str]], bool] | None = None,
    repeat: int | None = None,
    mlflow: str | bool | None = None,
) -> tuple[RunResult, Comparison | None]:
    """`mlflow`: a tracking server URL, True (the suite's `mlflow:` URL or MLFLOW_TRACKING_URI),
    or None (log only when the suite has an `mlflow:` setting)."""
    # Resolve the baseline first: `last` means the run before this one.
    baseline_run = load_run(baseline, database_url, suite=suite.name) if baseline else None
    # A missing or non-HTTP tracking URI fails before any call is made.
    mlflow_uri = None
    if mlflow or suite.mlflow is not None:
        mlflow_uri = tracking_uri(mlflow if isinstance(mlflow, str) else (suite.mlflow or MlflowSpec()).tracking_uri)
    run = await run_suite(
        suite, client, concurrency=concurrency, use_cache=use_cache, database_url=database_url,
        progress=progress, select=select, repeat=repeat,
    )  # fmt: skip
    comparison = None
    if baseline_run is not None:
        comparison = compare(baseline_run, run)
        run.baseline_run_id = baseline_run.id
    failure: MlflowError | None = None
    if mlflow_uri is not None:
        try:
            logged = await asyncio.to_thread(_log_to_mlflow, run, suite, mlflow_uri, database_url)
            run.parameters["mlflow"] = {
                "tracking_uri": logged.tracking_uri, "experiment_id": logged.experiment_id,
                "run_id": logged.run_id, "prompts": logged.prompts,
            }  # fmt: skip
        except MlflowError as exc:
            failure = exc
    if store:
        save_run(run, database_url)
    if failure is not None:
        kept = f"the run was stored as {run.id}, but " if store else ""
        raise MlflowError(f"{kept}logging it to MLflow failed: {failure.message}")
    return run, comparison


def _log_to_mlflow(run: RunResult, suite: Suite, uri: str, database_url: str | None) -> MlflowLogged:
    setting = suite.mlflow or MlflowSpec()
    views = {}
    if setting.register_prompts:
        from llmops.registry.service import Registry

        registry = Registry(database_url=database_url)
        views = {key: registry.get(ref) for key, ref in run.prompts.items() if not ref.startswith("inline:")}
    return log_run(
        run, uri, experiment=setting.experiment, register_prompts=setting.register_prompts, prompt_views=views
    )
