"""Output checks on a stream, while it flows.

```python
guard = pipe.output_stream(model="gpt-4o")
for delta in upstream:
    send(guard.feed(delta))      # may hold text back; raises GuardrailBlocked on a block
send(guard.finish())             # the rest, after the whole-reply checks
```

A match can straddle chunk boundaries ("sk-pro" + "j-abc..."), so the stream holds back
a tail of `hold` characters, and only cuts at whitespace outside any match: a key, an
e-mail or a JWT (no whitespace inside) is emitted whole or not at all, and a number with
spaces (card, IBAN, phone) fits in the tail. Each scan also sees the last `CONTEXT`
characters already sent, so "aws_secret_access_key = " followed later by the key still
matches. An unterminated private-key block matches to the end of the text, so it is held
until it ends or the stream finishes (and is then redacted whole).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection, GuardrailBlocked, Span, apply_spans

if TYPE_CHECKING:
    from llmops.guardrails.pipeline import BoundCheck, Pipeline

DEFAULT_HOLD = 48
# How far back into already-sent text a scan looks, for patterns with a prefix.
CONTEXT = 128
# Scan again only once this much new text has come in beyond the held tail.
STEP = 24
# A run without whitespace longer than this is cut anyway (never inside a match).
MAX_RUN = 4096


class OutputStream:
    def __init__(self, pipeline: Pipeline, checks: tuple[BoundCheck, ...], *, hold: int = DEFAULT_HOLD):
        from llmops.guardrails.pipeline import _Run

        self._pipeline = pipeline
        self._flow = [b for b in checks if not b.check.final_only and not b.runs_async]
        self._final = [b for b in checks if b.check.final_only and not b.runs_async]
        self._async = [b for b in checks if b.runs_async]
        self.hold = max(0, hold)
        self._pending = ""
        self._context = ""
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
        self._pending += delta
        if len(self._pending) < self.hold + STEP:
            return ""
        return self._advance(final=False)

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
        return self._advance(final=True) if self._flow else ""

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

    def _advance(self, *, final: bool) -> str:
        window = self._context + self._pending
        offset = len(self._context)
        view = TextView(window)
        # Matches in text not yet sent, by check; recorded once the text holding them is sent.
        pending_hits: list[tuple[BoundCheck, Detection, list[Span]]] = []
        for bound in self._flow:
            detection, error = self._pipeline.scan_one(bound, view)
            if error:
                self._run.record_error(bound, error)
                continue
            if detection is None:
                continue
            if detection.spans:
                fresh = [s for s in detection.spans if s.end > offset]
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
        cut = len(window) if final else self._cut_point(window, offset, all_spans)
        if cut <= offset:
            return ""
        head: list[Span] = []
        for bound, detection, fresh in pending_hits:
            sent = [s for s in fresh if s.start < cut]
            if not sent:
                continue
            self._run.record(bound, Detection(detection.score, detection.labels, sent))
            if bound.action == "redact":
                head.extend(Span(max(s.start, offset) - offset, min(s.end, cut) - offset, s.placeholder) for s in sent)
        raw = window[offset:cut]
        self._context = (self._context + raw)[-CONTEXT:]
        self._pending = window[cut:]
        return apply_spans(raw, head)

    def _cut_point(self, window: str, offset: int, spans: list[Span]) -> int:
        """The furthest safe place to cut: after whitespace, before the held tail, and
        outside every match; `offset` (send nothing) when there is none."""
        limit = len(window) - self.hold
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
