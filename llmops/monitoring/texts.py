"""The text of a request body, whichever API it speaks, as one plain string.

Chat `messages` (string or content parts), completions `prompt`, Responses `input` and
`instructions`, Messages `system`: each message on its own line as "role: text", so a
reader sees who said what and the features read the words.
"""

from __future__ import annotations

from typing import Any


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
                elif part.get("type") in ("message",) or "content" in part:
                    parts.append(_content_text(part.get("content")))
        return "\n".join(p for p in parts if p)
    return ""


def _message_lines(messages: Any) -> list[str]:
    lines = []
    for m in messages if isinstance(messages, list) else []:
        if isinstance(m, dict):
            text = _content_text(m.get("content"))
            if text:
                lines.append(f"{m.get('role') or 'user'}: {text}")
        elif isinstance(m, str):
            lines.append(f"user: {m}")
    return lines


def request_text(body: dict[str, Any]) -> str:
    lines: list[str] = []
    for field in ("system", "instructions"):
        text = _content_text(body.get(field))
        if text:
            lines.append(f"system: {text}")
    lines += _message_lines(body.get("messages"))
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        lines.append(f"user: {prompt}")
    elif isinstance(prompt, list):
        lines += [f"user: {p}" for p in prompt if isinstance(p, str)]
    given = body.get("input")
    if isinstance(given, str):
        lines.append(f"user: {given}")
    else:
        lines += _message_lines(given)
    return "\n".join(lines)


def last_user_text(text: str) -> str:
    """The last "user:" line group of a captured request: the question an answer answers."""
    at = text.rfind("\nuser: ")
    if at >= 0:
        return text[at + 7 :]
    return text.removeprefix("user: ")


def as_text(value: Any) -> str | None:
    """A prompt variable as text: a string, or list items one per line."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)
