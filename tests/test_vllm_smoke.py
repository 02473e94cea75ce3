"""A real vLLM CPU server answers the OpenAI API the way the gateway will rely on.

The model is a tiny random Llama, so the text is gibberish; token counts, usage, streaming,
aborts and /metrics are vLLM's own. Skipped with LLMOPS_SKIP_VLLM=1.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.vllm_server import VllmServer, assert_stopped_early, generation_mark, read_metric

pytestmark = pytest.mark.vllm

MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say hello to the gateway."},
]
GENERATED = "vllm:generation_tokens_total"


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    """Every `data:` event of a server-sent-event stream, up to and excluding [DONE]."""
    events: list[dict[str, Any]] = []
    for line in response.iter_lines():
        if not line.startswith("data: "):
            continue
        payload = line.removeprefix("data: ")
        if payload == "[DONE]":
            return events
        events.append(json.loads(payload))
    raise AssertionError("stream ended without data: [DONE]")


def prompt_token_count(server: VllmServer, body: dict[str, Any]) -> int:
    """vLLM's own count of the prompt the request would send (chat template applied)."""
    root = server.base_url.removesuffix("/v1")
    response = httpx.post(f"{root}/tokenize", json={"model": server.model, **body}, timeout=30)
    response.raise_for_status()
    return int(response.json()["count"])


def test_chat_completion_reports_consistent_usage(vllm_server: VllmServer) -> None:
    before = read_metric(vllm_server.metrics_url, GENERATED)
    response = httpx.post(
        f"{vllm_server.base_url}/chat/completions",
        json={"model": vllm_server.model, "messages": MESSAGES, "max_tokens": 16, "ignore_eos": True},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == vllm_server.model
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["completion_tokens"] == 16
    assert usage["prompt_tokens"] == prompt_token_count(vllm_server, {"messages": MESSAGES})
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert read_metric(vllm_server.metrics_url, GENERATED) - before == 16


def test_streaming_chat_puts_usage_in_a_final_chunk_without_choices(vllm_server: VllmServer) -> None:
    request = {
        "model": vllm_server.model,
        "messages": MESSAGES,
        "max_tokens": 12,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST", f"{vllm_server.base_url}/chat/completions", json=request, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)

    assert all(event["object"] == "chat.completion.chunk" for event in events)
    assert len({event["id"] for event in events}) == 1
    *content_events, usage_event = events
    # With include_usage, usage comes once, in a last chunk whose choices list is empty.
    assert usage_event["choices"] == []
    assert all(event.get("usage") is None for event in content_events)
    assert content_events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert content_events[-1]["choices"][0]["finish_reason"] == "length"
    usage = usage_event["usage"]
    assert usage["completion_tokens"] == 12
    assert usage["prompt_tokens"] == prompt_token_count(vllm_server, {"messages": MESSAGES})
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_text_completion_counts_prompt_tokens_like_tokenize(vllm_server: VllmServer) -> None:
    prompt = "The quick brown fox jumps over the lazy dog."
    response = httpx.post(
        f"{vllm_server.base_url}/completions",
        json={"model": vllm_server.model, "prompt": prompt, "max_tokens": 8, "ignore_eos": True},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "text_completion"
    assert isinstance(body["choices"][0]["text"], str)
    usage = body["usage"]
    assert usage["prompt_tokens"] == prompt_token_count(vllm_server, {"prompt": prompt})
    assert usage["completion_tokens"] == 8
    assert usage["total_tokens"] == usage["prompt_tokens"] + 8


def test_closing_a_stream_stops_generation(vllm_server: VllmServer) -> None:
    requested = 12_000  # ~13 s to ~80 s of decoding here if nobody stopped it
    before = generation_mark(vllm_server)
    request = {
        "model": vllm_server.model,
        "messages": MESSAGES,
        "max_tokens": requested,
        "ignore_eos": True,
        "stream": True,
    }
    chunks = 0
    # A client of its own, so closing the stream really closes the TCP connection.
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", f"{vllm_server.base_url}/chat/completions", json=request) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: "):
                    chunks += 1
                if chunks >= 5:
                    break
    assert chunks == 5

    assert_stopped_early(vllm_server, before, requested)
