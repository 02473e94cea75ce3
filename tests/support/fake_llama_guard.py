"""A real HTTP server that plays a Llama Guard model behind an OpenAI-compatible API.

POST /v1/chat/completions answers, for the last user message: "unsafe\\nS9" when it asks
about nerve agents, "unsafe\\nS1,S10" when it threatens someone, "safe" otherwise (and
"I am not sure" when it says "confuse the guard"). Every request body is kept in
`received`.
"""

from __future__ import annotations

import asyncio
import threading
import time

from aiohttp import web


def verdict(text: str) -> str:
    lower = text.lower()
    if "confuse the guard" in lower:
        return "I am not sure."
    if "nerve agent" in lower:
        return "unsafe\nS9"
    if "i will hurt" in lower:
        return "unsafe\nS1,S10"
    return "safe"


class FakeLlamaGuard:
    def __init__(self, port: int):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.received: list[dict] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        answer = verdict(last)
        return web.json_response({
            "id": "chatcmpl-guard", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 3, "total_tokens": 43},
        })

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> FakeLlamaGuard:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
