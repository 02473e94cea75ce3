"""Repeats, flakiness and the rate gate, as CI meets them: `llmops eval run` and `pytest`.

The model is a real HTTP server behind the gateway the harness starts (coin-30-9 in
tests/test_eval_agent_upstream.py): it answers wrongly 30% of the time, from a seeded
draw per question, so with `repeat: 5` the three questions pass 3, 5 and 4 times of 5.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from llmops.evaluation.repeats import pass_at_k, pass_hat_k, wilson_interval
from tests.test_eval_agent_upstream import AgentUpstream, coin_outcomes, gateway_config

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = {
    "capital-a": "What is the capital of France?",
    "capital-b": "Name the capital of France.",
    "capital-c": "Which city is the capital of France?",
}


def test_the_fake_upstream_gives_each_case_the_rates_these_tests_expect():
    passes = {case: 5 - sum(coin_outcomes(30, 9, q, 5)) for case, q in QUESTIONS.items()}
    assert passes == {"capital-a": 3, "capital-b": 5, "capital-c": 4}


def test_wilson_interval_and_pass_at_k_against_known_values():
    # Known values (Wilson 1927; e.g. 3 of 5: 0.2307-0.8824, 0 of 10: 0-0.2775).
    assert wilson_interval(3, 5) == pytest.approx((0.2307, 0.8824), abs=1e-4)
    assert wilson_interval(4, 5) == pytest.approx((0.3755, 0.9638), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 5)[1] == 1.0
    # pass@k = 1 - C(n-c, k) / C(n, k); pass^k = C(c, k) / C(n, k)
    assert pass_at_k(5, 3, 2) == pytest.approx(1 - 1 / 10)
    assert pass_hat_k(5, 3, 2) == pytest.approx(3 / 10)
    assert (pass_at_k(5, 3, 5), pass_hat_k(5, 3, 5)) == (1.0, 0.0)


@pytest.fixture(scope="module")
def server():
    with AgentUpstream() as fake:
        yield fake


@pytest.fixture
def upstream(server):
    server.reset()
    return server


def write_suite(tmp_path: Path, *, repeat: int | None = 5, min_pass_rate: float | None = 0.9) -> Path:
    suite = {
        "name": "capitals",
        "prompts": [{"id": "ask", "template": "{{ question }}"}],
        "models": ["coin"],
        "cases": [
            {"id": case, "vars": {"question": q}, "assert": [{"type": "contains", "value": "Paris"}]}
            for case, q in QUESTIONS.items()
        ],
    }
    if repeat is not None:
        suite["repeat"] = repeat
    if min_pass_rate is not None:
        suite["min_pass_rate"] = min_pass_rate
    path = tmp_path / "capitals.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def gateway_file(tmp_path: Path, upstream: AgentUpstream) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(gateway_config(upstream.base_url, {"coin": "coin-30-9"})))
    return path


def llmops(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url}
    for name in ("LLMOPS_GATEWAY_URL", "LLMOPS_MASTER_KEY", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", *args], capture_output=True, text=True, timeout=180, cwd=cwd, env=env
    )


def test_a_flaky_model_is_reported_with_rates_and_the_gate_follows_the_interval(tmp_path, upstream, database_url):
    suite, config = write_suite(tmp_path), gateway_file(tmp_path, upstream)
    junit = tmp_path / "junit.xml"
    done = llmops("eval", "run", str(suite), "--gateway-config", str(config), "--database-url", database_url,
                  "--junit", str(junit), database_url=database_url, cwd=tmp_path)  # fmt: skip
    out = done.stdout
    assert done.returncode == 1, out + done.stderr  # capital-a's interval lies below 0.9
    assert len(upstream.received) == 15  # 3 cases x 5 attempts, each a real call
    assert "2/3 passed  2 flaky" in out
    # 3 of 5: rate 60%, 95% CI 23%-88%: the whole interval is under 0.9, so the gate fails.
    assert ("FAIL capital-a[ask|coin]: flaky: passed 3 of 5 (60%, 95% CI 23%-88%); "
            "the interval lies below min_pass_rate 0.9") in out  # fmt: skip
    # 4 of 5: rate 80% is under the bar, but the interval reaches 96%: not evidence, it passes, flagged.
    assert ("FLAKY capital-c[ask|coin]: flaky: passed 4 of 5 (80%, 95% CI 38%-96%); "
            "inconclusive against min_pass_rate 0.9; about") in out  # fmt: skip
    assert "capital-b" not in out  # 5 of 5: neither failed nor flaky

    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    props = {name: {p.get("name"): p.get("value") for p in c.iter("property")} for name, c in cases.items()}
    assert props["capital-a"]["rate"] == "0.6" and props["capital-a"]["flaky"] == "true"
    assert (props["capital-a"]["ci_low"], props["capital-a"]["ci_high"]) == ("0.2307", "0.8824")
    assert (props["capital-a"]["pass_at_k"], props["capital-a"]["pass_hat_k"], props["capital-a"]["k"]) == ("1.0", "0.0", "5")
    assert props["capital-b"]["status"] == "passed" and props["capital-b"]["pass_hat_k"] == "1.0"
    assert props["capital-a"]["total_tokens"] == "140" and float(props["capital-a"]["cost"]) > 0
    assert "latency_ms" in props["capital-a"]
    assert cases["capital-a"].find("failure") is not None and cases["capital-c"].find("failure") is None

    # The same run again: every attempt is answered from the cache, same verdicts, no call.
    again = llmops("eval", "run", str(suite), "--gateway-config", str(config), "--database-url", database_url,
                   "--json", database_url=database_url, cwd=tmp_path)  # fmt: skip
    run = json.loads(again.stdout)
    assert len(upstream.received) == 15 and run["parameters"]["cache_hits"] == 15
    by_case = {r["case_id"]: r for r in run["results"]}
    assert {c: r["repeat"]["passes"] for c, r in by_case.items()} == {"capital-a": 3, "capital-b": 5, "capital-c": 4}
    assert by_case["capital-c"]["repeat"]["inconclusive"] and by_case["capital-c"]["passed"]
    assert [a["passed"] for a in by_case["capital-a"]["attempts"]].count(True) == 3
    assert run["flaky"] == 2 and run["attempts"] == 15 and run["pass_rate"] == 0.8

    # Stored: `show` reads the rate back from the database.
    shown = llmops("eval", "show", run["id"], "--database-url", database_url, database_url=database_url, cwd=tmp_path)
    assert "capital-a  ask     coin   NO      flaky" in shown.stdout and "capital-c" in shown.stdout


def test_a_lower_bar_passes_on_the_same_evidence_and_repeat_comes_from_the_command_line(tmp_path, upstream):
    database_url = f"sqlite:///{tmp_path / 'llmops.db'}"
    suite, config = write_suite(tmp_path, repeat=None, min_pass_rate=0.8), gateway_file(tmp_path, upstream)
    done = llmops("eval", "run", str(suite), "--gateway-config", str(config), "--database-url", database_url,
                  "--repeat", "5", "--json", database_url=database_url, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr  # 3 of 5 reaches 0.88 >= 0.8
    run = json.loads(done.stdout)
    assert run["parameters"]["repeat"] == 5 and run["flaky"] == 2 and run["status"] == "passed"

    # Without min_pass_rate every attempt must pass: the flaky cases fail.
    suite = write_suite(tmp_path, min_pass_rate=None)
    done = llmops("eval", "run", str(suite), "--gateway-config", str(config), "--database-url", database_url,
                  database_url=database_url, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1
    assert "FAIL capital-c[ask|coin]: flaky: passed 4 of 5 (80%, 95% CI 38%-96%); every attempt must pass" in done.stdout


def test_pytest_maps_each_case_to_one_item_with_its_rate(tmp_path, upstream):
    """`pytest evals/` with repeats: one item per case, the rate in --junitxml's properties."""
    evals = tmp_path / "evals"
    evals.mkdir()
    write_suite(evals, repeat=None)  # the repeat comes from --eval-repeat
    config = gateway_file(tmp_path, upstream)
    (evals / "conftest.py").write_text((REPO / "evals" / "conftest.py").read_text())
    junit = tmp_path / "pytest.xml"
    database_url = f"sqlite:///{tmp_path / 'pytest.db'}"
    env = {**os.environ, "LLMOPS_EVAL_DATABASE_URL": database_url}
    env.pop("LLMOPS_GATEWAY_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "--eval-gateway-config", str(config),
         "--eval-repeat", "5", f"--junitxml={junit}", "-q", "-o", "testpaths=evals"],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "1 failed, 2 passed" in out
    assert "flaky eval cases" in out
    assert "capitals.yaml::capital-c[ask|coin]: flaky: passed 4 of 5" in out
    assert "capital-a[ask|coin] on coin (inline:ask): flaky: passed 3 of 5 (60%, 95% CI 23%-88%)" in out
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"capital-a[ask|coin]", "capital-b[ask|coin]", "capital-c[ask|coin]"}
    props = {p.get("name"): p.get("value") for p in cases["capital-c[ask|coin]"].iter("property")}
    assert (props["rate"], props["ci_low"], props["ci_high"], props["flaky"]) == ("0.8", "0.3755", "0.9638", "true")
    assert props["runs"] == "5" and props["total_tokens"] == "140" and "cost" in props and "latency_ms" in props
    assert float(props["score"]) == pytest.approx(0.8)


