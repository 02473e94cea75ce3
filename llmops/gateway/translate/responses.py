"""OpenAI's Responses API (`POST /v1/responses`) over a chat-completions upstream.

`responses_to_chat` turns a Responses request into a chat body; `chat_to_response`
turns the chat reply into a Response object; `ResponsesStream` turns streamed
chat.completion.chunk objects into Responses streaming events (each with `type` and
a `sequence_number` counting from 0); `response_to_history` gives the chat messages
to keep so a later request can continue with `previous_response_id`.

What the translated path cannot carry (the request is refused with a 400 naming
the field, rather than half-served):

- built-in tools (web_search, file_search, computer_use, code_interpreter,
  image_generation, mcp, shell, custom/grammar tools...): only `function` tools
  reach a chat model; a `tool_choice` naming a built-in tool or `allowed_tools`;
- `item_reference` items and `input_image`/`input_file` given by `file_id`: the
  gateway keeps no OpenAI file or item store; `input_file` in any form; images in
  system/developer messages or in `function_call_output` (chat tool messages hold
  text only); input items other than messages, `function_call` and
  `function_call_output` (`reasoning` items are dropped: a chat model cannot
  read them);
- `background: true`, `conversation`, `prompt` (stored prompt templates) and
  `top_logprobs`.

Accepted but not applied: `store`, `metadata`, `truncation` (no middle-of-context
dropping is done), `include`, `service_tier`, `prompt_cache_key`,
`safety_identifier`, `max_tool_calls`, `stream_options`, `text.verbosity` and
`reasoning.summary` (no reasoning items are produced: reasoning text an upstream
returns is dropped). `developer` messages are sent as `system` (many chat servers
reject the developer role). A function tool without `strict` is sent without it,
so it is non-strict as in chat, not strict as the Responses API would default.

Streaming: items are opened and closed one at a time, as OpenAI does: the message
item is closed when a tool call starts, and a function_call item when the next one
starts. An upstream that interleaves argument fragments of parallel tool calls
(OpenAI and vLLM do not) gets the late fragments into the final response only,
not into the already-sent `.done` events.
"""

from __future__ import annotations

import copy
import secrets
from typing import Any

import orjson

from llmops.errors import InvalidInput
from llmops.gateway.translate.chat import collapse, first_choice, text_of

__all__ = [
    "ResponsesStream",
    "chat_to_response",
    "new_response_id",
    "response_to_history",
    "responses_to_chat",
    "responses_usage",
    "sse",
]

# Fields of a Responses request that change nothing a chat model could do differently.
_IGNORED_FIELDS = (
    "store",
    "metadata",
    "truncation",
    "include",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "max_tool_calls",
    "stream_options",
    "previous_response_id",  # resolved by the gateway into `history`
)

# ResponseError.code values the openai SDK accepts; anything else is reported as
# server_error so a typed client can still parse the failure.
_RESPONSE_ERROR_CODES = frozenset(
    {
        "server_error",
        "rate_limit_exceeded",
        "invalid_prompt",
        "vector_store_timeout",
        "invalid_image",
        "invalid_image_format",
        "invalid_base64_image",
        "invalid_image_url",
        "image_too_large",
        "image_too_small",
        "image_parse_error",
        "image_content_policy_violation",
        "invalid_image_mode",
        "image_file_too_large",
        "unsupported_image_media_type",
        "empty_image_file",
        "failed_to_download_image",
        "image_file_not_found",
    }
)

_CHAT_TOOL_CHOICES = ("auto", "none", "required")


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def new_response_id() -> str:
    return _new_id("resp_")


# --------------------------------------------------------------------- request


def responses_to_chat(body: dict, history: list[dict] | None = None) -> dict:
    """A chat-completions request body for a Responses request.

    `history` holds the chat messages of the response named by
    `previous_response_id` (see `response_to_history`); they go after this
    request's `instructions` and before its `input`.
    """
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    _refuse_unsupported(body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidInput("`model` is required", param="model")
    chat: dict[str, Any] = {"model": model}

    messages: list[dict] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidInput("`instructions` must be a string", param="instructions")
        if instructions:
            messages.append({"role": "system", "content": instructions})
    if history:
        messages.extend(copy.deepcopy(history))
    new_input = _input_messages(body.get("input"))
    if not new_input and not history:
        raise InvalidInput("`input` is required", param="input")
    messages.extend(new_input)
    chat["messages"] = messages

    tools = body.get("tools")
    if tools:
        chat["tools"] = _chat_tools(tools)
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    response_format = _chat_response_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "parallel_tool_calls", "user"):
        if body.get(key) is not None:
            chat[key] = body[key]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if "stream" in body and not isinstance(body["stream"], bool):
        raise InvalidInput("`stream` must be true or false", param="stream")
    if body.get("stream"):
        chat["stream"] = True
        # Usage arrives only in the final chunk, and only when asked for.
        chat["stream_options"] = {"include_usage": True}
    return chat


