"""Checks for the eval suites that plain assertions cannot express (used as `python` assertions)."""

from __future__ import annotations

import re
from typing import Any

_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def at_most_sentences(output: str, context: dict[str, Any]) -> dict[str, Any]:
    """A summary has at most `max_sentences` sentences (a case variable; default 3)."""
    limit = int(context["vars"].get("max_sentences", 3))
    count = len(_SENTENCE_END.findall(output.strip() + " "))
    return {"pass": count <= limit, "score": 1.0 if count <= limit else limit / count,
            "reason": f"{count} sentences (at most {limit})"}
