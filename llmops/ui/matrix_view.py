"""The results matrix of a comparison or an eval run, as promptfoo's viewer shows one.

Rows are cases, with their variables as columns; columns are prompt version × model;
each cell is the output with its verdict, score, latency, cost and the feedback people
gave it, and opens (an HTML <details>) onto the rendered prompt, the variables, the
expected output and every check's reason. The same HTML is the Compare page's grid, the
Eval runs page's matrix and the self-contained report an eval run exports as.

A cell's ledger row is the gateway request its call made (`request_ids` in the run's
parameters, recorded by the app as it ran): feedback on a cell is feedback on that
request (llmops.experiments.feedback), so it counts wherever the ledger's feedback does.
"""

from __future__ import annotations

import csv
import html
import io
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmops.errors import InvalidInput, LLMOpsError
from llmops.evaluation.reports import SCORE_TOLERANCE
from llmops.evaluation.runner import REQUEST_IDS, CaseResult, RunResult
from llmops.experiments.feedback import FeedbackSummary, feedback_summaries, record_feedback
from llmops.registry.views import PromptVersionView
from llmops.ui.textdiff import plain_html, word_diff_html

MODES = ("all", "failures", "differences")
MODE_LABELS = {"all": "All rows", "failures": "Failures", "differences": "Differences"}
# run.parameters keys the app adds to the runs it makes (additive: CLI runs lack them).
EXPECTED = "expected"  # {case id: expected output}
FEEDBACK_SOURCE = "llmops-ui"


# --- the matrix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixColumn:
    prompt_id: str
    model_id: str
    prompt_ref: str | None = None

    @property
    def label(self) -> str:
        prompt = self.prompt_id
        if (
            self.prompt_ref
            and self.prompt_ref != self.prompt_id
            and not self.prompt_ref.startswith("inline:")
        ):
            prompt = f"{prompt} ({self.prompt_ref})"
        return f"{prompt} · {self.model_id}"

    @property
    def key(self) -> str:
        return f"{self.prompt_id}|{self.model_id}"


def verdict_of(result: CaseResult) -> str:
    """ "pass", "fail", "error" or "no checks" (nothing graded the output)."""
    if result.error is not None:
        return "error"
    if not any(a.weight > 0 for a in result.assertions):
        return "no checks"
    return "pass" if result.passed else "fail"


@dataclass(frozen=True)
class MatrixCell:
    column: MatrixColumn
    result: CaseResult
    request_id: str | None
    html: str  # the output, with differences from the row's first output marked
    same_as_reference: bool
    rendered_prompt: str
    feedback: FeedbackSummary | None = None

    @property
    def verdict(self) -> str:
        return verdict_of(self.result)


@dataclass(frozen=True)
class MatrixRow:
    case_id: str
    variables: dict[str, Any]
    expected: str | None
    cells: list[MatrixCell | None]

    def present(self) -> list[MatrixCell]:
        return [c for c in self.cells if c is not None]

    @property
    def failing(self) -> bool:
        return any(c.verdict in ("fail", "error") for c in self.present())

    @property
    def differing(self) -> bool:
        """Its columns disagree: on the verdict, on the score beyond noise, or on the output."""
        cells = self.present()
        if len({c.verdict for c in cells}) > 1 or len({c.result.output for c in cells}) > 1:
            return True
        scores = [c.result.score for c in cells if c.verdict not in ("no checks", "error")]
        return bool(scores) and max(scores) - min(scores) > SCORE_TOLERANCE


@dataclass(frozen=True)
class ColumnSummary:
    passed: str  # "2/3", or "no checks"
    mean_score: float | None
    latency_p50_ms: float | None
    cost: float | None  # None: no call had a known price
    input_tokens: int
    output_tokens: int
    errors: int


