"""The APIs clients speak, each over the upstream API the router calls.

A surface turns a client's request into the body of an upstream call, and the answer
(whole, streamed, or an error) back into the client's API. Chat completions,
completions and embeddings pass through. OpenAI's Responses API and Anthropic's
Messages API are translated to and from chat completions (`llmops.gateway.translate`),
so every model the gateway serves speaks all of them, under one governance: the same
keys, limits, guardrails, prompt references and ledger row as chat.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from llmops.errors import InvalidInput, LLMOpsError
from llmops.gateway.call import Call
from llmops.gateway.providers.base import CHAT, COMPLETIONS, EMBEDDINGS
from llmops.gateway.translate import messages as anthropic
from llmops.gateway.translate import responses as openai_responses

if TYPE_CHECKING:
    from llmops.gateway.services import Services

DONE = b"data: [DONE]\n\n"


def error_event(error: LLMOpsError) -> bytes:
    return b"data: " + orjson.dumps(error.to_openai()) + b"\n\n"


class StreamWriter:
    """Guarded upstream chat (or completions) chunks in, the client's stream bytes out."""

    def start(self) -> bytes:
        return b""

    def chunk(self, chunk: dict[str, Any], payload: bytes, changed: bool) -> bytes | None:
        raise NotImplementedError

    def passthrough(self, payload: bytes) -> bytes | None:
        """An upstream event that is valid JSON but no chunk object."""
        return None

    def end(self) -> bytes:
        raise NotImplementedError

    def fail(self, error: LLMOpsError) -> bytes:
        raise NotImplementedError


class Surface:
    """One client API. `path` names it in the ledger and in metrics."""

    path: str = ""
    upstream: str = CHAT
    keeps_state = False  # True when `finished` has work to do

    async def prepare(self, services: Services, body: dict[str, Any], call: Call, scope: dict) -> dict[str, Any]:
        """The upstream request body for this client request (may raise InvalidInput)."""
        return body

    def whole(self, data: dict[str, Any], call: Call) -> bytes | None:
        """The client's reply; None to send the upstream's own bytes when unchanged."""
        return None

    def streamer(self, call: Call, body: dict[str, Any]) -> StreamWriter:
        raise NotImplementedError

    async def finished(self, services: Services, call: Call) -> None:
        """After a reply went out in full (whole or streamed)."""

    def error_body(self, error: LLMOpsError) -> bytes:
        return orjson.dumps(error.to_openai())


# -- OpenAI chat, completions, embeddings: pass-through --------------------------------


class _OpenAIStream(StreamWriter):
    def __init__(self, client_wants_usage: bool):
        self.client_wants_usage = client_wants_usage

    def chunk(self, chunk: dict[str, Any], payload: bytes, changed: bool) -> bytes | None:
        if not chunk.get("choices"):
            if "usage" in chunk and not self.client_wants_usage:
                return None  # the gateway asked for usage; the client did not
        elif not self.client_wants_usage and "usage" in chunk:
            del chunk["usage"]  # some servers put usage on every chunk
            changed = True
        return b"data: " + (orjson.dumps(chunk) if changed else payload) + b"\n\n"

    def passthrough(self, payload: bytes) -> bytes | None:
        return b"data: " + payload + b"\n\n"

    def end(self) -> bytes:
        return DONE

    def fail(self, error: LLMOpsError) -> bytes:
        return error_event(error)


class OpenAISurface(Surface):
    def __init__(self, upstream: str):
        self.path = self.upstream = upstream

    async def prepare(self, services: Services, body: dict[str, Any], call: Call, scope: dict) -> dict[str, Any]:
        if self.upstream == CHAT and "prompt" in body:
            await services.apply_prompt(body, call, scope)
        return body

    def streamer(self, call: Call, body: dict[str, Any]) -> StreamWriter:
        return _OpenAIStream(bool((body.get("stream_options") or {}).get("include_usage")))


CHAT_SURFACE = OpenAISurface(CHAT)
COMPLETIONS_SURFACE = OpenAISurface(COMPLETIONS)
EMBEDDINGS_SURFACE = OpenAISurface(EMBEDDINGS)


# -- OpenAI Responses, over chat ----------------------------------------------------------


