"""The gateway's own HTTP/1.1 client against upstreams that behave in the ways real
servers do: bodies by length, chunked or until close, idle keep-alive connections
closed by the server, and garbage."""

from __future__ import annotations

import asyncio
import time

import pytest

from llmops.gateway.upstream_http import UpstreamClient, UpstreamConnectionError

OK_LENGTH = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"ok": true}'
OK_CHUNKED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"6\r\ndata: \r\n5\r\nhello\r\n0\r\n\r\n")
UNTIL_CLOSE = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nthe whole body"


async def serve(reply: bytes, *, close_after: float | None = None):
    """A server that answers every request with `reply`; with close_after, it closes each
    connection that long after answering (an idle keep-alive timeout)."""
    served = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                served.append(head)
                writer.write(reply)
                await writer.drain()
                if reply.startswith(b"HTTP/1.0") or close_after == 0:
                    break
                if close_after is not None:
                    await asyncio.sleep(close_after)
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], served


def head(port: int) -> bytes:
    return f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: ".encode()


def run(coro):
    return asyncio.run(coro)


def test_bodies_by_length_chunked_and_until_close():
    async def scenario():
        client = UpstreamClient()
        out = []
        for reply in (OK_LENGTH, OK_CHUNKED, UNTIL_CLOSE):
            server, port, _ = await serve(reply)
            response = await client.post(client.pool("127.0.0.1", port), head(port), b"{}", 2)
            out.append((response.status, response.headers.get("Content-Type"), await response.read()))
            response.release()
            server.close()
        client.close()
        return out

    assert run(scenario()) == [
        (200, "application/json", b'{"ok": true}'),
        (200, "text/event-stream", b"data: hello"),
        (200, "text/plain", b"the whole body"),
    ]


def test_a_kept_alive_connection_is_reused_and_a_closed_one_replaced():
    async def scenario():
        client = UpstreamClient()
        server, port, served = await serve(OK_LENGTH, close_after=0.05)
        pool = client.pool("127.0.0.1", port)
        bodies = []
        for pause in (0, 0.2, 0, 0.2):  # after 0.2 s the server has closed the idle connection
            await asyncio.sleep(pause)
            response = await client.post(pool, head(port), b"{}", 2)
            bodies.append(await response.read())
            response.release()
        server.close()
        client.close()
        return bodies, len(served)

    bodies, served = run(scenario())
    assert bodies == [b'{"ok": true}'] * 4 and served == 4


def test_unreachable_and_malformed_upstreams_raise_connection_errors():
    async def scenario():
        client = UpstreamClient()
        server, port, _ = await serve(b"this is not HTTP\r\n\r\n", close_after=0)
        with pytest.raises(UpstreamConnectionError):
            await client.post(client.pool("127.0.0.1", port), head(port), b"{}", 2)
        server.close()
        await server.wait_closed()
        with pytest.raises(UpstreamConnectionError, match="cannot connect"):
            await client.post(client.pool("127.0.0.1", port), head(port), b"{}", 2)
        client.close()

    run(scenario())


def test_deadlines_cut_a_silent_upstream_and_a_stalled_body():
    """A missed deadline raises TimeoutError within a tick and hangs up on the upstream,
    which is how it learns to stop generating; an answered request keeps its connection."""
    async def scenario():
        hung_up = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head_bytes = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head_bytes.rsplit(b" ", 1)[1]))
            if b"/headers-then-stall" in head_bytes:
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await reader.read()  # wait for the client to hang up
            hung_up.set()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = UpstreamClient()
        pool = client.pool("127.0.0.1", port)
        loop = asyncio.get_running_loop()

        started = loop.time()
        with pytest.raises(TimeoutError):
            await client.post(pool, head(port), b"{}", 2, deadline=time.monotonic() + 0.2)
        waited_for_headers = loop.time() - started
        await asyncio.wait_for(hung_up.wait(), 2)

        hung_up.clear()
        stalled_head = f"POST /headers-then-stall HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: ".encode()
        response = await client.post(pool, stalled_head, b"{}", 2, deadline=time.monotonic() + 2)
        assert await response.readany() == b"hello"
        response.set_deadline(time.monotonic() + 0.2)
        started = loop.time()
        with pytest.raises(TimeoutError):
            await response.readany()
        waited_for_body = loop.time() - started
        await asyncio.wait_for(hung_up.wait(), 2)
        server.close()
        client.close()
        return waited_for_headers, waited_for_body

    for waited in run(scenario()):
        assert 0.19 <= waited < 0.2 + 0.05 + 0.1  # the deadline, plus at most a tick (and some slack)