def _refuse_unsupported(body: dict) -> None:
    if body.get("background"):
        raise InvalidInput(
            "background responses are not available on a translated model; send the request without `background`",
            param="background",
        )
    if body.get("conversation") is not None:
        raise InvalidInput(
            "conversations are not available on a translated model; use `previous_response_id` "
            "or send the whole conversation as `input`",
            param="conversation",
        )
    if body.get("prompt") is not None:
        raise InvalidInput(
            "stored prompt templates (`prompt`) are not available on a translated model; send `instructions` and `input`",
            param="prompt",
        )
    if body.get("top_logprobs"):
        raise InvalidInput("log probabilities are not carried on a translated model", param="top_logprobs")


def _input_messages(value: Any) -> list[dict]:
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise InvalidInput("`input` must be a string or a list of input items", param="input")
    out: list[dict] = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidInput("each input item must be an object", param=param)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            out.append(_message_item(item, param))
        elif kind == "function_call":
            _append_tool_call(out, item, param)
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidInput(
                    "a function_call_output needs the `call_id` of its call", param=f"{param}.call_id"
                )
            out.append(
                {"role": "tool", "tool_call_id": call_id, "content": _tool_output(item.get("output"), param)}
            )
        elif kind == "reasoning":
            continue  # encrypted or summarised reasoning of another model: nothing a chat model can read
        elif kind == "item_reference":
            raise InvalidInput(
                "item_reference cannot be resolved on a translated model (no item store); send the item itself",
                param=param,
            )
        else:
            raise InvalidInput(f"input items of type {kind!r} cannot be carried to a chat model", param=param)
    return out


def _message_item(item: dict, param: str) -> dict:
    role = item.get("role")
    content = item.get("content")
    if role == "assistant":
        return {"role": "assistant", "content": _assistant_text(content, param)}
    if role not in ("user", "system", "developer"):
        raise InvalidInput(
            f"message role {role!r} is not one of user, system, developer, assistant", param=param
        )
    chat_role = "system" if role == "developer" else role
    if isinstance(content, str):
        return {"role": chat_role, "content": content}
    if not isinstance(content, list):
        raise InvalidInput(
            "message content must be a string or a list of content parts", param=f"{param}.content"
        )
    parts: list[dict] = []
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text") or ""})
        elif kind == "input_image":
            if chat_role != "user":
                raise InvalidInput("images are carried only in user messages", param=where)
            parts.append(_image_part(part, where))
        elif kind == "input_file":
            raise InvalidInput(
                "input_file is not carried to a chat model; send the text or images instead", param=where
            )
        else:
            raise InvalidInput(
                f"content parts of type {kind!r} cannot be carried to a chat model", param=where
            )
    return {"role": chat_role, "content": collapse(parts)}



def _image_part(part: dict, where: str) -> dict:
    url = part.get("image_url")
    if not url:
        if part.get("file_id"):
            raise InvalidInput(
                "input_image by file_id is not available on a translated model (no file store); "
                "send `image_url` (a URL or a data: URL)",
                param=where,
            )
        raise InvalidInput("input_image needs `image_url`", param=where)
    image: dict[str, Any] = {"url": url}
    # Chat knows auto/low/high; "original" has no chat equivalent and falls back to auto.
    if part.get("detail") in ("auto", "low", "high"):
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _assistant_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidInput(
            "message content must be a string or a list of content parts", param=f"{param}.content"
        )
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("output_text", "input_text"):
            texts.append(part.get("text") or "")
        elif kind == "refusal":
            texts.append(part.get("refusal") or "")
        else:
            raise InvalidInput(
                f"assistant content parts of type {kind!r} cannot be carried to a chat model",
                param=f"{param}.content[{j}]",
            )
    # Parts of one assistant message are consecutive output: joined as they were produced.
    return "".join(texts)


