"""Prompts as code: the YAML file format, read and written.

One prompt a file, `prompts/NAME.yaml`:

    name: summarize                 # optional; defaults to the file name, must match it
    description: Summarise a news article.
    labels:                         # label -> version number in this file
      production: 2
      staging: 3
    versions:
      - version: 1
        message: summarize the text # the commit message
        author: alice               # optional
        archived: false             # optional; true hides the version from latest/list
        model_config: {model: demo, temperature: 0.2, max_tokens: 256}
        variables: {text: null}     # name -> default; null = required. Omitted: inferred
        messages:                   # a chat template...
          - {role: system, content: You summarise news.}
          - {role: user, content: "{{ text }}"}
        # template: "..."           # ...or a text template, exactly one of the two

`llmops prompts sync` makes the registry match: an entry's number is its registry version,
so an entry edited after it was synced is a conflict, not a new version. A label follows
`labels:` unless someone moved it in the registry since a sync last set it (the sync keeps
the registry's and says so; `--apply-labels` takes the file's); `archived:` likewise.

`push` reads a single version: the same keys as one entry of `versions` (without
`version`) plus an optional `labels: [staging]`; any non-YAML file is a text template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmops.errors import InvalidInput
from llmops.registry.content import PromptContent, build_content
from llmops.registry.refs import ARCHIVED, parse_version, validate_label, validate_name
from llmops.registry.views import PromptVersionView

YAML_SUFFIXES = (".yaml", ".yml")
_VERSION_KEYS = {
    "version",
    "template",
    "messages",
    "variables",
    "model_config",
    "message",
    "author",
    "archived",
}
_FILE_KEYS = {"name", "description", "labels", "versions"}
_PUSH_KEYS = (_VERSION_KEYS - {"version", "archived"}) | {"labels", "description"}


@dataclass(frozen=True)
class FileVersion:
    version: int
    content: PromptContent
    message: str = ""
    author: str | None = None
    archived: bool = False


@dataclass(frozen=True)
class PromptFile:
    name: str
    path: Path
    description: str
    versions: list[FileVersion]
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PushInput:
    content: PromptContent
    message: str = ""
    author: str | None = None
    labels: list[str] = field(default_factory=list)
    description: str | None = None


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None


def _content(entry: dict, where: str) -> PromptContent:
    try:
        return build_content(
            template=entry.get("template"),
            messages=entry.get("messages"),
            variables=entry.get("variables"),
            model_config=entry.get("model_config"),
        )
    except InvalidInput as exc:
        raise type(exc)(f"{where}: {exc.message}") from None


def _optional_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise InvalidInput(f"{what} must be a string")
    return str(value)


def read_prompt_file(path: str | Path) -> PromptFile:
    path = Path(path)
    data = _load_yaml(path)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping with name, description, versions, labels")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise InvalidInput(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_FILE_KEYS)}")
    name = str(data.get("name") or path.stem)
    validate_name(name)
    if name != path.stem:
        raise InvalidInput(f"{path}: prompt name {name!r} must match the file name ({name}.yaml)")
    raw_versions = data.get("versions")
    if not isinstance(raw_versions, list) or not raw_versions:
        raise InvalidInput(f"{path}: versions must be a non-empty list")
    versions: list[FileVersion] = []
    seen: set[int] = set()
    for position, entry in enumerate(raw_versions, 1):
        if not isinstance(entry, dict):
            raise InvalidInput(f"{path}: version entry {position} must be a mapping")
        unknown = set(entry) - _VERSION_KEYS
        if unknown:
            raise InvalidInput(f"{path}: version entry {position} has unknown keys {sorted(unknown)}")
        number = parse_version(entry.get("version", position))
        if number in seen:
            raise InvalidInput(f"{path}: version {number} appears twice")
        seen.add(number)
        archived = entry.get("archived", False)
        if not isinstance(archived, bool):
            raise InvalidInput(f"{path}: version {number}: archived must be true or false")
        versions.append(
            FileVersion(
                version=number,
                content=_content(entry, f"{path}: version {number}"),
                message=_optional_str(entry.get("message"), "message") or "",
                author=_optional_str(entry.get("author"), "author"),
                archived=archived,
            )
        )
    raw_labels = data.get("labels") or {}
    if not isinstance(raw_labels, dict):
        raise InvalidInput(f"{path}: labels must map a label to a version number")
    labels: dict[str, int] = {}
    for label, number in raw_labels.items():
        validate_label(str(label), settable=True)
        if label == ARCHIVED:
            raise InvalidInput(f"{path}: mark archived versions with `archived: true` in their entry")
        number = parse_version(number)
        if number not in seen:
            raise InvalidInput(f"{path}: label {label!r} points at version {number}, which the file lacks")
        labels[str(label)] = number
    for label, number in labels.items():
        if any(v.version == number and v.archived for v in versions):
            raise InvalidInput(f"{path}: label {label!r} points at archived version {number}")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise InvalidInput(f"{path}: description must be a string")
    return PromptFile(name=name, path=path, description=description, versions=versions, labels=labels)


def prompt_files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if directory.is_file():
        return [directory]
    if not directory.is_dir():
        raise InvalidInput(f"{directory}: no such directory")
    return sorted(p for p in directory.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())


def read_push_file(path: str | Path) -> PushInput:
    """One version to push: a YAML version entry, or any other file as a text template."""
    path = Path(path)
    if path.suffix not in YAML_SUFFIXES:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"{path}: no such file") from None
        return PushInput(content=_content({"template": text}, str(path)))
    data = _load_yaml(path)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: expected a mapping with template or messages")
    if "versions" in data:
        raise InvalidInput(f"{path} holds a whole prompt (versions:); use `llmops prompts sync` for it")
    unknown = set(data) - _PUSH_KEYS
    if unknown:
        raise InvalidInput(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_PUSH_KEYS)}")
    labels = data.get("labels") or []
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list):
        raise InvalidInput(f"{path}: labels must be a list of label names")
    return PushInput(
        content=_content(data, str(path)),
        message=_optional_str(data.get("message"), "message") or "",
        author=_optional_str(data.get("author"), "author"),
        labels=[str(label) for label in labels],
        description=_optional_str(data.get("description"), "description"),
    )


FILE_HEADER = (
    "# llmops prompt file: edit, then run `llmops prompts sync prompts/`.\n"
    "# Versions are immutable: add a new entry instead of editing one; labels may move.\n"
)


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings so templates read as they are written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as people write YAML by hand.
        return super().increase_indent(flow, False)


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def dump_prompt(
    name: str, description: str, versions: list[PromptVersionView], labels: dict[str, int]
) -> str:
    """The file for one prompt, in a fixed key order so export → sync → export is stable."""
    entries = []
    for view in sorted(versions, key=lambda v: v.version):
        entry: dict[str, Any] = {"version": view.version, "message": view.message}
        if view.author:
            entry["author"] = view.author
        if view.archived:
            entry["archived"] = True
        entry["model_config"] = view.model_config
        entry["variables"] = view.variables
        if view.kind == "text":
            entry["template"] = view.template
        else:
            entry["messages"] = view.messages
        entries.append(entry)
    document: dict[str, Any] = {"name": name, "description": description}
    document["labels"] = dict(sorted(labels.items()))
    document["versions"] = entries
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return FILE_HEADER + body
