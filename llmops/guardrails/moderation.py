"""A check that asks a safety model of the gateway: Llama Guard (3 or 4) or any model that
answers the same way, served by vLLM or another OpenAI-compatible server.

```yaml
models:
  - name: guard
    deployments: [{provider: vllm, model: meta-llama/Llama-Guard-3-8B, api_base: http://guard:8000/v1}]
guardrails:
  input:
    - {check: moderation, action: block, options: {model: guard}}
    - {check: moderation, name: no_self_harm, action: flag, options: {model: guard, categories: [S11]}}
```

The text is sent as the user's turn of a conversation; the model's chat template (Llama
Guard's own, on the server) turns it into its safety prompt, and it answers `safe` or
`unsafe` and a line of hazard codes (`S1,S10`). The codes become the verdict's labels,
by name (`violent_crimes`, `hate`); `categories` limits which count. An answer that is
neither is an error, handled by the check's `on_error`.

Like the judge, the model call is injected (the gateway passes one that goes through its
router, with its own ledger row), so this module knows nothing about HTTP; it is never on
by default, runs in the async path with the check's timeout, and reads at most the last
`max_chars` characters.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.judge import JudgeFn
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection

# The MLCommons hazard taxonomy, as Llama Guard 3 and 4 number it.
HAZARDS = {
    "S1": "violent_crimes",
    "S2": "non_violent_crimes",
    "S3": "sex_related_crimes",
    "S4": "child_sexual_exploitation",
    "S5": "defamation",
    "S6": "specialized_advice",
    "S7": "privacy",
    "S8": "intellectual_property",
    "S9": "indiscriminate_weapons",
    "S10": "hate",
    "S11": "suicide_and_self_harm",
    "S12": "sexual_content",
    "S13": "elections",
    "S14": "code_interpreter_abuse",
}
_CODE = re.compile(r"\b[SO]\d{1,2}\b")


class ModerationError(RuntimeError):
    pass


class ModerationOptions(CheckOptions):
    # Which model moderates (in the gateway: one of its model names; required there).
    model: str | None = None
    # Hazard codes ("S9") or names ("indiscriminate_weapons") that count; default: all.
    categories: list[str] | None = None
    max_chars: int = Field(default=8000, ge=1)


def parse_guard_answer(answer: str) -> list[str] | None:
    """None for "safe"; the hazard codes for "unsafe" (["unsafe"] when it names none)."""
    lines = [line.strip().strip("*`").strip() for line in answer.strip().splitlines() if line.strip()]
    first = lines[0].lower() if lines else ""
    if first == "safe":
        return None
    if first.startswith("unsafe"):
        codes = _CODE.findall(" ".join([first[len("unsafe"):], *lines[1:]]).upper())
        return list(dict.fromkeys(codes)) or ["unsafe"]
    raise ModerationError("the moderation model's answer was neither 'safe' nor 'unsafe'")


@register
class ModerationCheck(Check):
    name: ClassVar[str] = "moderation"
    scope = "conversation"
    default_roles = frozenset({"user"})
    final_only = True
    is_async = True
    needs_judge = True
    block_message = "The request was blocked by the content moderator."
    Options = ModerationOptions

    def __init__(self, options: ModerationOptions, judge: JudgeFn):
        super().__init__(options)
        self._ask = judge
        wanted = options.categories
        if wanted is not None:
            names = {name: code for code, name in HAZARDS.items()}
            unknown = [c for c in wanted if c.upper() not in HAZARDS and c not in names]
            if unknown:
                raise ValueError(f"unknown categories {unknown}; known: {', '.join(f'{k} {v}' for k, v in HAZARDS.items())}")
            self._counts: frozenset[str] | None = frozenset(c.upper() if c.upper() in HAZARDS else names[c] for c in wanted)
        else:
            self._counts = None

    def scan(self, view: TextView) -> Detection | None:
        raise ModerationError("the moderation check runs only in the async methods")

    async def ascan(self, text: str) -> Detection | None:
        opts: ModerationOptions = self.options  # type: ignore[assignment]
        messages = [{"role": "user", "content": text[-opts.max_chars:]}]
        answer = await (self._ask(messages, model=opts.model) if opts.model else self._ask(messages))
        codes = parse_guard_answer(answer if isinstance(answer, str) else str(answer))
        if codes is None:
            return None
        if self._counts is not None:
            codes = [c for c in codes if c in self._counts]
            if not codes:
                return None
        return Detection(score=1.0, labels=tuple(HAZARDS.get(c, c.lower()) for c in codes))
