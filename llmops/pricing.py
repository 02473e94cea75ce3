"""The price of a usage: litellm's bundled price table plus per-deployment overrides.

The table is `model_prices_and_context_window_backup.json` inside the installed litellm
package, read as a plain JSON file: importing litellm costs seconds and may reach for
the network, and neither belongs on the gateway's hot path.

Token semantics follow OpenAI's usage object: `input_tokens` (prompt_tokens) includes
the cached tokens and the cache-write tokens, `output_tokens` (completion_tokens)
includes the reasoning tokens. Each part is priced at its own rate when the table has
one (`cache_read_input_token_cost`, `cache_creation_input_token_cost`,
`output_cost_per_reasoning_token`), otherwise at the plain input/output rate. Long-
context tiers (`*_above_200k_tokens`...) apply to the whole request when the prompt
exceeds the threshold, as the providers bill it.

A deployment's `pricing:` override replaces the table's price entirely:

    pricing: {input_cost_per_token: 1e-6, output_cost_per_token: 2e-6}   # optional:
        # cache_read_input_token_cost, cache_creation_input_token_cost,
        # output_cost_per_reasoning_token (default: the input / output rate)
    pricing: {cost: 0}                                     # free (self-hosted, already paid)
    pricing: {gpu_hour_cost: 2.5, tokens_per_hour: 3_600_000}   # GPU time spread evenly
        # over every token, input and output alike

A model with no known price has cost None ("unknown"), never 0: `lookup` counts each
miss in `unknown_price_total` (and per model in `unknown_price_by_model`) for metrics.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from llmops.errors import InvalidInput

__all__ = [
    "Usage",
    "Price",
    "Tier",
    "PriceTable",
    "usage_from_openai",
    "max_cost",
    "cost_of",
    "validate_override",
    "unknown_price_total",
    "unknown_price_by_model",
    "DEFAULT_RESERVED_OUTPUT_TOKENS",
]

log = logging.getLogger(__name__)

TABLE_FILENAME = "model_prices_and_context_window_backup.json"
# What max_cost reserves for output when neither the request nor the table says.
DEFAULT_RESERVED_OUTPUT_TOKENS = 4096

# Metrics: requests whose model had no known price. Module attributes so the gateway's
# /metrics can read `pricing.unknown_price_total` without a registry of its own.
unknown_price_total: int = 0
unknown_price_by_model: dict[str, int] = {}
_counter_lock = threading.Lock()

_TIER_KEY = re.compile(
    r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|"
    r"cache_creation_input_token_cost)_above_(\d+)k_tokens$"
)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Tier:
    """Rates for a prompt longer than `above_tokens`; None keeps the base rate."""

    above_tokens: int
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_cost_per_token: float | None = None
    cache_write_cost_per_token: float | None = None


@dataclass(frozen=True, slots=True)
class Price:
    input_cost_per_token: float
    output_cost_per_token: float
    cache_read_cost_per_token: float | None = None  # None: the input rate
    cache_write_cost_per_token: float | None = None  # None: the input rate
    reasoning_cost_per_token: float | None = None  # None: the output rate
    tiers: tuple[Tier, ...] = ()  # ascending by above_tokens
    source: str = ""  # "table:<key>", "override", "override:free", "override:gpu"
    max_output_tokens: int | None = None

    def _rates(self, prompt_tokens: int) -> tuple[float, float, float, float, float]:
        inp, out = self.input_cost_per_token, self.output_cost_per_token
        read = self.cache_read_cost_per_token
        write = self.cache_write_cost_per_token
        for tier in self.tiers:
            if prompt_tokens > tier.above_tokens:
                inp = tier.input_cost_per_token if tier.input_cost_per_token is not None else inp
                out = tier.output_cost_per_token if tier.output_cost_per_token is not None else out
                read = tier.cache_read_cost_per_token if tier.cache_read_cost_per_token is not None else read
                write = (
                    tier.cache_write_cost_per_token if tier.cache_write_cost_per_token is not None else write
                )
        reasoning = self.reasoning_cost_per_token if self.reasoning_cost_per_token is not None else out
        return inp, out, (inp if read is None else read), (inp if write is None else write), reasoning

    def cost(self, usage: Usage) -> float:
        """Cost in USD of one request's usage."""
        inp, out, read, write, reasoning = self._rates(usage.input_tokens)
        cached = max(usage.cached_tokens, 0)
        written = max(usage.cache_write_tokens, 0)
        plain_input = max(usage.input_tokens - cached - written, 0)
        reasoning_tokens = min(max(usage.reasoning_tokens, 0), max(usage.output_tokens, 0))
        plain_output = max(usage.output_tokens - reasoning_tokens, 0)
        return (
            plain_input * inp
            + cached * read
            + written * write
            + plain_output * out
            + reasoning_tokens * reasoning
        )

    def max_cost(self, input_tokens: int, output_tokens: int) -> float:
        """An upper bound for budget reservation: no cache discount, dearest output rate."""
        inp, out, _read, write, reasoning = self._rates(input_tokens)
        return max(input_tokens, 0) * max(inp, write) + max(output_tokens, 0) * max(out, reasoning)


