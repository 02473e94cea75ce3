"""Server-sent events from an upstream to the client, as they arrive.

The first chunk is already in hand when this starts (the router returns a stream only
once it has one), so headers go out with it. Each chunk is read once here (usage, text,
output guardrails) and handed to the client's surface, which writes it in the client's
API (surfaces.StreamWriter). If the upstream dies mid-stream the client gets an
in-band error event, never an invented end. If the client goes away, the upstream
request is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from llmops.errors import LLMOpsError
from llmops.gateway import http
from llmops.gateway.call import Call
from llmops.gateway.errors import InternalError, UpstreamError
from llmops.gateway.providers.base import CHAT
from llmops.gateway.surfaces import StreamWriter

if TYPE_CHECKING:
    from llmops.gateway.router import RouteResult
    from llmops.gateway.services import Services

log = logging.getLogger("llmops.gateway")

class _StreamState:
    """Reads each chunk once: collects usage and text, applies output guardrails."""

    def __init__(self, services: Services, call: Call, endpoint: str, writer: StreamWriter):
        self.services = services
        self.call = call
        self.endpoint = endpoint
        self.writer = writer
        self.emit = writer.chunk  # once per chunk: looked up once per stream
        self.owns_events = writer.owns_events
        self.usage: dict[str, Any] | None = None
        self.texts: dict[int, list[str]] = {}
        self.guards: dict[int, Any] = {}
        self.logprobs: dict[int, _LogprobCarrier] = {}
        self.checks = checks = services.output_checks(call)
        self.guarded = checks is not None
        # Async output checks (judge, plugins) run when a choice finishes, in the loop.
        self.guard_async = checks is not None and checks.output_async
        self.traced = services.tracer is not None  # keep finish reasons for the trace

    def _guard(self, index: int):
        guard = self.guards.get(index)
        if guard is None:
            assert self.checks is not None  # only guarded streams have guards
            guard = self.guards[index] = self.services.output_stream(self.call, self.checks)
        return guard

    async def transform(self, payload: bytes) -> bytes | None:
        """The bytes to send for one upstream chunk, or None to drop it."""
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            where = self.call.deployment or "the upstream"
            raise UpstreamError(f"{where} sent a stream chunk that is not JSON; the stream was cut there") from exc
        if not isinstance(chunk, dict):
            return self.writer.passthrough(payload)
        if self.owns_events:
            return await self.writer.event(chunk)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        if not choices:
            return self.emit(chunk, payload, False)
        changed = False
        for choice in choices:
            index = choice.get("index", 0)
            if self.traced and choice.get("finish_reason"):
                self.call.finish_reasons = [*(self.call.finish_reasons or ()), choice["finish_reason"]]
            if self.endpoint == CHAT:
                holder = choice.get("delta")
                if not isinstance(holder, dict):
                    holder = choice["delta"] = {}
                field = "content"
            else:
                holder, field = choice, "text"
            text = holder.get(field)
            if isinstance(text, str) and text:
                self.texts.setdefault(index, []).append(text)
            if self.guarded:
                guard = self._guard(index)
                safe = guard.feed(text or "") if isinstance(text, str) else ""
                if choice.get("finish_reason") is not None:
                    safe += (await guard.afinish()) if self.guard_async else guard.finish()
                if safe != (text or ""):
                    holder[field] = safe
                    changed = True
                logprobs = choice.get("logprobs")
                if self.endpoint == CHAT and isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
                    carrier = self.logprobs.get(index)
                    if carrier is None:
                        carrier = self.logprobs[index] = _LogprobCarrier()
                    logprobs["content"] = carrier.carry(logprobs["content"], text or "", safe, guard.held)
                    changed = True
        return self.emit(chunk, payload, changed)

    def all_texts(self) -> list[str]:
        return ["".join(parts) for _, parts in sorted(self.texts.items())]

    def account(self, route: RouteResult, body: dict[str, Any]) -> None:
        usage, texts = self._usage()
        self.services.account(self.call, route.deployment, body, usage, texts)
        self._captured(body, texts)

    async def account_async(self, route: RouteResult, body: dict[str, Any]) -> None:
        """`account` at the stream's end, a long text counted off the event loop."""
        usage, texts = self._usage()
        await self.services.account_async(self.call, route.deployment, body, usage, texts)
        self._captured(body, texts)

    def _usage(self) -> tuple[dict[str, Any] | None, list[str]]:
        writer = self.writer
        if writer.owns_events:
            return writer.usage, writer.texts()
        return self.usage, self.all_texts()

    def _captured(self, body: dict[str, Any], texts: list[str]) -> None:
        capture = self.services.capture  # payload capture for monitoring: None when off
        if capture is not None and self.call.outcome == "success" and capture.sampled(self.call):
            capture.keep(self.call, body, texts)


