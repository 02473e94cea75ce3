"""The floor: a bare pass-through proxy on the gateway's own stack, with no gateway logic.

uvicorn with the gateway's own HTTP protocol (`llmops.gateway.http_protocol`) serving, and
the gateway's upstream client (`llmops.gateway.upstream_http`, what it uses for plain-http
upstreams) forwarding: what the gateway's Python stack alone costs per request on this
machine, so the gateway's own figures can be read against it (`bench_gateway.py`). Model
name to upstream: bench-model -> :18080 (JSON), bench-stream -> :18081 (SSE), as
gatewaybench expects.

Until 2026-12 this floor forwarded with aiohttp, which the gateway does not use for
plain http: on this machine aiohttp's client alone cost about 0.35 ms per request
(added p50 0.41 ms against 0.16 ms with this client), so it set the floor far too high.

    python benchmarks/floor_proxy.py [--port 4100]
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn

from llmops.gateway.server import HTTP_PROTOCOL
from llmops.gateway.upstream_http import UpstreamClient

UPSTREAMS = {"bench-model": ("127.0.0.1", 18080), "bench-stream": ("127.0.0.1", 18081)}
HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
CONNECT_TIMEOUT = 5.0
client: UpstreamClient | None = None


async def lifespan(receive, send) -> None:
    global client
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            client = UpstreamClient()
            await send({"type": "lifespan.startup.complete"})
        else:
            client.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    pool = client.pool(*UPSTREAMS[orjson.loads(body)["model"]])
    upstream = await client.post(pool, HEAD, body, CONNECT_TIMEOUT)
    try:
        await send({"type": "http.response.start", "status": upstream.status,
                    "headers": [(b"content-type", upstream.headers.get("content-type", "").encode())]})
        while chunk := await upstream.readany():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        upstream.release()  # back to the pool when read to the end, else cut


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=4100)
    args = ap.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http=HTTP_PROTOCOL,
                log_level="warning", access_log=False)
