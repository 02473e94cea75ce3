"""`llmops experiments ...` as an operator types it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from llmops import Registry
from llmops.cli import main
from llmops.experiments.service import ExperimentService
from llmops.settings import get_settings


@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("LLMOPS_DATABASE_URL", url)
    get_settings.cache_clear()
    reg = Registry(url)
    for i in range(1, 4):
        reg.create_version("summarize", template=f"Summarize ({i}): {{{{ text }}}}")
    reg.set_label("summarize", 1, "production")
    reg.set_label("summarize", 2, "staging")
    yield url
    get_settings.cache_clear()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_list_pause_resume_stop(cli_db, capsys):
    code, out, _ = _run(
        capsys,
        "experiments",
        "create",
        "sum-ab",
        "--prompt",
        "summarize",
        "--variant",
        "control=production:50",
        "--variant",
        "candidate=v3:50",
        "--unit",
        "session",
    )
    assert code == 0 and "sum-ab: running on prompt summarize (unit session" in out
    assert "candidate: summarize:3  weight 50" in out
    code, out, _ = _run(capsys, "experiments", "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["name"], listed["unit"], [v["ref"] for v in listed["variants"]]) == (
        "sum-ab",
        "session",
        ["summarize@production", "summarize:3"],
    )
    assert _run(capsys, "experiments", "pause", "sum-ab")[1].strip() == "sum-ab: paused"
    assert ExperimentService(cli_db).active_for("summarize") is None
    assert _run(capsys, "experiments", "resume", "sum-ab")[1].strip() == "sum-ab: running"
    code, out, _ = _run(capsys, "experiments", "list")
    assert "sum-ab" in out and "control=production:50 candidate=v3:50" in out
    assert _run(capsys, "experiments", "stop", "sum-ab")[1].strip() == "sum-ab: stopped"

    code, _, err = _run(capsys, "experiments", "resume", "sum-ab")
    assert code == 1 and err.strip() == "error: experiment 'sum-ab' is stopped; it cannot become running"
    code, _, err = _run(
        capsys,
        "experiments",
        "create",
        "x",
        "--prompt",
        "summarize",
        "--variant",
        "control=v9",
        "--variant",
        "b=v1",
    )
    assert code == 1 and "variant control: summarize:9 does not resolve" in err
    code, _, err = _run(capsys, "experiments", "create", "x", "--prompt", "summarize", "--variant", "oops")
    assert code == 1 and "NAME=REF[:WEIGHT]" in err


def test_feedback_report_and_promote(cli_db, capsys):
    from sqlalchemy import insert

    from llmops.db import get_engine
    from llmops.governance.ledger_models import LedgerRow

    _run(
        capsys,
        "experiments",
        "create",
        "sum-ab",
        "--prompt",
        "summarize",
        "--variant",
        "control=production",
        "--variant",
        "candidate=staging",
    )
    rng = random.Random(3)
    rows = [
        {
            "id": f"{v}-{i}",
            "created_at": datetime.now(UTC),
            "experiment": "sum-ab",
            "variant": v,
            "prompt_version": 1 if v == "control" else 2,
            "outcome": "success",
            "latency_ms": rng.uniform(100, 300),
            "cost": 0.001 if v == "control" else 0.0012,
            "input_tokens": 100,
            "output_tokens": 20,
        }
        for v in ("control", "candidate")
        for i in range(50)
    ]
    with get_engine(cli_db).begin() as conn:
        conn.execute(insert(LedgerRow.__table__), rows)
    for i in range(50):
        assert (
            _run(capsys, "experiments", "feedback", f"control-{i}", "--score", str(rng.uniform(0.3, 0.7)))[0]
            == 0
        )
        flag = "--up" if rng.random() < 0.8 else "--down"
        assert _run(capsys, "experiments", "feedback", f"candidate-{i}", flag, "--comment", "ok")[0] == 0
    code, _, err = _run(capsys, "experiments", "feedback", "control-1", "--score", "2")
    assert code == 1 and "between 0 and 1" in err

    code, out, _ = _run(capsys, "experiments", "report", "sum-ab")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "experiment sum-ab on summarize: running, unit user, allocation fixed, control control"
    assert lines[1].split()[:3] == ["VARIANT", "REF", "VERSIONS"]
    assert lines[2].split()[:5] == ["control", "summarize@production", "1", "50%", "50"]
    assert lines[3].split()[:5] == ["candidate", "summarize@staging", "2", "50%", "50"]
    assert lines[-1].startswith("candidate: feedback +") and "cost +20%" in lines[-1]
    code, out, _ = _run(capsys, "experiments", "report", "sum-ab", "--json")
    report = json.loads(out)
    assert report["summary"] == [lines[-1]]

    code, out, _ = _run(capsys, "experiments", "promote", "sum-ab", "candidate")
    assert code == 0 and out.strip() == "summarize@production -> version 2 (candidate); sum-ab stopped"
    assert Registry(cli_db).get("summarize").version == 2


def test_feedback_for_an_unknown_request_fails_as_the_http_api_does(cli_db):
    """POST /v1/feedback answers 404 for an id the ledger lacks; the command exits 1."""
    from llmops.experiments.feedback import feedback_for_request

    proc = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "experiments", "feedback", "req-mistyped", "--up"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "LLMOPS_DATABASE_URL": cli_db},
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == "error: no request 'req-mistyped' in the ledger (it may not be flushed yet)\n"
    assert feedback_for_request("req-mistyped", database_url=cli_db) == []
