"""Chat completions and their streamed chunks, as an upstream sends them, checked
against the openai SDK's types: the input of the Responses and Messages translators."""

from __future__ import annotations

from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat.completion_create_params import (
    CompletionCreateParamsNonStreaming,
    CompletionCreateParamsStreaming,
)
from pydantic import TypeAdapter

CHAT_BODY = TypeAdapter(CompletionCreateParamsNonStreaming)
CHAT_STREAM_BODY = TypeAdapter(CompletionCreateParamsStreaming)


def drain(value: Any) -> Any:
    """Pydantic validates `Iterable` fields lazily; consuming them runs the checks."""
    if isinstance(value, dict):
        return {k: drain(v) for k, v in value.items()}
    if isinstance(value, (str, bytes, int, float, bool, type(None))):
        return value
    return [drain(v) for v in value]


def valid_chat(body: dict) -> dict:
    adapter = CHAT_STREAM_BODY if body.get("stream") else CHAT_BODY
    drain(adapter.validate_python(body))
    return body


def completion(message: dict, finish_reason: str, usage: dict, **choice: Any) -> dict:
    chat = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "qwen2.5-7b",
        "choices": [
            {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason, **choice}
        ],
        "usage": usage,
    }
    ChatCompletion.model_validate(chat)
    return chat


def chunk(delta: dict | None = None, finish_reason: str | None = None, usage: dict | None = None, **choice: Any) -> dict:
    value: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "qwen2.5-7b",
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason, **choice}],
    }
    if usage is not None:
        value["usage"] = usage
    ChatCompletionChunk.model_validate(value)
    return value


def text_chunks(pieces: tuple[str, ...], usage: dict, finish_reason: str = "stop", **choice: Any) -> list[dict]:
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in pieces]
    chunks.append(chunk({}, finish_reason, **choice))
    chunks.append(chunk(None, usage=usage))
    return chunks


def tool_chunks(usage: dict, preamble: str | None, opening_content: str | None) -> list[dict]:
    """An optional text, then two parallel calls with their arguments split over chunks,
    as OpenAI streams them."""
    chunks = [chunk({"role": "assistant", "content": opening_content})]
    if preamble:
        chunks.append(chunk({"content": preamble}))

    def opened(index: int, call_id: str, name: str) -> dict:
        return chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                      "function": {"name": name, "arguments": ""}}]})

    def arguments(index: int, piece: str) -> dict:
        return chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})

    chunks += [
        opened(0, "call_w", "get_weather"),
        arguments(0, '{"ci'),
        arguments(0, 'ty": "Par'),
        arguments(0, 'is"}'),
        opened(1, "call_t", "get_time"),
        arguments(1, '{"city": '),
        arguments(1, '"Paris"}'),
        chunk({}, "tool_calls"),
        chunk(None, usage=usage),
    ]
    return chunks
