"""The prompt registry through its Python API, on SQLite and Postgres."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmops import Registry
from llmops.errors import Conflict, InvalidInput, NotFound, TemplateError
from llmops.registry.refs import PromptRef, parse_ref
from llmops.registry.service import SyncConflict

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"
CHAT = [
    {"role": "system", "content": "You summarise {{ topic }}."},
    {"role": "user", "content": "{{ text }}"},
]


def test_parse_ref_forms_and_errors():
    assert parse_ref("summarize") == PromptRef("summarize")
    assert parse_ref("summarize@staging") == PromptRef("summarize", label="staging")
    assert parse_ref("summarize:3") == PromptRef("summarize", version=3)
    for bad in ["", "a@b:1", "summarize:0", "summarize:x", "sum/marize", "summarize@archived", "summarize@"]:
        with pytest.raises(InvalidInput):
            parse_ref(bad)


def test_versions_are_numbered_and_references_resolve(database_url):
    reg = Registry(database_url)
    v1 = reg.create_version("greet", template="Hello {{ name }}!", message="first", author="ann")
    v2 = reg.create_version(
        "greet",
        messages=CHAT,
        variables={"topic": "news", "text": None},
        model_config={"model": "demo", "temperature": 0.2},
        message="chat now",
        author="bob",
    )
    assert (v1.version, v1.kind, v1.variables) == (1, "text", {"name": None})
    assert (v2.version, v2.kind, v2.messages) == (2, "chat", CHAT)
    assert v1.content_hash != v2.content_hash and v2.created_at.tzinfo is not None

    # No production label yet: the bare name means latest.
    assert reg.get("greet").version == 2
    reg.set_label("greet", 1, "production", actor="ann")
    assert reg.get("greet").version == 1
    assert reg.get("greet@latest").version == 2
    assert reg.get("greet@production").labels == ["production"]
    old = reg.get("greet:1")
    assert (old.template, old.message, old.author, old.content_hash) == (
        "Hello {{ name }}!",
        "first",
        "ann",
        v1.content_hash,
    )

    with pytest.raises(NotFound, match="no version 7"):
        reg.get("greet:7")
    with pytest.raises(NotFound, match="no label 'staging'"):
        reg.get("greet@staging")
    with pytest.raises(NotFound, match="prompt 'nope' not found"):
        reg.get("nope")
    with pytest.raises(InvalidInput, match="exactly one of template"):
        reg.create_version("greet", template="x", messages=CHAT)
    with pytest.raises(TemplateError, match="syntax error"):
        reg.create_version("greet", template="{% if %}")
    assert [p.name for p in reg.list_prompts()] == ["greet"]
    assert reg.list_prompts()[0].labels == {"production": 1}


def test_rollback_walks_back_and_history_records_every_move(database_url):
    reg = Registry(database_url)
    for i in range(3):
        reg.create_version("p", template=f"v{i + 1} {{{{ x }}}}")
    for version in (1, 2, 3):
        reg.set_label("p", version, "production", actor="ops")
    assert reg.rollback("p", "production", actor="oncall").version == 2
    assert reg.rollback("p", "production").version == 1
    with pytest.raises(Conflict, match="no earlier target"):
        reg.rollback("p", "production")
    with pytest.raises(Conflict, match="never moved"):
        reg.rollback("p", "staging")

    events = [(e.label, e.action, e.from_version, e.to_version, e.actor) for e in reg.history("p").events]
    assert events == [
        ("production", "move", None, 1, "ops"),
        ("production", "move", 1, 2, "ops"),
        ("production", "move", 2, 3, "ops"),
        ("production", "rollback", 3, 2, "oncall"),
        ("production", "rollback", 2, 1, None),
    ]
    assert [v.version for v in reg.history("p").versions] == [1, 2, 3]


def test_archived_versions_are_hidden_but_readable(database_url):
    reg = Registry(database_url)
    for i in range(3):
        reg.create_version("p", template=f"v{i + 1}")
    reg.set_label("p", 2, "production")
    with pytest.raises(Conflict, match="labelled production"):
        reg.set_label("p", 2, "archived")
    reg.set_label("p", 3, "archived")
    assert reg.get("p@latest").version == 2
    assert reg.list_prompts()[0].latest_version == 2
    archived = reg.get("p:3")
    assert archived.archived and archived.template == "v3"
    with pytest.raises(Conflict, match="archived"):
        reg.set_label("p", 3, "staging")
    assert reg.rollback("p", "archived") is None
    assert reg.get("p@latest").version == 3 and not reg.get("p:3").archived


def test_render_is_sandboxed_and_names_every_missing_variable(database_url):
    reg = Registry(database_url)
    reg.create_version("chat", messages=CHAT, variables={"topic": "news", "text": None, "tone": None})
    reg.create_version("two", template="{{ a }} and {{ b }}{% for x in items %}{{ x }}{% endfor %}")

    rendered = reg.render("chat", {"text": "Rates rose 0.25%."})
    assert rendered.messages == [
        {"role": "system", "content": "You summarise news."},
        {"role": "user", "content": "Rates rose 0.25%."},
    ]
    assert rendered.text is None and rendered.version == 1
    assert reg.render("two", {"a": 1, "b": 2, "items": [3, 4]}).text == "1 and 234"

    with pytest.raises(TemplateError) as missing:
        reg.render("two", {"b": 1})
    assert str(missing.value) == "two:1 is missing variables: a, items"

    evil = reg.create_version("evil", template="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError, match="unsafe template operation refused.*__class__"):
        reg.render(evil, {})
    reg.create_version("evil", template="{{ 'x' * 100000000 }}")
    with pytest.raises(TemplateError, match="too large"):
        reg.render("evil", {})


def test_diff_shows_template_lines_and_config_changes(database_url):
    reg = Registry(database_url)
    reg.create_version(
        "d", template="Summarize.\n{{ text }}\n", model_config={"model": "demo", "temperature": 0.2}
    )
    reg.create_version(
        "d",
        template="Summarize in three sentences.\n{{ text }}\n",
        model_config={"model": "demo", "temperature": 0.5, "max_tokens": 256},
    )
    diff = reg.diff("d", 1, 2)
    assert "-Summarize.\n" in diff.template_diff and "+Summarize in three sentences.\n" in diff.template_diff
    assert " {{ text }}\n" in diff.template_diff
    assert diff.model_config_changes == {
        "added": {"max_tokens": 256},
        "removed": {},
        "changed": {"temperature": {"from": 0.2, "to": 0.5}},
    }
    assert reg.diff("d", 2, 2).unchanged


def test_sync_is_idempotent_and_export_round_trips(database_url, tmp_path):
    reg = Registry(database_url)
    first = reg.sync(PROMPTS_DIR)
    assert first.prompts[0].created == [(1, 1), (2, 2), (3, 3)]
    assert reg.get("summarize").version == 2 and reg.get("summarize@staging").version == 3
    assert reg.get("summarize").model_config == {"model": "demo", "temperature": 0.2, "max_tokens": 256}
    assert not reg.sync(PROMPTS_DIR).changed

    exported = reg.export(tmp_path / "out")
    assert [p.name for p in exported] == ["summarize.yaml"]
    assert exported[0].read_text() == (PROMPTS_DIR / "summarize.yaml").read_text()

    # A prompt author adds v4 and promotes it, and drops the staging label.
    edited = tmp_path / "edited"
    edited.mkdir()
    text = (PROMPTS_DIR / "summarize.yaml").read_text()
    text = text.replace("  production: 2\n  staging: 3\n", "  production: 4\n")
    text += (
        "  - version: 4\n    message: bullet points\n    model_config: {model: demo}\n"
        "    template: 'Three bullet points: {{ text }}'\n"
    )
    (edited / "summarize.yaml").write_text(text)
    report = reg.sync(edited).prompts[0]
    assert report.created == [(4, 4)]
    assert report.moved == {"production": (2, 4), "staging": (3, None)}
    assert reg.render("summarize", {"text": "X"}).text == "Three bullet points: X"
    assert not reg.sync(edited).changed


def test_sync_refuses_a_file_version_whose_number_the_registry_holds_otherwise(database_url, tmp_path):
    reg = Registry(database_url)
    reg.sync(PROMPTS_DIR)
    reg.create_version("summarize", template="pushed from elsewhere")  # takes number 4
    shutil.copy(PROMPTS_DIR / "summarize.yaml", tmp_path / "summarize.yaml")
    with open(tmp_path / "summarize.yaml", "a") as f:
        f.write("  - version: 4\n    template: 'from git {{ text }}'\n")
    text = (tmp_path / "summarize.yaml").read_text().replace("staging: 3", "staging: 4")
    (tmp_path / "summarize.yaml").write_text(text)
    with pytest.raises(
        SyncConflict, match=r"summarize v4 .* differs from the registry's summarize:4 in template"
    ) as caught:
        reg.sync(tmp_path)
    assert caught.value.conflicts[0].endswith("add the change as a new version (v5)")
    assert [v.version for v in reg.history("summarize").versions] == [1, 2, 3, 4]
    assert reg.get("summarize@staging").version == 3


def test_rollback_steps_over_a_syncs_agreement_to_the_move_before(database_url, tmp_path):
    reg = Registry(database_url)
    reg.sync(PROMPTS_DIR)  # production -> 2, by the sync
    reg.set_label("summarize", 3, "production", actor="ops")
    agreeing = tmp_path / "summarize.yaml"
    agreeing.write_text(
        (PROMPTS_DIR / "summarize.yaml").read_text().replace("production: 2", "production: 3")
    )
    assert reg.sync(tmp_path).prompts[0].adopted == ["production"]
    actions = [(e.action, e.from_version, e.to_version) for e in reg.history("summarize").events]
    assert actions[-2:] == [("move", 2, 3), ("sync", 3, 3)]
    assert reg.rollback("summarize", "production").version == 2


def test_sync_rejects_a_bad_file_before_writing(database_url, tmp_path):
    reg = Registry(database_url)
    (tmp_path / "a.yaml").write_text("versions:\n  - template: ok\n")
    (tmp_path / "b.yaml").write_text("versions:\n  - template: ok\nlabels: {production: 9}\n")
    with pytest.raises(InvalidInput, match="b.yaml: label 'production' points at version 9"):
        reg.sync(tmp_path)
    assert reg.list_prompts() == []


def test_cached_lookup_sees_another_process_move_within_ttl(database_url):
    reg = Registry(database_url)
    for i in range(2):
        reg.create_version("hot", template=f"v{i + 1}")
    reg.set_label("hot", 1, "production")
    slow, fast = Registry(database_url, cache_ttl=60), Registry(database_url, cache_ttl=0.3)
    assert slow.get_cached("hot@production").version == 1
    assert fast.get_cached("hot@production").version == 1
    with pytest.raises(NotFound):
        fast.get_cached("hot@canary")

    mover = (
        f"from llmops import Registry; r = Registry({database_url!r}); "
        "r.set_label('hot', 2, 'production'); r.set_label('hot', 2, 'canary')"
    )
    subprocess.run([sys.executable, "-c", mover], check=True, timeout=120)
    assert slow.get("hot@production").version == 2  # the database has moved...
    assert slow.get_cached("hot@production").version == 1  # ...the cache serves the old value within its TTL
    time.sleep(0.4)
    assert fast.get_cached("hot@production").version == 2  # and lets it go after
    assert fast.get_cached("hot@canary").version == 2  # a cached NotFound expires too
    slow.set_label("hot", 1, "production")  # a write through a Registry clears its own cache
    assert slow.get_cached("hot@production").version == 1
