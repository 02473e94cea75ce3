"""Whether `llmops serve --workers N` may run without Redis.

Without `LLMOPS_REDIS_URL` each worker process keeps its own rate-limit windows and
budget counters, so N workers would let through N times every limit (a $1 budget spent
twice over on two workers). The gateway refuses to start that way when any limit
exists: a configured budget, or a virtual key or user/team budget in the database with
a limit. Keys given limits after start-up are not seen here; the README says so.
"""

from __future__ import annotations

from llmops.errors import LLMOpsError
from llmops.governance.config import LimitsConfig


class LimitsNotShared(LLMOpsError):
    code = "limits_not_shared"


def limits_in_force(limits: LimitsConfig, database_url: str | None) -> list[str]:
    """What would be multiplied by the number of workers: a few names, for the message."""
    found = [f"the configured budget of {b.user or b.team}" for b in limits.budgets]
    from llmops.governance.keys import KeyStore

    store = KeyStore(database_url)
    for info in store.list(include_revoked=False):
        if any(value is not None for value in (info.rpm, info.tpm, info.parallel, info.budget)):
            found.append(info.label)
    found += [f"the {b.scope} budget of {b.subject}" for b in store.budgets()]
    return found


def check_workers(workers: int, redis_url: str | None, limits: LimitsConfig, database_url: str | None) -> None:
    """Raise LimitsNotShared when `workers` processes would each enforce limits alone."""
    if workers <= 1 or redis_url:
        return
    found = limits_in_force(limits, database_url)
    if not found:
        return
    shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    raise LimitsNotShared(
        f"--workers {workers} without LLMOPS_REDIS_URL: each worker would enforce rate limits and budgets "
        f"on its own, letting through {workers} times each limit ({shown}). Set LLMOPS_REDIS_URL to share "
        "them, or run one worker."
    )
