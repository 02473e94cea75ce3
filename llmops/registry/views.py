"""What the registry hands out: frozen, detached from the database, JSON-ready.

Dataclasses rather than pydantic models because the public attribute `model_config`
is reserved on pydantic's BaseModel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from typing import Any


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _ToDict:
    """to_dict for the dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        if not is_dataclass(self) or isinstance(self, type):
            raise TypeError(f"{type(self).__name__} is not a dataclass instance")
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class PromptVersionView(_ToDict):
    name: str
    version: int
    kind: str  # "text" | "chat"
    template: str | None
    messages: list[dict] | None
    variables: dict[str, Any]
    model_config: dict[str, Any]
    message: str
    author: str | None
    content_hash: str
    created_at: datetime
    # Stored labels pointing here, plus "latest" when this is the highest version not archived.
    labels: list[str] = field(default_factory=list)
    archived: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class RenderedPrompt(_ToDict):
    name: str
    version: int
    kind: str
    text: str | None
    messages: list[dict] | None
    model_config: dict[str, Any]

    def as_messages(self) -> list[dict]:
        """Chat messages for an OpenAI-style call; a text prompt becomes one user message."""
        if self.messages is not None:
            return [dict(m) for m in self.messages]
        return [{"role": "user", "content": self.text or ""}]


@dataclass(frozen=True)
class PromptSummary(_ToDict):
    name: str
    description: str
    latest_version: int | None  # None when every version is archived
    version_count: int
    labels: dict[str, int]
    updated_at: datetime


@dataclass(frozen=True)
class LabelEvent(_ToDict):
    label: str
    action: str  # move | remove | rollback | archive | unarchive
    from_version: int | None
    to_version: int | None
    actor: str | None
    created_at: datetime


@dataclass(frozen=True)
class History(_ToDict):
    name: str
    description: str
    versions: list[PromptVersionView]
    events: list[LabelEvent]


@dataclass(frozen=True)
class PromptDiff(_ToDict):
    name: str
    from_version: int
    to_version: int
    kind_changed: bool
    template_diff: str  # unified diff; chat messages are compared as "[role]" blocks
    variables_changes: dict[str, dict]  # {"added": {...}, "removed": {...}, "changed": {k: {"from", "to"}}}
    model_config_changes: dict[str, dict]

    @property
    def unchanged(self) -> bool:
        return (
            not self.template_diff
            and not self.kind_changed
            and not any(any(part.values()) for part in (self.variables_changes, self.model_config_changes))
        )


@dataclass(frozen=True)
class KeptChange:
    """A file's label (or archived flag) left as the registry has it: someone else set it last."""

    subject: str  # a label, or "vN" for a version's archived flag
    registry: str
    file: str
    last: LabelEvent  # the change the file would have undone


@dataclass
class PromptSyncResult(_ToDict):
    name: str
    path: str
    # (version in the file, version in the registry) for each version created.
    created: list[tuple[int, int]] = field(default_factory=list)
    # File version numbers stored under another registry number (content already there).
    renumbered: dict[int, int] = field(default_factory=dict)
    moved: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    archived: list[int] = field(default_factory=list)
    unarchived: list[int] = field(default_factory=list)
    description_changed: bool = False
    # Labels and flags left as the registry has them: someone else set them last.
    kept: list[KeptChange] = field(default_factory=list)
    # Labels and flags moved by someone that the file now agrees with: they follow it again.
    adopted: list[str] = field(default_factory=list)
    # Changes the file asks for that the registry refused, e.g. archiving a version a kept label holds.
    blocked: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.created or self.moved or self.archived or self.unarchived or self.description_changed
        )


@dataclass
class SyncReport(_ToDict):
    prompts: list[PromptSyncResult] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(p.changed for p in self.prompts)

    @property
    def created_count(self) -> int:
        return sum(len(p.created) for p in self.prompts)
