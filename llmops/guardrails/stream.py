"""Output checks on a stream, while it flows.

```python
guard = pipe.output_stream(model="gpt-4o")
for delta in upstream:
    send(guard.feed(delta))      # may hold text back; raises GuardrailBlocked on a block
send(guard.finish())             # the rest, after the whole-reply checks
```

A match can straddle chunk boundaries ("sk-pro" + "j-abc..."), so the stream holds back
the tail of the text that could still begin a match, and only that. Each check says which
tail (`stream_hold`). Secrets: the last word when it is or may become a key ("sk-",
"ghp_", "AKIA", "eyJ", "gh"...), a value after "=" or ":" that follow a secret's name
(`DB_PASSWORD="...`, `api_key: ...`) or a URL's "user:", and an unfinished
"-----BEGIN ... PRIVATE KEY-----" header. Personal data: the last word (it may still
become an e-mail) and a number with spaces that may still grow (card, IBAN, phone).
Everything else goes out at once: with the default checks, ordinary prose goes out in
the feed that brought it.

Before text goes out it is scanned, with the last `CONTEXT` characters already sent, so
"aws_secret_access_key = " followed later by the key still matches. A check says which
text needs a scan (`stream_trigger`: a long run of token characters, a quote, an "@", a
digit...); text that triggers no check goes out unscanned. As in the pipeline, each check
reads the text the checks before it redacted. A match is never cut: it goes out whole
and redacted, and one that reaches the end of the unsent text is held with it (a key,
an e-mail or a JWT is emitted whole or not at all; an unterminated private-key block,
which matches to the end of the text, is held until it ends or the stream finishes, then
redacted whole).

A check that says nothing about streams is scanned before every piece that goes out and,
if it can redact, holds a fixed tail of `FIXED_HOLD` characters cut after whitespace
(the rule for every check before issue 20; `hold=48` on `output_stream` brings it back
for all). One that cannot redact (it flags or blocks the whole reply) is scanned every
`STEP` characters sent and at the end.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection, GuardrailBlocked, Span

if TYPE_CHECKING:
    from llmops.guardrails.base import Check
    from llmops.guardrails.pipeline import BoundCheck, Pipeline

# None: hold only what could still begin a match (see the module docstring). A number:
# hold a fixed tail of that many characters for every check, as before issue 20.
DEFAULT_HOLD: int | None = None
# The fixed tail, for checks that say nothing about streams (and the old rule).
FIXED_HOLD = 48
# How far back into already-sent text a scan looks, for patterns with a prefix.
CONTEXT = 128
# With a fixed hold: scan again only once this much new text came in beyond the tail.
# Otherwise: scan a check that cannot redact after this much text went out; and when
# nothing could go out (an open match), wait for this much more text before scanning again.
STEP = 24
# A run without whitespace longer than this is cut anyway (never inside a match).
MAX_RUN = 4096

Hold = Callable[[str, str], int]
Trigger = Callable[[str], bool]


class _Hint:
    """How a stream treats one check. `hold(text, before)`: where the tail of unsent text
    that could still begin a match starts; `trigger(piece)`: whether a piece about to go
    out needs a scan (None: scan every `STEP` characters, for checks without spans)."""

    __slots__ = ("hold", "trigger")

    def __init__(self, hold: Hold, trigger: Trigger | None):
        self.hold = hold
        self.trigger = trigger


class OutputStream:
    def __init__(self, pipeline: Pipeline, checks: tuple[BoundCheck, ...], *, hold: int | None = DEFAULT_HOLD):
        from llmops.guardrails.pipeline import _Run

        self._pipeline = pipeline
        self._flow = [b for b in checks if not b.check.final_only and not b.runs_async]
        self._final = [b for b in checks if b.check.final_only and not b.runs_async]
        self._async = [b for b in checks if b.runs_async]
        # A fixed tail for every check (the rule before issue 20), or None: each check's own.
        self.hold = None if hold is None else max(0, hold)
        hints = [hint_for(b.check) for b in self._flow]
        self._holds = [h.hold for h in hints]
        self._triggers = [h.trigger for h in hints]
        # The trigger of the only check, when there is one check and it has a trigger.
        self._one = self._triggers[0] if len(hints) == 1 else None
        # Per check: the count of characters sent at which a periodic check is due again.
        self._due = [0] * len(hints)
        self._pending = ""
        self._context = ""  # the last characters sent (raw): at least CONTEXT, at most twice that
        self._sent = 0  # characters sent (raw)
        self._wait = 0  # do nothing until the pending text is this long (after an open match)
        self._scan_all = False  # after a forced cut: scan the next piece with every check
        self._parts: list[str] = []
        self._run = _Run("output", [])
        self._error: GuardrailBlocked | None = None
        self._finished = False

    # --- state the caller reads -------------------------------------------------------------

    @property
    def blocked(self) -> bool:
        return self._error is not None

    @property
    def blocked_by(self) -> str | None:
        return self._error.check if self._error else None

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        return list(self._run.verdicts.values())

    @property
    def text(self) -> str:
        """Everything fed so far, unredacted (for token counting, not for display)."""
        return "".join(self._parts)

    @property
    def held(self) -> int:
        """How many characters fed so far are held back (not yet returned by feed)."""
        return len(self._pending)

    # --- feeding ----------------------------------------------------------------------------

    def feed(self, delta: str) -> str:
        """Text that is safe to send now (possibly empty)."""
        if self._error is not None:
            raise self._error
        if not delta:
            return ""
        self._parts.append(delta)
        if not self._flow:
            return delta
        pending = self._pending + delta if self._pending else delta
        self._pending = pending
        if self.hold is not None:
            if len(pending) < self.hold + STEP:
                return ""
            return self._scan(self._flow, None, final=False)
        if len(pending) < self._wait:
            return ""
        one = self._one
        if one is None or self._scan_all:
            return self._release(False)
        # One check (the default pipeline): _release, inlined.
        size = len(pending)
        limit = min(size, self._holds[0](pending, self._context))
        if limit <= 0:
            return self._release(False) if size > MAX_RUN else ""
        piece = pending if limit == size else pending[:limit]
        if one(piece):
            return self._scan(self._flow, limit, final=False)
        self._pending = pending[limit:] if limit < size else ""
        self._sent += limit
        context = self._context + piece
        self._context = context if len(context) <= 2 * CONTEXT else context[-CONTEXT:]
        return piece

    def finish(self) -> str:
        """The rest of the text, once the whole-reply checks (e.g. a JSON schema) passed.

        Async checks (judge, plugins) cannot run here: use `afinish` when there are any.
        """
        out = self._flush()
        for bound in self._async:
            self._run.record_error(bound, "needs afinish() on a stream")
        self._check_final()
        return out

    async def afinish(self) -> str:
        out = self._flush()
        text = self.text
        for bound in self._async:
            detection, error = await self._pipeline.ascan_one(bound, text)
            self._judge(bound, detection, error)
        self._check_final()
        return out

    # --- internals --------------------------------------------------------------------------

    def _flush(self) -> str:
        if self._error is not None:
            raise self._error
        if self._finished:
            return ""
        self._finished = True
        if not self._flow:
            return ""
        if self.hold is not None:
            return self._scan(self._flow, None, final=True)
        return self._release(True)

    def _release(self, final: bool) -> str:
        """Send what no check holds back: unscanned when no check is triggered by it."""
        pending = self._pending
        size = len(pending)
        limit = size
        if not final:
            before = self._context
            for hold in self._holds:
                at = hold(pending, before)
                if at < limit:
                    limit = at
            if limit <= 0:
                if size <= MAX_RUN:
                    return ""
                # A very long run: cut it anyway (the scan keeps the cut outside matches).
                return self._scan(self._flow, size - FIXED_HOLD, final=False, forced=True)
        piece = pending if limit == size else pending[:limit]
        if self._scan_all:
            return self._scan(self._flow, limit, final=final)
        if self._one is None:
            return self._release_some(piece, limit, final)
        if self._one(piece):
            return self._scan(self._flow, limit, final=final)
        # Nothing in the piece can be part of a match: it goes out as it is.
        self._pending = pending[limit:]
        self._sent_text(piece)
        return piece

    def _release_some(self, piece: str, limit: int, final: bool) -> str:
        """`_release` with several checks: scan if the piece triggers one. A check reads
        what the redacting checks before it left (as in the pipeline), so a scan runs
        those too; a check that only flags or blocks runs when it is due itself."""
        due = None
        i = 0
        for trigger in self._triggers:
            if trigger(piece) if trigger is not None else final or self._sent + limit >= self._due[i]:
                if due is None:
                    due = [False] * len(self._triggers)
                due[i] = True
            i += 1
        if due is not None:
            scan = [b for b, d in zip(self._flow, due, strict=True) if d or b.action == "redact"]
            return self._scan(scan, limit, final=final)
        self._pending = self._pending[limit:]
        self._sent_text(piece)
        return piece

    def _sent_text(self, raw: str) -> None:
        self._sent += len(raw)
        context = self._context + raw
        self._context = context if len(context) <= 2 * CONTEXT else context[-CONTEXT:]

    def _check_final(self) -> None:
        if self._final:
            view = TextView(self.text)
            for bound in self._final:
                detection, error = self._pipeline.scan_one(bound, view)
                self._judge(bound, detection, error)
        self._raise_if_blocked()

    def _judge(self, bound: BoundCheck, detection: Detection | None, error: str | None) -> None:
        if error:
            self._run.record_error(bound, error)
        elif detection:
            self._run.record(bound, detection)

    def _raise_if_blocked(self) -> None:
        blocker = self._run.blocked_by
        if blocker is not None and self._error is None:
            from llmops.guardrails.pipeline import FAILED_CLOSED_MESSAGE

            message = (blocker.spec.message or FAILED_CLOSED_MESSAGE) if self._run.failed_closed else blocker.block_message
            self._error = GuardrailBlocked(blocker.name, message, self.verdicts)
        if self._error is not None:
            raise self._error

    def _scan(self, checks: list[BoundCheck], limit: int | None, *, final: bool, forced: bool = False) -> str:
        """Scan the pending text (with the context) and send it up to `limit` characters of
        it (None: the fixed-hold rule), never cutting a match."""
        context = self._context[-CONTEXT:]
        pending = self._pending
        window = context + pending
        offset = len(context)
        # Each check reads the text the checks before it redacted, as in the pipeline
        # ("postgres://u:[PASSWORD]@host" holds no e-mail); spans are kept in raw positions.
        chain = _Chain(window)
        view = TextView(window)
        # Matches in text not yet sent, by check; recorded once the text holding them is sent.
        pending_hits: list[tuple[BoundCheck, Detection, list[Span]]] = []
        for bound in checks:
            if view.text is not chain.text:
                view = TextView(chain.text)
            detection, error = self._pipeline.scan_one(bound, view)
            if error:
                self._run.record_error(bound, error)
                continue
            if detection is None:
                continue
            if detection.spans:
                spans = chain.to_raw(detection.spans)
                if bound.action == "redact":
                    chain.redact(spans)
                fresh = [s for s in spans if s.end > offset]
                if not fresh:
                    continue  # matched only text already sent, and counted then
                if bound.action == "block":
                    self._run.record(bound, Detection(detection.score, detection.labels, fresh))
                else:
                    pending_hits.append((bound, detection, fresh))
            elif bound.name not in self._run.verdicts:
                self._run.record(bound, detection)
        self._raise_if_blocked()
        all_spans = [s for _, _, fresh in pending_hits for s in fresh]
        if final:
            cut = len(window)
        elif limit is None:
            cut = self._cut_point(window, offset, all_spans)
        else:
            cut = offset + limit
            end = len(window)
            for s in sorted(all_spans, key=lambda s: s.start, reverse=True):
                # Never inside a match (it goes out whole, redacted), nor before the end of
                # one that reaches the end of the text: it may still grow (a key block).
                if s.start < cut and (cut < s.end or s.end == end):
                    cut = s.start
            cut = max(cut, offset)
        if self.hold is None:
            # Checks without spans are due again STEP characters after this scan.
            sent_after = self._sent + (cut - offset)
            for i, trigger in enumerate(self._triggers):
                if trigger is None and any(b is self._flow[i] for b in checks):
                    self._due[i] = sent_after + STEP
            # An open match holds everything: scan again only once more text came in.
            self._wait = len(pending) + STEP if cut <= offset and not final else 0
        if cut <= offset:
            return ""
        for bound, detection, fresh in pending_hits:
            sent = [s for s in fresh if s.start < cut]
            if sent:
                self._run.record(bound, Detection(detection.score, detection.labels, sent))
        self._pending = window[cut:]
        self._sent_text(window[offset:cut])
        # A word cut in two by a forced cut: scan what follows with every check.
        self._scan_all = forced
        return chain.text[chain.to_text(offset) : chain.to_text(cut)]

    def _cut_point(self, window: str, offset: int, spans: list[Span]) -> int:
        """The fixed-hold rule: the furthest place to cut after whitespace, before the held
        tail, and outside every match; `offset` (send nothing) when there is none."""
        hold = self.hold or 0
        limit = len(window) - hold
        pos = limit
        while pos > offset:
            ws = max(window.rfind(" ", offset, pos), window.rfind("\n", offset, pos), window.rfind("\t", offset, pos))
            if ws < offset:
                break
            cut = ws + 1
            inside = [s for s in spans if s.start < cut < s.end]
            if not inside:
                return cut
            pos = min(s.start for s in inside)
        if limit - offset > MAX_RUN:
            cut = limit
            for s in sorted(spans, key=lambda s: s.start, reverse=True):
                if s.start < cut < s.end:
                    cut = s.start
            return max(cut, offset)
        return offset


class _Chain:
    """A window as the checks read it in turn: the raw text with the redactions so far.

    Each redaction is an edit (raw start, raw end, text start, text end, placeholder);
    positions map both ways, a position inside a placeholder to the whole edit."""

    __slots__ = ("raw", "text", "edits")

    def __init__(self, raw: str):
        self.raw = raw
        self.text = raw
        self.edits: list[tuple[int, int, int, int, str]] = []

    def to_raw(self, spans: list[Span]) -> list[Span]:
        """Spans found in `text`, in raw positions."""
        if not self.edits:
            return spans
        out = []
        for span in spans:
            start, shift = span.start, 0
            for raw_start, raw_end, text_start, text_end, _ in self.edits:
                if start < text_start:
                    break
                if start < text_end:
                    start, shift = raw_start, 0
                    break
                shift = text_end - raw_end
            start -= shift
            end, shift = span.end, 0
            for _, raw_end, text_start, text_end, _ in self.edits:
                if end <= text_start:
                    break
                if end <= text_end:
                    end, shift = raw_end, 0
                    break
                shift = text_end - raw_end
            out.append(Span(start, end - shift, span.placeholder))
        return out

    def to_text(self, pos: int) -> int:
        """A raw position in `text` (inside an edit: where its placeholder starts)."""
        shift = 0
        for raw_start, raw_end, text_start, text_end, _ in self.edits:
            if pos <= raw_start:
                break
            if pos < raw_end:
                return text_start
            shift = text_end - raw_end
        return pos + shift

    def redact(self, spans: list[Span]) -> None:
        """Apply one check's redactions (raw positions): overlapping ones merge, the first
        naming the union (as apply_spans); an earlier placeholder they touch goes with them."""
        merged: list[list[Any]] = []
        for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
            if merged and span.start < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], span.end)
            else:
                merged.append([span.start, span.end, span.placeholder])
        edits = [(e[0], e[1], e[4]) for e in self.edits]
        for start, end, placeholder in merged:
            touched = [e for e in edits if e[0] < end and start < e[1]]
            if touched:
                start, end = min(start, *(e[0] for e in touched)), max(end, *(e[1] for e in touched))
                edits = [e for e in edits if not (e[0] < end and start < e[1])]
            edits.append((start, end, placeholder))
        edits.sort()
        parts: list[str] = []
        self.edits = []
        last = size = 0
        for start, end, placeholder in edits:
            parts.append(self.raw[last:start])
            size += start - last
            parts.append(placeholder)
            self.edits.append((start, end, size, size + len(placeholder), placeholder))
            size += len(placeholder)
            last = end
        parts.append(self.raw[last:])
        self.text = "".join(parts)


# --- what each check holds back on a stream -----------------------------------------------------

_hints: weakref.WeakKeyDictionary[Check, _Hint] = weakref.WeakKeyDictionary()


def hint_for(check: Check) -> _Hint:
    """How a stream treats a check: its own `stream_hold` / `stream_trigger` when it has
    them (secrets, pii), built here for banned terms and invisible characters, else the
    fixed tail for a check that can redact and a periodic scan for one that cannot."""
    hint = _hints.get(check)
    if hint is None:
        hint = _hints[check] = _make_hint(check)
    return hint


def _make_hint(check: Check) -> _Hint:
    from llmops.guardrails.banned import BannedCheck
    from llmops.guardrails.invisible import InvisibleCharsCheck

    hold = getattr(check, "stream_hold", None)
    trigger = getattr(check, "stream_trigger", None)
    if callable(hold) and callable(trigger):
        return _Hint(hold, trigger)
    if isinstance(check, BannedCheck) and not check.options.patterns:  # type: ignore[attr-defined]
        return _banned_hint(check.options.terms, check.options.case_sensitive)  # type: ignore[attr-defined]
    if isinstance(check, InvisibleCharsCheck):
        return _Hint(_invisible_hold, _invisible_trigger)
    if check.redactable:
        return _Hint(_fixed_hold, _always)
    return _Hint(_no_hold, None)


def prefix_regex(words: list[str]) -> str:
    """A regex matching any non-empty prefix of one of `words`, as a trie: each branch
    starts with another character, so a position that cannot match fails at once."""
    children: dict[str, list[str]] = {}
    for word in words:
        if word:
            children.setdefault(word[0], []).append(word[1:])
    branches = []
    for first, rests in children.items():
        rest = prefix_regex(rests)
        branches.append(re.escape(first) + (f"(?:{rest})?" if rest else ""))
    return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"


def _fixed_hold(text: str, before: str) -> int:
    """The rule before issue 20: after whitespace, FIXED_HOLD characters before the end."""
    limit = len(text) - FIXED_HOLD
    if limit <= 0:
        return 0
    return max(text.rfind(" ", 0, limit), text.rfind("\n", 0, limit), text.rfind("\t", 0, limit)) + 1


def _no_hold(text: str, before: str) -> int:
    return len(text)


def _always(piece: str) -> bool:
    return True


_JOINERS = ("\u200c", "\u200d")


def _invisible_hold(text: str, before: str) -> int:
    # A joiner counts only next to an ASCII letter or digit: wait for the character after it.
    return len(text) - 1 if text.endswith(_JOINERS) else len(text)


def _invisible_trigger(piece: str) -> bool:
    # ASCII text holds no invisible character but controls (tab and newline are allowed).
    return not piece.isascii() or not piece.replace("\n", "").replace("\t", "").replace("\r", "").isprintable()


def _banned_hint(terms: list[str], case_sensitive: bool) -> _Hint:
    """Banned terms: a term may still be completing at the end ("Project Fal"), and a
    whole term may still go on ("Falcon" before "Falconry")."""
    words = [t for t in terms if t]
    if not words:
        return _Hint(_no_hold, lambda piece: False)
    flags = 0 if case_sensitive else re.IGNORECASE
    partial = re.compile(r"(?<!\w)" + prefix_regex(words) + r"\Z", flags)
    whole = re.compile("|".join(rf"(?<!\w){re.escape(t)}(?!\w)" for t in sorted(words, key=len, reverse=True)), flags)
    longest = max(map(len, words))

    def hold(text: str, before: str) -> int:
        m = partial.search(text, max(0, len(text) - longest))
        if m is None:
            return len(text)
        at = m.start()
        # Never inside a whole term that began earlier ("Project Falcon" before "Falcon-X").
        for found in whole.finditer(text, max(0, at - longest), at + longest):
            if found.start() < at < found.end():
                at = found.start()
        return at

    def trigger(piece: str) -> bool:
        return whole.search(piece) is not None

    return _Hint(hold, trigger)
