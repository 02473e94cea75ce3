"""Assertions on an agent's step: the tool calls in a reply, and fields of structured output.

    - {type: tool-called, value: get_weather}
    - {type: tool-called, value: {name: get_weather, arguments: {city: Paris}}}   # these values
    - {type: tool-called, value: {name: get_weather, schema: {required: [city]}}} # a JSON Schema
    - {type: tool-not-called, value: delete_account}     # no value: no tool is called at all
    - {type: tool-sequence, value: [search, get_weather]} # the calls in this order, nothing else
    - {type: tool-sequence, value: {sequence: [search, book], allow_extra: true}}  # in order, others between
    - is-valid-tool-call                                  # names a tool of the request, arguments fit its schema
    - {type: json-path, value: {path: $.items[0].sku, equals: A-1}}
    - {type: json-path, value: {path: $.tags, contains: urgent, tool: tag_ticket}}  # in a call's arguments

Argument values match as a subset: every key written must be there with that value
(mappings compared the same way, recursively); keys not written may be anything.
`json-path` reads the output as JSON (a ```json fence allowed), or with `tool:` the
arguments of the first call of that tool; paths are `$`, `.key`, `['key']`, `[n]` and
`[*]`, and with `[*]` the check passes when any match does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from llmops.errors import InvalidInput
from llmops.evaluation.assertions import _FENCE, AssertionSpec, EvalContext, Grade, grader


def _name(call: Mapping[str, Any]) -> str:
    return str((call.get("function") or {}).get("name") or "")


def _arguments(call: Mapping[str, Any]) -> tuple[Any, str | None]:
    """A call's arguments parsed, or the reason they do not parse."""
    raw = (call.get("function") or {}).get("arguments")
    if raw is None or raw == "":
        return {}, None
    if not isinstance(raw, str):
        return raw, None
    try:
        return json.loads(raw), None
    except ValueError as exc:
        return None, f"arguments are not JSON ({exc})"


def _called(ctx: EvalContext) -> str:
    if not ctx.tool_calls:
        return "no tool was called"
    return "called " + ", ".join(f"{_name(c)}({(c.get('function') or {}).get('arguments') or ''})" for c in ctx.tool_calls)


