"""Banned terms and patterns from config: whole-word terms (case-insensitive by default)
and regular expressions, replaced by a placeholder on redact."""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import field_validator

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection, Span


class BannedOptions(CheckOptions):
    terms: list[str] = []
    patterns: list[str] = []
    case_sensitive: bool = False
    placeholder: str = "[REDACTED]"

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
        return value


@register
class BannedCheck(Check):
    name: ClassVar[str] = "banned"
    redactable = True
    block_message = "The request was blocked: it contains a term this service does not allow."
    Options = BannedOptions

    def __init__(self, options: BannedOptions):
        super().__init__(options)
        flags = 0 if options.case_sensitive else re.IGNORECASE
        parts = [rf"(?<!\w){re.escape(t)}(?!\w)" for t in sorted(options.terms, key=len, reverse=True) if t]
        # All terms in one alternation, longest first, so "foo bar" wins over "foo".
        self._terms = re.compile("|".join(parts), flags) if parts else None
        self._patterns = [re.compile(p, flags) for p in options.patterns]

    def scan(self, view: TextView) -> Detection | None:
        text = view.text
        placeholder = self.options.placeholder  # type: ignore[attr-defined]
        spans: list[Span] = []
        labels: set[str] = set()
        if self._terms is not None:
            for m in self._terms.finditer(text):
                spans.append(Span(m.start(), m.end(), placeholder))
                labels.add("term")
        for pattern in self._patterns:
            for m in pattern.finditer(text):
                if m.end() > m.start():
                    spans.append(Span(m.start(), m.end(), placeholder))
                    labels.add("pattern")
        if not spans:
            return None
        return Detection(score=1.0, labels=tuple(sorted(labels)), spans=spans)
