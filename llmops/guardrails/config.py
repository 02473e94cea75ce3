"""Guardrails configuration: what the gateway's YAML embeds under `guardrails:`.

```yaml
guardrails:
  input:                       # omitted = the default input pipeline; [] = none
    - {check: injection, action: block}
    - {check: pii, action: redact, options: {entities: [email, credit_card]}}
    - {check: mypkg.checks:no_competitors, action: flag, timeout: 0.5, on_error: closed}
  output:
    - {check: secrets, action: redact}
  models:                      # by exact name or glob; applied in order, exact last
    "gpt-4o*": {checks: {pii: {action: flag}}}
    local-llama: {enabled: false}
```

A per-key override has the shape of a `models` entry and is applied last.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops.guardrails.types import Action, GuardrailConfigError


class CheckSpec(BaseModel):
    """One check in a pipeline."""

    model_config = ConfigDict(extra="forbid")

    check: str
    action: Action = "flag"
    options: dict[str, Any] = Field(default_factory=dict)
    # The name in verdicts and overrides; defaults to `check` (set it to use a check twice).
    name: str | None = None
    # Message roles to scan; default depends on the check (injection: user; indirect_injection: tool, function).
    roles: list[str] | None = None
    # Seconds, for plugins and the judge (defaults 1 and 10).
    timeout: float | None = Field(default=None, gt=0)
    # When the check fails or times out: "open" lets the text through, "closed" blocks it.
    on_error: Literal["open", "closed"] = "open"
    # What the end user is told when this check blocks (default: the check's own message).
    message: str | None = None
    enabled: bool = True

    @property
    def key(self) -> str:
        return self.name or self.check


class CheckPatch(BaseModel):
    """Changes to one named check, in a model or key override."""

    model_config = ConfigDict(extra="forbid")

    action: Action | None = None
    # Merged into the check's options (top-level keys replaced).
    options: dict[str, Any] | None = None
    roles: list[str] | None = None
    timeout: float | None = Field(default=None, gt=0)
    on_error: Literal["open", "closed"] | None = None
    message: str | None = None
    enabled: bool | None = None


class GuardrailsOverride(BaseModel):
    """A per-model or per-key change: switch off, replace a stage, or patch named checks."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    input: list[CheckSpec] | None = None
    output: list[CheckSpec] | None = None
    # Patches by check name, applied to both stages; a name in neither stage is an error.
    checks: dict[str, CheckPatch] = Field(default_factory=dict)


def default_input() -> list[CheckSpec]:
    # Injection first: it reads hidden text (tag characters, zero-width splits) that the
    # invisible_chars redaction after it would remove. What a user types and what arrives
    # as a document are judged apart: `injection` and `harmful` read user messages,
    # `indirect_injection` reads tool and function results (each check's default roles).
    return [
        CheckSpec(check="injection", action="block"),
        CheckSpec(check="indirect_injection", action="block"),
        CheckSpec(check="harmful", action="block"),
        CheckSpec(check="invisible_chars", action="redact"),
        CheckSpec(check="secrets", action="redact"),
        CheckSpec(check="pii", action="flag"),
    ]


def default_output() -> list[CheckSpec]:
    return [CheckSpec(check="secrets", action="redact")]


class GuardrailsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    input: list[CheckSpec] = Field(default_factory=default_input)
    output: list[CheckSpec] = Field(default_factory=default_output)
    models: dict[str, GuardrailsOverride] = Field(default_factory=dict)

    @classmethod
    def default(cls) -> GuardrailsConfig:
        """The default pipeline: injection (direct, in user messages; indirect, in tool
        results) and harmful requests blocked, invisible
        characters and secrets redacted, personal data flagged; secrets redacted in replies."""
        return cls()

    @classmethod
    def disabled(cls) -> GuardrailsConfig:
        return cls(enabled=False, input=[], output=[])

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GuardrailsConfig:
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            raise GuardrailConfigError(f"invalid guardrails config: {_first_error(exc)}") from None

    @classmethod
    def from_yaml(cls, text: str) -> GuardrailsConfig:
        """From YAML text: a bare guardrails mapping, or a gateway config whose
        `guardrails:` key holds one."""
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise GuardrailConfigError(f"guardrails config is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise GuardrailConfigError("guardrails config must be a mapping")
        if "guardrails" in data:
            data = data["guardrails"] or {}
        elif isinstance(data.get("models"), list) or (data and not data.keys() & set(cls.model_fields)):
            # A gateway config (its `models:` is a list of models, not per-model
            # overrides) without a guardrails section: the defaults apply.
            data = {}
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | Path) -> GuardrailsConfig:
        file = Path(path)
        if not file.is_file():
            raise GuardrailConfigError(f"guardrails config file not found: {file}")
        return cls.from_yaml(file.read_text(encoding="utf-8"))

    def override_for(self, model: str | None) -> list[GuardrailsOverride]:
        """The `models` entries that apply to a model: globs in order, then the exact name."""
        if not model or not self.models:
            return []
        found = [o for pattern, o in self.models.items() if pattern != model and _is_glob(pattern) and fnmatch.fnmatchcase(model, pattern)]
        exact = self.models.get(model)
        if exact is not None:
            found.append(exact)
        return found

    def resolve(self, model: str | None = None, key_overrides: GuardrailsOverride | dict | None = None) -> GuardrailsConfig:
        """The effective config for one request: global, then model, then key overrides."""
        config = self.model_copy(update={"models": {}})
        for override in self.override_for(model):
            config = config.apply(override)
        if key_overrides:
            override = key_overrides if isinstance(key_overrides, GuardrailsOverride) else parse_override(key_overrides)
            config = config.apply(override)
        return config

    def apply(self, override: GuardrailsOverride) -> GuardrailsConfig:
        enabled = self.enabled if override.enabled is None else override.enabled
        stages = {
            "input": list(override.input) if override.input is not None else list(self.input),
            "output": list(override.output) if override.output is not None else list(self.output),
        }
        for name, patch in override.checks.items():
            hit = False
            for stage, specs in stages.items():
                for i, spec in enumerate(specs):
                    if spec.key == name:
                        stages[stage][i] = _patched(spec, patch)
                        hit = True
            if not hit:
                raise GuardrailConfigError(f"guardrails override names check {name!r}, which is in neither stage")
        return GuardrailsConfig(enabled=enabled, input=stages["input"], output=stages["output"], models={})


def parse_override(data: dict[str, Any]) -> GuardrailsOverride:
    try:
        return GuardrailsOverride.model_validate(data)
    except ValidationError as exc:
        raise GuardrailConfigError(f"invalid guardrails override: {_first_error(exc)}") from None


def _patched(spec: CheckSpec, patch: CheckPatch) -> CheckSpec:
    update: dict[str, Any] = {k: v for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}
    if "options" in update:
        update["options"] = {**spec.options, **update["options"]}
    return spec.model_copy(update=update)


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
