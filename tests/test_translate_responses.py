"""OpenAI Responses API <-> chat completions: llmops.gateway.translate.responses.

Every shape produced here is checked against the openai SDK's own pydantic types
(requests against the chat-completions params, replies against `Response`, each
streamed event against `ResponseStreamEvent`), and the whole path is driven once
more through the SDK itself (`responses.create/parse/stream` over a mock
transport), so a field the SDK requires, or an event order its stream
accumulator rejects, fails here.
"""

from __future__ import annotations

import json

import httpx2
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from openai.types.responses.response_create_params import ResponseCreateParamsNonStreaming
from pydantic import TypeAdapter

from llmops.errors import InvalidInput
from llmops.gateway.translate.responses import (
    ResponsesStream,
    chat_to_response,
    response_to_history,
    responses_to_chat,
    responses_usage,
    sse,
)
from tests.support.chat_chunks import chunk, drain, valid_chat
from tests.support.chat_chunks import completion as chat_completion
from tests.support.chat_chunks import text_chunks as chat_text_chunks
from tests.support.chat_chunks import tool_chunks as chat_tool_chunks

RESPONSES_BODY = TypeAdapter(ResponseCreateParamsNonStreaming)
STREAM_EVENT = TypeAdapter(ResponseStreamEvent)

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
TIME_TOOL = {
    "type": "function",
    "name": "get_time",
    "description": "Local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": None,
}


def valid_request(body: dict) -> dict:
    drain(RESPONSES_BODY.validate_python({k: v for k, v in body.items() if k != "stream"}))
    return body


def translate(body: dict, history: list[dict] | None = None) -> dict:
    return valid_chat(responses_to_chat(valid_request(body), history))


def completion(message: dict, finish_reason: str = "stop", usage: dict | None = None) -> dict:
    default = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27,
               "prompt_tokens_details": {"cached_tokens": 8}, "completion_tokens_details": {"reasoning_tokens": 2}}
    return chat_completion(message, finish_reason, usage or default)


USAGE = {
    "prompt_tokens": 31,
    "completion_tokens": 12,
    "total_tokens": 43,
    "prompt_tokens_details": {"cached_tokens": 16},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def text_chunks(*pieces: str, finish_reason: str = "stop") -> list[dict]:
    return chat_text_chunks(pieces, USAGE, finish_reason)


def tool_chunks(preamble: str | None = None) -> list[dict]:
    return chat_tool_chunks(USAGE, preamble, opening_content=None)


def run_stream(
    chunks: list[dict], request: dict | None = None, **finish
) -> tuple[list[dict], ResponsesStream]:
    stream = ResponsesStream("resp_1", request or {"model": "qwen"}, 1700000000)
    events = stream.start()
    for c in chunks:
        events += stream.feed(c)
    events += stream.finish(**finish)
    return events, stream


def check_events(events: list[dict]) -> Response:
    """The rules a Responses stream keeps; returns the final response."""
    for event in events:
        STREAM_EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1]["type"] in ("response.completed", "response.incomplete", "response.failed")
    assert all(e["response"]["status"] == "in_progress" for e in events[:2])
    assert all(e["response"]["output"] == [] for e in events[:2])
    open_index = None
    added: dict[int, dict] = {}
    done: dict[int, dict] = {}
    texts: dict[tuple[int, int], str] = {}
    arguments: dict[int, str] = {}
    open_parts: set[tuple[int, int]] = set()
    for event in events[2:-1]:
        kind = event["type"]
        if kind == "response.output_item.added":
            assert open_index is None, "one item streams at a time"
            assert event["output_index"] == len(added)
            assert event["item"]["status"] == "in_progress"
            open_index = event["output_index"]
            added[open_index] = event["item"]
            continue
        index = event["output_index"]
        assert index == open_index, f"{kind} for an item that is not open"
        item_id = added[index]["id"]
        if kind == "response.output_item.done":
            assert not any(p[0] == index for p in open_parts)
            assert event["item"]["id"] == item_id
            done[index] = event["item"]
            open_index = None
            continue
        assert event["item_id"] == item_id
        if kind == "response.content_part.added":
            open_parts.add((index, event["content_index"]))
            texts[(index, event["content_index"])] = ""
        elif kind == "response.output_text.delta":
            assert (index, event["content_index"]) in open_parts
            texts[(index, event["content_index"])] += event["delta"]
        elif kind == "response.output_text.done":
            assert event["text"] == texts[(index, event["content_index"])]
        elif kind == "response.content_part.done":
            open_parts.remove((index, event["content_index"]))
            assert event["part"]["text"] == texts[(index, event["content_index"])]
        elif kind == "response.function_call_arguments.delta":
            arguments[index] = arguments.get(index, "") + event["delta"]
        elif kind == "response.function_call_arguments.done":
            assert event["arguments"] == arguments.get(index, "")
            assert event["name"] == added[index]["name"]
        else:
            raise AssertionError(f"unexpected event {kind}")
    assert open_index is None and not open_parts
    final = events[-1]["response"]
    assert final["output"] == [done[i] for i in range(len(done))]
    return Response.model_validate(final)


