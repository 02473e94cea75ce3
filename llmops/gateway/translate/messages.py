"""Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) over a
chat-completions upstream.

`messages_to_chat` turns a Messages request into a chat body; `chat_to_message`
turns the chat reply into a Message object; `MessagesStream` turns streamed
chat.completion.chunk objects into Messages streaming events (`(event name, data)`
pairs); `count_tokens_body` gives the chat body whose prompt tokens answer
count_tokens; `anthropic_error` gives Anthropic's error body for an HTTP status.

What the translated path cannot carry (the request is refused with a 400 naming
the field, rather than half-served):

- extended thinking (`thinking` other than `{"type": "disabled"}`);
- `document`, `search_result`, server-tool and container blocks, images given by
  `file` source, and images inside `tool_result` (chat tool messages hold text
  only);
- server tools (bash, text_editor, computer, web_search, web_fetch,
  code_execution, memory, tool_search...) and `mcp_servers`: only custom tools
  (name, description, input_schema) reach a chat model.

Accepted but not applied: `cache_control` anywhere (no prompt caching is asked
of the upstream), `service_tier`, `container`, `inference_geo`, `speed`,
`output_config.effort`, tools' `strict`/`input_examples`. `thinking` and
`redacted_thinking` blocks in earlier assistant turns are dropped (a chat model
cannot read them). A final assistant message (a prefill) is sent as an ordinary
assistant message: a chat model starts a new turn instead of continuing it.
`stop_sequence` is reported only when the upstream says which stop string matched
(vLLM's `stop_reason`); otherwise a stop is reported as `end_turn`.

Usage: chat `prompt_tokens` include cached tokens; Anthropic's `input_tokens` do
not, so `input_tokens = prompt_tokens - cached - cache writes` and the cached part
goes to `cache_read_input_tokens`. A stream starts before the upstream reports
usage, so `message_start` carries `input_tokens` 0 (or the gateway's estimate)
and the real figures arrive in `message_delta.usage`.

Streaming: content blocks are opened and closed one at a time, as Anthropic does.
An upstream that interleaves argument fragments of parallel tool calls (OpenAI
and vLLM do not) loses the fragments that arrive after their block was closed.
"""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

import orjson

from llmops.errors import InvalidInput
from llmops.gateway.translate.chat import collapse, first_choice, text_of

__all__ = [
    "MessagesStream",
    "anthropic_error",
    "anthropic_error_type",
    "anthropic_usage",
    "chat_to_message",
    "count_tokens_body",
    "messages_to_chat",
    "new_message_id",
    "sse",
]

_ID_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def new_message_id() -> str:
    return _new_id("msg_")


# --------------------------------------------------------------------- request


def messages_to_chat(body: dict) -> dict:
    """A chat-completions request body for a Messages request."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    if body.get("max_tokens") is None:
        raise InvalidInput("`max_tokens` is required", param="max_tokens")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
        raise InvalidInput("extended thinking is not available on a translated model", param="thinking")
    if body.get("mcp_servers"):
        raise InvalidInput("MCP servers are not available on a translated model", param="mcp_servers")

    chat = _prompt(body)
    chat["max_tokens"] = body["max_tokens"]
    stop = body.get("stop_sequences")
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop)):
        raise InvalidInput("`stop_sequences` must be a list of strings", param="stop_sequences")
    if stop:
        chat["stop"] = list(stop)
    for key in ("temperature", "top_p", "top_k"):  # vLLM and most open servers take top_k
        if body.get(key) is not None:
            chat[key] = body[key]
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        chat["user"] = metadata["user_id"]
    output_config = body.get("output_config")
    if output_config is not None and not isinstance(output_config, dict):
        raise InvalidInput("`output_config` must be an object", param="output_config")
    output_format = (output_config or {}).get("format")
    if output_format is not None:
        chat["response_format"] = _chat_response_format(output_format)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidInput("`stream` must be true or false", param="stream")
    if body.get("stream"):
        chat["stream"] = True
        # Usage arrives only in the final chunk, and only when asked for.
        chat["stream_options"] = {"include_usage": True}
    return chat


def count_tokens_body(body: dict) -> dict:
    """The chat body whose prompt tokens answer `/v1/messages/count_tokens`: the
    messages and tools exactly as `messages_to_chat` would send them."""
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    chat = _prompt(body)
    return {key: chat[key] for key in ("model", "messages", "tools") if key in chat}


def _prompt(body: dict) -> dict:
    """model, messages, tools and tool_choice: what both create and count_tokens take."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput("`model` is required", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("`messages` must be a non-empty list", param="messages")
    chat_messages: list[dict] = []
    system = _system_text(body.get("system"))
    if system:
        chat_messages.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        chat_messages.extend(_chat_messages(message, f"messages[{i}]"))
    chat: dict[str, Any] = {"model": model, "messages": chat_messages}
    if body.get("tools"):
        chat["tools"] = _chat_tools(body["tools"])
    choice = body.get("tool_choice")
    if choice is not None:
        chat.update(_chat_tool_choice(choice))
    return chat


