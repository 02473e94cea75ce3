"""Anthropic Messages API <-> chat completions: llmops.gateway.translate.messages.

Shapes are checked against the anthropic SDK's pydantic types (`Message`, each
streamed event against `RawMessageStreamEvent`) and the chat bodies against the
openai SDK's chat-completions params; the whole path is then driven through the
anthropic SDK itself (`messages.create/stream/count_tokens` over a mock
transport), so its SSE parser and stream accumulator see exactly our bytes.
"""

from __future__ import annotations

import json

import httpx2
import pytest

anthropic = pytest.importorskip("anthropic")

from anthropic.types import Message, RawMessageStreamEvent  # noqa: E402
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming  # noqa: E402
from anthropic.types.shared import ErrorResponse  # noqa: E402
from pydantic import TypeAdapter  # noqa: E402

from llmops.errors import InvalidInput  # noqa: E402
from llmops.gateway.translate.messages import (  # noqa: E402
    MessagesStream,
    anthropic_error,
    anthropic_usage,
    chat_to_message,
    count_tokens_body,
    messages_to_chat,
    sse,
)
from llmops.tokens import IMAGE_TOKENS_DEFAULT, count_prompt  # noqa: E402
from tests.support.chat_chunks import chunk, drain, valid_chat  # noqa: E402
from tests.support.chat_chunks import completion as chat_completion  # noqa: E402
from tests.support.chat_chunks import text_chunks as chat_text_chunks  # noqa: E402
from tests.support.chat_chunks import tool_chunks as chat_tool_chunks  # noqa: E402

MESSAGES_BODY = TypeAdapter(MessageCreateParamsNonStreaming)
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME_TOOL = {
    "name": "get_time",
    "description": "Local time in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "cache_control": {"type": "ephemeral"},
}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def translate(body: dict) -> dict:
    drain(MESSAGES_BODY.validate_python({k: v for k, v in body.items() if k != "stream"}))
    return valid_chat(messages_to_chat(body))


def completion(message: dict, finish_reason: str = "stop", usage: dict | None = None, **choice) -> dict:
    default = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27,
               "prompt_tokens_details": {"cached_tokens": 8}}
    return chat_completion(message, finish_reason, usage or default, **choice)


USAGE = {
    "prompt_tokens": 31,
    "completion_tokens": 12,
    "total_tokens": 43,
    "prompt_tokens_details": {"cached_tokens": 16},
}


def text_chunks(*pieces: str, finish_reason: str = "stop", **choice) -> list[dict]:
    return chat_text_chunks(pieces, USAGE, finish_reason, **choice)


def tool_chunks(preamble: str | None = "Let me check.") -> list[dict]:
    return chat_tool_chunks(USAGE, preamble, opening_content="")


def run_stream(chunks: list[dict], **finish) -> list[tuple[str, dict]]:
    stream = MessagesStream("msg_1", "claude-via-qwen", stop_sequences=finish.pop("stop_sequences", None))
    events = stream.start()
    for c in chunks:
        events += stream.feed(c)
    events += stream.finish(**finish)
    return events


def check_events(events: list[tuple[str, dict]]) -> dict:
    """The rules a Messages stream keeps; returns the message a client would build."""
    for name, data in events:
        assert name == data["type"], "the SSE event name is the data's type"
        STREAM_EVENT.validate_python(data)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("message_start") == names.count("message_delta") == names.count("message_stop") == 1
    message = json.loads(json.dumps(events[0][1]["message"]))
    assert message["content"] == [] and message["stop_reason"] is None
    open_index = None
    partial: dict[int, str] = {}
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None, "one block streams at a time"
            assert data["index"] == len(message["content"])
            open_index = data["index"]
            message["content"].append(dict(data["content_block"]))
        elif name == "content_block_delta":
            assert data["index"] == open_index
            block, delta = message["content"][open_index], data["delta"]
            if delta["type"] == "text_delta":
                assert block["type"] == "text"
                block["text"] += delta["text"]
            else:
                assert delta["type"] == "input_json_delta" and block["type"] == "tool_use"
                partial[open_index] = partial.get(open_index, "") + delta["partial_json"]
        elif name == "content_block_stop":
            assert data["index"] == open_index
            if open_index in partial:
                message["content"][open_index]["input"] = json.loads(partial[open_index])
            open_index = None
        else:
            raise AssertionError(f"unexpected event {name}")
    assert open_index is None
    delta = events[-2][1]
    message["stop_reason"] = delta["delta"]["stop_reason"]
    message["stop_sequence"] = delta["delta"]["stop_sequence"]
    message["usage"].update(delta["usage"])
    Message.model_validate(message)
    return message