def matches(expected: Any, actual: Any) -> bool:
    """`expected` as a subset of `actual`: mappings key by key, everything else equal."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(k in actual and matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
    return bool(expected == actual)


def _schema_errors(schema: Any, data: Any) -> str | None:
    import jsonschema

    if isinstance(schema, str):
        schema = json.loads(schema)
    try:
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    except jsonschema.SchemaError as exc:
        raise InvalidInput(f"not a valid JSON Schema: {exc.message}") from None
    if not errors:
        return None
    first = errors[0]
    return f"at {'/'.join(map(str, first.path)) or '(root)'}: {first.message}"


def _call_spec(value: Any) -> tuple[str | None, Any, Any]:
    if isinstance(value, str):
        return value, None, None
    if isinstance(value, Mapping):
        unknown = set(value) - {"name", "arguments", "schema"}
        if unknown:
            raise InvalidInput(f"tool-called: unknown keys {sorted(unknown)}; use name, arguments, schema")
        return value.get("name"), value.get("arguments"), value.get("schema")
    raise InvalidInput("tool-called: value is a tool name or {name, arguments | schema}")


@grader("tool-called", needs_value=True)
def _tool_called(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    name, arguments, schema = _call_spec(value)
    candidates = [c for c in ctx.tool_calls if name is None or _name(c) == name]
    if not candidates:
        return Grade(0.0, False, f"{name or 'a tool'} was not called; {_called(ctx)}")
    problems = []
    for call in candidates:
        parsed, bad = _arguments(call)
        if bad:
            problems.append(f"{_name(call)}: {bad}")
            continue
        if arguments is not None and not matches(arguments, parsed):
            problems.append(f"{_name(call)} arguments {json.dumps(parsed, ensure_ascii=False)} do not match {json.dumps(arguments, ensure_ascii=False)}")
            continue
        if schema is not None:
            error = _schema_errors(schema, parsed)
            if error:
                problems.append(f"{_name(call)} arguments do not match the schema {error}")
                continue
        return Grade(1.0, True, f"called {_name(call)} with {json.dumps(parsed, ensure_ascii=False)}")
    return Grade(0.0, False, "; ".join(problems))


@grader("tool-not-called")
def _tool_not_called(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    if value is None:
        ok = not ctx.tool_calls
        return Grade(float(ok), ok, "no tool was called" if ok else _called(ctx))
    names = [value] if isinstance(value, str) else [str(v) for v in value]
    hit = [_name(c) for c in ctx.tool_calls if _name(c) in names]
    return Grade(float(not hit), not hit, f"{', '.join(names)} not called" if not hit else f"{hit[0]} was called")


@grader("tool-sequence", needs_value=True)
def _tool_sequence(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    allow_extra = False
    if isinstance(value, Mapping):
        allow_extra = bool(value.get("allow_extra", False))
        value = value.get("sequence")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput("tool-sequence: value is a list of tool names (or {sequence, allow_extra})")
    made = [_name(c) for c in ctx.tool_calls]
    if allow_extra:
        rest = iter(made)
        ok = all(any(name == seen for seen in rest) for name in value)  # an in-order subsequence
    else:
        ok = made == value
    said = f"calls {made or 'none'}"
    return Grade(float(ok), ok, f"{said} {'follow' if ok else 'do not follow'} {value}" + (" (others allowed)" if allow_extra else ""))


def _declared(tools: list[dict[str, Any]] | None) -> dict[str, Any]:
    found = {}
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            found[function["name"]] = function.get("parameters") or {"type": "object"}
    return found


@grader("is-valid-tool-call")
def _is_valid_tool_call(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    """Every call names a tool the request offered, with arguments valid against its parameters."""
    declared = _declared(value if isinstance(value, list) else ctx.tools)
    if not declared:
        raise InvalidInput("is-valid-tool-call: the request has no `tools` (set them in params) and no value lists any")
    if not ctx.tool_calls:
        return Grade(0.0, False, "no tool was called")
    for call in ctx.tool_calls:
        name = _name(call)
        if name not in declared:
            return Grade(0.0, False, f"{name!r} is not one of the request's tools ({', '.join(sorted(declared))})")
        parsed, bad = _arguments(call)
        if bad:
            return Grade(0.0, False, f"{name}: {bad}")
        error = _schema_errors(declared[name], parsed)
        if error:
            return Grade(0.0, False, f"{name}: arguments do not match its parameters {error}")
    return Grade(1.0, True, f"{len(ctx.tool_calls)} valid tool call(s)")


# --- JSON paths ------------------------------------------------------------------------------

_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+|\*)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]|\.(\*)")


def parse_path(path: str) -> list[str | int]:
    """`$.a.b[0]['c d'][*]` as steps: keys, indexes and "*"."""
    if not path.startswith("$"):
        raise InvalidInput(f"json-path {path!r}: a path starts with $")
    steps: list[str | int] = []
    at = 1
    while at < len(path):
        match = _STEP.match(path, at)
        if match is None:
            raise InvalidInput(f"json-path {path!r}: cannot read it from {path[at:]!r} (use .key, ['key'], [n], [*])")
        key, index, quoted, double, star = match.groups()
        if index is not None:
            steps.append("*" if index == "*" else int(index))
        elif star is not None:
            steps.append("*")
        else:
            steps.append(next(k for k in (key, quoted, double) if k is not None))
        at = match.end()
    return steps


def find(data: Any, steps: list[str | int]) -> list[Any]:
    found = [data]
    for step in steps:
        following: list[Any] = []
        for node in found:
            if step == "*":
                following.extend(node.values() if isinstance(node, Mapping) else node if isinstance(node, list) else [])
            elif isinstance(step, int):
                if isinstance(node, list) and -len(node) <= step < len(node):
                    following.append(node[step])
            elif isinstance(node, Mapping) and step in node:
                following.append(node[step])
        found = following
    return found


def _contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, str):
        return str(needle) in haystack
    if isinstance(haystack, list):
        return any(matches(needle, item) for item in haystack)
    if isinstance(haystack, Mapping):
        return matches(needle, haystack)
    return False


@grader("json-path", needs_value=True)
def _json_path(spec: AssertionSpec, ctx: EvalContext, value: Any) -> Grade:
    if not isinstance(value, Mapping) or "path" not in value or not ({"equals", "contains"} & set(value)):
        raise InvalidInput("json-path: value is {path, equals: X} or {path, contains: X} (and optionally tool: NAME)")
    steps = parse_path(str(value["path"]))
    tool = value.get("tool")
    if tool:
        call = next((c for c in ctx.tool_calls if _name(c) == tool), None)
        if call is None:
            return Grade(0.0, False, f"{tool} was not called; {_called(ctx)}")
        data, bad = _arguments(call)
        if bad:
            return Grade(0.0, False, f"{tool}: {bad}")
        where = f"{tool} arguments"
    else:
        fenced = _FENCE.match(ctx.output)
        try:
            data = json.loads(fenced.group(1) if fenced else ctx.output)
        except ValueError as exc:
            return Grade(0.0, False, f"the output is not JSON: {exc}")
        where = "output"
    found = find(data, steps)
    if not found:
        return Grade(0.0, False, f"{value['path']} not found in the {where}")
    if "equals" in value:
        ok = any(item == value["equals"] for item in found)
        verb, expected = "equals", value["equals"]
    else:
        ok = any(_contains(item, value["contains"]) for item in found)
        verb, expected = "contains", value["contains"]
    shown = json.dumps(found[0] if len(found) == 1 else found, ensure_ascii=False)[:120]
    expected_text = json.dumps(expected, ensure_ascii=False)
    return Grade(
        float(ok), ok, f"{value['path']} {verb} {expected_text}" if ok else f"{value['path']} is {shown}, not {verb} {expected_text}"
    )