def _system_text(system: Any) -> str:
    if system is None:
        return ""
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise InvalidInput("`system` must be a string or a list of text blocks", param="system")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidInput("`system` blocks must be text blocks", param=f"system[{i}]")
        texts.append(block.get("text") or "")
    # Blocks are usually split for cache_control, which chat cannot use: one system
    # message keeps every chat template happy.
    return "\n\n".join(t for t in texts if t)


def _chat_messages(message: Any, param: str) -> list[dict]:
    if not isinstance(message, dict):
        raise InvalidInput("each message must be an object", param=param)
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise InvalidInput(f"message role {role!r} is not user or assistant", param=f"{param}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidInput("message content must be a string or a list of blocks", param=f"{param}.content")
    if role == "user":
        return _user_messages(content, param)
    return [_assistant_message(content, param)]


def _user_messages(blocks: list, param: str) -> list[dict]:
    tool_messages: list[dict] = []
    parts: list[dict] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text") or ""})
        elif kind == "image":
            parts.append(_image_part(block, where))
        elif kind == "tool_result":
            tool_messages.append(_tool_message(block, where))
        elif kind == "document":
            raise InvalidInput(
                "document blocks are not carried to a chat model; send the text (or page images) instead",
                param=where,
            )
        else:
            raise InvalidInput(
                f"user content blocks of type {kind!r} cannot be carried to a chat model", param=where
            )
    # Chat needs each tool result right after the assistant turn that called it, so
    # results come before whatever else the user says in the same turn.
    out = tool_messages
    if parts:
        out.append({"role": "user", "content": collapse(parts)})
    return out



def _image_part(block: dict, where: str) -> dict:
    source = block.get("source") or {}
    kind = source.get("type")
    if kind == "base64":
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source.get('data') or ''}"
    elif kind == "url":
        url = source.get("url") or ""
    else:
        raise InvalidInput(
            f"images with a {kind!r} source are not carried to a chat model; use a base64 or url source",
            param=f"{where}.source",
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _tool_message(block: dict, where: str) -> dict:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise InvalidInput("a tool_result needs `tool_use_id`", param=f"{where}.tool_use_id")
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for k, inner in enumerate(content):
            kind = inner.get("type") if isinstance(inner, dict) else None
            if kind != "text":
                raise InvalidInput(
                    f"a tool_result holding a {kind!r} block cannot be carried: chat tool messages hold text only",
                    param=f"{where}.content[{k}]",
                )
            texts.append(inner.get("text") or "")
        text = "\n".join(texts)
    else:
        raise InvalidInput(
            "tool_result content must be a string or a list of blocks", param=f"{where}.content"
        )
    if block.get("is_error"):
        # Chat has no error flag on tool messages; the model reads it from the text.
        text = "Error: " + text
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}


