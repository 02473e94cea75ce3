"""Experiments for the page: each variant's figures with intervals, and their course over time.

The figures and verdicts are `llmops.experiments.report.experiment_report`'s; this adds
a table shape and the per-bucket series the charts draw from the ledger and feedback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, case, cast, func, select

from llmops.columns import table_of
from llmops.db import get_engine
from llmops.experiments.models import FeedbackRow
from llmops.experiments.report import ERROR_OUTCOMES, experiment_report
from llmops.experiments.service import ExperimentService, ExperimentView
from llmops.governance.ledger_models import LEDGER_TABLE
from llmops.monitoring.stats import chi_square_sf
from llmops.ui.timebuckets import bucket_column, parse_bucket

__all__ = [
    "list_experiments",
    "experiment_report",
    "variant_rows",
    "feedback_intervals",
    "traffic_span",
    "experiment_over_time",
    "VariantPoint",
    "SplitCheck",
    "split_check",
    "chi_square_sf",
]


def list_experiments(database_url: str) -> list[ExperimentView]:
    """Running first, then paused, then stopped; newest first within each."""
    order = {"running": 0, "paused": 1, "stopped": 2}
    views = ExperimentService(database_url).list()
    return sorted(views, key=lambda v: (order.get(v.status, 3), -v.created_at.timestamp()))


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def variant_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant: traffic, errors, latency, cost, and feedback with its 95% interval."""
    rows = []
    requests = sum(v["requests"] for v in report["variants"])
    for v in report["variants"]:
        feedback = v["feedback"]
        ci = feedback["ci95"] or [None, None]
        evals = v.get("eval") or {}
        rows.append(
            {
                "variant": v["name"] + (" (control)" if v["name"] == report["control"] else ""),
                "prompt": v["ref"] or "(not in the definition)",
                "versions seen": ", ".join(str(x) for x in v["versions"]) or "-",
                "configured share %": _pct(v["share"]),
                "actual share %": _pct(v["requests"] / requests) if requests else None,
                "requests": v["requests"],
                "error rate %": _pct(v["error_rate"]),
                "blocked %": _pct(v["blocked_rate"]),
                "latency mean ms": _round(v["latency_ms"]["mean"], 1),
                "latency p95 ms": _round(v["latency_ms"]["p95"], 1),
                "cost per call $": _round(v["cost_per_call"], 8),
                "rated": feedback["rated_requests"],
                "feedback mean": _round(feedback["mean"], 3),
                "feedback 95% CI low": _round(ci[0], 3),
                "feedback 95% CI high": _round(ci[1], 3),
                "eval score": _eval_score(evals),
            }
        )
    return [{k: "–" if v is None else v for k, v in row.items()} for row in rows]


