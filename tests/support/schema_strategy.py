"""Hypothesis strategies for the values a JSON Schema allows (the subset the gateway's
OpenAPI document uses).

hypothesis-jsonschema would do this, but it reaches into Hypothesis internals that
current Hypothesis no longer has. Every value drawn here is checked against the schema
with `jsonschema` before it is used, so a keyword this module reads loosely (`not`,
`if`/`then`, a pattern) can only make it draw less, never draw something invalid.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import strategies as st

_SCALARS = {
    "null": st.none(),
    "boolean": st.booleans(),
}
_EXTRA_VALUES = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=8)


def _merge(base: dict[str, Any], branch: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in base.items() if k != "anyOf"}
    for key, value in branch.items():
        if key == "required":
            out["required"] = sorted({*out.get("required", []), *value})
        elif key == "properties":
            out["properties"] = {**out.get("properties", {}), **value}
        else:
            out.setdefault(key, value)
    return out


def _string(schema: dict[str, Any]) -> st.SearchStrategy:
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True)
    low = schema.get("minLength", 0)
    high = schema.get("maxLength", max(low, 30))
    return st.text(min_size=low, max_size=min(high, low + 30))


def _number(schema: dict[str, Any], integer: bool) -> st.SearchStrategy:
    low, high = schema.get("minimum"), schema.get("maximum")
    if integer:
        return st.integers(min_value=low if low is not None else -(2**40),
                           max_value=high if high is not None else 2**40)
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False) | st.integers(
        min_value=int(low) if low is not None else -1000, max_value=int(high) if high is not None else 1000)


def _object(schema: dict[str, Any]) -> st.SearchStrategy:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    optional = sorted(set(properties) - required)
    open_ = schema.get("additionalProperties", True) is not False

    @st.composite
    def build(draw) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in sorted(required):
            out[name] = draw(values(properties.get(name, {})))
        for name in optional:
            if draw(st.booleans()):
                out[name] = draw(values(properties[name]))
        if open_ and draw(st.integers(0, 4)) == 0:
            extra = draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in properties))
            out[extra] = draw(_EXTRA_VALUES)
        return out

    return build()


def values(schema: dict[str, Any]) -> st.SearchStrategy:
    """Values `schema` may allow: checked here where it uses keywords this module does
    not build from (`not`, `if`), unchecked elsewhere (`valid` checks the whole)."""
    strategy = _values(schema)
    if isinstance(schema, dict) and ("not" in schema or "if" in schema or "allOf" in schema):
        strategy = strategy.filter(jsonschema.Draft202012Validator(schema).is_valid)
    return strategy


def _values(schema: dict[str, Any]) -> st.SearchStrategy:
    if schema is True or schema == {}:
        return _EXTRA_VALUES
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "title", "description", "default")}
        return st.one_of([values(_merge(rest, branch) if rest else branch) for branch in schema["anyOf"]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([values({**schema, "type": k}) for k in kind])
    if kind is None:
        kind = "object" if "properties" in schema or "required" in schema else None
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "array":
        low = schema.get("minItems", 0)
        return st.lists(values(schema.get("items", {})), min_size=low, max_size=schema.get("maxItems", low + 3))
    if kind == "object":
        return _object(schema)
    return _EXTRA_VALUES


def valid(schema: dict[str, Any]) -> st.SearchStrategy:
    """Values `schema` allows, each checked against it."""
    check = jsonschema.Draft202012Validator(schema).is_valid
    return values(schema).filter(check)
