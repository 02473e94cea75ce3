"""The gateway's configuration: models, deployments, routing, timeouts, governance,
guardrails and experiments, every section typed: an unknown field or a bad value stops
start-up with one line naming the field.

Read from YAML. A value written `os.environ/NAME` is read from the environment, so
secrets stay out of the file; a deployment whose API key names an unset variable is
switched off (hosted models light up when their key is exported). A model left with
no deployment is off: it stays in `off_models` with the reason, which start-up logs
and a call to it is told.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from llmops.errors import InvalidInput
from llmops.experiments.service import ExperimentEntry
from llmops.governance.config import LedgerConfig, LimitsConfig
from llmops.guardrails.config import GuardrailsConfig
from llmops.monitoring.config import MonitoringConfig

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


class ProviderOptions(_Strict):
    """The base of every provider's own options model (`Provider.Options`, in
    providers/): what a deployment's `options:` mapping may hold for its provider."""


# The mock provider's options as they were once written, on the deployment itself.
_OLD_MOCK_KEYS = {"mock_reply": "reply", "mock_latency_ms": "latency_ms"}


class DeploymentConfig(_Strict):
    provider: str = Field(description="a registered provider kind (providers/base.py): openai, vllm, litellm, mock")
    model: str = Field(description="the upstream model name; also used for pricing")
    api_base: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    weight: float = 1.0
    name: str | None = None  # defaults to provider/model@api_base
    pricing: dict[str, float] | None = None
    timeouts: Timeouts | None = None
    # The provider's own options, validated by its `Options` model (mock: reply,
    # latency_ms; vllm: metrics_interval; ...). Declared after `provider`, which it reads.
    options: SerializeAsAny[ProviderOptions] = Field(default_factory=ProviderOptions, validate_default=True)
    extra_params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _old_mock_keys(cls, data: Any) -> Any:
        """`mock_reply` / `mock_latency_ms` on a mock deployment mean its options
        `reply` / `latency_ms`, as they did before providers had options."""
        if not isinstance(data, dict) or not any(old in data for old in _OLD_MOCK_KEYS):
            return data
        options = data.get("options")
        if options is None:
            options = {}
        if not isinstance(options, dict):
            return data  # the options check names the fault
        data, options = dict(data), dict(options)
        for old, new in _OLD_MOCK_KEYS.items():
            if old not in data:
                continue
            if data.get("provider") != "mock":
                raise ValueError(f"{old} is an option of the mock provider only")
            if new in options:
                raise ValueError(f"{old} and options.{new} are both set; keep options.{new}")
            options[new] = data.pop(old)
        data["options"] = options
        return data

    @field_validator("provider")
    @classmethod
    def _registered(cls, v: str) -> str:
        from llmops.gateway.providers.base import provider_class, provider_kinds

        if provider_class(v) is None:
            raise ValueError(f"unknown provider {v!r}; known providers: {', '.join(provider_kinds())}")
        return v

    @field_validator("options", mode="before")
    @classmethod
    def _provider_options(cls, v: Any, info: ValidationInfo) -> Any:
        from llmops.gateway.providers.base import provider_class

        kind = info.data.get("provider")
        provider = provider_class(kind) if isinstance(kind, str) else None
        if provider is None:
            return ProviderOptions()  # the provider's own fault is reported
        if isinstance(v, provider.Options):
            return v
        if v is None:  # `options:` left empty
            v = {}
        elif isinstance(v, ProviderOptions):
            v = v.model_dump(exclude_unset=True)
        return provider.Options.model_validate(v)

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
    # How often a vllm deployment reads its server's /metrics (seconds), unless its
    # options.metrics_interval says otherwise.
    vllm_metrics_interval: float = Field(default=1.0, gt=0)


class GatewayConfig(_Strict):
    models: list[ModelConfig] = Field(default_factory=list)
    router: RouterSettings = Field(default_factory=RouterSettings)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_body_bytes: int = 4 * 1024 * 1024
    master_key: str | None = Field(default=None, repr=False)
    # Without a master key and with no virtual keys, who may call? "open" lets any
    # caller in (the embedded demo default); "keys" requires a valid key.
    auth: Literal["open", "keys"] = "open"
    # Who may read /metrics: anyone who can reach the port, or only the master key.
    metrics_auth: Literal["open", "master_key"] = "open"
    database_url: str | None = None
    redis_url: str | None = None
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig.default)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    experiments: list[ExperimentEntry] = Field(default_factory=list)
    # Filled by parse_config, never read from the file: model name -> why it is off.
    off_models: dict[str, str] = Field(default_factory=dict)
    # Served models that lost some deployments: model name -> which and why.
    off_deployments: dict[str, str] = Field(default_factory=dict)

    @field_validator("guardrails", mode="before")
    @classmethod
    def _guardrails_default(cls, value: Any) -> Any:
        # An empty `guardrails:` section means the defaults, as leaving it out does.
        return {} if value is None else value

    def model(self, name: str) -> ModelConfig | None:
        for m in self.models:
            if m.name == name:
                return m
        return None

    def model_lines(self) -> list[str]:
        """One line per model, served or off and why: what start-up logs."""
        lines = []
        for m in self.models:
            where = ", ".join(f"{d.provider} {d.model}" for d in m.deployments)
            line = f"model {m.name}: served by {where}"
            if m.name in self.off_deployments:
                line += f"; {self.off_deployments[m.name]}"
            off_fallbacks = [fb for fb in m.fallbacks if fb in self.off_models]
            if len(off_fallbacks) == 1:
                line += f"; its fallback {off_fallbacks[0]} is off"
            elif off_fallbacks:
                line += f"; its fallbacks {', '.join(off_fallbacks)} are off"
            lines.append(line)
        lines.extend(f"model {name}: off, {reason}" for name, reason in self.off_models.items())
        return lines


