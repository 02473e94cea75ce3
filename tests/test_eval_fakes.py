"""A real OpenAI-compatible HTTP server for the eval tests (no tests of its own here).

Its behaviour is picked by the request's `model`:
  echo     the opening sentences of the last user message (like the gateway's `demo`)
  fail     HTTP 500 with an OpenAI error body
  judge    a deterministic judge: reads the grading prompt and answers the JSON asked for,
           deciding by word overlap, so tests can predict every verdict
  garbled  a judge that answers prose without JSON
Every reply carries `x-llmops-cost: 0.00125`. It counts requests and the most in flight.
Ports come from this suite's range, 18600-18699.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket

from aiohttp import web

from tests.support.threaded_server import ThreadedServer

COST = 0.00125
_WORD = re.compile(r"[a-z0-9£%.-]+")
_STOP = {"the", "a", "an", "of", "in", "on", "to", "and", "is", "was", "it", "for", "at", "by", "with"}


def free_port_in_range(first: int = 18600, last: int = 18699) -> int:
    for port in range(first, last + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18600-18699")


def _words(text: str) -> set[str]:
    return {w.strip(".") for w in _WORD.findall(text.lower())} - _STOP - {""}


def _between(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}>\n(.*?)\n</{tag}>", text, re.DOTALL)
    return match.group(1) if match else ""


def judge_reply(system: str, user: str) -> dict:
    if "rubric" in system:
        output, rubric = _between(user, "output"), _between(user, "rubric")
        ok = bool(_words(rubric) & _words(output))
        return {"reason": "mentions the rubric's subject" if ok else "off topic", "score": 0.9 if ok else 0.1, "pass": ok}
    if "expert reference" in system:
        submission, reference = _words(_between(user, "submission")), _words(_between(user, "reference"))
        return {"category": "A" if submission <= reference else "D", "reason": "compared word sets"}
    if "addresses a question" in system:
        shared = _words(_between(user, "question")) & _words(_between(user, "answer"))
        return {"score": 1.0 if shared else 0.0, "reason": f"{len(shared)} shared words"}
    if "factual claims" in system:
        return {"claims": [s.strip() for s in re.split(r"(?<=[.!?])\s+", user.strip()) if s.strip()]}
    if "check one claim" in system:
        supported = _words(_between(user, "claim")) <= _words(_between(user, "source"))
        return {"supported": supported, "reason": "all words in the source" if supported else "new words"}
    return {"error": "unknown judge question"}


class FakeModelServer(ThreadedServer):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(free_port_in_range())
        self.delay = delay
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            model = body["model"]
            messages = body["messages"]
            if model == "fail":
                return web.json_response({"error": {"message": "upstream exploded", "type": "api_error"}}, status=500)
            user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            if model == "judge":
                system = next((m["content"] for m in messages if m["role"] == "system"), "")
                text = json.dumps(judge_reply(system, user))
            elif model == "garbled":
                text = "I think it is fine, more or less."
            else:
                sentences = re.split(r"(?<=[.!?])\s+", user.strip())
                text = " ".join(sentences[:2])
            reply = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
            return web.json_response(reply, headers={"x-llmops-cost": f"{COST:.8f}"})
        finally:
            self.in_flight -= 1

    def chat_requests(self, model: str) -> list[dict]:
        return [r for r in self.requests if r["model"] == model]
