"""What every API surface is, and the OpenAI ones that pass through.

A surface turns a client's request into the body of an upstream call, and the answer
(whole, streamed, or an error) back into the client's API. Chat completions,
completions and embeddings pass through; the Responses and Messages APIs have modules
of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from llmops.errors import LLMOpsError
from llmops.gateway.call import Call
from llmops.gateway.providers.base import CHAT, COMPLETIONS, EMBEDDINGS

if TYPE_CHECKING:
    from llmops.gateway.services import Services

DONE = b"data: [DONE]\n\n"


def error_event(error: LLMOpsError) -> bytes:
    return b"data: " + orjson.dumps(error.to_openai()) + b"\n\n"


class StreamWriter:
    """Guarded upstream chat (or completions) chunks in, the client's stream bytes out.

    A writer that `owns_events` takes every upstream event as it is (a native stream of
    another API): it applies the output guardrails itself and reports `usage` and
    `texts` for accounting."""

    owns_events = False
    usage: dict[str, Any] | None = None

    def start(self) -> bytes:
        return b""

    def chunk(self, chunk: dict[str, Any], payload: bytes, changed: bool) -> bytes | None:
        raise NotImplementedError

    async def event(self, event: dict[str, Any]) -> bytes | None:
        """For a writer that owns the events: the bytes for one upstream event."""
        raise NotImplementedError

    def texts(self) -> list[str]:
        return []

    def passthrough(self, payload: bytes) -> bytes | None:
        """An upstream event that is valid JSON but no chunk object."""
        return None

    def end(self) -> bytes:
        raise NotImplementedError

    def fail(self, error: LLMOpsError) -> bytes:
        raise NotImplementedError


class NativeStream(StreamWriter):
    """An upstream's own stream in the client's API (not chat), passed on event by event.

    Output guardrails run per text part (`where`: a content block, an output part):
    `feed` a part's text delta, `release` what they still hold when the part ends.
    Subclasses turn events into bytes and read `usage` from them."""

    owns_events = True

    def __init__(self, services: Services, call: Call):
        self.services, self.call = services, call
        self.checks = services.output_checks(call)
        self.guards: dict[Any, Any] = {}
        self.raw: dict[Any, list[str]] = {}

    def feed(self, where: Any, text: str) -> str:
        """The part of `text` that may go out now (all of it when no check runs)."""
        self.raw.setdefault(where, []).append(text)
        if self.checks is None:
            return text
        guard = self.guards.get(where)
        if guard is None:
            guard = self.guards[where] = self.services.output_stream(self.call, self.checks)
        return guard.feed(text)

    async def release(self, where: Any) -> str:
        """At the end of a part: the text its checks still held."""
        guard = self.guards.get(where)
        if guard is None:
            return ""
        assert self.checks is not None  # only checked parts have guards
        return (await guard.afinish()) if self.checks.output_async else guard.finish()

    def texts(self) -> list[str]:
        return ["".join(parts) for parts in self.raw.values()]

    def end(self) -> bytes:
        return b""  # the upstream's own terminal event ended the stream


# Where a text of a request is (the dict holding it, its key) and the role it speaks in.
Slot = tuple[dict[str, Any], str, str]


def slots_view(slots: list[Slot], model: Any, max_tokens: Any) -> dict[str, Any]:
    """A native request's texts as the chat-shaped body input guardrails and limits read."""
    view: dict[str, Any] = {
        "model": model,
        "messages": [{"role": role, "content": holder[key]} for holder, key, role in slots],
    }
    if max_tokens is not None:
        view["max_tokens"] = max_tokens
    return view


def put_back(slots: list[Slot], view: dict[str, Any]) -> None:
    """Input guardrails' redactions in `view`, back where each text came from."""
    for (holder, key, _), message in zip(slots, view["messages"], strict=True):
        holder[key] = message["content"]


class Surface:
    """One client API. `path` names it in the ledger and in metrics; `upstream` is the
    endpoint the router calls, unless `upstream_for` says otherwise for a call."""

    path: str = ""
    upstream: str = CHAT
    keeps_state = False  # True when `finished` has work to do

    async def prepare(self, services: Services, body: dict[str, Any], call: Call, scope: dict) -> dict[str, Any]:
        """The upstream request body for this client request (may raise InvalidInput)."""
        return body

    def upstream_for(self, call: Call) -> str:
        return self.upstream

    def input_view(self, body: dict[str, Any], call: Call) -> dict[str, Any]:
        """What input guardrails and limits read: a chat-shaped body (`messages`,
        `max_tokens`, `model`). `input_checked` puts their redactions back."""
        return body

    def input_checked(self, body: dict[str, Any], view: dict[str, Any], call: Call) -> None:
        """After input guardrails changed `view`: carry the change into `body`."""

    def whole(self, data: dict[str, Any], call: Call) -> bytes | None:
        """The client's reply; None to send the upstream's own bytes when unchanged."""
        return None

    def streamer(self, services: Services, call: Call, body: dict[str, Any]) -> StreamWriter:
        raise NotImplementedError

    async def finished(self, services: Services, call: Call) -> None:
        """After a reply went out in full (whole or streamed)."""

    def error_body(self, error: LLMOpsError) -> bytes:
        return orjson.dumps(error.to_openai())


class _OpenAIStream(StreamWriter):
    def __init__(self, client_wants_usage: bool):
        self.client_wants_usage = client_wants_usage

    def chunk(self, chunk: dict[str, Any], payload: bytes, changed: bool) -> bytes | None:
        if "usage" in chunk and not self.client_wants_usage:
            if not chunk.get("choices"):
                return None  # the gateway asked for usage; the client did not
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

    def streamer(self, services: Services, call: Call, body: dict[str, Any]) -> StreamWriter:
        return _OpenAIStream(bool((body.get("stream_options") or {}).get("include_usage")))


def with_usage(data: dict[str, Any], call: Call) -> dict[str, Any]:
    """A translated reply always reports usage: the gateway's count when the upstream gave none."""
    return data if data.get("usage") else {**data, "usage": call.chat_usage()}


CHAT_SURFACE = OpenAISurface(CHAT)
COMPLETIONS_SURFACE = OpenAISurface(COMPLETIONS)
EMBEDDINGS_SURFACE = OpenAISurface(EMBEDDINGS)
