"""Weighted cue lexicons: many small regexes, each tried only where its anchor word occurs.

A regex search over a whole prompt is slow in Python's `re` when the pattern does not
start with one literal (it attempts a match at every position), and a prompt must be
checked in microseconds. So each cue names anchor words, and the text's word set
(computed once per text) selects the cues worth trying:

- a *lead* cue starts with its anchor: it is matched (`pattern.match`) only at the
  positions where an anchor word occurs;
- a *window* cue contains its anchor somewhere: it is searched only within `window`
  characters around each occurrence;
- a *substring* cue (Korean, Japanese, Chinese: no spaces between words) is anchored on
  substrings and searched in the whole text, only when the text is not ASCII.

All patterns see lowercased, normalised text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from llmops.guardrails.text import Variant, register_vocabulary

LEAD = "lead"
WINDOW = "window"
SUBSTR = "substr"


@dataclass(frozen=True, slots=True)
class Cue:
    family: str
    weight: float
    pattern: re.Pattern[str]
    anchors: tuple[str, ...]
    mode: str = LEAD
    window: int = 120
    # For window cues: the pattern without its leading \b, which `re` can scan for its
    # first characters quickly; the word boundary is then checked on each hit.
    scan: re.Pattern[str] | None = None
    # For substring cues: the script the anchors are written in ("hangul" or "cjk").
    script: str = ""

    def search_window(self, text: str, start: int, end: int) -> int:
        """Where the pattern matches within text[start:end], or -1."""
        scan = self.scan
        if scan is None:
            m = self.pattern.search(text, start, end)
            return m.start() if m else -1
        m = scan.search(text, start, end)
        while m is not None:
            at = m.start()
            if at == 0 or not _is_word_char(text[at - 1]):
                return at
            m = scan.search(text, at + 1, end)
        return -1


def cue(family: str, weight: float, anchors: str, pattern: str, *, window: int = 150, substr: bool = False) -> Cue:
    """`anchors`: space-separated words (or substrings), one of which must occur.

    The cue is a lead cue when every match must begin with an anchor, else a window cue.
    """
    words = tuple(anchors.split())
    if substr:
        mode = SUBSTR
    else:
        starts = leading_literals(pattern)
        # Lead only if every match must begin at an anchor word.
        lead = starts is not None and all(any(s.startswith(w) or w.startswith(s) for w in words) for s in starts)
        mode = LEAD if lead else WINDOW
    scan = re.compile(pattern[2:]) if mode == WINDOW and pattern.startswith(r"\b") else None
    script = ("hangul" if _HANGUL.search(anchors) else "cjk") if substr else ""
    return Cue(family, weight, re.compile(pattern), words, mode, window, scan, script)


_HANGUL = re.compile("[\uac00-\ud7a3]")
_CJK = re.compile("[\u3040-\u30ff\u4e00-\u9fff]")


def _scripts(text: str) -> set[str]:
    found = set()
    if _HANGUL.search(text):
        found.add("hangul")
    if _CJK.search(text):
        found.add("cjk")
    return found


def leading_literals(pattern: str) -> list[str] | None:
    """The literal prefixes a match of `pattern` can start with, or None if unknown."""
    try:
        from re import _constants as C  # type: ignore[attr-defined]
        from re import _parser as P  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - other Python versions: fall back to windows
        return None

    def walk(items: list) -> tuple[list[str], bool]:
        # (prefixes every match starts with, whether all of `items` were literal).
        out = [""]
        for op, av in items:
            if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
                continue
            if op is C.LITERAL:
                out = [p + chr(av) for p in out]
                continue
            if op is C.SUBPATTERN:
                sub, complete = walk(list(av[-1]))
            elif op is C.BRANCH:
                walked = [walk(list(branch)) for branch in av[1]]
                sub = [x for prefixes, _ in walked for x in prefixes]
                complete = all(done for _, done in walked)
            else:
                return out, False
            out = [p + x for p in out for x in sub]
            if not complete:
                return out, False
        return out, True

    found, _ = walk(list(P.parse(pattern)))
    if not found or not all(found):
        return None
    return found


def alt(words: str) -> str:
    """`alt("a b c")` -> `(?:a|b|c)`; `_` inside a word stands for whitespace."""
    return "(?:" + "|".join(w.replace("_", r"\s+") for w in words.split()) + ")"


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class CueSet:
    """An index from anchor word to cues, and the matching of one text against them."""

    def __init__(self, cues: Sequence[Cue]):
        self.cues = list(cues)
        for c in self.cues:
            register_vocabulary(" ".join(c.anchors) + " " + c.pattern.pattern)
        self._by_word: dict[str, list[Cue]] = {}  # (lists become tuples below)
        self._substr: list[Cue] = []
        for c in self.cues:
            if c.mode == SUBSTR:
                self._substr.append(c)
            else:
                for word in c.anchors:
                    self._by_word.setdefault(word, []).append(c)
        self._by_word = {w: tuple(c) for w, c in self._by_word.items()}  # type: ignore[misc]
        self.anchor_words = frozenset(self._by_word)

    def matches(self, variant: Variant, non_ascii: bool, *, every_cue: bool = False) -> list[tuple[Cue, int]]:
        """(cue, position of its first match) for the cues that match.

        Unless `every_cue`, a cue is skipped once a cue of its family at least as strong
        matched (enough to know each family's best weight). This loop runs for every
        prompt, so it is written for speed rather than elegance."""
        found: list[tuple[Cue, int]] = []
        best: dict[str, float] = {}
        done: set[int] = set()
        text = variant.lower
        size = len(text)
        find = text.find
        for word in variant.words & self.anchor_words:
            cues = self._by_word[word]
            n = len(word)
            pos = find(word)
            while pos >= 0:
                end = pos + n
                # Whole words only: the word set says the word occurs, not where.
                if (pos and (text[pos - 1].isalnum() or text[pos - 1] == "_")) or (
                    end < size and (text[end].isalnum() or text[end] == "_")
                ):
                    pos = find(word, pos + 1)
                    continue
                pending = False
                for c in cues:
                    if every_cue:
                        if id(c) in done:
                            continue
                    elif best.get(c.family, 0.0) >= c.weight:
                        continue
                    if c.mode == LEAD:
                        at = pos if c.pattern.match(text, pos) is not None else -1
                    else:
                        at = c.search_window(text, pos - c.window if pos > c.window else 0, end + c.window)
                    if at < 0:
                        pending = True
                        continue
                    done.add(id(c))
                    found.append((c, at))
                    if c.weight > best.get(c.family, 0.0):
                        best[c.family] = c.weight
                if not pending:
                    break  # every cue of this word already matched
                pos = find(word, pos + 1)
        if non_ascii and self._substr:
            scripts = _scripts(text)
            for c in self._substr:
                if c.script not in scripts:
                    continue
                if (id(c) in done) if every_cue else (best.get(c.family, 0.0) >= c.weight):
                    continue
                if any(a in text for a in c.anchors):
                    m = c.pattern.search(text)
                    if m:
                        done.add(id(c))
                        found.append((c, m.start()))
                        if c.weight > best.get(c.family, 0.0):
                            best[c.family] = c.weight
        return found

    def families(self, variant: Variant, non_ascii: bool, *, extra: float = 0.0, extra_cap: float = 1.0) -> dict[str, float]:
        """Per cue family: the weight of its strongest matched cue, plus `extra` times the
        weights of its other matched cues (at most `extra_cap` more). With extra=0 a family
        counts once however many of its cues match."""
        weights: dict[str, list[float]] = {}
        for c, _ in self.matches(variant, non_ascii, every_cue=extra > 0.0):
            weights.setdefault(c.family, []).append(c.weight)
        out: dict[str, float] = {}
        for family, ws in weights.items():
            top = max(ws)
            out[family] = round(top + min(extra * (sum(ws) - top), extra_cap), 3) if extra else top
        return out


def merge_families(parts: Iterable[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in parts:
        for family, weight in part.items():
            if weight > out.get(family, 0.0):
                out[family] = weight
    return out