# --------------------------------------------------------------------- request


def test_basic_request():
    chat = translate(
        {
            "model": "claude-via-qwen",
            "max_tokens": 512,
            "system": "You are terse.",
            "messages": [{"role": "user", "content": "Hello"}],
            "stop_sequences": ["\n\nHuman:", "END"],
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "metadata": {"user_id": "user-7"},
            "service_tier": "auto",
            "thinking": {"type": "disabled"},
        }
    )
    assert chat == {
        "model": "claude-via-qwen",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hello"}],
        "max_tokens": 512,
        "stop": ["\n\nHuman:", "END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "user": "user-7",
    }


def test_system_blocks_are_joined_and_cache_control_ignored():
    chat = translate(
        {
            "model": "m",
            "max_tokens": 10,
            "system": [
                {"type": "text", "text": "You are Claude Code."},
                {"type": "text", "text": "Project rules...", "cache_control": {"type": "ephemeral"}},
            ],
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
                }
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "You are Claude Code.\n\nProject rules..."},
        {"role": "user", "content": "hi"},
    ]


def test_images_become_image_url_parts():
    chat = translate(
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                        {"type": "text", "text": "Compare them."},
                    ],
                }
            ],
        }
    )
    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "Compare them."},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("block", "param", "words"),
    [
        (
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}},
            "messages[0].content[0]",
            "document",
        ),
        (
            {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
            "messages[0].content[0].source",
            "'file'",
        ),
        (
            {
                "type": "search_result",
                "source": "https://x",
                "title": "t",
                "content": [{"type": "text", "text": "x"}],
            },
            "messages[0].content[0]",
            "search_result",
        ),
        (
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
                ],
            },
            "messages[0].content[0].content[0]",
            "text only",
        ),
    ],
)
def test_user_blocks_that_cannot_be_carried(block, param, words):
    with pytest.raises(InvalidInput) as caught:
        messages_to_chat({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [block]}]})
    assert caught.value.param == param
    assert words in caught.value.message


def test_tool_use_and_tool_result_round_trip():
    chat = translate(
        {
            "model": "m",
            "max_tokens": 100,
            "tools": [WEATHER_TOOL, TIME_TOOL],
            "messages": [
                {"role": "user", "content": "Weather and time in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "The user wants...", "signature": "sig"},
                        {"type": "text", "text": "Let me check."},
                        {
                            "type": "tool_use",
                            "id": "toolu_w",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                        {"type": "tool_use", "id": "toolu_t", "name": "get_time", "input": {"city": "Paris"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_w", "content": "18C, cloudy"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_t",
                            "content": [
                                {"type": "text", "text": "clock"},
                                {"type": "text", "text": "unavailable"},
                            ],
                            "is_error": True,
                        },
                        {"type": "text", "text": "Summarise please."},
                    ],
                },
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "user", "content": "Weather and time in Paris?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_t",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"city": "Paris"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_w", "content": "18C, cloudy"},
        {"role": "tool", "tool_call_id": "toolu_t", "content": "Error: clock\nunavailable"},
        {"role": "user", "content": "Summarise please."},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]},
        }
        for t in (WEATHER_TOOL, TIME_TOOL)
    ]


def test_tool_only_turns_and_empty_results():
    chat = translate(
        {
            "model": "m",
            "max_tokens": 100,
            "messages": [
                {"role": "user", "content": "Ping?"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "ping", "input": {}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
            ],
        }
    )
    assert chat["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "ping", "arguments": "{}"}}
        ],
    }
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "toolu_1", "content": ""}
    assert len(chat["messages"]) == 3, "no empty user message after the tool result"


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "bash_20250124", "name": "bash"},
        {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        {"type": "computer_20250124", "name": "computer", "display_width_px": 1024, "display_height_px": 768},
    ],
)
def test_server_tools_are_refused_naming_the_tool(tool):
    with pytest.raises(InvalidInput) as caught:
        messages_to_chat(
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tools": [WEATHER_TOOL, tool],
            }
        )
    assert caught.value.param == "tools[1]"
    assert tool["name"] in caught.value.message and tool["type"] in caught.value.message


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"type": "auto", "disable_parallel_tool_use": True},
            {"tool_choice": "auto", "parallel_tool_calls": False},
        ),
    ],
)
def test_tool_choice(choice, expected):
    chat = translate(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": choice,
        }
    )
    assert {k: chat[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}]},
            "max_tokens",
            "`max_tokens` is required",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            "thinking",
            "extended thinking is not available on a translated model",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "thinking": {"type": "adaptive"},
            },
            "thinking",
            "extended thinking is not available on a translated model",
        ),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages", "non-empty"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model", "required"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages[0].role",
            "system",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "tool_choice": {"type": "maybe"},
            },
            "tool_choice",
            "maybe",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}],
            },
            "mcp_servers",
            "MCP",
        ),
    ],
)
def test_bad_or_unsupported_requests(body, param, message):
    with pytest.raises(InvalidInput) as caught:
        messages_to_chat(body)
    assert caught.value.param == param
    assert message in caught.value.message


