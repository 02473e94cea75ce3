"""OpenTelemetry export of gateway calls, off the request path.

Each finished call's ledger row is queued (one deque append). A background thread
takes the queue every `flush_interval`, encodes each call as OTLP spans (otlp.py, no
dependency: the SDK's span objects doubled the gateway's CPU per request) and posts the
batch as protobuf over HTTP to any collector: Jaeger, Tempo, Langfuse, Phoenix. Spans follow the GenAI semantic conventions:

  root   "{operation} {model}", kind SERVER: gen_ai.operation.name, gen_ai.system and
         gen_ai.provider.name, gen_ai.request.model, gen_ai.response.model,
         gen_ai.usage.input_tokens / output_tokens, gen_ai.response.id (the upstream's id),
         http.response.status_code, error.type; llmops.* for cost, key id (never the key),
         prompt name and version, experiment and variant, request id, outcome
  child  "{operation} {upstream model}", kind CLIENT: the upstream call (the router's time,
         retries and backoff included)

The child's start is the router's: for a stream, time to first token less the upstream
time; for a whole reply, the call's end less the upstream time (off by the output
checks' few microseconds). A batch the collector refuses is dropped and counted.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from datetime import datetime
from typing import Any

import httpx

from llmops.monitoring import otlp
from llmops.monitoring.background import BackgroundQueue
from llmops.monitoring.config import TracesConfig

log = logging.getLogger("llmops.monitoring")

OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "chat",
    "/v1/messages": "chat",
}
MAX_BATCH = 512  # calls per export request


def finish_reasons(data: dict[str, Any]) -> list[str] | None:
    """Why a whole reply ended: each choice's finish_reason (chat, completions), the
    Messages API's stop_reason, or the Responses API's status."""
    choices = data.get("choices")
    if isinstance(choices, list):
        found = [c["finish_reason"] for c in choices if isinstance(c, dict) and c.get("finish_reason")]
        return [str(r) for r in found] or None
    reason = data.get("stop_reason") or data.get("status")
    return [str(reason)] if reason else None


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000) * 1000


class CallTracer(BackgroundQueue[tuple[dict[str, Any], float, list[str] | None]]):
    thread_name = "llmops-traces"

    def __init__(self, config: TracesConfig):
        super().__init__(config.max_queue)
        self.config = config
        self._headers = {**config.headers, "content-type": "application/x-protobuf"}
        self.exported = 0

    # -- the request path ----------------------------------------------------------------

    def record(self, row: dict[str, Any], upstream_ms: float, reasons: list[str] | None = None) -> None:
        """Queue a finished call's ledger row (the router's time, the finish reasons) for export."""
        # A full queue counts the call as dropped before any draw, as a kept call would be.
        if len(self._queue) < self._max_queue and self.config.sample < 1 and random.random() >= self.config.sample:
            return
        self._put((row, upstream_ms, reasons))

    # -- the export thread ---------------------------------------------------------------

    def _run(self) -> None:
        from llmops.governance.side_work import set_nice

        set_nice(threading.get_native_id(), 10)
        with httpx.Client(timeout=self.config.timeout) as client:
            while True:
                self._wake.wait(self.config.flush_interval)
                self._wake.clear()
                try:
                    while self.flush(client):
                        pass
                except Exception:
                    log.exception("traces: a batch could not be exported")
                if self._stop:
                    return

    def flush(self, client: httpx.Client | None = None) -> int:
        """Export up to MAX_BATCH queued calls; returns how many."""
        batch: list[tuple[dict[str, Any], float, list[str] | None]] = []
        while self._queue and len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.popleft())
            except IndexError:
                break
        if not batch:
            return 0
        spans = [
            span for row, upstream_ms, reasons in batch for span in self.spans(row, upstream_ms, reasons)
        ]
        body = otlp.export_request({"service.name": self.config.service_name}, "llmops.gateway", spans)
        try:
            post = client.post if client is not None else httpx.post
            response = post(self.config.endpoint, content=body, headers=self._headers)
            response.raise_for_status()
            self.exported += len(batch)
        except httpx.HTTPError as exc:
            self.dropped += len(batch)  # headers may hold a token and the URL too: neither is logged
            log.warning(
                "traces: the collector refused or missed %d calls (%s)", len(batch), type(exc).__name__
            )
        return len(batch)

    # -- spans -----------------------------------------------------------------------------

    def spans(self, row: dict[str, Any], upstream_ms: float, reasons: list[str] | None = None) -> list[bytes]:
        """The call's server span and, when it reached an upstream, its client child."""
        operation = OPERATIONS.get(row.get("endpoint") or "", "chat")
        start = _ns(row["created_at"])
        latency_ms = float(row.get("latency_ms") or 0)
        end = start + int(latency_ms * 1_000_000)
        model = row.get("model") or ""
        common: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": model,
            "gen_ai.system": row.get("provider"),
            "gen_ai.provider.name": row.get("provider"),
            "gen_ai.response.model": row.get("upstream_model"),
            "gen_ai.usage.input_tokens": int(row.get("input_tokens") or 0),
            "gen_ai.usage.output_tokens": int(row.get("output_tokens") or 0),
            "gen_ai.response.finish_reasons": reasons or None,
        }
        outcome = row.get("outcome") or "success"
        failed = outcome != "success"
        root_attrs = {
            **common,
            "gen_ai.response.id": row.get("upstream_request_id"),
            "http.response.status_code": int(row.get("status") or 0),
            "error.type": row.get("error_type") if failed else None,
            "llmops.request_id": row["id"],
            "llmops.outcome": outcome,
            "llmops.endpoint": row.get("endpoint"),
            "llmops.cost_usd": row.get("cost"),
            "llmops.key_id": row.get("key_id"),
            "llmops.user": row.get("user"),
            "llmops.team": row.get("team"),
            "llmops.deployment": row.get("deployment"),
            "llmops.prompt.name": row.get("prompt_name"),
            "llmops.prompt.version": row.get("prompt_version"),
            "llmops.experiment": row.get("experiment"),
            "llmops.variant": row.get("variant"),
            "llmops.streamed": row.get("streamed"),
            "llmops.ttft_ms": row.get("ttft_ms"),
        }
        trace_id, root_id = os.urandom(16), os.urandom(8)
        error = (row.get("error_type") or outcome) if failed else None
        root = otlp.span(
            trace_id=trace_id,
            span_id=root_id,
            parent_id=None,
            name=f"{operation} {model}".strip(),
            kind=otlp.SPAN_KIND_SERVER,
            start=start,
            end=end,
            attrs=root_attrs,
            error=error,
        )
        if upstream_ms <= 0 or not row.get("deployment"):
            return [root]
        ttft = row.get("ttft_ms")
        before = (ttft - upstream_ms) if ttft is not None else (latency_ms - upstream_ms)
        up_start = min(max(start, start + int(before * 1_000_000)), end)
        up_end = end if ttft is not None else min(end, up_start + int(upstream_ms * 1_000_000))
        child = otlp.span(
            trace_id=trace_id,
            span_id=os.urandom(8),
            parent_id=root_id,
            name=f"{operation} {row.get('upstream_model') or model}".strip(),
            kind=otlp.SPAN_KIND_CLIENT,
            start=up_start,
            end=up_end,
            attrs={**common, "llmops.deployment": row["deployment"]},
            error=error if outcome == "upstream_error" else None,
        )
        return [root, child]
