"""What every provider gives the router: a JSON reply, or a stream of SSE data payloads.

A provider raises `UpstreamError` for anything but success. A stream is returned only
after its first event has arrived, so every failure before the first byte reaches the
client can still be retried elsewhere.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from llmops.gateway.config import DeploymentConfig, Timeouts

# Endpoints the gateway serves, by the path a provider appends to its api_base.
CHAT = "/chat/completions"
COMPLETIONS = "/completions"
EMBEDDINGS = "/embeddings"


Headers = list[tuple[bytes, bytes]]

# Upstream response headers a client's SDK reads (its `_request_id`, rate-limit state,
# processing time); the rest describe the upstream connection, not the answer.
_PASSED_HEADERS = ("x-request-id", "openai-processing-ms", "request-id")
_PASSED_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")


def passed_headers(headers: Any) -> Headers:
    """The headers of an upstream response that go back to the client, as ASGI pairs.
    `headers` is any mapping with `items()` (aiohttp's, or the gateway's own client's)."""
    out = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in _PASSED_HEADERS or lower.startswith(_PASSED_PREFIXES):
            out.append((lower.encode("latin-1"), value.encode("latin-1")))
    return out


def upstream_request_id(headers: Headers) -> str | None:
    for name, value in headers:
        if name in (b"x-request-id", b"request-id"):
            return value.decode("latin-1")
    return None


@dataclass
class UpstreamReply:
    data: dict[str, Any]
    raw: bytes | None = None  # the upstream's bytes, forwarded as-is when nothing changed
    upstream_ms: float = 0.0
    headers: Headers = field(default_factory=list)  # passed back to the client


def reply_texts(endpoint: str, data: dict[str, Any]) -> list[str]:
    """The texts of a chat or completions reply, one per choice that has one."""
    texts = []
    for choice in data.get("choices") or []:
        if endpoint == CHAT:
            content = (choice.get("message") or {}).get("content")
        else:
            content = choice.get("text")
        if isinstance(content, str):
            texts.append(content)
    return texts


def replace_texts(endpoint: str, data: dict[str, Any], texts: list[str]) -> None:
    """Put `texts` (as reply_texts gave them, changed) back into the reply."""
    i = 0
    for choice in data.get("choices") or []:
        if endpoint == CHAT:
            message = choice.get("message") or {}
            if isinstance(message.get("content"), str):
                message["content"] = texts[i]
                i += 1
        elif isinstance(choice.get("text"), str):
            choice["text"] = texts[i]
            i += 1


@dataclass
class UpstreamStream:
    """An open stream: `first` is the first batch of data payloads, `rest` yields the
    others.

    A payload is the bytes after `data: ` (one JSON chunk); the terminal `[DONE]` is
    not yielded. Payloads come in batches, one per network read, so the gateway can
    forward what arrived together in one write. `close()` aborts the upstream request
    (the client went away).
    """

    first: list[bytes]
    rest: AsyncIterator[list[bytes]]
    closer: Any = None
    first_byte_ms: float = 0.0
    headers: Headers = field(default_factory=list)  # passed back to the client
    started: float = field(default_factory=time.perf_counter)

    async def close(self) -> None:
        if self.closer is not None:
            result = self.closer()
            if hasattr(result, "__await__"):
                await result
            self.closer = None


class Provider(ABC):
    kind: str = ""

    def __init__(self, deployment: DeploymentConfig, timeouts: Timeouts):
        self.deployment = deployment
        self.timeouts = deployment.timeouts or timeouts

    @abstractmethod
    async def request(self, endpoint: str, body: dict[str, Any]) -> UpstreamReply:
        """Call `endpoint` without streaming."""

    @abstractmethod
    async def stream(self, endpoint: str, body: dict[str, Any]) -> UpstreamStream:
        """Call `endpoint` with `stream: true`; returns once the first event arrived."""

    async def start(self) -> None:  # noqa: B027 - optional hook, most providers need none
        """Open connections or background pollers (called at gateway start)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release what `start` opened."""

    def load(self) -> float | None:
        """The upstream's own queue length, where the provider can read it."""
        return None

    def reachable(self) -> bool | None:
        """Whether the upstream answers its health probe; None when the provider has none."""
        return None

    def upstream_body(self, body: dict[str, Any]) -> dict[str, Any]:
        out = dict(body)
        out["model"] = self.deployment.model
        for k, v in self.deployment.extra_params.items():
            out.setdefault(k, v)
        return out
