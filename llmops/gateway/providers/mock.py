"""A built-in test double: deterministic replies with no key and no network.

It is what the embedded `demo` model runs on, so the gateway answers out of the box,
and what load tests use. A chat reply is `options.reply` when configured, otherwise an
extractive echo: the opening sentences of the last user message, cut to max_tokens
words. That makes a summary suite against `demo` meaningful offline: its output is
faithful to its input by construction.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import Field

from llmops.gateway.errors import UpstreamError
from llmops.gateway.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    Provider,
    ProviderOptions,
    UpstreamReply,
    UpstreamStream,
    register,
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
EMBEDDING_DIM = 64


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def extractive_reply(prompt_text: str, max_words: int) -> str:
    sentences = [s for s in _SENTENCE_END.split(prompt_text.strip()) if s]
    reply = " ".join(sentences[:3]) if sentences else "OK."
    words = reply.split()
    if len(words) > max_words:
        reply = " ".join(words[:max_words])
    return reply


def hashed_embedding(text: str) -> list[float]:
    """Bag-of-words hashed into a small unit vector: similar texts land near each other."""
    vec = [0.0] * EMBEDDING_DIM
    for word in re.findall(r"\w+", text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=4).digest()
        vec[int.from_bytes(h[:2], "little") % EMBEDDING_DIM] += 1.0 if h[2] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


class MockOptions(ProviderOptions):
    # The reply to every chat and completions call; unset, an extractive echo of the prompt.
    reply: str | None = None
    # Added before every reply (and before a stream's first chunk), in milliseconds.
    latency_ms: float = Field(default=0.0, ge=0)


@register
class MockProvider(Provider):
    kind = "mock"
    Options = MockOptions
    native = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})
    options: MockOptions

    def _reply_text(self, endpoint: str, body: dict[str, Any]) -> str:
        if self.options.reply is not None:
            return self.options.reply
        max_words = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        if endpoint == COMPLETIONS:
            prompt = body.get("prompt")
            prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
        else:
            users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
            prompt_text = _text_of(users[-1].get("content")) if users else ""
        return extractive_reply(prompt_text, max_words)

    def _usage(self, endpoint: str, body: dict[str, Any], reply: str) -> dict[str, int]:
        from llmops import tokens

        model = self.deployment.model
        if endpoint == COMPLETIONS:
            prompt = body.get("prompt")
            prompt_tokens = tokens.count_text(prompt if isinstance(prompt, str) else " ".join(map(str, prompt or [])), model)
        else:
            prompt_tokens = tokens.count_messages(body.get("messages") or [], model)
        completion_tokens = tokens.count_text(reply, model)
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    async def _delay(self) -> None:
        if self.options.latency_ms:
            await asyncio.sleep(self.options.latency_ms / 1000)

    async def request(self, endpoint: str, body: dict[str, Any]) -> UpstreamReply:
        started = time.perf_counter()
        await self._delay()
        model = self.deployment.model
        created = int(time.time())
        if endpoint == EMBEDDINGS:
            inputs = body.get("input")
            items = [inputs] if isinstance(inputs, str) else list(inputs or [])
            if not items or not all(isinstance(i, str) for i in items):
                raise UpstreamError("mock embeddings take a string or a list of strings", status=400, retryable=False)
            from llmops import tokens

            n = sum(tokens.count_text(i, model) for i in items)
            data: dict[str, Any] = {
                "object": "list",
                "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": hashed_embedding(t)} for i, t in enumerate(items)],
                "usage": {"prompt_tokens": n, "total_tokens": n},
            }
        else:
            reply = self._reply_text(endpoint, body)
            usage = self._usage(endpoint, body, reply)
            if endpoint == CHAT:
                choice = {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
                obj, prefix = "chat.completion", "chatcmpl-"
            else:
                choice = {"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}
                obj, prefix = "text_completion", "cmpl-"
            data = {
                "id": prefix + uuid.uuid4().hex[:24],
                "object": obj,
                "created": created,
                "model": model,
                "choices": [choice],
                "usage": usage,
            }
        return UpstreamReply(data=data, raw=None, upstream_ms=(time.perf_counter() - started) * 1000)

    async def stream(self, endpoint: str, body: dict[str, Any]) -> UpstreamStream:
        if endpoint == EMBEDDINGS:
            raise UpstreamError("embeddings cannot be streamed", status=400, retryable=False)
        started = time.perf_counter()
        await self._delay()
        reply = self._reply_text(endpoint, body)
        usage = self._usage(endpoint, body, reply)
        chunk_id = ("chatcmpl-" if endpoint == CHAT else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        model = self.deployment.model
        words = reply.split(" ")
        pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]

        def chunk(piece: str | None, finish: str | None) -> bytes:
            if endpoint == CHAT:
                delta: dict[str, Any] = {} if piece is None else {"content": piece}
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                obj = "chat.completion.chunk"
            else:
                choice = {"index": 0, "text": piece or "", "finish_reason": finish, "logprobs": None}
                obj = "text_completion"
            return orjson.dumps({"id": chunk_id, "object": obj, "created": created, "model": model, "choices": [choice]})

        async def events() -> AsyncIterator[list[bytes]]:
            for piece in pieces[1:]:
                yield [chunk(piece, None)]
            yield [chunk(None, "stop")]
            yield [orjson.dumps(
                {"id": chunk_id, "object": "chat.completion.chunk" if endpoint == CHAT else "text_completion",
                 "created": created, "model": model, "choices": [], "usage": usage}
            )]

        return UpstreamStream(
            first=[chunk(pieces[0], None)], rest=events(), first_byte_ms=(time.perf_counter() - started) * 1000
        )
