"""How the eval harness calls models: any OpenAI-compatible endpoint, usually the llmops gateway.

`HttpModelClient` speaks the OpenAI chat and embeddings API over httpx; pointed at a
gateway URL it runs against a remote gateway, given an ASGI transport it runs against a
gateway in this process (`llmops.gateway.clients`), so suites run offline in CI with no port.

A call that renders a registry version carries it (`prompt=PromptRef(...)`). A client
made with `prompt_references=True`, for an llmops gateway that reads the same registry,
sends the reference (`prompt: {name, version, variables}`) instead of the messages: the
gateway renders the same template and records the prompt's name and version on the ledger
row, so Spend and per-version figures count eval and app calls. Any other server gets the
rendered messages: a gateway on another registry could hold another template under the
same version number.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import httpx

from llmops.errors import LLMOpsError

# Model calls in flight when a run names none. A hosted API's per-key limits are the
# bottleneck, and 8 stays under most; a gateway in this process or on this machine
# (the offline `demo` model, a local server) answers as fast as the CPU allows, and it
# does its own per-deployment retries. Either way a run slows down on 429s (pacing.py).
REMOTE_CONCURRENCY = 8
LOCAL_CONCURRENCY = 32
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


class ModelCallError(LLMOpsError):
    """A model call failed; the message is the upstream's, never the request's key."""

    status = 502
    type = "api_error"
    code = "model_call_failed"


class RateLimited(ModelCallError):
    """The server said "not now": HTTP 429, or 503 with a Retry-After. `retry_after` is its
    wait in seconds (None when it named none); the runner's pacing retries these."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class ModelResponse:
    text: str
    usage: dict[str, Any] = field(default_factory=dict)
    cost: float | None = None  # dollars, from the gateway's x-llmops-cost header
    latency_ms: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    # The assistant's tool calls, in OpenAI's shape ({id, type, function: {name, arguments}}).
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # The gateway's x-llmops-request-id: the call's ledger row, which feedback is tied to.
    request_id: str | None = None
    retries: int = 0  # answers of 429 (or 503 with Retry-After) before this one


def tool_calls_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An assistant message's tool calls, normalised: `arguments` always a string."""
    found = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        found.append(
            {"id": call.get("id"), "type": "function", "function": {"name": function.get("name"), "arguments": arguments}}
        )
    return found


@dataclass(frozen=True)
class PromptRef:
    """The registry version a call's messages were rendered from, and its variables;
    `turns`, the messages the call sends after the rendered ones (a case's `messages`)."""

    name: str
    version: int
    variables: dict[str, Any]
    turns: list[dict[str, Any]] = field(default_factory=list)


class ModelClient(Protocol):
    async def chat(
        self, model: str, messages: list[dict], params: dict[str, Any], prompt: PromptRef | None = None
    ) -> ModelResponse: ...

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]: ...


def _api_base(base_url: str) -> str:
    # Accept both the gateway's root and an OpenAI-style base ending in /v1.
    base = base_url.rstrip("/")
    return base if base.endswith("/v1") else base + "/v1"


