"""A lean HTTP/1.1 client for plain-http upstreams: the gateway's hot path to local
servers (vLLM, fakes, in-cluster proxies).

Measured on loopback (one core, 32 connections, a bare pass-through under uvicorn):
aiohttp's client made 3,800 req/s, this one 16,000. It is a keep-alive connection pool
on asyncio protocols with httptools parsing the responses, and does only what the
gateway needs: POST a JSON body, read the status and headers, then the body whole or
as it arrives (chunked or by length). https upstreams (hosted APIs, where the network
dwarfs the client) keep aiohttp, with its TLS and proxy handling.

A response is read through the same few calls the providers use on aiohttp's:
`status`, `headers.get`, `read()`, `content.readany()`, `content.at_eof()`,
`release()` (back to the pool, when read to the end) and `close()` (cut the
connection: how an upstream learns that its client went away).

Timeouts are deadlines (`time.monotonic()` values) on the connection, checked by one
timer every `TICK` seconds for all connections in flight, instead of one timer per wait:
`asyncio.timeout` costs about 7 us to arm and disarm, twice per request and once per
stream chunk, while setting a deadline is an attribute write. A request that misses its
deadline gets TimeoutError (up to TICK late) and its connection is cut.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import httptools

# A connection idle this long may have been closed by the server without our seeing it yet.
IDLE_SECONDS = 30.0
MAX_IDLE_PER_HOST = 256
# Bytes a response may hold unread before the socket stops being read (back-pressure).
HIGH_WATER = 1 << 20
# How often deadlines are checked; timeouts fire up to this late.
TICK = 0.05
NO_DEADLINE = float("inf")


class UpstreamConnectionError(ConnectionError):
    """The upstream could not be reached, or broke the connection or the protocol."""


class Headers(dict):
    """Response headers by lower-cased name (the last value when one repeats)."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class Response:
    def __init__(self, conn: _Connection):
        self._conn = conn
        self.status = 0
        self.headers = Headers()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self._settled = False  # released to the pool or closed

    @property
    def content(self) -> Response:
        return self

    def set_deadline(self, deadline: float) -> None:
        """Reads after `deadline` (time.monotonic()) raise TimeoutError and cut the connection."""
        self._conn.arm(deadline)

    def clear_deadline(self) -> None:
        self._conn.disarm()

    # -- fed by the connection ----------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._conn.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if error is not None and not self._eof:
            self._error = error
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the provider -------------------------------------------------------------

    async def readany(self) -> bytes:
        """What has arrived (waiting for something), or b"" at the end of the body."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._conn.resume()
        return data

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.readany():
            parts.append(chunk)
        return b"".join(parts)

    def at_eof(self) -> bool:
        return self._eof and not self._chunks and self._error is None

    def release(self) -> None:
        """Give the connection back when the body was read to its end; otherwise cut it."""
        if self._settled:
            return
        self._settled = True
        self._conn.disarm()
        if self.at_eof() and self._conn.reusable():
            self._conn.pool.put(self._conn)
        else:
            self._conn.abort()

    def close(self) -> None:
        if not self._settled:
            self._settled = True
            self._conn.abort()


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self, pool: _HostPool):
        self.pool = pool
        self.deadline = NO_DEADLINE
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.headers_ready: asyncio.Future | None = None
        self.closed = False
        self.idle_since = 0.0
        self._keep_alive = False
        self._complete = False
        self._paused = False

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.response is None:
            self.abort()  # bytes nobody asked for: this connection cannot be trusted
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamConnectionError(f"malformed HTTP from the upstream: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self.response
        if response is None or self._complete:
            return
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_exception(UpstreamConnectionError("the upstream closed the connection before answering"))
        elif response.headers.get("content-length") is None and "chunked" not in response.headers.get(
            "transfer-encoding", ""
        ):
            response._finish()  # a body delimited by the end of the connection
        else:
            response._finish(UpstreamConnectionError("the upstream closed the connection mid-body"))

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.status = self.parser.get_status_code()
        self._keep_alive = self.parser.should_keep_alive()
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        assert self.response is not None
        self.response._feed(body)

    def on_message_complete(self) -> None:
        self._complete = True
        if self.response is not None:
            self.response._finish()

    # -- used by the pool and the response ------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_exception(error)
        elif self.response is not None:
            self.response._finish(error)

    def start(self, request: bytes) -> Response:
        self.response = Response(self)
        self.headers_ready = asyncio.get_running_loop().create_future()
        self._complete = False
        self.parser = httptools.HttpResponseParser(self)
        assert self.transport is not None
        self.transport.write(request)
        return self.response

    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        self.disarm()
        if self.transport is not None:
            self.transport.abort()

    def arm(self, deadline: float) -> None:
        self.deadline = deadline
        self.pool.deadlines.watch(self)

    def disarm(self) -> None:
        if self.deadline != NO_DEADLINE:
            self.deadline = NO_DEADLINE
            self.pool.deadlines.forget(self)

    def expire(self) -> None:
        """The deadline passed: whoever waits gets TimeoutError, and the upstream the hang-up."""
        self._fail(TimeoutError())
        self.abort()


class _Deadlines:
    """The connections with a deadline, and the one timer that checks them."""

    def __init__(self) -> None:
        self.armed: set[_Connection] = set()
        self.timer: asyncio.TimerHandle | None = None

    def watch(self, conn: _Connection) -> None:
        self.armed.add(conn)
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(TICK, self.tick)

    def forget(self, conn: _Connection) -> None:
        self.armed.discard(conn)

    def tick(self) -> None:
        self.timer = None
        now = time.monotonic()
        for conn in [c for c in self.armed if c.deadline <= now]:
            conn.expire()
        if self.armed:
            self.timer = asyncio.get_running_loop().call_later(TICK, self.tick)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.armed.clear()


class _HostPool:
    def __init__(self, host: str, port: int, deadlines: _Deadlines):
        self.host, self.port = host, port
        self.deadlines = deadlines
        self.idle: list[_Connection] = []

    def take(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.abort()
        return None

    def put(self, conn: _Connection) -> None:
        conn.response = None
        conn.headers_ready = None
        if len(self.idle) >= MAX_IDLE_PER_HOST:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    async def connect(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        except TimeoutError as exc:
            raise UpstreamConnectionError(f"connecting to {self.host}:{self.port} took over {timeout:.1f}s") from exc
        except OSError as exc:
            raise UpstreamConnectionError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc
        return conn

    def close(self) -> None:
        for conn in self.idle:
            conn.abort()
        self.idle.clear()


class UpstreamClient:
    """Keep-alive pools by host and port, shared by every plain-http deployment."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, int], _HostPool] = {}
        self._deadlines = _Deadlines()

    def pool(self, host: str, port: int) -> _HostPool:
        key = (host, port)
        found = self._pools.get(key)
        if found is None:
            found = self._pools[key] = _HostPool(host, port, self._deadlines)
        return found

    async def post(
        self, pool: _HostPool, head: bytes, body: bytes, connect_timeout: float, deadline: float = NO_DEADLINE
    ) -> Response:
        """Send `head` (request line and headers up to `Content-Length: `) with `body`;
        returns once the status and headers are in, or raises TimeoutError after
        `deadline` (time.monotonic()), which then also covers reading the body unless
        the caller sets another on the response."""
        request = head + str(len(body)).encode() + b"\r\n\r\n" + body
        conn = pool.take()
        reused = conn is not None
        if conn is None:
            conn = await pool.connect(connect_timeout)
        while True:
            response = conn.start(request)
            if deadline != NO_DEADLINE:
                conn.arm(deadline)
            try:
                await conn.headers_ready  # type: ignore[misc]
                return response
            except UpstreamConnectionError:
                conn.abort()
                if not reused:
                    raise
                # A kept-alive connection the server had closed meanwhile: nothing was
                # processed, so one fresh connection may try again.
                reused = False
                conn = await pool.connect(connect_timeout)
            except BaseException:
                conn.abort()  # timed out or cancelled: the upstream must see the hang-up
                raise

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._deadlines.close()
