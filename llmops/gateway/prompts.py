"""A request that names a registry prompt: render it, apply its defaults, A/B assign.

`"prompt": {"name": "summarize", "label": "production" | "version": 3, "variables": {...}}`
in the body (the OpenAI SDK sends it with `extra_body`). Without a label or version,
a running experiment on that prompt picks the variant; otherwise production (or the
latest version when no production label exists).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops.errors import InvalidInput
from llmops.gateway.call import Call
from llmops.gateway.http import header

if TYPE_CHECKING:
    from llmops.gateway.services import Services


def _unit_id(unit: str, body: dict[str, Any], scope: dict) -> str | None:
    if unit == "user":
        user = body.get("user")
        return user if isinstance(user, str) and user else None
    if unit == "session":
        value = header(scope, b"x-llmops-session")
        return value.decode("latin-1") if value else None
    return None  # per request: a fresh draw each time


def apply_prompt_reference(services: Services, body: dict[str, Any], call: Call, scope: dict) -> None:
    spec = body.pop("prompt")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
        raise InvalidInput(
            "'prompt' must be an object like {\"name\": \"summarize\", \"label\": \"production\", \"variables\": {...}}",
            param="prompt",
        )
    name, label, version = spec["name"], spec.get("label"), spec.get("version")
    variables = spec.get("variables") or {}
    if not isinstance(variables, dict):
        raise InvalidInput("'prompt.variables' must be an object", param="prompt.variables")
    if label is not None and version is not None:
        raise InvalidInput("give 'prompt.label' or 'prompt.version', not both", param="prompt")
    if version is not None:
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidInput("'prompt.version' must be a positive integer", param="prompt.version")
        ref = f"{name}:{version}"
    elif label is not None:
        if not isinstance(label, str) or not label:
            raise InvalidInput("'prompt.label' must be a label name", param="prompt.label")
        ref = f"{name}@{label}"
    else:
        ref = name
        experiment = services.experiments.active_for(name)
        if experiment is not None:
            assignment = experiment.assign(_unit_id(experiment.unit, body, scope))
            call.experiment, call.variant, ref = assignment.experiment, assignment.variant, assignment.ref
    view = services.registry.get_cached(ref)
    rendered = services.registry.render(view, variables)
    if rendered.messages is not None:
        messages = [dict(m) for m in rendered.messages]
    else:
        messages = [{"role": "user", "content": rendered.text}]
    body["messages"] = messages + list(body.get("messages") or [])
    # The version's model config is the default; what the client sent explicitly wins.
    for key, value in (rendered.model_config or {}).items():
        if value is not None:
            body.setdefault(key, value)
    call.prompt_name, call.prompt_version = rendered.name, rendered.version
    call.prompt_variables = variables
