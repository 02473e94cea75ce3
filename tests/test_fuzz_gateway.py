"""A schema fuzzer over every operation of the gateway's own OpenAPI document (issue 19).

A real `llmops serve` (the mock provider, and fake upstreams that are real HTTP servers:
OpenAI chat and Responses, Anthropic Messages through litellm, an upstream whose 400
echoes its key) is driven with bodies drawn from each operation's request schema, the
same bodies broken (a field replaced by any JSON, a required one dropped, not an
object, not JSON), odd headers, and the master key, a virtual key or no key. Every
response must be:
- no 5xx: the upstreams are healthy, so any 5xx is the gateway's own;
- an error in the API's own shape (Anthropic's on the Messages routes, OpenAI's elsewhere);
- free of the master key and the upstream keys;
and every inference request answered must have its ledger row.

Bounded for CI: 12 examples per operation (about 450 requests), the same ones each run.
`LLMOPS_FUZZ_EXAMPLES=300 pytest tests/test_fuzz_gateway.py` is the long run, with fresh
examples; `LLMOPS_FUZZ_LOG=FILE` logs each 5xx before Hypothesis shrinks it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from typing import Any
from urllib.parse import quote

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmops.gateway import openapi
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_proc import free_port, run_gateway
from tests.support.schema_strategy import valid

MASTER = "sk-master-fuzz-5f1c2e9a7b"
UPSTREAM_KEY = "sk-upstream-fuzz-0d3b8c6a41"
ANTHROPIC_KEY = "sk-ant-fuzz-77e0a4c9d2"
SECRETS = (MASTER, UPSTREAM_KEY, ANTHROPIC_KEY)
MODELS = ["demo", "chat", "native", "claude", "lite", "echo"]
EXAMPLES = int(os.environ.get("LLMOPS_FUZZ_EXAMPLES", "12"))
# CI draws the same examples every run (a new 5xx shows up in a long run, not as a flaky
# CI); a run that asks for its own number of examples draws fresh ones.
DERANDOMIZE = "LLMOPS_FUZZ_EXAMPLES" not in os.environ
INFERENCE_PATHS = {"/v1" + p for p, *_ in openapi.INFERENCE} | {p for p, *_ in openapi.INFERENCE}
ANTHROPIC_PATHS = {"/v1/messages", "/messages", "/v1/messages/count_tokens", "/messages/count_tokens"}

answered_ids: list[str] = []  # x-llmops-request-id of every inference request answered


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream(free_port()).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    base = upstream.base_url

    def openai_model(name: str, upstream_model: str, **options) -> dict:
        dep = {"provider": "openai", "model": upstream_model, "api_base": base, "api_key": UPSTREAM_KEY}
        if options:
            dep["options"] = options
        return {"name": name, "deployments": [dep]}

    config = {
        "models": [
            {"name": "demo", "deployments": [{"provider": "mock", "model": "demo"}]},
            openai_model("chat", "ok"),
            openai_model("native", "ok", native_responses=True),
            openai_model("echo", "echo-key"),
            {"name": "claude", "deployments": [{"provider": "litellm", "model": "anthropic/ok",
                                                "api_key": ANTHROPIC_KEY, "api_base": base.removesuffix("/v1")}]},
            {"name": "lite", "deployments": [{"provider": "litellm", "model": "openai/ok", "api_base": base,
                                              "api_key": UPSTREAM_KEY}]},
        ],
        "router": {"retries": 0},
        "auth": "keys",
    }
    tmp = tmp_path_factory.mktemp("fuzz")
    with run_gateway(config, tmp, env={"LLMOPS_MASTER_KEY": MASTER}) as gw:
        admin = {"authorization": f"Bearer {MASTER}"}
        made = httpx.post(gw.url + "/admin/keys", json={"name": "fuzz-app"}, headers=admin, timeout=30)
        assert made.status_code == 200, made.text
        victim = httpx.post(gw.url + "/admin/keys", json={"name": "fuzz-victim"}, headers=admin, timeout=30)
        gw.virtual_key = made.json()["key"]
        gw.made_keys = []  # keys the fuzzer made through POST /admin/keys
        gw.key_ids = [victim.json()["id"], "fuzz-victim"]  # never the app key: a DELETE would revoke it
        gw.database = tmp / "llmops.db"
        gw.client = httpx.Client(base_url=gw.url, timeout=60)
        yield gw
        gw.client.close()


def _resolve(node: Any, components: dict[str, Any]) -> Any:
    """`node` with every `$ref` into components.schemas replaced by the schema (none recurse)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            return _resolve(components[ref.rsplit("/", 1)[1]], components)
        return {k: _resolve(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, components) for v in node]
    return node


def _served_document() -> dict[str, Any]:
    # The document the fuzzer reads is the one the gateway serves; the test checks they are one.
    return json.loads(json.dumps(openapi.document()))


