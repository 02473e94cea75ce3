"""Differences a reader sees at a glance: words within an output, lines side by side.

Everything returned as HTML has its text escaped; only our own tags are markup.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass

_TOKENS = re.compile(r"\S+|\s+")

INSERTED_STYLE = "background:#fde68a;border-radius:2px"
DELETED_STYLE = "color:#b91c1c;text-decoration:line-through"


def _escape(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def word_diff_html(reference: str, text: str) -> str:
    """`text` with the words it adds to `reference` highlighted and those it drops struck out."""
    old, new = _TOKENS.findall(reference), _TOKENS.findall(text)
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(_escape("".join(new[j1:j2])))
            continue
        dropped, added = "".join(old[i1:i2]), "".join(new[j1:j2])
        if dropped.strip():
            out.append(f'<span style="{DELETED_STYLE}">{_escape(dropped)}</span>')
        if added.strip():
            out.append(f'<span style="{INSERTED_STYLE}">{_escape(added)}</span>')
        elif added:
            out.append(_escape(added))
    return "".join(out)


def plain_html(text: str) -> str:
    return _escape(text)


@dataclass(frozen=True)
class DiffLine:
    left: str | None  # None: nothing on this side (a line added or removed)
    right: str | None
    kind: str  # "equal" | "changed" | "removed" | "added"


def side_by_side(old: str, new: str) -> list[DiffLine]:
    """Old and new aligned line by line, each pair marked with how it changed."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[DiffLine] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            rows.extend(DiffLine(x, y, "equal") for x, y in zip(a[i1:i2], b[j1:j2], strict=True))
        elif tag == "delete":
            rows.extend(DiffLine(x, None, "removed") for x in a[i1:i2])
        elif tag == "insert":
            rows.extend(DiffLine(None, y, "added") for y in b[j1:j2])
        else:
            left, right = a[i1:i2], b[j1:j2]
            for k in range(max(len(left), len(right))):
                x = left[k] if k < len(left) else None
                y = right[k] if k < len(right) else None
                kind = "changed" if x is not None and y is not None else ("removed" if y is None else "added")
                rows.append(DiffLine(x, y, kind))
    return rows


_ROW_COLOURS = {
    "equal": ("", ""),
    "changed": ("#fee2e2", "#dcfce7"),
    "removed": ("#fee2e2", "#f3f4f6"),
    "added": ("#f3f4f6", "#dcfce7"),
}


def side_by_side_html(rows: list[DiffLine], left_title: str, right_title: str) -> str:
    """A two-column table: removed and changed lines red on the left, added and changed green on the right."""
    cell = "padding:2px 8px;vertical-align:top;white-space:pre-wrap;font-family:monospace;font-size:0.85em;width:50%"
    head = "padding:4px 8px;text-align:left;border-bottom:1px solid #d1d5db"
    parts = [
        '<table style="border-collapse:collapse;width:100%;table-layout:fixed">',
        f'<tr><th style="{head}">{html.escape(left_title)}</th><th style="{head}">{html.escape(right_title)}</th></tr>',
    ]
    for row in rows:
        left_bg, right_bg = _ROW_COLOURS[row.kind]
        left = html.escape(row.left) if row.left is not None else ""
        right = html.escape(row.right) if row.right is not None else ""
        parts.append(
            f'<tr data-kind="{row.kind}">'
            f'<td style="{cell};background:{left_bg}">{left}</td>'
            f'<td style="{cell};background:{right_bg}">{right}</td></tr>'
        )
    parts.append("</table>")
    return "".join(parts)