def test_stream_and_structured_output():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    chat = translate(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "low"},
        }
    )
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }


# -------------------------------------------------------------------- response


def test_text_reply_becomes_a_message():
    message = chat_to_message(completion({"content": "Hello!"}), message_id="msg_1", model="claude-via-qwen")
    parsed = Message.model_validate(message)
    assert parsed.content[0].text == "Hello!"
    assert message == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-via-qwen",
        "content": [{"type": "text", "text": "Hello!"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        # prompt 20 of which 8 cached: Anthropic counts the cached part apart.
        "usage": {
            "input_tokens": 12,
            "output_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 8,
        },
    }


def test_tool_call_reply_becomes_tool_use_blocks():
    chat = completion(
        {
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {"id": "", "type": "function", "function": {"name": "ping", "arguments": ""}},
                {
                    "id": "call_x",
                    "type": "function",
                    "function": {"name": "broken", "arguments": '{"city": "Par'},
                },
                {"id": "call_y", "type": "function", "function": {"name": "listy", "arguments": "[1, 2]"}},
            ],
        },
        finish_reason="tool_calls",
    )
    message = chat_to_message(chat, message_id="msg_1", model="m")
    Message.model_validate(message)
    text, weather, ping, broken, listy = message["content"]
    assert text == {"type": "text", "text": "Checking."}
    assert weather == {"type": "tool_use", "id": "call_w", "name": "get_weather", "input": {"city": "Paris"}}
    assert ping["id"].startswith("toolu_") and len(ping["id"]) > len("toolu_") and ping["input"] == {}
    assert broken["input"] == {"_raw": '{"city": "Par'}
    assert listy["input"] == {"_raw": "[1, 2]"}
    assert message["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("finish_reason", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_stop_reasons(finish_reason, stop_reason):
    chat = completion({"content": "x"}, finish_reason="stop")
    chat["choices"][0]["finish_reason"] = finish_reason
    message = chat_to_message(chat, message_id="msg_1", model="m")
    Message.model_validate(message)
    assert message["stop_reason"] == stop_reason and message["stop_sequence"] is None


def test_stop_sequence_reported_when_vllm_says_which_matched():
    chat = completion({"content": "Once upon a time"}, stop_reason="END")
    message = chat_to_message(chat, message_id="msg_1", model="m", stop_sequences=["END", "STOP"])
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "END")
    # An end-of-sequence token id, or a stop string the client did not send, is a plain end_turn.
    for matched in (151645, "<|im_end|>"):
        chat = completion({"content": "x"}, stop_reason=matched)
        message = chat_to_message(chat, message_id="msg_1", model="m", stop_sequences=["END"])
        assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)


