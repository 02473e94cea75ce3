"""The model calls of guardrail checks that ask a model (`judge`, `moderation`).

In a running gateway they go through its router with their own ledger row
(`Services.ask_judge`). `llmops guard check|scan|eval` run the same checks with no gateway:
`RouterJudge` routes to the models of the gateway config the command was given (its
deployments, fallbacks and retries), with no keys, limits or ledger. Both send the same
request and read the answer the same way, here.
"""

from __future__ import annotations

from typing import Any

from llmops.gateway.config import GatewayConfig
from llmops.gateway.lazy_session import LazySession
from llmops.gateway.providers.base import CHAT
from llmops.gateway.router import Router, RouteResult
from llmops.gateway.upstream_http import UpstreamClient


def judge_request(model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat request of a check's model call: deterministic and short (a verdict)."""
    return {"model": model, "messages": messages, "temperature": 0, "max_tokens": 64}


def answer_of(data: dict[str, Any]) -> str:
    return ((data.get("choices") or [{}])[0].get("message") or {}).get("content") or ""


async def ask(router: Router, model: str | None, messages: list[dict[str, Any]]) -> tuple[RouteResult, dict, str]:
    """One model call of a check: the route it took, the request sent and the answer."""
    if model is None:
        raise ValueError("a check that asks a model needs options.model")
    body = judge_request(model, messages)
    route = await router.call(model, CHAT, body, stream=False)
    return route, body, answer_of(route.whole.data)


class RouterJudge:
    """A judge callable for a Pipeline outside a gateway: `async with RouterJudge(config) as judge`."""

    def __init__(self, config: GatewayConfig) -> None:
        self._session = LazySession()
        self._upstream = UpstreamClient()
        self.router = Router(config, self._session, upstream=self._upstream)

    async def __aenter__(self) -> RouterJudge:
        await self.router.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.router.stop()
        await self._session.close()
        self._upstream.close()

    async def __call__(self, messages: list[dict[str, Any]], model: str | None = None) -> str:
        _, _, answer = await ask(self.router, model, messages)
        return answer