@dataclass
class ResultsMatrix:
    run_id: str
    columns: list[MatrixColumn]
    rows: list[MatrixRow]
    variable_names: list[str]
    _cells: dict[tuple[str, str], MatrixCell] = field(default_factory=dict, repr=False)

    def shown(self, mode: str) -> list[MatrixRow]:
        if mode not in MODES:
            raise InvalidInput(f"unknown display mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "failures":
            return [r for r in self.rows if r.failing]
        if mode == "differences":
            return [r for r in self.rows if r.differing]
        return list(self.rows)

    def cell(self, case_id: str, column_key: str) -> MatrixCell | None:
        return self._cells.get((case_id, column_key))

    def cells(self) -> list[MatrixCell]:
        return list(self._cells.values())

    def summary(self, column: MatrixColumn) -> ColumnSummary:
        index = self.columns.index(column)
        cells = [c for r in self.rows if (c := r.cells[index]) is not None]
        graded = [c for c in cells if c.verdict != "no checks"]
        latencies = [c.result.latency_ms for c in cells if c.result.latency_ms is not None]
        costs = [c.result.cost for c in cells if c.result.cost is not None]
        return ColumnSummary(
            passed=f"{sum(c.verdict == 'pass' for c in graded)}/{len(graded)}" if graded else "no checks",
            mean_score=statistics.fmean(c.result.score for c in graded) if graded else None,
            latency_p50_ms=statistics.median(latencies) if latencies else None,
            cost=sum(costs) if costs else None,
            input_tokens=sum(int(c.result.usage.get("prompt_tokens") or 0) for c in cells),
            output_tokens=sum(int(c.result.usage.get("completion_tokens") or 0) for c in cells),
            errors=sum(c.verdict == "error" for c in cells),
        )

    def summary_rows(self) -> list[dict[str, str]]:
        """One row per column for a table: every value already text, nothing left as None."""
        rows = []
        for column in self.columns:
            s = self.summary(column)
            rows.append(
                {
                    "Version · model": column.label,
                    "Passed": s.passed,
                    "Mean score": "–" if s.mean_score is None else f"{s.mean_score:.3f}",
                    "Latency p50": "–" if s.latency_p50_ms is None else f"{s.latency_p50_ms:.0f} ms",
                    "Tokens in → out": f"{s.input_tokens:,} → {s.output_tokens:,}",
                    "Cost": "unknown" if s.cost is None else f"${s.cost:.6f}",
                    "Errors": str(s.errors),
                }
            )
        return rows


def render_prompt_text(view: PromptVersionView | None, variables: Mapping[str, Any]) -> str:
    """The messages a version sends for these variables, as `role: content` blocks."""
    if view is None:
        return "(the prompt version is not in the registry)"
    from llmops.registry.service import render_view

    try:
        messages = render_view(view, variables).as_messages()
    except LLMOpsError as exc:
        return f"(cannot render: {exc.message})"
    return "\n\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)


def registry_views(refs: Sequence[str], database_url: str | None) -> dict[str, PromptVersionView]:
    """The registry versions behind `name:version` references (inline prompts have none)."""
    from llmops.registry.service import Registry

    registry = Registry(database_url, cache_ttl=0)
    views = {}
    for ref in dict.fromkeys(refs):
        if not ref or ref.startswith("inline:"):
            continue
        try:
            views[ref] = registry.get(ref)
        except LLMOpsError:
            continue  # deleted or another database: the detail says so
    return views


def expected_outputs(run: RunResult) -> dict[str, str]:
    """Each case's expected output: recorded by the app, else read from the run's suite file."""
    recorded = run.parameters.get(EXPECTED)
    if isinstance(recorded, dict):
        return {str(k): str(v) for k, v in recorded.items() if v is not None}
    if run.suite_path and Path(run.suite_path).is_file():
        from llmops.evaluation.suites import load_suite

        try:
            cases = load_suite(Path(run.suite_path)).expanded_cases()
        except (LLMOpsError, OSError, ValueError):
            return {}
        return {c.id: c.expected for c in cases if c.id and c.expected is not None}
    return {}


def request_id_of(run: RunResult, result: CaseResult) -> str | None:
    """The gateway request behind a result, as the run recorded it (the harness, or the app
    for its own calls), else the result's own (a run not yet saved)."""
    ids = run.parameters.get(REQUEST_IDS)
    recorded = ids.get(result.test_id) if isinstance(ids, dict) else None
    return recorded or result.request_id


def build_matrix(
    run: RunResult,
    *,
    database_url: str | None,
    views: Mapping[str, PromptVersionView] | None = None,
    with_feedback: bool = True,
) -> ResultsMatrix:
    """The run as a matrix; `views` supplies versions not in the registry (a playground draft)."""
    columns = list(dict.fromkeys(MatrixColumn(r.prompt_id, r.model_id, r.prompt_ref) for r in run.results))
    known = registry_views([r.prompt_ref or "" for r in run.results], database_url)
    known.update(views or {})
    expected = expected_outputs(run)
    feedback: dict[str, FeedbackSummary] = {}
    if with_feedback:
        ids = [i for r in run.results if (i := request_id_of(run, r))]
        if ids:
            feedback = feedback_summaries(ids, database_url=database_url)
    by_key = {(r.case_id, r.prompt_id, r.model_id): r for r in run.results}
    names: dict[str, None] = {}
    rows: list[MatrixRow] = []
    cells_by_key: dict[tuple[str, str], MatrixCell] = {}
    for case_id in dict.fromkeys(r.case_id for r in run.results):
        results = [by_key.get((case_id, c.prompt_id, c.model_id)) for c in columns]
        reference = next((r.output for r in results if r is not None and r.output is not None), None)
        cells: list[MatrixCell | None] = []
        for column, result in zip(columns, results, strict=True):
            if result is None:
                cells.append(None)
                continue
            text = result.output or ""
            same = result.output is not None and reference is not None and text == reference
            if result.output is None or reference is None or same:
                marked = plain_html(text)
            else:
                marked = word_diff_html(reference, text)
            request_id = request_id_of(run, result)
            cell = MatrixCell(
                column=column,
                result=result,
                request_id=request_id,
                html=marked,
                same_as_reference=same,
                rendered_prompt=render_prompt_text(known.get(result.prompt_ref or ""), result.variables),
                feedback=feedback.get(request_id) if request_id else None,
            )
            cells.append(cell)
            cells_by_key[(case_id, column.key)] = cell
        variables = next((r.variables for r in results if r is not None), {})
        for name in variables:
            names.setdefault(name, None)
        rows.append(MatrixRow(case_id, dict(variables), expected.get(case_id), cells))
    return ResultsMatrix(run.id, columns, rows, list(names), cells_by_key)


# --- feedback on a cell --------------------------------------------------------------------------


def rate_cell(
    cell: MatrixCell,
    *,
    database_url: str | None,
    thumbs: str | None = None,
    score: float | None = None,
    comment: str | None = None,
) -> None:
    """Feedback on the cell's ledger row: thumbs or a 0..1 score, and an optional comment."""
    if cell.request_id is None:
        raise InvalidInput(
            "this output has no gateway request to rate: it came from the response cache or from a run "
            "that did not record request ids (CLI runs before this version of llmops)"
        )
    record_feedback(
        cell.request_id,
        score=score,
        thumbs=thumbs,
        comment=comment or None,
        source=FEEDBACK_SOURCE,
        database_url=database_url,
    )


def feedback_text(summary: FeedbackSummary | None) -> str:
    if summary is None:
        return ""
    parts = []
    if summary.thumbs_up or summary.thumbs_down:
        parts.append(f"👍 {summary.thumbs_up} 👎 {summary.thumbs_down}")
    if summary.mean is not None:
        parts.append(f"rated {summary.mean:.2f}")
    if summary.comments:
        parts.append(f"{len(summary.comments)} comment{'s' if len(summary.comments) > 1 else ''}")
    return " · ".join(parts)


def run_feedback(matrix: ResultsMatrix) -> dict[str, Any]:
    """The run's feedback overall: rated cells, thumbs, mean score."""
    summaries = [c.feedback for c in matrix.cells() if c.feedback is not None]
    scores = [s.mean for s in summaries if s.mean is not None]
    return {
        "rated": len(summaries),
        "up": sum(s.thumbs_up for s in summaries),
        "down": sum(s.thumbs_down for s in summaries),
        "mean": statistics.fmean(scores) if scores else None,
    }


# --- HTML ------------------------------------------------------------------------------------

# Columns wide enough that ordinary words never break: the table scrolls sideways instead,
# with the case column kept in view. Long unbroken tokens (URLs) wrap only at their own end.
MATRIX_CSS = """
.llmops-matrix-wrap{overflow-x:auto;max-width:100%;border:1px solid #e5e7eb;border-radius:6px}
.llmops-matrix{border-collapse:separate;border-spacing:0;font-size:13px;line-height:1.45;
  word-break:normal;overflow-wrap:normal;hyphens:none}
.llmops-matrix th,.llmops-matrix td{vertical-align:top;text-align:left;padding:8px 10px;
  border-bottom:1px solid #e5e7eb;border-right:1px solid #f3f4f6;background:#fff}
.llmops-matrix thead th{position:sticky;top:0;background:#f9fafb;font-weight:600;z-index:2}
.llmops-matrix .case{position:sticky;left:0;z-index:1;min-width:120px;max-width:160px;background:#f9fafb;
  font-weight:600}
.llmops-matrix thead th.case{z-index:3}
.llmops-matrix .var{min-width:170px;max-width:240px;color:#374151}
.llmops-matrix .var .clip{display:-webkit-box;-webkit-line-clamp:6;-webkit-box-orient:vertical;overflow:hidden}
.llmops-matrix .out{min-width:220px;max-width:340px}
.llmops-matrix .out.fail{background:#fef2f2}.llmops-matrix .out.error{background:#fffbeb}
.llmops-matrix .text{white-space:pre-wrap;margin:6px 0;overflow-x:auto}
.llmops-matrix .meta{color:#6b7280;font-size:12px}
.llmops-matrix .error-text{color:#92400e}
.llmops-matrix .badge{display:inline-block;border-radius:4px;padding:0 6px;font-weight:600;font-size:12px;
  margin-right:6px}
.llmops-matrix .badge.pass{background:#dcfce7;color:#166534}.llmops-matrix .badge.fail{background:#fee2e2;color:#991b1b}
.llmops-matrix .badge.error{background:#fef3c7;color:#92400e}.llmops-matrix .badge.nochecks{background:#f3f4f6;color:#4b5563}
.llmops-matrix details{margin-top:4px}.llmops-matrix summary{cursor:pointer;color:#2563eb;font-size:12px}
.llmops-matrix .k{font-weight:600;font-size:12px;margin-top:6px;color:#374151}
.llmops-matrix pre{white-space:pre-wrap;background:#f9fafb;padding:6px;border-radius:4px;font-size:12px;margin:2px 0}
.llmops-matrix ul{margin:2px 0 0 16px;padding:0}
"""

_BADGE = {"pass": "pass", "fail": "fail", "error": "error", "no checks": "nochecks"}


def _e(value: Any) -> str:
    return html.escape(
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    )


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _cell_html(cell: MatrixCell | None, row: MatrixRow, first: bool) -> str:
    if cell is None:
        return '<td class="out"><span class="meta">not run</span></td>'
    r = cell.result
    verdict = cell.verdict
    meta = [] if verdict in ("no checks", "error") else [f"score {r.score:.2f}"]
    if r.latency_ms is not None:
        meta.append(f"{r.latency_ms:.0f} ms")
    meta.append("unknown cost" if r.cost is None else f"${r.cost:.6f}")
    if r.cached:
        meta.append("cached")
    parts = [
        f'<td class="out {_BADGE[verdict]}" data-case="{_e(row.case_id)}" data-column="{_e(cell.column.key)}">',
        f'<span class="badge {_BADGE[verdict]}">{html.escape(verdict)}</span>',
        f'<span class="meta">{html.escape(" · ".join(meta))}</span>',
    ]
    if r.error is not None:
        parts.append(f'<div class="text error-text">{html.escape(r.error)}</div>')
    if r.output is not None:  # an output whose grading failed is still shown
        parts.append(f'<div class="text llmops-output">{cell.html}</div>')
        if cell.same_as_reference and not first:
            parts.append('<div class="meta">same as the first column</div>')
    rated = feedback_text(cell.feedback)
    if rated:
        parts.append(f'<div class="meta feedback">{html.escape(rated)}</div>')
    parts.append("<details><summary>Details</summary>")
    parts.append(f'<div class="k">Rendered prompt</div><pre>{html.escape(cell.rendered_prompt)}</pre>')
    if r.variables:
        parts.append('<div class="k">Variables</div><ul>')
        parts += [f"<li><b>{_e(k)}</b>: {html.escape(_value_text(v))}</li>" for k, v in r.variables.items()]
        parts.append("</ul>")
    parts.append(
        '<div class="k">Expected</div>'
        + (
            f"<pre>{html.escape(row.expected)}</pre>"
            if row.expected is not None
            else '<div class="meta">none given</div>'
        )
    )
    parts.append('<div class="k">Checks</div>')
    if r.assertions:
        parts.append("<ul>")
        for a in r.assertions:
            mark = "✓" if a.passed else "✗"
            parts.append(
                f"<li>{mark} <b>{html.escape(a.name)}</b> ({a.score:.2f}): {html.escape(a.reason or '')}</li>"
            )
        parts.append("</ul>")
    else:
        parts.append('<div class="meta">no checks ran on this output</div>')
    if cell.feedback is not None and cell.feedback.comments:
        parts.append('<div class="k">Comments</div><ul>')
        parts += [f"<li>{html.escape(c)}</li>" for c in cell.feedback.comments]
        parts.append("</ul>")
    tokens = f"{int(r.usage.get('prompt_tokens') or 0)} → {int(r.usage.get('completion_tokens') or 0)} tokens"
    request = f" · request {html.escape(cell.request_id)}" if cell.request_id else ""
    parts.append(f'<div class="meta">{tokens}{request}</div>')
    parts.append("</details></td>")
    return "".join(parts)


def matrix_html(matrix: ResultsMatrix, rows: Sequence[MatrixRow]) -> str:
    """The matrix as one HTML table (with its stylesheet): case, variables, then one column per version × model."""
    head = ['<th class="case">Case</th>']
    head += [f'<th class="var">{html.escape(name)}</th>' for name in matrix.variable_names]
    head += [f'<th class="out">{html.escape(c.label)}</th>' for c in matrix.columns]
    body = []
    for row in rows:
        cells = [f'<th class="case" scope="row">{html.escape(row.case_id)}</th>']
        for name in matrix.variable_names:
            value = row.variables.get(name)
            text = "" if value is None else _value_text(value)
            cells.append(f'<td class="var"><div class="clip">{html.escape(text)}</div></td>')
        cells += [_cell_html(cell, row, i == 0) for i, cell in enumerate(row.cells)]
        body.append(f'<tr data-case="{_e(row.case_id)}">{"".join(cells)}</tr>')
    return (
        f"<style>{MATRIX_CSS}</style>"
        '<div class="llmops-matrix-wrap"><table class="llmops-matrix">'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def report_html(run: RunResult, matrix: ResultsMatrix) -> str:
    """A self-contained HTML report of the run: its figures and the whole matrix with outputs."""
    summary = matrix.summary_rows()
    head = "".join(f"<th>{html.escape(k)}</th>" for k in summary[0]) if summary else ""
    lines = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row.values()) + "</tr>" for row in summary
    )
    prompts = ", ".join(f"{k} → {v}" if k != v else v for k, v in run.prompts.items())
    when = run.started_at.strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Eval run {html.escape(run.suite)} · {html.escape(run.id)}</title>"
        "<style>body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#111827}"
        ".summary{border-collapse:collapse;margin:12px 0 20px}.summary th,.summary td{border:1px solid #e5e7eb;"
        "padding:4px 10px;text-align:left;font-size:13px}</style></head><body>"
        f"<h1>{html.escape(run.suite)}</h1>"
        f"<p>Run <code>{html.escape(run.id)}</code> · {when} · {run.passed_count}/{run.total} passed · "
        f"mean score {run.score:.3f} · ${run.cost:.6f}</p>"
        f"<p>Prompts: {html.escape(prompts)} · models: {html.escape(', '.join(run.models))}</p>"
        f'<table class="summary"><tr>{head}</tr>{lines}</table>'
        f"{matrix_html(matrix, matrix.rows)}</body></html>"
    )


