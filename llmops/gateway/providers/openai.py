"""Any OpenAI-compatible HTTP API (OpenAI itself, Azure-style proxies, local servers).

Plain-http upstreams (local and in-cluster servers, where the client's own cost shows)
go through the gateway's lean keep-alive client (upstream_http.py: 4x aiohttp's
throughput on loopback); https ones through the shared aiohttp session, for its TLS
(lazy_session.py: opened on first use).

Options: `native_responses: true` declares that the upstream serves /responses itself
(OpenAI does; an arbitrary OpenAI-compatible server may not).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from llmops.gateway.config import DeploymentConfig
from llmops.gateway.deadline import attempt_deadline
from llmops.gateway.errors import UpstreamError, UpstreamTimeout, deployment_secrets
from llmops.gateway.lazy_session import (
    client_timeout,
    transport_errors,
    transport_or_timeout_errors,
)
from llmops.gateway.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    RESPONSES,
    Provider,
    ProviderContext,
    ProviderOptions,
    UpstreamReply,
    UpstreamStream,
    passed_headers,
    register,
)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524}


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from LLM APIs, treated as no hint


def error_from_response(status: int, raw: bytes, headers: Any, where: str) -> UpstreamError:
    body: dict | None = None
    message = ""
    try:
        parsed = orjson.loads(raw) if raw else None
        if isinstance(parsed, dict):
            body = parsed
            err = parsed.get("error")
            message = err.get("message", "") if isinstance(err, dict) else str(err or parsed.get("message", ""))
    except orjson.JSONDecodeError:
        message = raw[:200].decode("utf-8", "replace")
    # Never relay an upstream 401/403 as the client's own: it is the gateway's key
    # that failed, which the client cannot fix; report it as a bad gateway.
    if status in (401, 403):
        return UpstreamError(f"{where} rejected the gateway's credentials (HTTP {status})", status=502, retryable=True)
    client_status = status if 400 <= status < 500 and status not in (408, 409, 425, 429) else 502
    if status == 429:
        client_status = 429
    return UpstreamError(
        f"{where} answered HTTP {status}: {message or 'no message'}",
        status=client_status,
        retryable=status in RETRYABLE_STATUS,
        retry_after=_retry_after(headers),
        code=f"upstream_{status}",
        body=body,
    )


class OpenAIOptions(ProviderOptions):
    # The upstream serves POST /responses itself (OpenAI does, and vLLM's server; an
    # arbitrary OpenAI-compatible server may not): the gateway may pass calls through.
    native_responses: bool = False


@register
class OpenAIProvider(Provider):
    kind = "openai"
    Options = OpenAIOptions
    native = frozenset({CHAT, COMPLETIONS, EMBEDDINGS})  # and RESPONSES, opted in
    options: OpenAIOptions
    default_api_base = "https://api.openai.com/v1"  # when the deployment names none

    def __init__(self, deployment: DeploymentConfig, context: ProviderContext):
        super().__init__(deployment, context)
        if self.options.native_responses:
            self.native = self.native | {RESPONSES}
        else:
            self.native = self.native - {RESPONSES}
        session, upstream = context.session, context.upstream
        if not deployment.api_base:
            deployment = deployment.model_copy(update={"api_base": self.default_api_base})
            self.deployment = deployment
        self.base = (deployment.api_base or self.default_api_base).rstrip("/")
        self.session = session
        self.headers = {"Content-Type": "application/json"}
        if deployment.api_key:
            self.headers["Authorization"] = f"Bearer {deployment.api_key}"
        # Named by its name (or upstream model), never by its URL: that may carry
        # userinfo, and names internal hosts.
        self.where = f"upstream {self.deployment.name or self.deployment.model}"
        self.secrets = deployment_secrets(deployment.api_key, self.base)
        self._client_timeout: Any = None  # aiohttp's, built on the first call through it
        self.upstream = upstream
        self.fast_pool = None
        self._fast_heads: dict[str, bytes] = {}
        url = urlsplit(self.base)
        if upstream is not None and url.scheme == "http" and url.hostname and not url.query:
            self.fast_pool = upstream.pool(url.hostname, url.port or 80)
            self._fast_path = url.path
            self._fast_fixed = f"Host: {url.netloc.rpartition('@')[2]}\r\n" + "".join(
                f"{name}: {value}\r\n" for name, value in self.headers.items()
            )

    def _fast_head(self, endpoint: str) -> bytes:
        """The request line and headers of a call to `endpoint`, up to the Content-Length value."""
        head = self._fast_heads.get(endpoint)
        if head is None:
            head = self._fast_heads[endpoint] = (
                f"POST {self._fast_path}{endpoint} HTTP/1.1\r\n{self._fast_fixed}Content-Length: ".encode("latin-1")
            )
        return head

    async def _post(self, endpoint: str, payload: bytes, deadline: float) -> Any:
        """The upstream's response once its status is in; TimeoutError after `deadline`."""
        if self.fast_pool is not None and self.upstream is not None:
            return await self.upstream.post(
                self.fast_pool, self._fast_head(endpoint), payload, self.timeouts.connect, deadline
            )
        if self._client_timeout is None:
            # Built once: aiohttp's own timers only guard the connect; asyncio.timeout does
            # the rest (on the fast client, deadlines do).
            self._client_timeout = client_timeout(total=None, sock_connect=self.timeouts.connect, sock_read=None)
        async with asyncio.timeout(deadline - time.monotonic()):
            return await self.session.post(
                self.base + endpoint, data=payload, headers=self.headers, timeout=self._client_timeout
            )

    async def _within(self, deadline: float, resp: Any, read: Any) -> bytes:
        """`await read()` on `resp`, raising TimeoutError after `deadline`."""
        if self.fast_pool is not None:
            resp.set_deadline(deadline)  # checked by the client's shared timer: no timer per read
            try:
                return await read()
            finally:
                resp.clear_deadline()  # not while the gateway writes to its own client
        async with asyncio.timeout(max(0.001, deadline - time.monotonic())):
            return await read()

    async def _open(self, endpoint: str, body: dict[str, Any], deadline: float) -> Any:
        """The upstream's response once its status is in: a 200, or the error it stands for."""
        t = self.timeouts
        timeout = min(t.first_byte, deadline - time.monotonic())
        try:
            resp = await self._post(endpoint, orjson.dumps(body), time.monotonic() + timeout)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{self.where} sent no response within {timeout:.1f}s") from exc
        except transport_errors() as exc:
            raise UpstreamError(f"{self.where} could not be reached: {type(exc).__name__}", status=502) from exc
        if resp.status != 200:
            try:
                raw = await resp.read()
            except transport_or_timeout_errors():
                raw = b""
            resp.release()
            raise error_from_response(resp.status, raw, resp.headers, self.where).scrubbed(self.secrets)
        return resp

    async def request(self, endpoint: str, body: dict[str, Any]) -> UpstreamReply:
        started = time.perf_counter()
        deadline = attempt_deadline(self.timeouts.total)
        resp = await self._open(endpoint, self.upstream_body(body), deadline)
        try:
            raw = await self._within(deadline, resp, resp.read)
        except TimeoutError as exc:
            resp.close()
            raise UpstreamTimeout(f"{self.where} did not finish its reply in time") from exc
        except transport_errors() as exc:
            resp.close()
            raise UpstreamError(f"{self.where} broke off its reply: {type(exc).__name__}") from exc
        except BaseException:
            resp.close()  # cancelled: the client went away
            raise
        resp.release()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"{self.where} sent a reply that is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamError(f"{self.where} sent a reply that is not a JSON object")
        return UpstreamReply(
            data=data, raw=raw, upstream_ms=(time.perf_counter() - started) * 1000, headers=passed_headers(resp.headers)
        )

    def stream_body(self, body: dict[str, Any], endpoint: str = CHAT) -> dict[str, Any]:
        out = self.upstream_body(body)
        out["stream"] = True
        if endpoint in (CHAT, COMPLETIONS):
            # Always ask for usage, so the ledger has the upstream's own count; the app
            # drops the extra chunk when the client did not ask for it. (A Responses API
            # stream ends with its usage anyway, and refuses the option.)
            options = dict(out.get("stream_options") or {})
            options["include_usage"] = True
            out["stream_options"] = options
        return out

    async def stream(self, endpoint: str, body: dict[str, Any]) -> UpstreamStream:
        started = time.perf_counter()
        deadline = attempt_deadline(self.timeouts.total)
        resp = await self._open(endpoint, self.stream_body(body, endpoint), deadline)
        events = self._events(resp, deadline, ends_at_eof=endpoint == RESPONSES)
        try:
            first = await anext(events)
        except StopAsyncIteration as exc:
            resp.close()
            raise UpstreamError(f"{self.where} ended the stream before sending anything") from exc
        except BaseException:
            resp.close()
            raise
        return UpstreamStream(
            first=first, rest=events, closer=resp.close, first_byte_ms=(time.perf_counter() - started) * 1000,
            headers=passed_headers(resp.headers),
        )

    async def _events(self, resp: Any, deadline: float, ends_at_eof: bool = False) -> AsyncIterator[list[bytes]]:
        """Batches of SSE data payloads, one batch per network read.

        A chat stream ends with `[DONE]`; a Responses API stream has none and ends at EOF
        after its terminal event (`ends_at_eof`): EOF after any other event is a break.
        A chat stream whose choices all finished (finish_reason) and then ends at EOF
        without `[DONE]` is complete. An error event (`{"error": ...}`) in a chat stream
        is the upstream's failure: raised, so that a stream that opens with one fails over
        like an HTTP error would, and one that sends it later ends as an error."""
        idle = self.timeouts.idle
        content = resp.content
        pending = b""
        last = before_last = b""
        try:
            while True:
                limit = min(time.monotonic() + idle, deadline)
                try:
                    data = await self._within(limit, resp, content.readany)
                except TimeoutError as exc:
                    if limit >= deadline:
                        cut = UpstreamTimeout(f"{self.where} did not finish its stream within the total "
                                              f"timeout ({self.timeouts.total:g}s)")
                        cut.code = "upstream_total_timeout"
                        raise cut from exc
                    raise UpstreamTimeout(f"{self.where} stalled mid-stream (no data for {idle:.1f}s)") from exc
                except transport_errors() as exc:
                    raise UpstreamError(f"{self.where} broke off the stream: {type(exc).__name__}") from exc
                if not data:
                    if ends_at_eof and _is_terminal(last):
                        return
                    if not ends_at_eof and _finished(before_last, last):
                        return  # every choice ended; the upstream only left out [DONE]
                    # EOF without [DONE]: the upstream died; never pretend it finished.
                    raise UpstreamError(f"{self.where} closed the stream before it was complete")
                if b"\r" in data:
                    data = data.replace(b"\r\n", b"\n")
                pending += data
                *events, pending = pending.split(b"\n\n")
                batch, done = parse_events(events)
                if batch:
                    if not ends_at_eof:
                        failed = _error_event_at(batch)
                        if failed is not None:
                            if failed:
                                yield batch[:failed]  # what came before the error still goes out
                            raise self._stream_error(batch[failed], resp.headers)
                    before_last = batch[-2] if len(batch) > 1 else last
                    last = batch[-1]
                    yield batch
                if done:
                    return
        finally:
            # A fully read response goes back to the pool; anything else is cut, which
            # is how the upstream learns the request was abandoned.
            if content.at_eof():
                resp.release()
            else:
                resp.close()


    def _stream_error(self, payload: bytes, headers: Any) -> UpstreamError:
        """An error event of a chat stream, as the HTTP error it stands for: its `code`
        when that is an HTTP status, else a 502 (retryable, counts toward cooldown)."""
        error = orjson.loads(payload)["error"]
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 502
        exc = error_from_response(status, payload, headers, self.where)
        message = error.get("message") if isinstance(error, dict) else error
        exc.message = f"{self.where} sent an error event in its stream: {message or 'no message'}"
        exc.args = (exc.message,)
        return exc.scrubbed(self.secrets)


