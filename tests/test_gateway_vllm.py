"""The gateway in front of a real vLLM server (CPU build, tiny random model): chat,
streaming and completions routed through it, usage recorded as vLLM counted it, and a
client that hangs up mid-stream leaves vLLM generating nothing."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.gateway_proc import ledger_row as read_ledger_row
from tests.support.gateway_proc import run_gateway
from tests.support.vllm_server import VllmServer, assert_stopped_early, generation_mark, read_metric

pytestmark = pytest.mark.vllm

PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATED = "vllm:generation_tokens_total"
MESSAGES = [{"role": "user", "content": "Say hello to the gateway."}]


@pytest.fixture(scope="module")
def gateway(vllm_server: VllmServer, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gw-vllm")
    deployment = {"provider": "vllm", "model": vllm_server.model, "api_base": vllm_server.base_url,
                  "pricing": {"cost": 0}}
    config = {"models": [
        {"name": "tiny", "deployments": [deployment]},  # Responses API native: vLLM serves /v1/responses
        {"name": "tiny-over-chat", "deployments": [{**deployment, "options": {"native_responses": False}}]},
    ]}
    with run_gateway(config, tmp) as gw:
        gw.db = tmp / "llmops.db"
        yield gw


def ledger_row(gw, request_id: str) -> dict:
    return read_ledger_row(gw.db, request_id)


def counters(server: VllmServer) -> tuple[float, float]:
    return read_metric(server.metrics_url, PROMPT_TOKENS), read_metric(server.metrics_url, GENERATED)


def test_chat_usage_equals_vllms(gateway, vllm_server):
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=120)
    p0, g0 = counters(vllm_server)
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=MESSAGES, max_tokens=12, extra_body={"ignore_eos": True, "top_k": 5})
    reply = raw.parse()
    p1, g1 = counters(vllm_server)
    assert reply.usage.completion_tokens == 12 == g1 - g0
    assert reply.usage.prompt_tokens == p1 - p0
    row = ledger_row(gateway, raw.headers["x-llmops-request-id"])
    assert (row["input_tokens"], row["output_tokens"]) == (p1 - p0, g1 - g0)
    assert row["usage_source"] == "reported" and row["provider"] == "vllm"


def test_streaming_usage_equals_vllms(gateway, vllm_server):
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=120)
    p0, g0 = counters(vllm_server)
    with client.chat.completions.with_streaming_response.create(
            model="tiny", messages=MESSAGES, max_tokens=20, stream=True, extra_body={"ignore_eos": True}) as resp:
        request_id = resp.headers["x-llmops-request-id"]
        chunks = list(resp.parse())
    p1, g1 = counters(vllm_server)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    row = ledger_row(gateway, request_id)
    assert (row["input_tokens"], row["output_tokens"]) == (p1 - p0, g1 - g0) and g1 - g0 == 20
    assert row["streamed"] and row["usage_source"] == "reported"


def test_completions(gateway, vllm_server):
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=120)
    g0 = read_metric(vllm_server.metrics_url, GENERATED)
    r = client.completions.create(model="tiny", prompt="Once upon a time", max_tokens=8,
                                  extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 8 == read_metric(vllm_server.metrics_url, GENERATED) - g0


def test_client_disconnect_stops_vllm_generation(gateway, vllm_server):
    requested = 12_000  # seconds of decoding here if nobody stops it
    before = generation_mark(vllm_server)
    body = {"model": "tiny", "stream": True, "max_tokens": requested, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Write forever."}]}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        request_id = r.headers["x-llmops-request-id"]
        for n, _ in enumerate(r.iter_lines()):
            if n >= 10:
                break  # hang up after a few events
    assert_stopped_early(vllm_server, before, requested)
    row = ledger_row(gateway, request_id)
    assert (row["status"], row["error_type"]) == (499, "client_disconnected")


@pytest.mark.parametrize("model", ["tiny", "tiny-over-chat"])
def test_responses_api_native_and_over_chat_usage_equals_vllms(gateway, vllm_server, model):
    """The Responses API passed through to vLLM's own /v1/responses, and translated to its
    chat completions: whole and streamed, usage as vLLM counted it."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0, timeout=120)
    p0, g0 = counters(vllm_server)
    raw = client.responses.with_raw_response.create(model=model, input="Say hello.", max_output_tokens=10)
    response = raw.parse()
    p1, g1 = counters(vllm_server)
    assert response.status in ("completed", "incomplete") and response.output
    assert (response.usage.input_tokens, response.usage.output_tokens) == (p1 - p0, g1 - g0)
    row = ledger_row(gateway, raw.headers["x-llmops-request-id"])
    assert row["endpoint"] == "/responses" and (row["input_tokens"], row["output_tokens"]) == (p1 - p0, g1 - g0)
    events = list(client.responses.create(model=model, input="Say hello.", max_output_tokens=10, stream=True))
    assert events[0].type == "response.created" and events[-1].type in ("response.completed", "response.incomplete")
    assert events[-1].response.usage.output_tokens > 0


def test_messages_api_over_vllms_chat(gateway, vllm_server):
    """An Anthropic client on a vLLM model: the Messages API translated to chat."""
    import anthropic

    client = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0, timeout=120)
    p0, g0 = counters(vllm_server)
    message = client.messages.create(model="tiny", max_tokens=10, messages=[{"role": "user", "content": "Say hello."}])
    p1, g1 = counters(vllm_server)
    assert message.stop_reason in ("end_turn", "max_tokens")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (p1 - p0, g1 - g0)
    with client.messages.stream(model="tiny", max_tokens=10, messages=[{"role": "user", "content": "Hi."}]) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens > 0
