"""Sandboxed Jinja2 rendering of prompt templates.

Templates are authored by people with registry access, but variables arrive from
applications and end users, and templates travel through git and the UI: they run in
an ImmutableSandboxedEnvironment (no dunder access, no mutation of values) with
StrictUndefined. Missing variables are found before rendering, so one error names
all of them instead of the first one Jinja trips on.
"""

from __future__ import annotations

import operator
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from threading import Lock
from typing import Any

import jinja2
from jinja2 import StrictUndefined, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from llmops.errors import TemplateError

# A render may not build a value larger than this with `*` or `**` ('x' * 10**9).
MAX_PRODUCT_SIZE = 1_000_000
# Nor write more than this many characters (the gateway's default max_body_bytes: a
# rendered prompt must not be a way around the limit on what a client may send), nor
# run longer than this many seconds (checked as it writes and as its `range` loops turn).
MAX_RENDER_CHARS = 4 * 1024 * 1024
MAX_RENDER_SECONDS = 0.5
_TICK_EVERY = 1024  # range items between two looks at the clock


class _PromptSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator_name: str, left: Any, right: Any) -> Any:
        if operator_name == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_PRODUCT_SIZE:
                        raise jinja2.exceptions.SecurityError("template built a value that is too large")
            return operator.mul(left, right)
        if operator_name == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * max(abs(left).bit_length(), 1) > 64 * MAX_PRODUCT_SIZE:
                    raise jinja2.exceptions.SecurityError("template built a number that is too large")
            return operator.pow(left, right)
        return super().call_binop(context, operator_name, left, right)


_env = _PromptSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_render_deadline = threading.local()  # the monotonic time the render on this thread must end by


def _timed_range(*args: int) -> Iterator[int]:
    """The sandbox's `range`, looking at the render's deadline as it goes (a loop that
    writes nothing is otherwise never interrupted)."""
    deadline = getattr(_render_deadline, "at", None)
    for i, value in enumerate(safe_range(*args)):
        if i % _TICK_EVERY == 0 and deadline is not None and time.monotonic() > deadline:
            raise jinja2.exceptions.SecurityError(f"template took over {MAX_RENDER_SECONDS:g}s to render")
        yield value


_env.globals["range"] = _timed_range

# `{{ x | default('') }}` and `{% if x is defined %}` make a variable optional.
_GUARD_FILTERS = frozenset({"default", "d"})
_GUARD_TESTS = frozenset({"defined", "undefined"})


def _defined_test(test: nodes.Node) -> tuple[str | None, bool]:
    """(name, True) for `name is defined`, (name, False) for `name is undefined` / `not name is defined`."""
    negate = False
    if isinstance(test, nodes.Not):
        test, negate = test.node, True
    if isinstance(test, nodes.Test) and test.name in _GUARD_TESTS and isinstance(test.node, nodes.Name):
        return test.node.name, (test.name == "defined") != negate
    return None, False


def _required(ast: nodes.Template, free: frozenset[str]) -> frozenset[str]:
    """The free variables read at least once outside a default filter or a defined test."""
    required: set[str] = set()

    def walk(node: nodes.Node, safe: frozenset[str]) -> None:
        if (
            isinstance(node, nodes.Name)
            and node.ctx == "load"
            and node.name in free
            and node.name not in safe
        ):
            required.add(node.name)
        if isinstance(node, nodes.Filter | nodes.Test) and node.name in _GUARD_FILTERS | _GUARD_TESTS:
            if isinstance(node.node, nodes.Name):
                safe = safe | {node.node.name}  # `x | default(...)`, `x is defined`: x itself may be absent
        if isinstance(node, nodes.If):
            name, defined = _defined_test(node.test)
            if name is not None:
                walk(node.test, safe)
                for child in node.body:  # `{% if x is defined %}` guards x in its body...
                    walk(child, safe | {name} if defined else safe)
                for child in [*node.elif_, *node.else_]:  # ...and `is undefined` in the rest
                    walk(child, safe if defined else safe | {name})
                return
        for child in node.iter_child_nodes():
            walk(child, safe)

    walk(ast, frozenset())
    return frozenset(required)


# Compiled templates by source: compiling costs far more than rendering, and the
# gateway renders the same few templates all day.
_compiled: OrderedDict[str, tuple[jinja2.Template, frozenset[str], frozenset[str]]] = OrderedDict()
_compiled_lock = Lock()
_COMPILED_MAX = 512


def _compile(source: str, where: str) -> tuple[jinja2.Template, frozenset[str], frozenset[str]]:
    """(template, variables read from outside, those of them that are required)."""
    hit = _compiled.get(source)
    if hit is not None:
        return hit
    try:
        ast = _env.parse(source)
        names = frozenset(meta.find_undeclared_variables(ast))
        required = _required(ast, names)
        template = _env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error in {where}, line {exc.lineno}: {exc.message}") from None
    with _compiled_lock:
        _compiled[source] = (template, names, required)
        while len(_compiled) > _COMPILED_MAX:
            _compiled.popitem(last=False)
    return template, names, required


def check_syntax(source: str, where: str = "template") -> None:
    _compile(source, where)


def used_variables(sources: Iterable[str]) -> set[str]:
    """Variables the templates read from outside (loop and `set` variables excluded)."""
    found: set[str] = set()
    for source in sources:
        found |= _compile(source, "template")[1]
    return found


def missing_variables(
    sources: Iterable[str], declared: Mapping[str, Any], given: Mapping[str, Any]
) -> list[str]:
    """Variables the templates need but that are neither given nor defaulted.

    Found before rendering (jinja2.meta), so the error names all of them. A declared
    default of None means "no default"; a variable read only through `| default(...)`
    or an `is defined` test is optional.
    """
    required: set[str] = set()
    for source in sources:
        required |= _compile(source, "template")[2]
    defaults = {name for name, default in declared.items() if default is not None}
    return sorted(required - set(given) - defaults)


def render_source(source: str, values: Mapping[str, Any], where: str) -> str:
    template = _compile(source, where)[0]
    deadline = time.monotonic() + MAX_RENDER_SECONDS
    _render_deadline.at = deadline
    try:
        parts: list[str] = []
        size = 0
        for part in template.generate(values):
            parts.append(part)
            size += len(part)
            if size > MAX_RENDER_CHARS:
                raise jinja2.exceptions.SecurityError(f"template wrote over {MAX_RENDER_CHARS} characters")
            if time.monotonic() > deadline:
                raise jinja2.exceptions.SecurityError(f"template took over {MAX_RENDER_SECONDS:g}s to render")
        return "".join(parts)
    except jinja2.exceptions.SecurityError as exc:
        raise TemplateError(f"unsafe template operation refused in {where}: {exc}") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template error in {where}: {exc}") from None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template error in {where}: {exc}") from None
    except Exception as exc:  # a template can divide by zero, index out of range...
        raise TemplateError(f"template failed in {where}: {type(exc).__name__}: {exc}") from None
    finally:
        _render_deadline.at = None
