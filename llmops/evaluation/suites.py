"""Eval suites: a YAML file naming the prompts, the models, the cases and their assertions.

    name: summarize
    prompts: [summarize@production, summarize@staging]      # registry refs, or inline
    models: [demo]                                           # or {id, model, params}
    defaults:
      context: "{{ text }}"                                  # what faithfulness checks against
      assert: [{type: faithfulness, threshold: 0.5}]
    cases:
      - id: budget
        vars: {text: "..."}
        expected: "..."
        assert: [{type: icontains, value: "£2bn", weight: 2}]
      - file: cases/more.jsonl                               # CSV or JSONL rows as cases
    repeat: 5                                                # attempts per case (a case may set its own)
    min_pass_rate: 0.9                                       # the gate on each case's rate (repeats.py)

A case may carry `messages:`, turns sent after the prompt's own (a conversation, an
assistant's tool_calls, `tool` results fed back). Every case runs against every prompt
and model (case × prompt × model), `repeat` times. Loading fails
with a message naming the file and the field, never half-way through a run.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from llmops.errors import InvalidInput
from llmops.evaluation.assertions import AssertionSpec

# libyaml's loader when PyYAML was built with it: the same safe subset, about 10x faster on a
# suite with thousands of inline cases.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Columns of a CSV or flat JSONL row that are not prompt variables.
_CASE_COLUMNS = {"id", "description", "expected", "context", "threshold", "repeat", "min_pass_rate"}


class PromptSpec(BaseModel):
    """A registry reference (`name`, `name@label`, `name:version`) or an inline template."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    ref: str | None = None
    template: str | None = None
    messages: list[dict[str, str]] | None = None
    variables: dict[str, Any] = Field(default_factory=dict)
    # Model parameters of an inline prompt (a registry prompt brings its own model_config).
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"ref": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_source(self) -> PromptSpec:
        sources = [s for s in (self.ref, self.template, self.messages) if s is not None]
        if len(sources) != 1:
            raise ValueError("a prompt is a registry ref, or an inline template, or inline messages (exactly one)")
        if self.ref is None and not self.id:
            raise ValueError("an inline prompt needs an id")
        return self

    @property
    def key(self) -> str:
        return self.id or self.ref or ""


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    model: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"model": data} if isinstance(data, str) else data

    @property
    def key(self) -> str:
        return self.id or self.model


class JudgeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"model": data} if isinstance(data, str) else data


class MlflowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Unset: the --mlflow argument, else MLFLOW_TRACKING_URI.
    tracking_uri: str | None = None
    experiment: str | None = None  # default: the suite's name
    register_prompts: bool = False  # also register each prompt version in MLflow's prompt registry

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if data is True:
            return {}
        return {"tracking_uri": data} if isinstance(data, str) else data


_ROLES = {"system", "developer", "user", "assistant", "tool"}


def check_messages(value: Any) -> list[dict[str, Any]]:
    """A case's chat turns in OpenAI's shape; a tool call's `arguments` may be written as a
    mapping in YAML and is sent as the JSON string the API expects."""
    if not isinstance(value, list):
        raise ValueError("messages is a list of {role, content} turns")
    checked = []
    for number, message in enumerate(value, 1):
        where = f"message {number}"
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise ValueError(f"{where}: needs a role, one of {', '.join(sorted(_ROLES))}")
        message = dict(message)
        role = message["role"]
        if role == "tool":
            if not isinstance(message.get("tool_call_id"), str):
                raise ValueError(f"{where}: a tool turn needs the tool_call_id it answers")
            if not isinstance(message.get("content"), str):
                message["content"] = json.dumps(message.get("content"), ensure_ascii=False)
        calls = message.get("tool_calls")
        if calls is not None:
            if role != "assistant" or not isinstance(calls, list):
                raise ValueError(f"{where}: tool_calls is a list on an assistant turn")
            message["tool_calls"] = [_tool_call(call, f"{where}, tool call {i}") for i, call in enumerate(calls, 1)]
            message.setdefault("content", None)
        elif not isinstance(message.get("content"), str | list):
            raise ValueError(f"{where}: needs content")
        checked.append(message)
    return checked


def _tool_call(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(call, dict) or not isinstance(call.get("id"), str) or not isinstance(function, dict):
        raise ValueError(f"{where}: write it as {{id, type: function, function: {{name, arguments}}}}")
    if not isinstance(function.get("name"), str):
        raise ValueError(f"{where}: the function needs a name")
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"id": call["id"], "type": "function", "function": {"name": function["name"], "arguments": arguments}}


class CaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = None
    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    expected: str | None = None
    context: str | list[str] | None = None
    assertions: list[AssertionSpec] = Field(default_factory=list, alias="assert")
    threshold: float | None = None
    # Turns sent after the prompt's rendered messages, as the gateway appends a request's own
    # messages to a prompt it renders: a conversation so far, an assistant's tool_calls and
    # the `tool` results fed back. New fields default to None so that the dataset hash of a
    # case that does not use them is what it was before they existed.
    messages: list[dict[str, Any]] | None = None
    # Attempts of this case (over the suite's `repeat`) and the rate its gate needs.
    repeat: int | None = Field(default=None, ge=1, le=1000)
    min_pass_rate: float | None = Field(default=None, ge=0, le=1)
    # Where the case came from (e.g. `llmops eval cases from-ledger`): kept, never sent.
    metadata: dict[str, Any] | None = None

    @field_validator("assertions", mode="before")
    @classmethod
    def _bare_types(cls, value: Any) -> Any:
        return [{"type": v} if isinstance(v, str) else v for v in value or []]

    @field_validator("messages", mode="before")
    @classmethod
    def _chat_messages(cls, value: Any) -> Any:
        return None if value is None else check_messages(value)


class CaseFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    vars: dict[str, Any] = Field(default_factory=dict)
    assertions: list[AssertionSpec] = Field(default_factory=list, alias="assert")
    threshold: float | None = None
    # A template over the case's variables, e.g. "{{ text }}", for cases without `context`.
    context: str | None = None

    @field_validator("assertions", mode="before")
    @classmethod
    def _bare_types(cls, value: Any) -> Any:
        return [{"type": v} if isinstance(v, str) else v for v in value or []]


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    prompts: list[PromptSpec] = Field(min_length=1)
    # Empty: each prompt runs on the model its own model_config names.
    models: list[ModelSpec] = Field(default_factory=list)
    # Parameters for every call, under each model's own params.
    params: dict[str, Any] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    judge: JudgeSpec | None = None
    # `local` (the bundled MiniLM) or an embeddings model served by the gateway.
    embedder: str | None = None
    cases: list[CaseSpec | CaseFile | str] = Field(min_length=1)
    # Attempts of every case (a case's own `repeat` wins) and the pass rate each case × prompt
    # × model must be able to reach: see repeats.py for how the interval decides.
    repeat: int = Field(default=1, ge=1, le=1000)
    min_pass_rate: float | None = Field(default=None, ge=0, le=1)
    # Log every run to an MLflow tracking server: its URL, or {tracking_uri, experiment, register_prompts}.
    mlflow: MlflowSpec | None = None
    # Where the suite came from; relative case files are read from its directory.
    path: str | None = None

    @model_validator(mode="after")
    def _unique_ids(self) -> Suite:
        for what, keys in (("prompt", [p.key for p in self.prompts]), ("model", [m.key for m in self.models])):
            duplicates = {k for k in keys if keys.count(k) > 1}
            if duplicates:
                raise ValueError(f"duplicate {what} ids {sorted(duplicates)}: give each an `id`")
        return self

    def expanded_cases(self) -> list[CaseSpec]:
        """Inline cases and the rows of case files, with ids, defaults and assertions merged."""
        base = Path(self.path).parent if self.path else Path.cwd()
        cases: list[CaseSpec] = []
        for item in self.cases:
            if isinstance(item, CaseSpec):
                cases.append(item)
            else:
                cases.extend(read_case_file(base / (item if isinstance(item, str) else item.file)))
        merged, seen = [], set()
        for number, case in enumerate(cases, 1):
            case_id = case.id or f"case-{number}"
            if case_id in seen:
                raise InvalidInput(f"{self.path or self.name}: duplicate case id {case_id!r}")
            seen.add(case_id)
            merged.append(
                case.model_copy(
                    update={
                        "id": case_id,
                        "vars": {**self.defaults.vars, **case.vars},
                        "assertions": [*self.defaults.assertions, *case.assertions],
                        "threshold": case.threshold if case.threshold is not None else self.defaults.threshold,
                    }
                )
            )
        return merged


def _row_to_case(row: dict[str, Any], where: str) -> CaseSpec:
    if "vars" in row or "assert" in row or "messages" in row:
        data = row
    else:
        data = {k.lstrip("_"): v for k, v in row.items() if k.lstrip("_") in _CASE_COLUMNS}
        data["vars"] = {k: v for k, v in row.items() if k.lstrip("_") not in _CASE_COLUMNS}
        data = {k: v for k, v in data.items() if v not in ("", None)}
        for name, kind in (("threshold", float), ("min_pass_rate", float), ("repeat", int)):
            if name in data:
                try:
                    data[name] = kind(data[name])
                except ValueError:
                    raise InvalidInput(f"{where}: {name} must be a number, not {data[name]!r}") from None
    try:
        return CaseSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{where}: {_first_error(exc)}") from None


def read_case_file(path: Path) -> list[CaseSpec]:
    """Cases from CSV (columns are variables, plus id/expected/context/threshold) or JSONL."""
    if not path.exists():
        raise InvalidInput(f"case file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return [_row_to_case(row, f"{path}, row {i}") for i, row in enumerate(csv.DictReader(handle), 2)]
    if suffix in (".jsonl", ".ndjson"):
        cases = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise InvalidInput(f"{path}, line {i}: not JSON ({exc})") from None
            cases.append(_row_to_case(row, f"{path}, line {i}"))
        return cases
    if suffix in (".yaml", ".yml", ".json"):
        rows = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or []
        if not isinstance(rows, list):
            raise InvalidInput(f"{path}: expected a list of cases")
        return [_row_to_case(row, f"{path}, case {i}") for i, row in enumerate(rows, 1)]
    raise InvalidInput(f"case file {path}: use .csv, .jsonl, .yaml or .json")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def parse_suite(data: Any, path: str | None = None) -> Suite:
    where = path or "suite"
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: a suite is a mapping with name, prompts, cases")
    try:
        suite = Suite.model_validate({**data, "path": path})
    except ValidationError as exc:
        raise InvalidInput(f"{where}: {_first_error(exc)}") from None
    suite.expanded_cases()  # read case files now: a bad row fails the load, not the run
    return suite


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"suite {path} not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {exc}") from None
    return parse_suite(data, str(path))