class _ResponsesStream(StreamWriter):
    def __init__(self, translator: openai_responses.ResponsesStream, call: Call, state: _ResponsesCall):
        self.translator, self.call, self.state = translator, call, state

    @staticmethod
    def _bytes(events: list[dict]) -> bytes:
        return b"".join(openai_responses.sse(e) for e in events)

    def start(self) -> bytes:
        return self._bytes(self.translator.start())

    def chunk(self, chunk: dict[str, Any], payload: bytes, changed: bool) -> bytes | None:
        return self._bytes(self.translator.feed(chunk)) or None

    def end(self) -> bytes:
        events = self.translator.finish(usage=self.call.chat_usage(), completed_at=int(time.time()))
        self.state.response = self.translator.response
        return self._bytes(events)

    def fail(self, error: LLMOpsError) -> bytes:
        events = self.translator.error(error.message, error.code, error.param)
        events += self.translator.fail(error.message, error.code)
        return self._bytes(events)


class _ResponsesCall:
    """What a Responses call carries from its request to its stored history. `chat` is
    the upstream body itself: its messages as sent, after input guardrails redacted them."""

    def __init__(self, request: dict[str, Any], chat: dict[str, Any], response_id: str, created_at: int):
        self.request, self.chat = request, chat
        self.response_id, self.created_at = response_id, created_at
        self.response: dict[str, Any] | None = None


class ResponsesSurface(Surface):
    path = "/responses"
    upstream = CHAT
    keeps_state = True

    async def prepare(self, services: Services, body: dict[str, Any], call: Call, scope: dict) -> dict[str, Any]:
        history = None
        previous = body.get("previous_response_id")
        if previous is not None:
            if not isinstance(previous, str) or not previous:
                raise InvalidInput("'previous_response_id' must be a response id", param="previous_response_id")
            history = await services.conversations.load(previous, call.key_id)
        prompt = body.pop("prompt", None)
        chat = openai_responses.responses_to_chat(body, history)
        if prompt is not None:
            chat["prompt"] = _registry_reference(prompt)
            await services.apply_prompt(chat, call, scope)
            body.setdefault("model", chat.get("model"))
        call.surface_state = _ResponsesCall(body, chat, openai_responses.new_response_id(), int(time.time()))
        return chat

    def whole(self, data: dict[str, Any], call: Call) -> bytes | None:
        state: _ResponsesCall = call.surface_state
        state.response = openai_responses.chat_to_response(
            _with_usage(data, call), response_id=state.response_id, request=state.request, created_at=state.created_at,
            completed_at=int(time.time()),
        )
        return orjson.dumps(state.response)

    def streamer(self, call: Call, body: dict[str, Any]) -> StreamWriter:
        state: _ResponsesCall = call.surface_state
        translator = openai_responses.ResponsesStream(state.response_id, state.request, state.created_at)
        return _ResponsesStream(translator, call, state)

    async def finished(self, services: Services, call: Call) -> None:
        state: _ResponsesCall = call.surface_state
        if state.response is None or state.request.get("store") is False:
            return
        messages = openai_responses.response_to_history(list(state.chat.get("messages") or []), state.response)
        services.conversations.save(state.response_id, call.key_id, messages)


def _with_usage(data: dict[str, Any], call: Call) -> dict[str, Any]:
    """A translated reply always reports usage: the gateway's count when the upstream gave none."""
    return data if data.get("usage") else {**data, "usage": call.chat_usage()}


def _registry_reference(prompt: Any) -> dict[str, Any]:
    """The Responses API's `prompt: {id, version, variables}` as a registry reference:
    `id` names the prompt, `version` a version number or a label."""
    if not isinstance(prompt, dict) or not isinstance(prompt.get("id"), str) or not prompt["id"]:
        raise InvalidInput("'prompt' must be an object like {\"id\": \"summarize\", \"variables\": {...}}", param="prompt")
    reference: dict[str, Any] = {"name": prompt["id"], "variables": prompt.get("variables") or {}}
    version = prompt.get("version")
    if version is not None:
        text = str(version)
        if text.isdigit():
            reference["version"] = int(text)
        else:
            reference["label"] = text
    return reference


# -- Anthropic Messages, over chat ------------------------------------------------------


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
            _with_usage(data, call), message_id=anthropic.new_message_id(), model=call.model or "", stop_sequences=call.surface_state
        )
        return orjson.dumps(message)

    def streamer(self, call: Call, body: dict[str, Any]) -> StreamWriter:
        translator = anthropic.MessagesStream(
            anthropic.new_message_id(), call.model or "", stop_sequences=call.surface_state
        )
        return _MessagesStream(translator, call)

    def error_body(self, error: LLMOpsError) -> bytes:
        return orjson.dumps(anthropic.anthropic_error(error.status, error.message))


RESPONSES_SURFACE = ResponsesSurface()
MESSAGES_SURFACE = MessagesSurface()
