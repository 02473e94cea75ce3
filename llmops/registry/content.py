"""What a version holds, checked and put in one canonical form, and its content hash.

The hash covers what changes the model's input (kind, template or messages, declared
variables, model config), not the commit message or author: `sync` uses it to tell
new content from content the registry already has.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from llmops.errors import InvalidInput
from llmops.registry import templates

CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_MESSAGE_KEYS = ("role", "content", "name")


@dataclass(frozen=True)
class PromptContent:
    kind: str  # "text" | "chat"
    template: str | None
    messages: list[dict] | None
    variables: dict[str, Any]
    model_config: dict[str, Any]

    @property
    def sources(self) -> list[str]:
        if self.kind == "text":
            return [self.template or ""]
        return [m["content"] for m in self.messages or []]

    @property
    def stored_template(self) -> Any:
        return self.template if self.kind == "text" else self.messages

    def content_hash(self) -> str:
        body = {
            "kind": self.kind,
            "template": self.stored_template,
            "variables": self.variables,
            "model_config": self.model_config,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} must be plain JSON data: {exc}") from None


def _normalize_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages must be a non-empty list of {role, content}")
    out = []
    for i, message in enumerate(messages, 1):
        if not isinstance(message, dict):
            raise InvalidInput(f"message {i} must be a mapping with role and content")
        extra = set(message) - set(_MESSAGE_KEYS)
        if extra:
            raise InvalidInput(
                f"message {i} has unknown keys {sorted(extra)}: allowed are role, content, name"
            )
        role, content = message.get("role"), message.get("content")
        if role not in CHAT_ROLES:
            raise InvalidInput(
                f"message {i} has role {role!r}: expected one of {', '.join(sorted(CHAT_ROLES))}"
            )
        if not isinstance(content, str):
            raise InvalidInput(f"message {i} ({role}) needs a string content")
        clean = {"role": role, "content": content}
        if message.get("name") is not None:
            clean["name"] = str(message["name"])
        templates.check_syntax(content, f"message {i} ({role})")
        out.append(clean)
    return out


def _normalize_model_config(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidInput("model_config must be a mapping (model, temperature, max_tokens, ...)")
    if "model" in config and not (isinstance(config["model"], str) and config["model"]):
        raise InvalidInput("model_config.model must be a non-empty string")
    temperature = config.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise InvalidInput("model_config.temperature must be a number between 0 and 2")
    max_tokens = config.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise InvalidInput("model_config.max_tokens must be a positive integer")
    if config.get("tools") is not None and not isinstance(config["tools"], list):
        raise InvalidInput("model_config.tools must be a list")
    if config.get("response_format") is not None and not isinstance(config["response_format"], dict):
        raise InvalidInput("model_config.response_format must be a mapping, e.g. {type: json_object}")
    _check_json(config, "model_config")
    return dict(config)


def _normalize_variables(variables: Any, sources: list[str]) -> dict[str, Any]:
    if variables is None:
        # Not declared: declare what the template reads, all required.
        return {name: None for name in sorted(templates.used_variables(sources))}
    if isinstance(variables, list):  # a list of names is shorthand for "all required"
        variables = {name: None for name in variables}
    if not isinstance(variables, dict):
        raise InvalidInput(
            "variables must be a mapping of name to default (null = required) or a list of names"
        )
    for name in variables:
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInput(f"invalid variable name {name!r}: must be a Python identifier")
    _check_json(variables, "variables")
    return dict(variables)


def build_content(
    *,
    template: str | None = None,
    messages: list[dict] | None = None,
    variables: dict[str, Any] | list[str] | None = None,
    model_config: dict[str, Any] | None = None,
) -> PromptContent:
    """Check and normalise a version's content; raises InvalidInput or TemplateError."""
    if (template is None) == (messages is None):
        raise InvalidInput("a version needs exactly one of template (text) or messages (chat)")
    if template is not None:
        if not isinstance(template, str):
            raise InvalidInput("template must be a string")
        templates.check_syntax(template)
        kind, clean_messages = "text", None
    else:
        kind, clean_messages = "chat", _normalize_messages(messages)
    draft = PromptContent(kind, template, clean_messages, {}, {})
    return PromptContent(
        kind=kind,
        template=template,
        messages=clean_messages,
        variables=_normalize_variables(variables, draft.sources),
        model_config=_normalize_model_config(model_config),
    )
