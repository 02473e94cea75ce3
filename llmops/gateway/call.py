"""What the gateway learns about one request as it goes: the ledger row in the making."""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from llmops.gateway.errors import UpstreamError

_suffixes: deque[str] = deque()


def new_request_id() -> str:
    """"req-", the time in microseconds (13 hex digits), then 80 random bits (20 hex).

    Time first, so ids arrive in order: the ledger's primary-key index then grows at its
    right edge instead of touching a random page per row (measured in the gateway: the
    ledger writer's CPU per row fell by about a third, and its WAL by more). The random
    part keeps ids unguessable (feedback is tied to them); it is drawn from the OS 256 at
    a time, which saves a system call per request. popleft is atomic, so threads never
    share one.
    """
    try:
        suffix = _suffixes.popleft()
    except IndexError:
        block = os.urandom(10 * 256).hex()
        _suffixes.extend(block[i : i + 20] for i in range(0, len(block), 20))
        suffix = _suffixes.popleft()
    return f"req-{time.time_ns() // 1000:013x}{suffix}"


@dataclass(slots=True)
class Call:
    endpoint: str
    id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    key_id: str | None = None
    key_name: str | None = None
    user: str | None = None
    team: str | None = None
    model: str | None = None  # as asked
    served_model: str | None = None  # the one that answered: a fallback, when used
    deployment: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    upstream_request_id: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    experiment: str | None = None
    variant: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    usage_source: str | None = None
    cost: float | None = None
    ttft_ms: float | None = None
    upstream_ms: float = 0.0  # in the router: the upstream, its retries and backoff (not overhead)
    status: int = 200
    outcome: str = "success"
    error_type: str | None = None
    verdicts: list[dict[str, Any]] | None = None
    streamed: bool = False
    attempts: int = 0
    # The key's guardrails override (not a ledger field): applies to input and output.
    guardrails: dict[str, Any] | None = None
    # The guardrails resolved for this call (Services.guard_checks; not a ledger field).
    guard_checks: Any = None
    # What the client's API surface carries from request to reply (not a ledger field).
    surface_state: Any = None
    accounted: bool = False  # tokens and cost are counted (Services.account)
    # The registry prompt's variables (not a ledger field): a captured call's context.
    prompt_variables: dict[str, Any] | None = None
    # Why the reply ended, per choice: kept only while traces are exported (not a ledger field).
    finish_reasons: list[str] | None = None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def served_by(self, deployment: Any) -> None:
        """Record which deployment (a router.Deployment) took the call, or failed it last."""
        self.deployment = deployment.name
        self.provider, self.upstream_model = deployment.config.provider, deployment.config.model

    def tried_until(self, error: BaseException) -> None:
        """After the router gave up (an UpstreamError): which deployment failed last, and
        how often it tried, for the ledger and /metrics."""
        if isinstance(error, UpstreamError) and error.deployment is not None:
            self.served_by(error.deployment)
            self.attempts = error.attempts

    def chat_usage(self) -> dict[str, Any]:
        """The counted usage in chat-completions shape, for a reply whose upstream gave none."""
        usage: dict[str, Any] = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        return usage

    def failed(self, status: int, outcome: str, error_type: str | None) -> None:
        self.status, self.outcome, self.error_type = status, outcome, error_type

    def ledger_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "key_id": self.key_id,
            "key_name": self.key_name,
            "user": self.user,
            "team": self.team,
            "model": self.model,
            "deployment": self.deployment,
            "provider": self.provider,
            "upstream_model": self.upstream_model,
            "prompt_name": self.prompt_name,
            "prompt_version": self.prompt_version,
            "experiment": self.experiment,
            "variant": self.variant,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "usage_source": self.usage_source,
            "cost": self.cost,
            "latency_ms": round(self.elapsed_ms(), 3),
            "ttft_ms": None if self.ttft_ms is None else round(self.ttft_ms, 3),
            "status": self.status,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "guardrail_verdicts": self.verdicts,
            "streamed": self.streamed,
            "endpoint": self.endpoint,
            "upstream_request_id": self.upstream_request_id,
        }