def resolve_env(value: Any) -> Any:
    """Replace `os.environ/NAME` strings, recursively; unset variables become None."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        return os.environ.get(value[len(ENV_PREFIX) :]) or None
    if isinstance(value, dict):
        return {k: resolve_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v) for v in value]
    return value


def _unset_key(dep: Any) -> str | None:
    """The variable a deployment's api_key names when it is unset, else None."""
    key = dep.get("api_key") if isinstance(dep, dict) else None
    if isinstance(key, str) and key.startswith(ENV_PREFIX):
        name = key[len(ENV_PREFIX) :]
        if not os.environ.get(name):
            return name
    return None


def _are_not_set(names: list[str]) -> str:
    names = list(dict.fromkeys(names))
    if len(names) == 1:
        return f"{names[0]} is not set"
    return f"{', '.join(names[:-1])} and {names[-1]} are not set"


def _unset_keys(raw: dict) -> dict[tuple[int, int], str]:
    """(model index, deployment index) -> the unset variable its api_key names."""
    out: dict[tuple[int, int], str] = {}
    models = raw.get("models")
    for i, model in enumerate(models if isinstance(models, list) else []):
        deployments = model.get("deployments") if isinstance(model, dict) else None
        for j, dep in enumerate(deployments if isinstance(deployments, list) else []):
            name = _unset_key(dep)
            if name is not None:
                out[(i, j)] = name
    return out


def _switch_off(config: GatewayConfig, unset: dict[tuple[int, int], str]) -> None:
    """Take out the deployments whose key is unset; a model left with none is off."""
    served: list[ModelConfig] = []
    for i, model in enumerate(config.models):
        kept = [d for j, d in enumerate(model.deployments) if (i, j) not in unset]
        missing = [unset[(i, j)] for j in range(len(model.deployments)) if (i, j) in unset]
        if not kept:
            config.off_models[model.name] = _are_not_set(missing) if missing else "it has no deployments"
            continue
        if missing:
            config.off_deployments[model.name] = (
                f"{len(missing)} of {len(model.deployments)} deployments off, {_are_not_set(missing)}"
            )
            model = model.model_copy(update={"deployments": kept})
        served.append(model)
    config.models = served


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
    if not isinstance(raw, dict):
        raise InvalidInput(f"invalid gateway config {source}: expected a mapping of sections (models, router, ...)")
    for derived in ("off_models", "off_deployments"):
        if derived in raw:
            raise InvalidInput(f"invalid gateway config {source}: {derived}: set by the gateway, not in the file")
    # Every model is checked, those about to be switched off too: a typo in a hosted
    # model's block shows before its key is ever exported.
    unset = _unset_keys(raw)
    try:
        config = GatewayConfig.model_validate(resolve_env(raw))
    except ValidationError as exc:
        # Name the field and the fault, never the value: it may be an API key. One line,
        # as the CLI prints it.
        faults = "; ".join(_fault(e) for e in exc.errors())
        raise InvalidInput(f"invalid gateway config {source}: {faults}") from None
    names = [m.name for m in config.models]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise InvalidInput(f"invalid gateway config {source}: model names repeated: {sorted(dupes)}")
    _switch_off(config, unset)
    names = [m.name for m in config.models]
    for m in config.models:
        for fb in m.fallbacks:
            # A fallback that is off is skipped at call time, as one cooling down is.
            if fb not in names and fb not in config.off_models:
                raise InvalidInput(f"invalid gateway config {source}: model {m.name} falls back to unknown model {fb}")
    experiments = [e.name for e in config.experiments]
    repeated = sorted({n for n in experiments if experiments.count(n) > 1})
    if repeated:
        raise InvalidInput(f"invalid gateway config {source}: experiments: names repeated: {repeated}")
    return config


def _fault(error: ErrorDetails) -> str:
    where = ".".join(map(str, error["loc"])) or "config"
    message = str(error["msg"]).removeprefix("Value error, ")  # our validators' own words
    # A check's own message may run over lines; the CLI prints one.
    return f"{where}: {' '.join(message.split())}"
