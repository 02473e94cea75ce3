"""Eval cases from production: captured calls of a prompt, as cases with the served reply.

`llmops eval cases from-ledger --prompt NAME[@label] --since 7d --sample 200` reads the
calls the gateway's payload capture kept (`monitor_payloads`, see
llmops/monitoring/capture.py: opt-in, sampled, redacted, deleted after `retention_days`)
and writes one case per call:

- `vars`: the call's prompt variables, recovered from its text. Capture keeps the request
  as "role: text" lines after rendering, not the variables, so each call is matched
  against the template of the version that served it: the template is rendered with
  placeholder values, its literal text must match the call's, and what stands where each
  placeholder stood is that variable. The recovered variables are checked by rendering the
  template with them again: it must give back exactly the captured text, else the call
  is left out (and counted), never half-recovered;
- `messages`: the turns the client sent after the rendered prompt (a conversation so far),
  as the gateway appends them;
- `context`: the call's captured context variable (what faithfulness checks against);
- `expected`: the reply the call was served, the reference for similarity assertions;
- `metadata`: the request id, time, model, version, variant and any feedback on it.

Texts are as capture stored them: redacted (`[EMAIL]`, `[OPENAI_KEY]`), so cases hold no
secret or personal data the capture did not keep. A call whose text capture cut short
(`truncated`) is left out: its input is not whole. Tool calls in replies are not
captured, so a reply that only called tools has an empty reference.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.engine import Engine

from llmops.errors import LLMOpsError

_ROLE_LINE = re.compile(r"^(system|developer|user|assistant|tool): ", re.MULTILINE)
FEEDBACK_CHOICES = ("down", "up", "any")


def parse_request_text(text: str) -> list[dict[str, str]]:
    """Captured request text ("role: text" per message, a message's own newlines kept) as
    chat messages. A line inside a message that itself begins with "user: " cannot be told
    from a new message; such a call's variables fail the round-trip check and it is left out."""
    starts = list(_ROLE_LINE.finditer(text))
    messages = []
    for at, match in enumerate(starts):
        if at == 0 and match.start() != 0:
            return []  # text before the first role: not a request capture made
        end = starts[at + 1].start() - 1 if at + 1 < len(starts) else len(text)
        messages.append({"role": match.group(1), "content": text[match.end() : end]})
    return messages


_MARK = "\u27e6llmops-var-{}\u27e7"  # placeholders that no captured text contains


def recover_variables(view: Any, messages: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(variables, the turns after the prompt) of a call rendered from `view`, or None when
    its text does not fit the template exactly."""
    from llmops.registry import templates
    from llmops.registry.service import render_view

    sources = [view.template or ""] if view.kind == "text" else [m["content"] for m in view.messages or []]
    names = sorted(templates.used_variables(sources))
    marks = {name: _MARK.format(i) for i, name in enumerate(names)}
    try:
        rendered = render_view(view, marks).as_messages()
    except LLMOpsError:
        return None  # e.g. a loop over a list variable: placeholders cannot stand in for it
    if len(messages) < len(rendered):
        return None
    found: dict[str, Any] = {}
    for template_message, message in zip(rendered, messages, strict=False):
        if template_message.get("role") != message.get("role"):
            return None
        content = template_message.get("content")
        if not isinstance(content, str):
            return None
        pattern, groups = _pattern(content, marks)
        match = re.fullmatch(pattern, str(message.get("content", "")), re.DOTALL)
        if match is None:
            return None
        for group, name in groups.items():
            value = match.group(group)
            if name in found and found[name] != value:
                return None
            found[name] = value
    turns = [dict(m) for m in messages[len(rendered) :]]
    try:
        again = render_view(view, found).as_messages()
    except LLMOpsError:
        return None
    if [(m.get("role"), m.get("content")) for m in again] != [(m.get("role"), m.get("content")) for m in messages[: len(rendered)]]:
        return None
    return found, turns


def _pattern(content: str, marks: dict[str, str]) -> tuple[str, dict[str, str]]:
    by_mark = {mark: name for name, mark in marks.items()}
    pieces = re.split("(" + "|".join(re.escape(m) for m in by_mark) + ")", content) if by_mark else [content]
    pattern: list[str] = []
    groups: dict[str, str] = {}
    seen: dict[str, str] = {}
    for piece in pieces:
        name = by_mark.get(piece)
        if name is None:
            pattern.append(re.escape(piece))
        elif name in seen:
            pattern.append(f"(?P={seen[name]})")
        else:
            group = seen[name] = f"v{len(groups)}"
            groups[group] = name
            pattern.append(f"(?P<{group}>.*?)")
    return "".join(pattern), groups


@dataclass
class Captured:
    id: str
    created_at: datetime
    model: str | None
    prompt_name: str
    prompt_version: int | None
    variant: str | None
    request_text: str
    response_text: str
    context: str | None
    truncated: bool
    feedback: list[dict[str, Any]] = field(default_factory=list)


def select_captures(
    engine: Engine,
    payloads: Table,
    feedback: Table,
    *,
    prompt: str,
    version: int | None,
    since: datetime,
    with_feedback: str | None = None,
) -> list[Captured]:
    """Captured calls of `prompt` (and `version`) since `since`, oldest first, with their feedback.

    `payloads` and `feedback` are the monitoring and experiments tables, given by the caller
    because both packages sit above this one (they import evaluation)."""
    if with_feedback is not None and with_feedback not in FEEDBACK_CHOICES:
        raise ValueError(f"with_feedback is one of {FEEDBACK_CHOICES}")
    p = payloads.c
    query = select(payloads).where(p.prompt_name == prompt, p.created_at >= since).order_by(p.created_at, p.id)
    if version is not None:
        query = query.where(p.prompt_version == version)
    with engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(query)]
        notes: dict[str, list[dict[str, Any]]] = {}
        ids = [row["id"] for row in rows]
        f = feedback.c
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for note in conn.execute(select(f.request_id, f.score, f.thumbs, f.comment).where(f.request_id.in_(chunk))):
                notes.setdefault(note.request_id, []).append(
                    {"score": note.score, "thumbs": note.thumbs, "comment": note.comment}
                )
    found = [
        Captured(
            id=row["id"], created_at=row["created_at"], model=row["model"], prompt_name=row["prompt_name"],
            prompt_version=row["prompt_version"], variant=row["variant"], request_text=row["request_text"] or "",
            response_text=row["response_text"] or "", context=row["context"], truncated=bool(row["truncated"]),
            feedback=notes.get(row["id"], []),
        )
        for row in rows
    ]  # fmt: skip
    if with_feedback == "any":
        found = [c for c in found if c.feedback]
    elif with_feedback == "down":
        found = [c for c in found if any(n["score"] is not None and n["score"] < 0.5 for n in c.feedback)]
    elif with_feedback == "up":
        found = [c for c in found if any(n["score"] is not None and n["score"] >= 0.5 for n in c.feedback)]
    return found


@dataclass
class Export:
    cases: list[dict[str, Any]]
    matched: int  # captured calls in the window (after the feedback filter)
    truncated: int  # left out: capture cut their text
    unmatched: int  # left out: their text does not fit their version's template
    no_version: int  # left out: the registry no longer has the version that served them

    def summary(self) -> str:
        left = []
        if self.truncated:
            left.append(f"{self.truncated} truncated by capture's max_chars")
        if self.unmatched:
            left.append(f"{self.unmatched} whose text does not fit their version's template")
        if self.no_version:
            left.append(f"{self.no_version} of versions the registry does not have")
        tail = f"; left out {', '.join(left)}" if left else ""
        return f"{len(self.cases)} cases from {self.matched} captured calls{tail}"


def to_cases(calls: Iterable[Captured], views: dict[int, Any], *, sample: int | None, seed: int | None) -> Export:
    """Cases of a random sample of the calls (`seed` makes the sample repeatable); `views`:
    the prompt's versions by number. Calls that cannot become whole cases are counted."""
    calls = list(calls)
    matched = len(calls)
    truncated = unmatched = no_version = 0
    usable: list[tuple[Captured, dict[str, Any], list[dict[str, Any]]]] = []
    for call in calls:
        if call.truncated:
            truncated += 1
            continue
        view = views.get(call.prompt_version or 0)
        if view is None:
            no_version += 1
            continue
        recovered = recover_variables(view, parse_request_text(call.request_text))
        if recovered is None:
            unmatched += 1
            continue
        usable.append((call, *recovered))
    if sample is not None and len(usable) > sample:
        usable = sorted(random.Random(seed).sample(usable, sample), key=lambda u: (u[0].created_at, u[0].id))
    cases = []
    for call, variables, turns in usable:
        case: dict[str, Any] = {"id": call.id, "vars": variables}
        if turns:
            case["messages"] = turns
        if call.context is not None:
            case["context"] = call.context
        case["expected"] = call.response_text
        case["metadata"] = {
            "source": "ledger",
            "request_id": call.id,
            "served_at": call.created_at.isoformat(),
            "model": call.model,
            "prompt": f"{call.prompt_name}:{call.prompt_version}",
            **({"variant": call.variant} if call.variant else {}),
            **({"feedback": call.feedback} if call.feedback else {}),
        }
        cases.append(case)
    return Export(cases, matched, truncated, unmatched, no_version)


def export_cases(
    prompt: str,
    since: datetime,
    payloads: Table,
    feedback: Table,
    *,
    sample: int | None = 200,
    seed: int | None = None,
    with_feedback: str | None = None,
    database_url: str | None = None,
) -> Export:
    """`prompt` is NAME (calls of every version), NAME@label (of the version the label names
    now) or NAME:version; the tables as for select_captures."""
    from llmops.db import get_engine
    from llmops.registry.service import Registry

    registry = Registry(database_url=database_url)
    name, version = prompt, None
    if "@" in prompt or ":" in prompt:
        view = registry.get(prompt)  # NotFound names an unknown prompt, label or version
        name, version = view.name, view.version
    calls = select_captures(
        get_engine(database_url), payloads, feedback, prompt=name, version=version, since=since, with_feedback=with_feedback
    )
    views = {}
    for number in sorted({c.prompt_version for c in calls if c.prompt_version is not None}):
        try:
            views[number] = registry.get(f"{name}:{number}")
        except LLMOpsError:
            continue  # counted as no_version
    return to_cases(calls, views, sample=sample, seed=seed)


def write_jsonl(cases: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
