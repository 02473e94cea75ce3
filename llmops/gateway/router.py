"""Picks a deployment for each call and retries, falls back and cools down on failure.

Weighted choice among healthy deployments; among vLLM replicas (providers that
`balance_by_load`), the one with the fewest running and waiting requests (vLLM's own
/metrics, plus what this process has in flight). A deployment that fails
`cooldown_failures` times in a row (upstream faults only: 5xx, timeouts, connection
errors, 429; never a 4xx the client's request caused) rests for `cooldown_seconds`, then gets one probe
call; success puts it back. Each deployment's provider is the class registered under
its `provider:` kind (providers/base.py), built once here.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmops.gateway.config import DeploymentConfig, GatewayConfig, ModelConfig
from llmops.gateway.deadline import REQUEST_DEADLINE
from llmops.gateway.errors import ModelNotFound, NoHealthyDeployment, UpstreamError, UpstreamTimeout
from llmops.gateway.providers.base import (
    Provider,
    ProviderContext,
    UpstreamReply,
    UpstreamStream,
    provider_class,
)
from llmops.gateway.upstream_http import UpstreamClient

if TYPE_CHECKING:
    from llmops.gateway.lazy_session import LazySession


@dataclass
class Deployment:
    name: str
    model_name: str
    config: DeploymentConfig
    provider: Provider
    failures: int = 0
    cooldown_until: float = 0.0
    probing: bool = False
    inflight: int = 0
    successes_total: int = 0
    failures_total: int = 0

    def available(self, now: float) -> bool:
        """Takes calls: not resting after failures, and not on its single probe call."""
        return self.cooldown_until <= now and not self.probing

    @property
    def load(self) -> float:
        upstream = self.provider.load()
        return (upstream or 0.0) + self.inflight


@dataclass
class RouteResult:
    deployment: Deployment
    model: str  # the model that answered (a fallback's name when one was used)
    attempts: int
    reply: UpstreamReply | None = None
    stream: UpstreamStream | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def whole(self) -> UpstreamReply:
        """The reply of a call made without streaming."""
        if self.reply is None:
            raise TypeError("a streamed call has no whole reply")
        return self.reply

    @property
    def streamed(self) -> UpstreamStream:
        """The stream of a call made with streaming."""
        if self.stream is None:
            raise TypeError("a call made without streaming has no stream")
        return self.stream


def deployment_name(model: ModelConfig, dep: DeploymentConfig, index: int) -> str:
    return dep.name or f"{model.name}/{dep.provider}/{index}"


def build_provider(dep: DeploymentConfig, context: ProviderContext) -> Provider:
    """The provider registered under the deployment's kind (checked when the config loaded)."""
    cls = provider_class(dep.provider)
    if cls is None:
        raise ValueError(f"deployment {dep.name or dep.model}: unknown provider {dep.provider!r}")
    return cls(dep, context)


