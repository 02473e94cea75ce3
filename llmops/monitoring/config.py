"""The `monitoring:` section of the gateway's configuration, typed.

```yaml
monitoring:
  capture:                    # off unless enabled
    enabled: true
    sample: 0.05              # share of calls kept when no rule matches
    rules:                    # first match wins; globs on the model and the prompt name
      - {prompt: "support-*", sample: 0.2}
      - {model: "gpt-4o*", sample: 0}
    retention_days: 7
    max_chars: 8000           # per text; longer text is cut and marked truncated
    max_megabytes: 200        # the table's text, all rows; oldest pruned first
  online_eval: {enabled: true, interval: 60, suite: evals/support.yaml}
  drift: {enabled: true, recent: 24h, reference: 7d, min_calls: 50}
  alerts: {webhook: os.environ/LLMOPS_ALERT_WEBHOOK}
```
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from llmops.errors import LLMOpsError
from llmops.governance.spend import parse_since


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CaptureRule(_Strict):
    """A share for calls whose model and prompt name match these globs (unset: any)."""

    model: str | None = None
    prompt: str | None = None
    sample: float = Field(ge=0, le=1)

    def matches(self, model: str, prompt: str) -> bool:
        return (self.model is None or fnmatchcase(model, self.model)) and (
            self.prompt is None or fnmatchcase(prompt, self.prompt)
        )


class CaptureConfig(_Strict):
    enabled: bool = False
    sample: float = Field(default=0.01, ge=0, le=1)
    rules: list[CaptureRule] = Field(default_factory=list)
    retention_days: PositiveFloat = 7.0
    max_chars: PositiveInt = 8000
    max_megabytes: PositiveFloat = 200.0
    # Checks run on every stored text whatever the gateway's guardrails are, so a secret
    # never reaches the table even with guardrails off: guardrails' check names, redact mode.
    redact: list[str] = Field(default_factory=lambda: ["secrets", "pii"])
    # The prompt variable that holds the source an answer must be faithful to.
    context_variable: str = "context"
    flush_interval: PositiveFloat = 1.0
    prune_interval: PositiveFloat = 300.0
    max_queue: PositiveInt = 10_000

    def share(self, model: str, prompt: str) -> float:
        for rule in self.rules:
            if rule.matches(model, prompt):
                return rule.sample
        return self.sample


class OnlineEvalConfig(_Strict):
    """Scorers on the captured sample; `llmops monitor score` runs them on demand too."""

    enabled: bool = False  # the gateway's background worker scores as captures arrive
    interval: PositiveFloat = 60.0
    faithfulness: bool = True  # when the call carried a context
    # The evaluation package's faithfulness scorer by name (its `scorer:`); None: its default.
    faithfulness_scorer: str | None = None
    guardrails: bool = True  # the call's guardrail verdicts, as a 0/1 score
    suite: str | None = None  # an eval suite whose default assertions grade each reply
    # The judge model (one the gateway serves) for judged assertions, over the suite's
    # `judge:`; used by `llmops monitor score` (the gateway's worker grades without one).
    judge: str | None = None
    batch_size: PositiveInt = 500


def _span_seconds(value: str | float) -> float:
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError("must be greater than zero")
        return float(value)
    try:
        return parse_since(value).total_seconds()
    except LLMOpsError as exc:  # a pydantic error names the field
        raise ValueError(exc.message) from None


class DriftConfig(_Strict):
    enabled: bool = False  # the gateway recomputes the report every `interval` for /metrics
    interval: PositiveFloat = 300.0
    recent: float = 86_400.0  # the recent window (a span: 24h)
    # The reference window: "previous" is the span before the recent window; "first_week"
    # is the first week each prompt version x model was seen.
    reference: Literal["previous", "first_week"] = "previous"
    reference_span: float = 7 * 86_400.0
    min_calls: PositiveInt = 50  # in each window, below which nothing alarms
    psi_alarm: PositiveFloat = 0.25
    p_value: float = Field(default=0.001, gt=0, lt=1)
    score_drop: PositiveFloat = 0.1  # an online eval mean falling this much alarms
    topic: Literal["auto", "lexical", "embeddings"] = "auto"
    # At most about this many calls (ledger) and captured texts per subject and window: a
    # larger window is sampled at random by the database (drift.py, _thinning).
    max_calls: PositiveInt = 20_000
    max_texts: PositiveInt = 2_000

    @field_validator("recent", "reference_span", mode="before")
    @classmethod
    def _span(cls, value: str | float) -> float:
        return _span_seconds(value)


class AlertsConfig(_Strict):
    webhook: str | None = Field(default=None, repr=False)  # may carry a token: never logged
    timeout: PositiveFloat = 5.0

    @field_validator("webhook")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class TracesConfig(_Strict):
    """OpenTelemetry export of each gateway call (needs the `otel` extra)."""

    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"  # OTLP over HTTP (protobuf)
    headers: dict[str, str] = Field(default_factory=dict, repr=False)  # e.g. a collector's token
    service_name: str = "llmops-gateway"
    sample: float = Field(default=1.0, ge=0, le=1)
    flush_interval: PositiveFloat = 1.0
    timeout: PositiveFloat = 10.0
    max_queue: PositiveInt = 10_000


class MonitoringConfig(_Strict):
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    online_eval: OnlineEvalConfig = Field(default_factory=OnlineEvalConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    traces: TracesConfig = Field(default_factory=TracesConfig)
