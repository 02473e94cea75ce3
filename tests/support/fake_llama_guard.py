"""A real HTTP server that plays a Llama Guard model behind an OpenAI-compatible API.

POST /v1/chat/completions answers, for the last user message: "unsafe\\nS9" when it asks
about nerve agents, "unsafe\\nS1,S10" when it threatens someone, "safe" otherwise (and
"I am not sure" when it says "confuse the guard"). Every request body is kept in
`received`.
"""

from __future__ import annotations

import time

from aiohttp import web

from tests.support.threaded_server import ThreadedServer


def verdict(text: str) -> str:
    lower = text.lower()
    if "confuse the guard" in lower:
        return "I am not sure."
    if "nerve agent" in lower:
        return "unsafe\nS9"
    if "i will hurt" in lower:
        return "unsafe\nS1,S10"
    return "safe"


class FakeLlamaGuard(ThreadedServer):
    def __init__(self, port: int):
        super().__init__(port)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.received: list[dict] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)

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
