"""What a run means to a reader: the prompt × model table, a comparison of two runs, JUnit XML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

from llmops.evaluation.fingerprint import differences
from llmops.evaluation.runner import CaseResult, RunResult

# A pair's mean score may drop by this much (noise of graded scores) before it is a regression.
SCORE_TOLERANCE = 0.02


@dataclass
class GroupSummary:
    prompt_id: str
    prompt_ref: str | None
    model_id: str
    model: str
    cases: int
    passed: int
    errors: int
    score: float
    latency_ms: float | None
    cost: float
    flaky: int = 0

    @property
    def pass_rate(self) -> float:
        return self.passed / self.cases if self.cases else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "prompt_ref": self.prompt_ref,
            "model_id": self.model_id,
            "model": self.model,
            "cases": self.cases,
            "passed": self.passed,
            "flaky": self.flaky,
            "errors": self.errors,
            "pass_rate": round(self.pass_rate, 4),
            "score": round(self.score, 4),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "cost": round(self.cost, 8),
        }


def by_prompt_and_model(run: RunResult) -> list[GroupSummary]:
    groups: dict[tuple[str, str], list[CaseResult]] = {}
    for result in run.results:
        groups.setdefault((result.prompt_id, result.model_id), []).append(result)
    summaries = []
    for (prompt_id, model_id), results in groups.items():
        calls = [c for r in results for c in r.calls]
        latencies = [c.latency_ms for c in calls if c.latency_ms is not None]
        summaries.append(
            GroupSummary(
                prompt_id=prompt_id,
                prompt_ref=results[0].prompt_ref,
                model_id=model_id,
                model=results[0].model,
                cases=len(results),
                passed=sum(r.passed for r in results),
                errors=sum(r.error is not None for r in results),
                score=sum(r.score for r in results) / len(results),
                latency_ms=sum(latencies) / len(latencies) if latencies else None,
                cost=sum(c.cost or 0.0 for c in calls if not c.cached),
                flaky=sum(r.status == "flaky" for r in results),
            )
        )
    return summaries


SUMMARY_HEADERS = ("prompt", "version", "model", "passed", "score", "latency ms", "cost $")


def summary_rows(run: RunResult) -> list[tuple]:
    return [
        (
            g.prompt_id,
            g.prompt_ref or "",
            g.model_id if g.model_id == g.model else f"{g.model_id} ({g.model})",
            f"{g.passed}/{g.cases}"
            + (f" ({g.flaky} flaky)" if g.flaky else "")
            + (f" ({g.errors} errors)" if g.errors else ""),
            f"{g.score:.3f}",
            "" if g.latency_ms is None else f"{g.latency_ms:.0f}",
            f"{g.cost:.6f}",
        )
        for g in by_prompt_and_model(run)
    ]


def failure_lines(run: RunResult, limit: int = 20) -> list[str]:
    """Failed cases, then flaky ones that passed their gate (a flaky case is never silent)."""
    lines = []
    for result in [r for r in run.results if not r.passed][:limit]:
        lines.append(f"FAIL {result.test_id}: {result.reason}")
        if result.output is not None:
            output = result.output.replace("\n", " ")
            lines.append(f"     output: {output[:160]}{'…' if len(output) > 160 else ''}")
    for result in [r for r in run.results if r.passed and r.status == "flaky"][:limit]:
        lines.append(f"FLAKY {result.test_id}: {result.reason}")
    return lines


def case_properties(result: CaseResult) -> list[tuple[str, str]]:
    """What CI shows beside a case (JUnit <property> elements): its score, cost, latency,
    tokens, and for a repeated case its rate, interval, pass@k and pass^k."""
    properties = [("score", f"{result.score:.4f}"), ("status", result.status)]
    if result.prompt_ref:
        properties.append(("prompt_ref", result.prompt_ref))
    if result.cost is not None:
        properties.append(("cost", f"{result.cost:.8f}"))
    if result.latency_ms is not None:
        properties.append(("latency_ms", f"{result.latency_ms:.1f}"))
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = result.usage.get(name)
        if isinstance(value, int | float):
            properties.append((name, str(int(value))))
    if result.repeat is not None:
        stats = result.repeat.to_dict()
        for name in ("runs", "passes", "rate", "ci_low", "ci_high", "pass_at_k", "pass_hat_k", "k", "min_pass_rate"):
            properties.append((name, str(stats[name])))
        properties.append(("flaky", "true" if stats["flaky"] else "false"))
    return properties


@dataclass
class ItemChange:
    key: tuple[str, str, str]
    before: float | None
    after: float | None
    passed_before: bool | None
    passed_after: bool | None

    @property
    def regressed(self) -> bool:
        return bool(self.passed_before) and self.passed_after is False

    @property
    def fixed(self) -> bool:
        return self.passed_before is False and bool(self.passed_after)


@dataclass
class Comparison:
    baseline: RunResult
    current: RunResult
    items: list[ItemChange] = field(default_factory=list)
    # (prompt_id, model_id) -> (baseline mean score, current mean score), on the cases both ran
    groups: dict[tuple[str, str], tuple[float | None, float | None]] = field(default_factory=dict)
    # What differs between the runs' data, prompts, models and scorers (see fingerprint.py).
    differences: list[str] = field(default_factory=list)

    @property
    def common(self) -> int:
        """Items both runs have: only these are compared."""
        return sum(1 for i in self.items if i.before is not None and i.after is not None)

    @property
    def regressions(self) -> list[ItemChange]:
        return [i for i in self.items if i.regressed]

    @property
    def fixes(self) -> list[ItemChange]:
        return [i for i in self.items if i.fixed]

    @property
    def score_drops(self) -> dict[tuple[str, str], float]:
        return {
            key: after - before
            for key, (before, after) in self.groups.items()
            if before is not None and after is not None and after < before - SCORE_TOLERANCE
        }

    @property
    def regressed(self) -> bool:
        """A case that passed now fails, or a prompt × model's mean score dropped beyond tolerance."""
        return bool(self.regressions or self.score_drops)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.id,
            "current": self.current.id,
            "regressed": self.regressed,
            "differences": self.differences,
            "common_items": self.common,
            "baseline_prompts": self.baseline.prompts,
            "current_prompts": self.current.prompts,
            "groups": [
                {"prompt_id": p, "model_id": m, "baseline_score": b, "current_score": a}
                for (p, m), (b, a) in self.groups.items()
            ],
            "regressions": [_change_dict(i) for i in self.regressions],
            "fixes": [_change_dict(i) for i in self.fixes],
            "changed": [_change_dict(i) for i in self.items if i.before != i.after],
        }


