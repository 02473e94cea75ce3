"""The gateway's HTTP/1.1 connection protocol, run inside uvicorn's server.

uvicorn keeps what it is good at: sockets, workers, signals, lifespan, graceful
shutdown. This class replaces only its per-connection protocol (`HttpToolsProtocol`),
where a request's fixed cost lies, with one that does less per request:

- no per-request asyncio.Event: a receive() that has to wait gets a future, and only then;
- the head of a sized response is written with its body: one write, one TCP segment,
  one wake-up of the client for a whole JSON reply (a stream's head goes out at once);
- no regex over each response header (the app's own headers), only a check that no
  header carries a line break;
- the keep-alive timer is armed once per idle connection and re-armed when it fires
  early, not cancelled and re-created around every request.

Same parser (httptools), same ASGI semantics as uvicorn's: keep-alive, pipelining
(requests queued while one is answered), chunked or sized responses, HEAD,
`Expect: 100-continue`, read back-pressure, write back-pressure, and `http.disconnect`
from receive() once the client is gone (which the gateway uses to cancel upstream calls).
"""

from __future__ import annotations

import asyncio
import http
import logging
import os
import time
import urllib.parse
from collections import deque
from typing import Any

import httptools

log = logging.getLogger("uvicorn.error")

# Past this much unread request body, stop reading the socket until the app reads.
READ_HIGH_WATER = 65536
# A request line and headers longer than this get 431: they would only fill memory.
MAX_HEAD_BYTES = 65536
# Seconds a client may take to send a request's line and headers (then 408 and close),
# and its body (then the connection is closed: the app sees the client leave). Bytes
# trickled in keep a connection from going idle, so without these a slow client held a
# connection as long as it liked. Checked by the keep-alive timer: at most
# keep_alive_timeout late, and no cost per request.
HEAD_TIMEOUT = float(os.environ.get("LLMOPS_HEAD_TIMEOUT") or 10.0)
BODY_TIMEOUT = float(os.environ.get("LLMOPS_BODY_TIMEOUT") or 30.0)


def _status_line(code: int) -> bytes:
    try:
        phrase = http.HTTPStatus(code).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (code, phrase)


STATUS_LINES = {code: _status_line(code) for code in range(100, 600)}
FIRST_REQUEST_GRACE = 1.0  # seconds, at shutdown, for a new connection's first request


class Draining:
    """Set once this process is draining (SIGTERM, see server.py): every response from
    then on closes its connection, so clients and load balancers stop reusing it."""

    active = False
DISCONNECT = {"type": "http.disconnect"}


