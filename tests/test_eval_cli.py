"""`llmops eval ...` as a user runs it: tables, JSON, JUnit, exit codes, stored runs, scoring files."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest

from llmops import Registry
from llmops.cli import main
from llmops.commands.eval import ProgressBar
from tests.test_eval_fakes import free_port_in_range

REPO = Path(__file__).resolve().parents[1]
SUITE = str(REPO / "evals" / "summarize.yaml")


@pytest.fixture
def cli(database_url, capsys, monkeypatch):
    """`llmops eval ARGS` in-process against a database holding prompts/; returns (code, stdout, stderr)."""
    monkeypatch.setenv("LLMOPS_DATABASE_URL", database_url)  # the in-process gateway's database
    monkeypatch.delenv("LLMOPS_GATEWAY_URL", raising=False)
    from llmops.settings import get_settings

    get_settings.cache_clear()
    Registry(database_url=database_url).sync(REPO / "prompts")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["eval", "--database-url", database_url, *args])
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    get_settings.cache_clear()


def failing_suite(tmp_path: Path, figure: str = "£9bn") -> str:
    path = tmp_path / "failing.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: failing
            prompts: [summarize@production]
            models: [demo]
            cases:
              - id: budget
                vars: {{text: "The council approved a £2bn budget. Schools get £300m."}}
                assert: [{{type: contains, value: "{figure}"}}]
            """
        )
    )
    return str(path)


def test_run_prints_the_prompt_by_model_table_and_exits_0(cli, tmp_path):
    junit = tmp_path / "junit.xml"
    code, out, err = cli("run", SUITE, "--junit", str(junit))
    assert code == 0, out + err
    assert "summarize@production  summarize:2  demo" in out
    assert "summarize@staging     summarize:3  demo-brief (demo)" in out
    assert "FAIL" not in out
    assert err == ""  # no progress bar when stderr is not a terminal
    cases = ET.parse(junit).getroot().findall("./testsuite/testcase")
    assert len(cases) == 28 and cases[0].get("classname") == "summarize.summarize@production.demo"


def test_run_json_and_the_cache_on_a_second_run(cli):
    code, out, _ = cli("run", SUITE, "--json")
    first = json.loads(out)
    assert code == 0 and first["status"] == "passed" and first["parameters"]["cache_misses"] == 28
    code, out, _ = cli("run", SUITE, "--json", "--baseline", "last")
    second = json.loads(out)
    assert code == 0 and second["parameters"]["cache_hits"] == 28 and second["cost"] == 0
    assert second["comparison"]["baseline"] == first["id"] and second["comparison"]["regressed"] is False
    assert all(r["cached"] for r in second["results"])


def test_a_missed_threshold_exits_1_and_shows_the_failure(cli, tmp_path):
    code, out, _ = cli("run", failing_suite(tmp_path))
    assert code == 1
    assert "FAIL budget[summarize@production|demo]: failed: contains (does not contain '£9bn')" in out
    assert "output: Article: The council approved a £2bn budget." in out


def test_a_regression_against_the_baseline_exits_1(cli, tmp_path):
    assert cli("run", failing_suite(tmp_path, figure="£2bn"))[0] == 0
    code, out, _ = cli("run", failing_suite(tmp_path, figure="£9bn"), "--baseline", "last")
    assert code == 1
    assert "REGRESSION budget[summarize@production|demo]: passed before, fails now" in out


def test_list_show_and_compare(cli, tmp_path):
    cli("run", failing_suite(tmp_path, figure="£2bn"))
    cli("run", failing_suite(tmp_path, figure="£9bn"))
    code, out, _ = cli("list", "--json")
    runs = json.loads(out)
    assert code == 0 and [r["status"] for r in runs] == ["failed", "passed"]  # newest first
    newest, oldest = runs[0]["id"], runs[1]["id"]
    assert runs[0]["prompts"] == {"summarize@production": "summarize:2"}

    code, out, _ = cli("list")
    assert code == 0 and newest in out and "summarize:2" in out

    code, out, _ = cli("show", newest[:6])
    assert code == 0 and "budget" in out and "summarize@production" in out and "1 failing shown" in out
    code, out, _ = cli("show", "last", "--json")
    assert json.loads(out)["results"][0]["assertions"][0]["name"] == "contains"

    code, out, _ = cli("compare", oldest, newest)
    assert code == 1 and "REGRESSION" in out
    code, out, _ = cli("compare", newest, oldest, "--json")
    assert code == 0 and len(json.loads(out)["fixes"]) == 1

    code, _, err = cli("show", "nosuchrun")
    assert code == 1 and "no eval run 'nosuchrun'" in err


def test_score_faithfulness_of_a_jsonl_file(cli, tmp_path):
    rows = tmp_path / "rows.jsonl"
    context = "The council approved a £2bn budget on Tuesday. Schools get £300m of it."
    rows.write_text(
        json.dumps({"id": "good", "context": context, "output": "The council approved a £2bn budget on Tuesday."})
        + "\n"
        + json.dumps({"context": context, "output": "The council approved a £2bn budget. Hospitals get £900m."})
        + "\n"
    )
    code, out, _ = cli("score", "--metric", "faithfulness", "--input", str(rows))
    assert code == 0
    good, bad = [json.loads(line) for line in out.splitlines()]
    assert good["id"] == "good" and good["passed"] and good["unsupported"] == []
    assert bad["id"] == 2 and not bad["passed"] and bad["unsupported"] == ["Hospitals get £900m."]
    assert set(good) == {"id", "score", "passed", "unsupported"}

    (tmp_path / "bad.jsonl").write_text('{"output": "no context"}\n')
    code, _, err = cli("score", "--input", str(tmp_path / "bad.jsonl"))
    assert code == 1 and "needs `context` and `output`" in err


