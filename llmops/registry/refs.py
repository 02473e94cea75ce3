"""Prompt references: `name`, `name@label` and `name:version`.

`name` alone means the `production` label when the prompt has one, else `latest`:
an application that names a prompt without a label gets what was released, and a
prompt nobody has released yet still resolves while it is being written.

`latest` is implied (the highest version not archived) and cannot be set. `archived`
marks any number of versions rather than pointing at one, so `name@archived` is not a
reference; read an archived version by its number, `name:VERSION`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmops.errors import InvalidInput

LATEST = "latest"
PRODUCTION = "production"
ARCHIVED = "archived"

# No `@`, `:` or `/` in names: they delimit references and name files in prompts/.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class PromptRef:
    name: str
    label: str | None = None
    version: int | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.label is not None:
            return f"{self.name}@{self.label}"
        return self.name


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"invalid prompt name {name!r}: use letters, digits, '.', '_' or '-' (at most 128), "
            "starting with a letter or digit"
        )
    return name


def validate_label(label: str, *, settable: bool = False) -> str:
    if not isinstance(label, str) or not _LABEL.match(label):
        raise InvalidInput(
            f"invalid label {label!r}: use letters, digits, '.', '_' or '-' (at most 64), starting with a letter"
        )
    if settable and label == LATEST:
        raise InvalidInput("'latest' is implied (the highest version not archived) and cannot be set")
    return label


def parse_version(value: str | int) -> int:
    try:
        version = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"invalid version {value!r}: expected a positive integer") from None
    if version < 1:
        raise InvalidInput(f"invalid version {value!r}: expected a positive integer")
    return version


def parse_ref(ref: str) -> PromptRef:
    """Parse `name`, `name@label` or `name:version`; raises InvalidInput on anything else."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput("empty prompt reference: expected name, name@label or name:version")
    ref = ref.strip()
    if "@" in ref and ":" in ref:
        raise InvalidInput(f"invalid prompt reference {ref!r}: use name@label or name:version, not both")
    if "@" in ref:
        name, _, label = ref.partition("@")
        validate_name(name)
        validate_label(label)
        if label == ARCHIVED:
            raise InvalidInput(
                f"{ref!r}: 'archived' marks several versions; read one by number, {name}:VERSION"
            )
        return PromptRef(name=name, label=label)
    if ":" in ref:
        name, _, version = ref.partition(":")
        validate_name(name)
        return PromptRef(name=name, version=parse_version(version))
    return PromptRef(name=validate_name(ref))
