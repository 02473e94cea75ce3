"""The gateway's configuration: models, deployments, routing, timeouts, governance.

Read from YAML. A value written `os.environ/NAME` is read from the environment, so
secrets stay out of the file; a deployment whose API key names an unset variable is
switched off (hosted models light up when their key is exported).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llmops.errors import InvalidInput
from llmops.governance.config import LedgerConfig, LimitsConfig

ProviderKind = Literal["openai", "vllm", "litellm", "mock"]
ENV_PREFIX = "os.environ/"

# In the repository a link to gateway/config.yaml; in an installed package, a copy of it,
# so that `llmops serve` with no --config runs anywhere.
DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Timeouts(_Strict):
    connect: float = 5.0
    first_byte: float = 60.0
    idle: float = 30.0  # longest gap between two stream chunks
    total: float = 600.0


class DeploymentConfig(_Strict):
    provider: ProviderKind
    model: str = Field(description="the upstream model name; also used for pricing")
    api_base: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    weight: float = 1.0
    name: str | None = None  # defaults to provider/model@api_base
    pricing: dict[str, float] | None = None
    timeouts: Timeouts | None = None
    # mock provider only: reply text (default: extractive echo), latency in ms
    mock_reply: str | None = None
    mock_latency_ms: float = 0.0
    extra_params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("weight")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("weight must be positive")
        return v


class ModelConfig(_Strict):
    name: str
    deployments: list[DeploymentConfig]
    fallbacks: list[str] = Field(default_factory=list)
    description: str | None = None


class RouterSettings(_Strict):
    retries: int = 2
    backoff_base: float = 0.25  # seconds; doubles each retry, with full jitter
    backoff_max: float = 8.0
    cooldown_failures: int = 3  # consecutive failures before a deployment rests
    cooldown_seconds: float = 30.0
    vllm_metrics_interval: float = 1.0


class GatewayConfig(_Strict):
    models: list[ModelConfig] = Field(default_factory=list)
    router: RouterSettings = Field(default_factory=RouterSettings)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_body_bytes: int = 4 * 1024 * 1024
    master_key: str | None = Field(default=None, repr=False)
    # Without a master key and with no virtual keys, who may call? "open" lets any
    # caller in (the embedded demo default); "keys" requires a valid key.
    auth: Literal["open", "keys"] = "open"
    database_url: str | None = None
    redis_url: str | None = None
    guardrails: dict[str, Any] | None = None
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    experiments: list[dict[str, Any]] = Field(default_factory=list)

    def model(self, name: str) -> ModelConfig | None:
        for m in self.models:
            if m.name == name:
                return m
        return None


def resolve_env(value: Any) -> Any:
    """Replace `os.environ/NAME` strings, recursively; unset variables become None."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        return os.environ.get(value[len(ENV_PREFIX) :]) or None
    if isinstance(value, dict):
        return {k: resolve_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v) for v in value]
    return value


def _drop_unconfigured(raw: dict) -> dict:
    """Remove deployments whose api_key names an unset variable, and models left empty."""
    models = []
    for model in raw.get("models") or []:
        deployments = []
        for dep in model.get("deployments") or []:
            key = dep.get("api_key")
            if isinstance(key, str) and key.startswith(ENV_PREFIX) and not os.environ.get(key[len(ENV_PREFIX) :]):
                continue
            deployments.append(dep)
        if deployments:
            models.append({**model, "deployments": deployments})
    return {**raw, "models": models}


def load_config(path: str | Path | None = None) -> GatewayConfig:
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise InvalidInput(f"gateway config not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"gateway config {path} is not valid YAML: {exc}") from exc
    return parse_config(raw, source=str(path))


def parse_config(raw: dict, source: str = "config") -> GatewayConfig:
    raw = resolve_env(_drop_unconfigured(raw))
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        # Name the field and the fault, never the value: it may be an API key.
        faults = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"invalid gateway config {source}: {faults}") from None
    names = [m.name for m in config.models]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise InvalidInput(f"invalid gateway config {source}: model names repeated: {sorted(dupes)}")
    for m in config.models:
        for fb in m.fallbacks:
            if fb not in names:
                raise InvalidInput(f"invalid gateway config {source}: model {m.name} falls back to unknown model {fb}")
    return config
