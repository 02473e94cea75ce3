"""One contract, every registered provider kind: what the router may rely on whatever
`provider:` a deployment names.

openai and vllm run against the fake upstream (tests/support/fake_upstream.py), a real
HTTP server; litellm against the same server through an `openai/...` model string
with api_base (litellm's OpenAI route, offline); mock has no upstream and runs as is.
A new provider joins by registering: it is parametrized here from the registry, so it
must be given a row in SETUPS below (the first test fails until it is).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from llmops.errors import InvalidInput
from llmops.gateway.config import DeploymentConfig, ProviderOptions, RouterSettings, Timeouts, parse_config
from llmops.gateway.errors import UpstreamError
from llmops.gateway.lazy_session import LazySession
from llmops.gateway.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    ENDPOINTS,
    MESSAGES,
    PROVIDERS,
    RESPONSES,
    Provider,
    ProviderContext,
    UpstreamReply,
    UpstreamStream,
    provider_class,
    provider_kinds,
    register,
)
from llmops.gateway.router import Router, build_provider
from llmops.gateway.upstream_http import UpstreamClient
from tests.support.fake_upstream import REPLY, FakeUpstream
from tests.support.gateway_proc import free_port

KINDS = provider_kinds()
BUILTIN = {"openai", "vllm", "litellm", "mock"}
TIMEOUTS = Timeouts(connect=2, first_byte=5, idle=5, total=10)
CHAT_BODY = {"model": "what-the-client-asked", "messages": [{"role": "user", "content": "Say hi. Then stop."}]}


def _http(model_prefix: str = "") -> Callable[[str, str], dict[str, Any]]:
    def deployment(behaviour: str, base: str) -> dict[str, Any]:
        return {"model": model_prefix + behaviour, "api_base": base, "api_key": "sk-contract-test"}

    return deployment


# kind -> how a deployment of it reaches the fake upstream with a given behaviour
# (fake_upstream.py's model names: ok, fail500, bad-request); None: no upstream.
SETUPS: dict[str, Callable[[str, str], dict[str, Any]] | None] = {
    "openai": _http(),
    "vllm": _http(),
    "litellm": _http("openai/"),
    "mock": None,
}


@pytest.fixture(scope="module")
def fake():
    upstream = FakeUpstream(free_port()).start()
    yield upstream
    upstream.stop()


def _deployment(kind: str, fake: FakeUpstream, behaviour: str = "ok", **extra: Any) -> DeploymentConfig:
    setup = SETUPS[kind]
    fields = setup(behaviour, fake.base_url) if setup is not None else {"model": "demo"}
    return DeploymentConfig.model_validate({"provider": kind, "name": f"contract-{kind}", **fields, **extra})


def _run(kind: str, dep: DeploymentConfig, use: Callable[[Provider], Awaitable[Any]]) -> Any:
    """`use(provider)` in a fresh event loop, with the provider built as the router builds it."""

    async def main() -> Any:
        session, upstream = LazySession(), UpstreamClient()
        provider = build_provider(dep, ProviderContext(TIMEOUTS, RouterSettings(), session, upstream))
        assert type(provider) is provider_class(kind)
        try:
            return await use(provider)
        finally:
            upstream.close()
            await session.close()

    return asyncio.run(main())


async def _whole_stream(stream: UpstreamStream) -> list[list[bytes]]:
    batches = [stream.first]
    async for batch in stream.rest:
        batches.append(batch)
    return batches


def test_every_builtin_kind_is_registered_and_has_a_row_here():
    assert BUILTIN <= set(KINDS)
    assert set(KINDS) <= set(SETUPS), f"give the new provider kind(s) a row in SETUPS: {set(KINDS) - set(SETUPS)}"
    for kind in KINDS:
        cls = PROVIDERS[kind]
        assert cls.kind == kind
        assert issubclass(cls.Options, ProviderOptions)
        assert cls.native <= set(ENDPOINTS), f"{kind} declares an endpoint the gateway does not know"


@pytest.mark.parametrize("kind", KINDS)
def test_a_whole_chat_reply_has_choices_message_and_usage(kind, fake):
    fake.reset()
    reply: UpstreamReply = _run(kind, _deployment(kind, fake), lambda p: p.request(CHAT, dict(CHAT_BODY)))
    data = reply.data
    message = data["choices"][0]["message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str) and message["content"]
    usage = data["usage"]
    assert usage["prompt_tokens"] > 0 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    if SETUPS[kind] is not None:
        assert message["content"] == REPLY
        # The upstream was asked for the deployment's model, not the client's name for it.
        assert [b["model"] for b in fake.received] == ["ok"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_yields_first_then_rest_batches_of_json_payloads_and_ends(kind, fake):
    body = {**CHAT_BODY, "stream": True}
    batches: list[list[bytes]] = _run(kind, _deployment(kind, fake), lambda p: _stream_all(p, body))
    # One batch per network read: a fast upstream's whole reply may come as `first`,
    # with `rest` ending at once; each batch is a list of payloads all the same.
    assert batches[0], "the first batch is what arrived first: never empty"
    assert all(isinstance(batch, list) and all(isinstance(p, bytes) for p in batch) for batch in batches)
    chunks = [orjson.loads(payload) for batch in batches for payload in batch]
    assert all(isinstance(c, dict) for c in chunks)  # JSON payloads, no `data:` and no [DONE]
    text = "".join((c.get("choices") or [{}])[0].get("delta", {}).get("content") or "" for c in chunks if c.get("choices"))
    assert text
    if SETUPS[kind] is not None:
        assert text == REPLY
    assert any(c.get("choices") and c["choices"][0].get("finish_reason") == "stop" for c in chunks)
    assert any((c.get("usage") or {}).get("total_tokens") for c in chunks), "usage is always asked for"


async def _stream_all(provider: Provider, body: dict[str, Any]) -> list[list[bytes]]:
    stream = await provider.stream(CHAT, body)
    return await _whole_stream(stream)


@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_500_is_a_retryable_upstream_error(kind, fake):
    if SETUPS[kind] is None:
        pytest.skip(f"{kind} has no upstream to fail")
    with pytest.raises(UpstreamError) as exc:
        _run(kind, _deployment(kind, fake, "fail500"), lambda p: p.request(CHAT, dict(CHAT_BODY)))
    assert exc.value.retryable is True
    assert exc.value.status == 502


@pytest.mark.parametrize("kind", KINDS)
def test_an_upstream_400_is_not_retryable_and_keeps_the_upstreams_message(kind, fake):
    if SETUPS[kind] is None:
        # The mock's own 400: embeddings of something that is not text.
        call, message = (lambda p: p.request(EMBEDDINGS, {"input": [1, 2]})), "a string or a list of strings"
    else:
        call, message = (lambda p: p.request(CHAT, dict(CHAT_BODY))), "max_tokens is too large"
    with pytest.raises(UpstreamError) as exc:
        _run(kind, _deployment(kind, fake, "bad-request"), call)
    assert exc.value.retryable is False
    assert exc.value.status == 400
    assert message in exc.value.message


@pytest.mark.parametrize("kind", KINDS)
def test_serves_is_what_native_declares(kind, fake):
    provider = build_provider(_deployment(kind, fake), ProviderContext(TIMEOUTS, RouterSettings(), LazySession()))
    assert provider.native <= set(ENDPOINTS)
    for endpoint in ENDPOINTS:
        assert provider.serves(endpoint) is (endpoint in provider.native)
    assert provider.serves("/no/such/endpoint") is False


@pytest.mark.parametrize("kind", KINDS)
def test_upstream_body_puts_the_deployments_model_in(kind, fake):
    dep = _deployment(kind, fake, extra_params={"temperature": 0.25})
    provider = build_provider(dep, ProviderContext(TIMEOUTS, RouterSettings(), LazySession()))
    body = {**CHAT_BODY, "temperature": 0.9}
    out = provider.upstream_body(body)
    assert out["model"] == dep.model
    assert out["temperature"] == 0.9, "the client's own value wins over the deployment's extra_params"
    assert body["model"] == "what-the-client-asked", "the client's body is left as it was"


@pytest.mark.parametrize("kind", KINDS)
def test_the_providers_options_reject_an_unknown_field(kind):
    with pytest.raises(ValidationError):
        PROVIDERS[kind].Options.model_validate({"no_such_option": 1})
    # ... and so does the gateway's config, in one line that names the field.
    raw = {"models": [{"name": "m", "deployments": [{"provider": kind, "model": "m", "options": {"no_such_option": 1}}]}]}
    with pytest.raises(InvalidInput) as exc:
        parse_config(raw)
    message = str(exc.value)
    assert "\n" not in message
    assert "models.0.deployments.0.options.no_such_option: Extra inputs are not permitted" in message


# -- what each built-in provider declares -----------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options", "native"),
    [
        ("openai", {}, {CHAT, COMPLETIONS, EMBEDDINGS}),
        ("openai", {"native_responses": True}, {CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES}),
        ("vllm", {}, {CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES}),
        ("vllm", {"native_responses": False}, {CHAT, COMPLETIONS, EMBEDDINGS}),
        ("litellm", {}, {CHAT, COMPLETIONS, EMBEDDINGS}),
        ("mock", {}, {CHAT, COMPLETIONS, EMBEDDINGS}),
    ],
)
def test_the_native_surfaces_of_the_builtin_providers(kind, options, native, fake):
    provider = build_provider(
        _deployment(kind, fake, options=options), ProviderContext(TIMEOUTS, RouterSettings(), LazySession())
    )
    assert provider.native == native
    assert provider.serves(RESPONSES) is (RESPONSES in native)
    assert not provider.serves(MESSAGES)


def test_the_router_builds_each_deployment_from_the_registry_with_its_options(fake):
    config = parse_config({
        "models": [
            {"name": "a", "deployments": [
                {"provider": "vllm", "model": "ok", "api_base": fake.base_url},
                {"provider": "vllm", "model": "ok", "api_base": fake.base_url, "options": {"metrics_interval": 0.25}},
            ]},
            {"name": "b", "deployments": [{"provider": "mock", "model": "b", "options": {"reply": "fixed", "latency_ms": 1}}]},
        ],
        "router": {"vllm_metrics_interval": 2},
    })
    router = Router(config, LazySession())
    first, second = router.deployments["a"]
    assert [first.provider.poll_interval, second.provider.poll_interval] == [2, 0.25]  # type: ignore[attr-defined]
    assert first.provider.balance_by_load and not router.deployments["b"][0].provider.balance_by_load
    mock = router.deployments["b"][0].provider
    reply = asyncio.run(mock.request(CHAT, dict(CHAT_BODY)))
    assert reply.data["choices"][0]["message"]["content"] == "fixed"


def test_an_unknown_provider_stops_start_up_naming_the_known_ones():
    raw = {"models": [{"name": "m", "deployments": [{"provider": "opneai", "model": "m"}]}]}
    with pytest.raises(InvalidInput) as exc:
        parse_config(raw, source="gw.yaml")
    assert str(exc.value) == (
        "invalid gateway config gw.yaml: models.0.deployments.0.provider: unknown provider 'opneai'; "
        f"known providers: {', '.join(KINDS)}"
    )


def test_a_bad_option_value_stops_start_up_naming_the_field():
    raw = {"models": [{"name": "m", "deployments": [{"provider": "mock", "model": "m", "options": {"latency_ms": "slow"}}]}]}
    with pytest.raises(InvalidInput) as exc:
        parse_config(raw)
    assert "models.0.deployments.0.options.latency_ms: Input should be a valid number" in str(exc.value)


def test_the_old_mock_keys_still_mean_the_mock_providers_options():
    raw = {"models": [{"name": "m", "deployments": [
        {"provider": "mock", "model": "m", "mock_reply": "hello", "mock_latency_ms": 3}]}]}
    options = parse_config(raw).models[0].deployments[0].options
    assert options.model_dump() == {"reply": "hello", "latency_ms": 3.0}
    raw["models"][0]["deployments"][0] = {"provider": "openai", "model": "m", "mock_reply": "hello"}
    with pytest.raises(InvalidInput, match=r"models\.0\.deployments\.0: mock_reply is an option of the mock provider only"):
        parse_config(raw)


def test_a_provider_is_one_registered_class_and_nothing_else():
    """A plug-in: registered, it is a kind deployments may name, with its own options."""

    class EchoOptions(ProviderOptions):
        prefix: str = ""

    @register
    class EchoProvider(Provider):
        kind = "contract-echo"
        Options = EchoOptions
        native = frozenset({CHAT})
        options: EchoOptions

        async def request(self, endpoint: str, body: dict[str, Any]) -> UpstreamReply:
            text = self.options.prefix + body["messages"][-1]["content"]
            return UpstreamReply(data={"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

        async def stream(self, endpoint: str, body: dict[str, Any]) -> UpstreamStream:
            raise UpstreamError("no streams here", status=400, retryable=False)

    try:
        assert "contract-echo" in provider_kinds()
        config = parse_config({"models": [{"name": "echo", "deployments": [
            {"provider": "contract-echo", "model": "echo", "options": {"prefix": "> "}}]}]})
        provider = Router(config, LazySession()).deployments["echo"][0].provider
        assert isinstance(provider, EchoProvider) and provider.serves(CHAT) and not provider.serves(EMBEDDINGS)
        reply = asyncio.run(provider.request(CHAT, dict(CHAT_BODY)))
        assert reply.data["choices"][0]["message"]["content"] == "> Say hi. Then stop."
        with pytest.raises(ValueError, match="taken by"):

            @register
            class Impostor(EchoProvider):
                kind = "contract-echo"
    finally:
        PROVIDERS.pop("contract-echo", None)
