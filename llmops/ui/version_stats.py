"""Per-version numbers of a prompt, from the gateway's ledger, feedback and eval runs.

Requests, errors, cost and latency (p50/p95) come from the ledger rows that recorded the
prompt's name and version; feedback is joined to those rows by request id (one feedback
concept: llmops.experiments.feedback); the eval pass rate is the experiments report's
(llmops.experiments.evals), which counts eval runs and leaves app comparisons out.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Float, case, cast, func, literal, select

from llmops.columns import table_of
from llmops.db import get_engine
from llmops.experiments.evals import eval_scores_for
from llmops.experiments.models import FeedbackRow
from llmops.experiments.report import ERROR_OUTCOMES
from llmops.governance.ledger_models import LEDGER_TABLE
from llmops.ui.timebuckets import bucket_column, parse_bucket

# Latency percentiles are worked out from at most this many of a version's latest calls.
LATENCY_SAMPLE = 20_000


@dataclass(frozen=True)
class VersionNumbers:
    version: int
    requests: int
    errors: int
    cost: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    rated: int
    feedback_mean: float | None
    eval_pass_rate: float | None
    eval_runs: int

    def row(self) -> dict[str, str]:
        """For a table: every figure as text, "–" where there is none."""

        def ms(value: float | None) -> str:
            return "–" if value is None else f"{value:.0f} ms"

        return {
            "Version": f"v{self.version}",
            "Requests": f"{self.requests:,}",
            "Error rate": "–" if not self.requests else f"{self.errors / self.requests:.1%}",
            "Cost": f"${self.cost:.6f}",
            "Latency p50": ms(self.latency_p50_ms),
            "Latency p95": ms(self.latency_p95_ms),
            "Rated": f"{self.rated:,}",
            "Feedback": "–" if self.feedback_mean is None else f"{self.feedback_mean:.2f}",
            "Eval pass rate": "–"
            if self.eval_pass_rate is None
            else f"{self.eval_pass_rate:.0%} ({self.eval_runs} run{'s' if self.eval_runs != 1 else ''})",
        }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[index]


def version_numbers(
    database_url: str, name: str, versions: list[int], *, since: timedelta | None = None
) -> list[VersionNumbers]:
    """One VersionNumbers per version asked for (newest first as given), zeros where unused."""
    t = LEDGER_TABLE.c
    f = table_of(FeedbackRow).c
    where = [t.prompt_name == name]
    if since is not None:
        where.append(t.created_at >= datetime.now(UTC) - since)
    totals = (
        select(
            t.prompt_version,
            func.count().label("requests"),
            func.sum(case((t.outcome.in_(sorted(ERROR_OUTCOMES)), 1), else_=0)).label("errors"),
            func.coalesce(func.sum(t.cost), literal(0.0)).label("cost"),
        )
        .where(*where)
        .group_by(t.prompt_version)
    )
    # Several feedbacks on one request are one opinion: each rated request counts once, at its mean.
    per_request = (
        select(t.prompt_version.label("version"), f.request_id, func.avg(f.score).label("score"))
        .select_from(LEDGER_TABLE.join(table_of(FeedbackRow), f.request_id == t.id))
        .where(*where, f.score.is_not(None))
        .group_by(t.prompt_version, f.request_id)
        .subquery()
    )
    feedback = select(
        per_request.c.version, func.count().label("rated"), func.avg(per_request.c.score).label("mean")
    ).group_by(per_request.c.version)
    with get_engine(database_url).connect() as conn:
        by_version = {r.prompt_version: r for r in conn.execute(totals)}
        rated = {r.version: (int(r.rated), float(r.mean)) for r in conn.execute(feedback)}
        latencies: dict[int, list[float]] = {}
        for version in versions:
            query = (
                select(t.latency_ms)
                .where(*where, t.prompt_version == version, t.outcome == "success")
                .order_by(t.created_at.desc())
                .limit(LATENCY_SAMPLE)
            )
            latencies[version] = [float(x) for (x,) in conn.execute(query)]
    out = []
    for version in versions:
        row: Any = by_version.get(version)
        scores = eval_scores_for(name, version, database_url=database_url) or {}
        count, mean = rated.get(version, (0, None))
        out.append(
            VersionNumbers(
                version=version,
                requests=int(row.requests) if row else 0,
                errors=int(row.errors or 0) if row else 0,
                cost=float(row.cost or 0.0) if row else 0.0,
                latency_p50_ms=statistics.median(latencies[version]) if latencies[version] else None,
                latency_p95_ms=_percentile(latencies[version], 0.95),
                rated=count,
                feedback_mean=mean,
                eval_pass_rate=scores.get("pass_rate"),
                eval_runs=int(scores.get("runs") or 0),
            )
        )
    return out


@dataclass(frozen=True)
class VersionPoint:
    bucket: datetime
    version: str  # "v2"
    requests: int
    cost: float
    latency_ms: float | None  # mean over successful calls
    feedback_mean: float | None


def version_series(
    database_url: str, name: str, *, bucket: str = "hour", since: timedelta | None = None
) -> list[VersionPoint]:
    """Requests, cost, mean latency and mean feedback per version per time bucket, oldest first."""
    t = LEDGER_TABLE.c
    fb = table_of(FeedbackRow)
    engine = get_engine(database_url)
    when = bucket_column(t.created_at, engine.dialect.name, bucket).label("bucket")
    where = [t.prompt_name == name]
    if since is not None:
        where.append(t.created_at >= datetime.now(UTC) - since)
    traffic = (
        select(
            when,
            t.prompt_version,
            func.count().label("requests"),
            func.coalesce(func.sum(t.cost), literal(0.0)).label("cost"),
            func.avg(case((t.outcome == "success", cast(t.latency_ms, Float)), else_=None)).label("latency"),
        )
        .where(*where)
        .group_by(when, t.prompt_version)
    )
    rated = (
        select(when, t.prompt_version, func.avg(fb.c.score).label("feedback"))
        .select_from(LEDGER_TABLE.join(fb, fb.c.request_id == t.id))
        .where(*where, fb.c.score.is_not(None))
        .group_by(when, t.prompt_version)
    )
    with engine.connect() as conn:
        feedback = {(r.bucket, r.prompt_version): r.feedback for r in conn.execute(rated)}
        points = [
            VersionPoint(
                bucket=parse_bucket(r.bucket),
                version=f"v{r.prompt_version}" if r.prompt_version is not None else "(no version)",
                requests=int(r.requests),
                cost=float(r.cost or 0.0),
                latency_ms=None if r.latency is None else float(r.latency),
                feedback_mean=None
                if feedback.get((r.bucket, r.prompt_version)) is None
                else float(feedback[(r.bucket, r.prompt_version)]),
            )
            for r in conn.execute(traffic)
        ]
    return sorted(points, key=lambda p: (p.bucket, p.version))


def app_ratings(database_url: str, name: str, versions: list[int]) -> dict[int, tuple[int, float | None]]:
    """{version: (outputs rated, mean score)} of the ratings people gave in the app (Compare,
    Eval runs, the playground) to outputs of `name`'s versions; versions with none are left out."""
    from llmops.ui.matrix_view import FEEDBACK_SOURCE

    t = LEDGER_TABLE.c
    f = table_of(FeedbackRow).c
    per_request = (
        select(t.prompt_version.label("version"), f.request_id, func.avg(f.score).label("score"))
        .select_from(LEDGER_TABLE.join(table_of(FeedbackRow), f.request_id == t.id))
        .where(t.prompt_name == name, t.prompt_version.in_(versions), f.source == FEEDBACK_SOURCE)
        .group_by(t.prompt_version, f.request_id)
        .subquery()
    )
    query = select(
        per_request.c.version, func.count().label("rated"), func.avg(per_request.c.score).label("mean")
    ).group_by(per_request.c.version)
    with get_engine(database_url).connect() as conn:
        return {
            int(r.version): (int(r.rated), None if r.mean is None else float(r.mean))
            for r in conn.execute(query)
        }


def prompt_span(database_url: str, name: str, since: timedelta | None = None) -> timedelta | None:
    """How far back the prompt's oldest call in the period is (None: no call), to size chart buckets."""
    t = LEDGER_TABLE.c
    query = select(func.min(t.created_at)).where(t.prompt_name == name)
    if since is not None:
        query = query.where(t.created_at >= datetime.now(UTC) - since)
    with get_engine(database_url).connect() as conn:
        first = conn.execute(query).scalar()
    return None if first is None else datetime.now(UTC) - first
