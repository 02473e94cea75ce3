"""The gateway's API as an OpenAPI 3.1 document, served at `GET /openapi.json`.

Written by hand (the gateway has no framework to derive it): each request schema says
what the handler accepts, no more. A body the schema allows passes the gateway's own
checks; what the gateway cannot know from the shape (an unknown model, a key without
access, an upstream that refuses a sampling field) is a 4xx in the API's error shape.
The OpenAI surfaces forward sampling fields they do not name (vLLM has its own), so
their objects stay open; the admin bodies are the key store's own pydantic models.
tests/test_openapi.py checks every served route is here and nothing else is, and
tests/test_fuzz_gateway.py drives every operation with bodies drawn from these schemas.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import orjson

from llmops.gateway import http
from llmops.gateway.inference import MAX_MODEL_NAME
from llmops.governance.spend import GROUPINGS

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


MODEL: Schema = {
    "type": "string", "minLength": 1, "maxLength": MAX_MODEL_NAME,
    "description": "A model this gateway serves (GET /v1/models); printable characters only.",
}
POSITIVE_INT: Schema = {"type": "integer", "minimum": 1}
STRINGS: Schema = {"type": "array", "items": {"type": "string"}}

TOKEN_IDS: Schema = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}
TEXT_INPUT: Schema = {"anyOf": [  # completions' prompt, embeddings' input (non-empty there)
    {"type": "string"},
    {"type": "array", "minItems": 1, "items": {"type": "string"}},
    TOKEN_IDS,
    {"type": "array", "minItems": 1, "items": TOKEN_IDS},
]}

PROMPT_REFERENCE: Schema = {
    "type": "object",
    "description": "A registry prompt to render into the messages: a label or a version, not both.",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "label": {"type": "string", "minLength": 1},
        "version": POSITIVE_INT,
        "variables": {"type": "object"},
    },
    "not": {"required": ["label", "version"]},
}

SAMPLING: dict[str, Schema] = {
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "user": {"type": "string"},
}

CHAT_CONTENT_PART: Schema = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "description": "text, image_url, input_audio, file, ..."},
        "text": {"type": "string"},
        "image_url": {"type": "object", "properties": {"url": {"type": "string"}}},
    },
    "if": {"properties": {"type": {"const": "text"}}},
    "then": {"required": ["text"]},
}

CHAT_CONTENT: Schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": _ref("ChatContentPart")}]}
TOOL_CALL: Schema = {
    "type": "object",
    "required": ["id", "type", "function"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "function"},
        "function": {"type": "object", "required": ["name", "arguments"],
                     "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}}},
    },
}
_MESSAGE_FIELDS: dict[str, Schema] = {"name": {"type": "string"}, "tool_call_id": {"type": "string"}}

CHAT_MESSAGE: Schema = {
    "description": "A chat message: `content` is required, except on an assistant message that calls tools.",
    "anyOf": [
        {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
            "content": CHAT_CONTENT, **_MESSAGE_FIELDS}},
        {"type": "object", "required": ["role", "tool_calls"], "properties": {
            "role": {"const": "assistant"},
            "content": {"anyOf": [CHAT_CONTENT, {"type": "null"}]},
            "tool_calls": {"type": "array", "minItems": 1, "items": TOOL_CALL}, **_MESSAGE_FIELDS}},
    ],
}

FUNCTION_TOOL: Schema = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"const": "function"},
        "function": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "minLength": 1}, "description": {"type": "string"},
            "parameters": {"type": "object"}}},
    },
}

CHAT_REQUEST: Schema = {
    "type": "object",
    "description": "OpenAI's chat completions request. `messages`, or a registry `prompt` that renders them. "
                   "Fields not named here are forwarded to OpenAI-compatible upstreams (vLLM's sampling "
                   "fields) and dropped for litellm ones; routing and credential fields are always dropped.",
    "required": ["model"],
    "anyOf": [{"required": ["messages"]}, {"required": ["prompt"]}],
    "properties": {
        "model": MODEL,
        "messages": {"type": "array", "minItems": 1, "items": _ref("ChatMessage")},
        "prompt": _ref("PromptReference"),
        "max_tokens": POSITIVE_INT,
        "max_completion_tokens": POSITIVE_INT,
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "n": POSITIVE_INT,
        "stop": {"anyOf": [{"type": "string"}, STRINGS]},
        "tools": {"type": "array", "items": FUNCTION_TOOL},
        "tool_choice": {"anyOf": [{"enum": ["auto", "none", "required"]}, {"type": "object"}]},
        "response_format": {"anyOf": [
            {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["text", "json_object"]}}},
            {"type": "object", "required": ["type", "json_schema"], "properties": {
                "type": {"const": "json_schema"},
                "json_schema": {"type": "object", "required": ["name", "schema"], "properties": {
                    "name": {"type": "string"}, "schema": {"type": "object"}, "strict": {"type": "boolean"}}}}},
        ]},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "logit_bias": {"type": "object"},
        "parallel_tool_calls": {"type": "boolean"},
        "metadata": {"type": "object"},
        "seed": {"type": "integer"},
        **SAMPLING,
    },
}

COMPLETION_REQUEST: Schema = {
    "type": "object",
    "description": "OpenAI's (legacy) completions request.",
    "required": ["model", "prompt"],
    "properties": {
        "model": MODEL,
        "prompt": TEXT_INPUT,
        "max_tokens": POSITIVE_INT,
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        "stop": {"anyOf": [{"type": "string"}, STRINGS]},
        **SAMPLING,
    },
}

EMBEDDING_REQUEST: Schema = {
    "type": "object",
    "description": "OpenAI's embeddings request.",
    "required": ["model", "input"],
    "properties": {
        "model": MODEL,
        "input": {"anyOf": [{"type": "string", "minLength": 1}, *TEXT_INPUT["anyOf"][1:]]},
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": POSITIVE_INT,
        "user": {"type": "string"},
    },
}

RESPONSE_INPUT_ITEM: Schema = {
    "anyOf": [
        {"type": "object", "required": ["role", "content"], "properties": {
            "type": {"const": "message"},
            "role": {"enum": ["user", "system", "developer", "assistant"]},
            "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {
                "type": "object", "required": ["type"], "properties": {
                    "type": {"enum": ["input_text", "output_text"]}, "text": {"type": "string"}},
                "allOf": [{"if": {"properties": {"type": {"enum": ["input_text", "output_text"]}}},
                           "then": {"required": ["text"]}}]}}]},
        }},
        {"type": "object", "required": ["type", "call_id", "name", "arguments"], "properties": {
            "type": {"const": "function_call"}, "call_id": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1}, "arguments": {"type": "string"}}},
        {"type": "object", "required": ["type", "call_id", "output"], "properties": {
            "type": {"const": "function_call_output"}, "call_id": {"type": "string", "minLength": 1},
            "output": {"type": "string"}}},
    ],
}

RESPONSES_REQUEST: Schema = {
    "type": "object",
    "description": "OpenAI's Responses API request. Passed through to upstreams that serve it, translated "
                   "over chat completions elsewhere (where background, conversation and stored prompts "
                   "are refused).",
    "required": ["model"],
    "anyOf": [{"required": ["input"]}, {"required": ["previous_response_id"]}],
    "properties": {
        "model": MODEL,
        "input": {"anyOf": [{"type": "string", "minLength": 1},
                            {"type": "array", "minItems": 1, "items": _ref("ResponseInputItem")}]},
        "instructions": {"type": "string"},
        "previous_response_id": {"type": "string", "minLength": 1},
        "prompt": {"type": "object", "required": ["id"], "description": "A registry prompt: `version` is a "
                   "version number or a label", "properties": {
                       "id": {"type": "string", "minLength": 1},
                       "version": {"anyOf": [{"type": "string", "minLength": 1}, POSITIVE_INT]},
                       "variables": {"type": "object"}}},
        "max_output_tokens": POSITIVE_INT,
        "stream": {"type": "boolean"},
        "store": {"type": "boolean"},
        "tools": {"type": "array", "items": {"type": "object", "required": ["type", "name"], "properties": {
            "type": {"const": "function"}, "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"}, "parameters": {"type": "object"}}}},
        "tool_choice": {"anyOf": [{"enum": ["auto", "none", "required"]}, {
            "type": "object", "required": ["type", "name"],
            "properties": {"type": {"const": "function"}, "name": {"type": "string", "minLength": 1}}}]},
        "text": {"type": "object", "properties": {"format": {"anyOf": [
            {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["text", "json_object"]}}},
            {"type": "object", "required": ["type", "name", "schema"], "properties": {
                "type": {"const": "json_schema"}, "name": {"type": "string", "minLength": 1},
                "schema": {"type": "object"}, "strict": {"type": "boolean"}}},
        ]}}},
        "parallel_tool_calls": {"type": "boolean"},
        "reasoning": {"type": "object", "properties": {"effort": {"enum": ["low", "medium", "high"]}}},
        **SAMPLING,
    },
}

ANTHROPIC_BLOCK: Schema = {
    "anyOf": [
        {"type": "object", "required": ["type", "text"], "properties": {
            "type": {"const": "text"}, "text": {"type": "string"}}},
        {"type": "object", "required": ["type", "id", "name", "input"], "properties": {
            "type": {"const": "tool_use"}, "id": {"type": "string", "minLength": 1},
            "name": {"type": "string", "minLength": 1}, "input": {"type": "object"}}},
        {"type": "object", "required": ["type", "tool_use_id", "content"], "properties": {
            "type": {"const": "tool_result"}, "tool_use_id": {"type": "string", "minLength": 1},
            "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": {
                "type": "object", "required": ["type", "text"],
                "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}}]},
            "is_error": {"type": "boolean"}}},
    ],
}

ANTHROPIC_MESSAGE: Schema = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["user", "assistant"]},
        "content": {"anyOf": [{"type": "string"}, {"type": "array", "items": _ref("AnthropicContentBlock")}]},
    },
}

_MESSAGES_PROMPT: dict[str, Schema] = {
    "model": MODEL,
    "messages": {"type": "array", "minItems": 1, "items": _ref("AnthropicMessage")},
    "system": {"anyOf": [{"type": "string"}, {"type": "array", "items": {
        "type": "object", "required": ["type", "text"],
        "properties": {"type": {"const": "text"}, "text": {"type": "string"}}}}]},
    "tools": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "minLength": 1}, "description": {"type": "string"},
        "input_schema": {"type": "object"}}}},
    "tool_choice": {"type": "object", "required": ["type"], "properties": {
        "type": {"enum": ["auto", "any", "tool", "none"]}, "name": {"type": "string", "minLength": 1}},
        "if": {"properties": {"type": {"const": "tool"}}}, "then": {"required": ["name"]}},
}

MESSAGES_REQUEST: Schema = {
    "type": "object",
    "description": "Anthropic's Messages API request. Passed through to upstreams that serve it, translated "
                   "over chat completions elsewhere (where extended thinking and MCP servers are refused).",
    "required": ["model", "max_tokens", "messages"],
    "properties": {
        **_MESSAGES_PROMPT,
        "max_tokens": POSITIVE_INT,
        "stream": {"type": "boolean"},
        "stop_sequences": STRINGS,
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "top_k": POSITIVE_INT,
        "metadata": {"type": "object", "properties": {"user_id": {"type": "string"}}},
        "output_config": {"type": "object", "properties": {"format": {
            "type": "object", "required": ["type", "schema"],
            "properties": {"type": {"const": "json_schema"}, "schema": {"type": "object"}}}}},
    },
}

COUNT_TOKENS_REQUEST: Schema = {
    "type": "object",
    "description": "Anthropic's token count request: the prompt part of a Messages request.",
    "required": ["model", "messages"],
    "properties": _MESSAGES_PROMPT,
}

FEEDBACK_REQUEST: Schema = {
    "type": "object",
    "description": "Feedback on one call: a score in 0..1 or thumbs, and/or a comment.",
    "required": ["request_id"],
    "properties": {
        "request_id": {"type": "string", "minLength": 1, "description": "The call's x-llmops-request-id."},
        "score": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"enum": ["up", "down"]}]},
        "thumbs": {"enum": ["up", "down"]},
        "comment": {"type": "string", "maxLength": 4000},
    },
    "anyOf": [{"required": ["score"]}, {"required": ["thumbs"]}, {"required": ["comment"]}],
    "not": {"required": ["score", "thumbs"]},
}

OPENAI_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type", "param", "code"],
        "properties": {
            "message": {"type": "string"},
            "type": {"type": "string"},
            "param": {"type": ["string", "null"]},
            "code": {"type": ["string", "integer", "null"]},
        },
    }},
}

ANTHROPIC_ERROR: Schema = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {"type": "object", "required": ["type", "message"],
                  "properties": {"type": {"type": "string"}, "message": {"type": "string"}}},
    },
}


def _admin_schemas() -> dict[str, Schema]:
    """The admin bodies as the key store validates them (its pydantic models)."""
    from llmops.governance.keys import BudgetBody, KeyCreateBody, KeyUpdateBody

    return {name: model.model_json_schema() for name, model in
            (("KeyCreate", KeyCreateBody), ("KeyUpdate", KeyUpdateBody), ("Budget", BudgetBody))}


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _errors(shape: str) -> dict[str, Any]:
    return {"4XX": {"description": "The request cannot be served", "content": _json(_ref(shape))},
            "5XX": {"description": "The upstream failed, or no deployment is healthy", "content": _json(_ref(shape))}}


def _operation(summary: str, *, body: str | None = None, ok: Schema | None = None, error: str = "OpenAIError",
               secured: bool = True, params: list[dict] | None = None,
               ok_type: str = "application/json") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(_ref(body))}
    op["responses"] = {"200": {"description": "OK", "content": {ok_type: {"schema": ok or {"type": "object"}}}},
                       **_errors(error)}
    if not secured:
        op["security"] = []
    return op


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "minLength": 1}}


INFERENCE = [
    ("/chat/completions", "ChatCompletionRequest", "Chat completions (streamed with `stream: true`)", "OpenAIError"),
    ("/completions", "CompletionRequest", "Text completions (streamed with `stream: true`)", "OpenAIError"),
    ("/embeddings", "EmbeddingRequest", "Embeddings", "OpenAIError"),
    ("/responses", "ResponsesRequest", "OpenAI Responses API (streamed with `stream: true`)", "OpenAIError"),
    ("/messages", "AnthropicMessagesRequest", "Anthropic Messages API (streamed with `stream: true`)",
     "AnthropicError"),
]


def _paths() -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}

    def both(path: str, method: str, op: dict[str, Any]) -> None:
        paths.setdefault("/v1" + path, {})[method] = op
        paths.setdefault(path, {})[method] = {**op, "description": f"The same as /v1{path}; both are served, "
                                                                   "as clients differ."}

    for path, body, summary, error in INFERENCE:
        both(path, "post", _operation(summary, body=body, error=error))
    both("/models", "get", _operation("The models this gateway serves (a key sees those it may call)"))
    model_param = [_path_param("model", "A model's name")]
    both("/models/{model}", "get", _operation("One model's card", params=model_param))
    both("/messages/count_tokens", "post", _operation("Anthropic token count", body="AnthropicCountTokensRequest",
                                                      ok={"type": "object", "required": ["input_tokens"],
                                                          "properties": {"input_tokens": {"type": "integer"}}},
                                                      error="AnthropicError"))
    paths["/v1/feedback"] = {"post": _operation("Feedback on a call", body="FeedbackRequest")}
    paths["/health/live"] = {"get": _operation("The process answers", secured=False)}
    paths["/health/ready"] = {"get": {**_operation("The database and a deployment answer", secured=False),
                                      "responses": {"200": {"description": "Ready"},
                                                    "503": {"description": "Not ready; `checks` says why"}}}}
    paths["/metrics"] = {"get": _operation("Prometheus metrics (the master key with `metrics_auth: master_key`)",
                                           ok={"type": "string"}, ok_type="text/plain")}
    paths["/openapi.json"] = {"get": _operation("This document", secured=False)}
    key_param = [_path_param("key", "A key's id or name")]
    paths["/admin/keys"] = {"get": _operation("Virtual keys (master key)"),
                            "post": _operation("Create a virtual key (master key); the reply shows it once",
                                               body="KeyCreate")}
    paths["/admin/keys/{key}"] = {"get": _operation("One virtual key (master key)", params=key_param),
                                  "patch": _operation("Change a virtual key (master key)", params=key_param,
                                                      body="KeyUpdate"),
                                  "delete": _operation("Revoke a virtual key (master key)", params=key_param)}
    paths["/admin/budgets"] = {"get": _operation("User and team budgets (master key)"),
                               "post": _operation("Set a user's or team's budget (master key)", body="Budget"),
                               "delete": _operation("Remove a user's or team's budget (master key)", body="Budget")}
    paths["/admin/spend"] = {"get": _operation("Spend from the ledger (master key)", params=[
        {"name": "by", "in": "query", "schema": {"enum": list(GROUPINGS), "default": "model"}},
        {"name": "since", "in": "query", "schema": {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smhdwSMHDW]\s*$"},
         "description": "Only calls this recent: a number and a unit, e.g. 30m, 24h, 7d, 2w"},
    ])}
    paths["/admin/experiments/{name}"] = {"get": _operation(
        "An experiment's report (master key)", params=[_path_param("name", "An experiment's name")])}
    return paths


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document (build once; callers must not change it)."""
    schemas: dict[str, Schema] = {
        "ChatMessage": CHAT_MESSAGE,
        "ChatContentPart": CHAT_CONTENT_PART,
        "PromptReference": PROMPT_REFERENCE,
        "ChatCompletionRequest": CHAT_REQUEST,
        "CompletionRequest": COMPLETION_REQUEST,
        "EmbeddingRequest": EMBEDDING_REQUEST,
        "ResponseInputItem": RESPONSE_INPUT_ITEM,
        "ResponsesRequest": RESPONSES_REQUEST,
        "AnthropicContentBlock": ANTHROPIC_BLOCK,
        "AnthropicMessage": ANTHROPIC_MESSAGE,
        "AnthropicMessagesRequest": MESSAGES_REQUEST,
        "AnthropicCountTokensRequest": COUNT_TOKENS_REQUEST,
        "FeedbackRequest": FEEDBACK_REQUEST,
        "OpenAIError": OPENAI_ERROR,
        "AnthropicError": ANTHROPIC_ERROR,
        **_admin_schemas(),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "llmops gateway", "version": _version(),
                 "description": "An OpenAI- and Anthropic-compatible LLM gateway with keys, budgets, guardrails, "
                                "a prompt registry and a ledger of every call."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": _paths(),
        "components": {
            "schemas": copy.deepcopy(schemas),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "The master key or a virtual key (when the gateway requires keys)"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                           "description": "The same keys, as Anthropic's SDK sends them"},
            },
        },
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmops")
    except PackageNotFoundError:
        return "0"


@cache
def _document_bytes() -> bytes:
    return orjson.dumps(document())


async def serve(services: Any, scope: dict, receive: http.Receive, send: http.Send) -> None:
    """`GET /openapi.json`: open to all, as it names no model, key or secret."""
    await http.send_bytes(send, 200, _document_bytes())
