"""How the app calls models: a gateway in this process, or a running one by URL.

Streamlit runs each page in its own thread with no event loop of ours, while the
gateway and the eval runner are asyncio code. So each client owns one event loop on a
background thread and pages hand it work (`submit`), getting a Future they can poll to
draw progress. The in-process gateway is started once per process and kept: start-up
costs a second or two, and its router's health counts are what the Gateway page shows.

    gateway = shared_gateway(settings)
    reply = gateway.chat("demo", [{"role": "user", "content": "Hello."}])
    future = gateway.submit(lambda client: run_suite(suite, client))   # an HttpModelClient
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from llmops.errors import LLMOpsError
from llmops.evaluation.client import HttpModelClient, ModelCallError
from llmops.ui.errors import GatewayUnavailable
from llmops.ui.settings import UISettings

T = TypeVar("T")

IN_PROCESS_BASE = "http://gateway.in-process"
# How the app's own calls show in the ledger (Spend by user).
UI_USER = "llmops-ui"


@dataclass(frozen=True)
class ChatReply:
    model: str
    text: str
    input_tokens: int
    output_tokens: int
    cost: float | None
    latency_ms: float
    request_id: str | None
    deployment: str | None


@dataclass(frozen=True)
class DeploymentStatus:
    name: str
    model: str | None  # the gateway's model name (None when a remote gateway does not say)
    available: bool
    provider: str | None = None
    upstream_model: str | None = None
    api_base: str | None = None
    weight: float | None = None
    consecutive_failures: int | None = None
    cooldown_remaining_s: float | None = None
    successes_total: int | None = None
    failures_total: int | None = None
    inflight: int | None = None
    # The gateway's readiness check (/health/ready): False when it fails its health probe
    # (a vLLM server that does not answer), though the router has not benched it yet.
    healthy: bool = True


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str | None = None
    fallbacks: list[str] = field(default_factory=list)
    deployments: list[DeploymentStatus] = field(default_factory=list)

    @property
    def available(self) -> int:
        return sum(d.available for d in self.deployments)


@dataclass(frozen=True)
class ProbeResult:
    model: str
    ok: bool
    latency_ms: float
    detail: str  # the deployment that answered, or the error


@dataclass(frozen=True)
class GatewayHealth:
    ready: bool
    database: str
    models: list[ModelInfo]
    # Models the config names but the gateway does not serve, with why (e.g. a missing key).
    off_models: dict[str, str] = field(default_factory=dict)
    # Served models that lost some deployments: which and why.
    off_deployments: dict[str, str] = field(default_factory=dict)


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        message = error.get("message") if isinstance(error, dict) else str(error)
    except ValueError:
        message = response.text[:300]
    return message or response.reason_phrase


class _LoopThread:
    """An asyncio loop running forever on a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class GatewayClient(ABC):
    """One gateway, called from Streamlit's threads; safe to share between sessions."""

    label: str

    def __init__(self, name: str) -> None:
        self._loop = _LoopThread(name)
        self._http: httpx.AsyncClient | None = None
        self._transport: httpx.AsyncBaseTransport | None = None
        self._key: str | None = None
        self._base = ""

    # -- running work on the loop ----------------------------------------------------

    def submit(
        self, work: Callable[[HttpModelClient], Awaitable[T]]
    ) -> concurrent.futures.Future[T]:
        """Run `work(client)` on the gateway's loop; the client speaks the OpenAI API to it."""

        async def wrapped() -> T:
            # The app reads the gateway's own database, so versions are sent as references.
            async with HttpModelClient(
                self._base, self._key, transport=self._transport, prompt_references=True
            ) as client:
                return await work(client)

        return self._loop.submit(wrapped())

    def _call(self, coro: Awaitable[T], timeout: float) -> T:
        future = self._loop.submit(coro)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the gateway did not answer within {timeout:.0f} s") from None

    # -- calls ---------------------------------------------------------------------------

    def chat(
        self,
        model: str,
        messages: list[dict],
        params: dict[str, Any] | None = None,
        *,
        timeout: float = 120.0,
    ) -> ChatReply:
        body = {"user": UI_USER, **(params or {}), "model": model, "messages": messages, "stream": False}
        return self._call(self._chat(body), timeout)

    async def _chat(self, body: dict[str, Any]) -> ChatReply:
        assert self._http is not None
        started = time.perf_counter()
        try:
            response = await self._http.post("/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"cannot reach the {self.label}: {type(exc).__name__}: {exc}") from None
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            raise ModelCallError(
                f"model {body['model']!r} failed (HTTP {response.status_code}): {_error_text(response)}"
            )
        data = response.json()
        usage = data.get("usage") or {}
        cost = response.headers.get("x-llmops-cost")
        return ChatReply(
            model=body["model"],
            text=(data.get("choices") or [{}])[0].get("message", {}).get("content") or "",
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            cost=float(cost) if cost else None,
            latency_ms=latency_ms,
            request_id=response.headers.get("x-llmops-request-id"),
            deployment=response.headers.get("x-llmops-deployment"),
        )

    def probe(self, models: list[str], *, timeout: float = 60.0) -> list[ProbeResult]:
        """Send each model a one-token request, all at once: does it answer now?

        Failures count in the router like any call, so a dead deployment ends up cooling down.
        """

        async def one(model: str) -> ProbeResult:
            body = {
                "user": UI_USER,
                "model": model,
                "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1,
            }
            started = time.perf_counter()
            try:
                reply = await self._chat(body)
            except LLMOpsError as exc:
                return ProbeResult(model, False, (time.perf_counter() - started) * 1000, exc.message)
            return ProbeResult(
                model, True, reply.latency_ms, f"answered by {reply.deployment or 'the gateway'}"
            )

        async def every() -> list[ProbeResult]:
            return list(await asyncio.gather(*(one(m) for m in models)))

        return self._call(every(), timeout)

    async def _get(self, path: str) -> httpx.Response:
        assert self._http is not None
        try:
            return await self._http.get(path)
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"cannot reach the {self.label}: {type(exc).__name__}: {exc}") from None

    def health(self, *, timeout: float = 15.0) -> GatewayHealth:
        return self._call(self._health(), timeout)

    @abstractmethod
    async def _health(self) -> GatewayHealth: ...

    def model_names(self, *, timeout: float = 15.0) -> list[str]:
        """Models the gateway serves to this app (GET /v1/models)."""

        async def names() -> list[str]:
            response = await self._get("/v1/models")
            if response.status_code >= 400:
                raise GatewayUnavailable(f"the {self.label} refused to list models: {_error_text(response)}")
            return [m["id"] for m in response.json().get("data", [])]

        return self._call(names(), timeout)

    def close(self) -> None:
        try:
            self._call(self._close(), 60)
        finally:
            self._loop.stop()

    async def _close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


