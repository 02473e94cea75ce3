"""The shape every check has, and the registry that maps config names to checks."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection


class CheckOptions(BaseModel):
    """Options of a built-in check; unknown keys are an error, so typos surface at load."""

    model_config = ConfigDict(extra="forbid")


class Check:
    """One guardrail. Built once per pipeline from its options; `scan` must be thread-safe.

    - `redactable`: its detections carry spans, so `action: redact` is allowed.
    - `default_roles`: message roles it reads when the config names none (None = all).
    - `scope`: "message" scans each message alone, "conversation" the joined text.
    - `final_only`: on a stream, runs once on the whole reply at the end (e.g. a schema).
    - `is_async`: only `ascan` works (judge, async plugins): runs in the async methods.
    - `needs_judge`: built with the pipeline's injected judge callable.
    """

    name: ClassVar[str] = ""
    redactable: ClassVar[bool] = False
    default_roles: ClassVar[frozenset[str] | None] = None
    scope: ClassVar[str] = "message"
    final_only: ClassVar[bool] = False
    is_async: ClassVar[bool] = False
    needs_judge: ClassVar[bool] = False
    # Said to the end user when this check blocks; never includes the matched text.
    block_message: ClassVar[str] = "The request was blocked by a guardrail."
    Options: ClassVar[type[CheckOptions]] = CheckOptions

    def __init__(self, options: CheckOptions):
        self.options = options

    def scan(self, view: TextView) -> Detection | None:
        raise NotImplementedError

    async def ascan(self, text: str) -> Detection | None:
        return self.scan(TextView(text))


BUILTIN_CHECKS: dict[str, type[Check]] = {}
ALIASES: dict[str, str] = {}


def register(cls: type[Check], *aliases: str) -> type[Check]:
    BUILTIN_CHECKS[cls.name] = cls
    for alias in aliases:
        ALIASES[alias] = cls.name
    return cls


def builtin(name: str) -> type[Check] | None:
    _load_builtins()
    return BUILTIN_CHECKS.get(ALIASES.get(name, name))


def builtin_names() -> list[str]:
    _load_builtins()
    return sorted(BUILTIN_CHECKS)


_loaded = False


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    # Imported here, not at module top: each module registers itself on import.
    from llmops.guardrails import (  # noqa: F401
        banned,
        harmful,
        hf_classifier,
        indirect_injection,
        injection,
        invisible,
        json_schema,
        judge,
        moderation,
        pii,
        secrets,
        token_limit,
    )


def parse_options(cls: type[Check], options: dict[str, Any]) -> CheckOptions:
    return cls.Options.model_validate(options or {})
