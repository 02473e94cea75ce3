"""Differences between two versions: the template as a unified diff, configs key by key."""

from __future__ import annotations

import difflib
from typing import Any

from llmops.registry.views import PromptDiff, PromptVersionView


def template_text(view: PromptVersionView) -> str:
    """The template as lines a person can diff; chat messages become `[role]` blocks."""
    if view.kind == "text":
        return view.template or ""
    blocks = []
    for message in view.messages or []:
        head = f"[{message['role']}]" + (f" name={message['name']}" if message.get("name") else "")
        blocks.append(f"{head}\n{message['content']}")
    return "\n\n".join(blocks)


def dict_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict]:
    return {
        "added": {k: new[k] for k in new if k not in old},
        "removed": {k: old[k] for k in old if k not in new},
        "changed": {k: {"from": old[k], "to": new[k]} for k in old if k in new and old[k] != new[k]},
    }


def diff_versions(old: PromptVersionView, new: PromptVersionView) -> PromptDiff:
    a = template_text(old).splitlines(keepends=True)
    b = template_text(new).splitlines(keepends=True)
    # A last line without a newline would glue onto the next diff line.
    a = [line if line.endswith("\n") else line + "\n" for line in a]
    b = [line if line.endswith("\n") else line + "\n" for line in b]
    lines = difflib.unified_diff(a, b, fromfile=old.ref, tofile=new.ref)
    return PromptDiff(
        name=new.name,
        from_version=old.version,
        to_version=new.version,
        kind_changed=old.kind != new.kind,
        template_diff="".join(lines),
        variables_changes=dict_changes(old.variables, new.variables),
        model_config_changes=dict_changes(old.model_config, new.model_config),
    )