# --------------------------------------------------------------------- request


def test_plain_string_input_with_instructions_and_sampling():
    chat = translate(
        {
            "model": "qwen",
            "instructions": "Answer in French.",
            "input": "Hello",
            "max_output_tokens": 64,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u-1",
            "parallel_tool_calls": False,
            "store": True,
            "metadata": {"ticket": "42"},
            "truncation": "auto",
            "include": ["message.output_text.logprobs"],
            "service_tier": "auto",
            "prompt_cache_key": "k",
            "safety_identifier": "s",
        }
    )
    assert chat == {
        "model": "qwen",
        "messages": [
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Hello"},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "parallel_tool_calls": False,
        "user": "u-1",
    }


def test_message_items_roles_and_parts():
    chat = translate(
        {
            "model": "qwen",
            "input": [
                {"role": "developer", "content": "Be brief."},
                {
                    "type": "message",
                    "role": "system",
                    "content": [{"type": "input_text", "text": "No emoji."}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is in these?"},
                        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
                        {
                            "type": "input_image",
                            "image_url": "data:image/png;base64,iVBORw0KGgo=",
                            "detail": "auto",
                        },
                        {
                            "type": "input_image",
                            "image_url": "https://example.com/dog.png",
                            "detail": "original",
                        },
                    ],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_old",
                    "status": "completed",
                    "content": [
                        {"type": "output_text", "text": "A cat", "annotations": []},
                        {"type": "output_text", "text": " and a dog.", "annotations": []},
                    ],
                },
                {"role": "user", "content": "Thanks"},
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "No emoji."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
                },
                {"type": "image_url", "image_url": {"url": "https://example.com/dog.png"}},
            ],
        },
        {"role": "assistant", "content": "A cat and a dog."},
        {"role": "user", "content": "Thanks"},
    ]


