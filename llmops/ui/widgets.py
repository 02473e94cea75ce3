"""Streamlit pieces every page shares: settings, the error boundary, confirmations, notices."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import streamlit as st

from llmops.ui.errors import describe_error
from llmops.ui.gateway_client import GatewayClient, shared_gateway
from llmops.ui.settings import UISettings

log = logging.getLogger("llmops.ui")

_NOTICES = "llmops_notices"
_PENDING = "llmops_pending_action"


def ui_settings() -> UISettings:
    return UISettings.from_env()


@contextmanager
def page_errors(settings: UISettings) -> Iterator[None]:
    """Show any error as a message to act on; the traceback goes to the app's log only.

    Streamlit's own control flow (st.stop, st.rerun) derives from BaseException and passes through.
    """
    try:
        yield
    except Exception as exc:
        log.exception("page failed")
        st.error(describe_error(exc, settings.database_label))


def gateway(settings: UISettings) -> GatewayClient:
    with st.spinner(f"Connecting to the {settings.gateway_label}…"):
        return shared_gateway(settings)


def notify(message: str, kind: str = "success") -> None:
    """A message shown once, at the top of the next run of the page (survives st.rerun)."""
    st.session_state.setdefault(_NOTICES, []).append((kind, message))


def show_notices() -> None:
    for kind, message in st.session_state.pop(_NOTICES, []):
        getattr(st, kind)(message)


@dataclass(frozen=True)
class PendingAction:
    key: str
    question: str
    payload: dict[str, Any]


def request_confirmation(key: str, question: str, **payload: Any) -> None:
    st.session_state[_PENDING] = PendingAction(key, question, payload)


def confirmation(key: str, perform: Callable[..., str]) -> None:
    """If an action under `key` awaits confirmation, ask; on Confirm run `perform(**payload)`.

    `perform` returns the sentence to show once done; the page then reruns so every
    table reflects the change.
    """
    pending: PendingAction | None = st.session_state.get(_PENDING)
    if pending is None or pending.key != key:
        return
    st.warning(pending.question)
    yes, no, _ = st.columns([1, 1, 6])
    if yes.button("Confirm", key=f"{key}:confirm", type="primary"):
        st.session_state.pop(_PENDING, None)
        notify(perform(**pending.payload))
        st.rerun()
    if no.button("Cancel", key=f"{key}:cancel"):
        st.session_state.pop(_PENDING, None)
        st.rerun()


def readable(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows fit for a table: no Python None (a dash), yes/no for booleans."""
    return [
        {
            k: "–" if v is None else ("yes" if v else "no") if isinstance(v, bool) else v
            for k, v in row.items()
        }
        for row in rows
    ]


# --- page state in the URL -------------------------------------------------------------------
# A page reads its choices from the query string when its widgets are first drawn, and
# writes them back on every run, so a reload or a shared link opens the same view.


def from_url(
    param: str, options: Sequence[Any], fallback: Any = None, *, text: Callable[[Any], str] = str
) -> Any:
    """The option named by ?param= (compared as text), else `fallback`."""
    wanted = st.query_params.get(param)
    for option in options:
        if wanted is not None and text(option) == wanted:
            return option
    return fallback


def list_from_url(param: str, options: Sequence[Any], fallback: Sequence[Any]) -> list[Any]:
    """The options ?param=a&param=b names, in that order; `fallback` when it names none."""
    by_text = {str(o): o for o in options}
    chosen = [by_text[v] for v in st.query_params.get_all(param) if v in by_text]
    return list(dict.fromkeys(chosen)) or list(fallback)


def to_url(**params: Any) -> None:
    """Write the page's state to the query string (None removes a parameter)."""
    for param, value in params.items():
        if value is None or value == []:
            if param in st.query_params:
                del st.query_params[param]
            continue
        new = [str(v) for v in value] if isinstance(value, list | tuple) else str(value)
        current = st.query_params.get_all(param)
        if current != (new if isinstance(new, list) else [new]):
            st.query_params[param] = new


def index_of(options: Sequence[Any], value: Any) -> int:
    return list(options).index(value) if value in options else 0


# --- rating an output of the results matrix -------------------------------------------------------

RATINGS = ("👍 Good", "👎 Bad", "Score 0–1")


def rate_outputs(matrix: Any, database_url: str, key: str) -> None:
    """Pick a cell of the matrix: its detail, and thumbs, a score and a comment saved as feedback."""
    from llmops.ui import matrix_view as mv

    st.subheader("Rate an output")
    if not matrix.rows:
        return
    c1, c2 = st.columns(2)
    case_id = c1.selectbox("Case", [r.case_id for r in matrix.rows], key=f"{key}:case")
    labels = {c.key: c.label for c in matrix.columns}
    column_key = c2.selectbox(
        "Version · model",
        list(labels),
        format_func=lambda k: labels[k],
        key=f"{key}:column",
    )
    cell = matrix.cell(case_id, column_key)
    if cell is None:
        st.caption("This version and model did not run on this case.")
        return
    result = cell.result
    st.markdown(
        f"**{mv.verdict_of(result)}** · score {result.score:.2f}"
        + ("" if result.latency_ms is None else f" · {result.latency_ms:.0f} ms")
        + (" · unknown cost" if result.cost is None else f" · ${result.cost:.6f}")
        + (f" · {mv.feedback_text(cell.feedback)}" if cell.feedback else "")
    )
    if result.error:
        st.error(result.error)
    d1, d2 = st.columns(2)
    with d1:
        st.caption("Output")
        st.text(result.output or "")
        st.caption("Rendered prompt")
        st.code(cell.rendered_prompt, language=None, wrap_lines=True)
    with d2:
        row = next(r for r in matrix.rows if r.case_id == case_id)
        st.caption("Expected")
        st.text(row.expected if row.expected is not None else "none given")
        if result.assertions:
            st.caption("Checks")
            st.dataframe(
                [
                    {
                        "Check": a.name,
                        "Passed": "yes" if a.passed else "no",
                        "Score": f"{a.score:.2f}",
                        "Why": a.reason,
                    }
                    for a in result.assertions
                ],
                hide_index=True,
                width="stretch",
            )
        else:
            st.caption("No checks ran on this output.")
    if cell.request_id is None:
        st.caption(
            "Feedback needs the output's gateway request; this one has none (a cached response, or a CLI run)."
        )
        return
    with st.form(f"{key}:form", clear_on_submit=True):
        f1, f2 = st.columns([1, 1])
        rating = f1.radio("Rating", RATINGS, horizontal=True, key=f"{key}:rating")
        score = f2.slider("Score (when rating by score)", 0.0, 1.0, 0.5, 0.05, key=f"{key}:score")
        comment = st.text_input("Comment", key=f"{key}:comment")
        sent = st.form_submit_button("Save feedback", key=f"{key}:save")
    if sent:
        thumbs = {RATINGS[0]: "up", RATINGS[1]: "down"}.get(rating)
        mv.rate_cell(
            cell,
            database_url=database_url,
            thumbs=thumbs,
            score=score if thumbs is None else None,
            comment=comment,
        )
        notify(f"Feedback saved on request {cell.request_id} ({case_id}, {cell.column.label}).")
        st.rerun()
