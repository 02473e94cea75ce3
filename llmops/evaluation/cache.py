"""The response cache: the same model, messages and parameters are answered from the database.

So a re-run of a suite whose prompts did not change costs nothing and takes no time.
A cached response keeps the latency and cost it had when it was made (so latency and
cost assertions judge the same thing on every run) and is marked `cached`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from sqlalchemy.exc import IntegrityError

from llmops.db import session_scope
from llmops.evaluation.client import ModelClient, ModelResponse, PromptRef
from llmops.evaluation.models import EvalCacheEntry


def cache_key(model: str, messages: list[dict], params: dict[str, Any], attempt: int = 0) -> str:
    """The first attempt keeps the key it always had; each repeat has its own, so a
    repeated case makes `repeat` real calls once and replays all of them afterwards."""
    asked: dict[str, Any] = {"model": model, "messages": messages, "params": params}
    if attempt:
        asked["attempt"] = attempt
    payload = json.dumps(asked, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url

    def get(self, key: str) -> ModelResponse | None:
        with session_scope(self.database_url) as session:
            row = session.get(EvalCacheEntry, key)
            if row is None:
                return None
            return ModelResponse(
                text=row.text,
                usage=dict(row.usage),
                cost=row.cost,
                latency_ms=row.latency_ms,
                cached=True,
                tool_calls=list(row.tool_calls or []),
            )

    def put(self, key: str, model: str, response: ModelResponse) -> None:
        try:
            with session_scope(self.database_url) as session:
                session.merge(
                    EvalCacheEntry(
                        key=key,
                        model=model,
                        text=response.text,
                        usage=response.usage,
                        cost=response.cost,
                        latency_ms=response.latency_ms,
                        tool_calls=response.tool_calls or None,
                    )
                )
        except IntegrityError:
            pass  # another run stored the same response first: theirs is as good

    def clear(self) -> int:
        from sqlmodel import delete

        with session_scope(self.database_url) as session:
            result = session.exec(delete(EvalCacheEntry))
            return result.rowcount or 0


class CachedClient:
    """A ModelClient that answers repeated chat calls from a ResponseCache."""

    def __init__(self, client: ModelClient, cache: ResponseCache, *, read: bool = True) -> None:
        self.client = client
        self.cache = cache
        # --no-cache: always call the model, but store the fresh answer for the next run.
        self.read = read
        self.hits = 0
        self.misses = 0

    async def chat(
        self,
        model: str,
        messages: list[dict],
        params: dict[str, Any],
        prompt: PromptRef | None = None,
        *,
        attempt: int = 0,
    ) -> ModelResponse:
        key = cache_key(model, messages, params, attempt)  # what was asked, however it is sent
        if self.read:
            hit = await asyncio.to_thread(self.cache.get, key)
            if hit is not None:
                self.hits += 1
                return hit
        self.misses += 1
        response = await self.client.chat(model, messages, params, prompt)
        await asyncio.to_thread(self.cache.put, key, model, response)
        return response

    async def embed(self, model: str, texts: list[str]) -> list[list[float]]:
        return await self.client.embed(model, texts)
