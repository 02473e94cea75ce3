"""A real OpenAI-compatible HTTP server for the repeat and tool-call eval tests (no tests here).

Its behaviour is picked by the upstream `model` the gateway sends:
  coin-P-SEED   answers "The capital of France is Paris." or, with probability P%, "... Lyon."
                The n-th call with a given last user message draws from
                random.Random(f"{SEED}|{message}|{n}"), so each case gets the same answers
                on every run whatever order concurrent calls arrive in.
  agent         an agent that plans get_weather(city=Paris), then book_table(city=Paris,
                people=2), then answers in text; the step is the number of `tool` turns
                in the request. Tool names must be among the request's tools.
  agent-wrong   the same agent, but its second step is book_table(city=Lyon, people="two").
Replies carry usage; every request body is kept in `received`.
"""

from __future__ import annotations

import json
import random
import socket
from collections import defaultdict

from aiohttp import web

from tests.support.threaded_server import ThreadedServer

RIGHT, WRONG = "The capital of France is Paris.", "The capital of France is Lyon."


def coin_outcomes(percent: int, seed: int, message: str, calls: int) -> list[bool]:
    """Whether each of the first `calls` answers to `message` is wrong (what the server does)."""
    return [random.Random(f"{seed}|{message}|{n}").random() < percent / 100 for n in range(1, calls + 1)]


class AgentUpstream(ThreadedServer):
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        super().__init__(port)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.received: list[dict] = []
        self._counts: dict[tuple[str, str], int] = defaultdict(int)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)

    def reset(self) -> None:
        """Forget the calls: the next test's n-th call to a question draws the same as this one's."""
        self.received.clear()
        self._counts.clear()

    def _reply(self, model: str, message: dict, finish: str) -> web.Response:
        return web.json_response(
            {
                "id": "chatcmpl-agent",
                "object": "chat.completion",
                "created": 1,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
            }
        )

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        model, messages = body["model"], body["messages"]
        if model.startswith("coin-"):
            _, percent, seed = model.split("-")
            last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            self._counts[(model, last)] += 1
            n = self._counts[(model, last)]
            wrong = random.Random(f"{seed}|{last}|{n}").random() < int(percent) / 100
            return self._reply(model, {"role": "assistant", "content": WRONG if wrong else RIGHT}, "stop")
        if model in ("agent", "agent-wrong"):
            offered = {t["function"]["name"] for t in body.get("tools") or []}
            plan = [("get_weather", {"city": "Paris"}), ("book_table", {"city": "Paris", "people": 2})]
            if model == "agent-wrong":
                plan[1] = ("book_table", {"city": "Lyon", "people": "two"})
            step = sum(1 for m in messages if m["role"] == "tool")
            if step >= len(plan):
                weather = next(m["content"] for m in messages if m["role"] == "tool")
                text = f"Booked a table for 2 in Paris. The weather: {weather}."
                return self._reply(model, {"role": "assistant", "content": text}, "stop")
            name, arguments = plan[step]
            if name not in offered:
                return web.json_response({"error": {"message": f"no tool {name} offered"}}, status=400)
            call = {"id": f"call_{step}", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
            return self._reply(model, {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")
        return web.json_response({"error": {"message": f"unknown model {model}"}}, status=404)


def gateway_config(base_url: str, models: dict[str, str]) -> dict:
    """A gateway config serving each name from the fake upstream's model of that value."""
    return {
        "models": [
            {"name": name, "deployments": [{"provider": "openai", "model": upstream, "api_base": base_url,
                                            "api_key": "sk-upstream-test",
                                            "pricing": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}]}
            for name, upstream in models.items()
        ],
        "router": {"retries": 0},
    }  # fmt: skip
