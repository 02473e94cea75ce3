"""The Prompts page's data: prompts, versions and labels as tables, diffs, and what a label change will do.

Label changes themselves are `Registry.set_label` and `Registry.rollback`; the
questions here are what the page asks before calling them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmops.errors import Conflict, InvalidInput
from llmops.experiments.service import ExperimentView
from llmops.registry.diff import template_text
from llmops.registry.refs import ARCHIVED, LATEST, PRODUCTION, validate_label
from llmops.registry.service import Registry
from llmops.registry.store import previous_target
from llmops.registry.views import History, PromptDiff, PromptSummary, PromptVersionView
from llmops.ui.textdiff import DiffLine, side_by_side

COMMON_LABELS = (PRODUCTION, "staging")


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def prompts_table(summaries: list[PromptSummary]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": s.name,
            "description": s.description,
            "versions": s.version_count,
            "latest": s.latest_version,
            "labels": ", ".join(f"{label}→v{version}" for label, version in s.labels.items()) or "-",
            "updated": _when(s.updated_at),
        }
        for s in summaries
    ]


def versions_table(history: History) -> list[dict[str, Any]]:
    return [
        {
            "version": v.version,
            "labels": ", ".join(v.labels) or "–",
            "archived": "yes" if v.archived else "no",
            "model": str(v.model_config.get("model", "–")),
            "message": v.message or "–",
            "author": v.author or "–",
            "created": _when(v.created_at),
        }
        for v in reversed(history.versions)
    ]


def label_events_table(history: History) -> list[dict[str, Any]]:
    return [
        {
            "when": _when(e.created_at),
            "label": e.label,
            "action": e.action,
            "from": "–" if e.from_version is None else f"v{e.from_version}",
            "to": "–" if e.to_version is None else f"v{e.to_version}",
            "by": e.actor or "–",
        }
        for e in reversed(history.events)
    ]


def current_labels(history: History) -> dict[str, int]:
    """Stored labels (not the implied `latest`) and the version each points at."""
    labels = {}
    for v in history.versions:
        for label in v.labels:
            if label != LATEST:
                labels[label] = v.version
    return dict(sorted(labels.items()))


def label_choices(history: History) -> list[str]:
    return list(dict.fromkeys([*COMMON_LABELS, *current_labels(history)]))


def version_text(view: PromptVersionView) -> str:
    return template_text(view)


@dataclass(frozen=True)
class VersionDiff:
    diff: PromptDiff
    lines: list[DiffLine]


def diff_versions(registry: Registry, name: str, old: int, new: int) -> VersionDiff:
    diff = registry.diff(name, old, new)
    lines = side_by_side(
        version_text(registry.get(f"{name}:{old}")), version_text(registry.get(f"{name}:{new}"))
    )
    return VersionDiff(diff, lines)


def config_changes_rows(changes: dict[str, dict]) -> list[dict[str, Any]]:
    """`dict_changes` output as rows: key, change, before, after."""
    rows = []
    for key, value in changes.get("added", {}).items():
        rows.append({"key": key, "change": "added", "before": "", "after": _setting(value)})
    for key, value in changes.get("removed", {}).items():
        rows.append({"key": key, "change": "removed", "before": _setting(value), "after": ""})
    for key, pair in changes.get("changed", {}).items():
        rows.append(
            {"key": key, "change": "changed", "before": _setting(pair["from"]), "after": _setting(pair["to"])}
        )
    return rows


def _setting(value: Any) -> str:
    """A config value as written in a prompt file (YAML's words), never Python's repr."""
    if value is None:
        return "null (required)"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def experiments_on_label(experiments: Sequence[ExperimentView], name: str, label: str) -> list[str]:
    """Running experiments of prompt `name` with a variant served by `label`: "ab (variant control)"."""
    return [
        f"{e.name} (variant {v.name})"
        for e in experiments
        if e.status == "running" and e.prompt_name == name
        for v in e.variants
        if v.label == label and v.version is None
    ]


def move_question(
    history: History, label: str, version: int, experiments: Sequence[ExperimentView] = ()
) -> str:
    """What moving `label` to `version` will do, in a sentence; raises when it cannot or need not.

    A running experiment serving a variant by this label is named: its variant would change
    version mid-experiment, mixing two versions in one arm."""
    validate_label(label, settable=True)
    if label == ARCHIVED:
        raise InvalidInput("archiving is not a label move; use `llmops prompts label NAME VERSION archived`")
    versions = {v.version: v for v in history.versions}
    if version not in versions:
        raise InvalidInput(f"{history.name} has no version {version}")
    if versions[version].archived:
        raise Conflict(f"version {version} is archived; unarchive it before pointing a label at it")
    current = current_labels(history).get(label)
    if current == version:
        raise Conflict(f"{history.name}@{label} already points at version {version}")
    where = f"from version {current} to version {version}" if current else f"(new label) to version {version}"
    effect = (
        " Applications calling the prompt by this label get the new version within seconds."
        if label == PRODUCTION or current
        else ""
    )
    using = experiments_on_label(experiments, history.name, label)
    if using:
        effect += (
            f" Warning: running experiment {', '.join(using)} serves this label, so that variant switches to "
            f"version {version} mid-experiment and its results mix two versions."
        )
    return f"Move {history.name}@{label} {where}?{effect}"


def rollback_question(history: History, label: str) -> tuple[str, int]:
    """What rolling `label` back will do, and the version it will point at."""
    events = [e for e in history.events if e.label == label]
    # LabelEvent carries the fields previous_target reads (action, from_version).
    target = previous_target(events)  # type: ignore[arg-type]  # raises Conflict when the label never moved
    current = current_labels(history).get(label)
    if target is None:
        raise Conflict(f"{history.name}@{label} had no earlier target to roll back to")
    now = f"version {current}" if current else "nothing"
    return (
        f"Roll {history.name}@{label} back from {now} to version {target}, where it pointed before its last move?",
        target,
    )
