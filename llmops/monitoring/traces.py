"""OpenTelemetry export of gateway calls (the `otel` extra), off the request path.

Each finished call's ledger row is queued (one deque append); a background thread turns
it into spans with the call's own start and end times and hands them to the SDK's batch
processor, which posts OTLP/HTTP (protobuf) to any collector: Jaeger, Tempo, Langfuse,
Phoenix. Spans follow the GenAI semantic conventions:

  root   "{operation} {model}", kind SERVER: gen_ai.operation.name, gen_ai.system and
         gen_ai.provider.name, gen_ai.request.model, gen_ai.response.model,
         gen_ai.usage.input_tokens / output_tokens, gen_ai.response.id (the upstream's id),
         http.response.status_code, error.type; llmops.* for cost, key id (never the key),
         prompt name and version, experiment and variant, request id, outcome
  child  "{operation} {upstream model}", kind CLIENT: the upstream call (the router's time,
         retries and backoff included), with gen_ai.* and server.address-free attributes

The child's start is the router's: for a stream, time to first token less the upstream
time; for a whole reply, the call's end less the upstream time (off by the output
checks' few microseconds).
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from datetime import datetime
from typing import Any

from llmops.errors import InvalidInput
from llmops.monitoring.config import TracesConfig

log = logging.getLogger("llmops.monitoring")

OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "chat",
    "/v1/messages": "chat",
}


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000) * 1000


class CallTracer:
    def __init__(self, config: TracesConfig):
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise InvalidInput(
                "monitoring.traces needs OpenTelemetry: pip install 'llmops[otel]'", param="monitoring.traces"
            ) from None
        self.config = config
        self.provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}))
        exporter = OTLPSpanExporter(
            endpoint=config.endpoint, headers=dict(config.headers), timeout=config.timeout
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=config.max_queue,
                schedule_delay_millis=int(config.flush_interval * 1000),
            )
        )
        self.tracer = self.provider.get_tracer("llmops.gateway")
        self._queue: deque[tuple[dict[str, Any], float]] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.dropped = 0

    # -- the request path ----------------------------------------------------------------

    def record(self, row: dict[str, Any], upstream_ms: float) -> None:
        """Queue a finished call's ledger row (and the router's time) for export."""
        if len(self._queue) >= self.config.max_queue:
            self.dropped += 1
            return
        if self.config.sample < 1 and random.random() >= self.config.sample:
            return
        self._queue.append((row, upstream_ms))

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> CallTracer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llmops-traces", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.provider.shutdown()  # flushes what the batch processor holds

    def _run(self) -> None:
        from llmops.governance.side_work import set_nice

        set_nice(threading.get_native_id(), 10)
        while True:
            self._wake.wait(self.config.flush_interval / 2)
            self._wake.clear()
            while self._queue:
                row, upstream_ms = self._queue.popleft()
                try:
                    self.emit(row, upstream_ms)
                except Exception:
                    log.exception("traces: a span could not be built")
            if self._stop:
                return

    # -- spans -----------------------------------------------------------------------------

    def emit(self, row: dict[str, Any], upstream_ms: float) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        operation = OPERATIONS.get(row.get("endpoint") or "", "chat")
        start = _ns(row["created_at"])
        end = start + int(float(row.get("latency_ms") or 0) * 1_000_000)
        model = row.get("model") or ""
        common: dict[str, Any] = {"gen_ai.operation.name": operation, "gen_ai.request.model": model}
        provider = row.get("provider")
        if provider:
            common["gen_ai.system"] = common["gen_ai.provider.name"] = provider
        if row.get("upstream_model"):
            common["gen_ai.response.model"] = row["upstream_model"]
        usage = {
            "gen_ai.usage.input_tokens": int(row.get("input_tokens") or 0),
            "gen_ai.usage.output_tokens": int(row.get("output_tokens") or 0),
        }
        attributes = {
            **common,
            **usage,
            "http.response.status_code": int(row.get("status") or 0),
            "llmops.request_id": row["id"],
            "llmops.outcome": row.get("outcome") or "",
            "llmops.endpoint": row.get("endpoint") or "",
        }
        optional = {
            "gen_ai.response.id": row.get("upstream_request_id"),
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
        attributes.update({k: v for k, v in optional.items() if v is not None})
        failed = row.get("outcome") not in ("success", None)
        if failed and row.get("error_type"):
            attributes["error.type"] = row["error_type"]
        root = self.tracer.start_span(
            f"{operation} {model}".strip(), kind=SpanKind.SERVER, start_time=start, attributes=attributes
        )
        if failed:
            root.set_status(Status(StatusCode.ERROR, row.get("error_type") or row.get("outcome")))
        if upstream_ms > 0 and row.get("deployment"):
            ttft = row.get("ttft_ms")
            up_start = start + int(
                (
                    (ttft - upstream_ms)
                    if ttft is not None
                    else (float(row.get("latency_ms") or 0) - upstream_ms)
                )
                * 1_000_000
            )
            up_start = min(max(start, up_start), end)
            child_attrs = {**common, **usage, "llmops.deployment": row["deployment"]}
            child = self.tracer.start_span(
                f"{operation} {row.get('upstream_model') or model}".strip(),
                kind=SpanKind.CLIENT,
                context=trace.set_span_in_context(root),
                start_time=up_start,
                attributes=child_attrs,
            )
            if failed and row.get("outcome") == "upstream_error":
                child.set_status(Status(StatusCode.ERROR, row.get("error_type") or "upstream_error"))
            child.end(end_time=end if ttft is not None else min(end, up_start + int(upstream_ms * 1_000_000)))
        root.end(end_time=end)
