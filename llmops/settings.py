"""Every LLMOPS_* setting in one place, each with a default that works on one machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import overload


@overload
def _env(name: str, default: str) -> str: ...
@overload
def _env(name: str, default: None = None) -> str | None: ...
def _env(name: str, default: str | None = None) -> str | None:
    """The variable's value, or `default` when it is unset or empty."""
    value = os.environ.get(name)
    return value if value else default


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///./llmops.db"
    redis_url: str | None = None
    master_key: str | None = field(default=None, repr=False)
    # How long a long-running process may serve a cached `name@label` before it
    # re-reads the database, so a label moved elsewhere is seen within this bound.
    prompt_cache_ttl: float = 5.0
    gateway_config: str | None = None
    # Where ledger rows wait while the database is unreachable, replayed once it is back.
    spill_dir: str = "./llmops-spill"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=_env("LLMOPS_DATABASE_URL", cls.database_url),
            redis_url=_env("LLMOPS_REDIS_URL"),
            master_key=_env("LLMOPS_MASTER_KEY"),
            prompt_cache_ttl=float(_env("LLMOPS_PROMPT_CACHE_TTL", str(cls.prompt_cache_ttl))),
            gateway_config=_env("LLMOPS_GATEWAY_CONFIG"),
            spill_dir=_env("LLMOPS_SPILL_DIR", cls.spill_dir),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()


def configure_offline_tokenizers() -> None:
    """Point tiktoken at the encodings litellm's wheel ships, without importing litellm.

    tiktoken otherwise downloads its encodings on first use, which fails offline.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return
    import importlib.util

    spec = importlib.util.find_spec("litellm")
    if spec and spec.submodule_search_locations:
        base = list(spec.submodule_search_locations)[0]
        path = os.path.join(base, "litellm_core_utils", "tokenizers")
        if os.path.isdir(path):
            os.environ["TIKTOKEN_CACHE_DIR"] = path
