"""`pytest evals/`: suites become test items, failures show the assertion, the score and the output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_pytest(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMOPS_GATEWAY_URL", "LLMOPS_EVAL_DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def project(tmp_path: Path) -> Path:
    """A project laid out like this repository: prompts/ and evals/ with the shipped conftest."""
    shutil.copytree(REPO / "prompts", tmp_path / "prompts")
    (tmp_path / "evals").mkdir()
    shutil.copy(REPO / "evals" / "conftest.py", tmp_path / "evals" / "conftest.py")
    (tmp_path / "evals" / "news.yaml").write_text(
        textwrap.dedent(
            """
            name: news
            prompts: [summarize@production, summarize@staging]
            models: [demo]
            cases:
              - id: budget
                vars: {text: "The council approved a £2bn budget. Schools get £300m."}
                assert:
                  - {type: contains, value: "£2bn"}
              - id: invented
                vars: {text: "The council approved a £2bn budget. Schools get £300m."}
                assert:
                  - {type: contains, value: "£9bn", weight: 2}
                  - {type: not-refusal}
            """
        )
    )
    (tmp_path / "evals" / "notes.yaml").write_text("just: a yaml file that is not a suite\n")
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    return tmp_path


def test_each_case_prompt_and_model_is_an_item_and_failures_explain_themselves(tmp_path):
    root = project(tmp_path)
    done = run_pytest("evals", "-v", cwd=root)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "evals/news.yaml::budget[summarize@production|demo] PASSED" in out
    assert "evals/news.yaml::budget[summarize@staging|demo] PASSED" in out
    assert "evals/news.yaml::invented[summarize@production|demo] FAILED" in out
    assert "2 failed, 2 passed" in out
    # the failure report: which assertion, its score and reason, the weighted score, the output
    assert "FAIL contains: score 0.000, weight 2: does not contain '£9bn'" in out
    assert "ok   not-refusal: score 1.000" in out
    assert "case score 0.333" in out
    assert "output:\n  Article:" in out
    assert "Traceback" not in out


def test_a_suite_that_cannot_run_fails_each_item_with_the_reason(tmp_path):
    root = project(tmp_path)
    news = root / "evals" / "news.yaml"
    news.write_text(news.read_text().replace("summarize@staging", "nosuch@staging"))
    done = run_pytest("evals", "-q", cwd=root)
    assert done.returncode == 1
    assert "4 failed" in done.stdout
    assert done.stdout.count("the suite could not run: suite news: prompt 'nosuch@staging'") >= 4
    assert "Traceback" not in done.stdout


def test_selected_items_only_are_run_and_the_run_is_stored(tmp_path):
    root = project(tmp_path)
    database = f"sqlite:///{tmp_path / 'runs.db'}"
    done = run_pytest("evals", "-k", "budget and production", "--eval-database-url", database, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 3 deselected" in done.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "eval", "show", "last", "--json", "--database-url", database],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    run = json.loads(shown.stdout)
    assert run["suite"] == "news" and run["total"] == 1
    assert run["results"][0]["prompt_ref"] == "summarize:2"


def test_the_shipped_suites_pass_as_ci_runs_them():
    done = run_pytest("evals/", "-q", cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout
    # Without the installed plugin (the pytest11 entry point) the shipped conftest collects
    # the same items itself: a project that vendors evals/conftest.py works either way.
    conftest_only = run_pytest("-p", "no:llmops", "evals/", "-q", cwd=REPO)
    assert conftest_only.returncode == 0, conftest_only.stdout + conftest_only.stderr
    last_line = conftest_only.stdout.splitlines()[-1].split(" in ")[0]
    assert last_line == done.stdout.splitlines()[-1].split(" in ")[0]