def _change_dict(item: ItemChange) -> dict[str, Any]:
    case_id, prompt_id, model_id = item.key
    return {
        "case_id": case_id,
        "prompt_id": prompt_id,
        "model_id": model_id,
        "baseline_score": item.before,
        "current_score": item.after,
        "baseline_passed": item.passed_before,
        "current_passed": item.passed_after,
    }


def compare(baseline: RunResult, current: RunResult) -> Comparison:
    """Items are matched by (case, prompt id in the suite, model id)."""
    before = {r.key: r for r in baseline.results}
    after = {r.key: r for r in current.results}
    comparison = Comparison(baseline, current)
    for key in list(dict.fromkeys([*before, *after])):
        b, a = before.get(key), after.get(key)
        comparison.items.append(
            ItemChange(
                key,
                b.score if b else None,
                a.score if a else None,
                b.passed if b else None,
                a.passed if a else None,
            )
        )
    # A pair both runs have is compared on their common items (a case added or dropped moves
    # no mean); a pair only one run has shows its own mean beside nothing.
    common = [k for k in before if k in after]
    b_common = _group_means([before[k] for k in common])
    a_common = _group_means([after[k] for k in common])
    b_all, a_all = _group_means(list(before.values())), _group_means(list(after.values()))
    for group in list(dict.fromkeys([*b_all, *a_all])):
        if group in b_common:
            comparison.groups[group] = (b_common[group], a_common[group])
        else:
            comparison.groups[group] = (b_all.get(group) if group not in a_all else None,
                                        a_all.get(group) if group not in b_all else None)  # fmt: skip
    comparison.differences = differences(
        baseline.parameters.get("fingerprint"), current.parameters.get("fingerprint")
    )
    attempts = (baseline.parameters.get("repeat", 1), current.parameters.get("repeat", 1))
    if attempts[0] != attempts[1]:
        comparison.differences.append(f"the runs made {attempts[0]} -> {attempts[1]} attempts per case (repeat)")
    return comparison


def _group_means(results: list[CaseResult]) -> dict[tuple[str, str], float]:
    scores: dict[tuple[str, str], list[float]] = {}
    for r in results:
        scores.setdefault((r.prompt_id, r.model_id), []).append(r.score)
    return {key: sum(values) / len(values) for key, values in scores.items()}


COMPARE_HEADERS = ("prompt", "model", "baseline", "current", "change")


def compare_rows(comparison: Comparison) -> list[tuple]:
    rows = []
    for (prompt_id, model_id), (before, after) in comparison.groups.items():
        change = "" if before is None or after is None else f"{after - before:+.3f}"
        rows.append(
            (
                prompt_id,
                model_id,
                "-" if before is None else f"{before:.3f}",
                "-" if after is None else f"{after:.3f}",
                change,
            )
        )
    return rows


def junit_xml(run: RunResult) -> str:
    """One <testcase> per case × prompt × model, so CI shows each like a unit test."""
    root = ET.Element("testsuites")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=run.suite,
        tests=str(run.total),
        failures=str(run.total - run.passed_count - run.errors),
        errors=str(run.errors),
        time=f"{((run.finished_at or run.started_at) - run.started_at).total_seconds():.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="run_id", value=run.id)
    ET.SubElement(properties, "property", name="git_commit", value=run.git_commit or "")
    for prompt_id, ref in run.prompts.items():
        ET.SubElement(properties, "property", name=f"prompt:{prompt_id}", value=ref)
    for result in run.results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{run.suite}.{result.prompt_id}.{result.model_id}",
            name=result.case_id,
            time=f"{(result.latency_ms or 0) / 1000:.3f}",
        )
        own = ET.SubElement(case, "properties")
        for name, value in case_properties(result):
            ET.SubElement(own, "property", name=name, value=value)
        if result.error is not None:
            ET.SubElement(case, "error", message=result.error[:500]).text = result.error
        elif not result.passed:
            details = "\n".join(
                f"{'ok  ' if a.passed else 'FAIL'} {a.name}: score {a.score:.3f}: {a.reason}" for a in result.assertions
            )
            ET.SubElement(case, "failure", message=result.reason[:500]).text = details
        if result.output is not None:
            ET.SubElement(case, "system-out").text = result.output
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