@pytest.mark.parametrize(
    ("item", "param", "words"),
    [
        (
            {"role": "user", "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}]},
            "input[0].content[0]",
            "file_id",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "input_file", "file_data": "data:application/pdf;base64,JVBE"}],
            },
            "input[0].content[0]",
            "input_file",
        ),
        ({"type": "item_reference", "id": "msg_123"}, "input[0]", "item_reference"),
        (
            {
                "role": "system",
                "content": [{"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"}],
            },
            "input[0].content[0]",
            "only in user messages",
        ),
        (
            {
                "type": "function_call_output",
                "call_id": "c1",
                "output": [{"type": "input_image", "image_url": "https://x"}],
            },
            "input[0].output[0]",
            "text only",
        ),
        (
            {
                "type": "web_search_call",
                "id": "ws_1",
                "status": "completed",
                "action": {"type": "search", "query": "q"},
            },
            "input[0]",
            "web_search_call",
        ),
    ],
)
def test_input_that_cannot_be_carried_is_refused_by_name(item, param, words):
    with pytest.raises(InvalidInput) as caught:
        responses_to_chat({"model": "qwen", "input": [item]})
    assert caught.value.param == param
    assert words in caught.value.message


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "web_search"},
        {"type": "web_search_preview"},
        {"type": "file_search", "vector_store_ids": ["vs_1"]},
        {
            "type": "computer_use_preview",
            "display_width": 1024,
            "display_height": 768,
            "environment": "browser",
        },
        {"type": "code_interpreter", "container": {"type": "auto"}},
        {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp"},
        {"type": "image_generation"},
        {"type": "custom", "name": "grammar_tool"},
    ],
)
def test_built_in_tools_are_refused_naming_the_tool(tool):
    with pytest.raises(InvalidInput) as caught:
        responses_to_chat({"model": "qwen", "input": "hi", "tools": [WEATHER_TOOL, tool]})
    assert caught.value.param == "tools[1]"
    assert tool["type"] in caught.value.message
    assert "only function tools" in caught.value.message
    assert caught.value.status == 400


def test_function_tools_and_tool_choice():
    chat = translate(
        {"model": "qwen", "input": "Weather?", "tools": [WEATHER_TOOL, TIME_TOOL], "tool_choice": "required"}
    )
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER_TOOL["parameters"],
                "strict": True,
            },
        },
        # `strict` null: none is sent (chat's non-strict default), see the module doc.
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "Local time in a city.",
                "parameters": TIME_TOOL["parameters"],
            },
        },
    ]
    assert chat["tool_choice"] == "required"


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (
            {"type": "function", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
        ),
    ],
)
def test_tool_choice_forms(choice, expected):
    chat = translate({"model": "qwen", "input": "x", "tools": [WEATHER_TOOL], "tool_choice": choice})
    assert chat["tool_choice"] == expected


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "web_search_preview"},
        {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "get_weather"}]},
        {"type": "mcp", "server_label": "x"},
        "sometimes",
    ],
)
def test_tool_choice_that_cannot_be_carried(choice):
    with pytest.raises(InvalidInput) as caught:
        responses_to_chat({"model": "qwen", "input": "x", "tools": [WEATHER_TOOL], "tool_choice": choice})
    assert caught.value.param == "tool_choice"


def test_text_format_json_schema_becomes_response_format():
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    chat = translate(
        {
            "model": "qwen",
            "input": "Alice is 30.",
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "person",
                    "schema": schema,
                    "strict": True,
                    "description": "A person",
                },
                "verbosity": "low",
            },
        }
    )
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": schema, "strict": True, "description": "A person"},
    }


def test_text_format_json_object_and_text():
    assert translate({"model": "q", "input": "x", "text": {"format": {"type": "json_object"}}})[
        "response_format"
    ] == {"type": "json_object"}
    assert "response_format" not in translate(
        {"model": "q", "input": "x", "text": {"format": {"type": "text"}}}
    )


def test_json_schema_without_schema_is_refused():
    with pytest.raises(InvalidInput) as caught:
        responses_to_chat(
            {"model": "q", "input": "x", "text": {"format": {"type": "json_schema", "name": "p"}}}
        )
    assert caught.value.param == "text.format.schema"


def test_reasoning_effort_and_stream():
    chat = translate(
        {"model": "gpt-oss", "input": "x", "reasoning": {"effort": "high", "summary": "auto"}, "stream": True}
    )
    assert chat["reasoning_effort"] == "high"
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}


