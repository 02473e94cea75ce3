"""Token counts match what OpenAI bills, offline, for chat, tools, completions and embeddings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from llmops import tokens

# The examples and the prompt_tokens the OpenAI API reported for them, from OpenAI's
# cookbook "How to count tokens with tiktoken".
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
COOKBOOK_TOOL_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_chat_messages_count_as_the_openai_api_reports(model, expected):
    assert tokens.count_messages(COOKBOOK_MESSAGES, model) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)],
)
def test_tool_definitions_count_as_the_openai_api_reports(model, expected):
    assert tokens.count_messages(COOKBOOK_TOOL_MESSAGES, model, tools=COOKBOOK_TOOLS) == expected
    body = {"model": model, "messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}
    assert tokens.count_prompt(body) == expected


def test_chat_overhead_is_three_per_message_one_per_name_three_for_the_reply():
    model = "gpt-4o"
    text = "hello world"
    words = tokens.count_text(text, model)
    role = tokens.count_text("user", model)
    assert tokens.count_messages([{"role": "user", "content": text}], model) == 3 + role + words + 3
    named = tokens.count_messages([{"role": "user", "name": "bob", "content": text}], model)
    assert named == 3 + role + words + tokens.count_text("bob", model) + 1 + 3


def test_text_counts_use_the_models_encoding():
    text = "Tokenization differs between encodings: naïve café 😀 " * 5
    import tiktoken

    assert tokens.count_text(text, "gpt-4o") == len(tiktoken.get_encoding("o200k_base").encode(text))
    assert tokens.count_text(text, "gpt-4") == len(tiktoken.get_encoding("cl100k_base").encode(text))
    assert tokens.count_text("", "gpt-4o") == 0
    # A special-token string in user text is counted as text, not refused.
    assert tokens.count_text("<|endoftext|>", "gpt-4o") > 1


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("openai/gpt-4o-mini", "o200k_base"),
        ("azure/gpt-4.1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("my-company-o1-proxy", "o200k_base"),
        ("ft:gpt-4o-mini:acme::abc123", "o200k_base"),
        ("gpt-5-nano", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-sonnet-4-5", "cl100k_base"),
        ("meta-llama/Llama-3.1-8B-Instruct", "cl100k_base"),
        ("tiny-llama", "cl100k_base"),
        (None, "cl100k_base"),
        ("text-davinci-003", "p50k_base"),
        ("davinci", "p50k_base"),  # r50k_base is not shipped offline: its nearest sibling
    ],
)
def test_unknown_models_fall_back_to_a_documented_encoding(model, encoding):
    assert tokens.encoding_name_for(model) == encoding
    assert tokens.count_text("some words to count", model) > 0


def test_multimodal_content_parts_and_tool_calls_are_counted():
    model = "gpt-4o"
    text_only = tokens.count_messages([{"role": "user", "content": "describe this"}], model)
    with_low_image = tokens.count_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe this"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                ],
            }
        ],
        model,
    )
    assert with_low_image == text_only + tokens.IMAGE_TOKENS_LOW
    with_call = tokens.count_messages(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_current_weather", "arguments": '{"location": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        ],
        model,
    )
    arguments = tokens.count_text('{"location": "Paris"}', model)
    assert with_call > arguments + 2 * 3 + 3


def test_completion_and_embedding_bodies():
    model = "gpt-3.5-turbo-instruct"
    assert tokens.count_prompt({"model": model, "prompt": "Say this is a test"}) == tokens.count_text(
        "Say this is a test", model
    )
    assert tokens.count_prompt({"model": model, "prompt": ["one two", "three"]}) == tokens.count_text(
        "one two", model
    ) + tokens.count_text("three", model)
    assert tokens.count_prompt({"model": model, "prompt": [1, 2, 3, 4]}) == 4  # already token ids
    assert tokens.count_prompt({"model": model, "prompt": [[1, 2], [3]]}) == 3
    assert tokens.count_prompt(
        {"model": "text-embedding-3-small", "input": ["a b", "c"]}
    ) == tokens.count_text("a b", "text-embedding-3-small") + tokens.count_text("c", "text-embedding-3-small")
    assert tokens.count_prompt({"model": model}) == 0


def test_counts_work_with_no_network_and_no_litellm_import(tmp_path):
    """A fresh process, with every download sent to a dead proxy, still counts, and
    never imports litellm (seconds of start-up on the hot path)."""
    script = textwrap.dedent(
        """
        import sys
        from llmops import tokens
        assert tokens.count_text("hello there", "gpt-4o") == 2
        assert tokens.count_text("hello there", "gpt-4") == 2
        assert tokens.count_text("hello there", "text-davinci-003") == 2
        assert "litellm" not in sys.modules, "tokens imported litellm"
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
    env.update(
        HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