def _assistant_message(blocks: list, param: str) -> dict:
    parts: list[dict] = []
    calls: list[dict] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text") or ""})
        elif kind == "tool_use":
            name = block.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidInput("a tool_use block needs `name`", param=f"{where}.name")
            calls.append(
                {
                    "id": block.get("id") or _new_id("toolu_"),
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False),
                    },
                }
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # another model's reasoning: nothing a chat model can read
        else:
            raise InvalidInput(
                f"assistant content blocks of type {kind!r} cannot be carried to a chat model", param=where
            )
    message: dict[str, Any] = {"role": "assistant", "content": collapse(parts) if parts else None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _chat_tools(tools: Any) -> list[dict]:
    if not isinstance(tools, list):
        raise InvalidInput("`tools` must be a list", param="tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidInput("each tool must be an object", param=f"tools[{i}]")
        kind = tool.get("type")
        name = tool.get("name")
        if kind not in (None, "custom"):
            raise InvalidInput(
                f"the server tool {name!r} ({kind}) cannot run on a translated model: "
                "only custom tools (name, description, input_schema) reach a chat model",
                param=f"tools[{i}]",
            )
        if not isinstance(name, str) or not name:
            raise InvalidInput("a tool needs `name`", param=f"tools[{i}].name")
        function: dict[str, Any] = {"name": name}
        if tool.get("description"):
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": function})
    return out


def _chat_tool_choice(choice: Any) -> dict:
    if not isinstance(choice, dict):
        raise InvalidInput("`tool_choice` must be an object", param="tool_choice")
    kind = choice.get("type")
    out: dict[str, Any] = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput('a {"type": "tool"} tool_choice needs `name`', param="tool_choice.name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise InvalidInput(
            f"tool_choice type {kind!r} is not one of auto, any, tool, none", param="tool_choice"
        )
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False
    return out


def _chat_response_format(output_format: Any) -> dict:
    if (not isinstance(output_format, dict) or output_format.get("type") != "json_schema"
            or not isinstance(output_format.get("schema"), dict)):
        raise InvalidInput(
            'output_config.format must be {"type": "json_schema", "schema": {...}}',
            param="output_config.format",
        )
    # Anthropic's structured outputs constrain decoding to the schema: chat's strict mode.
    return {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": output_format["schema"], "strict": True},
    }


# -------------------------------------------------------------------- response


_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _stop(
    finish_reason: str | None, matched: Any, stop_sequences: list[str] | None
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence). `matched` is vLLM's `stop_reason`: the stop string
    that ended generation (or a token id, or None)."""
    if finish_reason == "stop" and isinstance(matched, str) and matched in (stop_sequences or ()):
        return "stop_sequence", matched
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn"), None


def anthropic_usage(usage: dict | None) -> dict:
    """Anthropic usage figures from chat `usage` (zeros when there is none)."""
    if not isinstance(usage, dict):
        return {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or usage.get("cache_read_input_tokens") or 0)
    written = int(
        details.get("cache_write_tokens")
        or details.get("cache_creation_tokens")
        or usage.get("cache_creation_input_tokens")
        or 0
    )
    prompt = int(usage.get("prompt_tokens") or 0)
    return {
        "input_tokens": max(prompt - cached - written, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def _tool_input(arguments: Any) -> dict:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        value = None
    # Anthropic's tool input is always an object; anything else is kept verbatim.
    return value if isinstance(value, dict) else {"_raw": arguments}



def chat_to_message(
    chat: dict, *, message_id: str, model: str, stop_sequences: list[str] | None = None
) -> dict:
    """A Message object for a (non-streamed) chat completion. `stop_sequences` are
    the request's, to report which one matched when the upstream says."""
    choice = first_choice(chat)
    message = choice.get("message") or {}
    content: list[dict] = []
    text = text_of(message.get("content")) or message.get("refusal") or ""
    if text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls") or []
    if not calls and isinstance(message.get("function_call"), dict):
        calls = [{"function": message["function_call"]}]  # legacy single function call
    for call in calls:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or _new_id("toolu_"),
                "name": function.get("name") or "",
                "input": _tool_input(function.get("arguments")),
            }
        )
    stop_reason, stop_sequence = _stop(choice.get("finish_reason"), choice.get("stop_reason"), stop_sequences)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": anthropic_usage(chat.get("usage")),
    }


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status: other 4xx are invalid_request_error
    (as Anthropic documents), other 5xx api_error."""
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error(status: int, message: str) -> dict:
    """Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`."""
    return {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}


# ------------------------------------------------------------------- streaming


def sse(event_name: str, data: dict) -> bytes:
    """One Messages streaming event as server-sent-event bytes."""
    return b"event: " + event_name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesStream:
    """Chat completion chunks in, Messages streaming events out, as `(name, data)`.

    `start()` first, `feed(chunk)` for each parsed chunk, then `finish()` (or `fail()`
    when the upstream breaks); `ping()` whenever a keep-alive is due.
    """

    def __init__(
        self, message_id: str, model: str, *, stop_sequences: list[str] | None = None, input_tokens: int = 0
    ):
        self.message_id = message_id
        self.model = model
        self.stop_sequences = list(stop_sequences or [])
        self.input_tokens = input_tokens
        self._blocks = 0  # content blocks started so far
        self._open: int | None = None  # index of the block still streaming
        self._open_kind: str | None = None  # "text" or "tool_use"
        self._calls: dict[int, tuple[int, str]] = {}  # chat tool-call index -> (block index, id)
        self._finish_reason: str | None = None
        self._matched: Any = None
        self._usage: dict | None = None
        self._done = False

    def start(self) -> list[tuple[str, dict]]:
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def ping(self) -> list[tuple[str, dict]]:
        return [("ping", {"type": "ping"})]

    def feed(self, chunk: dict) -> list[tuple[str, dict]]:
        if self._done or not isinstance(chunk, dict):
            return []
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        events: list[tuple[str, dict]] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # a Message has one reply: other choices (n > 1) have nowhere to go
            delta = choice.get("delta") or {}
            text = text_of(delta.get("content")) or delta.get("refusal") or ""
            if text:
                events += self._text(text)
            for position, call in enumerate(delta.get("tool_calls") or []):
                events += self._tool_call(call, position)
            if isinstance(delta.get("function_call"), dict):  # legacy single function call
                events += self._tool_call({"index": 0, "function": delta["function_call"]}, 0)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
                self._matched = choice.get("stop_reason")
        return events

    def _start_block(self, kind: str, block: dict) -> list[tuple[str, dict]]:
        events = self._close_open()
        self._open, self._open_kind = self._blocks, kind
        self._blocks += 1
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": self._open, "content_block": block},
            )
        )
        return events

    def _text(self, text: str) -> list[tuple[str, dict]]:
        events: list[tuple[str, dict]] = []
        if self._open_kind != "text":
            events += self._start_block("text", {"type": "text", "text": ""})
        delta = {"type": "text_delta", "text": text}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": self._open, "delta": delta})
        )
        return events

    def _tool_call(self, call: dict, position: int) -> list[tuple[str, dict]]:
        index = call["index"] if isinstance(call.get("index"), int) else position
        function = call.get("function") or {}
        fragment = function.get("arguments") or ""
        known = self._calls.get(index)
        # Some servers number every parallel call 0 and tell them apart by id only.
        if known is not None and call.get("id") and call["id"] != known[1]:
            known = None
        events: list[tuple[str, dict]] = []
        if known is None:
            tool_id = call.get("id") or _new_id("toolu_")
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": tool_id,
                "name": function.get("name") or "",
                "input": {},
            }
            events += self._start_block("tool_use", block)
            known = self._calls[index] = (self._blocks - 1, tool_id)
        block_index = known[0]
        if fragment and block_index == self._open:
            delta = {"type": "input_json_delta", "partial_json": fragment}
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": block_index, "delta": delta})
            )
        return events

    def _close_open(self) -> list[tuple[str, dict]]:
        if self._open is None:
            return []
        event = ("content_block_stop", {"type": "content_block_stop", "index": self._open})
        self._open = self._open_kind = None
        return [event]

    def finish(self, *, usage: dict | None = None) -> list[tuple[str, dict]]:
        """Close the open block, then message_delta (stop reason, usage) and message_stop.

        `usage` (chat usage) stands in when the stream carried none, e.g. a
        gateway estimate.
        """
        if self._done:
            return []
        self._done = True
        events = self._close_open()
        stop_reason, stop_sequence = _stop(self._finish_reason, self._matched, self.stop_sequences)
        chat_usage = self._usage or usage
        figures = anthropic_usage(chat_usage)
        delta_usage: dict[str, Any] = {"output_tokens": figures["output_tokens"]}
        if chat_usage:
            # Only now are input tokens known: message_start went out before the upstream said.
            delta_usage.update(
                input_tokens=figures["input_tokens"],
                cache_creation_input_tokens=figures["cache_creation_input_tokens"],
                cache_read_input_tokens=figures["cache_read_input_tokens"],
            )
        events.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": delta_usage,
                },
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def fail(self, error_type: str, message: str) -> list[tuple[str, dict]]:
        """An in-band `error` event, which ends the stream (as Anthropic's do)."""
        if self._done:
            return []
        self._done = True
        return [("error", {"type": "error", "error": {"type": error_type, "message": message}})]

    @property
    def finish_reason(self) -> str | None:
        return self._finish_reason

    @property
    def usage(self) -> dict | None:
        """The chat usage the stream carried, if any."""
        return self._usage