@dataclass
class Reply:
    """What a POST got back, whichever HTTP client made it."""

    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive (httpx's Headers, aiohttp's CIMultiDict)
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """The server's wait in seconds: `retry-after-ms` (OpenAI's), else `Retry-After` as
    seconds or as an HTTP date; None when it names none (or nothing readable)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP dates are GMT
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_body(reply: Reply) -> Any:
    try:
        data = reply.json()
    except ValueError:
        return None
    return data.get("error") if isinstance(data, dict) else None


def _quota_gone(reply: Reply) -> bool:
    """A 429 that waiting will not cure: OpenAI's insufficient_quota, the gateway's budget."""
    error = _error_body(reply)
    if not isinstance(error, dict):
        return False
    return "insufficient_quota" in (error.get("type"), error.get("code")) or error.get("code") == "budget_exceeded"


def _call_error(reply: Reply, what: str) -> ModelCallError:
    message = f"{what} failed: {_error_message(reply)}"
    wait = retry_after_seconds(reply.headers)
    if reply.status == 429 and not _quota_gone(reply):
        return RateLimited(message, retry_after=wait)
    if reply.status == 503 and wait is not None:
        return RateLimited(message, retry_after=wait)
    return ModelCallError(message)


def _error_message(reply: Reply) -> str:
    error = _error_body(reply)
    if isinstance(error, dict):
        message = error.get("message")
    elif error is not None:
        message = str(error)
    else:
        message = reply.body[:200].decode("utf-8", "replace")
    return f"HTTP {reply.status}: {message or reply.reason}"


class HttpModelClient:
    """An OpenAI-compatible client (chat completions and embeddings).

    A server at a URL is called over aiohttp: at the run's concurrency httpx's connection
    pool cost about 4 ms of CPU a call against aiohttp's 0.5, which capped a run near 150
    calls/s. An ASGI app in this process (`transport`) is called over httpx's transport.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
        prompt_references: bool = False,
    ) -> None:
        headers = {"user-agent": "llmops-eval"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self.base_url = _api_base(base_url)
        self._headers = headers
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None
        self._session: aiohttp.ClientSession | None = None  # made on the first call, in its loop
        if transport is not None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=10.0),
                transport=transport,
            )
        self.prompt_references = prompt_references
        local = transport is not None or httpx.URL(self.base_url).host in LOCAL_HOSTS
        self.suggested_concurrency = LOCAL_CONCURRENCY if local else REMOTE_CONCURRENCY

    async def chat(
        self, model: str, messages: list[dict], params: dict[str, Any], prompt: PromptRef | None = None
    ) -> ModelResponse:
        body = {**params, "model": model, "messages": messages, "stream": False}
        if prompt is not None and self.prompt_references:
            reference = {"name": prompt.name, "version": prompt.version, "variables": prompt.variables}
            # The gateway renders the version and appends the request's own messages to it.
            body = {**params, "model": model, "messages": list(prompt.turns), "prompt": reference, "stream": False}
        started = time.perf_counter()
        response = await self._post("/chat/completions", body, f"for model {model!r}")
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status >= 400:
            raise _call_error(response, f"model {model!r}")
        try:
            data = response.json()
        except ValueError:
            raise ModelCallError(f"model {model!r} returned no JSON (HTTP {response.status})") from None
        try:
            message = data["choices"][0]["message"]
            text = message.get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ModelCallError(f"model {model!r} returned no choices") from None
        cost_header = response.headers.get("x-llmops-cost")
        return ModelResponse(
            text=text,
            usage=data.get("usage") or {},
            cost=float(cost_header) if cost_header else None,
            latency_ms=latency_ms,
            raw=data,
            tool_calls=tool_calls_of(message),
            request_id=response.headers.get("x-llmops-request-id"),
        )

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        response = await self._post("/embeddings", {"model": model, "input": texts}, "for embeddings")
        if response.status >= 400:
            raise _call_error(response, f"embeddings model {model!r}")
        rows = sorted(response.json()["data"], key=lambda row: row["index"])
        return [row["embedding"] for row in rows]

    async def _post(self, path: str, body: dict[str, Any], what: str) -> Reply:
        try:
            if self._http is not None:
                answer = await self._http.post(path, json=body)
                return Reply(answer.status_code, answer.reason_phrase, answer.headers, answer.content)
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    headers=self._headers,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=self._timeout),
                    connector=aiohttp.TCPConnector(limit=64),
                    trust_env=True,  # HTTPS_PROXY and the like, as httpx reads them
                )
            async with self._session.post(self.base_url + path, json=body) as reply:
                return Reply(reply.status, reply.reason or "", reply.headers, await reply.read())
        except (httpx.HTTPError, aiohttp.ClientError, TimeoutError) as exc:
            raise ModelCallError(f"cannot reach {self.base_url} {what}: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HttpModelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
