"""The guardrails pipeline: input checks before the model call, output checks after it.

```python
pipe = Pipeline(GuardrailsConfig.default())
res = pipe.check_input(messages, model="gpt-4o")
if res.blocked:
    raise res.error()            # GuardrailBlocked: 400, code guardrail_blocked
forward(res.messages)            # redacted copies; the originals are not modified
ledger.record(res.verdicts)      # JSON-serialisable, never the matched text
```

Checks run in config order; a redaction is seen by the checks after it. Every check
runs even after one blocks, so the verdicts are complete. Plugins and the judge run
with a timeout; when one fails, `on_error` decides: "open" records the error and lets
the text through, "closed" blocks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from llmops.guardrails.base import Check, builtin, builtin_names, parse_options
from llmops.guardrails.config import CheckSpec, GuardrailsConfig, GuardrailsOverride
from llmops.guardrails.judge import JudgeFn
from llmops.guardrails.plugins import PluginCheck, is_import_path
from llmops.guardrails.text import TextView
from llmops.guardrails.types import Detection, GuardrailBlocked, GuardrailConfigError, Stage, apply_spans

DEFAULT_PLUGIN_TIMEOUT = 1.0
DEFAULT_JUDGE_TIMEOUT = 10.0
FAILED_CLOSED_MESSAGE = "The request was blocked: a required safety check could not run. Try again later."
_CACHE_SIZE = 256
# Verdicts on texts seen before (see SeenTexts): at most this many characters of text.
SEEN_TEXTS_CHARS = 2_000_000
# Texts longer than this (in all, per check_*_async call) are checked in a worker thread:
# there the default checks cost more than the gateway's own work on a request (about
# 1 ms for 16 KB, see benchmarks/bench_guardrails.py), and on the event loop they would
# hold up every other request for that long. In a thread, the interpreter hands the loop
# the GIL every few milliseconds (sys.getswitchinterval), so other requests go on.
OFF_LOOP_CHARS = 16_384

# Sync plugins in the sync path run here, so that their timeout can be enforced.
_plugin_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _plugin_pool
    with _pool_lock:
        if _plugin_pool is None:
            _plugin_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="guardrail-plugin")
        return _plugin_pool


class SeenTexts:
    """What the built-in checks found in texts that come back: the system prompt sent
    with every call, and the earlier turns a chat client resends each time.

    Only messages before the last one are looked up and remembered: the last message is
    the new one, and remembering one-off texts would only push out the ones that repeat.
    Bounded by characters held; when full it starts over (cheaper than LRU bookkeeping
    on every lookup, and refilled within a few calls). Plugins and the judge are never
    cached: they may not be deterministic.
    """

    def __init__(self, max_chars: int = SEEN_TEXTS_CHARS):
        self.max_chars = max_chars
        self._found: dict[tuple[int, str], Detection | None] = {}
        self._chars = 0

    def get(self, token: int, text: str) -> Detection | None | bool:
        """The detection (or None), or False when this text was not seen by this check."""
        return self._found.get((token, text), False)

    def put(self, token: int, text: str, detection: Detection | None) -> None:
        if len(text) > self.max_chars // 8:
            return
        if self._chars + len(text) > self.max_chars:
            self._found = {}
            self._chars = 0
        self._found[(token, text)] = detection
        self._chars += len(text)


_tokens = itertools.count(1)


@dataclass(frozen=True)
class BoundCheck:
    """A check with what its config entry says about running it (plain attributes: they
    are read for every message of every request)."""

    name: str
    check: Check
    spec: CheckSpec
    roles: frozenset[str] | None
    timeout: float | None
    action: str = field(init=False)
    is_plugin: bool = field(init=False)
    # Runs in the async pass: the judge and plugins (which get a timeout).
    runs_async: bool = field(init=False)
    block_message: str = field(init=False)
    # Names this binding in SeenTexts (a check with other options is another binding).
    token: int = field(init=False)
    conversation: bool = field(init=False)
    scan: Any = field(init=False)  # the check's bound scan method, looked up once

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", next(_tokens))
        is_plugin = isinstance(self.check, PluginCheck)
        object.__setattr__(self, "action", self.spec.action)
        object.__setattr__(self, "is_plugin", is_plugin)
        object.__setattr__(self, "runs_async", self.check.is_async or is_plugin)
        object.__setattr__(self, "block_message", self.spec.message or self.check.block_message)
        object.__setattr__(self, "conversation", self.check.scope == "conversation")
        object.__setattr__(self, "scan", self.check.scan)


@dataclass(frozen=True)
class CompiledConfig:
    enabled: bool
    input: tuple[BoundCheck, ...]
    output: tuple[BoundCheck, ...]
    # Some check (judge, plugin) runs only fully, or only without blocking, in the async methods.
    input_async: bool = False
    output_async: bool = False

    def stage(self, stage: Stage) -> tuple[BoundCheck, ...]:
        return self.input if stage == "input" else self.output


@dataclass
class GuardrailResult:
    """What the checks decided about one input or one output.

    - `blocked` / `blocked_by`: the first blocking check, in config order.
    - `message`: for the end user; never repeats what was matched.
    - `text`: the redacted text (for a list of messages, their text parts joined by blank lines).
    - `messages`: the redacted messages (copies), or None when a plain text was checked.
    - `verdicts`: one dict per check that fired or failed: {check, action, stage, labels,
      matched, score} plus `error` when it could not run. JSON-serialisable.
    """

    blocked: bool
    blocked_by: str | None
    message: str
    text: str
    messages: list[dict[str, Any]] | None
    verdicts: list[dict[str, Any]]
    redacted: bool = False

    @property
    def flagged(self) -> bool:
        """A check found something, or blocked: a check that merely failed open did not."""
        return self.blocked or any("error" not in v for v in self.verdicts)

    @property
    def checks(self) -> list[str]:
        """The checks that found something (or blocked by failing closed)."""
        return [v["check"] for v in self.verdicts if "error" not in v or v["check"] == self.blocked_by]

    def error(self) -> GuardrailBlocked | None:
        """The exception the gateway turns into a 400 `guardrail_blocked`, if blocked."""
        if not self.blocked or self.blocked_by is None:
            return None
        return GuardrailBlocked(self.blocked_by, self.message, self.verdicts)

    def raise_for_block(self) -> None:
        err = self.error()
        if err is not None:
            raise err


@dataclass(slots=True)
class _Segment:
    """One piece of text inside the checked messages, and where it goes back."""

    role: str
    message_index: int
    part_index: int | None
    text: str
    changed: bool = False
    _view: TextView | None = None
    # Part of a message before the last one: a text likely to come back (SeenTexts).
    repeats: bool = False

    @property
    def view(self) -> TextView:
        if self._view is None or self._view.text is not self.text:
            self._view = TextView(self.text)
        return self._view

    def replace(self, text: str) -> None:
        if text != self.text:
            self.text = text
            self.changed = True


@dataclass(slots=True)
class _Run:
    """The state of one check_* call: segments, verdicts by check, the first block."""

    stage: Stage
    segments: list[_Segment]
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    blocked_by: BoundCheck | None = None
    failed_closed: bool = False
    # The segments each role filter selects (targets); checks mostly share a few filters.
    _by_roles: dict[frozenset[str], list[_Segment]] = field(default_factory=dict)

    def record(self, bound: BoundCheck, detection: Detection) -> None:
        verdict = self.verdicts.get(bound.name)
        if verdict is None:
            self.verdicts[bound.name] = {
                "check": bound.name,
                "action": bound.action,
                "stage": self.stage,
                "labels": list(detection.labels),
                "matched": detection.matched,
                "score": detection.score,
            }
        else:
            verdict["labels"] = sorted(set(verdict["labels"]) | set(detection.labels))
            verdict["matched"] += detection.matched
            verdict["score"] = max(verdict["score"], detection.score)
        if bound.action == "block" and self.blocked_by is None:
            self.blocked_by = bound

    def record_error(self, bound: BoundCheck, error: str) -> None:
        self.verdicts[bound.name] = {
            "check": bound.name,
            "action": bound.action,
            "stage": self.stage,
            "labels": [],
            "matched": 0,
            "score": None,
            "error": error,
        }
        if bound.spec.on_error == "closed" and self.blocked_by is None:
            self.blocked_by = bound
            self.failed_closed = True

    def targets(self, bound: BoundCheck) -> list[_Segment]:
        roles = bound.roles
        if roles is None or self.stage == "output":
            return self.segments
        found = self._by_roles.get(roles)
        if found is None:
            found = self._by_roles[roles] = [s for s in self.segments if s.role in roles]
        return found

    def apply(self, bound: BoundCheck, segment: _Segment, detection: Detection) -> None:
        self.record(bound, detection)
        if bound.action != "redact":
            return
        if detection.replacement is not None:
            segment.replace(detection.replacement)
        elif detection.spans:
            segment.replace(apply_spans(segment.text, detection.spans))


class Pipeline:
    """Runs the configured checks. Thread-safe; build once and share."""

    def __init__(self, config: GuardrailsConfig | dict[str, Any] | None = None, *, judge: JudgeFn | None = None):
        if config is None:
            config = GuardrailsConfig.default()
        elif isinstance(config, dict):
            config = GuardrailsConfig.from_dict(config)
        self.config = config
        self.judge = judge
        self._cache: OrderedDict[tuple[str | None, str | None], CompiledConfig] = OrderedDict()
        self._seen = SeenTexts()
        self._lock = threading.Lock()
        self._base = self._compile(config.resolve())
        # Build every model override now, so a bad one fails at start-up, not per request.
        for pattern in config.models:
            self._compile(config.resolve(pattern))

    @classmethod
    def from_file(cls, path: str, *, judge: JudgeFn | None = None) -> Pipeline:
        return cls(GuardrailsConfig.from_file(path), judge=judge)

    # --- which checks apply ---------------------------------------------------------------

    def compiled(self, model: str | None = None, key_overrides: dict | GuardrailsOverride | None = None) -> CompiledConfig:
        if not key_overrides and (not model or not self.config.override_for(model)):
            return self._base
        key_json = None
        if key_overrides:
            raw = key_overrides.model_dump(exclude_unset=True) if isinstance(key_overrides, GuardrailsOverride) else key_overrides
            key_json = json.dumps(raw, sort_keys=True, default=str)
        cache_key = (model, key_json)
        with self._lock:
            found = self._cache.get(cache_key)
            if found is not None:
                self._cache.move_to_end(cache_key)
                return found
        compiled = self._compile(self.config.resolve(model, key_overrides))
        with self._lock:
            self._cache[cache_key] = compiled
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def has_input_checks(self, *, model: str | None = None, key_overrides: dict | None = None) -> bool:
        compiled = self.compiled(model, key_overrides)
        return compiled.enabled and bool(compiled.input)

    def has_output_checks(self, *, model: str | None = None, key_overrides: dict | None = None) -> bool:
        compiled = self.compiled(model, key_overrides)
        return compiled.enabled and bool(compiled.output)

    def needs_async(self, *, model: str | None = None, key_overrides: dict | None = None,
                    stage: Stage | None = None) -> bool:
        """True when some check (judge, plugin) runs fully only in the async methods: an
        async caller then uses them, so that a slow plugin waits in a thread instead of
        holding up its event loop. (The gateway reads the same from the CompiledConfig it
        resolved for the request: `input_async`, `output_async`.)"""
        compiled = self.compiled(model, key_overrides)
        if not compiled.enabled:
            return False
        if stage is None:
            return compiled.input_async or compiled.output_async
        return compiled.input_async if stage == "input" else compiled.output_async

    # --- input ----------------------------------------------------------------------------

    def check_input(self, messages: list[dict[str, Any]] | str, *, model: str | None = None,
                    key_overrides: dict | GuardrailsOverride | None = None,
                    compiled: CompiledConfig | None = None) -> GuardrailResult:
        """Sync and fast: every check but the judge; plugins run with their timeout.

        `compiled`: what `compiled(model, key_overrides)` returned, for a caller that
        asks more than once per request (the gateway); model and key_overrides are then
        not read."""
        compiled = compiled if compiled is not None else self.compiled(model, key_overrides)
        run = _Run("input", _segments(messages))
        if compiled.enabled:
            self._run_sync(compiled.input, run, plugins_too=True)
        return _result(run, messages)

    async def check_input_async(self, messages: list[dict[str, Any]] | str, *, model: str | None = None,
                                key_overrides: dict | GuardrailsOverride | None = None,
                                compiled: CompiledConfig | None = None) -> GuardrailResult:
        """Like check_input, and also runs async checks (judge, async plugins). A long
        input (see `off_loop`) is checked in a worker thread."""
        compiled = compiled if compiled is not None else self.compiled(model, key_overrides)
        run = _Run("input", _segments(messages))
        if compiled.enabled:
            if sum(len(s.text) for s in run.segments) > OFF_LOOP_CHARS:
                await asyncio.to_thread(self._run_sync, compiled.input, run, plugins_too=False)
            else:
                self._run_sync(compiled.input, run, plugins_too=False)
            await self._run_async(compiled.input, run)
        return _result(run, messages)

    @staticmethod
    def off_loop(subject: list[dict[str, Any]] | str | None) -> bool:
        """Whether an input or a reply is long enough that an async caller should use the
        async method (check_input_async / check_output_async), which checks it in a worker
        thread instead of on the event loop (see OFF_LOOP_CHARS). Cheap: it counts
        characters without taking the messages apart beyond their text."""
        if isinstance(subject, str):
            return len(subject) > OFF_LOOP_CHARS
        if not isinstance(subject, list):
            return False
        total = 0
        for message in subject:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                total += len(content)
            elif isinstance(content, list):
                total += sum(len(p.get("text") or "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
            if total > OFF_LOOP_CHARS:
                return True
        return False

    # --- output ---------------------------------------------------------------------------

    def check_output(self, text: str, *, model: str | None = None,
                     key_overrides: dict | GuardrailsOverride | None = None,
                     compiled: CompiledConfig | None = None) -> GuardrailResult:
        compiled = compiled if compiled is not None else self.compiled(model, key_overrides)
        run = _Run("output", [_Segment("assistant", 0, None, text)])
        if compiled.enabled:
            self._run_sync(compiled.output, run, plugins_too=True)
        return _result(run, text)

    async def check_output_async(self, text: str, *, model: str | None = None,
                                 key_overrides: dict | GuardrailsOverride | None = None,
                                 compiled: CompiledConfig | None = None) -> GuardrailResult:
        compiled = compiled if compiled is not None else self.compiled(model, key_overrides)
        run = _Run("output", [_Segment("assistant", 0, None, text)])
        if compiled.enabled:
            if len(text) > OFF_LOOP_CHARS:
                await asyncio.to_thread(self._run_sync, compiled.output, run, plugins_too=False)
            else:
                self._run_sync(compiled.output, run, plugins_too=False)
            await self._run_async(compiled.output, run)
        return _result(run, text)

    def output_stream(self, *, model: str | None = None, key_overrides: dict | GuardrailsOverride | None = None,
                      hold: int | None = None, compiled: CompiledConfig | None = None):
        """A streaming checker: `feed(delta) -> str` and `finish() -> str` (see stream.py)."""
        from llmops.guardrails.stream import DEFAULT_HOLD, OutputStream

        compiled = compiled if compiled is not None else self.compiled(model, key_overrides)
        checks = compiled.output if compiled.enabled else ()
        return OutputStream(self, checks, hold=DEFAULT_HOLD if hold is None else hold)

    # --- running checks -------------------------------------------------------------------

    def _run_sync(self, checks: tuple[BoundCheck, ...], run: _Run, *, plugins_too: bool) -> None:
        # Runs for every request: built-in checks are called here directly, not through
        # scan_one, and each role filter's segments are listed once per run.
        seen = self._seen
        for bound in checks:
            if bound.runs_async:
                if bound.check.is_async:
                    if plugins_too:  # the sync path cannot run it: that is a failure to check
                        run.record_error(bound, "needs the async method (check_input_async / check_output_async)")
                    continue
                if not plugins_too:
                    continue
            targets = run.targets(bound)
            if not targets:
                continue
            if bound.conversation:
                joined = "\n".join(s.text for s in targets)
                detection, error = self.scan_one(bound, TextView(joined))
                if error:
                    run.record_error(bound, error)
                elif detection:
                    run.record(bound, detection)
                continue
            for segment in targets:
                if bound.is_plugin:
                    detection, error = self.scan_one(bound, segment.view)
                else:
                    # A text that comes back (an earlier turn, the system prompt): its verdict
                    # may be remembered (SeenTexts).
                    detection = seen.get(bound.token, segment.text) if segment.repeats else False
                    error = None
                    if detection is False:
                        try:
                            detection = bound.scan(segment.view)
                        except Exception as exc:  # a check must never take the request down with it
                            detection, error = None, _failure(exc)
                        else:
                            if segment.repeats:
                                seen.put(bound.token, segment.text, detection)
                if error:
                    run.record_error(bound, error)
                    break
                if detection:
                    run.apply(bound, segment, detection)

    def scan_one(self, bound: BoundCheck, view: TextView) -> tuple[Detection | None, str | None]:
        """Run one sync check on one text: (detection, error)."""
        try:
            if bound.is_plugin:
                future = _pool().submit(bound.check.scan, view)
                return future.result(timeout=bound.timeout), None
            return bound.check.scan(view), None
        except concurrent.futures.TimeoutError:
            return None, f"timed out after {bound.timeout}s"
        except Exception as exc:  # a check must never take the request down with it
            return None, _failure(exc)

    async def _run_async(self, checks: tuple[BoundCheck, ...], run: _Run) -> None:
        jobs: list[tuple[BoundCheck, _Segment | None, Any]] = []
        for bound in checks:
            if not bound.runs_async:
                continue
            targets = run.targets(bound)
            if not targets:
                continue
            if bound.check.scope == "conversation":
                text = "\n".join(f"{s.role}: {s.text}" if run.stage == "input" else s.text for s in targets)
                jobs.append((bound, None, self.ascan_one(bound, text)))
            else:
                for segment in targets:
                    jobs.append((bound, segment, self.ascan_one(bound, segment.text)))
        if not jobs:
            return
        outcomes = await asyncio.gather(*(job for _, _, job in jobs))
        for (bound, segment, _), (detection, error) in zip(jobs, outcomes, strict=True):
            if error:
                run.record_error(bound, error)
            elif detection and segment is not None:
                run.apply(bound, segment, detection)
            elif detection:
                run.record(bound, detection)

    async def ascan_one(self, bound: BoundCheck, text: str) -> tuple[Detection | None, str | None]:
        try:
            if bound.check.is_async:
                coro = bound.check.ascan(text)
            else:  # a sync plugin: in a thread, so the timeout holds and the loop stays free
                coro = asyncio.to_thread(bound.check.scan, TextView(text))
            return await asyncio.wait_for(coro, timeout=bound.timeout), None
        except TimeoutError:
            return None, f"timed out after {bound.timeout}s"
        except Exception as exc:
            return None, _failure(exc)

    # --- building -------------------------------------------------------------------------

    def _compile(self, config: GuardrailsConfig) -> CompiledConfig:
        inputs = tuple(self._bind(spec, "input") for spec in config.input if spec.enabled)
        outputs = tuple(self._bind(spec, "output") for spec in config.output if spec.enabled)
        return CompiledConfig(
            enabled=config.enabled,
            input=inputs,
            output=outputs,
            input_async=any(b.runs_async for b in inputs),
            output_async=any(b.runs_async for b in outputs),
        )

    def _bind(self, spec: CheckSpec, stage: str) -> BoundCheck:
        where = f"guardrails {stage} check {spec.key!r}"
        if is_import_path(spec.check):
            try:
                check: Check = PluginCheck(spec.check, spec.options)
            except ValueError as exc:
                raise GuardrailConfigError(f"{where}: {exc}") from None
            timeout: float | None = spec.timeout or DEFAULT_PLUGIN_TIMEOUT
        else:
            cls = builtin(spec.check)
            if cls is None:
                raise GuardrailConfigError(
                    f"{where}: unknown check; built-in checks are {', '.join(builtin_names())}, "
                    "or give a plugin as 'module:function'"
                )
            if cls.needs_judge and self.judge is None:
                raise GuardrailConfigError(
                    f"{where}: the {spec.check} check asks a model, and these guardrails have no way to call one: "
                    "in the gateway it uses the gateway's models; `llmops guard` needs --config to be a gateway "
                    "config whose models: serve it; in code, pass Pipeline(config, judge=...)"
                )
            try:
                options = parse_options(cls, spec.options)
                check = cls(options, judge=self.judge) if cls.needs_judge else cls(options)  # type: ignore[call-arg]
            except ValidationError as exc:
                err = exc.errors()[0]
                raise GuardrailConfigError(f"{where}: option {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
            except ValueError as exc:
                raise GuardrailConfigError(f"{where}: {exc}") from None
            timeout = spec.timeout or (DEFAULT_JUDGE_TIMEOUT if cls.is_async else None)
        if spec.action == "redact" and not check.redactable:
            raise GuardrailConfigError(f"{where}: this check cannot redact; use block or flag")
        roles = spec.roles if spec.roles is not None else check.default_roles
        return BoundCheck(
            name=spec.key,
            check=check,
            spec=spec,
            roles=frozenset(roles) if roles is not None else None,
            timeout=timeout,
        )


def _failure(exc: Exception) -> str:
    """The verdict's `error` for a check that raised: its type only, never the text it read."""
    return f"failed: {type(exc).__name__}"