def test_the_progress_bar_draws_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    class Result:
        def __init__(self, passed: bool) -> None:
            self.passed = passed

    stream, ticks = Terminal(), iter([10.0, 10.5, 11.0])
    bar = ProgressBar(stream, width=10, clock=lambda: next(ticks))
    bar(1, 3, Result(True))  # the rate counts from the first case done, not from start-up
    bar(2, 3, Result(True))
    bar(3, 3, Result(False))
    assert stream.getvalue() == (
        "\r[###.......] 1/3  0 failed\033[K"
        "\r[######....] 2/3  2.0/s  ETA 0:00  0 failed\033[K"
        "\r[##########] 3/3  2.0/s  1 failed\033[K\n"
    )
    quiet = Terminal()
    bar = ProgressBar(quiet, draw=False)  # --json: counts, draws nothing
    bar(1, 2, Result(False))
    assert (quiet.getvalue(), bar.done, bar.total, bar.failed) == ("", 1, 2, 1)


def test_run_against_a_gateway_started_as_a_process(tmp_path, database_url):
    """`--gateway-url` to a real `llmops serve`, as CI would with a shared gateway."""
    Registry(database_url=database_url).sync(REPO / "prompts")
    port = free_port_in_range()
    env = {**os.environ, "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.db'}"}
    env.pop("LLMOPS_MASTER_KEY", None)
    log = (tmp_path / "gateway.log").open("w")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "llmops.cli", "serve", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while True:
            assert gateway.poll() is None, (tmp_path / "gateway.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "gateway not live after 60 s"
            time.sleep(0.2)
        done = subprocess.run(
            [sys.executable, "-m", "llmops.cli", "eval", "run", SUITE, "--json", "--gateway-url", f"http://127.0.0.1:{port}",
             "--database-url", database_url, "--concurrency", "4"],
            capture_output=True, text=True, timeout=300, cwd=REPO,
        )  # fmt: skip
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(30)
        log.close()
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["passed"] == run["total"] == 28
    assert run["parameters"]["concurrency"] == 4


def test_runs_record_their_dataset_and_compare_says_what_differs(cli, tmp_path):
    suite = failing_suite(tmp_path, figure="£2bn")
    code, out, _ = cli("run", suite, "--json")
    first = json.loads(out)
    printed = first["parameters"]["fingerprint"]
    assert printed["case_count"] == 1 and len(printed["cases"]) == 16
    assert printed["prompts"]["summarize@production"]["version"] == 2
    code, out, _ = cli("run", suite, "--json")
    second = json.loads(out)
    assert second["parameters"]["fingerprint"]["cases"] == printed["cases"]  # same data, same hash

    # An edited case is a new version of the dataset; compare says so.
    failing_suite(tmp_path, figure="£300m")
    code, out, _ = cli("run", suite, "--json")
    third = json.loads(out)
    assert third["parameters"]["fingerprint"]["cases"] != printed["cases"]
    code, out, _ = cli("compare", first["id"], third["id"])
    assert "note: the cases differ (1 cases" in out
    code, out, _ = cli("compare", first["id"], second["id"], "--json")
    assert json.loads(out)["differences"] == [] and json.loads(out)["common_items"] == 1

    code, out, _ = cli("datasets", "--json")
    versions = json.loads(out)
    assert [(v["suite"], len(v["runs"])) for v in versions] == [("failing", 1), ("failing", 2)]
    assert versions[1]["runs"] == [second["id"], first["id"]]
    code, out, _ = cli("datasets")
    assert code == 0 and "failing" in out and printed["cases"] in out


def test_a_cli_run_records_each_result_s_gateway_request_so_it_can_be_rated(cli, database_url):
    """Each result names the gateway request (its ledger row) that produced its output, as the
    app's results matrix needs to tie a rating to it; a cached answer names none."""
    from llmops.db import session_scope
    from llmops.evaluation.storage import load_run
    from llmops.governance.ledger_models import LedgerRow
    from llmops.ui.matrix_view import request_id_of

    code, out, _ = cli("run", SUITE, "--json")
    run = json.loads(out)
    ids = run["parameters"]["request_ids"]
    assert code == 0 and len(ids) == len(run["results"]) == 28 and len(set(ids.values())) == 28
    stored = load_run(run["id"], database_url=database_url)
    assert {r.test_id: request_id_of(stored, r) for r in stored.results} == ids
    with session_scope(database_url) as session:
        rows = [session.get(LedgerRow, request_id) for request_id in ids.values()]
    assert all(row is not None and row.prompt_name == "summarize" and row.prompt_version for row in rows)
    code, out, _ = cli("run", SUITE, "--json")
    assert json.loads(out)["parameters"]["request_ids"] == {}  # all cached: no new calls
