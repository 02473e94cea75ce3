"""Online eval scores over time and the captured calls behind each point, for the app's
Monitoring page (and anyone else who wants them as data)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from llmops.monitoring.models import PAYLOADS, SCORES


@dataclass(frozen=True)
class ScorePoint:
    bucket: datetime  # the bucket's start
    subject: str  # "prompt:version|model"
    metric: str
    mean: float
    calls: int


def _subject(prompt: str | None, version: int | None, model: str | None) -> str:
    from llmops.monitoring.drift import subject_key

    return subject_key(prompt, version, model)


def _floor(at: datetime, bucket: timedelta) -> datetime:
    seconds = bucket.total_seconds()
    return datetime.fromtimestamp(at.timestamp() // seconds * seconds, UTC)


def score_series(
    database_url: str | None, *, since: timedelta, bucket: timedelta, now: datetime | None = None
) -> list[ScorePoint]:
    """Mean score per time bucket, prompt version x model and metric, oldest first."""
    from llmops.db import get_engine

    start = (now or datetime.now(UTC)) - since
    s = SCORES.c
    query = select(s.created_at, s.prompt_name, s.prompt_version, s.model, s.metric, s.score).where(
        s.created_at >= start
    )
    sums: dict[tuple[datetime, str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    with get_engine(database_url).connect() as conn:
        for created, prompt, version, model, metric, score in conn.execute(query):
            acc = sums[(_floor(created, bucket), _subject(prompt, version, model), metric)]
            acc[0] += score
            acc[1] += 1
    return [
        ScorePoint(at, subject, metric, total / n, int(n))
        for (at, subject, metric), (total, n) in sorted(sums.items())
    ]


def calls_behind(
    database_url: str | None, *, subject: str, metric: str, start: datetime, end: datetime, limit: int = 200
) -> list[dict[str, Any]]:
    """The captured calls of one point: their score on `metric`, why, and their text."""
    from llmops.db import get_engine

    s, p = SCORES.c, PAYLOADS.c
    query = (
        select(
            s.request_id,
            s.created_at,
            s.prompt_name,
            s.prompt_version,
            s.model,
            s.variant,
            s.score,
            s.reason,
            p.request_text,
            p.response_text,
        )
        .select_from(SCORES.outerjoin(PAYLOADS, p.id == s.request_id))
        .where(s.metric == metric, s.created_at >= start, s.created_at < end)
        .order_by(s.score, s.created_at)
    )
    out = []
    with get_engine(database_url).connect() as conn:
        for row in conn.execute(query):
            r = dict(row._mapping)
            if _subject(r.pop("prompt_name"), r.pop("prompt_version"), r.pop("model")) != subject:
                continue
            out.append(r)
            if len(out) >= limit:
                break
    return out


@dataclass(frozen=True)
class DriftPoint:
    run_at: datetime
    subject: str
    metric: str
    effect: float | None
    status: str


def drift_series(
    database_url: str | None, *, since: timedelta, now: datetime | None = None
) -> list[DriftPoint]:
    """Saved drift reports' checks (`llmops monitor report --save`, or the gateway's worker), oldest first."""
    from llmops.db import get_engine
    from llmops.monitoring.models import DRIFT

    d = DRIFT.c
    query = (
        select(d.run_at, d.subject, d.metric, d.effect, d.status)
        .where(d.run_at >= (now or datetime.now(UTC)) - since)
        .order_by(d.run_at)
    )
    with get_engine(database_url).connect() as conn:
        return [DriftPoint(*row) for row in conn.execute(query)]


@dataclass(frozen=True)
class VariantScore:
    experiment: str
    variant: str
    metric: str
    n: int
    mean: float | None
    ci_low: float | None  # 95% confidence interval of the mean (t)
    ci_high: float | None
    p_value: float | None  # Welch's t against the experiment's first variant on this metric


def scores_by_variant(
    database_url: str | None, *, experiment: str | None = None, since: timedelta | None = None
) -> list[VariantScore]:
    """Online eval scores of an A/B experiment's variants: the experiment comes from the
    ledger row each score is linked to, so an A/B report can set quality beside cost."""
    from llmops.db import get_engine
    from llmops.experiments.stats import mean_with_ci, welch_t_test
    from llmops.governance.ledger_models import LEDGER_TABLE

    t, s = LEDGER_TABLE.c, SCORES.c
    query = (
        select(t.experiment, t.variant, s.metric, s.score)
        .select_from(SCORES.join(LEDGER_TABLE, t.id == s.request_id))
        .where(t.experiment.is_not(None), t.variant.is_not(None))
    )
    if experiment is not None:
        query = query.where(t.experiment == experiment)
    if since is not None:
        query = query.where(s.created_at >= datetime.now(UTC) - since)
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    with get_engine(database_url).connect() as conn:
        for exp, variant, metric, score in conn.execute(query):
            values[(exp, variant, metric)].append(score)
    out = []
    for (exp, variant, metric), scores in sorted(values.items()):
        first = min(v for e, v, m in values if e == exp and m == metric)
        test = welch_t_test(values[(exp, first, metric)], scores) if variant != first else None
        estimate = mean_with_ci(scores)
        out.append(
            VariantScore(
                exp,
                variant,
                metric,
                estimate.n,
                estimate.mean,
                estimate.ci_low,
                estimate.ci_high,
                test.p if test else None,
            )
        )
    return out
