"""What every provider gives the router: a JSON reply, or a stream of SSE data payloads,
and the registry that maps a deployment's `provider:` to its class.

A provider raises `UpstreamError` for anything but success. A stream is returned only
after its first event has arrived, so every failure before the first byte reaches the
client can still be retried elsewhere.

A provider is one module in this package: a `Provider` subclass with a `kind`, its own
`Options` model (what the deployment's `options:` mapping may hold, checked when the
config loads), the endpoints it serves `native`ly, and `@register` on the class. Every
module here is imported by the registry, so a new file is all a new provider takes; one
outside the package registers itself the same way once its module is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from llmops.gateway.config import DeploymentConfig, GatewayConfig, ProviderOptions, RouterSettings, Timeouts

if TYPE_CHECKING:
    from llmops.gateway.lazy_session import LazySession
    from llmops.gateway.upstream_http import UpstreamClient

# Endpoints the gateway serves, by the path a provider appends to its api_base.
CHAT = "/chat/completions"
COMPLETIONS = "/completions"
EMBEDDINGS = "/embeddings"
RESPONSES = "/responses"  # OpenAI's Responses API
MESSAGES = "/messages"  # Anthropic's Messages API
ENDPOINTS = (CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, MESSAGES)


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
        # The gateway's own client gives names in lower case already; aiohttp does not.
        lower = name if name.islower() else name.lower()
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


def _response_parts(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The output_text parts of a Responses API reply, in order."""
    return [
        part
        for item in data.get("output") or []
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "output_text" and isinstance(part.get("text"), str)
    ]


def _message_blocks(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The text blocks of a Messages API reply, in order."""
    return [
        block for block in data.get("content") or []
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]


def reply_texts(endpoint: str, data: dict[str, Any]) -> list[str]:
    """The texts of a reply: one per chat or completions choice that has one, one per
    output_text part of a Responses API reply, one per text block of a Messages reply."""
    if endpoint == RESPONSES:
        return [part["text"] for part in _response_parts(data)]
    if endpoint == MESSAGES:
        return [block["text"] for block in _message_blocks(data)]
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
    if endpoint == RESPONSES:
        for part, text in zip(_response_parts(data), texts, strict=True):
            part["text"] = text
        return
    if endpoint == MESSAGES:
        for block, text in zip(_message_blocks(data), texts, strict=True):
            block["text"] = text
        return
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


@dataclass(frozen=True)
class ProviderContext:
    """What the gateway gives every provider it builds, whatever its kind."""

    timeouts: Timeouts  # the gateway's; a deployment's own `timeouts` win
    router: RouterSettings
    session: LazySession  # the shared aiohttp session, opened on first use
    upstream: UpstreamClient | None = None  # the lean keep-alive client for plain http

    @classmethod
    def of(
        cls, config: GatewayConfig, session: LazySession, upstream: UpstreamClient | None = None
    ) -> ProviderContext:
        return cls(timeouts=config.timeouts, router=config.router, session=session, upstream=upstream)


class Provider(ABC):
    """One deployment's upstream. Built once at start-up as `cls(deployment, context)`.

    - `kind`: the name a deployment's `provider:` gives; `@register` files it under it.
    - `Options`: the model of the deployment's `options:` mapping (validated at load,
      handed over as `self.options`).
    - `native`: the endpoints (CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, MESSAGES) the
      upstream serves itself; a provider may widen or narrow it per deployment, from
      its options, in `__init__`. `serves(endpoint)` reads it.
    - `balance_by_load`: `load()` is the upstream's queue, so the router sends a call to
      the least loaded of several such deployments rather than by weight.
    """

    kind: ClassVar[str] = ""
    Options: ClassVar[type[ProviderOptions]] = ProviderOptions
    native: frozenset[str] = frozenset()
    balance_by_load: ClassVar[bool] = False
    options: ProviderOptions

    def __init__(self, deployment: DeploymentConfig, context: ProviderContext):
        self.deployment = deployment
        self.context = context
        self.timeouts = deployment.timeouts or context.timeouts
        options = deployment.options
        if not isinstance(options, self.Options):
            # Validated into this class's Options when the config loaded; a deployment
            # copied around validation (model_copy) is checked here.
            options = self.Options.model_validate(options.model_dump(exclude_unset=True))
        self.options = options

    def serves(self, endpoint: str) -> bool:
        """Whether the upstream serves `endpoint` itself (no translation over chat)."""
        return endpoint in self.native

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


# -- the registry --------------------------------------------------------------------

PROVIDERS: dict[str, type[Provider]] = {}
P = TypeVar("P", bound=type[Provider])


def register(cls: P) -> P:
    """Class decorator: file `cls` under its `kind`, for deployments to name."""
    if not cls.kind:
        raise ValueError(f"provider {cls.__name__} has no kind")
    known = PROVIDERS.get(cls.kind)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"provider kind {cls.kind!r} is taken by {known.__module__}.{known.__qualname__}")
    PROVIDERS[cls.kind] = cls
    return cls


def provider_class(kind: str) -> type[Provider] | None:
    _load_builtins()
    return PROVIDERS.get(kind)


def provider_kinds() -> list[str]:
    _load_builtins()
    return sorted(PROVIDERS)


_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    # Each module registers its provider on import. (None imports a heavy library at
    # module level: litellm is imported when a litellm deployment is built.)
    from llmops.gateway import providers

    for module in pkgutil.iter_modules(providers.__path__):
        if module.name != "base":
            importlib.import_module(f"{providers.__name__}.{module.name}")
