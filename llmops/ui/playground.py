"""The playground: a version's template and model parameters edited as a draft, run beside
the version on a few rows, and saved as the prompt's next version (never an edit).

A draft runs as an inline prompt of a comparison (llmops.ui.compare), so it is graded,
recorded and shown in the results matrix exactly as a comparison of two versions is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from llmops.errors import InvalidInput
from llmops.evaluation.suites import CaseSpec, PromptSpec
from llmops.registry.service import Registry
from llmops.registry.views import PromptVersionView
from llmops.ui.compare import ComparisonRequest, chosen_reference

DRAFT_ID = "draft"


@dataclass(frozen=True)
class Draft:
    kind: str  # "text" | "chat", as the version it started from
    template: str | None
    messages: list[dict] | None
    model_config: dict[str, Any]
    variables: dict[str, Any]

    @property
    def model(self) -> str | None:
        model = self.model_config.get("model")
        return str(model) if model else None


def template_text(view: PromptVersionView) -> str:
    """What the editor shows: a text template as is, chat messages as a YAML list."""
    if view.kind == "text":
        return view.template or ""
    return yaml.safe_dump(list(view.messages or []), sort_keys=False, allow_unicode=True, width=100)


def params_text(view: PromptVersionView) -> str:
    return (
        yaml.safe_dump(dict(view.model_config), sort_keys=False, allow_unicode=True)
        if view.model_config
        else ""
    )


def parse_draft(view: PromptVersionView, template: str, params: str) -> Draft:
    """The edited template and parameters as a draft of `view`; InvalidInput says what is wrong."""
    try:
        config = yaml.safe_load(params) if params.strip() else {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the model parameters are not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise InvalidInput(
            "the model parameters must be a YAML mapping, e.g. `model: demo` / `temperature: 0.2`"
        )
    if not template.strip():
        raise InvalidInput("the template is empty")
    if view.kind == "text":
        return Draft("text", template, None, config, dict(view.variables))
    try:
        messages = yaml.safe_load(template)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the messages are not valid YAML: {exc}") from None
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    ):
        raise InvalidInput("the messages must be a YAML list of `role:` and `content:` entries")
    return Draft(
        "chat",
        None,
        [{"role": m["role"], "content": m["content"]} for m in messages],
        config,
        dict(view.variables),
    )


def draft_spec(draft: Draft) -> PromptSpec:
    params = {k: v for k, v in draft.model_config.items() if k != "model"}
    if draft.kind == "text":
        return PromptSpec(id=DRAFT_ID, template=draft.template, variables=draft.variables, params=params)
    return PromptSpec(id=DRAFT_ID, messages=draft.messages, variables=draft.variables, params=params)


def draft_request(
    view: PromptVersionView, draft: Draft, cases: list[CaseSpec], model: str
) -> ComparisonRequest:
    """The version and its draft on `model` over `cases`, unchecked (the outputs side by side)."""
    return ComparisonRequest(
        prompt_refs=[view.ref],
        prompt_ids={view.ref: chosen_reference(view)},
        drafts=[draft_spec(draft)],
        models=[model],
        cases=cases,
        name=f"playground {view.name}",
    )


def save_draft(database_url: str, view: PromptVersionView, draft: Draft, message: str) -> PromptVersionView:
    """The draft stored as the prompt's next version, with `message`; the version it came from is untouched."""
    return Registry(database_url, cache_ttl=0).derive_version(
        view.ref,
        template=draft.template if draft.kind == "text" else None,
        messages=draft.messages if draft.kind == "chat" else None,
        model_config=draft.model_config,
        message=f"{message.strip()} (from v{view.version}, in the app's playground)"
        if message.strip()
        else "",
        author="llmops-ui",
    )
