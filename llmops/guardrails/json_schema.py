"""The model's reply must be JSON that satisfies a JSON Schema (uses `jsonschema`).

The reply may be wrapped in a Markdown code fence; the fence is ignored. On a stream the
check runs once, on the whole reply, when the stream finishes.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from pydantic import model_validator

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection

_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?```\s*$", re.DOTALL)


class JsonSchemaOptions(CheckOptions):
    # The JSON Schema the reply must satisfy; {} only requires valid JSON.
    json_schema: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _accept_schema_key(cls, data: Any) -> Any:
        # `schema` reads better in YAML but shadows a pydantic name; accept both.
        if isinstance(data, dict) and "schema" in data and "json_schema" not in data:
            data = {**data, "json_schema": data["schema"]}
            del data["schema"]
        return data


@register
class JsonSchemaCheck(Check):
    name: ClassVar[str] = "json_schema"
    scope = "conversation"
    final_only = True
    block_message = "The reply was blocked: it is not valid JSON of the expected shape."
    Options = JsonSchemaOptions

    def __init__(self, options: JsonSchemaOptions):
        super().__init__(options)
        import jsonschema  # imported only when the check is configured: it is slow to import

        validator_cls = jsonschema.validators.validator_for(options.json_schema)
        try:
            validator_cls.check_schema(options.json_schema)
        except jsonschema.SchemaError as exc:
            raise ValueError(f"invalid JSON schema: {exc.message}") from exc
        self._validator = validator_cls(options.json_schema)

    def scan(self, view: TextView) -> Detection | None:
        text = view.text
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
        try:
            data = json.loads(text)
        except ValueError:
            return Detection(score=1.0, labels=("invalid_json",))
        errors = list(self._validator.iter_errors(data))
        if not errors:
            return None
        # The failing paths, not the values: the reply may hold personal data.
        paths = sorted({"/".join(str(p) for p in e.absolute_path) or "$" for e in errors})[:10]
        return Detection(score=1.0, labels=("schema_mismatch", *(f"at:{p}" for p in paths)), matched=len(errors))
