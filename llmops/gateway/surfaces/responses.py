"""OpenAI's Responses API: passed through to upstreams that serve it, translated over
chat completions for the rest.

Native when every deployment that may answer the model serves `/responses` itself (its
provider says so: vLLM, or OpenAI with `native_responses`): the request goes upstream
as it came, `previous_response_id` included, once the gateway has checked that the
response it names was made with the caller's key. Translated otherwise
(`llmops.gateway.translate.responses`), the gateway then keeping the conversation a
`previous_response_id` continues. Either way one governance: `prompt` names a registry
prompt, input guardrails read every text the client sent, output guardrails the reply
and the stream's text events, and the ledger row has the call's usage.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from llmops.errors import InvalidInput, LLMOpsError
from llmops.gateway.call import Call
from llmops.gateway.providers.base import CHAT, RESPONSES
from llmops.gateway.surfaces.base import (
    NativeStream,
    Slot,
    StreamWriter,
    Surface,
    put_back,
    slots_view,
    with_usage,
)
from llmops.gateway.translate import responses as translate

if TYPE_CHECKING:
    from llmops.gateway.services import Services

TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class _State:
    """What one Responses call carries from its request to its stored conversation."""

    def __init__(self, request: dict[str, Any], *, native: bool, chat: dict[str, Any] | None = None):
        self.request = request
        self.native = native
        self.chat = chat  # translated: the upstream body (its messages as sent, redacted)
        self.response_id = translate.new_response_id()
        self.created_at = int(time.time())
        self.response: dict[str, Any] | None = None
        self.slots: list[Slot] = []  # native: where input guardrails' texts go back


class ResponsesSurface(Surface):
    path = "/responses"
    upstream = CHAT
    keeps_state = True

    async def prepare(self, services: Services, body: dict[str, Any], call: Call, scope: dict) -> dict[str, Any]:
        previous = body.get("previous_response_id")
        if previous is not None and (not isinstance(previous, str) or not previous):
            raise InvalidInput("'previous_response_id' must be a response id", param="previous_response_id")
        prompt = body.pop("prompt", None)
        if prompt is not None:
            await _apply_registry_prompt(services, body, prompt, call, scope)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidInput("`model` is required", param="model")
        native = services.router.serves_natively(model, RESPONSES)
        history = None
        if previous is not None:
            kept = await services.conversations.load(previous, call.key_id)
            if kept.upstream is not None and not native:
                raise InvalidInput(
                    f"response {previous!r} is kept by the upstream that made it ({kept.upstream}); continue it "
                    "with a model served there", param="previous_response_id",
                )
            if kept.upstream is None:
                native, history = False, kept.messages
        if native:
            call.surface_state = _State(body, native=True)
            return body
        chat = translate.responses_to_chat(body, history)
        call.surface_state = _State(body, native=False, chat=chat)
        return chat

    def upstream_for(self, call: Call) -> str:
        return RESPONSES if call.surface_state.native else CHAT

    def input_view(self, body: dict[str, Any], call: Call) -> dict[str, Any]:
        state: _State = call.surface_state
        if not state.native:
            return body
        state.slots = _slots(body)
        return slots_view(state.slots, body.get("model"), body.get("max_output_tokens"))

    def input_checked(self, body: dict[str, Any], view: dict[str, Any], call: Call) -> None:
        state: _State = call.surface_state
        if state.native:
            put_back(state.slots, view)

    def whole(self, data: dict[str, Any], call: Call) -> bytes | None:
        state: _State = call.surface_state
        if state.native:
            state.response = data
            return None
        state.response = translate.chat_to_response(
            with_usage(data, call), response_id=state.response_id, request=state.request,
            created_at=state.created_at, completed_at=int(time.time()),
        )
        return orjson.dumps(state.response)

    def streamer(self, services: Services, call: Call, body: dict[str, Any]) -> StreamWriter:
        state: _State = call.surface_state
        if state.native:
            return _NativeStream(services, call, state)
        return _TranslatedStream(translate.ResponsesStream(state.response_id, state.request, state.created_at), call, state)

    async def finished(self, services: Services, call: Call) -> None:
        state: _State = call.surface_state
        response = state.response
        if response is None or state.request.get("store") is False:
            return
        if state.native:
            # The upstream keeps it; the gateway keeps whose it is, and where.
            if isinstance(response.get("id"), str):
                services.conversations.save(response["id"], call.key_id, [], upstream=call.deployment)
            return
        assert state.chat is not None
        messages = translate.response_to_history(list(state.chat.get("messages") or []), response)
        services.conversations.save(state.response_id, call.key_id, messages)


class _TranslatedStream(StreamWriter):
    def __init__(self, translator: translate.ResponsesStream, call: Call, state: _State):
        self.translator, self.call, self.state = translator, call, state

    @staticmethod
    def _bytes(events: list[dict]) -> bytes:
        return b"".join(translate.sse(e) for e in events)

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


class _NativeStream(NativeStream):
    """An upstream's own Responses stream, passed on event by event.

    Output guardrails read the text deltas of each (output item, content part); text
    they hold back goes out in a delta of its own before that part's `.done` event, and
    the texts in `.done` events and in the final response are the redacted ones. Events
    are numbered again, since a held-back tail adds one."""

    def __init__(self, services: Services, call: Call, state: _State):
        super().__init__(services, call)
        self.state = state
        self.safe: dict[tuple[Any, Any], list[str]] = {}
        self.sequence = 0

    async def event(self, event: dict[str, Any]) -> bytes | None:
        kind = event.get("type")
        out = [event]
        if kind == "response.output_text.delta":
            where = (event.get("output_index"), event.get("content_index"))
            if isinstance(event.get("delta"), str):
                event["delta"] = safe = self.feed(where, event["delta"])
                self.safe.setdefault(where, []).append(safe)
        elif kind == "response.output_text.done" and self.checks is not None:
            where = (event.get("output_index"), event.get("content_index"))
            tail = await self.release(where)
            if tail:
                self.safe.setdefault(where, []).append(tail)
                out.insert(0, {**event, "type": "response.output_text.delta", "delta": tail, "logprobs": []})
                out[0].pop("text", None)
            event["text"] = "".join(self.safe.get(where, []))
        elif kind == "response.content_part.done" and self.checks is not None:
            self._redact_part(event.get("part"), (event.get("output_index"), event.get("content_index")))
        elif kind == "response.output_item.done" and self.checks is not None:
            self._redact_item(event.get("item"), event.get("output_index"))
        elif kind in TERMINAL and isinstance(event.get("response"), dict):
            response = event["response"]
            if self.checks is not None:
                for index, item in enumerate(response.get("output") or []):
                    self._redact_item(item, index)
            self.usage = response.get("usage")
            self.state.response = response
        for each in out:
            each["sequence_number"] = self.sequence
            self.sequence += 1
        return b"".join(translate.sse(each) for each in out)

    def _redact_part(self, part: Any, where: tuple[Any, Any]) -> None:
        if isinstance(part, dict) and part.get("type") == "output_text" and where in self.safe:
            part["text"] = "".join(self.safe[where])

    def _redact_item(self, item: Any, index: Any) -> None:
        if isinstance(item, dict) and item.get("type") == "message":
            for content_index, part in enumerate(item.get("content") or []):
                self._redact_part(part, (index, content_index))

    def fail(self, error: LLMOpsError) -> bytes:
        event = {"type": "error", "code": error.code, "message": error.message, "param": error.param,
                 "sequence_number": self.sequence}
        self.sequence += 1
        return translate.sse(event)


def _slots(body: dict[str, Any]) -> list[Slot]:
    """Every text a Responses request carries, where it is and in which role."""
    slots: list[Slot] = []
    if isinstance(body.get("instructions"), str):
        slots.append((body, "instructions", "system"))
    given = body.get("input")
    if isinstance(given, str):
        slots.append((body, "input", "user"))
        return slots
    for item in given if isinstance(given, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            role = "system" if item.get("role") == "developer" else str(item.get("role") or "user")
            content = item.get("content")
            if isinstance(content, str):
                slots.append((item, "content", role))
            for part in content if isinstance(content, list) else []:
                if isinstance(part, dict) and part.get("type") in ("input_text", "output_text"):
                    if isinstance(part.get("text"), str):
                        slots.append((part, "text", role))
        elif kind == "function_call_output" and isinstance(item.get("output"), str):
            slots.append((item, "output", "tool"))
    return slots


async def _apply_registry_prompt(services: Services, body: dict[str, Any], prompt: Any, call: Call, scope: dict) -> None:
    """The Responses API's `prompt: {id, version, variables}` from the registry: its
    messages go before the input, its model config is the default for what the client
    did not set."""
    chat: dict[str, Any] = {"prompt": _registry_reference(prompt), "messages": []}
    for key in ("model", "user"):
        if key in body:
            chat[key] = body[key]
    await services.apply_prompt(chat, call, scope)
    items = [{"role": m["role"], "content": m["content"]} for m in chat["messages"]]
    given = body.get("input")
    if isinstance(given, str):
        items.append({"role": "user", "content": given})
    elif isinstance(given, list):
        items.extend(given)
    body["input"] = items
    for chat_key, key in (("model", "model"), ("temperature", "temperature"), ("top_p", "top_p"),
                          ("max_tokens", "max_output_tokens")):
        if chat.get(chat_key) is not None:
            body.setdefault(key, chat[chat_key])


def _registry_reference(prompt: Any) -> dict[str, Any]:
    """`prompt: {id, version, variables}` as a registry reference: `id` names the
    prompt, `version` a version number or a label."""
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


RESPONSES_SURFACE = ResponsesSurface()