def _append_tool_call(out: list[dict], item: dict, param: str) -> None:
    name = item.get("name")
    call_id = item.get("call_id")
    if not isinstance(name, str) or not name:
        raise InvalidInput("a function_call item needs `name`", param=f"{param}.name")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidInput("a function_call item needs `call_id`", param=f"{param}.call_id")
    arguments = item.get("arguments")
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else ""},
    }
    # Chat puts a turn's text and its parallel calls in one assistant message.
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if last.get("content") == "":
            last["content"] = None
    else:
        out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_output(output: Any, param: str) -> str | list[dict]:
    if output is None:
        return ""
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise InvalidInput(
            "function_call_output `output` must be a string or a list", param=f"{param}.output"
        )
    parts = []
    for j, part in enumerate(output):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text") or ""})
        else:
            raise InvalidInput(
                f"a function_call_output part of type {kind!r} cannot be carried: chat tool messages hold text only",
                param=f"{param}.output[{j}]",
            )
    if not parts:
        return ""
    return collapse(parts)


def _chat_tools(tools: Any) -> list[dict]:
    if not isinstance(tools, list):
        raise InvalidInput("`tools` must be a list", param="tools")
    out = []
    for i, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            label = kind if isinstance(kind, str) else "untyped"
            raise InvalidInput(
                f"the {label} tool cannot run on a translated model: only function tools reach a chat model",
                param=f"tools[{i}]",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput("a function tool needs `name`", param=f"tools[{i}].name")
        function: dict[str, Any] = {"name": name}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        out.append({"type": "function", "function": function})
    return out


def _chat_tool_choice(choice: Any) -> str | dict:
    if isinstance(choice, str):
        if choice in _CHAT_TOOL_CHOICES:
            return choice
        raise InvalidInput(f"tool_choice {choice!r} is not one of auto, none, required", param="tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInput("a function tool_choice needs `name`", param="tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    kind = choice.get("type") if isinstance(choice, dict) else None
    raise InvalidInput(
        f"tool_choice of type {kind!r} cannot be carried to a chat model: use auto, none, required "
        'or {"type": "function", "name": ...}',
        param="tool_choice",
    )


def _chat_response_format(text: Any) -> dict | None:
    if not isinstance(text, dict):
        return None
    fmt = text.get("format")
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        name = fmt.get("name")
        schema = fmt.get("schema")
        if not isinstance(name, str) or not name:
            raise InvalidInput("a json_schema text format needs `name`", param="text.format.name")
        if not isinstance(schema, dict):
            raise InvalidInput("a json_schema text format needs `schema`", param="text.format.schema")
        json_schema: dict[str, Any] = {"name": name, "schema": schema}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                json_schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": json_schema}
    raise InvalidInput(f"text format {kind!r} cannot be carried to a chat model", param="text.format")


# -------------------------------------------------------------------- response


def responses_usage(usage: dict | None) -> dict | None:
    """Responses `usage` from chat `usage` (None stays None)."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    cache_write = (
        prompt_details.get("cache_write_tokens")
        or prompt_details.get("cache_creation_tokens")
        or usage.get("cache_creation_input_tokens")  # litellm's name for Anthropic cache writes
        or 0
    )
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": int(cache_write),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def _shell(response_id: str, request: dict, created_at: int, status: str) -> dict:
    """A Response object with no output yet, echoing the request's settings."""
    reasoning: dict = request["reasoning"] if isinstance(request.get("reasoning"), dict) else {}
    text = dict(request["text"]) if isinstance(request.get("text"), dict) else {}
    if not text.get("format"):
        text["format"] = {"type": "text"}
    parallel = request.get("parallel_tool_calls")
    store = request.get("store")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": request.get("model"),
        "output": [],
        "parallel_tool_calls": True if parallel is None else bool(parallel),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": True if store is None else bool(store),
        "temperature": request.get("temperature"),
        "text": text,
        "tool_choice": request.get("tool_choice") if request.get("tool_choice") is not None else "auto",
        "tools": copy.deepcopy(request.get("tools") or []),
        "top_p": request.get("top_p"),
        "truncation": request.get("truncation") or "disabled",
        "usage": None,
        "user": request.get("user"),
        "metadata": copy.deepcopy(request.get("metadata") or {}),
    }


def _final_status(finish_reason: str | None) -> tuple[str, dict | None]:
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None



def chat_to_response(
    chat: dict, *, response_id: str, request: dict, created_at: int, completed_at: int | None = None
) -> dict:
    """A Response object for a (non-streamed) chat completion."""
    choice = first_choice(chat)
    message = choice.get("message") or {}
    status, incomplete = _final_status(choice.get("finish_reason"))
    item_status = "completed" if status == "completed" else "incomplete"

    response = _shell(response_id, request, created_at, status)
    if not response["model"]:
        response["model"] = chat.get("model")
    output: list[dict] = []
    text = text_of(message.get("content"))
    refusal = message.get("refusal")
    if text or refusal:
        content: list[dict] = []
        if text:
            content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
        if refusal:
            content.append({"type": "refusal", "refusal": refusal})
        output.append(
            {
                "id": _new_id("msg_"),
                "type": "message",
                "status": item_status,
                "role": "assistant",
                "content": content,
            }
        )
    calls = message.get("tool_calls") or []
    if not calls and isinstance(message.get("function_call"), dict):
        calls = [{"function": message["function_call"]}]  # legacy single function call
    for call in calls:
        function = call.get("function") or {}
        output.append(
            {
                "id": _new_id("fc_"),
                "type": "function_call",
                "status": item_status,
                "arguments": function.get("arguments") or "",
                "call_id": call.get("id") or _new_id("call_"),
                "name": function.get("name") or "",
            }
        )
    response["output"] = output
    response["incomplete_details"] = incomplete
    response["usage"] = responses_usage(chat.get("usage"))
    if status == "completed":
        response["completed_at"] = completed_at
    return response


def response_to_history(request_chat_messages: list[dict], response: dict) -> list[dict]:
    """The chat messages to keep for a later `previous_response_id`: this request's
    messages without its instructions (OpenAI does not carry instructions over) and
    the assistant turn the response produced."""
    messages = list(request_chat_messages)
    instructions = response.get("instructions")
    if (
        instructions
        and messages
        and messages[0].get("role") == "system"
        and messages[0].get("content") == instructions
    ):
        messages = messages[1:]
    history = copy.deepcopy(messages)
    texts: list[str] = []
    calls: list[dict] = []
    for item in response.get("output") or []:
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "refusal":
                    texts.append(part.get("refusal") or "")
        elif item.get("type") == "function_call":
            calls.append(
                {
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
                }
            )
    if texts or calls:
        turn: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if calls:
            turn["tool_calls"] = calls
        history.append(turn)
    return history


# ------------------------------------------------------------------- streaming


def sse(event: dict) -> bytes:
    """One Responses streaming event as server-sent-event bytes."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class ResponsesStream:
    """Chat completion chunks in, Responses streaming events out.

    `start()` first, `feed(chunk)` for each parsed chunk, then `finish()` (or
    `fail()` when the upstream breaks). Each returns the events to send, in order.
    """

    def __init__(self, response_id: str, request: dict, created_at: int):
        self.response_id = response_id
        self.request = request
        self.created_at = created_at
        self.response: dict | None = None
        self._seq = 0
        self._items: list[dict] = []
        self._open: int | None = None  # output index of the item still streaming
        self._open_part: int | None = None  # content index of its open part (message items)
        self._calls: dict[int, int] = {}  # chat tool-call index -> output index
        self._finish_reason: str | None = None
        self._usage: dict | None = None
        self._model: str | None = None
        self._done = False

    # -- events

    def _event(self, kind: str, **fields: Any) -> dict:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return event

    def _snapshot(self, status: str) -> dict:
        response = _shell(self.response_id, self.request, self.created_at, status)
        if not response["model"]:
            response["model"] = self._model
        response["output"] = copy.deepcopy(self._items)
        return response

    def start(self) -> list[dict]:
        return [
            self._event("response.created", response=self._snapshot("in_progress")),
            self._event("response.in_progress", response=self._snapshot("in_progress")),
        ]

    def feed(self, chunk: dict) -> list[dict]:
        if self._done or not isinstance(chunk, dict):
            return []
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        if chunk.get("model") and not self._model:
            self._model = chunk["model"]
        events: list[dict] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Responses has one output: other choices (n > 1) have nowhere to go
            delta = choice.get("delta") or {}
            text = text_of(delta.get("content"))
            if text:
                events += self._text("output_text", text)
            if delta.get("refusal"):
                events += self._text("refusal", delta["refusal"])
            for position, call in enumerate(delta.get("tool_calls") or []):
                events += self._tool_call(call, position)
            if isinstance(delta.get("function_call"), dict):  # legacy single function call
                events += self._tool_call({"index": 0, "function": delta["function_call"]}, 0)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return events

    def _text(self, kind: str, delta: str) -> list[dict]:
        events: list[dict] = []
        item = self._items[self._open] if self._open is not None else None
        if item is None or item["type"] != "message":
            events += self._close_open("completed")
            item = {
                "id": _new_id("msg_"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self._items.append(item)
            self._open = len(self._items) - 1
            events.append(
                self._event("response.output_item.added", output_index=self._open, item=copy.deepcopy(item))
            )
        part = item["content"][self._open_part] if self._open_part is not None else None
        if part is None or part["type"] != kind:
            events += self._close_part()
            part = (
                {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                if kind == "output_text"
                else {"type": "refusal", "refusal": ""}
            )
            item["content"].append(part)
            self._open_part = len(item["content"]) - 1
            events.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=self._open,
                    content_index=self._open_part,
                    part=copy.deepcopy(part),
                )
            )
        where = {"item_id": item["id"], "output_index": self._open, "content_index": self._open_part}
        if kind == "output_text":
            part["text"] += delta
            events.append(self._event("response.output_text.delta", **where, delta=delta, logprobs=[]))
        else:
            part["refusal"] += delta
            events.append(self._event("response.refusal.delta", **where, delta=delta))
        return events

    def _tool_call(self, call: dict, position: int) -> list[dict]:
        index = call["index"] if isinstance(call.get("index"), int) else position
        function = call.get("function") or {}
        fragment = function.get("arguments") or ""
        slot = self._calls.get(index)
        # Some servers number every parallel call 0 and tell them apart by id only.
        if slot is not None and call.get("id") and call["id"] != self._items[slot]["call_id"]:
            slot = None
        events: list[dict] = []
        if slot is None:
            events += self._close_open("completed")
            item = {
                "id": _new_id("fc_"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call.get("id") or _new_id("call_"),
                "name": function.get("name") or "",
            }
            self._items.append(item)
            slot = self._calls[index] = self._open = len(self._items) - 1
            events.append(
                self._event("response.output_item.added", output_index=slot, item=copy.deepcopy(item))
            )
        item = self._items[slot]
        if function.get("name") and not item["name"]:
            item["name"] = function["name"]
        if fragment:
            item["arguments"] += fragment
            if slot == self._open:
                events.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=slot,
                        delta=fragment,
                    )
                )
        return events

    def _close_part(self) -> list[dict]:
        if self._open is None or self._open_part is None:
            return []
        item = self._items[self._open]
        part = item["content"][self._open_part]
        where = {"item_id": item["id"], "output_index": self._open, "content_index": self._open_part}
        if part["type"] == "output_text":
            events = [self._event("response.output_text.done", **where, text=part["text"], logprobs=[])]
        else:
            events = [self._event("response.refusal.done", **where, refusal=part["refusal"])]
        events.append(self._event("response.content_part.done", **where, part=copy.deepcopy(part)))
        self._open_part = None
        return events

    def _close_open(self, status: str) -> list[dict]:
        if self._open is None:
            return []
        index = self._open
        item = self._items[index]
        events: list[dict] = []
        if item["type"] == "message":
            events += self._close_part()
        else:
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
        item["status"] = status
        events.append(self._event("response.output_item.done", output_index=index, item=copy.deepcopy(item)))
        self._open = None
        return events

    def finish(self, *, usage: dict | None = None, completed_at: int | None = None) -> list[dict]:
        """Close what is open and end with response.completed or response.incomplete.

        `usage` (chat usage) stands in when the stream carried none, e.g. a
        gateway estimate.
        """
        if self._done:
            return []
        status, incomplete = _final_status(self._finish_reason)
        events = self._close_open("completed" if status == "completed" else "incomplete")
        self._done = True
        response = self._snapshot(status)
        response["incomplete_details"] = incomplete
        response["usage"] = responses_usage(self._usage or usage)
        if status == "completed":
            response["completed_at"] = completed_at
        self.response = response
        kind = "response.completed" if status == "completed" else "response.incomplete"
        events.append(self._event(kind, response=copy.deepcopy(response)))
        return events

    def fail(self, message: str, code: str | None = None) -> list[dict]:
        """End the stream with response.failed; items still streaming are left incomplete."""
        if self._done:
            return []
        self._done = True
        if self._open is not None:
            self._items[self._open]["status"] = "incomplete"
        response = self._snapshot("failed")
        response["error"] = {
            "code": code if code in _RESPONSE_ERROR_CODES else "server_error",
            "message": message,
        }
        response["usage"] = responses_usage(self._usage)
        self.response = response
        return [self._event("response.failed", response=copy.deepcopy(response))]

    def error(self, message: str, code: str | None = None, param: str | None = None) -> list[dict]:
        """An `error` event (OpenAI sends one when a stream breaks; `fail` still ends it)."""
        return [self._event("error", code=code, message=message, param=param)]

    @property
    def finish_reason(self) -> str | None:
        return self._finish_reason

    @property
    def usage(self) -> dict | None:
        """The chat usage the stream carried, if any."""
        return self._usage
