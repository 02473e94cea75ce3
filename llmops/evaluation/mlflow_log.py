"""Log an eval run to an MLflow tracking server, over MLflow's REST API.

One MLflow run per llmops run, in an experiment named after the suite (or the suite's
`mlflow.experiment`):

- params: the llmops run id, the prompt versions (`prompt.<id>` = `summarize:2`), the
  models and their parameters, the repeat count, and the dataset hashes of the run's
  fingerprint (`dataset.cases`, `dataset.suite`, `dataset.file.<name>`);
- metrics: pass rate (cases and attempts), passed, failed, flaky and errored cases, the
  mean score, cost, mean latency and tokens, the mean score per prompt × model
  (`score.<prompt>.<model>`) and per assertion (`assertion.<name>`);
- artifacts: `cases.csv` (one row per case × prompt × model), `junit.xml` and `run.json`;
- tags: the suite, the git commit (`mlflow.source.git.commit`), the status.

With `register_prompts`, each registry prompt version the run used is registered in
MLflow's prompt registry (once: a version whose llmops reference and template hash are
already there is reused) and linked to the run (`mlflow.linkedPrompts`).

Why REST and not the `mlflow` package: the package and its server dependencies are an
850 MB environment (measured here: `pip install mlflow` 3.17), and logging needs a dozen
JSON calls that httpx, already a dependency, makes. The tests run a real `mlflow server`
and read the run back with MLflow's own client.

Credentials come from the environment as MLflow's client reads them:
MLFLOW_TRACKING_TOKEN (bearer), or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

from llmops.errors import InvalidInput, LLMOpsError
from llmops.evaluation.reports import by_prompt_and_model, junit_xml
from llmops.evaluation.runner import RunResult

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")
PARAM_LIMIT = 6000  # characters MLflow keeps of a param value


class MlflowError(LLMOpsError):
    status = 502
    type = "api_error"
    code = "mlflow_failed"

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status  # what the MLflow server answered, when it answered


@dataclass(frozen=True)
class MlflowLogged:
    tracking_uri: str
    experiment_id: str
    run_id: str
    prompts: dict[str, str]  # llmops reference -> "prompts:/name/version"

    @property
    def url(self) -> str:
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"


def metric_key(name: str) -> str:
    """MLflow keys allow letters, digits, _ - . space and /: anything else becomes _."""
    return _KEY_UNSAFE.sub("_", name)[:250]


def _auth() -> httpx.Auth | None:
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return httpx.BasicAuth(user, password)
    return None


def _headers() -> dict[str, str]:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return {"authorization": f"Bearer {token}"} if token else {}


def tracking_uri(given: str | None) -> str:
    uri = given or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        raise InvalidInput("no MLflow tracking server: give --mlflow URL, the suite's `mlflow:`, or MLFLOW_TRACKING_URI")
    if urlparse(uri).scheme not in ("http", "https"):
        raise InvalidInput(
            f"MLflow tracking URI {uri!r}: llmops logs to a tracking server over HTTP; "
            "start one (`mlflow server --backend-store-uri sqlite:///mlflow.db`) and give its URL"
        )
    return uri.rstrip("/")


class MlflowClient:
    """The few REST calls logging needs; every failure says which call and what MLflow said."""

    def __init__(self, uri: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.uri = uri
        self._http = httpx.Client(
            base_url=uri, timeout=timeout, headers=_headers(), auth=_auth(), transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise MlflowError(f"cannot reach the MLflow server at {self.uri}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
                message = f"{body.get('error_code', '')}: {body.get('message', '')}".strip(": ")
            except ValueError:
                message = response.text[:200]
            raise MlflowError(
                f"MLflow {method} {path} failed: HTTP {response.status_code} {message}", http_status=response.status_code
            )
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def api(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        return self._call(method, f"/api/2.0/mlflow/{endpoint}", **kwargs)

    def experiment_id(self, name: str) -> str:
        try:
            found = self.api("GET", "experiments/get-by-name", params={"experiment_name": name})
            return str(found["experiment"]["experiment_id"])
        except MlflowError as exc:
            if exc.http_status != 404:
                raise
        try:
            return str(self.api("POST", "experiments/create", json={"name": name})["experiment_id"])
        except MlflowError as exc:  # another process created it first
            if "RESOURCE_ALREADY_EXISTS" not in exc.message:
                raise
            found = self.api("GET", "experiments/get-by-name", params={"experiment_name": name})
            return str(found["experiment"]["experiment_id"])

    def upload(self, artifact_uri: str, name: str, content: bytes, content_type: str) -> None:
        """PUT an artifact through the server's artifact proxy (`mlflow-artifacts:` URIs)."""
        parsed = urlparse(artifact_uri)
        if parsed.scheme != "mlflow-artifacts":
            raise MlflowError(
                f"the run's artifact location is {artifact_uri!r}, which llmops cannot reach over HTTP: "
                "start `mlflow server` with artifact serving on (the default; not --no-serve-artifacts)"
            )
        path = f"/api/2.0/mlflow-artifacts/artifacts/{parsed.path.strip('/')}/{name}"
        self._call("PUT", re.sub("//+", "/", path), content=content, headers={"content-type": content_type})


