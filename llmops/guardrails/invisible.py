"""Invisible and control characters: zero-width characters, bidi overrides, Unicode tag
characters (which can spell a hidden sentence), and C0/C1 controls other than tab and
newlines. Redaction removes them.

Zero-width joiners and non-joiners are part of emoji sequences and of Indic and Persian
writing; they are only reported when they sit next to an ASCII letter, where they serve
no purpose but splitting a word so that filters miss it.
"""

from __future__ import annotations

import re
from typing import ClassVar

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection, Span

# Every character this check knows, in one class: one pass over the text finds them all.
_ANY_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u034f\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\u3164\ufeff\uffa0\U000e0000-\U000e007f\U000e0100-\U000e01ef]+"
)
_JOINERS = frozenset("\u200c\u200d")
# The cheap test that a text holds none of them, before the regex reads it character by
# character: ASCII bytes other than printable ones and whitespace (deleted at C speed); in
# other text, str.isprintable (false for every control and format character) plus the few
# invisible characters Unicode calls printable (Hangul fillers, combining marks), and the
# astral variation selectors, looked for only in a text with astral characters.
_KEEP_ASCII = bytes(range(0x20, 0x7F)) + b"\t\n\r"
_PRINTABLE_INVISIBLE = tuple(
    chr(c) for c in range(0x80, 0x10000) if chr(c).isprintable() and _ANY_INVISIBLE.match(chr(c))
)


def may_hold_invisible(text: str, is_ascii: bool) -> bool:
    if is_ascii:
        return bool(text.encode("ascii").translate(None, _KEEP_ASCII))
    if not text.replace("\n", " ").replace("\t", " ").replace("\r", " ").isprintable():
        return True
    if any(ch in text for ch in _PRINTABLE_INVISIBLE):
        return True
    return len(text.encode("utf-16-le", "surrogatepass")) > 2 * len(text)  # astral: maybe a selector
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c")


def _kind(ch: str) -> str:
    code = ord(ch)
    if code < 0xA0:
        return "control"
    if ch in _BIDI:
        return "bidi"
    if 0xE0000 <= code <= 0xE007F:
        return "tag"
    if code >= 0xE0100:
        return "variation_selector"
    return "zero_width"


def _is_ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


class InvisibleOptions(CheckOptions):
    # Bidi controls are legitimate in right-to-left text; allow them if you serve it.
    allow_bidi: bool = False


@register
class InvisibleCharsCheck(Check):
    name: ClassVar[str] = "invisible_chars"
    redactable = True
    block_message = "The request was blocked: it contains invisible or control characters."
    Options = InvisibleOptions

    def scan(self, view: TextView) -> Detection | None:
        text = view.text
        if not may_hold_invisible(text, view.is_ascii):
            return None
        allow_bidi = self.options.allow_bidi  # type: ignore[attr-defined]
        spans: list[Span] = []
        labels: set[str] = set()
        for m in _ANY_INVISIBLE.finditer(text):
            start, end = m.span()
            for i in range(start, end):
                ch = text[i]
                if ch in _JOINERS:
                    # Joiners belong in emoji and in Indic or Persian words; next to an
                    # ASCII letter or digit they only split a word.
                    before = text[i - 1] if i else ""
                    after = text[i + 1] if i + 1 < len(text) else ""
                    if not (_is_ascii_alnum(before) or _is_ascii_alnum(after)):
                        continue
                kind = _kind(ch)
                if kind == "bidi" and allow_bidi:
                    continue
                if spans and spans[-1].end == i:
                    spans[-1] = Span(spans[-1].start, i + 1, "")
                else:
                    spans.append(Span(i, i + 1, ""))
                labels.add(kind)
        if not spans:
            return None
        return Detection(score=1.0, labels=tuple(sorted(labels)), spans=spans, matched=len(spans))
