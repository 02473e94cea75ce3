"""The OpenAPI document at /openapi.json describes exactly the routes the gateway serves,
and its request schemas say what the handlers accept (issue 19)."""

from __future__ import annotations

import jsonschema
import pytest

from llmops.gateway import app, openapi


def _served() -> set[tuple[str, str]]:
    """(method, path) of every route; a route that ends in an id as its prefix + '{'."""
    served = {(method, path) for method, path in app.ROUTES}
    served |= {(method, prefix + "{") for method, prefix, _ in app.PREFIX_ROUTES}
    return served


def _documented() -> set[tuple[str, str]]:
    out = set()
    for path, item in openapi.document()["paths"].items():
        key = path.partition("{")[0] + "{" if "{" in path else path
        out |= {(method.upper(), key) for method in item}
    return out


def test_every_served_route_is_documented_and_nothing_else():
    served, documented = _served(), _documented()
    assert served - documented == set(), "served but not in /openapi.json"
    assert documented - served == set(), "in /openapi.json but not served"


def test_path_parameters_are_declared():
    for path, item in openapi.document()["paths"].items():
        names = {part[1:-1] for part in path.split("/") if part.startswith("{")}
        for op in item.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


def test_the_document_is_openapi_31_with_valid_schemas():
    doc = openapi.document()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs and all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs)
    for item in doc["paths"].values():
        for op in item.values():
            assert "200" in op["responses"] and op["summary"]


def _validator(name: str) -> jsonschema.Draft202012Validator:
    doc = openapi.document()
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **doc},
                                           format_checker=None)


USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("schema,body,ok", [
    ("ChatCompletionRequest", {"model": "m", "messages": USER}, True),
    ("ChatCompletionRequest", {"model": "m", "prompt": {"name": "p", "label": "production"}}, True),
    ("ChatCompletionRequest", {"model": "m", "messages": [{"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}, True),
    ("ChatCompletionRequest", {"model": "m", "messages": [{"role": "user"}]}, False),
    ("ChatCompletionRequest", {"model": "m", "messages": []}, False),
    ("ChatCompletionRequest", {"model": "m", "prompt": {"name": "p", "label": "x", "version": 2}}, False),
    ("ChatCompletionRequest", {"model": "m", "messages": USER, "response_format": {"type": "yaml"}}, False),
    ("CompletionRequest", {"model": "m", "prompt": [1, 2, 3]}, True),
    ("CompletionRequest", {"model": "m", "prompt": []}, False),
    ("EmbeddingRequest", {"model": "m", "input": ""}, False),
    ("ResponsesRequest", {"model": "m", "input": "hi"}, True),
    ("ResponsesRequest", {"model": "m", "previous_response_id": "resp_1"}, True),
    ("ResponsesRequest", {"model": "m"}, False),
    ("AnthropicMessagesRequest", {"model": "m", "max_tokens": 5, "messages": USER}, True),
    ("AnthropicMessagesRequest", {"model": "m", "messages": USER}, False),
    ("AnthropicMessagesRequest", {"model": "m", "max_tokens": 5, "messages": USER, "stop_sequences": 0.5}, False),
    ("FeedbackRequest", {"request_id": "req-1", "thumbs": "up"}, True),
    ("FeedbackRequest", {"request_id": "req-1", "thumbs": ["up"]}, False),
    ("FeedbackRequest", {"request_id": "req-1", "score": 0.5, "thumbs": "up"}, False),
    ("KeyCreate", {"name": "app", "rpm": 10}, True),
    ("KeyCreate", {"name": "app", "nonsense": 1}, False),
])
def test_request_schemas_say_what_the_handlers_accept(schema, body, ok):
    assert _validator(schema).is_valid(body) is ok


def test_served_in_process():
    import asyncio

    import httpx

    from llmops.gateway.config import load_config

    async def fetch() -> httpx.Response:
        gateway = app.create_app(load_config(None))
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get("/openapi.json")

    r = asyncio.run(fetch())
    assert r.status_code == 200 and r.json() == openapi.document()
