"""The small value types every check and the pipeline share."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Literal

from llmops.errors import InvalidInput, LLMOpsError

Action = Literal["block", "redact", "flag"]
Stage = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of the scanned text to replace when the check's action is redact."""

    start: int
    end: int
    placeholder: str


@dataclass(slots=True)
class Detection:
    """What one check found in one text. `labels` never contain the matched text itself."""

    score: float
    labels: tuple[str, ...] = ()
    spans: list[Span] = field(default_factory=list)
    matched: int = 0
    # A whole new text, for plugins that redact their own way instead of giving spans.
    replacement: str | None = None

    def __post_init__(self) -> None:
        if not self.matched:
            self.matched = len(self.spans) or 1


class GuardrailBlocked(LLMOpsError):
    """A guardrail stopped a request or a reply. The gateway answers 400 `guardrail_blocked`.

    `check` names the check; `verdicts` is what to record in the ledger. The message is
    written for the end user and never repeats what was matched.
    """

    status = 400
    type = "invalid_request_error"
    code = "guardrail_blocked"

    def __init__(self, check: str, message: str, verdicts: list[dict[str, Any]] | None = None):
        super().__init__(f"{message} (guardrail: {check})", param=check)
        self.check = check
        self.verdicts = verdicts or []


class GuardrailConfigError(InvalidInput):
    """The guardrails configuration is wrong (unknown check, bad option, impossible action)."""

    code = "invalid_guardrails_config"


def apply_spans(text: str, spans: list[Span]) -> str:
    """Replace spans with their placeholders; overlapping spans merge (the first one's
    placeholder names the union), so no part of either match survives."""
    if not spans:
        return text
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            if span.end > last.end:
                merged[-1] = Span(last.start, span.end, last.placeholder)
            continue
        merged.append(span)
    parts: list[str] = []
    last = 0
    for span in merged:
        parts.append(text[last : span.start])
        parts.append(span.placeholder)
        last = span.end
    parts.append(text[last:])
    return "".join(parts)


class Claims:
    """Non-overlapping character ranges already claimed by a match (O(log n) per check),
    so that a text with thousands of matches stays linear."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, end)
        return i > 0 and self._ends[i - 1] > start

    def claim(self, start: int, end: int) -> bool:
        """Claim the range if it overlaps no earlier claim; True if claimed."""
        if self.overlaps(start, end):
            return False
        i = bisect.bisect_left(self._starts, start)
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        return True
