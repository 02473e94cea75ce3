"""`llmops eval run --mlflow` and a suite's `mlflow:` against a real MLflow tracking server.

The server is MLflow's own (`mlflow server`, SQLite backend, artifacts served by it, a free
port), from the env scripts/install-mlflow.sh builds (scripts/test.sh runs it). What llmops
logged over REST is read back with MLflow's own Python client, in that env.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.gateway_proc import REPO

MLFLOW_ENV = Path(os.environ.get("LLMOPS_MLFLOW_ENV", Path.home() / ".cache" / "llmops" / "mlflow-env"))


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    binary = MLFLOW_ENV / "bin" / "mlflow"
    if not binary.exists():
        pytest.skip(f"no MLflow env at {MLFLOW_ENV}: run scripts/install-mlflow.sh (scripts/test.sh does)")
    tmp = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner: a faster start
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen(
        [str(binary), "server", "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db", "--artifacts-destination",
         str(tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240  # its imports take ~20 s on an idle machine, far more on a busy one
    try:
        while True:
            assert proc.poll() is None, (tmp / "server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mlflow server not up after 240 s:\n" + (tmp / "server.log").read_text()
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def llmops(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url}
    for name in ("LLMOPS_GATEWAY_URL", "LLMOPS_MASTER_KEY", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args], capture_output=True, text=True, timeout=240, cwd=cwd, env=env
    )


def read_back(url: str, run_id: str) -> dict:
    """The run as MLflow's own client sees it: params, metrics, tags, artifacts, linked prompts."""
    script = textwrap.dedent(f"""
        import json, mlflow
        from mlflow import MlflowClient
        mlflow.set_tracking_uri({url!r})
        client = MlflowClient()
        run = client.get_run({run_id!r})
        out = {{
            "experiment": client.get_experiment(run.info.experiment_id).name,
            "status": run.info.status, "params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags,
            "artifacts": sorted(a.path for a in client.list_artifacts({run_id!r})),
            "cases_csv": open(client.download_artifacts({run_id!r}, "cases.csv")).read(),
            "junit": open(client.download_artifacts({run_id!r}, "junit.xml")).read(),
        }}
        linked = json.loads(run.data.tags.get("mlflow.linkedPrompts", "[]"))
        out["prompts"] = []
        for p in linked:
            version = mlflow.genai.load_prompt(f"prompts:/{{p['name']}}/{{p['version']}}")
            out["prompts"].append({{"uri": f"prompts:/{{p['name']}}/{{p['version']}}", "template": version.template,
                                   "tags": version.tags}})
        print(json.dumps(out))
    """)
    done = subprocess.run([str(MLFLOW_ENV / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "MLFLOW_TRACKING_URI": url})  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def suite_file(tmp_path: Path, mlflow: dict | str | None = None) -> Path:
    suite = {
        "name": "summaries-mlflow",
        "prompts": ["summarize@production", "summarize@staging"],
        "models": ["demo"],
        "repeat": 2,
        "cases": [
            {"id": "budget", "vars": {"text": "The council approved a £2.4bn budget. Schools get £310m."},
             "assert": [{"type": "contains", "value": "£2.4bn"}]},
            {"id": "missing", "vars": {"text": "Rates rose 2% in May."}, "assert": [{"type": "contains", "value": "June"}]},
        ],
    }  # fmt: skip
    if mlflow is not None:
        suite["mlflow"] = mlflow
    path = tmp_path / "summaries.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


@pytest.fixture
def registry_db(tmp_path) -> str:
    database_url = f"sqlite:///{tmp_path / 'llmops.db'}"
    done = llmops("prompts", "sync", str(REPO / "prompts"), database_url=database_url, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return database_url


def test_eval_run_with_mlflow_logs_params_metrics_and_artifacts(tmp_path, registry_db, mlflow_server):
    suite = suite_file(tmp_path)
    done = llmops("eval", "run", str(suite), "--mlflow", mlflow_server, "--json", "--database-url", registry_db,
                  database_url=registry_db, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1, done.stderr  # the `missing` case fails: logged all the same
    run = json.loads(done.stdout)
    logged = run["parameters"]["mlflow"]
    assert logged["tracking_uri"] == mlflow_server
    seen = read_back(mlflow_server, logged["run_id"])
    assert seen["experiment"] == "summaries-mlflow" and seen["status"] == "FINISHED"
    params = seen["params"]
    assert params["prompt.summarize_production"] == "summarize:2" and params["prompt.summarize_staging"] == "summarize:3"
    assert params["model.demo"] == "demo" and params["repeat"] == "2" and params["llmops.run_id"] == run["id"]
    printed = run["parameters"]["fingerprint"]
    assert params["dataset.cases"] == printed["cases"] and params["dataset.suite"] == printed["suite"]
    assert params["prompt.summarize_production.template_hash"] == printed["prompts"]["summarize@production"]["template"]
    metrics = seen["metrics"]
    assert metrics["pass_rate"] == 0.5 and metrics["passed"] == 2 and metrics["failed"] == 2
    assert metrics["attempts"] == 8 and metrics["cases"] == 4
    assert metrics["score"] == pytest.approx(run["score"]) and "latency_ms" in metrics and metrics["cost"] == 0
    assert metrics["score.summarize_production.demo"] == 0.5 and metrics["assertion.contains"] == 0.5
    assert metrics["total_tokens"] > 0
    assert seen["tags"]["llmops.status"] == "failed" and seen["tags"]["llmops.suite"] == "summaries-mlflow"
    assert seen["artifacts"] == ["cases.csv", "junit.xml", "run.json"]
    assert seen["cases_csv"].startswith("case_id,prompt_id,prompt_ref,model_id,model,status,passed,score,runs,passes,rate")
    rows = {(r["case_id"], r["prompt_id"]): r for r in csv.DictReader(io.StringIO(seen["cases_csv"]))}
    assert len(rows) == 4
    missing = rows[("missing", "summarize@staging")]
    assert (missing["prompt_ref"], missing["status"], missing["passed"], missing["runs"], missing["passes"]) == (
        "summarize:3", "failed", "False", "2", "0")  # fmt: skip
    assert seen["junit"].count("<testcase ") == 4 and 'name="rate"' in seen["junit"]
    assert seen["prompts"] == []  # registering prompts is the suite's choice

    # `llmops eval show` keeps where the run went.
    shown = llmops("eval", "show", run["id"], "--json", "--database-url", registry_db, database_url=registry_db, cwd=tmp_path)
    assert json.loads(shown.stdout)["parameters"]["mlflow"]["run_id"] == logged["run_id"]


def test_a_suite_mlflow_setting_logs_every_run_and_registers_its_prompt_versions(tmp_path, registry_db, mlflow_server):
    suite = suite_file(tmp_path, {"tracking_uri": mlflow_server, "experiment": "nightly-summaries", "register_prompts": True})
    first = llmops("eval", "run", str(suite), "--json", "--database-url", registry_db, database_url=registry_db, cwd=tmp_path)
    second = llmops("eval", "run", str(suite), "--json", "--database-url", registry_db, database_url=registry_db, cwd=tmp_path)
    logged = [json.loads(done.stdout)["parameters"]["mlflow"] for done in (first, second)]
    assert logged[0]["run_id"] != logged[1]["run_id"] and logged[0]["experiment_id"] == logged[1]["experiment_id"]
    # The same versions are registered once: the second run links the same MLflow prompt versions.
    assert logged[0]["prompts"] == logged[1]["prompts"]
    assert set(logged[0]["prompts"]) == {"summarize:2", "summarize:3"}
    seen = read_back(mlflow_server, logged[1]["run_id"])
    assert seen["experiment"] == "nightly-summaries"
    by_ref = {p["tags"]["llmops.prompt_ref"]: p for p in seen["prompts"]}
    assert set(by_ref) == {"summarize:2", "summarize:3"}
    template = by_ref["summarize:2"]["template"]
    assert template[0]["role"] == "system" and "{{ text }}" in template[1]["content"]


def test_mlflow_failures_keep_the_run_and_say_why(tmp_path, registry_db):
    suite = suite_file(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    done = llmops("eval", "run", str(suite), "--mlflow", dead, "--database-url", registry_db,
                  database_url=registry_db, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    assert "error: the run was stored as " in done.stderr and f"logging it to MLflow failed: cannot reach the MLflow server at {dead}" in done.stderr
    listed = llmops("eval", "list", "--json", "--database-url", registry_db, database_url=registry_db, cwd=tmp_path)
    assert len(json.loads(listed.stdout)) == 1

    refused = llmops("eval", "run", str(suite), "--mlflow", "file:///tmp/mlruns", "--database-url", registry_db,
                     database_url=registry_db, cwd=tmp_path)  # fmt: skip
    assert refused.returncode == 1 and "logs to a tracking server over HTTP" in refused.stderr
    nowhere = llmops("eval", "run", str(suite), "--mlflow", "--database-url", registry_db, database_url=registry_db, cwd=tmp_path)
    assert nowhere.returncode == 1 and "no MLflow tracking server: give --mlflow URL" in nowhere.stderr
    listed = llmops("eval", "list", "--json", "--database-url", registry_db, database_url=registry_db, cwd=tmp_path)
    assert len(json.loads(listed.stdout)) == 1  # refused before running: nothing more stored


def test_pytest_logs_each_suite_run_to_the_server_mlflow_tracking_uri_names(tmp_path, mlflow_server):
    """`pytest evals --eval-mlflow` with no URI: MLFLOW_TRACKING_URI, as MLflow's own client reads it."""
    evals = tmp_path / "evals"
    evals.mkdir()
    suite = suite_file(evals)
    suite.write_text(suite.read_text().replace("name: summaries-mlflow", "name: from-pytest"))
    # The repository's evals/conftest.py, syncing the repository's prompts/ into the run's database.
    conftest = (REPO / "evals" / "conftest.py").read_text()
    prompts = 'Path(__file__).resolve().parent.parent / "prompts"'
    assert prompts in conftest
    (evals / "conftest.py").write_text(conftest.replace(prompts, f"Path({str(REPO / 'prompts')!r})"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "LLMOPS_EVAL_DATABASE_URL": f"sqlite:///{tmp_path}/e.db"}
    env.pop("LLMOPS_GATEWAY_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "--eval-mlflow", "-q", "-o", "testpaths=evals"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert "2 failed, 2 passed" in done.stdout, done.stdout + done.stderr
    script = textwrap.dedent(f"""
        import json, mlflow
        mlflow.set_tracking_uri({mlflow_server!r})
        runs = mlflow.search_runs(experiment_names=["from-pytest"], output_format="list")
        print(json.dumps([[r.data.params.get("suite"), r.data.metrics.get("pass_rate")] for r in runs]))
    """)
    seen = subprocess.run([str(MLFLOW_ENV / "bin" / "python"), "-c", script], capture_output=True, text=True, timeout=240)
    assert json.loads(seen.stdout.strip().splitlines()[-1]) == [["from-pytest", 0.5]], seen.stderr

