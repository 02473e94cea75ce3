"""A real HTTP server for tests: an aiohttp application on 127.0.0.1, served from a thread
with its own event loop, so synchronous tests and gateway subprocesses can both call it.

Subclasses add their routes in `routes(app)`; use one with `with Server(...) as s:` or
`s = Server(...).start()` ... `s.stop()`.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Self

from aiohttp import web


class ThreadedServer:
    def __init__(
        self, port: int, *, ssl_context: ssl.SSLContext | None = None, client_max_size: int = 1024**2
    ) -> None:
        self.port = port
        self.ssl_context = ssl_context
        self._client_max_size = client_max_size
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=self._client_max_size)
        self.routes(app)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> Self:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            # Stalled handlers would hold cleanup for their full sleep: cut them.
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