def usage_from_openai(usage: Mapping[str, Any] | Any | None) -> Usage:
    """A Usage from an OpenAI-shaped usage object (chat/completions, or Responses API).

    Reads prompt_tokens_details.cached_tokens and completion_tokens_details.reasoning_tokens;
    litellm's `cache_read_input_tokens` / `cache_creation_input_tokens` (Anthropic through
    litellm) are understood too. Missing or null fields count as 0.
    """
    if usage is None:
        return Usage(0, 0)
    # (`type(x) is dict` first: the gateway passes parsed JSON on every request, and an
    # isinstance check against the Mapping ABC costs more than the rest of this function.)
    if type(usage) is not dict and not isinstance(usage, Mapping):
        dump = getattr(usage, "model_dump", None)
        usage = dump() if callable(dump) else dict(getattr(usage, "__dict__", {}))
    prompt_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    if type(prompt_details) is not dict and not isinstance(prompt_details, Mapping):
        prompt_details = {}
    if type(completion_details) is not dict and not isinstance(completion_details, Mapping):
        completion_details = {}
    input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    cached = _int(prompt_details.get("cached_tokens")) or _int(usage.get("cache_read_input_tokens"))
    cache_write = _int(usage.get("cache_creation_input_tokens")) or _int(
        prompt_details.get("cache_creation_tokens")
    )
    reasoning = _int(completion_details.get("reasoning_tokens"))
    return Usage(input_tokens, output_tokens, cached, cache_write, reasoning)


def _int(value: Any) -> int:
    if value.__class__ is int:
        return value if value > 0 else 0
    if value is None or isinstance(value, bool):
        return 0
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


# ---------------------------------------------------------------- overrides

_PER_TOKEN_KEYS = {
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
}
_GPU_KEYS = {"gpu_hour_cost", "tokens_per_hour"}


