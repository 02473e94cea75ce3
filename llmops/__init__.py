"""llmops: prompt registry, evaluation harness and LLM gateway in one package."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Registry", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import llmops` stays cheap for the gateway's workers and the CLI.
    if name == "Registry":
        from llmops.registry.service import Registry

        return Registry
    raise AttributeError(name)
