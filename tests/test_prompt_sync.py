"""`llmops prompts sync` next to people who move labels in the registry (issue 18).

The sync runs on every gateway start (scripts/run.sh), so it must never undo a label
an operator moved, must refuse a version edited after it reached the registry, and
must say which database it wrote. Driven through the CLI as typed, on a SQLite file
(the label rules are plain SQL; tests/test_registry.py covers both backends).
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
SUMMARIZE = (REPO / "prompts" / "summarize.yaml").read_text()
LLMOPS = Path(sys.executable).with_name("llmops")


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'llmops.db'}"


@pytest.fixture
def prompts(tmp_path) -> Path:
    """A copy of the repo's prompts/ the test may edit."""
    directory = tmp_path / "prompts"
    directory.mkdir()
    (directory / "summarize.yaml").write_text(SUMMARIZE)
    return directory


@pytest.fixture
def llmops(url, capsys, monkeypatch):
    """Run `llmops prompts ARGS --database-url URL` in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("LLMOPS_AUTHOR", "alice")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["prompts", *args, "--database-url", url])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def labels(url: str) -> dict[str, int]:
    return Registry(url, cache_ttl=0).list_prompts()[0].labels


def test_a_label_moved_with_the_cli_survives_the_next_starts(tmp_path):
    """`llmops prompts label summarize 1 production && scripts/run.sh`, twice over, as typed."""
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "summarize.yaml").write_text(SUMMARIZE)
    env = {**os.environ, "LLMOPS_DATABASE_URL": "sqlite:///./llmops.db", "LLMOPS_AUTHOR": "alice"}
    script = (
        f"{LLMOPS} prompts sync prompts/ && {LLMOPS} prompts label summarize 1 production"
        f" && {LLMOPS} prompts sync prompts/ && {LLMOPS} prompts sync prompts/"
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"syncing prompts/ into sqlite:///{tmp_path}/llmops.db (a new database)"
    assert lines[3] == f"syncing prompts/ into sqlite:///{tmp_path}/llmops.db"
    kept = lines[4]
    assert kept.startswith(
        "summarize: production is 1 in the registry, 2 in prompts/summarize.yaml; "
        "kept the registry's (moved by alice at "
    )
    assert kept.endswith("); use --apply-labels to take the file's")
    assert lines[5:] == [lines[3], kept]  # the next start neither moves it nor goes quiet about it
    assert labels(f"sqlite:///{tmp_path / 'llmops.db'}") == {"production": 1, "staging": 3}


def test_apply_labels_takes_the_files_labels(llmops, url, prompts):
    llmops("sync", str(prompts))
    llmops("label", "summarize", "1", "production")
    llmops("label", "summarize", "3", "staging", "--remove")  # a person's removal counts too
    code, out, _ = llmops("sync", str(prompts), "--apply-labels")
    assert code == 0
    assert out.splitlines()[1] == "summarize: production: 1 -> 2; staging: - -> 3"
    assert labels(url) == {"production": 2, "staging": 3}
    # Set by a sync again, they follow the file from now on without the flag.
    edit(prompts / "summarize.yaml", "production: 2", "production: 3")
    assert llmops("sync", str(prompts))[1].splitlines()[1] == "summarize: production: 2 -> 3"


def test_a_label_no_one_moved_follows_the_file(llmops, url, prompts):
    llmops("sync", str(prompts))
    llmops("label", "summarize", "3", "canary")  # a label the file never named: none of its business
    edit(prompts / "summarize.yaml", "  production: 2\n  staging: 3\n", "  production: 3\n")
    code, out, _ = llmops("sync", str(prompts))
    assert code == 0
    assert out.splitlines()[1:] == ["summarize: production: 2 -> 3; staging: 3 -> removed"]
    assert labels(url) == {"canary": 3, "production": 3}
    assert llmops("sync", str(prompts), "--apply-labels")[1].splitlines()[1:] == ["summarize: up to date"]
    events = json.loads(llmops("history", "summarize", "--json")[1])["events"]
    assert [(e["label"], e["action"], e["actor"]) for e in events[-2:]] == [
        ("production", "sync", "alice"),
        ("staging", "sync", "alice"),
    ]


def test_a_file_that_catches_up_with_a_move_gets_the_label_back(llmops, url, prompts):
    llmops("sync", str(prompts))
    llmops("label", "summarize", "3", "production")
    edit(prompts / "summarize.yaml", "production: 2", "production: 3")
    assert llmops("sync", str(prompts))[1].splitlines()[1] == "summarize: production follows the file again"
    edit(prompts / "summarize.yaml", "production: 3", "production: 1")
    assert llmops("sync", str(prompts))[1].splitlines()[1] == "summarize: production: 3 -> 1"


def test_an_edited_version_is_a_conflict_and_nothing_is_written(llmops, url, prompts):
    llmops("sync", str(prompts))
    before = Registry(url).history("summarize")
    path = prompts / "summarize.yaml"
    edit(path, "content: Summarize the text.", "content: Summarise the text, briefly.")
    edit(path, "production: 2", "production: 4")
    path.write_text(path.read_text() + "  - version: 4\n    template: 'Bullets: {{ text }}'\n")
    (prompts / "other.yaml").write_text("versions:\n  - template: 'fine on its own'\n")
    code, out, err = llmops("sync", str(prompts))
    assert code == 1
    assert out.startswith("syncing ")
    assert err == (
        f"conflict: summarize v1 in {path} differs from the registry's summarize:1 in message 1 (system); "
        "versions are immutable: add the change as a new version (v5)\n"
        "error: 1 version conflict(s); nothing was synced\n"
    )
    after = Registry(url).history("summarize")
    assert [v.version for v in after.versions] == [1, 2, 3]
    assert after.events == before.events
    assert [p.name for p in Registry(url).list_prompts()] == ["summarize"]  # other.yaml waited too


def test_sync_outside_a_project_refuses_rather_than_create_a_database(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMOPS_DATABASE_URL", raising=False)
    prompts = str(REPO / "prompts")
    assert main(["prompts", "sync", prompts]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: no database to sync into: LLMOPS_DATABASE_URL is not set and {tmp_path}")
    assert "--database-url sqlite:///./llmops.db creates one here" in err
    assert list(tmp_path.iterdir()) == []

    # Told where, it creates the database and says which; from then on ./llmops.db is found.
    assert main(["prompts", "sync", prompts, "--database-url", "sqlite:///./llmops.db"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        f"syncing {prompts} into sqlite:///{tmp_path}/llmops.db (a new database)"
    )
    assert main(["prompts", "sync", prompts]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"syncing {prompts} into sqlite:///{tmp_path}/llmops.db",
        "summarize: up to date",
    ]


def test_sync_names_a_server_database_without_its_password(capsys, monkeypatch):
    monkeypatch.setenv("LLMOPS_DATABASE_URL", "postgresql://someone:hunter2@127.0.0.1:1/llmops")
    assert main(["prompts", "sync", str(REPO / "prompts")]) == 1  # nothing listens there
    out, err = capsys.readouterr()
    assert out == f"syncing {REPO / 'prompts'} into postgresql://someone:***@127.0.0.1:1/llmops\n"
    assert "hunter2" not in out + err


def test_a_version_archived_in_the_registry_stays_archived(llmops, url, prompts):
    llmops("sync", str(prompts))
    llmops("label", "summarize", "1", "archived")
    out = llmops("sync", str(prompts))[1].splitlines()
    assert out[1].startswith(
        f"summarize: v1 is archived in the registry, not archived in {prompts / 'summarize.yaml'}; "
        "kept the registry's (archived by alice at "
    )
    assert Registry(url).get("summarize:1").archived
    assert llmops("sync", str(prompts), "--apply-labels")[1].splitlines()[1] == "summarize: unarchived v1"
    assert not Registry(url).get("summarize:1").archived