def test_usage_mapping():
    assert anthropic_usage(None) == {
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    # litellm's view of an Anthropic upstream: prompt tokens include cache reads and writes
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 60},
        "cache_creation_input_tokens": 30,
    }
    assert anthropic_usage(usage) == {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 30,
        "cache_read_input_tokens": 60,
    }
    chat = completion({"content": "x"})
    del chat["usage"]
    assert Message.model_validate(chat_to_message(chat, message_id="m", model="m")).usage.input_tokens == 0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (409, "invalid_request_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_anthropic_error(status, kind):
    body = anthropic_error(status, "something went wrong")
    assert body == {"type": "error", "error": {"type": kind, "message": "something went wrong"}}
    if kind != "request_too_large":  # documented by Anthropic, absent from the SDK's union
        ErrorResponse.model_validate(body)


# ------------------------------------------------------------------ count_tokens


def test_count_tokens_body_counts_what_would_be_sent():
    body = {
        "model": "claude-via-qwen",
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}],
            },
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": {"type": "auto"},
    }
    chat = count_tokens_body(body)
    assert set(chat) == {"model", "messages", "tools"}, "max_tokens is not needed to count"
    sent = messages_to_chat({**body, "max_tokens": 100})
    assert chat["messages"] == sent["messages"] and chat["tools"] == sent["tools"]
    with_tools = count_prompt(chat)
    without_tools = count_prompt({k: v for k, v in chat.items() if k != "tools"})
    assert with_tools > without_tools > 0, "tool definitions are counted"
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG * 50}}
    with_image = {
        **body,
        "messages": [{"role": "user", "content": [image, {"type": "text", "text": "Weather in Paris?"}]}],
    }
    plain = {**body, "messages": [{"role": "user", "content": "Weather in Paris?"}]}
    difference = count_prompt(count_tokens_body(with_image)) - count_prompt(count_tokens_body(plain))
    assert difference == IMAGE_TOKENS_DEFAULT, "an image costs its flat rate, not its base64 length"


# ------------------------------------------------------------------- streaming


def test_text_stream_events_in_order():
    events = run_stream(text_chunks("Hel", "lo", "!"))
    message = check_events(events)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert message["content"] == [{"type": "text", "text": "Hello!"}]
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "output_tokens": 12,
            "input_tokens": 15,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 16,
        },
    }


def test_tool_call_stream_with_split_arguments():
    events = run_stream(tool_chunks())
    message = check_events(events)
    assert [(name, data.get("index")) for name, data in events if name.startswith("content_block_s")] == [
        ("content_block_start", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_stop", 2),
    ]
    assert events[4][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_w",
        "name": "get_weather",
        "input": {},
    }
    assert message["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "call_w", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_t", "name": "get_time", "input": {"city": "Paris"}},
    ]
    assert message["stop_reason"] == "tool_use"


def test_tool_call_without_id_or_arguments():
    chunks = [
        chunk(
            {
                "role": "assistant",
                "tool_calls": [{"index": 0, "type": "function", "function": {"name": "ping"}}],
            }
        ),
        chunk({}, "tool_calls"),
    ]
    events = run_stream(chunks)
    message = check_events(events)
    [block] = message["content"]
    assert block["id"].startswith("toolu_") and block["input"] == {} and block["name"] == "ping"


def test_length_stop_and_stop_sequence():
    message = check_events(run_stream(text_chunks("It was a dark", finish_reason="length")))
    assert message["stop_reason"] == "max_tokens"
    message = check_events(run_stream(text_chunks("One, two", stop_reason="THREE"), stop_sequences=["THREE"]))
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "THREE")


def test_usage_when_the_stream_carries_none():
    chunks = [c for c in text_chunks("hi") if c["choices"]]
    events = run_stream(chunks)
    check_events(events)
    assert events[-2][1]["usage"] == {"output_tokens": 0}, "input tokens are not invented"
    events = run_stream(chunks, usage={"prompt_tokens": 9, "completion_tokens": 1})
    assert events[-2][1]["usage"]["input_tokens"] == 9 and events[-2][1]["usage"]["output_tokens"] == 1


def test_input_token_estimate_in_message_start():
    stream = MessagesStream("msg_1", "m", input_tokens=42)
    [(_, start)] = stream.start()
    assert start["message"]["usage"]["input_tokens"] == 42
    STREAM_EVENT.validate_python(start)


def test_failure_ping_and_framing():
    stream = MessagesStream("msg_1", "m")
    events = stream.start() + stream.feed(text_chunks("partial")[1]) + stream.ping()
    events += stream.fail("overloaded_error", "the upstream is overloaded")
    assert stream.finish() == [] and stream.fail("api_error", "again") == []
    # ping and error are handled by the SDK's SSE reader, outside RawMessageStreamEvent.
    for _, data in events[:-2]:
        STREAM_EVENT.validate_python(data)
    ErrorResponse.model_validate(events[-1][1])
    assert events[-2] == ("ping", {"type": "ping"})
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "the upstream is overloaded"}},
    )
    raw = sse(*events[-1])
    assert raw.startswith(b"event: error\ndata: ") and raw.endswith(b"\n\n")
    assert json.loads(raw.split(b"data: ", 1)[1]) == events[-1][1]


