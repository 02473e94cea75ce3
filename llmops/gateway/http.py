"""Raw ASGI plumbing: read a bounded body, send JSON and SSE, find a header.

The gateway speaks ASGI directly rather than through a web framework: on a path that
should add well under a millisecond, a framework's request objects and middleware
stack are a measurable share of the budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from llmops.errors import InvalidInput, LLMOpsError
from llmops.gateway.errors import PayloadTooLarge

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_HEADERS: Headers = [(b"content-type", b"application/json")]
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def read_body(scope: dict[str, Any], receive: Receive, limit: int) -> bytes:
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {int(declared)} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        if not message.get("more_body"):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# How deep a request's JSON may nest. orjson reads up to 1,024 levels but writes only
# 254, so a deeper body would parse here and fail when forwarded (a 500); no OpenAI
# request needs more than a few dozen (a tool's JSON schema is the deepest part).
MAX_JSON_DEPTH = 128


def _too_deep(body: Any, limit: int) -> bool:
    """Whether any container in `body` sits more than `limit` levels deep."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidInput("request body is empty; send a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object")
    # Counting brackets is C-speed; only a body with that many looks deeper.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _too_deep(body, MAX_JSON_DEPTH):
        raise InvalidInput(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    return body


class ClientGone(Exception):
    """The client disconnected before the gateway could answer."""


async def _send_whole(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    """A reply whose body is known whole: sized, so no chunked framing on either end."""
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_bytes(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await _send_whole(send, status, body, [*JSON_HEADERS, *headers])


async def send_json(send: Send, status: int, data: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send_bytes(send, status, orjson.dumps(data), headers)


async def send_error(
    send: Send,
    error: LLMOpsError,
    headers: Iterable[tuple[bytes, bytes]] = (),
    render: Callable[[LLMOpsError], bytes] | None = None,
) -> None:
    """The error in OpenAI's shape, or in the shape `render` gives (another API's)."""
    extra = list(headers)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None and error.status in (429, 503):
        extra.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    body = render(error) if render is not None else orjson.dumps(error.to_openai())
    await send_bytes(send, error.status, body, extra)


async def send_text(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await _send_whole(send, status, body, [(b"content-type", content_type)])
