"""The gateway as an ASGI application: routes to handlers, start-up and shutdown.

`create_app(config_path)` returns the app; `llmops serve` runs it under uvicorn.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from llmops.errors import LLMOpsError
from llmops.gateway import admin, http, inference
from llmops.gateway.call import new_request_id
from llmops.gateway.config import GatewayConfig, load_config
from llmops.gateway.errors import MethodNotAllowed, RouteNotFound
from llmops.gateway.services import Services
from llmops.gateway.surfaces import (
    CHAT_SURFACE,
    COMPLETIONS_SURFACE,
    EMBEDDINGS_SURFACE,
    MESSAGES_SURFACE,
    RESPONSES_SURFACE,
    Surface,
)
from llmops.settings import configure_offline_tokenizers

log = logging.getLogger("llmops.gateway")

Handler = Callable[[Services, dict, http.Receive, http.Send], Awaitable[None]]


def _inference(surface: Surface) -> Handler:
    async def handler(services: Services, scope: dict, receive: http.Receive, send: http.Send) -> None:
        await inference.handle(services, surface, scope, receive, send)

    handler.stamps_request_id = True  # type: ignore[attr-defined]  # its ledger row's id
    return handler


def _stamped(send: http.Send) -> http.Send:
    """`send` that puts a fresh x-llmops-request-id on the response (every response has
    one), and the gateway's time on it so far: here all of it is the gateway's own."""
    request_id = (b"x-llmops-request-id", new_request_id().encode())
    started = time.perf_counter()

    async def stamped_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            overhead = (b"x-llmops-overhead-ms", f"{(time.perf_counter() - started) * 1000:.3f}".encode())
            message = {**message, "headers": [*message.get("headers", ()), request_id, overhead]}
        await send(message)

    return stamped_send


# (method, path) -> handler. Both /v1/x and /x are served, as OpenAI clients differ.
ROUTES: dict[tuple[str, str], Handler] = {}
for _surface in (CHAT_SURFACE, COMPLETIONS_SURFACE, EMBEDDINGS_SURFACE, RESPONSES_SURFACE, MESSAGES_SURFACE):
    ROUTES[("POST", "/v1" + _surface.path)] = ROUTES[("POST", _surface.path)] = _inference(_surface)
for _method, _path, _handler in admin.ROUTES:
    ROUTES[(_method, _path)] = _handler
PREFIX_ROUTES = admin.PREFIX_ROUTES


class Gateway:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.services = Services(config)
        self.started = False
        # Set on SIGTERM (server.py): /health/ready answers 503 so that load balancers
        # send no new calls here, while the calls in progress finish.
        self.draining = False

    async def __call__(self, scope: dict[str, Any], receive: http.Receive, send: http.Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: dict, receive: http.Receive, send: http.Send) -> None:
        method, path = scope["method"], scope["path"]
        handler = ROUTES.get((method, path))
        if handler is None or not getattr(handler, "stamps_request_id", False):
            send = _stamped(send)
        if self.draining and path == "/health/ready":
            await http.send_json(send, 503, {"status": "draining", "checks": {"draining": True}})
            return
        try:
            if handler is None:
                handler = self._match_prefix(method, path)
            await handler(self.services, scope, receive, send)
        except LLMOpsError as exc:
            await http.send_error(send, exc)

    def _match_prefix(self, method: str, path: str) -> Handler:
        for m, prefix, handler in PREFIX_ROUTES:
            if path.startswith(prefix) and len(path) > len(prefix):
                if m == method:
                    return handler
        if any(p == path for (_, p) in ROUTES) or any(path.startswith(p) for _, p, _ in PREFIX_ROUTES):
            raise MethodNotAllowed(f"{method} is not allowed on {path}")
        raise RouteNotFound(f"no route {method} {path}; see GET /v1/models and the README for the API")

    async def startup(self) -> None:
        configure_offline_tokenizers()
        await self.services.start()
        self.started = True
        # What start-up built lives as long as the process: keep the collector from
        # walking it again. A full collection over it stalled requests for 40-65 ms.
        gc.collect()
        gc.freeze()

    async def shutdown(self) -> None:
        if self.started:
            await self.services.stop()
            self.started = False

    async def _lifespan(self, receive: http.Receive, send: http.Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(config: str | Path | GatewayConfig | None = None) -> Gateway:
    if not isinstance(config, GatewayConfig):
        config = load_config(config)
    return Gateway(config)


class running_app:
    """`async with running_app(config) as app:` an app started and stopped in process.

    For in-process clients (the eval runner, the UI, tests) through
    httpx.ASGITransport, which does not run ASGI lifespan itself.
    """

    def __init__(self, config: str | Path | GatewayConfig | None = None):
        self.app = create_app(config)

    async def __aenter__(self) -> Gateway:
        await self.app.startup()
        return self.app

    async def __aexit__(self, *exc: object) -> None:
        await self.app.shutdown()



__all__ = ["Gateway", "create_app", "running_app"]
