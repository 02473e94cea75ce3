"""The APIs clients speak, each over the upstream API the router calls.

Chat completions, completions and embeddings pass through (`base`); OpenAI's Responses
API passes through where the upstream serves it and is translated over chat elsewhere
(`responses`); Anthropic's Messages API is translated over chat (`messages`). Every
surface goes through the one governance: keys, limits, guardrails, prompt references
and a ledger row.
"""

from llmops.gateway.surfaces.base import (
    CHAT_SURFACE,
    COMPLETIONS_SURFACE,
    EMBEDDINGS_SURFACE,
    StreamWriter,
    Surface,
)
from llmops.gateway.surfaces.messages import MESSAGES_SURFACE
from llmops.gateway.surfaces.responses import RESPONSES_SURFACE

__all__ = [
    "CHAT_SURFACE",
    "COMPLETIONS_SURFACE",
    "EMBEDDINGS_SURFACE",
    "MESSAGES_SURFACE",
    "RESPONSES_SURFACE",
    "StreamWriter",
    "Surface",
]