class GatewayHttpProtocol(asyncio.Protocol):
    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.root_path = config.root_path
        self.keep_alive_timeout = config.timeout_keep_alive
        self.server_state = server_state
        self.app_state = app_state
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport  # set by connection_made, before any data
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.cycle: Cycle | None = None  # the request being answered
        self.pipeline: deque[Cycle] = deque()  # requests read while one is answered
        self.reading_paused = False
        self.writing_paused = False
        self.drain_waiters: list[asyncio.Future] = []
        self.last_active = 0.0
        self.head_since = 0.0  # a request's head is being read since then (0: none)
        self.body_since = 0.0  # a request's body is being read since then (0: none)
        self.idle_timer: asyncio.TimerHandle | None = None
        # Per request, while its head is parsed.
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.reading: Cycle | None = None
        self.refusal: tuple[int, str] | None = None  # set once the client broke the protocol
        self.served = False  # a request has been started on this connection
        self.stopping = False  # the server is stopping: no keep-alive from now on

    # -- connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.server_state.connections.add(self)
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        if transport.get_extra_info("sslcontext"):
            self.scheme = "https"
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        for cycle in (self.cycle, *self.pipeline):
            if cycle is not None:
                cycle.lost()
        self.pipeline.clear()
        self._wake_writers()
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self.parser = None  # type: ignore[assignment]

    def eof_received(self) -> bool | None:
        return None  # close our side too (the default)

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            return
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # (WebSocket, h2c): not spoken here. The request itself is answered as plain
            # HTTP/1.1, as uvicorn does; the bytes of the other protocol are dropped.
            log.debug("ignoring a request to upgrade the connection")
        except httptools.HttpParserError as exc:
            # (httptools wraps what a callback raises; __context__ holds it)
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse(431, f"request line and headers exceed {MAX_HEAD_BYTES} bytes")
            else:
                self._refuse(400, "invalid HTTP request")

    def _refuse(self, status: int, message: str) -> None:
        """The client broke the protocol: read no more, answer what was read before, then
        send `status` and close."""
        if self.refusal is not None:
            return
        self.refusal = (status, message)
        self._pause_reading()
        if self.cycle is None:
            self._send_refusal()

    def _send_refusal(self) -> None:
        status, message = self.refusal  # type: ignore[misc]
        body = message.encode()
        self.transport.write(
            STATUS_LINES[status]
            + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: %d\r\n\r\n" % len(body)
            + body
        )
        self.transport.close()

    # -- keep-alive --------------------------------------------------------------------

    def _arm_idle_timer(self) -> None:
        self.last_active = time.monotonic()
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_later(self.keep_alive_timeout, self._idle_check)

    def _idle_check(self) -> None:
        self.idle_timer = None
        if self.transport.is_closing():
            return
        now = time.monotonic()
        if self.cycle is not None:
            # Busy: armed again when the response is complete, unless the body is still coming.
            if self.reading is self.cycle and self.body_since:
                if now - self.body_since >= BODY_TIMEOUT:
                    log.info("closing a connection whose request body took over %gs", BODY_TIMEOUT)
                    self.transport.close()
                else:
                    wait = min(self.keep_alive_timeout, BODY_TIMEOUT - (now - self.body_since))
                    self.idle_timer = self.loop.call_later(wait, self._idle_check)
            return
        if self.head_since and now - self.head_since >= HEAD_TIMEOUT:
            self._refuse(408, f"request line and headers not received within {HEAD_TIMEOUT:g}s")
            return
        idle = now - self.last_active
        if idle >= self.keep_alive_timeout:
            self.transport.close()
        else:
            wait = self.keep_alive_timeout - idle
            if self.head_since:
                wait = min(wait, HEAD_TIMEOUT - (now - self.head_since))
            self.idle_timer = self.loop.call_later(wait, self._idle_check)

    # -- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.head_bytes = 0
        self.head_since = self.last_active  # set by data_received: no clock read here

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))
        self._count_head(len(name) + len(value))

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge()  # stops the parser; data_received answers 431

    def on_headers_complete(self) -> None:
        parser = self.parser
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        version = parser.get_http_version()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": parser.get_method().decode("ascii"),
            "root_path": self.root_path,
            "path": self.root_path + path,
            "raw_path": self.root_path.encode("ascii") + raw_path,
            "query_string": parsed.query or b"",
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        expect_continue = any(n == b"expect" and v.lower() == b"100-continue" for n, v in self.headers)
        keep_alive = version != "1.0" and parser.should_keep_alive() and not (Draining.active or self.stopping)
        cycle = Cycle(self, scope, keep_alive, expect_continue)
        self.reading = cycle
        self.head_since, self.body_since = 0.0, self.last_active
        if self.cycle is None:
            self._start(cycle)
        else:
            # Pipelined: answered in order, after the one in progress.
            self.pipeline.append(cycle)
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.reading
        if cycle is None or cycle.response_complete:
            return
        cycle.body.append(body)
        cycle.body_size += len(body)
        if cycle.body_size > READ_HIGH_WATER:
            self._pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        cycle = self.reading
        self.reading = None
        self.body_since = 0.0
        if cycle is None:
            return
        cycle.more_body = False
        cycle.wake()

    # -- requests ----------------------------------------------------------------------

    def _start(self, cycle: Cycle) -> None:
        self.cycle = cycle
        self.served = True
        task = self.loop.create_task(cycle.run(self.app))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def response_complete(self, cycle: Cycle) -> None:
        self.server_state.total_requests += 1
        self.cycle = None
        if self.transport.is_closing():
            return
        if not cycle.keep_alive:
            self.transport.close()
            return
        if self.pipeline:
            self._start(self.pipeline.popleft())
            if not self.pipeline:
                self._resume_reading()
            return
        if self.refusal is not None:
            self._send_refusal()
            return
        self._resume_reading()
        self._arm_idle_timer()

    def shutdown(self) -> None:
        """The server is stopping: close when idle, or after the response in progress.

        A connection with no request yet was accepted in the last moments before the
        listener closed, and its client (a load balancer) has likely sent its request
        already: closing it would fail a call that was never started, which a load
        balancer may not retry (a POST). It gets FIRST_REQUEST_GRACE to arrive, and is
        answered."""
        self.stopping = True
        if self.cycle is not None:
            self.cycle.keep_alive = False
        elif self.served or self.transport.is_closing():
            self.transport.close()
        else:
            self.loop.call_later(FIRST_REQUEST_GRACE, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()

    # -- flow control ------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.reading_paused and self.refusal is None:
            self.reading_paused = False
            self.transport.resume_reading()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writers()

    def _wake_writers(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        waiter = self.loop.create_future()
        self.drain_waiters.append(waiter)
        await waiter


class HeadTooLarge(Exception):
    pass


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


class Cycle:
    """One request and its response, as the ASGI app sees them."""

    __slots__ = (
        "conn", "scope", "keep_alive", "expect_continue", "body", "body_size", "more_body", "waiter",
        "disconnected", "response_started", "response_complete", "chunked", "left", "held", "is_head",
    )

    def __init__(self, conn: GatewayHttpProtocol, scope: dict[str, Any], keep_alive: bool, expect_continue: bool):
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.body: list[bytes] = []
        self.body_size = 0
        self.more_body = True
        self.waiter: asyncio.Future | None = None
        self.disconnected = False
        self.response_started = False
        self.response_complete = False
        self.chunked = False
        self.left = 0  # content-length bytes still to send
        self.held: bytes | None = None  # the response head, until the first body bytes
        self.is_head = scope["method"] == "HEAD"  # headers only, whatever the app sends

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def lost(self) -> None:
        self.disconnected = True
        self.wake()

    async def run(self, app: Any) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            log.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started and not self.disconnected:
                await self._send_500()
            else:
                self.conn.transport.close()
        else:
            if self.disconnected:
                return  # nobody to answer (finally still runs)
            if not self.response_started:
                log.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif not self.response_complete:
                log.error("ASGI callable returned without completing response.")
                self.conn.transport.close()
        finally:
            if not self.response_complete:
                self.response_complete = True
                if not self.disconnected:
                    self.conn.response_complete(self)

    async def _send_500(self) -> None:
        await self.send({"type": "http.response.start", "status": 500, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]})
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})

    # -- ASGI receive ------------------------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        if self.expect_continue:
            self.expect_continue = False
            if not self.conn.transport.is_closing():
                self.conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        # Wait for body bytes, the end of the body, or (once the body is read) the client leaving.
        while not self.disconnected and not self.response_complete and not self.body and (
            self.more_body or self.body_size < 0
        ):
            self.conn._resume_reading()
            self.waiter = self.conn.loop.create_future()
            await self.waiter
        if self.disconnected or self.response_complete:
            return DISCONNECT
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        self.body.clear()
        if self.more_body:
            self.body_size = 0
            self.conn._resume_reading()
        else:
            self.body_size = -1  # all read: the next receive() waits for a disconnect
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    # -- ASGI send ---------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        conn = self.conn
        if conn.writing_paused and not self.disconnected:
            await conn.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            self._start_response(message)
            return
        if self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")
        if kind != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.is_head:
            out = b""
        elif self.chunked:
            out = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more:
                out += b"0\r\n\r\n"
        else:
            if len(body) > self.left:
                raise RuntimeError("Response content longer than Content-Length")
            self.left -= len(body)
            out = body
        held = self.held
        if held is not None:
            self.held = None
            out = held + out
        if out:
            conn.transport.write(out)
        if not more:
            if self.left and not self.is_head:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.wake()
            conn.response_complete(self)

    def _start_response(self, message: dict[str, Any]) -> None:
        self.response_started = True
        self.expect_continue = False
        status = message["status"]
        parts = [STATUS_LINES[status]]
        sized = False
        close_asked = False
        for name, value in (*self.conn.server_state.default_headers, *message.get("headers", ())):
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise RuntimeError("Invalid HTTP header: it contains a line break.")
            name = name.lower()
            if name == b"content-length":
                sized = True
                self.left = int(value)
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.chunked = True
                sized = True
            elif name == b"connection" and b"close" in value.lower():
                close_asked = True
                self.keep_alive = False
            parts += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not close_asked:
            parts.append(b"connection: close\r\n")
        if not sized and not self.is_head and status not in (204, 304):
            self.chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
        if self.is_head:
            self.left = 0
        parts.append(b"\r\n")
        head = b"".join(parts)
        if sized and not self.chunked and self.left:
            self.held = head  # a sized reply: head and body leave in one write
        else:
            self.conn.transport.write(head)  # a stream: the client sees the head at once