def _segments(messages: list[dict[str, Any]] | str) -> list[_Segment]:
    if isinstance(messages, str):
        return [_Segment("user", 0, None, messages)]
    segments: list[_Segment] = []
    last = len(messages) - 1
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "user")
        content = message.get("content")
        if isinstance(content, str):
            segments.append(_Segment(role, i, None, content, repeats=i < last))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    segments.append(_Segment(role, i, j, part["text"], repeats=i < last))
    return segments


def _rebuild(messages: list[dict[str, Any]], segments: list[_Segment]) -> list[dict[str, Any]]:
    changed = [s for s in segments if s.changed]
    if not changed:
        return messages
    out = list(messages)
    for segment in changed:
        message = dict(out[segment.message_index])
        if segment.part_index is None:
            message["content"] = segment.text
        else:
            parts = list(message["content"])
            parts[segment.part_index] = {**parts[segment.part_index], "text": segment.text}
            message["content"] = parts
        out[segment.message_index] = message
    return out


def _result(run: _Run, original: list[dict[str, Any]] | str) -> GuardrailResult:
    blocked = run.blocked_by is not None
    if run.blocked_by is None:
        message = ""
    elif run.failed_closed:
        message = run.blocked_by.spec.message or FAILED_CLOSED_MESSAGE
    else:
        message = run.blocked_by.block_message
    # Only a check that found something changes a text (apply records it first), so with
    # no verdicts there is nothing to rebuild: the usual case, kept short.
    found = bool(run.verdicts)
    if isinstance(original, str):
        text, messages = run.segments[0].text, None
    else:
        messages = _rebuild(original, run.segments) if found else original
        text = "\n\n".join([s.text for s in run.segments])
    return GuardrailResult(
        blocked=blocked,
        blocked_by=run.blocked_by.name if run.blocked_by else None,
        message=message,
        text=text,
        messages=messages,
        verdicts=list(run.verdicts.values()),
        redacted=found and any(s.changed for s in run.segments),
    )