def test_function_call_items_join_the_assistant_turn_and_outputs_become_tool_messages():
    chat = translate(
        {
            "model": "qwen",
            "input": [
                {"role": "user", "content": "Weather and time in Paris?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
                },
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "call_w",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                },
                {
                    "type": "function_call",
                    "call_id": "call_t",
                    "name": "get_time",
                    "arguments": '{"city":"Paris"}',
                },
                {"type": "function_call_output", "call_id": "call_w", "output": "18C, cloudy"},
                {
                    "type": "function_call_output",
                    "call_id": "call_t",
                    "output": [{"type": "input_text", "text": "14:05"}],
                },
            ],
            "tools": [WEATHER_TOOL, TIME_TOOL],
        }
    )
    assert chat["messages"] == [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_t",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"city":"Paris"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_w", "content": "18C, cloudy"},
        {"role": "tool", "tool_call_id": "call_t", "content": "14:05"},
    ]


def test_a_function_call_without_preceding_text_is_its_own_assistant_message():
    chat = translate(
        {
            "model": "qwen",
            "input": [
                {"role": "user", "content": "Weather?"},
                {"type": "function_call", "call_id": "call_w", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_w", "output": "sunny"},
            ],
        }
    )
    assert chat["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        ],
    }


def test_history_goes_between_instructions_and_new_input():
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
    ]
    chat = translate(
        {
            "model": "q",
            "instructions": "Be kind.",
            "input": "What is my name?",
            "previous_response_id": "resp_0",
        },
        history,
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Be kind."},
        *history,
        {"role": "user", "content": "What is my name?"},
    ]
    chat["messages"][1]["content"] = "changed"
    assert history[0]["content"] == "My name is Ada.", "the stored history is not mutated"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "q"}, "input"),
        ({"input": "x"}, "model"),
        ({"model": "q", "input": "x", "background": True}, "background"),
        ({"model": "q", "input": "x", "conversation": "conv_1"}, "conversation"),
        ({"model": "q", "input": "x", "prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"model": "q", "input": "x", "top_logprobs": 3}, "top_logprobs"),
        ({"model": "q", "input": 7}, "input"),
        ({"model": "q", "input": [{"role": "tool", "content": "x"}]}, "input[0]"),
        (
            {"model": "q", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        ({"model": "q", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ],
)
def test_bad_or_unsupported_requests(body, param):
    with pytest.raises(InvalidInput) as caught:
        responses_to_chat(body)
    assert caught.value.param == param


# -------------------------------------------------------------------- response


REQUEST = {
    "model": "qwen",
    "instructions": "Be brief.",
    "input": "Weather in Paris?",
    "tools": [WEATHER_TOOL],
    "tool_choice": "auto",
    "temperature": 0.3,
    "top_p": 0.8,
    "max_output_tokens": 256,
    "previous_response_id": "resp_prev",
    "text": {"format": {"type": "text"}},
    "parallel_tool_calls": True,
    "metadata": {"ticket": "42"},
    "user": "u-1",
    "reasoning": {"effort": "low"},
}


def test_text_reply_becomes_a_completed_response():
    response = chat_to_response(
        completion({"content": "It is sunny."}),
        response_id="resp_1",
        request=REQUEST,
        created_at=1700000000,
        completed_at=1700000002,
    )
    parsed = Response.model_validate(response)
    assert parsed.output_text == "It is sunny."
    assert response["status"] == "completed"
    assert response["completed_at"] == 1700000002
    assert response["incomplete_details"] is None
    [item] = response["output"]
    assert item["id"].startswith("msg_")
    assert item["role"] == "assistant" and item["status"] == "completed"
    assert item["content"] == [
        {"type": "output_text", "text": "It is sunny.", "annotations": [], "logprobs": []}
    ]
    assert response["usage"] == {
        "input_tokens": 20,
        "input_tokens_details": {"cached_tokens": 8, "cache_write_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 27,
    }
    for key in (
        "model",
        "instructions",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "max_output_tokens",
        "previous_response_id",
        "text",
        "parallel_tool_calls",
        "metadata",
        "user",
    ):
        assert response[key] == REQUEST[key], key
    assert response["reasoning"] == {"effort": "low", "summary": None}
    assert (
        response["object"] == "response"
        and response["id"] == "resp_1"
        and response["created_at"] == 1700000000
    )


def test_defaults_of_a_bare_request_satisfy_the_sdk():
    response = chat_to_response(
        completion({"content": "hi"}),
        response_id="resp_1",
        request={"model": "q", "input": "x"},
        created_at=1,
    )
    parsed = Response.model_validate(response)
    assert parsed.tools == [] and parsed.tool_choice == "auto" and parsed.parallel_tool_calls is True
    assert response["text"] == {"format": {"type": "text"}}
    assert response["metadata"] == {} and response["truncation"] == "disabled"


def test_tool_call_reply_becomes_function_call_items():
    chat = completion(
        {
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_t",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"city":"Paris"}'},
                },
            ],
        },
        finish_reason="tool_calls",
    )
    response = chat_to_response(chat, response_id="resp_1", request=REQUEST, created_at=1)
    Response.model_validate(response)
    assert response["status"] == "completed"
    message, weather, time = response["output"]
    assert message["type"] == "message"
    for item, call_id, name in ((weather, "call_w", "get_weather"), (time, "call_t", "get_time")):
        assert item["type"] == "function_call" and item["id"].startswith("fc_")
        assert item["call_id"] == call_id and item["name"] == name
        assert item["arguments"] == '{"city":"Paris"}' and item["status"] == "completed"


@pytest.mark.parametrize(
    ("finish_reason", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_cut_replies_are_incomplete(finish_reason, reason):
    response = chat_to_response(
        completion({"content": "It is sun"}, finish_reason=finish_reason),
        response_id="resp_1",
        request=REQUEST,
        created_at=1,
        completed_at=5,
    )
    Response.model_validate(response)
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": reason}
    assert response["output"][0]["status"] == "incomplete"
    assert response["completed_at"] is None


def test_refusal_and_missing_usage():
    chat = completion({"content": None, "refusal": "I can't help with that."})
    del chat["usage"]
    response = chat_to_response(chat, response_id="resp_1", request=REQUEST, created_at=1)
    Response.model_validate(response)
    assert response["output"][0]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]
    assert response["usage"] is None


def test_usage_mapping_edge_cases():
    assert responses_usage(None) is None
    assert responses_usage({"prompt_tokens": 5, "completion_tokens": 3}) == {
        "input_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 3,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 8,
    }
    # litellm reports Anthropic cache writes at the top level
    usage = responses_usage({"prompt_tokens": 5, "completion_tokens": 3, "cache_creation_input_tokens": 4})
    assert usage["input_tokens_details"]["cache_write_tokens"] == 4


# --------------------------------------------------------------------- history


def test_history_drops_instructions_and_keeps_the_assistant_turn():
    request = {
        "model": "q",
        "instructions": "Be brief.",
        "input": "Weather in Paris?",
        "tools": [WEATHER_TOOL],
    }
    chat = translate(request)
    reply = completion(
        {
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        finish_reason="tool_calls",
    )
    response = chat_to_response(reply, response_id="resp_1", request=request, created_at=1)
    history = response_to_history(chat["messages"], response)
    assert history == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
    ]
    # The tool result comes back with previous_response_id: a valid chat conversation.
    follow_up = {
        "model": "q",
        "instructions": "Now be verbose.",
        "previous_response_id": "resp_1",
        "input": [{"type": "function_call_output", "call_id": "call_w", "output": '{"temp": 18}'}],
        "tools": [WEATHER_TOOL],
    }
    chat2 = translate(follow_up, history)
    assert chat2["messages"] == [
        {"role": "system", "content": "Now be verbose."},
        *history,
        {"role": "tool", "tool_call_id": "call_w", "content": '{"temp": 18}'},
    ]
    final = chat_to_response(
        completion({"content": "18 degrees."}), response_id="resp_2", request=follow_up, created_at=2
    )
    history2 = response_to_history(chat2["messages"], final)
    assert history2[0] == {"role": "user", "content": "Weather in Paris?"}
    assert history2[-1] == {"role": "assistant", "content": "18 degrees."}
    assert len(history2) == 4


def test_history_keeps_a_system_message_that_is_not_the_instructions():
    messages = [{"role": "system", "content": "From input"}, {"role": "user", "content": "hi"}]
    response = chat_to_response(
        completion({"content": "yo"}), response_id="r", request={"model": "q"}, created_at=1
    )
    assert response_to_history(messages, response) == [*messages, {"role": "assistant", "content": "yo"}]


# ------------------------------------------------------------------- streaming


def test_text_stream_events_in_order():
    events, stream = run_stream(text_chunks("Hel", "lo", " there"), completed_at=1700000003)
    final = check_events(events)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output_text == "Hello there"
    assert final.status == "completed" and final.completed_at == 1700000003
    assert final.usage.input_tokens == 31 and final.usage.input_tokens_details.cached_tokens == 16
    assert stream.response == events[-1]["response"]
    assert events[3]["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}


def test_tool_call_stream_with_split_arguments():
    events, stream = run_stream(tool_chunks(preamble="Checking."))
    final = check_events(events)
    types = [e["type"] for e in events]
    assert types[2:] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    message, weather, time = final.output
    assert message.type == "message" and message.content[0].text == "Checking."
    assert (weather.call_id, weather.name, json.loads(weather.arguments)) == (
        "call_w",
        "get_weather",
        {"city": "Paris"},
    )
    assert (time.call_id, time.name, json.loads(time.arguments)) == ("call_t", "get_time", {"city": "Paris"})
    assert weather.status == time.status == "completed"
    added = events[8]["item"]
    assert added == {
        "id": weather.id,
        "type": "function_call",
        "status": "in_progress",
        "arguments": "",
        "call_id": "call_w",
        "name": "get_weather",
    }
    # What the stream produced continues a conversation like a whole reply would.
    history = response_to_history([{"role": "user", "content": "Weather and time?"}], stream.response)
    assert history[-1]["tool_calls"][1]["function"] == {"name": "get_time", "arguments": '{"city": "Paris"}'}


def test_calls_that_share_index_zero_are_told_apart_by_id():
    chunks = [
        chunk(
            {
                "role": "assistant",
                "tool_calls": [
                    {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
                ]
            }
        ),
        chunk({}, "tool_calls"),
    ]
    events, _ = run_stream(chunks)
    final = check_events(events)
    assert [(i.call_id, i.name) for i in final.output] == [("a", "f"), ("b", "g")]


def test_refusal_stream_uses_a_refusal_part():
    chunks = [
        chunk({"role": "assistant", "content": None, "refusal": ""}),
        chunk({"refusal": "I can't "}),
        chunk({"refusal": "help with that."}),
        chunk({}, "stop"),
    ]
    events, _ = run_stream(chunks)
    for event in events:
        STREAM_EVENT.validate_python(event)
    assert [e["type"] for e in events[2:]] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.refusal.delta",
        "response.refusal.delta",
        "response.refusal.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = Response.model_validate(events[-1]["response"])
    assert final.output[0].content[0].refusal == "I can't help with that."


def test_late_fragments_of_an_interleaving_upstream_reach_the_final_response():
    chunks = [
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "a",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"x": '},
                    }
                ]
            }
        ),
        chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
        chunk({}, "tool_calls"),
    ]
    events, stream = run_stream(chunks)
    for event in events:
        STREAM_EVENT.validate_python(event)
    assert [e["type"] for e in events].count("response.function_call_arguments.delta") == 2
    assert stream.response["output"][0]["arguments"] == '{"x": 1}'


def test_length_stop_ends_with_response_incomplete():
    events, stream = run_stream(text_chunks("It was a dark and", finish_reason="length"), completed_at=9)
    final = check_events(events)
    assert events[-1]["type"] == "response.incomplete"
    assert final.status == "incomplete"
    assert final.incomplete_details.reason == "max_output_tokens"
    assert final.output[0].status == "incomplete"
    assert final.completed_at is None
    assert events[-2]["item"]["status"] == "incomplete"


def test_usage_fallback_when_the_stream_carries_none():
    chunks = [c for c in text_chunks("hi") if c["choices"]]
    events, _ = run_stream(chunks)
    assert events[-1]["response"]["usage"] is None
    estimate = {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}
    events, _ = run_stream(chunks, usage=estimate)
    assert check_events(events).usage.total_tokens == 10
    # What the upstream reported wins over an estimate.
    events, _ = run_stream(text_chunks("hi"), usage=estimate)
    assert check_events(events).usage.total_tokens == 43


def test_empty_stream_completes_with_no_output():
    events, _ = run_stream([chunk({"role": "assistant", "content": ""}), chunk({}, "stop")])
    final = check_events(events)
    assert final.output == [] and final.status == "completed"


def test_request_fields_are_echoed_in_every_lifecycle_event():
    events, _ = run_stream(text_chunks("ok"), request=REQUEST)
    for event in (events[0], events[1], events[-1]):
        response = event["response"]
        assert response["tools"] == [WEATHER_TOOL] and response["instructions"] == "Be brief."
        assert response["model"] == "qwen" and response["previous_response_id"] == "resp_prev"


def test_failure_mid_stream():
    stream = ResponsesStream("resp_1", REQUEST, 1)
    events = stream.start()
    for c in text_chunks("partial answer")[:2]:
        events += stream.feed(c)
    events += stream.error("upstream went away", code="upstream_error")
    events += stream.fail("upstream went away", "upstream_error")
    assert stream.finish() == [] and stream.fail("again") == [] and stream.feed(chunk({"content": "x"})) == []
    for event in events:
        STREAM_EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-2] == {
        "type": "error",
        "sequence_number": events[-2]["sequence_number"],
        "code": "upstream_error",
        "message": "upstream went away",
        "param": None,
    }
    failed = events[-1]
    assert failed["type"] == "response.failed"
    response = Response.model_validate(failed["response"])
    assert response.status == "failed"
    assert response.error.code == "server_error" and response.error.message == "upstream went away"
    assert response.output[0].status == "incomplete"
    assert stream.response["status"] == "failed"


def test_failure_keeps_a_code_the_sdk_knows():
    stream = ResponsesStream("resp_1", {"model": "q"}, 1)
    stream.start()
    [event] = stream.fail("slow down", "rate_limit_exceeded")
    assert Response.model_validate(event["response"]).error.code == "rate_limit_exceeded"


def test_sse_framing():
    event = {"type": "response.output_text.delta", "sequence_number": 4, "delta": "é\n"}
    raw = sse(event)
    assert raw.startswith(b"event: response.output_text.delta\ndata: ")
    assert raw.endswith(b"\n\n")
    assert json.loads(raw.split(b"data: ", 1)[1]) == event
    assert raw.count(b"\n") == 3, "newlines inside the data are escaped"


# ------------------------------------------------------- through the openai SDK


class FakeGateway:
    """What the gateway will do, minus HTTP: translate, ask a scripted upstream,
    translate back, keep history for previous_response_id."""

    def __init__(self, replies: list):
        self.replies = list(replies)  # a chat completion dict, or a list of chunks
        self.chat_bodies: list[dict] = []
        self.histories: dict[str, list[dict]] = {}
        self.count = 0

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        assert request.url.path == "/v1/responses"
        history = (
            self.histories.get(body["previous_response_id"]) if body.get("previous_response_id") else None
        )
        chat = valid_chat(responses_to_chat(body, history))
        self.chat_bodies.append(chat)
        self.count += 1
        response_id = f"resp_{self.count}"
        reply = self.replies.pop(0)
        if body.get("stream"):
            stream = ResponsesStream(response_id, body, 1700000000)
            events = stream.start()
            for c in reply:
                events += stream.feed(c)
            events += stream.finish(completed_at=1700000001)
            assert stream.response is not None
            response = stream.response
            payload = b"".join(sse(e) for e in events)
            http = httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=payload)
        else:
            response = chat_to_response(reply, response_id=response_id, request=body, created_at=1700000000)
            http = httpx2.Response(200, json=response)
        self.histories[response_id] = response_to_history(chat["messages"], response)
        return http

    def client(self) -> openai.OpenAI:
        transport = httpx2.MockTransport(self.handle)
        return openai.OpenAI(
            api_key="sk-test",
            base_url="http://gateway.test/v1",
            http_client=httpx2.Client(transport=transport),
            max_retries=0,
        )


