"""What the app reads from the environment, read afresh on each run of a page.

The library's `get_settings()` is cached for the life of a process; the app reads the
environment each time so that a test (or an operator restarting with new variables)
never sees a stale database or gateway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from llmops.settings import Settings


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


@dataclass(frozen=True)
class UISettings:
    database_url: str
    # A running gateway to call; None means a gateway started inside the app's process.
    gateway_url: str | None = None
    gateway_config: str | None = None
    # The key sent to a running gateway (LLMOPS_API_KEY); the in-process gateway trusts
    # the operator who started the app and uses the master key.
    api_key: str | None = field(default=None, repr=False)
    master_key: str | None = field(default=None, repr=False)
    # Where the Compare page looks for datasets: eval suites and their case files.
    evals_dir: Path = Path("evals")

    @classmethod
    def from_env(cls) -> UISettings:
        base = Settings.from_env()
        return cls(
            database_url=base.database_url,
            gateway_url=_env("LLMOPS_GATEWAY_URL"),
            gateway_config=base.gateway_config,
            api_key=_env("LLMOPS_API_KEY"),
            master_key=base.master_key,
            evals_dir=Path(_env("LLMOPS_EVALS_DIR") or "evals"),
        )

    @property
    def database_label(self) -> str:
        return safe_database_url(self.database_url)

    @property
    def gateway_label(self) -> str:
        if self.gateway_url:
            return f"gateway at {self.gateway_url}"
        return f"in-process gateway ({self.gateway_config or 'embedded default config'})"


def safe_database_url(url: str) -> str:
    """The URL with any password masked, fit to show on a page."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unreadable database URL; check LLMOPS_DATABASE_URL)"