DOCUMENT = _served_document()
COMPONENTS = DOCUMENT["components"]["schemas"]
# Key creation first: the keys it makes (whatever limits and guardrails the fuzzer gave
# them) then call every other operation.
OPERATIONS = sorted(((method.upper(), path, op) for path, item in DOCUMENT["paths"].items() for method, op in item.items()),
                    key=lambda o: (o[0], o[1]) != ("POST", "/admin/keys"))


def _body_schema(op: dict[str, Any]) -> dict[str, Any] | None:
    body = op.get("requestBody")
    if body is None:
        return None
    schema = _resolve(body["content"]["application/json"]["schema"], COMPONENTS)
    props = schema.get("properties", {})
    if "model" in props:  # the configured models, and some the gateway does not serve
        props["model"] = {"enum": [*MODELS, "gpt-unknown", "off model"]}
    if "request_id" in props:
        props["request_id"] = {"anyOf": [{"type": "string", "minLength": 1}, {"enum": ["req-not-a-real-one"]}]}
    return schema


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)


@st.composite
def request_bodies(draw, schema: dict[str, Any] | None) -> bytes | None:
    if schema is None:
        return draw(st.none() | st.just(b"{}") | st.binary(max_size=20))
    how = draw(st.sampled_from(["valid", "valid", "valid", "field", "drop", "any-json", "bytes"]))
    if how == "any-json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if how == "bytes":
        return draw(st.binary(max_size=64) | st.just(b"") | st.just(b"{" * 300 + b"}" * 300))
    body = draw(valid(schema))
    if how == "field" and isinstance(body, dict):
        names = sorted({*body, *schema.get("properties", {})})
        if names:
            body[draw(st.sampled_from(names))] = draw(JSON_VALUES)
    elif how == "drop" and isinstance(body, dict) and body:
        del body[draw(st.sampled_from(sorted(body)))]
    return json.dumps(body).encode()


@st.composite
def request_headers(draw, gateway) -> list[tuple[str, str]]:
    who = draw(st.sampled_from(["master", "virtual", "none", "garbage", "x-api-key", "made"]))
    headers: list[tuple[str, str]] = []
    if who == "made" and gateway.made_keys:
        headers.append(("authorization", f"Bearer {draw(st.sampled_from(gateway.made_keys))}"))
    elif who == "master":
        headers.append(("authorization", f"Bearer {MASTER}"))
    elif who == "virtual":
        headers.append(("authorization", f"Bearer {gateway.virtual_key}"))
    elif who == "x-api-key":
        headers.append(("x-api-key", draw(st.sampled_from([MASTER, gateway.virtual_key, "sk-wrong"]))))
    elif who == "garbage":
        headers.append(("authorization", draw(st.sampled_from(["Bearer", "Basic Zm9vOmJhcg==", "bearer  x", "Bearer\tx"])
                                               | HEADER_TEXT)))
    content_type = draw(st.sampled_from(["application/json", "application/json", "text/plain", "",
                                         "application/json; charset=utf-16", "multipart/form-data; boundary=x"]))
    if content_type:
        headers.append(("content-type", content_type))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["x-llmops-session", "accept", "accept-encoding", "x-request-id",
                                     "anthropic-version", "openai-organization", "x-forwarded-for", "x-odd"]))
        headers.append((name, draw(HEADER_TEXT | st.just("a" * 4000))))
    return headers


@st.composite
def path_params(draw, path: str, gateway) -> str:
    if "{" not in path:
        return path
    head, _, rest = path.partition("{")
    tail = rest.partition("}")[2]
    value = draw(st.sampled_from([*MODELS, *gateway.key_ids, "nope"]) | st.text(min_size=1, max_size=20))
    return head + quote(value, safe="") + tail


def _check_error_shape(path: str, status: int, r: httpx.Response) -> None:
    shape = "AnthropicError" if path in ANTHROPIC_PATHS else "OpenAIError"
    try:
        data = r.json()
    except ValueError:
        pytest.fail(f"{status} from {path} is not JSON: {r.text[:300]!r}")
    jsonschema.validate(data, COMPONENTS[shape])


def _check_stream_errors(path: str, text: str) -> None:
    """An error after a stream began is an event in the API's own shape."""
    for line in text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        event = json.loads(line[6:])
        if path in ANTHROPIC_PATHS and event.get("type") == "error":
            jsonschema.validate(event, COMPONENTS["AnthropicError"])
        elif path.endswith("completions") and "error" in event:
            jsonschema.validate(event, COMPONENTS["OpenAIError"])