def test_sdk_create_with_a_tool_round_trip():
    gateway = FakeGateway(
        [
            completion(
                {
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_w",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                finish_reason="tool_calls",
            ),
            completion({"content": "18C and cloudy in Paris."}),
        ]
    )
    client = gateway.client()
    first = client.responses.create(
        model="qwen", instructions="Be brief.", input="Weather in Paris?", tools=[WEATHER_TOOL]
    )
    [call] = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    second = client.responses.create(
        model="qwen",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 18}'}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "18C and cloudy in Paris."
    assert gateway.chat_bodies[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_w", "content": '{"temp": 18}'},
    ]


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_sdk_parse_with_a_pydantic_text_format():
    gateway = FakeGateway([completion({"content": '{"name": "Alice", "age": 30}'})])
    parsed = gateway.client().responses.parse(model="qwen", input="Alice is 30.", text_format=Person)
    assert parsed.output_parsed == Person(name="Alice", age=30)
    response_format = gateway.chat_bodies[0]["response_format"]
    assert response_format["type"] == "json_schema" and response_format["json_schema"]["name"] == "Person"
    assert response_format["json_schema"]["strict"] is True
    assert set(response_format["json_schema"]["schema"]["properties"]) == {"name", "age"}


def test_sdk_stream_accumulates_text():
    gateway = FakeGateway([text_chunks("Bonjour", ", ", "Ada", "!")])
    with gateway.client().responses.stream(model="qwen", input="Say hi to Ada in French") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Bonjour", ", ", "Ada", "!"]
    assert final.output_text == "Bonjour, Ada!"
    assert final.usage.output_tokens == 12
    assert gateway.chat_bodies[0]["stream_options"] == {"include_usage": True}


def test_sdk_stream_accumulates_tool_calls_and_continues_the_conversation():
    gateway = FakeGateway([tool_chunks(), text_chunks("Sunny, ", "14:05.")])
    client = gateway.client()
    with client.responses.stream(
        model="qwen", input="Weather and time in Paris?", tools=[WEATHER_TOOL, TIME_TOOL]
    ) as stream:
        snapshots = [e.snapshot for e in stream if e.type == "response.function_call_arguments.delta"]
        first = stream.get_final_response()
    assert snapshots[-1] == '{"city": "Paris"}'
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.call_id, c.name) for c in calls] == [("call_w", "get_weather"), ("call_t", "get_time")]
    with client.responses.stream(
        model="qwen",
        previous_response_id=first.id,
        input=[
            {"type": "function_call_output", "call_id": "call_w", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_t", "output": "14:05"},
        ],
        tools=[WEATHER_TOOL, TIME_TOOL],
    ) as stream:
        second = stream.get_final_response()
    assert second.output_text == "Sunny, 14:05."
    roles = [m["role"] for m in gateway.chat_bodies[1]["messages"]]
    assert roles == ["user", "assistant", "tool", "tool"]


def test_sdk_stream_of_a_length_stop():
    gateway = FakeGateway([text_chunks("Once upon", finish_reason="length")])
    with gateway.client().responses.stream(model="qwen", input="Tell a story", max_output_tokens=2) as stream:
        kinds = [e.type for e in stream]
    assert kinds[-1] == "response.incomplete"
    assert gateway.chat_bodies[0]["max_tokens"] == 2


def test_stream_must_be_a_boolean():
    with pytest.raises(InvalidInput, match="stream"):
        responses_to_chat({"model": "m", "input": "hi", "stream": "yes"})
