"""`llmops prompts ...` as a user runs it: exit codes, one-line errors, JSON output.

Most commands run in-process through `llmops.cli.main` (each subprocess costs a
second of imports); subprocesses are kept where separate processes are the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmops import Registry
from llmops.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(database_url, capsys, monkeypatch):
    """Run `llmops prompts ARGS` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("LLMOPS_AUTHOR", "tester")
    monkeypatch.chdir(REPO)

    def run(*args: str, ok: bool = True) -> tuple[int, str, str]:
        code = main(["prompts", "--database-url", database_url, *args])
        out, err = capsys.readouterr()
        if ok:
            assert code == 0, err
        return code, out, err

    return run


def run_subprocess(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", "prompts", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sync_then_render_production_and_second_sync_is_a_no_op(database_url, cli):
    first = cli("sync", "prompts/")[1].splitlines()
    assert first[0].startswith("syncing prompts/ into ")
    assert first[1:] == ["summarize: created v1, v2, v3; production: - -> 2; staging: - -> 3"]
    assert cli("sync", "prompts/")[1].splitlines()[1:] == ["summarize: up to date"]

    done = run_subprocess(
        database_url, "render", "summarize@production", "--var", "text=Acme sold 3 million units.", "--json"
    )
    assert done.returncode == 0, done.stderr
    rendered = json.loads(done.stdout)
    assert rendered["version"] == 2 and rendered["model_config"]["model"] == "demo"
    assert [m["role"] for m in rendered["messages"]] == ["system", "user"]
    assert rendered["messages"][1]["content"] == "Article:\nAcme sold 3 million units."

    listed = json.loads(cli("list", "--json")[1])
    assert [(p["name"], p["labels"]) for p in listed] == [("summarize", {"production": 2, "staging": 3})]
    shown = json.loads(cli("show", "summarize@staging", "--json")[1])
    assert shown["version"] == 3 and shown["labels"] == ["staging", "latest"]
    diff = json.loads(cli("diff", "summarize", "1", "2", "--json")[1])
    assert "+Summarize the news article in at most three sentences.\n" in diff["template_diff"]
    assert diff["model_config_changes"] == {"added": {}, "removed": {}, "changed": {}}


def test_push_label_rollback_and_history(cli, tmp_path):
    (tmp_path / "v1.txt").write_text("Translate to {{ lang }}: {{ text }}")
    (tmp_path / "v2.yaml").write_text(
        "message: formal\nmodel_config: {model: demo, temperature: 0}\n"
        "variables: {lang: French, text: null}\n"
        "messages:\n  - {role: system, content: 'Translate formally to {{ lang }}.'}\n"
        "  - {role: user, content: '{{ text }}'}\n"
    )
    assert (
        cli("push", "tr", "--file", str(tmp_path / "v1.txt"), "-m", "plain", "--label", "production")[1]
        == "created tr:1 (production, latest)\n"
    )
    assert cli("push", "tr", "--file", str(tmp_path / "v2.yaml"))[1] == "created tr:2 (latest)\n"
    cli("label", "tr", "2", "production")
    assert cli("render", "tr", "--var", "text=hi")[1] == (
        "[system]\nTranslate formally to French.\n\n[user]\nhi\n\n"
    )
    assert cli("rollback", "tr", "production")[1] == "tr@production -> 1\n"
    assert cli("render", "tr", "--var", "text=hi", "--var", "lang=German")[1] == ("Translate to German: hi\n")
    history = json.loads(cli("history", "tr", "--json")[1])
    assert [(v["version"], v["message"], v["author"]) for v in history["versions"]] == [
        (1, "plain", "tester"),
        (2, "formal", "tester"),
    ]
    assert [(e["action"], e["from_version"], e["to_version"], e["actor"]) for e in history["events"]] == [
        ("move", None, 1, "tester"),
        ("move", 1, 2, "tester"),
        ("rollback", 2, 1, "tester"),
    ]


def test_errors_are_one_line_without_traceback(database_url, cli, tmp_path):
    (tmp_path / "evil.txt").write_text("{{ ''.__class__.__mro__ }}")
    (tmp_path / "two.txt").write_text("{{ greeting }}, {{ name }}! {{ extra | default('') }}")
    cli("push", "evil", "--file", str(tmp_path / "evil.txt"))
    cli("push", "two", "--file", str(tmp_path / "two.txt"))
    cases = {
        (
            "render",
            "evil",
        ): "error: unsafe template operation refused in evil:1: access to attribute '__class__'",
        ("render", "two", "--var", "extra=1"): "error: two:1 is missing variables: greeting, name",
        ("show", "nothing@production"): "error: prompt 'nothing' not found",
        ("show", "two:5"): "error: prompt 'two' has no version 5",
        ("show", "two@a:1"): "error: invalid prompt reference",
        ("push", "two", "--file", "missing.yaml"): "error: missing.yaml: no such file",
        ("label", "two", "1", "latest"): "error: 'latest' is implied",
    }
    for args, start in cases.items():
        code, _, err = cli(*args, ok=False)
        assert code == 1, args
        assert err.startswith(start) and err.count("\n") == 1, (args, err)
    # The same through a real process: one line on stderr, no traceback.
    done = run_subprocess(database_url, "render", "two")
    assert (done.returncode, done.stderr) == (1, "error: two:1 is missing variables: greeting, name\n")
    # Failures that are not the registry's own, too: a database that is away, a directory given as a file.
    done = run_subprocess("postgresql://someone:hunter2@127.0.0.1:1/llmops", "list")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: the database") and "Connection refused" in done.stderr
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr
    code, _, err = cli("push", "two", "--file", str(tmp_path), ok=False)
    assert code == 1 and err.startswith("error: Is a directory") and err.count("\n") == 1


def test_concurrent_pushes_get_distinct_consecutive_versions(database_url, tmp_path):
    Registry(database_url).create_version("busy", template="existing {{ x }}")
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url}
    procs = []
    for i in range(8):
        path = tmp_path / f"v{i}.txt"
        path.write_text(f"variant {i}: {{{{ x }}}}")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "llmops.cli",
                    "prompts",
                    "push",
                    "busy",
                    "--file",
                    str(path),
                    "--json",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outputs]
    numbers = sorted(json.loads(out)["version"] for out, _ in outputs)
    assert numbers == list(range(2, 10))
    stored = {v.version: v.template for v in Registry(database_url).history("busy").versions}
    assert sorted(stored) == list(range(1, 10))
    assert sorted(stored.values())[1:] == [f"variant {i}: {{{{ x }}}}" for i in range(8)]
