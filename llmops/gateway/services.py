"""The gateway's collaborators, built once at start-up and shared by every request.

Each method is one step of a request, delegating to a library module: keys and limits
(`keys`, `limits`), guardrails, the registry and experiments, tokens and pricing, the
ledger. The inference handler calls them in order.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from llmops import pricing, tokens
from llmops.errors import InvalidInput, LLMOpsError
from llmops.gateway import check_models
from llmops.gateway.call import Call
from llmops.gateway.config import GatewayConfig
from llmops.gateway.errors import InternalError
from llmops.gateway.http import header
from llmops.gateway.lazy_session import LazySession
from llmops.gateway.metrics import GatewayMetrics, Gauge
from llmops.gateway.providers.base import CHAT, COMPLETIONS, MESSAGES, RESPONSES, replace_texts, reply_texts
from llmops.gateway.router import Deployment, Router
from llmops.gateway.upstream_http import UpstreamClient
from llmops.governance import Governance, KeyInfo
from llmops.governance.limits import Reservation
from llmops.guardrails import GuardrailsConfig, Pipeline
from llmops.guardrails.types import GuardrailBlocked, GuardrailConfigError
from llmops.pricing import Price
from llmops.settings import get_settings

if TYPE_CHECKING:
    from llmops.conversations import ConversationStore
    from llmops.experiments.service import ExperimentService
    from llmops.guardrails.pipeline import CompiledConfig
    from llmops.monitoring.capture import PayloadCapture
    from llmops.monitoring.traces import CallTracer
    from llmops.monitoring.worker import MonitorWorker
    from llmops.registry.service import Registry

log = logging.getLogger("llmops.gateway")


def bearer_token(scope: dict) -> str | None:
    value = header(scope, b"authorization")
    if value is None:
        value = header(scope, b"x-api-key")
        return value.decode("latin-1").strip() if value else None
    text = value.decode("latin-1").strip()
    if text[:7].lower() == "bearer ":
        return text[7:].strip() or None
    return text or None


class Services:
    def __init__(self, config: GatewayConfig):
        settings = get_settings()
        self.config = config
        self.database_url = config.database_url or settings.database_url
        self.redis_url = config.redis_url or settings.redis_url
        self.master_key = config.master_key or settings.master_key
        self.metrics = GatewayMetrics(models=[m.name for m in config.models])
        # Built here, started in `start`: nothing below opens a connection until then.
        self.session = LazySession()
        self.upstream = UpstreamClient()
        self.router = Router(config, self.session, upstream=self.upstream)
        self.governance = Governance(
            database_url=self.database_url,
            redis_url=self.redis_url,
            master_key=self.master_key,
            keys_required=config.auth == "keys",
            limits=config.limits,
            ledger=config.ledger,
        )
        monitoring = config.monitoring
        self.capture: PayloadCapture | None = None
        if monitoring.capture.enabled:
            from llmops.monitoring.capture import PayloadCapture

            self.capture = PayloadCapture(monitoring.capture, self.database_url)
        self.tracer: CallTracer | None = None
        if monitoring.traces.enabled:
            from llmops.monitoring.traces import CallTracer

            self.tracer = CallTracer(monitoring.traces)
        self.monitor: MonitorWorker | None = None
        if monitoring.online_eval.enabled or monitoring.drift.enabled:
            from llmops.monitoring.worker import MonitorWorker

            self.monitor = MonitorWorker(monitoring, self.database_url)
        self._check_judges(config.guardrails)  # checked when the config loaded, but for models
        self.guardrails = Pipeline(config.guardrails, judge=self.ask_judge)
        self._registry: Registry | None = None
        self._experiments: ExperimentService | None = None
        self._conversations: ConversationStore | None = None
        self.prices: dict[str, Price | None] = {}  # by deployment name; None when unknown
        self.model_prices: dict[str, list[Price | None]] = {}  # a model's deployments' prices

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.router.start()
        self.governance.start()
        if self.capture is not None:
            self.capture.start()
            capture = self.capture
            self.metrics.add_gauge(Gauge("llmops_capture_rows", "Payload capture counters", ("state",),
                                         lambda: {(k,): v for k, v in capture.stats().items()}))
        if self.tracer is not None:
            self.tracer.start()
        if self.monitor is not None:
            self.monitor.start()
            labels = ("subject", "prompt", "model", "metric")
            self.metrics.add_gauge(Gauge("llmops_drift_score", "Drift effect size, recent vs reference window "
                                         "(PSI, Cohen's h, Cramer's V, topic distance)", labels, self.monitor.drift_scores))
            self.metrics.add_gauge(Gauge("llmops_drift_alarm", "1 when a drift check alarms", labels,
                                         self.monitor.drift_alarms))
            self.metrics.add_gauge(Gauge("llmops_online_eval_score_mean", "Mean online eval score, recent window",
                                         ("prompt", "model", "metric"), self.monitor.eval_means))
        table = pricing.PriceTable.load()
        for d in self.router.all_deployments():
            # Counted per request (metrics.unknown_price), not once per deployment here.
            price = table.lookup(d.config.model, provider=d.config.provider, override=d.config.pricing, count_unknown=False)
            self.prices[d.name] = price
            self.model_prices.setdefault(d.model_name, []).append(price)
        pricing.PriceTable.release()  # every price the gateway needs is now in self.prices
        self.metrics.add_gauge(
            Gauge(
                "llmops_deployment_available",
                "1 when a deployment takes calls, 0 while it cools down after failures",
                ("model", "deployment"),
                self._availability,
            )
        )
        ledger = self.governance.ledger
        self.metrics.add_gauge(
            Gauge("llmops_ledger_rows", "Ledger writer counters", ("state",), lambda: {(k,): v for k, v in ledger.stats().items()})
        )
        self.metrics.add_gauge(
            Gauge("llmops_limiter", "Limits: admitted, rejected by limit, Redis errors", ("counter", "limit"), self._limiter_counters)
        )
        if self.config.experiments:
            # Experiments declared in config exist before the first request; an
            # operator's pause or stop (CLI) still wins over the file.
            await asyncio.to_thread(self.experiments.sync_from_config, self.config.experiments)

    async def stop(self) -> None:
        await self.router.stop()
        await self.session.close()
        self.upstream.close()
        if self._conversations is not None:
            await self._conversations.aclose()
        await self.governance.aclose()
        if self.capture is not None:
            await asyncio.to_thread(self.capture.close)
        if self.monitor is not None:
            await asyncio.to_thread(self.monitor.close)
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.close)

    def _limiter_counters(self) -> dict[tuple[str, ...], float]:
        out: dict[tuple[str, ...], float] = {}
        for name, value in self.governance.limiter.metrics().items():
            if isinstance(value, dict):
                out.update({(name, limit): v for limit, v in value.items()})
            else:
                out[(name, "")] = value
        return out

    def _availability(self) -> dict[tuple[str, ...], float]:
        import time

        now = time.monotonic()
        return {(d.model_name, d.name): 1.0 if d.available(now) else 0.0 for d in self.router.all_deployments()}

    # -- steps of a request ------------------------------------------------------------

    async def authenticate(self, scope: dict) -> KeyInfo | None:
        return await self.governance.authenticate(bearer_token(scope))

    async def authorize_admin(self, scope: dict) -> KeyInfo | None:
        identity = await self.authenticate(scope)
        self.governance.authorize_admin(identity)
        return identity

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from llmops.registry.service import Registry

            self._registry = Registry(database_url=self.database_url)
        return self._registry

    @property
    def conversations(self) -> ConversationStore:
        """What `previous_response_id` continues from (Responses API)."""
        if self._conversations is None:
            from llmops.conversations import ConversationStore

            self._conversations = ConversationStore(self.database_url)
        return self._conversations

    @property
    def experiments(self) -> ExperimentService:
        if self._experiments is None:
            from llmops.experiments.service import ExperimentService

            self._experiments = ExperimentService(database_url=self.database_url)
        return self._experiments

    async def apply_prompt(self, body: dict[str, Any], call: Call, scope: dict) -> None:
        from llmops.gateway.prompts import apply_prompt_reference

        apply_prompt_reference(self, body, call, scope)

    def _check_judges(self, guard_config: GuardrailsConfig) -> None:
        """A judge check must name a model of this gateway: say so at start-up, not per request."""
        overrides = list(guard_config.models.values())
        stages = [guard_config.input, guard_config.output] + [o.input or [] for o in overrides] + [o.output or [] for o in overrides]
        for spec in (spec for stage in stages for spec in stage if spec.check in ("judge", "moderation")):
            model = spec.options.get("model")
            off = self.config.off_models.get(model) if isinstance(model, str) else None
            if off is not None:
                raise GuardrailConfigError(f"guardrails check {spec.key!r}: its model {model} is off on this gateway: {off}")
            if not model or self.router.models.get(model) is None:
                raise GuardrailConfigError(
                    f"guardrails check {spec.key!r}: set options.model to one of this gateway's models "
                    f"({', '.join(sorted(self.router.models))}); that model judges"
                )

    async def ask_judge(self, messages: list[dict[str, Any]], model: str | None = None) -> str:
        """The judge check's model call, through the router like any other, with its own ledger row."""
        if model is None:
            raise ValueError("the judge check needs options.model in the gateway")
        call = Call(endpoint=CHAT, model=model, key_name="guardrail:judge")
        try:
            route, body, answer = await check_models.ask(self.router, model, messages)
            call.attempts = route.attempts
            call.served_model = route.model
            call.served_by(route.deployment)
            self.account(call, route.deployment, body, route.whole.data.get("usage"), [answer])
            return answer
        except LLMOpsError as exc:
            call.tried_until(exc)
            call.failed(exc.status, "upstream_error", exc.code or exc.type)
            raise
        finally:
            self.finish(call)

    def guard_checks(self, call: Call) -> CompiledConfig | None:
        """The guardrails for this call, its model's and its key's overrides applied, or
        None when it has none. Resolved once per request and kept on the call: with a key
        override that is a JSON dump and a lock, which input, output and streaming would
        otherwise each pay again."""
        pipeline = self.guardrails
        if pipeline is None:
            return None
        checks = call.guard_checks
        if checks is None:
            try:
                checks = call.guard_checks = pipeline.compiled(call.model, call.guardrails)
            except GuardrailConfigError as exc:
                raise InternalError(
                    f"the guardrails for this request could not be built ({exc}); "
                    "check the key's guardrails override against the gateway's config"
                ) from None
        return checks if checks.enabled else None

    def check_key_guardrails(self, body: Any) -> None:
        """A key's guardrails override (an admin request's `guardrails`) must name checks
        this gateway has: said with a 400 to the admin now, rather than a 500 on every
        call the key makes later. Its shape is the key store's to check."""
        override = body.get("guardrails") if isinstance(body, dict) else None
        if not isinstance(override, dict) or not override:
            return
        from pydantic import ValidationError

        from llmops.guardrails.config import GuardrailsOverride

        try:
            parsed = GuardrailsOverride.model_validate(override)
        except ValidationError:
            return  # the key store says what is wrong with its shape
        try:
            self.guardrails.compiled(None, parsed)
        except GuardrailConfigError as exc:
            raise InvalidInput(f"guardrails: {exc}", param="guardrails") from None

    async def check_input(self, body: dict[str, Any], call: Call) -> None:
        subject = body.get("messages") if "messages" in body else body.get("prompt")
        if not isinstance(subject, list | str):
            return
        checks = self.guard_checks(call)
        if checks is None or not checks.input:
            return  # guardrails off for this call: nothing to take apart and put back
        pipeline = self.guardrails
        if checks.input_async or pipeline.off_loop(subject):  # a long input: checked in a thread
            result = await pipeline.check_input_async(subject, compiled=checks)
        else:
            result = pipeline.check_input(subject, compiled=checks)
        if result.verdicts:
            call.verdicts = list(result.verdicts)
        if result.blocked:
            self.metrics.guardrail_blocks.inc(result.blocked_by or "")
            raise GuardrailBlocked(
                result.blocked_by or "", f"request blocked: {result.message}"
            )
        if "messages" in body and result.messages is not None:
            body["messages"] = result.messages
        elif "prompt" in body and isinstance(body["prompt"], str) and result.text is not None:
            body["prompt"] = result.text

    async def check_output(self, endpoint: str, data: dict[str, Any], call: Call) -> bool:
        """Apply output guardrails to a whole reply; True when its text was changed."""
        if endpoint not in (CHAT, COMPLETIONS, RESPONSES, MESSAGES):
            return False
        checks = self.output_checks(call)
        if checks is None:
            return False
        pipeline = self.guardrails
        new_texts = []
        changed = False
        for text in reply_texts(endpoint, data):
            if checks.output_async or pipeline.off_loop(text):
                result = await pipeline.check_output_async(text, compiled=checks)
            else:
                result = pipeline.check_output(text, compiled=checks)
            if result.verdicts:
                call.verdicts = [*(call.verdicts or []), *result.verdicts]
            if result.blocked:
                self.metrics.guardrail_blocks.inc(result.blocked_by or "")
                raise GuardrailBlocked(
                    result.blocked_by or "", "the model's reply was blocked"
                )
            new = result.text if result.text is not None else text
            changed = changed or new != text
            new_texts.append(new)
        if changed:
            replace_texts(endpoint, data, new_texts)
        return changed

    def output_checks(self, call: Call) -> CompiledConfig | None:
        """The call's guardrails when they check output, else None."""
        checks = self.guard_checks(call)
        return checks if checks is not None and checks.output else None

    def output_stream(self, call: Call, checks: CompiledConfig):
        return _BlockingStream(self, self.guardrails.output_stream(compiled=checks), call)

    async def admit(self, key: KeyInfo | None, call: Call, body: dict[str, Any]) -> Reservation | None:
        governance = self.governance
        estimated = 0
        max_cost = None
        if governance.tracks_spend(key, call.user):
            # A long prompt is counted in a thread (tiktoken lets go of the GIL): a 3.5 MB
            # one took 0.76 s, all of it a stall for every other request on the loop.
            estimated = await asyncio.to_thread(tokens.count_prompt, body) if _long(body) else tokens.count_prompt(body)
            asked = body.get("max_tokens") or body.get("max_completion_tokens")
            # Reserve for the dearest deployment the router might pick.
            costs = [
                p.max_cost(estimated, asked or p.max_output_tokens or pricing.DEFAULT_RESERVED_OUTPUT_TOKENS)
                for p in self.model_prices.get(call.model or "", [])
                if p is not None
            ]
            max_cost = max(costs) if costs else None
            # Tokens per minute count the reply at its ceiling only when the client set one;
            # a default ceiling would refuse every call on a key whose tpm is below it.
            # Settle corrects the count to the real usage either way.
            estimated += int(asked or 0)
        return await governance.admit(key, user=call.user, estimated_tokens=estimated, max_cost=max_cost)

    def account(self, call: Call, deployment: Deployment, body: dict[str, Any], usage: dict | None, texts: list[str]) -> None:
        self._charge(call, deployment, *_usage(deployment, body, usage, texts))

    async def account_async(
        self, call: Call, deployment: Deployment, body: dict[str, Any], usage: dict | None, texts: list[str]
    ) -> None:
        """`account`, counting a long text's tokens in a thread when the upstream gave no
        usage: tiktoken lets go of the GIL, so the event loop serves others meanwhile."""
        if usage or not (_long(body) or sum(map(len, texts)) > LONG_TEXT_CHARS):
            self.account(call, deployment, body, usage, texts)
            return
        self._charge(call, deployment, *await asyncio.to_thread(_usage, deployment, body, usage, texts))

    def _charge(self, call: Call, deployment: Deployment, u: pricing.Usage, source: str) -> None:
        call.accounted = True
        call.usage_source = source
        call.input_tokens, call.output_tokens, call.cached_tokens = u.input_tokens, u.output_tokens, u.cached_tokens
        price = self.prices.get(deployment.name)
        m = self.metrics
        model = call.model or ""
        where = call.deployment or ""
        m.tokens.inc(model, where, "input", amount=u.input_tokens)
        m.tokens.inc(model, where, "output", amount=u.output_tokens)
        if price is None:
            call.cost = None
            m.unknown_price.inc(model)
        else:
            call.cost = price.cost(u)
            m.cost.inc(model, where, amount=call.cost)

    async def settle(self, reservation: Reservation | None, call: Call) -> None:
        await self.governance.settle(
            reservation,
            tokens=call.input_tokens + call.output_tokens,
            cost=call.cost,
            served=call.outcome == "success",
        )

    def finish(self, call: Call) -> None:
        m = self.metrics
        m.requests.inc(call.endpoint, call.model or "", call.deployment or "", str(call.status))
        m.latency.observe(call.elapsed_ms() / 1000, call.endpoint, call.model or "", call.deployment or "")
        if call.attempts > 1:
            m.retries.inc(call.model or "", amount=call.attempts - 1)
        row = call.ledger_row()
        self.governance.record(row)
        tracer = self.tracer  # OpenTelemetry export: None when off
        if tracer is not None:
            tracer.record(row, call.upstream_ms, call.finish_reasons)