def _error_event_at(batch: list[bytes]) -> int | None:
    """The index of the first error event (`{"error": ...}`, no choices) in a batch."""
    for i, payload in enumerate(batch):
        if b'"error"' in payload[:32]:  # a chunk starts {"id": ...: only suspects are parsed
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(event, dict) and event.get("error") and not event.get("choices"):
                return i
    return None


def _finished(*payloads: bytes) -> bool:
    """Whether the last chunks of a chat stream (the one with finish_reason, maybe a
    usage chunk after it) say that every choice ended."""
    for payload in reversed(payloads):
        try:
            chunk = orjson.loads(payload) if payload else None
        except orjson.JSONDecodeError:
            return False
        if not isinstance(chunk, dict):
            return False
        choices = chunk.get("choices")
        if not choices:
            if chunk.get("usage"):
                continue  # the usage chunk after the last choice's end
            return False
        return isinstance(choices, list) and all(
            isinstance(c, dict) and c.get("finish_reason") is not None for c in choices)
    return False


_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})


def _is_terminal(payload: bytes) -> bool:
    """Whether a Responses API event ends its stream."""
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and event.get("type") in _TERMINAL


def parse_events(events: list[bytes]) -> tuple[list[bytes], bool]:
    """The data payloads of complete SSE events, and whether `[DONE]` was among them."""
    batch: list[bytes] = []
    for event in events:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue  # comments, event names, ids
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return batch, True
            if payload:
                batch.append(payload)
    return batch, False