class InProcessGateway(GatewayClient):
    """The gateway's ASGI app started in this process: no port, no network, same database."""

    def __init__(self, settings: UISettings) -> None:
        super().__init__("llmops-ui-gateway")
        self.label = "in-process gateway"
        self._settings = settings
        self._running: Any = None  # llmops.gateway.app.running_app, imported when started
        self.app: Any = None
        try:
            self._call(self._start(), 120)
        except BaseException:
            self._loop.stop()
            raise

    async def _start(self) -> None:
        from llmops.errors import LLMOpsError
        from llmops.gateway.app import running_app
        from llmops.gateway.config import load_config

        try:
            config = load_config(self._settings.gateway_config)
        except LLMOpsError as exc:
            raise GatewayUnavailable(f"cannot start the in-process gateway: {exc.message}") from None
        if config.database_url is None:
            # The app and its gateway share one database: what Compare spends, Spend shows.
            config = config.model_copy(update={"database_url": self._settings.database_url})
        self._running = running_app(config)
        try:
            self.app = await self._running.__aenter__()
        except Exception as exc:
            raise GatewayUnavailable(
                f"cannot start the in-process gateway: {type(exc).__name__}: {exc}; "
                "check LLMOPS_GATEWAY_CONFIG, or set LLMOPS_GATEWAY_URL to use a running gateway"
            ) from None
        self._transport = httpx.ASGITransport(app=self.app)
        self._base = IN_PROCESS_BASE
        self._key = self._settings.master_key
        headers = {"authorization": f"Bearer {self._key}"} if self._key else {}
        self._http = httpx.AsyncClient(
            transport=self._transport, base_url=IN_PROCESS_BASE, headers=headers, timeout=120.0
        )

    async def _health(self) -> GatewayHealth:
        assert self.app is not None
        response = await self._get("/health/ready")
        body = response.json()
        database = body.get("checks", {}).get("database", "unknown")
        # Per deployment: not cooling down, and answering its health probe where it has one.
        healthy: dict[str, bool] = body.get("deployments") or {}
        now = time.monotonic()
        router = self.app.services.router
        models = []
        for model in self.app.config.models:
            deployments = [
                DeploymentStatus(
                    name=d.name,
                    model=d.model_name,
                    available=d.available(now) and healthy.get(d.name, True),
                    healthy=healthy.get(d.name, True),
                    provider=d.config.provider,
                    upstream_model=d.config.model,
                    api_base=d.config.api_base,
                    weight=d.config.weight,
                    consecutive_failures=d.failures,
                    cooldown_remaining_s=max(0.0, d.cooldown_until - now),
                    successes_total=d.successes_total,
                    failures_total=d.failures_total,
                    inflight=d.inflight,
                )
                for d in router.deployments.get(model.name, [])
            ]
            models.append(ModelInfo(model.name, model.description, list(model.fallbacks), deployments))
        config = self.app.config
        return GatewayHealth(
            ready=response.status_code == 200,
            database=database,
            models=models,
            off_models=dict(getattr(config, "off_models", {}) or {}),
            off_deployments=dict(getattr(config, "off_deployments", {}) or {}),
        )

    async def _close(self) -> None:
        await super()._close()
        if self._running is not None:
            # Drains the ledger writer, so the app's last calls are in Spend.
            await self._running.__aexit__(None, None, None)


