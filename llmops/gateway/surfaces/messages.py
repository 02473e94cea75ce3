"""Anthropic's Messages API: passed through to upstreams that serve it, translated over
chat completions for the rest; errors in Anthropic's shape either way.

Native when every deployment that may answer the model serves `/messages` itself (a
litellm `anthropic/…` deployment): the request goes upstream as it came. Translated
otherwise (`llmops.gateway.translate.messages`), so an Anthropic client reaches a vLLM
or OpenAI model. One governance on both paths: input guardrails read every text the
client sent (system, text blocks, tool results), output guardrails the reply's text
blocks and the stream's text deltas, and the ledger row has the call's usage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from llmops.errors import InvalidInput, LLMOpsError
from llmops.gateway.call import Call
from llmops.gateway.providers.base import CHAT, MESSAGES
from llmops.gateway.surfaces.base import (
    NativeStream,
    Slot,
    StreamWriter,
    Surface,
    put_back,
    slots_view,
    with_usage,
)
from llmops.gateway.translate import messages as anthropic

if TYPE_CHECKING:
    from llmops.gateway.services import Services


class _MessagesStream(StreamWriter):
    def __init__(self, translator: anthropic.MessagesStream, call: Call):
        self.translator, self.call = translator, call

    @staticmethod
    def _bytes(events: list[tuple[str, dict]]) -> bytes:
        return b"".join(anthropic.sse(name, data) for name, data in events)

    def start(self) -> bytes:
        return self._bytes(self.translator.start())

    def chunk(self, chunk: dict[str, Any], payload: bytes, changed: bool) -> bytes | None:
        return self._bytes(self.translator.feed(chunk)) or None

    def end(self) -> bytes:
        return self._bytes(self.translator.finish(usage=self.call.chat_usage()))

    def fail(self, error: LLMOpsError) -> bytes:
        return self._bytes(self.translator.fail(anthropic.anthropic_error_type(error.status), error.message))


class _State:
    def __init__(self, *, native: bool, stop_sequences: list[str] | None):
        self.native = native
        self.stop_sequences = stop_sequences
        self.slots: list[Slot] = []  # native: where input texts go back


class MessagesSurface(Surface):
    path = "/messages"
    upstream = CHAT

    async def prepare(self, services: Services, body: dict[str, Any], call: Call, scope: dict) -> dict[str, Any]:
        stop = body.get("stop_sequences")
        model = body.get("model")
        native = isinstance(model, str) and bool(model) and services.router.serves_natively(model, MESSAGES)
        if native:
            _check_native(body)
        call.surface_state = _State(native=native, stop_sequences=list(stop) if isinstance(stop, list) else None)
        return body if native else anthropic.messages_to_chat(body)

    def upstream_for(self, call: Call) -> str:
        return MESSAGES if call.surface_state.native else CHAT

    def input_view(self, body: dict[str, Any], call: Call) -> dict[str, Any]:
        state: _State = call.surface_state
        if not state.native:
            return body
        state.slots = _slots(body)
        return slots_view(state.slots, body.get("model"), body.get("max_tokens"))

    def input_checked(self, body: dict[str, Any], view: dict[str, Any], call: Call) -> None:
        state: _State = call.surface_state
        if state.native:
            put_back(state.slots, view)

    def whole(self, data: dict[str, Any], call: Call) -> bytes | None:
        state: _State = call.surface_state
        if state.native:
            return None  # the upstream's own reply, re-encoded only if a check changed it
        message = anthropic.chat_to_message(
            with_usage(data, call), message_id=anthropic.new_message_id(), model=call.model or "",
            stop_sequences=state.stop_sequences,
        )
        return orjson.dumps(message)

    def streamer(self, services: Services, call: Call, body: dict[str, Any]) -> StreamWriter:
        state: _State = call.surface_state
        if state.native:
            return _NativeStream(services, call)
        translator = anthropic.MessagesStream(anthropic.new_message_id(), call.model or "",
                                              stop_sequences=state.stop_sequences)
        return _MessagesStream(translator, call)

    def error_body(self, error: LLMOpsError) -> bytes:
        return orjson.dumps(anthropic.anthropic_error(error.status, error.message))


class _NativeStream(NativeStream):
    """An upstream's own Messages stream, passed on event by event.

    Output guardrails read each text block's deltas; text they hold back goes out in a
    delta of its own before the block's `content_block_stop`. Usage is read from
    `message_start` and `message_delta`."""

    async def event(self, event: dict[str, Any]) -> bytes | None:
        kind = event.get("type")
        out = [event]
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict) and isinstance(message.get("usage"), dict):
                self.usage = dict(message["usage"])
        elif kind == "content_block_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                delta["text"] = self.feed(event.get("index"), delta["text"])
        elif kind == "content_block_stop":
            tail = await self.release(event.get("index"))
            if tail:
                out.insert(0, {"type": "content_block_delta", "index": event.get("index"),
                               "delta": {"type": "text_delta", "text": tail}})
        elif kind == "message_delta" and isinstance(event.get("usage"), dict):
            self.usage = {**(self.usage or {}), **{k: v for k, v in event["usage"].items() if v is not None}}
        return b"".join(anthropic.sse(str(each.get("type")), each) for each in out)

    def fail(self, error: LLMOpsError) -> bytes:
        return anthropic.sse("error", anthropic.anthropic_error(error.status, error.message))


def _check_native(body: dict[str, Any]) -> None:
    """What the gateway reads of a request it passes through (guardrails, limits, the
    ledger): the upstream judges the rest. A `messages` that was no list failed inside
    the gateway (a 500)."""
    if not isinstance(body.get("max_tokens"), int):
        raise InvalidInput("`max_tokens` is required", param="max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("`messages` must be a non-empty list", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise InvalidInput("each message must be an object whose role is user or assistant", param=f"messages[{i}]")
        if not isinstance(message.get("content"), str | list):
            raise InvalidInput("message content must be a string or a list of blocks", param=f"messages[{i}].content")
    if not isinstance(body.get("system"), str | list | None):
        raise InvalidInput("`system` must be a string or a list of text blocks", param="system")


def _slots(body: dict[str, Any]) -> list[Slot]:
    """Every text a Messages request carries, where it is and in which role."""
    slots: list[Slot] = []
    system = body.get("system")
    if isinstance(system, str):
        slots.append((body, "system", "system"))
    for block in system if isinstance(system, list) else []:
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            slots.append((block, "text", "system"))
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "user")
        content = message.get("content")
        if isinstance(content, str):
            slots.append((message, "content", role))
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                slots.append((block, "text", role))
            elif block.get("type") == "tool_result":
                result = block.get("content")
                if isinstance(result, str):
                    slots.append((block, "content", "tool"))
                for part in result if isinstance(result, list) else []:
                    if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                        slots.append((part, "text", "tool"))
    return slots


MESSAGES_SURFACE = MessagesSurface()