class _LogprobCarrier:
    """A choice's token logprobs, sent in the chunk that sends their text.

    Output guardrails may hold text back for a few chunks; its tokens' logprobs wait
    with it. The tokens sent so far always spell a prefix of the text sent so far, and
    all of it once the stream ends. Where a check changed the text (a redaction), the
    tokens sent with it carry the text as released, never the original: the first one
    all of it, the rest none."""

    def __init__(self) -> None:
        self.waiting: deque[tuple[int, dict[str, Any]]] = deque()  # (end offset in the raw text, entry)
        self.queued_to = 0  # raw characters covered by the entries queued so far
        self.fed = 0  # raw characters fed to the guard
        self.text = ""  # the text sent so far
        self.spelled = 0  # how much of it the tokens sent so far spell

    def carry(self, entries: list[Any], raw: str, safe: str, held: int) -> list[dict[str, Any]]:
        for entry in entries:
            if isinstance(entry, dict):
                self.queued_to += len(entry.get("token") or "")
                self.waiting.append((self.queued_to, entry))
        self.fed += len(raw)
        self.text += safe
        released = self.fed - held
        out = []
        while self.waiting and self.waiting[0][0] <= released:
            out.append(self.waiting.popleft()[1])
        if not out:
            return out
        spelled = "".join(entry.get("token") or "" for entry in out)
        start = self.spelled
        if self.text[start : start + len(spelled)] == spelled:
            self.spelled += len(spelled)
            return out
        fill, self.spelled = self.text[start:], len(self.text)
        return [_retext(entry, fill if i == 0 else "") for i, entry in enumerate(out)]


def _retext(entry: dict[str, Any], text: str) -> dict[str, Any]:
    return {**entry, "token": text, "bytes": list(text.encode()), "top_logprobs": []}


async def _pump(state: _StreamState, route: RouteResult, body: dict[str, Any], headers: list, send: http.Send) -> None:
    stream = route.streamed
    writer = state.writer
    await send({"type": "http.response.start", "status": 200, "headers": [*http.SSE_HEADERS, *headers]})
    try:
        # What arrived in one read goes out in one write: chunks are never held back
        # waiting for more, and a burst does not cost a write per chunk.
        await _forward(state, stream.first, send, writer.start())
        async for batch in stream.rest:
            await _forward(state, batch, send)
    except Exception as exc:
        if not isinstance(exc, LLMOpsError):
            log.exception("stream of request %s failed", state.call.id)
            exc = InternalError(f"the gateway failed while streaming request {state.call.id}; see its log")
        # Upstream trouble (or a guardrail block) after bytes went out: tell the client
        # in-band and stop; there is no status code left to change.
        await send({"type": "http.response.body", "body": writer.fail(exc), "more_body": False})
        raise exc from None
    # Counted before the last event: a translated stream reports usage in it.
    await state.account_async(route, body)
    await send({"type": "http.response.body", "body": writer.end(), "more_body": False})


async def _forward(state: _StreamState, batch: list[bytes], send: http.Send, head: bytes = b"") -> None:
    out = [head] if head else []
    try:
        for payload in batch:
            piece = await state.transform(payload)
            if piece is not None:
                out.append(piece)
    finally:
        # A bad chunk ends the stream, but what came before it still reaches the client.
        if out:
            await send({"type": "http.response.body", "body": b"".join(out), "more_body": True})


async def stream_to_client(
    services: Services,
    call: Call,
    body: dict[str, Any],
    route: RouteResult,
    endpoint: str,
    writer: StreamWriter,
    headers: list,
    receive: http.Receive,
    send: http.Send,
) -> None:
    state = _StreamState(services, call, endpoint, writer)
    pump = asyncio.ensure_future(_pump(state, route, body, headers, send))
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    try:
        await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not pump.done():
            # The client left: stop reading, which cuts the upstream request.
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, LLMOpsError):
                await pump
            call.failed(499, "cancelled", "client_disconnected")
        else:
            try:
                pump.result()
            except LLMOpsError as exc:
                if exc.code == "guardrail_blocked":
                    outcome = "blocked"
                else:
                    outcome = "gateway_error" if isinstance(exc, InternalError) else "upstream_error"
                call.failed(exc.status, outcome, exc.code or exc.type)
                services.metrics.errors.inc(call.model or "", call.deployment or "", exc.code or exc.type)
    finally:
        gone.cancel()
        await route.streamed.close()
        if not call.accounted:  # the stream broke off: count what it carried
            state.account(route, body)


async def _wait_disconnect(receive: http.Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
