"""Anthropic's Messages API over chat completions (the translation is in
`llmops.gateway.translate.messages`); errors in Anthropic's shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from llmops.errors import LLMOpsError
from llmops.gateway.call import Call
from llmops.gateway.providers.base import CHAT
from llmops.gateway.surfaces.base import StreamWriter, Surface, with_usage
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


class MessagesSurface(Surface):
    path = "/messages"
    upstream = CHAT

    async def prepare(self, services: Services, body: dict[str, Any], call: Call, scope: dict) -> dict[str, Any]:
        stop = body.get("stop_sequences")
        call.surface_state = list(stop) if isinstance(stop, list) else None
        return anthropic.messages_to_chat(body)

    def whole(self, data: dict[str, Any], call: Call) -> bytes | None:
        message = anthropic.chat_to_message(
            with_usage(data, call), message_id=anthropic.new_message_id(), model=call.model or "",
            stop_sequences=call.surface_state,
        )
        return orjson.dumps(message)

    def streamer(self, services: Services, call: Call, body: dict[str, Any]) -> StreamWriter:
        translator = anthropic.MessagesStream(anthropic.new_message_id(), call.model or "", stop_sequences=call.surface_state)
        return _MessagesStream(translator, call)

    def error_body(self, error: LLMOpsError) -> bytes:
        return orjson.dumps(anthropic.anthropic_error(error.status, error.message))


MESSAGES_SURFACE = MessagesSurface()