def test_bad_repeat_settings_are_refused_before_any_call(tmp_path, upstream):
    database_url = f"sqlite:///{tmp_path / 'llmops.db'}"
    suite = tmp_path / "bad.yaml"
    suite.write_text(textwrap.dedent("""
        name: bad
        prompts: [{id: p, template: "x"}]
        models: [coin]
        min_pass_rate: 1.5
        cases: [{id: a}]
    """))
    done = llmops("eval", "run", str(suite), "--database-url", database_url, database_url=database_url, cwd=tmp_path)
    assert done.returncode == 1 and "min_pass_rate: Input should be less than or equal to 1" in done.stderr
    good = write_suite(tmp_path)
    done = llmops("eval", "run", str(good), "--repeat", "0", "--database-url", database_url,
                  database_url=database_url, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 1 and "repeat must be between 1 and 1000" in done.stderr


def test_a_case_whose_every_attempt_errored_fails_whatever_the_bar():
    from llmops.evaluation.runner import CaseResult, aggregate

    def attempt(error: str | None, passed: bool) -> CaseResult:
        return CaseResult("c", "p", None, "m", "m", {}, {}, None if error else "ok", error, float(passed), passed,
                          error or "")  # fmt: skip

    errored = aggregate([attempt("HTTP 500", False)] * 3, 0.2)
    assert not errored.passed and errored.error == "HTTP 500" and errored.status == "failed"
    # Some answered: the rate decides (0 of 3 reaches 0.56 >= 0.2: no evidence the case is under the bar).
    mixed = aggregate([attempt("HTTP 500", False), attempt(None, False), attempt(None, False)], 0.2)
    assert mixed.passed and mixed.error is None and mixed.repeat is not None and mixed.repeat.errors == 1


def test_compare_says_when_two_runs_made_different_numbers_of_attempts():
    from datetime import UTC, datetime

    from llmops.evaluation.reports import compare
    from llmops.evaluation.runner import RunResult

    def run(run_id: str, repeat: int) -> RunResult:
        return RunResult(run_id, "s", None, {}, [], {"repeat": repeat}, None, [], datetime.now(UTC))

    assert "the runs made 1 -> 5 attempts per case (repeat)" in compare(run("a", 1), run("b", 5)).differences
    assert not any("attempts" in d for d in compare(run("a", 5), run("b", 5)).differences)


def test_a_case_sets_its_own_repeat_and_bar_in_yaml_and_in_a_csv_file(tmp_path):
    from llmops.evaluation.runner import PreparedPrompt, inline_view, plan
    from llmops.evaluation.suites import load_suite

    (tmp_path / "more.csv").write_text("id,question,repeat,min_pass_rate\nfrom-csv,Capital?,3,0.5\n")
    (tmp_path / "s.yaml").write_text(textwrap.dedent("""
        name: s
        prompts: [{id: p, template: "{{ question }}"}]
        models: [coin]
        repeat: 2
        min_pass_rate: 0.9
        cases:
          - {id: default, vars: {question: a}}
          - {id: own, vars: {question: b}, repeat: 7, min_pass_rate: 0.6}
          - file: more.csv
    """))
    suite = load_suite(tmp_path / "s.yaml")
    prompts = [PreparedPrompt("p", "inline:p", inline_view(suite.prompts[0]))]
    assert [(t.case.id, t.repeat, t.min_pass_rate) for t in plan(suite, prompts)] == [
        ("default", 2, 0.9), ("own", 7, 0.6), ("from-csv", 3, 0.5)]  # fmt: skip
    assert [t.repeat for t in plan(suite, prompts, repeat=4)] == [4, 4, 4]  # --repeat wins