def _number(override: Mapping[str, Any], key: str) -> float:
    value = override[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidInput(
            f"pricing.{key} must be a non-negative number, got {value!r}", param=f"pricing.{key}"
        )
    return float(value)


def validate_override(override: Mapping[str, Any]) -> Price:
    """The Price a deployment's `pricing:` block stands for; InvalidInput if malformed.

    The gateway can call this when it loads its config, so a typo fails at start-up.
    """
    if not isinstance(override, Mapping):
        raise InvalidInput(
            "pricing must be a mapping, e.g. {input_cost_per_token: 1e-6, ...}", param="pricing"
        )
    keys = set(override)
    unknown = keys - _PER_TOKEN_KEYS - _GPU_KEYS - {"cost"}
    if unknown:
        raise InvalidInput(
            f"pricing has unknown field(s) {sorted(unknown)}; use input_cost_per_token and "
            "output_cost_per_token, or cost: 0, or gpu_hour_cost with tokens_per_hour",
            param="pricing",
        )
    if "cost" in keys:
        if keys != {"cost"}:
            raise InvalidInput("pricing.cost cannot be combined with other pricing fields", param="pricing")
        if _number(override, "cost") != 0:
            raise InvalidInput(
                "pricing.cost only accepts 0 (a free model); give per-token prices with "
                "input_cost_per_token and output_cost_per_token",
                param="pricing.cost",
            )
        return Price(0.0, 0.0, 0.0, 0.0, 0.0, source="override:free")
    if keys & _GPU_KEYS:
        if keys != _GPU_KEYS:
            raise InvalidInput(
                "pricing by GPU time needs exactly gpu_hour_cost and tokens_per_hour", param="pricing"
            )
        hour_cost = _number(override, "gpu_hour_cost")
        per_hour = _number(override, "tokens_per_hour")
        if per_hour <= 0:
            raise InvalidInput(
                "pricing.tokens_per_hour must be greater than 0", param="pricing.tokens_per_hour"
            )
        rate = hour_cost / per_hour
        return Price(rate, rate, rate, rate, rate, source="override:gpu")
    missing = {"input_cost_per_token", "output_cost_per_token"} - keys
    if missing:
        raise InvalidInput(
            f"pricing needs {' and '.join(sorted(missing))} (USD per token, e.g. 2.5e-06)", param="pricing"
        )
    optional = {k: _number(override, k) for k in _PER_TOKEN_KEYS & keys}
    return Price(
        input_cost_per_token=optional["input_cost_per_token"],
        output_cost_per_token=optional["output_cost_per_token"],
        cache_read_cost_per_token=optional.get("cache_read_input_token_cost"),
        cache_write_cost_per_token=optional.get("cache_creation_input_token_cost"),
        reasoning_cost_per_token=optional.get("output_cost_per_reasoning_token"),
        source="override",
    )


# ---------------------------------------------------------------- the table


def bundled_table_path() -> Path | None:
    """Where litellm's wheel keeps its price table, found without importing litellm."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / TABLE_FILENAME
    return path if path.is_file() else None


def _rate(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _price_from_entry(key: str, entry: Mapping[str, Any]) -> Price | None:
    inp = _rate(entry, "input_cost_per_token")
    out = _rate(entry, "output_cost_per_token")
    if inp is None:
        return None
    if out is None:
        if entry.get("mode") != "embedding":
            return None  # half a price is not a price
        out = 0.0
    tiers: dict[int, dict[str, float]] = {}
    for name, value in entry.items():
        match = _TIER_KEY.match(name)
        if match and isinstance(value, (int, float)) and not isinstance(value, bool):
            tiers.setdefault(int(match.group(2)) * 1000, {})[match.group(1)] = float(value)
    max_output = entry.get("max_output_tokens")
    return Price(
        input_cost_per_token=inp,
        output_cost_per_token=out,
        cache_read_cost_per_token=_rate(entry, "cache_read_input_token_cost"),
        cache_write_cost_per_token=_rate(entry, "cache_creation_input_token_cost"),
        reasoning_cost_per_token=_rate(entry, "output_cost_per_reasoning_token"),
        tiers=tuple(
            Tier(
                above_tokens=threshold,
                input_cost_per_token=rates.get("input_cost_per_token"),
                output_cost_per_token=rates.get("output_cost_per_token"),
                cache_read_cost_per_token=rates.get("cache_read_input_token_cost"),
                cache_write_cost_per_token=rates.get("cache_creation_input_token_cost"),
            )
            for threshold, rates in sorted(tiers.items())
        ),
        source=f"table:{key}",
        max_output_tokens=max_output if isinstance(max_output, int) and max_output > 0 else None,
    )


def _provider_matches(entry_provider: Any, provider: str) -> bool:
    if not isinstance(entry_provider, str):
        return False
    entry_provider = entry_provider.lower()
    # "vertex_ai" covers "vertex_ai-language-models"; "openai" covers "text-completion-openai".
    return (
        entry_provider == provider
        or entry_provider.startswith(provider + "-")
        or entry_provider == "text-completion-" + provider
    )


# Gateway providers whose model names carry litellm's own prefix ("anthropic/claude-...").
_NAME_CARRIES_PROVIDER = {"litellm"}


class PriceTable:
    """Model prices keyed as litellm keys them ("gpt-4o", "azure/gpt-4o", ...)."""

    _default: PriceTable | None = None
    _default_lock = threading.Lock()

    def __init__(self, entries: Mapping[str, Any]):
        self._entries: dict[str, Mapping[str, Any]] = {}
        self._lower: dict[str, str] = {}
        for key, entry in entries.items():
            if key == "sample_spec" or not isinstance(entry, Mapping):
                continue
            self._entries[key] = entry
            self._lower.setdefault(key.lower(), key)
        self._cache: dict[tuple[str, str | None], Price | None] = {}
        self._override_cache: dict[Any, Price] = {}

    @classmethod
    def release(cls) -> None:
        """Drop the process-wide table (several MB) once its callers hold the prices they
        need: the gateway looks up each deployment's price at start-up, then releases it."""
        with cls._default_lock:
            cls._default = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> PriceTable:
        """The bundled table, read once per process (pass `path` for another file: not cached)."""
        if path is not None:
            return cls.from_file(path)
        if cls._default is None:
            with cls._default_lock:
                if cls._default is None:
                    found = bundled_table_path()
                    if found is None:
                        log.warning("litellm's price table was not found: every model's cost is unknown")
                        cls._default = cls({})
                    else:
                        cls._default = cls.from_file(found)
        return cls._default

    @classmethod
    def from_file(cls, path: str | Path) -> PriceTable:
        with open(os.fspath(path), "rb") as handle:
            return cls(orjson.loads(handle.read()))

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(
        self,
        model: str | None,
        provider: str | None = None,
        override: Mapping[str, Any] | None = None,
        *,
        count_unknown: bool = True,
    ) -> Price | None:
        """The price of `model` (at `provider`, litellm's provider name, when given).

        An override wins over the table. None means unknown: the miss is counted in
        `unknown_price_total` unless count_unknown=False (budget look-ups, previews).
        Provider prefixes in the model name are understood ("anthropic/claude-...");
        provider "litellm" means just that. With any other provider, only that
        provider's price is accepted ("openai", "azure", "anthropic"...): a model served
        by "vllm" or "mock" has no table price, so a self-hosted model that shares a name
        with a hosted one is never charged the hosted price; give it an override.
        """
        if override:
            return self._override_price(override)
        provider = provider.lower() if provider else None
        if provider in _NAME_CARRIES_PROVIDER:
            provider = None
        cache_key = (model or "", provider)
        try:
            price = self._cache[cache_key]
        except KeyError:
            price = self._find(cache_key[0], cache_key[1])
            if len(self._cache) < 100_000:  # model names come from clients: keep memory bounded
                self._cache[cache_key] = price
        if price is None and count_unknown:
            _count_unknown(model or "")
        return price

    def _override_price(self, override: Mapping[str, Any]) -> Price:
        try:
            key: Any = tuple(sorted(override.items()))
            hash(key)
        except TypeError:
            return validate_override(override)
        price = self._override_cache.get(key)
        if price is None:
            price = validate_override(override)
            self._override_cache[key] = price
        return price

    def _entry(self, key: str) -> tuple[str, Mapping[str, Any]] | None:
        entry = self._entries.get(key)
        if entry is not None:
            return key, entry
        real = self._lower.get(key.lower())
        return (real, self._entries[real]) if real is not None else None

    def _find(self, model: str, provider: str | None) -> Price | None:
        if not model:
            return None
        if provider is None:
            found = self._entry(model)
            if found is not None:
                return _price_from_entry(*found)
            if "/" in model:
                prefix, rest = model.split("/", 1)
                return self._find(rest, prefix.lower())
            return None
        found = self._entry(f"{provider}/{model}")
        if found is not None:
            return _price_from_entry(*found)
        found = self._entry(model)
        if found is not None and _provider_matches(found[1].get("litellm_provider"), provider):
            return _price_from_entry(*found)
        if "/" in model:
            prefix, rest = model.split("/", 1)
            if prefix.lower() == provider:
                return self._find(rest, provider)
        return None


def _count_unknown(model: str) -> None:
    global unknown_price_total
    with _counter_lock:
        unknown_price_total += 1
        if model in unknown_price_by_model or len(unknown_price_by_model) < 1000:
            unknown_price_by_model[model] = unknown_price_by_model.get(model, 0) + 1


def cost_of(
    model: str | None,
    usage: Usage,
    provider: str | None = None,
    override: Mapping[str, Any] | None = None,
) -> float | None:
    """Cost of one request, or None (counted) when the model's price is unknown."""
    price = PriceTable.load().lookup(model, provider, override)
    return None if price is None else price.cost(usage)


def max_cost(
    model: str | None,
    input_tokens: int,
    max_tokens: int | None,
    override: Mapping[str, Any] | None = None,
    provider: str | None = None,
) -> float | None:
    """The most a request can cost, to reserve budget before calling the upstream.

    `max_tokens` None: the model's max_output_tokens from the table, else
    DEFAULT_RESERVED_OUTPUT_TOKENS. None when the price is unknown (not counted as a
    miss: the request's final cost look-up counts it).
    """
    price = PriceTable.load().lookup(model, provider, override, count_unknown=False)
    if price is None:
        return None
    if max_tokens is None:
        max_tokens = price.max_output_tokens or DEFAULT_RESERVED_OUTPUT_TOKENS
    return price.max_cost(input_tokens, max_tokens)
