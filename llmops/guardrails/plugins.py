"""A user's own check, named by import path in config: `check: mypkg.mod:my_check`.

The callable takes `(text)` or `(text, options)`, may be sync or async, and returns any
of: None / False (nothing found), True (flagged), a float score (flagged at or above
`options["threshold"]`, default 0.5), a dict {"flagged", "score", "labels", "redacted"},
or a Detection. "redacted" is the whole text to use instead when the action is redact.
The pipeline enforces the check's timeout and its on_error (fail open or closed).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from llmops.guardrails.base import Check, CheckOptions
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection


def is_import_path(name: str) -> bool:
    return ":" in name


def load_callable(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"a plugin check is 'module:function', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import plugin module {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ValueError(f"plugin {path!r}: {module_name} has no attribute {attr!r}")
    if not callable(target):
        raise ValueError(f"plugin {path!r} is not callable")
    return target


def _takes_options(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def to_detection(result: Any, name: str, options: dict[str, Any]) -> Detection | None:
    if result is None or result is False:
        return None
    if isinstance(result, Detection):
        return result
    if result is True:
        return Detection(score=1.0, labels=(name,))
    if isinstance(result, int | float):
        threshold = float(options.get("threshold", 0.5))
        return Detection(score=round(float(result), 3), labels=(name,)) if result >= threshold else None
    if isinstance(result, dict):
        score = float(result.get("score", 1.0))
        flagged = result.get("flagged")
        if flagged is None:
            flagged = score >= float(options.get("threshold", 0.5)) or bool(result.get("redacted"))
        if not flagged:
            return None
        labels = tuple(str(x) for x in result.get("labels") or (name,))
        redacted = result.get("redacted")
        return Detection(score=round(score, 3), labels=labels, replacement=redacted if isinstance(redacted, str) else None)
    raise TypeError(f"plugin {name} returned {type(result).__name__}; expected bool, float, dict or None")


class PluginCheck(Check):
    """Wraps a user callable; the pipeline runs it with a timeout (threads for sync ones)."""

    redactable = True
    block_message = "The request was blocked by a custom guardrail."

    def __init__(self, path: str, options: dict[str, Any]):
        super().__init__(CheckOptions())
        self.path = path
        self.raw_options = dict(options)
        self.fn = load_callable(path)
        # A coroutine function, or an object whose __call__ is one.
        self.is_async = inspect.iscoroutinefunction(self.fn) or (
            not inspect.isroutine(self.fn) and inspect.iscoroutinefunction(type(self.fn).__call__)
        )
        self._with_options = _takes_options(self.fn)
        self.scope = "conversation" if options.get("scope") == "conversation" else "message"

    def call(self, text: str) -> Any:
        return self.fn(text, self.raw_options) if self._with_options else self.fn(text)

    def scan(self, view: TextView) -> Detection | None:
        return to_detection(self.call(view.text), self.path, self.raw_options)

    async def ascan(self, text: str) -> Detection | None:
        result = self.call(text)
        if inspect.isawaitable(result):
            result = await result
        return to_detection(result, self.path, self.raw_options)
