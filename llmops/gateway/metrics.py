"""Prometheus metrics, kept in plain dicts: an increment is a dict update.

Each gateway worker process keeps its own figures; scrape each worker, or run one
worker per port (see README, "Operating").

A `model` label takes only the names of configured models: a client chooses the model
name it sends, and each new label value is a new series kept for the life of the
process, so unknown names are all counted under one value, `(unknown)`. The configured
names are given as `GatewayMetrics(models=...)`; without them no name is replaced.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable

UNKNOWN_MODEL = "(unknown)"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    inner = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Labelled:
    """A metric whose `model` label, once bound, takes only configured names."""

    label_names: tuple[str, ...]
    _known: frozenset[str] = frozenset()
    _model_at = -1  # the `model` label's position, once bound

    def bound_by(self, models: frozenset[str]) -> None:
        if "model" in self.label_names:
            self._known, self._model_at = models | {""}, self.label_names.index("model")

    def _unknown(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        at = self._model_at
        return (*labels[:at], UNKNOWN_MODEL, *labels[at + 1 :])


class Counter(_Labelled):
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.label_names = name, help, labels
        self.values: dict[tuple[str, ...], float] = defaultdict(float)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        at = self._model_at
        if at >= 0 and labels[at] not in self._known:
            labels = self._unknown(labels)
        self.values[labels] += amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in self.values.items():
            yield f"{self.name}{_labels(self.label_names, labels)} {value}"


class Gauge:
    """A value read when scraped, from a callback returning {labels: value}."""

    def __init__(self, name: str, help: str, labels: tuple[str, ...], read: Callable[[], dict[tuple[str, ...], float]]):
        self.name, self.help, self.label_names, self.read = name, help, labels, read

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in self.read().items():
            yield f"{self.name}{_labels(self.label_names, labels)} {value}"


class Histogram(_Labelled):
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.name, self.help, self.label_names, self.buckets = name, help, labels, buckets
        self.counts: dict[tuple[str, ...], list[int]] = {}
        self.sums: dict[tuple[str, ...], float] = defaultdict(float)

    def observe(self, value: float, *labels: str) -> None:
        at = self._model_at
        if at >= 0 and labels[at] not in self._known:
            labels = self._unknown(labels)
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * (len(self.buckets) + 1)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, counts in self.counts.items():
            cumulative = 0
            base = _labels(self.label_names, labels)
            for bound, count in zip(self.buckets, counts, strict=False):
                cumulative += count
                le = _labels((*self.label_names, "le"), (*labels, repr(float(bound))))
                yield f"{self.name}_bucket{le} {cumulative}"
            cumulative += counts[-1]
            yield f"{self.name}_bucket{_labels((*self.label_names, 'le'), (*labels, '+Inf'))} {cumulative}"
            yield f"{self.name}_sum{base} {self.sums[labels]}"
            yield f"{self.name}_count{base} {cumulative}"


class GatewayMetrics:
    def __init__(self, models: Iterable[str] | None = None) -> None:
        known = frozenset(models) if models is not None else None
        self.requests = Counter(
            "llmops_requests_total", "Requests handled", ("endpoint", "model", "deployment", "status")
        )
        self.errors = Counter("llmops_errors_total", "Requests that ended in an error", ("model", "deployment", "type"))
        self.latency = Histogram(
            "llmops_request_duration_seconds", "Whole request time", ("endpoint", "model", "deployment")
        )
        self.upstream_latency = Histogram(
            "llmops_upstream_duration_seconds", "Time to the upstream's reply or first chunk", ("model", "deployment")
        )
        self.tokens = Counter("llmops_tokens_total", "Tokens by direction", ("model", "deployment", "direction"))
        self.cost = Counter("llmops_cost_usd_total", "Cost charged in USD", ("model", "deployment"))
        self.unknown_price = Counter("llmops_unknown_price_total", "Requests whose cost is unknown (no price)", ("model",))
        self.guardrail_blocks = Counter("llmops_guardrail_blocks_total", "Requests or replies blocked", ("check",))
        self.retries = Counter("llmops_upstream_retries_total", "Extra upstream attempts", ("model",))
        self.gauges: list[Gauge] = []
        if known is not None:
            for metric in (self.requests, self.errors, self.latency, self.upstream_latency, self.tokens, self.cost,
                           self.unknown_price, self.retries):
                metric.bound_by(known)

    def add_gauge(self, gauge: Gauge) -> None:
        self.gauges.append(gauge)

    def render(self) -> bytes:
        lines: list[str] = []
        metrics: tuple[Counter | Gauge | Histogram, ...] = (
            self.requests,
            self.errors,
            self.latency,
            self.upstream_latency,
            self.tokens,
            self.cost,
            self.unknown_price,
            self.guardrail_blocks,
            self.retries,
            *self.gauges,
        )
        for metric in metrics:
            lines.extend(metric.render())
        return ("\n".join(lines) + "\n").encode()