def _exercise(gateway, method: str, path: str, body: bytes | None, headers: list[tuple[str, str]]) -> None:
    template = next(p for p in DOCUMENT["paths"] if p == path or ("{" in p and path.startswith(p.partition("{")[0])))
    r = gateway.client.request(method, path, content=body, headers=headers)
    shown = f"{method} {path} -> {r.status_code}: {r.text[:500]!r}\nbody: {body[:500] if body else body!r}"
    if r.status_code >= 500 and os.environ.get("LLMOPS_FUZZ_LOG"):
        with open(os.environ["LLMOPS_FUZZ_LOG"], "a") as log:
            log.write(shown + "\n")
    assert r.status_code < 500 or (path == "/health/ready" and r.status_code == 503), shown
    for secret in SECRETS:
        assert secret not in r.text, shown
        assert all(secret not in v for v in r.headers.values()), shown
    if r.status_code >= 400:
        _check_error_shape(template, r.status_code, r)
    elif r.headers.get("content-type", "").startswith("text/event-stream"):
        _check_stream_errors(template, r.text)
    if (method, path) == ("POST", "/admin/keys") and r.status_code == 200 and len(gateway.made_keys) < 30:
        gateway.made_keys.append(r.json()["key"])
    if method == "POST" and path in INFERENCE_PATHS:
        request_id = r.headers.get("x-llmops-request-id")
        assert request_id, shown
        answered_ids.append(request_id)


def _operation_id(operation: tuple[str, str, dict]) -> str:
    return f"{operation[0]} {operation[1]}"


def test_the_document_is_the_one_served(gateway):
    r = gateway.client.get("/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == DOCUMENT


@pytest.mark.parametrize("operation", OPERATIONS, ids=_operation_id)
def test_fuzz_operation(gateway, operation):
    method, template, op = operation
    schema = _body_schema(op)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    @given(body=request_bodies(schema), headers=request_headers(gateway), path=path_params(template, gateway))
    def run(body, headers, path):
        _exercise(gateway, method, path, body, headers)

    run()


def test_every_inference_request_answered_has_its_ledger_row(gateway):
    assert len(answered_ids) > 50, "the fuzz tests run first and answer inference requests"
    wanted = set(answered_ids)
    deadline = time.monotonic() + 15
    while True:
        with sqlite3.connect(gateway.database) as db:
            found = {row[0] for row in db.execute("SELECT id FROM ledger")}
        missing = wanted - found
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not missing, f"{len(missing)} of {len(wanted)} answered requests have no ledger row"


# What the fuzzer found, kept as plain cases: each was a 500, or a 502 from litellm
# failing inside itself that counted toward cooling a healthy deployment down.
FOUND = [
    ("/v1/completions", {"model": "claude", "prompt": []}),
    ("/v1/completions", {"model": "claude", "prompt": [108, 108]}),
    ("/v1/chat/completions", {"model": "claude", "messages": [{"role": "system", "name": ""}]}),
    ("/v1/chat/completions", {"model": "claude", "messages": [{"role": "user", "content": "hi"}],
                              "response_format": [1.5, None]}),
    ("/v1/chat/completions", {"model": "lite", "messages": [{"role": "user", "content": "hi"}], "n": "2"}),
    ("/v1/messages", {"model": "demo", "max_tokens": 4, "messages": [{"role": "user", "content": "}"}],
                      "stop_sequences": 0.75}),
    ("/v1/messages", {"model": "claude", "max_tokens": 1, "messages": True}),
]


@pytest.mark.parametrize("path,body", FOUND)
def test_what_the_fuzzer_found_is_a_400_in_the_apis_shape(gateway, path, body):
    r = gateway.client.post(path, json=body, headers={"authorization": f"Bearer {gateway.virtual_key}"})
    assert r.status_code == 400, r.text
    _check_error_shape(path, r.status_code, r)
    answered_ids.append(r.headers["x-llmops-request-id"])


def test_no_deployment_cooled_down_after_all_that(gateway):
    for model in MODELS:
        if model == "echo":
            continue  # its upstream answers 400 to everything
        r = gateway.client.post("/v1/chat/completions", json={"model": model, "messages": [
            {"role": "user", "content": "hi"}]}, headers={"authorization": f"Bearer {gateway.virtual_key}"})
        assert r.status_code == 200, r.text


def test_a_key_whose_guardrails_name_no_check_is_refused_when_made(gateway):
    """Made anyway, every call with that key was a 500 (the override is resolved per call)."""
    admin = {"authorization": f"Bearer {MASTER}"}
    override = {"input": [{"check": "no_such_check", "action": "block"}]}
    r = gateway.client.post("/admin/keys", json={"name": "bad-guard", "guardrails": override}, headers=admin)
    assert r.status_code == 400 and "no_such_check" in r.json()["error"]["message"], r.text
    r = gateway.client.patch(f"/admin/keys/{gateway.key_ids[0]}", json={"guardrails": override}, headers=admin)
    assert r.status_code == 400, r.text
    good = {"input": [{"check": "pii", "action": "redact"}]}
    r = gateway.client.post("/admin/keys", json={"name": "good-guard", "guardrails": good}, headers=admin)
    assert r.status_code == 200, r.text
