"""A vLLM OpenAI server: OpenAI's protocol plus vLLM's own fields, and its load.

vLLM's extra sampling and guided-decoding fields (top_k, min_p, repetition_penalty,
guided_json, ignore_eos, ...) pass through untouched, since the body is forwarded
whole. Its Prometheus `/metrics` is polled so the router can send each call to the
replica with the fewest running and waiting requests.

Options: `metrics_interval` (seconds between /metrics reads; default the router's
`vllm_metrics_interval`) and `native_responses` (default true: the server has
/v1/responses; false for one too old to).
"""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import Field

from llmops.gateway.config import DeploymentConfig
from llmops.gateway.lazy_session import client_timeout, transport_or_timeout_errors
from llmops.gateway.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES, ProviderContext, register
from llmops.gateway.providers.openai import OpenAIOptions, OpenAIProvider

LOAD_METRICS = (b"vllm:num_requests_running", b"vllm:num_requests_waiting")


def parse_load(text: bytes) -> float:
    """Sum running and waiting requests over every label set in a /metrics page."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(LOAD_METRICS):
            with contextlib.suppress(ValueError, IndexError):
                total += float(line.rsplit(b" ", 1)[1])
    return total


class VLLMOptions(OpenAIOptions):
    # vLLM's server has /v1/responses; false for a server too old to have it.
    native_responses: bool = True
    # Seconds between reads of the server's /metrics; unset, router.vllm_metrics_interval.
    metrics_interval: float | None = Field(default=None, gt=0)


@register
class VLLMProvider(OpenAIProvider):
    kind = "vllm"
    Options = VLLMOptions
    native = frozenset({CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES})
    balance_by_load = True
    options: VLLMOptions
    default_api_base = "http://127.0.0.1:8000/v1"

    def __init__(self, deployment: DeploymentConfig, context: ProviderContext):
        super().__init__(deployment, context)
        root = self.base[: -len("/v1")] if self.base.endswith("/v1") else self.base
        self.metrics_url = root + "/metrics"
        self.poll_interval = self.options.metrics_interval or context.router.vllm_metrics_interval
        self._load: float | None = None
        self._poller: asyncio.Task | None = None
        self._reachable = False

    async def start(self) -> None:
        self._poller = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._poller:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def load(self) -> float | None:
        return self._load

    def reachable(self) -> bool | None:
        return self._reachable  # as of its last /metrics poll

    async def _poll(self) -> None:
        timeout = client_timeout(total=max(0.5, self.poll_interval))
        while True:
            try:
                async with self.session.get(self.metrics_url, timeout=timeout) as resp:
                    if resp.status == 200:
                        self._load = parse_load(await resp.read())
                        self._reachable = True
                    else:
                        self._reachable = False
            except transport_or_timeout_errors():
                self._load = None
                self._reachable = False
            await asyncio.sleep(self.poll_interval)
