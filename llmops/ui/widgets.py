"""Streamlit pieces every page shares: settings, the error boundary, confirmations, notices."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
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