# --- exports -----------------------------------------------------------------------------------


def export_rows(run: RunResult, matrix: ResultsMatrix) -> list[dict[str, Any]]:
    """Every result with what produced it: variables, expected output, rendered prompt, request, feedback."""
    rows = []
    for row in matrix.rows:
        for cell in row.present():
            r = cell.result
            feedback = cell.feedback
            rows.append(
                {
                    "run_id": run.id,
                    "suite": run.suite,
                    "case_id": r.case_id,
                    "prompt_id": r.prompt_id,
                    "prompt_ref": r.prompt_ref or "",
                    "model_id": r.model_id,
                    "model": r.model,
                    "verdict": cell.verdict,
                    "passed": r.passed,
                    "score": round(r.score, 4),
                    "error": r.error or "",
                    "reason": r.reason,
                    "latency_ms": "" if r.latency_ms is None else round(r.latency_ms, 1),
                    "cost": "" if r.cost is None else r.cost,
                    "input_tokens": r.usage.get("prompt_tokens", ""),
                    "output_tokens": r.usage.get("completion_tokens", ""),
                    "cached": r.cached,
                    "variables": json.dumps(r.variables, ensure_ascii=False, default=str),
                    "expected": row.expected or "",
                    "rendered_prompt": cell.rendered_prompt,
                    "request_id": cell.request_id or "",
                    "feedback": feedback_text(feedback),
                    "output": r.output or "",
                }
            )
    return rows


def results_csv(run: RunResult, matrix: ResultsMatrix) -> str:
    """Every result of a run, one row each, for a spreadsheet."""
    rows = export_rows(run, matrix)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["run_id"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def results_json(run: RunResult, matrix: ResultsMatrix) -> str:
    data = run.to_dict()
    details = {(d["case_id"], d["prompt_id"], d["model_id"]): d for d in export_rows(run, matrix)}
    for result in data.get("results", []):
        extra = details.get((result["case_id"], result["prompt_id"], result["model_id"]), {})
        result["expected"] = extra.get("expected") or None
        result["rendered_prompt"] = extra.get("rendered_prompt")
        result["request_id"] = extra.get("request_id") or None
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)
