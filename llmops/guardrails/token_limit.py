"""An input token limit, counted with tiktoken offline.

Exact counting costs about a microsecond per 10 characters, so the check first uses a
free bound: a byte-level BPE token is at least one UTF-8 byte, so a text of at most
`max_tokens` bytes cannot exceed the limit and is never tokenised. `estimate: true`
skips tiktoken altogether and uses len/4, a documented approximation for English.
"""

from __future__ import annotations

import math
from typing import ClassVar

from llmops.guardrails.base import Check, CheckOptions, register
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection
from llmops.tokens import count_text

# The tokenizer when the check names no model: o200k, today's OpenAI encoding.
DEFAULT_MODEL = "gpt-4o"


class TokenLimitOptions(CheckOptions):
    max_tokens: int
    # Which tokenizer, by model name (llmops.tokens picks the encoding); default o200k.
    model: str | None = None
    # len/4 instead of tiktoken: cheaper, approximate.
    estimate: bool = False


@register
class TokenLimitCheck(Check):
    name: ClassVar[str] = "token_limit"
    scope = "conversation"
    block_message = "The request was blocked: the input is longer than this service allows. Shorten it and try again."
    Options = TokenLimitOptions

    def scan(self, view: TextView) -> Detection | None:
        opts: TokenLimitOptions = self.options  # type: ignore[assignment]
        text = view.text
        if len(text) <= opts.max_tokens and (view.is_ascii or len(text.encode("utf-8")) <= opts.max_tokens):
            return None
        if opts.estimate:
            tokens = math.ceil(len(text) / 4)
        else:
            tokens = count_text(text, opts.model or DEFAULT_MODEL)
        if tokens <= opts.max_tokens:
            return None
        return Detection(score=1.0, labels=(f"tokens>{opts.max_tokens}",), matched=tokens)
