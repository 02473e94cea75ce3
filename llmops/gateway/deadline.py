"""The request's overall deadline, across retries and fallbacks (`timeouts.total` of the
gateway config). The router sets it for the call it routes; a provider's own deadline
for an attempt (its deployment's `timeouts.total` from the attempt's start) never
reaches past it. A context variable: each request runs in a task of its own."""

from __future__ import annotations

import math
import time
from contextvars import ContextVar

REQUEST_DEADLINE: ContextVar[float] = ContextVar("llmops_request_deadline", default=math.inf)


def attempt_deadline(total: float) -> float:
    """The monotonic time an attempt starting now must end by."""
    return min(time.monotonic() + total, REQUEST_DEADLINE.get())
