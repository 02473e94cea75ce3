"""Token counts, offline, the way OpenAI counts them.

The gateway uses these when an upstream reports no usage (a stream without
`include_usage`, a self-hosted server that omits it); the ledger row then says
`usage_source: "estimated"`.

Which encoding: tiktoken's own model table first (provider prefixes such as
`openai/` or `azure/` are stripped). A name tiktoken does not know falls back to
`o200k_base` when it names the gpt-4o / gpt-4.1 / gpt-4.5 / gpt-5 / o-series /
gpt-oss family, and to `cl100k_base` otherwise (Claude, Llama, Mistral... are
approximated by it: their own tokenizers are not shipped offline). Only the
encodings litellm's wheel carries can be loaded offline; `r50k_base`, `gpt2` and
`p50k_edit` (pre-2022 completion models) are approximated by `p50k_base` rather
than attempting a download.

Chat overhead follows OpenAI's cookbook: 3 tokens per message, 1 more per `name`,
3 for the reply primer. Tool definitions follow the cookbook's `num_tokens_for_tools`
(per-function 7 for the o200k family, 10 for older models; 3 per property, 3 per enum
item, 12 at the end); nested schemas, which the cookbook ignores, are counted as
their JSON text. Images are not fetched: 85 tokens at `detail: low`, otherwise 765
(a 1024x1024 image at high detail for gpt-4o).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from llmops.settings import configure_offline_tokenizers

# Must run before tiktoken loads an encoding: it points TIKTOKEN_CACHE_DIR at the
# encodings litellm ships, so nothing is downloaded.
configure_offline_tokenizers()

import tiktoken  # noqa: E402

__all__ = ["count_text", "count_messages", "count_prompt", "count_tools", "encoding_name_for"]

# Encodings present in litellm's wheel (o200k_harmony is built from o200k_base's file).
_OFFLINE_ENCODINGS = {"cl100k_base", "o200k_base", "p50k_base", "o200k_harmony"}
_SUBSTITUTES = {"r50k_base": "p50k_base", "gpt2": "p50k_base", "p50k_edit": "p50k_base"}
_O200K_FAMILY = re.compile(r"(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt|gpt-oss|(^|[^a-z0-9])o[1-9]($|[^0-9]))")
_KNOWN_PROVIDER_PREFIXES = ("openai/", "azure/", "azure_ai/", "openrouter/", "text-completion-openai/")

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMER_TOKENS = 3
IMAGE_TOKENS_LOW = 85
IMAGE_TOKENS_DEFAULT = 765


def _bare_model(model: str) -> str:
    name = model.strip().lower()
    changed = True
    while changed:  # "openrouter/openai/gpt-4o" has two prefixes
        changed = False
        for prefix in _KNOWN_PROVIDER_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                changed = True
    return name


@lru_cache(maxsize=4096)
def encoding_name_for(model: str | None) -> str:
    """The tiktoken encoding used to count tokens for `model` (see module doc)."""
    if not model:
        return "cl100k_base"
    name = _bare_model(model)
    try:
        encoding = tiktoken.encoding_name_for_model(name)
    except KeyError:
        # Unknown to tiktoken: a fine-tune, an alias, another vendor's model.
        last = name.rsplit("/", 1)[-1]
        encoding = "o200k_base" if _O200K_FAMILY.search(last) else "cl100k_base"
    encoding = _SUBSTITUTES.get(encoding, encoding)
    return encoding if encoding in _OFFLINE_ENCODINGS else "cl100k_base"


@lru_cache(maxsize=8)
def _encoding(name: str) -> tiktoken.Encoding:
    encoding = tiktoken.get_encoding(name)
    # An Encoding keeps a Python copy of its merge ranks (about 30 MB for o200k) that
    # only pickling and token_byte_values() read; its Rust core holds its own. Counting
    # needs neither, and the gateway's resident memory does not want it.
    if getattr(encoding, "_mergeable_ranks", None) is not None:
        # tiktoken declares it a dict; None (not {}) makes any later reader fail loudly.
        encoding._mergeable_ranks = None  # type: ignore[assignment]
    return encoding


_CACHED_TEXT_MAX = 4096  # longer texts are rarely repeated; caching them would cost memory


@lru_cache(maxsize=2048)
def _count_cached(encoding_name: str, text: str) -> int:
    return len(_encoding(encoding_name).encode_ordinary(text))


def _count_str(text: str, enc: tiktoken.Encoding) -> int:
    """Tokens in a string; system prompts, roles and names repeat call after call, so
    short strings are counted once and remembered."""
    if len(text) <= _CACHED_TEXT_MAX:
        return _count_cached(enc.name, text)
    return _n(enc, text)


def _encoding_for(model: str | None) -> tiktoken.Encoding:
    return _encoding(encoding_name_for(model))


def count_text(text: str, model: str | None) -> int:
    """Tokens in `text` for `model`; special-token strings count as ordinary text."""
    if not text:
        return 0
    return _n(_encoding_for(model), text)


# A text longer than this is counted a piece at a time. tiktoken lets go of the GIL
# while it encodes, but not while it builds the list of token ids: for a 3.5 MB prompt
# that list (800,000 ints) held the GIL, and the gateway's event loop, for 40 ms.
CHUNK_CHARS = 65_536
_CUT = re.compile(r"(?<=\S) (?=\S)")  # a lone space between words: no token spans it


def _n(enc: tiktoken.Encoding, text: str) -> int:
    """Tokens in `text`, counted in pieces cut where tiktoken would cut anyway (a token
    starts at " word"), so the total is the whole text's."""
    if len(text) <= CHUNK_CHARS:
        return len(enc.encode_ordinary(text))
    total, start = 0, 0
    while start < len(text):
        end = start + CHUNK_CHARS
        if end < len(text):
            cut = _CUT.search(text, end, end + 4096)
            end = cut.start() if cut else end
        total += len(enc.encode_ordinary(text[start:end]))
        start = end
    return total