class RemoteGateway(GatewayClient):
    """A gateway running elsewhere, by URL (LLMOPS_GATEWAY_URL), with LLMOPS_API_KEY."""

    def __init__(self, settings: UISettings) -> None:
        super().__init__("llmops-ui-remote")
        assert settings.gateway_url
        self.label = f"gateway at {settings.gateway_url}"
        root = settings.gateway_url.rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        self._base = root
        self._key = settings.api_key
        headers = {"authorization": f"Bearer {self._key}"} if self._key else {}

        async def start() -> None:
            self._http = httpx.AsyncClient(
                base_url=root, headers=headers, timeout=httpx.Timeout(120.0, connect=5.0)
            )

        self._call(start(), 10)

    async def _health(self) -> GatewayHealth:
        ready = await self._get("/health/ready")
        listed = await self._get("/v1/models")
        if listed.status_code >= 400:
            raise GatewayUnavailable(f"the {self.label} refused to list models: {_error_text(listed)}")
        try:
            body = ready.json()
        except ValueError:
            body = {}
        flags: dict[str, bool] = body.get("deployments") or {}
        names = [m["id"] for m in listed.json().get("data", [])]
        models = []
        for name in names:
            # A remote gateway names deployments `model/provider/index` unless configured otherwise.
            mine = {d: ok for d, ok in flags.items() if d.split("/", 1)[0] == name}
            deployments = [
                DeploymentStatus(
                    name=d,
                    model=name,
                    available=ok,
                    provider=d.split("/")[1] if d.count("/") >= 2 else None,
                    healthy=ok,
                )
                for d, ok in mine.items()
            ]
            models.append(ModelInfo(name, deployments=deployments))
        return GatewayHealth(
            ready=ready.status_code == 200,
            database=str(body.get("checks", {}).get("database", "unknown")),
            models=models,
        )


_shared: dict[tuple, GatewayClient] = {}
_shared_lock = threading.Lock()


def _key(settings: UISettings) -> tuple:
    if settings.gateway_url:
        return ("remote", settings.gateway_url, settings.api_key)
    return ("in-process", settings.gateway_config, settings.database_url, settings.master_key)


def shared_gateway(settings: UISettings) -> GatewayClient:
    """The process's client for these settings, started on first use and kept."""
    key = _key(settings)
    with _shared_lock:
        client = _shared.get(key)
        if client is None:
            client = RemoteGateway(settings) if settings.gateway_url else InProcessGateway(settings)
            _shared[key] = client
        return client


def close_all() -> None:
    """Stop every shared client (the in-process gateway drains its ledger first)."""
    with _shared_lock:
        clients = list(_shared.values())
        _shared.clear()
    for client in clients:
        try:
            client.close()
        except Exception:  # closing is best effort at exit
            pass


atexit.register(close_all)
