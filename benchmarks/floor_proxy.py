"""The floor: a bare pass-through proxy, uvicorn + aiohttp, with no gateway logic at all.

What the Python stack alone costs per request on this machine, so the gateway's own
figures can be read against it (`bench_gateway.py --floor`). Model name to upstream:
bench-model -> :18080 (JSON), bench-stream -> :18081 (SSE), as gatewaybench expects.

    python benchmarks/floor_proxy.py [--port 4100]
"""

from __future__ import annotations

import argparse

import aiohttp
import orjson
import uvicorn

UPSTREAMS = {"bench-model": "http://127.0.0.1:18080/v1/chat/completions",
             "bench-stream": "http://127.0.0.1:18081/v1/chat/completions"}
session: aiohttp.ClientSession | None = None


async def app(scope, receive, send):
    global session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
                await send({"type": "lifespan.startup.complete"})
            else:
                await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    url = UPSTREAMS[orjson.loads(body)["model"]]
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as upstream:
        await send({"type": "http.response.start", "status": upstream.status,
                    "headers": [(b"content-type", upstream.headers["content-type"].encode())]})
        async for chunk in upstream.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=4100)
    args = ap.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)
