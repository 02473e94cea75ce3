"""What both translations need of the chat-completions side."""

from __future__ import annotations

from typing import Any


def collapse(parts: list[dict]) -> str | list[dict]:
    # A lone text part is sent as a plain string: the form every chat server accepts.
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def text_of(content: Any) -> str:
    """A chat message's or delta's text, given as a string or as content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # a few servers answer with content parts
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def first_choice(chat: dict) -> dict:
    """The first choice of a chat completion: the one a single-output API carries."""
    choices = chat.get("choices") or [{}]
    return choices[0] if isinstance(choices[0], dict) else {}
