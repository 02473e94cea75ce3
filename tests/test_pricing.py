"""Prices come from litellm's bundled table (read as a file), overrides win, unknown stays unknown."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from llmops import pricing
from llmops.errors import InvalidInput
from llmops.pricing import PriceTable, Usage, max_cost, usage_from_openai


@pytest.fixture(scope="module")
def raw_table() -> dict:
    """The same JSON file, read independently, so expectations follow litellm upgrades."""
    path = pricing.bundled_table_path()
    assert path is not None, "litellm's bundled price table is missing"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_table_is_litellms_bundled_file_loaded_once(table):
    assert len(table) > 1000
    assert PriceTable.load() is table


def test_plain_input_and_output_tokens(table, raw_table):
    entry = raw_table["gpt-4o"]
    price = table.lookup("gpt-4o")
    assert price is not None
    cost = price.cost(Usage(input_tokens=1000, output_tokens=200))
    assert cost == pytest.approx(1000 * entry["input_cost_per_token"] + 200 * entry["output_cost_per_token"])


def test_cached_input_tokens_are_priced_at_the_cache_read_rate(table, raw_table):
    entry = raw_table["gpt-4o"]
    usage = usage_from_openai(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 100,
            "total_tokens": 1100,
            "prompt_tokens_details": {"cached_tokens": 600, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
    )
    assert usage == Usage(1000, 100, cached_tokens=600)
    expected = (
        400 * entry["input_cost_per_token"]
        + 600 * entry["cache_read_input_token_cost"]
        + 100 * entry["output_cost_per_token"]
    )
    assert table.lookup("gpt-4o").cost(usage) == pytest.approx(expected)
    assert expected < table.lookup("gpt-4o").cost(Usage(1000, 100))


def test_cache_writes_are_priced_at_the_cache_creation_rate(table, raw_table):
    entry = raw_table["claude-sonnet-4-5"]
    # Anthropic through litellm: prompt_tokens includes cache reads and writes.
    usage = usage_from_openai(
        {
            "prompt_tokens": 3000,
            "completion_tokens": 50,
            "cache_creation_input_tokens": 2000,
            "prompt_tokens_details": {"cached_tokens": 500},
        }
    )
    assert usage == Usage(3000, 50, cached_tokens=500, cache_write_tokens=2000)
    expected = (
        500 * entry["input_cost_per_token"]
        + 500 * entry["cache_read_input_token_cost"]
        + 2000 * entry["cache_creation_input_token_cost"]
        + 50 * entry["output_cost_per_token"]
    )
    assert table.lookup("anthropic/claude-sonnet-4-5").cost(usage) == pytest.approx(expected)


def test_reasoning_tokens_use_their_own_rate_when_the_table_has_one(table, raw_table):
    key = next(
        k
        for k, v in raw_table.items()
        if isinstance(v, dict)
        and k != "sample_spec"
        and isinstance(v.get("output_cost_per_reasoning_token"), float)
        and isinstance(v.get("input_cost_per_token"), float)
        and isinstance(v.get("output_cost_per_token"), float)
        and v["output_cost_per_reasoning_token"] != v["output_cost_per_token"]
        and not any("_above_" in name for name in v)
    )
    entry = raw_table[key]
    usage = usage_from_openai(
        {
            "prompt_tokens": 10,
            "completion_tokens": 300,
            "completion_tokens_details": {"reasoning_tokens": 200},
        }
    )
    assert usage.reasoning_tokens == 200
    expected = (
        10 * entry["input_cost_per_token"]
        + 100 * entry["output_cost_per_token"]
        + 200 * entry["output_cost_per_reasoning_token"]
    )
    assert table.lookup(key).cost(usage) == pytest.approx(expected)
    # Without a reasoning rate (gpt-4o), reasoning tokens are output tokens.
    gpt = table.lookup("gpt-4o")
    assert gpt.cost(usage) == pytest.approx(gpt.cost(Usage(10, 300)))


def test_long_prompts_take_the_tier_rate(table, raw_table):
    entry = raw_table["gemini/gemini-2.5-pro"]
    price = table.lookup("gemini/gemini-2.5-pro")
    short = price.cost(Usage(100_000, 1000))
    assert short == pytest.approx(
        100_000 * entry["input_cost_per_token"] + 1000 * entry["output_cost_per_token"]
    )
    long = price.cost(Usage(250_000, 1000))
    assert long == pytest.approx(
        250_000 * entry["input_cost_per_token_above_200k_tokens"]
        + 1000 * entry["output_cost_per_token_above_200k_tokens"]
    )


def test_provider_selects_the_providers_price(table, raw_table):
    assert table.lookup("gpt-4o", provider="openai").source == "table:gpt-4o"
    assert table.lookup("openai/gpt-4o").source == "table:gpt-4o"
    azure = table.lookup("gpt-4o", provider="azure")
    assert azure.source == "table:azure/gpt-4o"
    assert azure.input_cost_per_token == raw_table["azure/gpt-4o"]["input_cost_per_token"]
    # Through litellm, the model name carries the provider.
    assert table.lookup("anthropic/claude-sonnet-4-5", provider="litellm").source == "table:claude-sonnet-4-5"


def test_a_self_hosted_model_is_never_charged_a_hosted_price(table):
    before = pricing.unknown_price_total
    assert table.lookup("gpt-4o", provider="vllm") is None
    assert table.lookup("gpt-4o", provider="mock") is None
    assert pricing.unknown_price_total == before + 2


def test_unknown_model_is_unknown_and_counted_not_zero(table):
    before = pricing.unknown_price_total
    before_model = pricing.unknown_price_by_model.get("acme-secret-model-9", 0)
    assert table.lookup("acme-secret-model-9") is None
    assert table.lookup("acme-secret-model-9") is None  # cached, still counted
    assert pricing.unknown_price_total == before + 2
    assert pricing.unknown_price_by_model["acme-secret-model-9"] == before_model + 2
    assert pricing.cost_of("acme-secret-model-9", Usage(10, 10)) is None
    # A look-up for a reservation does not count as a request with an unknown price.
    assert max_cost("acme-secret-model-9", 10, 10) is None
    assert pricing.unknown_price_total == before + 3


def test_override_per_token_prices(table):
    override = {
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 3e-6,
        "cache_read_input_token_cost": 1e-7,
    }
    price = table.lookup("gpt-4o", provider="openai", override=override)
    assert price.source == "override"
    assert price.cost(Usage(1000, 100, cached_tokens=500)) == pytest.approx(500e-6 + 500e-7 + 300e-6)
    # Unlisted rates default to the plain input/output rate.
    assert price.cost(Usage(1000, 100, cache_write_tokens=1000, reasoning_tokens=100)) == pytest.approx(
        1000e-6 + 300e-6
    )


def test_free_and_gpu_time_overrides(table):
    free = table.lookup("tiny-llama", provider="vllm", override={"cost": 0})
    assert free.cost(Usage(10_000, 10_000, cached_tokens=5000, reasoning_tokens=10)) == 0.0
    gpu = table.lookup(
        "tiny-llama", provider="vllm", override={"gpu_hour_cost": 2.5, "tokens_per_hour": 3_600_000}
    )
    # 3.6M tokens an hour at $2.5/hour: every token, input or output, costs 2.5/3.6M.
    assert gpu.cost(Usage(2_000_000, 1_600_000)) == pytest.approx(2.5)
    assert gpu.cost(Usage(1000, 0)) == pytest.approx(1000 * 2.5 / 3_600_000)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"cost": 1.5}, "only accepts 0"),
        ({"input_cost_per_token": 1e-6}, "output_cost_per_token"),
        ({"gpu_hour_cost": 2.5}, "tokens_per_hour"),
        ({"gpu_hour_cost": 2.5, "tokens_per_hour": 0}, "greater than 0"),
        ({"input_cost_per_tokn": 1e-6, "output_cost_per_token": 1e-6}, "unknown field"),
        ({"input_cost_per_token": -1, "output_cost_per_token": 1e-6}, "non-negative"),
        ({"cost": 0, "input_cost_per_token": 1e-6}, "cannot be combined"),
    ],
)
def test_malformed_overrides_are_refused_with_a_clear_message(table, override, message):
    with pytest.raises(InvalidInput, match=message):
        table.lookup("gpt-4o", override=override)


def test_usage_from_openai_tolerates_missing_and_null_details():
    assert usage_from_openai(None) == Usage(0, 0)
    assert usage_from_openai({"prompt_tokens": 5, "completion_tokens": 7}) == Usage(5, 7)
    assert usage_from_openai(
        {
            "prompt_tokens": 5,
            "completion_tokens": 7,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        }
    ) == Usage(5, 7)
    # The Responses API spells it input/output tokens.
    assert usage_from_openai(
        {
            "input_tokens": 50,
            "output_tokens": 20,
            "input_tokens_details": {"cached_tokens": 10},
            "output_tokens_details": {"reasoning_tokens": 5},
        }
    ) == Usage(50, 20, cached_tokens=10, reasoning_tokens=5)


def test_max_cost_bounds_any_outcome_of_the_request(table, raw_table):
    entry = raw_table["claude-sonnet-4-5"]
    bound = max_cost("claude-sonnet-4-5", 1000, 500, provider="anthropic")
    # No cache discount, and the dearer of the input and cache-write rates.
    assert bound == pytest.approx(
        1000 * entry["cache_creation_input_token_cost"] + 500 * entry["output_cost_per_token"]
    )
    price = table.lookup("claude-sonnet-4-5", provider="anthropic")
    for usage in (
        Usage(1000, 500),
        Usage(1000, 500, cached_tokens=900),
        Usage(1000, 500, cache_write_tokens=1000),
    ):
        assert price.cost(usage) <= bound + 1e-12
    # No max_tokens: the model's own output limit from the table.
    assert max_cost("gpt-4o", 100, None) == pytest.approx(
        100 * raw_table["gpt-4o"]["input_cost_per_token"]
        + raw_table["gpt-4o"]["max_output_tokens"] * raw_table["gpt-4o"]["output_cost_per_token"]
    )
    assert max_cost("tiny-llama", 100, 100, override={"cost": 0}) == 0.0


def test_pricing_never_imports_litellm(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from llmops.pricing import PriceTable, Usage
        assert PriceTable.load().lookup("gpt-4o").cost(Usage(10, 10)) > 0
        assert "litellm" not in sys.modules, "pricing imported litellm"
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