class Router:
    def __init__(
        self,
        config: GatewayConfig,
        session: LazySession,
        rng: random.Random | None = None,
        upstream: UpstreamClient | None = None,
    ):
        self.config = config
        self.settings = config.router
        self.rng = rng or random.Random()
        self.models: dict[str, ModelConfig] = {m.name: m for m in config.models}
        self.deployments: dict[str, list[Deployment]] = {}
        context = ProviderContext.of(config, session, upstream)
        for model in config.models:
            self.deployments[model.name] = [
                Deployment(
                    name=deployment_name(model, dep, i),
                    model_name=model.name,
                    config=dep,
                    provider=build_provider(dep, context),
                )
                for i, dep in enumerate(model.deployments)
            ]

    def all_deployments(self) -> list[Deployment]:
        return [d for deps in self.deployments.values() for d in deps]

    async def start(self) -> None:
        for d in self.all_deployments():
            await d.provider.start()

    async def stop(self) -> None:
        for d in self.all_deployments():
            await d.provider.stop()

    def resolve(self, model: str) -> ModelConfig:
        found = self.models.get(model)
        if found is None:
            off = self.config.off_models.get(model)
            if off is not None:
                raise ModelNotFound(f"model '{model}' is off on this gateway: {off}", param="model")
            known = ", ".join(sorted(self.models)) or "none configured"
            raise ModelNotFound(f"model '{model}' is not served by this gateway (known models: {known})", param="model")
        return found

    def serves_natively(self, model: str, endpoint: str) -> bool:
        """Whether every deployment that may answer `model` (its fallbacks' included)
        serves `endpoint` itself, so a call can pass through untranslated."""
        chain = [model, *self.resolve(model).fallbacks]
        deployments = [d for name in chain for d in self.deployments.get(name, [])]
        return bool(deployments) and all(d.provider.serves(endpoint) for d in deployments)

    def pick(self, model: str, exclude: set[str]) -> Deployment | None:
        now = time.monotonic()
        candidates = [d for d in self.deployments.get(model, []) if d.name not in exclude and d.available(now)]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        if all(d.provider.balance_by_load for d in candidates):
            least = min(d.load for d in candidates)
            candidates = [d for d in candidates if d.load == least]
            if len(candidates) == 1:
                return candidates[0]
        return self.rng.choices(candidates, weights=[d.config.weight for d in candidates])[0]

    def _succeeded(self, d: Deployment) -> None:
        d.failures = 0
        d.cooldown_until = 0.0
        d.successes_total += 1

    @staticmethod
    def upstream_fault(error: UpstreamError) -> bool:
        """Whether an error is the deployment's own (5xx, timeout, unreachable, 429,
        rejected credentials) rather than the client's: a 4xx about the request says
        the upstream is up and must not count toward its cooldown, or one tenant's bad
        requests would take a shared deployment offline for everyone."""
        return not (400 <= error.status < 500 and error.status != 429)

    def _failed(self, d: Deployment, error: UpstreamError) -> None:
        if not self.upstream_fault(error):
            return
        d.failures += 1
        d.failures_total += 1
        if d.failures >= self.settings.cooldown_failures:
            d.cooldown_until = time.monotonic() + self.settings.cooldown_seconds
            # Let it earn its way back with a single probe once the rest is over.
            d.failures = self.settings.cooldown_failures - 1

    @staticmethod
    async def _attempt(
        d: Deployment, model_name: str, attempts: int, endpoint: str, body: dict[str, Any], stream: bool
    ) -> RouteResult:
        if stream:
            return RouteResult(d, model_name, attempts, stream=await d.provider.stream(endpoint, body))
        return RouteResult(d, model_name, attempts, reply=await d.provider.request(endpoint, body))

    def _backoff(self, attempt: int, error: UpstreamError) -> float:
        if error.retry_after is not None:
            return min(error.retry_after, self.settings.backoff_max)
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * (2**attempt))
        return self.rng.uniform(0, ceiling)  # full jitter: retries of many clients spread out

    async def call(self, model: str, endpoint: str, body: dict[str, Any], stream: bool) -> RouteResult:
        """Call `model` (then its fallbacks) until one answers, within the gateway's
        `timeouts.total` in all; raises the last error."""
        total = self.config.timeouts.total
        deadline = time.monotonic() + total
        token = REQUEST_DEADLINE.set(deadline)
        try:
            return await self._call(model, endpoint, body, stream, total, deadline)
        finally:
            REQUEST_DEADLINE.reset(token)

    async def _call(
        self, model: str, endpoint: str, body: dict[str, Any], stream: bool, total: float, deadline: float
    ) -> RouteResult:
        primary = self.resolve(model)
        chain = [primary.name, *primary.fallbacks]
        last_error: UpstreamError | None = None
        attempts = 0
        errors: list[str] = []
        for model_name in chain:
            tried: set[str] = set()
            for attempt in range(self.settings.retries + 1):
                d = self.pick(model_name, tried)
                if d is None and tried:
                    # Every deployment was tried once: retry the healthy ones again.
                    tried.clear()
                    d = self.pick(model_name, tried)
                if d is None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    if isinstance(last_error, UpstreamTimeout):
                        raise last_error
                    timeout = UpstreamTimeout(f"no answer within the request's total timeout ({total:g}s), "
                                              f"after {attempts} attempt(s)")
                    timeout.code = "upstream_total_timeout"
                    timeout.attempts = attempts
                    raise timeout from last_error
                tried.add(d.name)
                attempts += 1
                d.inflight += 1
                if d.cooldown_until:
                    d.probing = True  # its rest is over: this one call tells whether it is back
                try:
                    if attempts == 1:  # the provider's own deadline is the request's (deadline.py)
                        if stream:
                            result = RouteResult(d, model_name, 1, stream=await d.provider.stream(endpoint, body))
                        else:
                            result = RouteResult(d, model_name, 1, reply=await d.provider.request(endpoint, body))
                    else:  # a provider that knows no request deadline (litellm) is held to it here
                        try:
                            async with asyncio.timeout(left):
                                result = await self._attempt(d, model_name, attempts, endpoint, body, stream)
                        except TimeoutError:
                            raise UpstreamTimeout(f"{d.name} gave no answer within the request's total "
                                                  f"timeout ({total:g}s)") from None
                except UpstreamError as exc:
                    self._failed(d, exc)
                    last_error = exc
                    exc.deployment, exc.attempts = d, attempts
                    errors.append(f"{d.name}: {exc.message}")
                    if not exc.retryable:
                        raise
                    if attempt < self.settings.retries:
                        await asyncio.sleep(max(0.0, min(self._backoff(attempt, exc), deadline - time.monotonic())))
                    continue
                finally:
                    d.inflight -= 1
                    d.probing = False
                self._succeeded(d)
                result.errors = errors
                return result
        if last_error is not None:
            raise last_error
        # When the first rest ends (a deployment on its probe call: a second), so a client
        # that honours Retry-After comes back then rather than failing (or hammering).
        now = time.monotonic()
        rests = [d.cooldown_until - now for name in chain for d in self.deployments.get(name, [])]
        wait = max(1.0, min(rests, default=1.0))
        error = NoHealthyDeployment(
            f"no healthy deployment for model '{model}': all are cooling down after failures; "
            f"try again in {wait:.0f} s"
        )
        error.retry_after = wait
        raise error