# Above this many characters of text, token counting leaves the event loop (16 KB take
# about 1 ms to count).
LONG_TEXT_CHARS = 16_384


def _long(body: dict[str, Any]) -> bool:
    """Whether a chat-shaped or completions body carries more than LONG_TEXT_CHARS of text."""
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return len(prompt) > LONG_TEXT_CHARS
    if isinstance(prompt, list):
        return sum(len(p) for p in prompt if isinstance(p, str)) > LONG_TEXT_CHARS
    total = 0
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text") or "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        if total > LONG_TEXT_CHARS:
            return True
    return False


def _usage(deployment: Deployment, body: dict[str, Any], usage: dict | None, texts: list[str]) -> tuple[pricing.Usage, str]:
    """A call's usage: the upstream's report, or the gateway's count of its texts."""
    if usage:
        return pricing.usage_from_openai(usage), "reported"
    model = deployment.config.model
    return pricing.Usage(
        input_tokens=tokens.count_prompt({**body, "model": model}),
        output_tokens=sum(tokens.count_text(t, model) for t in texts),
    ), "estimated"


class _BlockingStream:
    """Adapts the guardrails' stream checker: a block becomes a GuardrailBlocked error."""

    def __init__(self, services: Services, inner, call: Call):
        self.services, self.inner, self.call = services, inner, call

    def _check(self) -> None:
        if getattr(self.inner, "blocked", False):
            check = getattr(self.inner, "blocked_by", None)
            self.services.metrics.guardrail_blocks.inc(check or "")
            raise GuardrailBlocked(check or "", "the model's reply was blocked")

    @property
    def held(self) -> int:
        """Characters fed so far and not yet released."""
        return self.inner.held

    def feed(self, delta: str) -> str:
        out = self.inner.feed(delta)
        self._check()
        return out

    def finish(self) -> str:
        out = self.inner.finish()
        return self._finished(out)

    async def afinish(self) -> str:
        """`finish`, with the async checks (judge, plugins) run too."""
        out = await self.inner.afinish()
        return self._finished(out)

    def _finished(self, out: str) -> str:
        self._check()
        verdicts = getattr(self.inner, "verdicts", None)
        if verdicts:
            self.call.verdicts = [*(self.call.verdicts or []), *verdicts]
        return out