def _is_o200k(model: str | None) -> bool:
    return encoding_name_for(model).startswith("o200k")


def _count_content(content: Any, enc: tiktoken.Encoding) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return _count_str(content, enc)
    if isinstance(content, list):
        total = 0
        for part in content:
            total += _count_part(part, enc)
        return total
    return _n(enc, _as_text(content))


def _count_part(part: Any, enc: tiktoken.Encoding) -> int:
    if isinstance(part, str):
        return _n(enc, part)
    if not isinstance(part, dict):
        return _n(enc, _as_text(part))
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text", "refusal"):
        return _n(enc, str(part.get(kind if kind == "refusal" else "text") or ""))
    if kind in ("image_url", "input_image"):
        image = part.get("image_url")
        detail = (image.get("detail") if isinstance(image, dict) else None) or part.get("detail")
        return IMAGE_TOKENS_LOW if detail == "low" else IMAGE_TOKENS_DEFAULT
    # input_audio, file, anything newer: its JSON is the best offline proxy we have.
    return _n(enc, _as_text(part))


def _count_tool_calls(tool_calls: Any, enc: tiktoken.Encoding) -> int:
    if not isinstance(tool_calls, list):
        return _n(enc, _as_text(tool_calls))
    total = 0
    for call in tool_calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            # OpenAI renders a call as name + JSON arguments plus a few framing tokens.
            total += TOKENS_PER_MESSAGE
            total += _n(enc, str(function.get("name") or ""))
            total += _n(enc, str(function.get("arguments") or ""))
        else:
            total += _n(enc, _as_text(call))
    return total


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def count_messages(messages: Iterable[dict], model: str | None, tools: list[dict] | None = None) -> int:
    """Prompt tokens of a chat request, as OpenAI bills them (see module doc)."""
    enc = _encoding_for(model)
    total = 0
    for message in messages:
        total += TOKENS_PER_MESSAGE
        if not isinstance(message, dict):
            total += _n(enc, _as_text(message))
            continue
        for key, value in message.items():
            if value is None:
                continue
            if key == "content":
                total += _count_content(value, enc)
            elif key == "tool_calls" or key == "function_call":
                total += _count_tool_calls(value if key == "tool_calls" else [{"function": value}], enc)
            else:
                total += _count_str(_as_text(value), enc)
                if key == "name":
                    total += TOKENS_PER_NAME
    total += REPLY_PRIMER_TOKENS
    if tools:
        total += count_tools(tools, model)
    return total


def count_tools(tools: list[dict], model: str | None) -> int:
    """Tokens the tool definitions add to the prompt (OpenAI cookbook's method)."""
    enc = _encoding_for(model)
    func_init = 7 if _is_o200k(model) else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    total = 0
    counted = 0
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        # Chat `tools` wrap the function; legacy `functions` and Responses tools don't.
        wrapped = tool.get("function")
        function = wrapped if isinstance(wrapped, dict) else tool
        name = str(function.get("name") or tool.get("type") or "")
        description = str(function.get("description") or "").removesuffix(".")
        total += func_init + _n(enc, f"{name}:{description}")
        counted += 1
        parameters = function.get("parameters")
        properties = parameters.get("properties") if isinstance(parameters, dict) else None
        if not isinstance(properties, dict) or not properties:
            continue
        total += prop_init
        for key, schema in properties.items():
            total += prop_key
            schema = schema if isinstance(schema, dict) else {}
            enum = schema.get("enum")
            if isinstance(enum, list):
                total += enum_init
                for item in enum:
                    total += enum_item + _n(enc, str(item))
            p_type = schema.get("type", "")
            if isinstance(p_type, list):
                p_type = "|".join(str(t) for t in p_type)
            p_desc = str(schema.get("description") or "").removesuffix(".")
            total += _n(enc, f"{key}:{p_type}:{p_desc}")
            nested = {k: v for k, v in schema.items() if k in ("properties", "items", "anyOf", "oneOf")}
            if nested:
                total += _n(enc, _as_text(nested))
    if counted:
        total += func_end
    return total


def count_prompt(body: dict) -> int:
    """Prompt tokens of a request body: chat (`messages`), completions (`prompt`) or
    embeddings (`input`)."""
    model = body.get("model")
    messages = body.get("messages")
    if isinstance(messages, list):
        tools = body.get("tools") or body.get("functions")
        return count_messages(messages, model, tools=tools if isinstance(tools, list) else None)
    if "prompt" in body:
        return _count_inputs(body.get("prompt"), model)
    if "input" in body:
        return _count_inputs(body.get("input"), model)
    return 0


def _count_inputs(value: Any, model: str | None) -> int:
    """A string, a list of strings, a token-id list, or a list of token-id lists."""
    if value is None:
        return 0
    if isinstance(value, str):
        return count_text(value, model)
    if isinstance(value, list):
        if value and all(isinstance(item, int) for item in value):
            return len(value)  # already tokenized
        return sum(_count_inputs(item, model) for item in value)
    return count_text(_as_text(value), model)
