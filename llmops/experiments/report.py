"""An experiment's report: per variant what it cost and how it did; each candidate
against control, with a test and a verdict in plain words.

Definitions (documented here because the numbers mean nothing without them):

- requests: ledger rows the gateway tagged with the experiment and the variant;
  feedback joins the ledger by request id when the report runs, so feedback sent
  before its request's ledger row was flushed counts as soon as the row lands.
- error rate: outcome `upstream_error` over all requests. Guardrail outcomes
  (`blocked`, `refused`) are reported apart as `blocked_rate`; `client_error` and
  `cancelled` are the caller's doing and count in neither.
- latency, time to first token, tokens and cost per call: successful requests only
  (a failure's latency says nothing about the prompt). Cost per call averages the
  calls that have a price.
- feedback: one value per rated request (the mean of its scores), because several
  feedbacks on one request are not independent; the interval is Student's t.
- tests: Welch's t-test on feedback, the pooled two-proportion z-test on error
  rates, both two-sided; below `min_samples` (rated requests for feedback,
  requests for errors) a comparison says "not enough data" instead of a p-value.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from llmops.db import get_engine
from llmops.experiments import stats
from llmops.experiments.assignment import VariantSpec
from llmops.experiments.evals import eval_scores_for
from llmops.experiments.feedback import VariantFeedback, feedback_by_variant
from llmops.experiments.ledger import LEDGER_TABLE
from llmops.experiments.service import ExperimentService, ExperimentView

MIN_SAMPLES = 30
ALPHA = 0.05
ERROR_OUTCOMES = frozenset({"upstream_error", "gateway_error"})
BLOCKED_OUTCOMES = frozenset({"blocked", "refused"})


@dataclass
class _VariantLedger:
    requests: int = 0
    outcomes: Counter = field(default_factory=Counter)
    versions: set[int] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    input_tokens: list[int] = field(default_factory=list)
    output_tokens: list[int] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(self.outcomes[o] for o in ERROR_OUTCOMES)

    @property
    def blocked(self) -> int:
        return sum(self.outcomes[o] for o in BLOCKED_OUTCOMES)


def _read_ledger(conn, ledger, experiment: str) -> dict[str, _VariantLedger]:
    c = ledger.c
    query = select(
        c.variant,
        c.outcome,
        c.prompt_version,
        c.latency_ms,
        c.ttft_ms,
        c.input_tokens,
        c.output_tokens,
        c.cost,
    ).where(c.experiment == experiment)
    out: dict[str, _VariantLedger] = defaultdict(_VariantLedger)
    for variant, outcome, version, latency, ttft, tokens_in, tokens_out, cost in conn.execute(query):
        agg = out[variant or ""]
        agg.requests += 1
        agg.outcomes[outcome] += 1
        if version is not None:
            agg.versions.add(int(version))
        if outcome == "success":
            agg.latencies.append(float(latency or 0.0))
            if ttft is not None:
                agg.ttfts.append(float(ttft))
            agg.input_tokens.append(int(tokens_in or 0))
            agg.output_tokens.append(int(tokens_out or 0))
            if cost is not None:
                agg.costs.append(float(cost))
    return out


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _spread(values: list[float]) -> dict[str, float | None]:
    return {"mean": stats.mean(values), "p95": stats.percentile(values, 95)}


def _variant_section(
    spec: VariantSpec | None,
    name: str,
    share: float | None,
    ledger: _VariantLedger,
    feedback: VariantFeedback,
    prompt: str,
    evals: dict[str, dict] | None,
) -> dict[str, Any]:
    estimate = stats.mean_with_ci(feedback.scores)
    return {
        "name": name,
        "ref": spec.ref_for(prompt) if spec else None,
        "target": spec.target if spec else None,
        "weight": spec.weight if spec else None,
        "share": share,
        "versions": sorted(ledger.versions),
        "requests": ledger.requests,
        "outcomes": dict(ledger.outcomes),
        "errors": ledger.errors,
        "error_rate": _rate(ledger.errors, ledger.requests),
        "blocked_rate": _rate(ledger.blocked, ledger.requests),
        "latency_ms": _spread(ledger.latencies),
        "ttft_ms": _spread(ledger.ttfts),
        "tokens_per_call": {
            "input": stats.mean(ledger.input_tokens),
            "output": stats.mean(ledger.output_tokens),
        },
        "cost_per_call": stats.mean(ledger.costs),
        "cost_total": math.fsum(ledger.costs),
        "priced_calls": len(ledger.costs),
        "feedback": {
            "rated_requests": estimate.n,
            "feedback_count": feedback.feedback_count,
            "thumbs_up": feedback.thumbs_up,
            "thumbs_down": feedback.thumbs_down,
            "comments": feedback.comments,
            "mean": estimate.mean,
            "stdev": estimate.stdev,
            "ci95": [estimate.ci_low, estimate.ci_high] if estimate.ci_low is not None else None,
        },
        "eval": evals,
    }


def format_p(p: float) -> str:
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2f}" if p >= 0.01 else f"p = {p:.3f}"


def _pct_change(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return (new - old) / old * 100.0


def compare(
    control: dict,
    candidate: dict,
    fb_control: list[float],
    fb_candidate: list[float],
    *,
    min_samples: int = MIN_SAMPLES,
    alpha: float = ALPHA,
) -> dict[str, Any]:
    """One candidate against control: tests, changes, and a verdict sentence."""
    name = candidate["name"]
    n_fb = [len(fb_control), len(fb_candidate)]
    enough_fb = min(n_fb) >= min_samples
    welch = stats.welch_t_test(fb_control, fb_candidate) if enough_fb else None
    n_req = [control["requests"], candidate["requests"]]
    enough_req = min(n_req) >= min_samples
    ztest = (
        stats.two_proportion_z_test(
            control["errors"], control["requests"], candidate["errors"], candidate["requests"]
        )
        if enough_req
        else None
    )
    cost_change = _pct_change(candidate["cost_per_call"], control["cost_per_call"])
    latency_change = _pct_change(candidate["latency_ms"]["mean"], control["latency_ms"]["mean"])
    p95_c, p95_v = control["latency_ms"]["p95"], candidate["latency_ms"]["p95"]
    p95_delta = p95_v - p95_c if p95_c is not None and p95_v is not None else None

    parts: list[str] = []
    findings: list[str] = []
    if welch is not None:
        parts.append(f"feedback {welch.diff:+.2f} ({format_p(welch.p)})")
        if welch.p < alpha:
            findings.append(f"feedback {'higher' if welch.diff > 0 else 'lower'} than {control['name']}")
    else:
        parts.append(
            f"feedback: not enough data ({n_fb[0]} vs {n_fb[1]} rated requests, need {min_samples} each)"
        )
    if ztest is not None:
        parts.append(f"errors {ztest.diff * 100:+.1f} pts ({format_p(ztest.p)})")
        if ztest.p < alpha:
            findings.append(f"error rate {'higher' if ztest.diff > 0 else 'lower'} than {control['name']}")
    else:
        parts.append(f"errors: not enough data ({n_req[0]} vs {n_req[1]} requests, need {min_samples} each)")
    if cost_change is not None:
        parts.append(f"cost {cost_change:+.0f}%")
    if p95_delta is not None:
        parts.append(f"latency p95 {p95_delta:+.0f} ms")
    if welch is None and ztest is None:
        conclusion = "not enough data"
        parts = [
            f"not enough data ({n_req[0]} vs {n_req[1]} requests, {n_fb[0]} vs {n_fb[1]} rated; "
            f"need {min_samples} each)"
        ] + parts[2:]
    elif findings:
        conclusion = f"significant (p < {alpha:g}): " + ", ".join(findings)
    elif welch is None:
        conclusion = "no significant difference in errors; not enough feedback to judge quality"
    else:
        conclusion = f"no significant difference from {control['name']}"
    return {
        "variant": name,
        "against": control["name"],
        # t is infinite when both samples are constant and differ: JSON has no infinity.
        "feedback": {
            "n": n_fb,
            "enough_data": enough_fb,
            "diff": welch.diff if welch else None,
            "t": welch.t if welch and math.isfinite(welch.t) else None,
            "df": welch.df if welch else None,
            "p": welch.p if welch else None,
        },
        "error_rate": {
            "n": n_req,
            "enough_data": enough_req,
            "diff": ztest.diff if ztest else None,
            "z": ztest.z if ztest else None,
            "p": ztest.p if ztest else None,
        },
        "cost_change_pct": cost_change,
        "latency_mean_change_pct": latency_change,
        "latency_p95_change_ms": p95_delta,
        "conclusion": conclusion,
        "verdict": f"{name}: {', '.join(parts)}"
        + ("" if conclusion == "not enough data" else f"; {conclusion}"),
    }


def _eval_section(
    service: ExperimentService, view: ExperimentView, spec: VariantSpec, seen: set[int]
) -> dict | None:
    versions = set(seen)
    if not versions:
        if spec.version is not None:
            versions = {spec.version}
        else:
            try:
                versions = {service.registry.get(spec.ref_for(view.prompt_name)).version}
            except Exception:  # the label may be gone; evals are an extra, never a failure
                versions = set()
    found = {}
    for version in sorted(versions):
        scores = eval_scores_for(view.prompt_name, version, database_url=service.database_url)
        if scores:
            found[str(version)] = scores
    return found or None


def experiment_report(
    name: str,
    *,
    database_url: str | None = None,
    min_samples: int = MIN_SAMPLES,
    alpha: float = ALPHA,
    service: ExperimentService | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict (what `GET /admin/experiments/NAME` serves).

    Raises NotFound for an unknown experiment.
    """
    service = service or ExperimentService(database_url)
    view = service.get(name)
    engine = get_engine(service.database_url)
    with engine.connect() as conn:
        by_variant = _read_ledger(conn, LEDGER_TABLE, name)
        feedback = feedback_by_variant(conn, LEDGER_TABLE, name)
    weights = (
        service.current_weights(name) if view.status == "running" else tuple(v.weight for v in view.variants)
    )
    total = math.fsum(weights)
    sections = []
    for spec, weight in zip(view.variants, weights, strict=True):
        ledger_part = by_variant.get(spec.name, _VariantLedger())
        fb = feedback.get(spec.name, VariantFeedback(scores=[]))
        evals = _eval_section(service, view, spec, ledger_part.versions)
        sections.append(
            _variant_section(spec, spec.name, weight / total, ledger_part, fb, view.prompt_name, evals)
        )
    # Rows tagged with a variant the definition lacks: shown, never compared.
    known = {v.name for v in view.variants}
    for stray in sorted(set(by_variant) - known):
        sections.append(
            _variant_section(
                None,
                stray,
                None,
                by_variant[stray],
                feedback.get(stray, VariantFeedback(scores=[])),
                view.prompt_name,
                None,
            )
        )
    control_name = view.control
    control = next(s for s in sections if s["name"] == control_name)
    fb_scores = {k: v.scores for k, v in feedback.items()}
    comparisons = [
        compare(
            control,
            s,
            fb_scores.get(control_name, []),
            fb_scores.get(s["name"], []),
            min_samples=min_samples,
            alpha=alpha,
        )
        for s in sections
        if s["name"] != control_name and s["name"] in known
    ]
    return {
        "experiment": view.to_dict(),
        "control": control_name,
        "min_samples": min_samples,
        "alpha": alpha,
        "variants": sections,
        "comparisons": comparisons,
        "summary": [c["verdict"] for c in comparisons],
        "generated_at": datetime.now(UTC).isoformat(),
    }