def _params(run: RunResult) -> dict[str, str]:
    printed = run.parameters.get("fingerprint") or {}
    params: dict[str, Any] = {
        "llmops.run_id": run.id,
        "suite": run.suite,
        "repeat": run.parameters.get("repeat", 1),
        "min_pass_rate": run.parameters.get("min_pass_rate"),
        "git_commit": run.git_commit,
        "judge": run.parameters.get("judge"),
        "dataset.suite": printed.get("suite"),
        "dataset.cases": printed.get("cases"),
        "dataset.case_count": printed.get("case_count"),
    }
    for key, ref in run.prompts.items():
        params[f"prompt.{key}"] = ref
        template = (printed.get("prompts") or {}).get(key, {}).get("template")
        if template:
            params[f"prompt.{key}.template_hash"] = template
    for name, digest in (printed.get("case_files") or {}).items():
        params[f"dataset.file.{name}"] = digest
    models = run.parameters.get("models") or {}
    for model_id in run.models:
        spec = models.get(model_id) or {"model": model_id}
        params[f"model.{model_id}"] = json.dumps(spec, sort_keys=True) if spec.get("params") else spec.get("model")
    if run.parameters.get("params"):
        params["params"] = json.dumps(run.parameters["params"], sort_keys=True)
    return {
        metric_key(k): str(v)[:PARAM_LIMIT] for k, v in params.items() if v is not None and v != ""
    }


def _metrics(run: RunResult) -> dict[str, float]:
    cases = run.total or 1
    metrics: dict[str, float] = {
        "pass_rate": run.passed_count / cases,
        "attempt_pass_rate": run.pass_rate,
        "passed": run.passed_count,
        "failed": run.total - run.passed_count,
        "flaky": run.flaky,
        "errors": run.errors,
        "cases": run.total,
        "attempts": len(run.calls),
        "score": run.score,
        "cost": run.cost,
    }
    if run.latency_ms is not None:
        metrics["latency_ms"] = run.latency_ms
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        values = [c.usage.get(name) for c in run.calls]
        numbers = [v for v in values if isinstance(v, int | float)]
        if numbers:
            metrics[name] = float(sum(numbers))
    for group in by_prompt_and_model(run):
        metrics[f"score.{group.prompt_id}.{group.model_id}"] = group.score
        metrics[f"pass_rate.{group.prompt_id}.{group.model_id}"] = group.pass_rate
    by_assertion: dict[str, list[float]] = {}
    for call in run.calls:
        for a in call.assertions:
            by_assertion.setdefault(a.name, []).append(a.score)
    for name, scores in by_assertion.items():
        metrics[f"assertion.{name}"] = sum(scores) / len(scores)
    return {metric_key(k): float(v) for k, v in metrics.items()}


CASE_COLUMNS = (
    "case_id", "prompt_id", "prompt_ref", "model_id", "model", "status", "passed", "score", "runs", "passes",
    "rate", "ci_low", "ci_high", "latency_ms", "cost", "prompt_tokens", "completion_tokens", "reason", "output",
)  # fmt: skip


