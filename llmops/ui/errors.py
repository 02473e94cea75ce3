"""Errors as sentences a person can act on: what went wrong and what to do, no traceback."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from llmops.errors import LLMOpsError


class GatewayUnavailable(LLMOpsError):
    """The gateway could not be started in process or reached at its URL."""

    status = 503
    type = "api_error"
    code = "gateway_unavailable"


def describe_error(exc: BaseException, database_label: str) -> str:
    """One message for the page; secrets never appear (the URL is shown masked)."""
    if isinstance(exc, LLMOpsError):
        return exc.message
    if isinstance(exc, OperationalError | ProgrammingError):
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return (
            f"The database {database_label} could not be read ({reason}). "
            "Check LLMOPS_DATABASE_URL and that the database server is running, then reload the page."
        )
    if isinstance(exc, SQLAlchemyError):
        return f"A database error occurred on {database_label}: {type(exc).__name__}. Reload the page; if it persists, see the app's log."
    if isinstance(exc, TimeoutError):
        return "The operation took too long and was abandoned. Try fewer rows or models, or check the gateway's health."
    return (
        f"Something unexpected went wrong ({type(exc).__name__}: {exc}). "
        "The details are in the app's log; reload the page to try again."
    )