# ---------------------------------------------------- through the anthropic SDK


class FakeGateway:
    """What the gateway will do, minus HTTP: translate, ask a scripted upstream,
    translate back."""

    def __init__(self, replies: list):
        self.replies = list(
            replies
        )  # a chat completion dict, a list of chunks, or an (status, message) error
        self.chat_bodies: list[dict] = []

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        if request.url.path == "/v1/messages/count_tokens":
            return httpx2.Response(200, json={"input_tokens": count_prompt(count_tokens_body(body))})
        assert request.url.path == "/v1/messages"
        chat = valid_chat(messages_to_chat(body))
        self.chat_bodies.append(chat)
        reply = self.replies.pop(0)
        if isinstance(reply, tuple):
            status, text = reply
            return httpx2.Response(status, json=anthropic_error(status, text))
        if body.get("stream"):
            stream = MessagesStream("msg_1", body["model"], stop_sequences=body.get("stop_sequences"))
            events = stream.start() + stream.ping()
            broken = reply and reply[-1] == "BREAK"
            for c in reply[:-1] if broken else reply:
                events += stream.feed(c)
            events += stream.fail("overloaded_error", "upstream dropped") if broken else stream.finish()
            payload = b"".join(sse(name, data) for name, data in events)
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=payload)
        message = chat_to_message(
            reply, message_id="msg_1", model=body["model"], stop_sequences=body.get("stop_sequences")
        )
        return httpx2.Response(200, json=message)

    def client(self):
        transport = httpx2.MockTransport(self.handle)
        return anthropic.Anthropic(
            api_key="sk-ant-test",
            base_url="http://gateway.test",
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
            completion({"content": "18C and cloudy."}),
        ]
    )
    client = gateway.client()
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.messages.create(
        model="claude-via-qwen", max_tokens=100, messages=[question], tools=[WEATHER_TOOL]
    )
    assert first.stop_reason == "tool_use"
    [tool_use] = first.content
    assert (tool_use.name, tool_use.input) == ("get_weather", {"city": "Paris"})
    second = client.messages.create(
        model="claude-via-qwen",
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {
                "role": "assistant",
                "content": [block.model_dump(exclude_none=True) for block in first.content],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C, cloudy"}],
            },
        ],
    )
    assert second.content[0].text == "18C and cloudy." and second.stop_reason == "end_turn"
    assert gateway.chat_bodies[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_w", "content": "18C, cloudy"},
    ]


def test_sdk_stream_accumulates_text_and_usage():
    gateway = FakeGateway([text_chunks("Bonjour", ", ", "Ada", "!")])
    with gateway.client().messages.stream(
        model="claude-via-qwen", max_tokens=50, messages=[{"role": "user", "content": "Say hi"}]
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["Bonjour", ", ", "Ada", "!"]
    assert final.content[0].text == "Bonjour, Ada!"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (
        15,
        12,
        16,
    )


def test_sdk_stream_accumulates_tool_use():
    gateway = FakeGateway([tool_chunks()])
    with gateway.client().messages.stream(
        model="claude-via-qwen",
        max_tokens=50,
        messages=[{"role": "user", "content": "Weather and time in Paris?"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert [(b.id, b.name, b.input) for b in final.content[1:]] == [
        ("call_w", "get_weather", {"city": "Paris"}),
        ("call_t", "get_time", {"city": "Paris"}),
    ]
    assert final.stop_reason == "tool_use"


def test_sdk_count_tokens():
    gateway = FakeGateway([])
    counted = gateway.client().messages.count_tokens(
        model="claude-via-qwen", messages=[{"role": "user", "content": "Hello there"}], tools=[WEATHER_TOOL]
    )
    assert counted.input_tokens == count_prompt(
        {
            "model": "claude-via-qwen",
            "messages": [{"role": "user", "content": "Hello there"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": WEATHER_TOOL["description"],
                        "parameters": WEATHER_TOOL["input_schema"],
                    },
                }
            ],
        }
    )


def test_sdk_sees_errors_as_anthropic_errors():
    gateway = FakeGateway([(429, "slow down"), text_chunks("partial") + ["BREAK"]])
    client = gateway.client()
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            for _ in stream:
                pass
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "upstream dropped"}


def test_stream_must_be_a_boolean():
    with pytest.raises(InvalidInput, match="stream"):
        messages_to_chat({"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}],
                          "stream": "yes"})