def cases_csv(run: RunResult) -> str:
    """The per-case table: one row per case × prompt × model."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CASE_COLUMNS)
    writer.writeheader()
    for r in run.results:
        stats = r.repeat.to_dict() if r.repeat else {"runs": 1, "passes": int(r.passed), "rate": float(r.passed)}
        writer.writerow(
            {
                "case_id": r.case_id, "prompt_id": r.prompt_id, "prompt_ref": r.prompt_ref, "model_id": r.model_id,
                "model": r.model, "status": r.status, "passed": r.passed, "score": round(r.score, 4),
                "runs": stats["runs"], "passes": stats["passes"], "rate": stats["rate"],
                "ci_low": stats.get("ci_low", ""), "ci_high": stats.get("ci_high", ""),
                "latency_ms": "" if r.latency_ms is None else round(r.latency_ms, 1),
                "cost": "" if r.cost is None else r.cost,
                "prompt_tokens": r.usage.get("prompt_tokens", ""), "completion_tokens": r.usage.get("completion_tokens", ""),
                "reason": r.reason, "output": r.output or "",
            }
        )  # fmt: skip
    return out.getvalue()


def _register_prompts(client: MlflowClient, run: RunResult, views: dict[str, Any]) -> dict[str, str]:
    """Each registry version the run used, in MLflow's prompt registry: {ref: prompts:/name/N}."""
    registered: dict[str, str] = {}
    printed = (run.parameters.get("fingerprint") or {}).get("prompts") or {}
    for key, view in views.items():
        if view.version < 1:
            continue  # an inline prompt is not a registry version
        ref = f"{view.name}:{view.version}"
        template_hash = (printed.get(key) or {}).get("template", "")
        try:
            client.api(
                "POST",
                "registered-models/create",
                json={"name": view.name, "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]},
            )
        except MlflowError as exc:
            if "RESOURCE_ALREADY_EXISTS" not in exc.message:
                raise
        # Prompt versions are left out of a search unless its filter asks for them by their tag.
        prompts_of = f"name='{view.name}' AND tags.`mlflow.prompt.is_prompt` = 'true'"
        found = client.api("GET", "model-versions/search", params={"filter": prompts_of, "max_results": 1000}).get(
            "model_versions", []
        )
        version = None
        for existing in found:
            known = {t["key"]: t.get("value") for t in existing.get("tags", [])}
            if known.get("llmops.prompt_ref") == ref and known.get("llmops.template_hash") == template_hash:
                version = existing["version"]
        if version is None:
            chat = view.messages is not None
            text = json.dumps(view.messages) if chat else (view.template or "")
            version_tags = [
                {"key": "mlflow.prompt.is_prompt", "value": "true"},
                {"key": "mlflow.prompt.text", "value": text},
                {"key": "_mlflow_prompt_type", "value": "chat" if chat else "text"},
                {"key": "llmops.prompt_ref", "value": ref},
                {"key": "llmops.template_hash", "value": template_hash},
            ]
            created = client.api(
                "POST",
                "model-versions/create",
                json={"name": view.name, "source": "prompt-template", "tags": version_tags, "description": view.message or ""},
            )
            version = created["model_version"]["version"]
        registered[ref] = f"prompts:/{view.name}/{version}"
    return registered


def log_run(
    run: RunResult,
    uri: str,
    *,
    experiment: str | None = None,
    register_prompts: bool = False,
    prompt_views: dict[str, Any] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> MlflowLogged:
    """Log a finished run (see the module docstring); raises MlflowError naming what failed."""
    client = MlflowClient(tracking_uri(uri), transport=transport)
    try:
        experiment_id = client.experiment_id(experiment or run.suite)
        started = int(run.started_at.timestamp() * 1000)
        tags = [
            {"key": "mlflow.runName", "value": f"{run.suite}-{run.id}"},
            {"key": "mlflow.source.name", "value": run.suite_path or run.suite},
            {"key": "mlflow.source.type", "value": "JOB"},
            {"key": "llmops.suite", "value": run.suite},
            {"key": "llmops.status", "value": run.status},
        ]
        if run.git_commit:
            tags.append({"key": "mlflow.source.git.commit", "value": run.git_commit})
        created = client.api(
            "POST",
            "runs/create",
            json={"experiment_id": experiment_id, "start_time": started, "run_name": f"{run.suite}-{run.id}", "tags": tags},
        )["run"]["info"]
        run_id, artifact_uri = created["run_id"], created["artifact_uri"]
        now = int(time.time() * 1000)
        params = [{"key": k, "value": v} for k, v in _params(run).items()]
        metrics = [{"key": k, "value": v, "timestamp": now, "step": 0} for k, v in _metrics(run).items()]
        # log-batch takes at most 100 params and 1000 metrics a call.
        for start in range(0, max(len(params), len(metrics)), 100):
            client.api(
                "POST",
                "runs/log-batch",
                json={"run_id": run_id, "params": params[start : start + 100], "metrics": metrics[start : start + 100]},
            )
        client.upload(artifact_uri, "cases.csv", cases_csv(run).encode(), "text/csv")
        client.upload(artifact_uri, "junit.xml", junit_xml(run).encode(), "application/xml")
        client.upload(artifact_uri, "run.json", json.dumps(run.to_dict(), ensure_ascii=False, default=str).encode(), "application/json")
        registered: dict[str, str] = {}
        if register_prompts and prompt_views:
            registered = _register_prompts(client, run, prompt_views)
            linked = [{"name": p.split("/")[1], "version": p.split("/")[2]} for p in registered.values()]
            client.api("POST", "runs/set-tag", json={"run_id": run_id, "key": "mlflow.linkedPrompts", "value": json.dumps(linked)})
        ended = int((run.finished_at or run.started_at).timestamp() * 1000)
        client.api(
            "POST",
            "runs/update",
            # FINISHED either way: MLflow's FAILED means the job crashed; the verdict is the llmops.status tag.
            json={"run_id": run_id, "status": "FINISHED", "end_time": max(ended, started)},
        )
        return MlflowLogged(client.uri, experiment_id, run_id, registered)
    finally:
        client.close()
