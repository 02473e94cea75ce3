"""Hostile or unlucky input never becomes a leak, an outage or a 500 (issue 19).

Each test runs a real `llmops serve` process against fake upstreams that are real HTTP
servers (tests/support/fake_upstream.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.fake_upstream import REPLY, FakeUpstream
from tests.support.gateway_proc import free_port, run_gateway

KEY = "sk-upstream-secret-123"
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream(free_port()).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def elsewhere():
    """A second upstream that no configured deployment names: it must never be called."""
    fake = FakeUpstream(free_port()).start()
    yield fake
    fake.stop()


def _dep(provider: str, model: str, base: str, **extra) -> dict:
    return {"provider": provider, "model": model, "api_base": base, "api_key": KEY, **extra}


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base_url
    userinfo_base = base.replace("http://", "http://operator:hunter2pass@")
    config = {
        "models": [
            {"name": "lite", "deployments": [_dep("litellm", "openai/ok", base)]},
            {"name": "plain", "deployments": [_dep("openai", "ok", base)]},
            {"name": "vllm", "deployments": [_dep("vllm", "ok", base)]},
            {"name": "bad", "deployments": [_dep("openai", "bad-request", base)]},
            {"name": "lite-bad", "deployments": [_dep("litellm", "openai/bad-request", base)]},
            {"name": "echo-key", "deployments": [_dep("openai", "echo-key", base)]},
            {"name": "down", "deployments": [_dep("openai", "ok", f"http://operator:hunter2pass@127.0.0.1:{free_port()}/v1",
                                                  name="down-dep")]},
            {"name": "lite-echo-key", "deployments": [_dep("litellm", "openai/echo-key", base)]},
            {"name": "lite-down", "deployments": [_dep("litellm", "openai/ok", userinfo_base.replace(
                str(upstream.port), str(free_port())))]},
            {"name": "userinfo-500", "deployments": [_dep("openai", "fail500", userinfo_base)]},
        ],
        "router": {"retries": 0, "backoff_base": 0.01, "cooldown_failures": 3, "cooldown_seconds": 60},
    }
    tmp = tmp_path_factory.mktemp("hardening")
    with run_gateway(config, tmp) as gw:
        yield gw


@pytest.fixture()
def client(gateway, upstream, elsewhere):
    upstream.reset()
    elsewhere.reset()
    with httpx.Client(base_url=gateway.base_url, timeout=30) as c:
        yield c


def _hostile(elsewhere_base: str) -> dict:
    """Every litellm keyword that names a host, a callback, a credential or a mock."""
    other = elsewhere_base
    deployment = {"model_name": "lite", "litellm_params": {"model": "openai/ok", "api_base": other, "api_key": "x"}}
    return {
        "api_base": other, "base_url": other, "api_key": "sk-client", "api_version": "2024-01-01",
        "organization": "org-evil", "azure_endpoint": other, "azure_ad_token": "t",
        "model_list": [deployment], "fallbacks": [{"lite": ["openai/ok"]}], "context_window_fallback_dict": {"x": "y"},
        "success_callback": ["langsmith"], "failure_callback": ["langsmith"], "callbacks": ["langsmith"],
        "langsmith_base_url": other, "langsmith_api_key": "k", "langfuse_host": other, "logger_fn": "print",
        "mock_response": "mocked!", "mock_timeout": True, "mock_tool_calls": [], "mock_delay": 5,
        "custom_llm_provider": "openai", "aws_access_key_id": "a", "aws_secret_access_key": "b",
        "aws_region_name": "us-east-1", "aws_bedrock_runtime_endpoint": other, "vertex_project": "p",
        "vertex_location": "l", "vertex_credentials": "{}", "litellm_params": {"api_base": other},
        "extra_headers": {"x-evil": "1"}, "headers": {"x-evil": "1"}, "extra_body": {"evil": True},
        "proxy": other, "http_client": other, "client": other, "timeout": 0.0001, "num_retries": 5,
        "input_cost_per_token": 0, "output_cost_per_token": 0, "litellm_logging_obj": None, "api_type": "azure",
        "deployment_id": "d", "max_retries": 9, "user_api_key": "k", "cache": {"type": "redis"},
    }


@pytest.mark.parametrize("model", ["lite", "plain", "vllm"])
@pytest.mark.parametrize("stream", [False, True])
def test_client_fields_never_route_or_leak_to_another_host(client, upstream, elsewhere, model, stream):
    hostile = _hostile(elsewhere.base_url)
    r = client.post("/chat/completions", json={"model": model, "messages": MSG, "stream": stream, **hostile})
    assert r.status_code == 200, r.text
    assert REPLY.split(" ")[0] in r.text and "mocked!" not in r.text
    assert elsewhere.received == []
    assert len(upstream.received) == 1
    sent = upstream.received[0]
    assert not set(hostile) & set(sent), set(hostile) & set(sent)
    assert "evil" not in sent and sent["messages"] == MSG


def test_litellm_gets_only_documented_fields_on_each_endpoint(client, upstream, elsewhere):
    hostile = _hostile(elsewhere.base_url)
    r = client.post("/completions", json={"model": "lite", "prompt": "hi", "temperature": 0.5, **hostile})
    assert r.status_code == 200, r.text
    r = client.post("/embeddings", json={"model": "lite", "input": "hi", "encoding_format": "float", **hostile})
    assert r.status_code == 200, r.text
    assert elsewhere.received == []
    assert len(upstream.received) == 2
    for sent in upstream.received:
        assert not set(hostile) & set(sent), set(hostile) & set(sent)
    assert upstream.received[0]["temperature"] == 0.5


def test_unknown_sampling_fields_still_pass_to_vllm_and_openai(client, upstream):
    for model in ("plain", "vllm"):
        r = client.post("/chat/completions", json={"model": model, "messages": MSG, "top_k": 5, "min_p": 0.1,
                                                    "repetition_penalty": 1.1})
        assert r.status_code == 200, r.text
    assert [(b["top_k"], b["min_p"], b["repetition_penalty"]) for b in upstream.received] == [(5, 0.1, 1.1)] * 2


@pytest.mark.parametrize("model", ["bad", "lite-bad"])
def test_client_caused_400s_never_cool_a_deployment_down(client, model):
    # cooldown_failures is 3: a tenant's bad requests must not take the deployment offline.
    statuses = [client.post("/chat/completions", json={"model": model, "messages": MSG}).status_code for _ in range(6)]
    assert statuses == [400] * 6


@pytest.fixture
def redis_prefix():
    """A key prefix of this test's own on the machine's Redis, its keys deleted afterwards."""
    import uuid

    import redis

    from tests.test_limits import REDIS_URL, _redis_reachable

    reason = _redis_reachable()
    if reason:
        pytest.skip(reason)
    prefix = f"llmops-test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)


@pytest.mark.redis
def test_redis_limiter_holds_its_limit_with_300_calls_at_once(redis_prefix):
    import asyncio

    from llmops.governance.limits import LimiterUnavailable, LimitExceeded, make_limiter
    from tests.test_limits import REDIS_URL, key

    async def scenario() -> tuple[int, int, list[BaseException]]:
        limiter = make_limiter(REDIS_URL, redis_prefix=redis_prefix)
        info = key(rpm=40)
        try:
            results = await asyncio.gather(*(limiter.admit(info) for _ in range(300)), return_exceptions=True)
        finally:
            await limiter.aclose()
        admitted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, LimitExceeded)]
        others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, LimitExceeded)]
        assert not any(isinstance(r, LimiterUnavailable) for r in others)
        assert not any(r.degraded for r in admitted)
        return len(admitted), len(refused), others

    admitted, refused, others = asyncio.run(scenario())
    assert (admitted, refused, others) == (40, 260, [])


def _no_secrets(text: str) -> None:
    for secret in (KEY, "hunter2pass", "operator:", "127.0.0.1", "Traceback", "/site-packages/"):
        assert secret not in text, (secret, text)


@pytest.mark.parametrize("model", ["down", "userinfo-500", "echo-key"])
@pytest.mark.parametrize("stream", [False, True])
def test_error_messages_carry_no_credentials_or_internal_urls(client, model, stream):
    r = client.post("/chat/completions", json={"model": model, "messages": MSG, "stream": stream})
    assert r.status_code >= 400
    assert r.json()["error"]["message"]
    _no_secrets(r.text)
    if model == "down":
        assert "down-dep" in r.json()["error"]["message"]  # named by its deployment name
    if model == "echo-key":
        assert r.status_code == 400 and "Incorrect API key provided" in r.json()["error"]["message"]


def test_litellm_error_messages_carry_no_credentials(client, gateway):
    # litellm's own exception text names the host it tried and the key it used.
    r = client.post("/chat/completions", json={"model": "lite-echo-key", "messages": MSG})
    assert r.status_code == 400, r.text
    _no_secrets(r.text)
    r = client.post("/chat/completions", json={"model": "lite-down", "messages": MSG})
    assert r.status_code >= 500
    _no_secrets(r.text)


def _openai_error(r: httpx.Response, status: int = 400) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.mark.parametrize("model", ["plain", "lite"])
@pytest.mark.parametrize("options", ["yes", [1, 2], 5, True])
def test_stream_options_that_are_not_an_object_get_400(client, model, options):
    for stream in (True, False):
        r = client.post("/chat/completions",
                        json={"model": model, "messages": MSG, "stream": stream, "stream_options": options})
        assert _openai_error(r)["param"] == "stream_options"


@pytest.mark.parametrize("depth", [255, 300, 600, 1024, 1100])
@pytest.mark.parametrize("where", ["metadata", "content", "top"])
def test_deeply_nested_json_gets_400(client, depth, where):
    nested = "[" * depth + "]" * depth
    if where == "metadata":
        raw = '{"model": "plain", "messages": [{"role": "user", "content": "hi"}], "metadata": ' + nested + "}"
    elif where == "content":
        raw = '{"model": "plain", "messages": [{"role": "user", "content": ' + nested + "}]}"
    else:
        raw = '{"model": "plain", "messages": [{"role": "user", "content": "hi"}], "x": ' + "{\"a\": " * depth + "1" + "}" * depth + "}"
    r = client.post("/chat/completions", content=raw, headers={"content-type": "application/json"})
    _openai_error(r)


@pytest.mark.parametrize("model", ["pla\r\nin", "plain\r\nx-evil: 1", "plain\n", "pl\x00ain", "\x7f", "a" * 300])
def test_control_characters_in_the_model_name_get_400(gateway, model):
    import orjson

    r = httpx.post(gateway.base_url + "/chat/completions", content=orjson.dumps({"model": model, "messages": MSG}),
                   headers={"content-type": "application/json"}, timeout=10)
    error = _openai_error(r)
    assert error["param"] == "model"
    assert "x-evil" not in r.headers
    assert all("\n" not in v and "\r" not in v and "\x00" not in v for v in r.headers.values())


def test_a_reasonably_nested_tool_schema_still_passes(client, upstream):
    schema: dict = {"type": "string"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"x": schema}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    r = client.post("/chat/completions", json={"model": "plain", "messages": MSG, "tools": tools})
    assert r.status_code == 200, r.text


def test_metrics_label_only_configured_models(client, gateway):
    import random
    import string

    rng = random.Random(19)
    names = ["".join(rng.choices(string.ascii_lowercase, k=12)) for _ in range(200)]
    for name in names:
        r = client.post("/chat/completions", json={"model": name, "messages": MSG})
        assert r.status_code == 404
    assert client.post("/chat/completions", json={"model": "plain", "messages": MSG}).status_code == 200
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    assert not any(name in text for name in names)
    import re

    models = set(re.findall(r'\bmodel="([^"]*)"', text)) - {""}
    assert "plain" in models and "(unknown)" in models
    assert models <= {"(unknown)", "lite", "plain", "vllm", "bad", "lite-bad", "echo-key", "down", "userinfo-500",
                      "lite-echo-key", "lite-down"}, models


@pytest.mark.redis
def test_a_full_connection_pool_does_not_open_the_redis_breaker(redis_prefix):
    import asyncio

    from llmops.governance.limits.redis_limiter import RedisLimiter
    from tests.test_limits import REDIS_URL, key

    async def scenario() -> tuple[int, float, bool]:
        # Two connections, both taken, and no patience: calls find none free. (The
        # limiter's own calls share pipelines, so it is held here from outside.)
        limiter = RedisLimiter(REDIS_URL, prefix=redis_prefix, max_connections=2, pool_timeout=0.0001)
        info = key(rpm=1000)
        pool = limiter.redis.connection_pool
        try:
            held = [await pool.get_connection() for _ in range(2)]
            results = await asyncio.gather(*(limiter.admit(info) for _ in range(3)))
            degraded = sum(r.degraded for r in results)
            down_until = limiter._down_until
            for connection in held:
                await pool.release(connection)
            after = await limiter.admit(info)  # Redis is up: asked, not skipped
        finally:
            await limiter.aclose()
        return degraded, down_until, after.degraded

    degraded, down_until, after_degraded = asyncio.run(scenario())
    assert degraded > 0  # the pool was exhausted (rate limits fail open by default)
    assert down_until == 0.0 and not after_degraded


@pytest.mark.parametrize("thumbs", [["up"], {"up": 1}, 1, True, "sideways"])
def test_feedback_thumbs_of_the_wrong_type_get_400(client, thumbs):
    r = client.post("/feedback", json={"request_id": "req-unknown", "thumbs": thumbs})
    assert _openai_error(r)["param"] == "thumbs"


@pytest.mark.parametrize("path", ["/completions", "/embeddings", "/responses", "/messages"])
@pytest.mark.parametrize("model", ["pla\r\nin", "plain\r\nx-evil: 1", "pl\x00ain"])
def test_control_characters_in_the_model_name_get_400_on_every_endpoint(gateway, path, model):
    import orjson

    body = {"model": model, "prompt": "hi", "input": "hi", "messages": MSG, "max_tokens": 5}
    r = httpx.post(gateway.base_url + path, content=orjson.dumps(body), headers={"content-type": "application/json"},
                   timeout=10)
    assert 400 <= r.status_code < 500, r.text
    assert "x-evil" not in r.headers
    assert all("\n" not in v and "\r" not in v and "\x00" not in v for v in r.headers.values())


def test_metrics_may_require_the_master_key(tmp_path):
    config = {"models": [{"name": "demo", "deployments": [{"provider": "mock", "model": "demo"}]}],
              "metrics_auth": "master_key", "guardrails": {"input": [], "output": []}}
    with run_gateway(config, tmp_path, env={"LLMOPS_MASTER_KEY": "sk-master-metrics"}) as gw:
        assert httpx.get(gw.url + "/metrics", timeout=10).status_code == 401
        r = httpx.get(gw.url + "/metrics", headers={"authorization": "Bearer sk-not-it"}, timeout=10)
        assert r.status_code in (401, 403)
        r = httpx.get(gw.url + "/metrics", headers={"authorization": "Bearer sk-master-metrics"}, timeout=10)
        assert r.status_code == 200 and "llmops_" in r.text
    # Asked for, but no master key to give: the route is closed, never open.
    with run_gateway(config, tmp_path) as gw:
        assert httpx.get(gw.url + "/metrics", timeout=10).status_code == 403