def feedback_intervals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Variants with rated requests: mean feedback and its 95% interval, for the chart."""
    rows = []
    for v in report["variants"]:
        feedback = v["feedback"]
        if feedback["mean"] is None:
            continue
        low, high = feedback["ci95"] or (feedback["mean"], feedback["mean"])
        rows.append(
            {
                "variant": v["name"],
                "mean": feedback["mean"],
                "low": low,
                "high": high,
                "rated": feedback["rated_requests"],
            }
        )
    return rows


def traffic_span(database_url: str, name: str) -> timedelta | None:
    """How long the experiment has had traffic (first to last request), None when it has none."""
    t = LEDGER_TABLE.c
    with get_engine(database_url).connect() as conn:
        first, last = conn.execute(
            select(func.min(t.created_at), func.max(t.created_at)).where(t.experiment == name)
        ).one()
    if first is None or last is None:
        return None
    return last - first


def _eval_score(evals: dict[str, dict]) -> str:
    """Mean eval score and pass rate per version the variant served, e.g. "v2: 0.91 (100% passed)"."""
    parts = []
    for version, scores in sorted(evals.items()):
        score = scores.get("mean_score") if isinstance(scores, dict) else None
        if isinstance(score, int | float):
            parts.append(f"v{version}: {score:.2f} ({scores.get('pass_rate', 0) * 100:.0f}% passed)")
    return ", ".join(parts) or "-"


@dataclass(frozen=True)
class VariantPoint:
    bucket: datetime
    variant: str
    requests: int
    errors: int
    latency_ms: float | None  # mean over successful calls
    feedback_mean: float | None
    feedback_count: int

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def experiment_over_time(database_url: str, name: str, *, bucket: str = "hour") -> list[VariantPoint]:
    """Requests, errors, mean latency and mean feedback per variant per bucket, oldest first."""
    t = LEDGER_TABLE.c
    feedback_table = table_of(FeedbackRow)
    f = feedback_table.c
    engine = get_engine(database_url)
    when = bucket_column(t.created_at, engine.dialect.name, bucket).label("bucket")
    success = t.outcome == "success"
    traffic = (
        select(
            when,
            t.variant,
            func.count().label("requests"),
            func.sum(case((t.outcome.in_(sorted(ERROR_OUTCOMES)), 1), else_=0)).label("errors"),
            func.avg(case((success, cast(t.latency_ms, Float)), else_=None)).label("latency"),
        )
        .where(t.experiment == name)
        .group_by(when, t.variant)
    )
    rated = (
        select(when, t.variant, func.avg(f.score).label("feedback"), func.count(f.score).label("rated"))
        .select_from(LEDGER_TABLE.join(feedback_table, f.request_id == t.id))
        .where(t.experiment == name, f.score.is_not(None))
        .group_by(when, t.variant)
    )
    with engine.connect() as conn:
        feedback = {(r.bucket, r.variant): (r.feedback, r.rated) for r in conn.execute(rated)}
        points = []
        for r in conn.execute(traffic):
            mean, count = feedback.get((r.bucket, r.variant), (None, 0))
            points.append(
                VariantPoint(
                    bucket=parse_bucket(r.bucket),
                    variant=r.variant or "(none)",
                    requests=int(r.requests),
                    errors=int(r.errors or 0),
                    latency_ms=None if r.latency is None else float(r.latency),
                    feedback_mean=None if mean is None else float(mean),
                    feedback_count=int(count or 0),
                )
            )
    return sorted(points, key=lambda p: (p.bucket, p.variant))


# --- the actual split against the configured one (sample-ratio mismatch) ----------------------

SRM_ALPHA = 0.01


@dataclass(frozen=True)
class SplitCheck:
    counts: dict[str, int]  # requests per variant of the definition
    configured: dict[str, float]  # the configured share of each
    statistic: float | None
    p_value: float | None
    mismatch: bool
    message: str

    def rows(self) -> list[dict[str, Any]]:
        total = sum(self.counts.values())
        return [
            {
                "variant": name,
                "configured %": round(share * 100, 2),
                "actual %": round(self.counts[name] / total * 100, 2) if total else "–",
                "requests": self.counts[name],
                "expected requests": round(share * total, 1),
            }
            for name, share in self.configured.items()
        ]


def split_check(report: dict[str, Any]) -> SplitCheck:
    """The actual split beside the configured weights, flagged on a chi-square test at p < 0.01."""
    variants = [v for v in report["variants"] if v.get("weight") is not None]
    total_weight = math.fsum(v["weight"] for v in variants)
    configured = {v["name"]: v["weight"] / total_weight for v in variants} if total_weight else {}
    counts = {v["name"]: int(v["requests"]) for v in variants}
    n = sum(counts.values())
    split = ", ".join(f"{name} {count}" for name, count in counts.items())
    allocation = report.get("experiment", {}).get("allocation", "fixed")
    if allocation != "fixed":
        return SplitCheck(
            counts,
            configured,
            None,
            None,
            False,
            f"Actual split: {split}. Not tested for a sample-ratio mismatch: the {allocation} allocation "
            "moves the weights as results come in.",
        )
    tested = {k: p for k, p in configured.items() if p > 0}
    if len(tested) < 2 or n == 0:
        return SplitCheck(
            counts, configured, None, None, False, f"Actual split: {split or 'no requests yet'}."
        )
    statistic = math.fsum((counts[k] - p * n) ** 2 / (p * n) for k, p in tested.items())
    p_value = chi_square_sf(statistic, len(tested) - 1)
    expected = ", ".join(f"{k} {p * n:.0f}" for k, p in tested.items())
    mismatch = p_value < SRM_ALPHA or any(counts[k] for k, p in configured.items() if p == 0)
    if mismatch:
        message = (
            f"Sample-ratio mismatch: {split} requests where the configured weights expect {expected} "
            f"(chi-square {statistic:.2f}, p = {p_value:.2g}). Assignment or logging is skewed; "
            "the comparison between variants may be biased."
        )
    else:
        message = (
            f"Actual split {split} fits the configured weights (expected {expected}; p = {p_value:.2g})."
        )
    return SplitCheck(counts, configured, statistic, p_value, mismatch, message)
