"""How well a guardrails configuration does on labelled rows: `llmops guard eval`'s library.

Rows (one JSON object per line of a JSONL file):
  text   the text (string, required)
  label  what should happen (required): 1 / true / "attack" / "harmful" / "unsafe" /
         "injection" / "block" = should be stopped; 0 / false / "benign" / "safe" /
         "clean" / "allow" = should pass
  role   optional: the message role the text arrives in (default "user"; "tool" or
         "function" for a document or tool result, which the indirect-injection check reads)
  check  optional: the check expected to stop the row (e.g. "harmful"); it puts the row
         in that check's "caught" figure

Figures, each with a 95% Wilson interval:
  - per check: caught = share of the rows naming that check on which it fired; benign
    stopped = share of all benign rows on which it fired; balanced accuracy = their mean
    recall (caught and 1 - benign stopped), its interval the mean of the two intervals'
    bounds (conservative);
  - overall: the same with "stopped" = the pipeline blocked the row (so a check whose
    action is flag or redact stops nothing overall).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from llmops.errors import InvalidInput
from llmops.guardrails.config import GuardrailsConfig
from llmops.guardrails.pipeline import GuardrailResult, Pipeline

POSITIVE = frozenset({"1", "true", "attack", "harmful", "unsafe", "injection", "block", "blocked", "positive", "malicious"})
NEGATIVE = frozenset({"0", "false", "benign", "safe", "clean", "allow", "allowed", "negative"})
Z95 = 1.959964


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k/n (0..1 for n = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Rate:
    hits: int = 0
    total: int = 0

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.hits, self.total) if self.total else None

    def to_dict(self) -> dict[str, Any]:
        interval = self.interval
        return {
            "hits": self.hits,
            "total": self.total,
            "rate": _round(self.value),
            "ci95": [round(interval[0], 4), round(interval[1], 4)] if interval else None,
        }


@dataclass
class Figures:
    """Caught (recall on rows that should be stopped) and benign stopped, for one check or all."""

    caught: Rate = field(default_factory=Rate)
    benign_stopped: Rate = field(default_factory=Rate)

    @property
    def balanced_accuracy(self) -> float | None:
        tpr, fpr = self.caught.value, self.benign_stopped.value
        if tpr is None or fpr is None:
            return None
        return (tpr + 1 - fpr) / 2

    @property
    def balanced_interval(self) -> tuple[float, float] | None:
        c, b = self.caught.interval, self.benign_stopped.interval
        if c is None or b is None:
            return None
        return (c[0] + 1 - b[1]) / 2, (c[1] + 1 - b[0]) / 2

    def to_dict(self) -> dict[str, Any]:
        interval = self.balanced_interval
        return {
            "caught": self.caught.to_dict(),
            "benign_stopped": self.benign_stopped.to_dict(),
            "balanced_accuracy": _round(self.balanced_accuracy),
            "balanced_accuracy_ci95": [round(interval[0], 4), round(interval[1], 4)] if interval else None,
        }


@dataclass
class EvalReport:
    rows: int
    positives: int
    overall: Figures
    checks: dict[str, Figures]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "positives": self.positives,
            "overall": self.overall.to_dict(),
            "checks": {name: f.to_dict() for name, f in self.checks.items()},
        }


@dataclass(frozen=True)
class LabelledRow:
    text: str
    positive: bool
    role: str = "user"
    check: str | None = None


def parse_label(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in POSITIVE:
            return True
        if low in NEGATIVE:
            return False
    return None


def parse_row(data: Any, where: str = "row") -> LabelledRow:
    """One labelled row from its JSON object; InvalidInput names what is wrong."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{where} is not a JSON object")
    text = data.get("text")
    if not isinstance(text, str):
        raise InvalidInput(f"{where} has no string field 'text'")
    positive = parse_label(data.get("label"))
    if positive is None:
        raise InvalidInput(
            f"{where} has no usable 'label' (use 1/0, true/false, or one of: "
            f"{', '.join(sorted(POSITIVE - {'1', 'true'}))} / {', '.join(sorted(NEGATIVE - {'0', 'false'}))})"
        )
    role = data.get("role", "user")
    check = data.get("check")
    if not isinstance(role, str) or (check is not None and not isinstance(check, str)):
        raise InvalidInput(f"{where}: 'role' and 'check' must be strings")
    return LabelledRow(text, positive, role, check)


def read_rows(lines: Iterable[str]) -> list[LabelledRow]:
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            raise InvalidInput(f"line {number} is not JSON") from None
        rows.append(parse_row(data, f"line {number}"))
    return rows


def evaluate(rows: Iterable[LabelledRow], config: GuardrailsConfig | None = None, *, model: str | None = None,
             pipeline: Pipeline | None = None) -> EvalReport:
    """Run the input checks of `config` (default: the default guardrails) on each row, in the
    sync path: checks that ask a model or run async need `evaluate_async`."""
    pipe = pipeline or Pipeline(config or GuardrailsConfig.default())
    rows = list(rows)
    return _tally(pipe, model, rows, [pipe.check_input(_messages(row), model=model) for row in rows])


async def evaluate_async(rows: Iterable[LabelledRow], pipeline: Pipeline, *, model: str | None = None,
                         concurrency: int = 8) -> EvalReport:
    """`evaluate` with every check, those that ask a model (judge, moderation) or run in a
    thread (hf_classifier) too; `concurrency` rows are checked at once."""
    rows = list(rows)
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(row: LabelledRow) -> GuardrailResult:
        async with slots:
            return await pipeline.check_input_async(_messages(row), model=model)

    return _tally(pipeline, model, rows, list(await asyncio.gather(*(one(row) for row in rows))))


def _messages(row: LabelledRow) -> list[dict[str, Any]]:
    return [{"role": row.role, "content": row.text}]


def _tally(pipe: Pipeline, model: str | None, rows: list[LabelledRow], results: list[GuardrailResult]) -> EvalReport:
    compiled = pipe.compiled(model)
    names = [bound.name for bound in compiled.input] if compiled.enabled else []
    overall = Figures()
    per = {name: Figures() for name in names}
    positives = 0
    for row, result in zip(rows, results, strict=True):
        positives += row.positive
        fired = {v["check"] for v in result.verdicts if "error" not in v}
        rate = overall.caught if row.positive else overall.benign_stopped
        rate.total += 1
        rate.hits += result.blocked
        for name, figures in per.items():
            if not row.positive:
                figures.benign_stopped.total += 1
                figures.benign_stopped.hits += name in fired
            elif row.check == name:
                figures.caught.total += 1
                figures.caught.hits += name in fired
    return EvalReport(len(rows), positives, overall, per)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
