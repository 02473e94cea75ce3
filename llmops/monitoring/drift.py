"""Drift and degradation: a recent window against a reference window, per prompt version
x model and overall.

From the ledger (every call): input and output tokens, latency (p50, p95), cost per call,
error rate. From the captured sample: language mix, topic, refusal rate. From online
eval scores and feedback: their means. Each check says its test, statistic, p-value,
effect size and both sample sizes; it alarms only when both windows hold `min_calls`
values, the test is significant at `p_value` and the effect is large enough:
  numbers        PSI >= psi_alarm and KS p < p_value
  rates          chi-square p < p_value and Cohen's h >= 0.2
  categories     chi-square p < p_value and Cramér's V >= 0.2 (language mix)
  topic          permutation p < max(p_value, 2/(B+1)) and centroid distance >= 0.05
  eval scores    a mean drop >= score_drop and Welch's t p < p_value
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, func, not_, or_, select, true

from llmops.experiments.stats import percentile, welch_t_test
from llmops.governance.ledger_models import LEDGER_TABLE
from llmops.monitoring import features, stats
from llmops.monitoring.config import DriftConfig
from llmops.monitoring.models import PAYLOADS, SCORES

OVERALL = "*"
ERROR_OUTCOMES = ("upstream_error", "gateway_error")
MIN_RATE_EFFECT = 0.2  # Cohen's h
MIN_CATEGORY_EFFECT = 0.2  # Cramér's V
MIN_TOPIC_DISTANCE = 0.05
PERMUTATIONS = 500
TOPIC_SAMPLE = 300  # texts per window fed to the topic test


@dataclass
class Check:
    metric: str
    kind: str  # number | rate | category | topic | score
    test: str
    n_reference: int
    n_recent: int
    reference: float | dict[str, float] | None = None  # the reference window's value (mean, rate, shares)
    recent: float | dict[str, float] | None = None
    statistic: float | None = None
    p_value: float | None = None
    effect: float | None = None  # PSI, Cohen's h, Cramér's V, centroid distance, mean change
    status: str = "ok"  # ok | alarm | too_few
    note: str = ""


@dataclass
class Subject:
    """One prompt version x model (or the overall traffic, "*")."""

    key: str
    prompt: str | None
    version: int | None
    model: str | None
    calls_reference: int
    calls_recent: int
    checks: list[Check] = field(default_factory=list)
    sampled: bool = False  # a window held more than max_calls or max_texts: a random sample was compared

    @property
    def alarms(self) -> list[Check]:
        return [c for c in self.checks if c.status == "alarm"]


@dataclass
class Report:
    generated_at: datetime
    recent_start: datetime
    recent_end: datetime
    reference: str
    reference_start: datetime | None
    reference_end: datetime | None
    subjects: list[Subject]
    topic_method: str = "lexical"

    def alarms(self) -> list[tuple[Subject, Check]]:
        return [(s, c) for s in self.subjects for c in s.alarms]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["alarms"] = [
            {"subject": s.key, "metric": c.metric, "message": alarm_message(s, c)} for s, c in self.alarms()
        ]
        return data


def subject_key(prompt: str | None, version: int | None, model: str | None) -> str:
    return f"{prompt}:{version}|{model}" if prompt else f"(no prompt)|{model}"


def _num(value: float | dict[str, float] | None) -> float:
    return value if isinstance(value, float | int) else 0.0


def alarm_message(subject: Subject, check: Check) -> str:
    where = "all traffic" if subject.key == OVERALL else subject.key
    ref, cur, effect = _num(check.reference), _num(check.recent), check.effect or 0.0
    if check.kind == "score":
        what = f"{check.metric} dropped from {ref:.3f} to {cur:.3f}"
    elif check.kind == "rate":
        what = f"{check.metric} {'rose' if cur >= ref else 'fell'} from {ref:.1%} to {cur:.1%}"
    elif check.kind == "topic":
        what = f"topic shifted (distance {effect:.3f}){': ' + check.note if check.note else ''}"
    elif check.kind == "category":
        what = f"{check.metric} mix shifted (Cramér's V {effect:.2f}): {check.note}"
    else:
        what = f"{check.metric} shifted (PSI {effect:.2f}, mean {ref:.4g} -> {cur:.4g})"
    return f"{where}: {what}; p={check.p_value or 0:.2g}, n={check.n_reference}/{check.n_recent}"


# -- the checks ----------------------------------------------------------------------------


def _enough(config: DriftConfig, a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) >= config.min_calls and len(b) >= config.min_calls


def number_check(metric: str, ref: Sequence[float], cur: Sequence[float], config: DriftConfig) -> Check:
    check = Check(metric, "number", "PSI + KS", len(ref), len(cur))
    if not ref or not cur:
        check.status = "too_few"
        return check
    check.reference, check.recent = float(np.mean(ref)), float(np.mean(cur))
    if not _enough(config, ref, cur):
        check.status = "too_few"
        return check
    ks = stats.ks_test(ref, cur)
    check.statistic, check.p_value, check.effect = ks.statistic, ks.p_value, stats.psi(ref, cur)
    if check.effect >= config.psi_alarm and ks.p_value < config.p_value:
        check.status = "alarm"
    return check


def rate_check(metric: str, ref: Sequence[bool], cur: Sequence[bool], config: DriftConfig) -> Check:
    check = Check(metric, "rate", "chi-square", len(ref), len(cur))
    if not ref or not cur:
        check.status = "too_few"
        return check
    p_ref, p_cur = sum(ref) / len(ref), sum(cur) / len(cur)
    check.reference, check.recent = p_ref, p_cur
    if not _enough(config, ref, cur):
        check.status = "too_few"
        return check
    test = stats.chi_square_test(
        {"yes": sum(ref), "no": len(ref) - sum(ref)}, {"yes": sum(cur), "no": len(cur) - sum(cur)}
    )
    check.statistic, check.p_value, check.effect = test.statistic, test.p_value, stats.cohen_h(p_ref, p_cur)
    if test.p_value < config.p_value and check.effect >= MIN_RATE_EFFECT:
        check.status = "alarm"
    return check


def _shares(counts: Counter[str]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {k: round(v / total, 4) for k, v in counts.most_common()}


def category_check(metric: str, ref: Sequence[str], cur: Sequence[str], config: DriftConfig) -> Check:
    a, b = Counter(ref), Counter(cur)
    check = Check(metric, "category", "chi-square", len(ref), len(cur), _shares(a), _shares(b))
    if not _enough(config, ref, cur):
        check.status = "too_few"
        return check
    test = stats.chi_square_test(dict(a), dict(b))
    check.statistic, check.p_value, check.effect = test.statistic, test.p_value, test.effect
    grown = sorted(b, key=lambda k: -(b[k] / len(cur) - a.get(k, 0) / len(ref)))[:2]
    check.note = "more " + ", ".join(grown)
    if test.p_value < config.p_value and test.effect >= MIN_CATEGORY_EFFECT:
        check.status = "alarm"
    return check


def topic_check(
    ref: Sequence[str], cur: Sequence[str], config: DriftConfig, method: str
) -> tuple[Check, str]:
    check = Check("topic", "topic", "permutation (mean embedding)", len(ref), len(cur))
    if not _enough(config, ref, cur):
        check.status = "too_few"
        return check, method
    rng = np.random.default_rng(0)
    ref_s = [ref[i] for i in rng.permutation(len(ref))[:TOPIC_SAMPLE]]
    cur_s = [cur[i] for i in rng.permutation(len(cur))[:TOPIC_SAMPLE]]
    vectors, used = features.topic_vectors(ref_s + cur_s, method)
    test = stats.mean_embedding_test(vectors[: len(ref_s)], vectors[len(ref_s) :], PERMUTATIONS)
    check.test = f"permutation (mean {used} vector)"
    check.statistic, check.p_value, check.effect = test.statistic, test.p_value, test.effect
    terms = features.rising_terms(ref_s, cur_s)
    check.note = ("new terms: " + ", ".join(terms)) if terms else ""
    if test.p_value < max(config.p_value, 2 / (PERMUTATIONS + 1)) and test.effect >= MIN_TOPIC_DISTANCE:
        check.status = "alarm"
    return check, used


def score_check(metric: str, ref: Sequence[float], cur: Sequence[float], config: DriftConfig) -> Check:
    check = Check(metric, "score", "Welch t", len(ref), len(cur))
    if not ref or not cur:
        check.status = "too_few"
        return check
    check.reference, check.recent = float(np.mean(ref)), float(np.mean(cur))
    check.effect = check.recent - check.reference
    if not _enough(config, ref, cur):
        check.status = "too_few"
        return check
    test = welch_t_test(ref, cur)
    if test is not None:
        check.statistic = test.t if np.isfinite(test.t) else None  # both windows constant
        check.p_value = test.p
        if -check.effect >= config.score_drop and test.p < config.p_value:
            check.status = "alarm"
    return check


# -- loading the two windows -----------------------------------------------------------------


@dataclass
class _Window:
    calls: list[dict[str, Any]] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    feedback: list[float] = field(default_factory=list)
    thinned: bool = False  # a sample of the window's calls or texts (max_calls, max_texts)


def _group_keys(row: dict[str, Any]) -> tuple[str, str]:
    return subject_key(row["prompt_name"], row["prompt_version"], row["model"]), OVERALL


def _match(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


Thinning = list[tuple[str | None, int | None, str | None, str]]  # subject's columns, id byte threshold


def _thinning(conn, table: Any, window: list[Any], cap: int) -> Thinning:
    """The subjects with more than `cap` rows in the window, each with the threshold that
    keeps about `cap` of them. Request ids end in random hex ("req-" + 13 hex of time + 20
    random): a subject with n rows keeps those whose first random byte is below
    256 * cap / n, an unbiased sample the database takes, whatever the ledger's size."""
    c = table.c
    counts = conn.execute(
        select(c.prompt_name, c.prompt_version, c.model, func.count())
        .where(*window)
        .group_by(c.prompt_name, c.prompt_version, c.model)
    ).all()
    return [(p, v, m, f"{max(1, 256 * cap // n):02x}") for p, v, m, n in counts if n > cap]


def _kept(table: Any, id_column: Any, thinning: Thinning) -> Any:
    if not thinning:
        return true()
    c = table.c
    dropped = [
        and_(
            _match(c.prompt_name, p),
            _match(c.prompt_version, v),
            _match(c.model, m),
            func.substr(id_column, 18, 2) >= threshold,
        )
        for p, v, m, threshold in thinning
    ]
    return not_(or_(*dropped))


def _load(engine, start: datetime, end: datetime, config: DriftConfig) -> dict[str, _Window]:
    """Calls, captured texts, scores and feedback between start and end, by subject."""
    from llmops.columns import table_of
    from llmops.experiments.models import FeedbackRow

    feedback = table_of(FeedbackRow)
    out: dict[str, _Window] = defaultdict(_Window)
    t, p, s = LEDGER_TABLE.c, PAYLOADS.c, SCORES.c
    with engine.connect() as conn:
        window = [t.created_at >= start, t.created_at < end, t.outcome.notin_(("client_error", "cancelled"))]
        thin_calls = _thinning(conn, LEDGER_TABLE, window, config.max_calls)
        kept = _kept(LEDGER_TABLE, t.id, thin_calls)
        calls = conn.execute(
            select(
                t.id,
                t.created_at,
                t.model,
                t.prompt_name,
                t.prompt_version,
                t.input_tokens,
                t.output_tokens,
                t.latency_ms,
                t.cost,
                t.outcome,
            ).where(*window, kept)
        )
        for row in calls:
            r = dict(row._mapping)
            for key in _group_keys(r):
                out[key].calls.append(r)
        captured = [p.created_at >= start, p.created_at < end]
        thin_texts = _thinning(conn, PAYLOADS, captured, config.max_texts)
        kept_texts = _kept(PAYLOADS, p.id, thin_texts)
        texts = conn.execute(
            select(p.model, p.prompt_name, p.prompt_version, p.request_text).where(*captured, kept_texts)
        )
        for row in texts:
            r = dict(row._mapping)
            for key in _group_keys(r):
                out[key].payloads.append(r)
        # Scores of the same captured calls: the texts' filter, on the request id.
        kept_scores = _kept(SCORES, s.request_id, thin_texts)
        scores = conn.execute(
            select(s.model, s.prompt_name, s.prompt_version, s.metric, s.score).where(
                s.created_at >= start, s.created_at < end, kept_scores
            )
        )
        for row in scores:
            r = dict(row._mapping)
            for key in _group_keys(r):
                out[key].scores[r["metric"]].append(r["score"])
        for prompt, version, model, _ in thin_calls + thin_texts:
            out[subject_key(prompt, version, model)].thinned = out[OVERALL].thinned = True
        rated = conn.execute(
            select(t.model, t.prompt_name, t.prompt_version, func.avg(feedback.c.score))
            .select_from(feedback.join(LEDGER_TABLE, feedback.c.request_id == t.id))
            .where(and_(t.created_at >= start, t.created_at < end, feedback.c.score.is_not(None)))
            .group_by(t.id, t.model, t.prompt_name, t.prompt_version)
        )
        for model, prompt, version, score in rated:
            for key in _group_keys({"model": model, "prompt_name": prompt, "prompt_version": version}):
                out[key].feedback.append(float(score))
    return out


def _subject_checks(
    ref: _Window, cur: _Window, config: DriftConfig, topic_method: str
) -> tuple[list[Check], str]:
    checks: list[Check] = []

    def column(
        window: _Window, name: str, keep: Callable[[Any], bool] = lambda v: v is not None
    ) -> list[float]:
        return [float(c[name]) for c in window.calls if keep(c[name])]

    served = lambda w: [c for c in w.calls if c["outcome"] == "success"]  # noqa: E731
    for metric, name in (
        ("input_tokens", "input_tokens"),
        ("output_tokens", "output_tokens"),
        ("latency_ms", "latency_ms"),
        ("cost_per_call", "cost"),
    ):
        a = [float(c[name]) for c in served(ref) if c[name] is not None]
        b = [float(c[name]) for c in served(cur) if c[name] is not None]
        check = number_check(metric, a, b, config)
        if metric == "latency_ms" and a and b:
            check.note = (
                f"p50 {percentile(a, 50):.1f} -> {percentile(b, 50):.1f} ms, "
                f"p95 {percentile(a, 95):.1f} -> {percentile(b, 95):.1f} ms"
            )
        checks.append(check)
    checks.append(
        rate_check(
            "error_rate",
            [c["outcome"] in ERROR_OUTCOMES for c in ref.calls],
            [c["outcome"] in ERROR_OUTCOMES for c in cur.calls],
            config,
        )
    )
    ref_texts = [features.user_text(p["request_text"]) for p in ref.payloads]
    cur_texts = [features.user_text(p["request_text"]) for p in cur.payloads]
    checks.append(
        category_check(
            "language",
            [features.language(t) for t in ref_texts],
            [features.language(t) for t in cur_texts],
            config,
        )
    )
    topic, used = topic_check(ref_texts, cur_texts, config, topic_method)
    checks.append(topic)
    for metric in sorted(set(ref.scores) | set(cur.scores)):
        a, b = ref.scores.get(metric, []), cur.scores.get(metric, [])
        if metric in ("refusal", "guardrails"):
            name = "refusal_rate" if metric == "refusal" else "guardrail_fired_rate"
            flip = metric == "guardrails"  # a guardrails score of 1 means nothing fired
            checks.append(
                rate_check(
                    name,
                    [(v < 0.5) if flip else (v >= 0.5) for v in a],
                    [(v < 0.5) if flip else (v >= 0.5) for v in b],
                    config,
                )
            )
        else:
            checks.append(score_check(metric, a, b, config))
    checks.append(score_check("feedback", ref.feedback, cur.feedback, config))
    return checks, used


def build_report(
    database_url: str | None = None,
    config: DriftConfig | None = None,
    *,
    now: datetime | None = None,
    since: timedelta | None = None,
) -> Report:
    """The drift report: `since` (default config.recent) back from `now` against the reference."""
    from llmops.db import get_engine

    config = config or DriftConfig()
    engine = get_engine(database_url)
    now = now or datetime.now(UTC)
    recent_start = now - (since or timedelta(seconds=config.recent))
    recent = _load(engine, recent_start, now, config)
    used = "lexical"
    subjects: list[Subject] = []
    if config.reference == "previous":
        ref_start = recent_start - timedelta(seconds=config.reference_span)
        reference = _load(engine, ref_start, recent_start, config)
        windows = {key: reference.get(key, _Window()) for key in set(reference) | set(recent)}
        ref_bounds: tuple[datetime | None, datetime | None] = (ref_start, recent_start)
    else:
        windows = _first_weeks(engine, set(recent), recent_start, config)
        ref_bounds = (None, None)
    for key in sorted(set(windows) | set(recent)):
        ref, cur = windows.get(key, _Window()), recent.get(key, _Window())
        sample = (cur.calls or ref.calls or [{}])[0]
        subject = Subject(
            key, None, None, None, len(ref.calls), len(cur.calls), sampled=ref.thinned or cur.thinned
        )
        if key != OVERALL:
            subject.prompt, subject.version, subject.model = (
                sample.get("prompt_name"),
                sample.get("prompt_version"),
                sample.get("model"),
            )
        subject.checks, used = _subject_checks(ref, cur, config, config.topic)
        subjects.append(subject)
    subjects.sort(key=lambda s: (s.key != OVERALL, s.key))
    return Report(now, recent_start, now, config.reference, *ref_bounds, subjects=subjects, topic_method=used)


def _first_weeks(engine, keys: Iterable[str], before: datetime, config: DriftConfig) -> dict[str, _Window]:
    """Each subject's first week (up to `before`) as its reference."""
    t = LEDGER_TABLE.c
    with engine.connect() as conn:
        firsts = conn.execute(
            select(t.prompt_name, t.prompt_version, t.model, func.min(t.created_at)).group_by(
                t.prompt_name, t.prompt_version, t.model
            )
        ).all()
    out: dict[str, _Window] = {}
    overall_first = None
    for prompt, version, model, first in firsts:
        if first is None:
            continue
        first = first if first.tzinfo else first.replace(tzinfo=UTC)
        overall_first = first if overall_first is None else min(first, overall_first)
        key = subject_key(prompt, version, model)
        if key in keys:
            loaded = _load(engine, first, min(first + timedelta(days=7), before), config)
            out[key] = loaded.get(key, _Window())
    if overall_first is not None:
        out[OVERALL] = _load(
            engine, overall_first, min(overall_first + timedelta(days=7), before), config
        ).get(OVERALL, _Window())
    return out


HISTORY_DAYS = 30  # saved reports older than this are deleted when a new one is saved


def save_report(report: Report, database_url: str | None = None, *, every: float | None = None) -> int:
    """Keep the report's checks (effect, p-value, status) for drift over time; returns rows.
    With `every` (seconds), the run's time is rounded down to it, and a run some other
    gateway worker saved already is not saved again."""
    import math

    from sqlalchemy import delete
    from sqlalchemy.exc import IntegrityError

    from llmops.db import get_engine
    from llmops.monitoring.models import DRIFT

    def finite(v: float | None) -> float | None:
        return v if v is not None and math.isfinite(v) else None

    run_at = report.generated_at
    if every:
        run_at = datetime.fromtimestamp(run_at.timestamp() // every * every, UTC)
    rows = [
        {
            "run_at": run_at,
            "subject": s.key[:300],
            "metric": c.metric[:100],
            "status": c.status,
            "effect": finite(c.effect),
            "p_value": finite(c.p_value),
            "n_reference": c.n_reference,
            "n_recent": c.n_recent,
        }
        for s in report.subjects
        for c in s.checks
    ]
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.execute(delete(DRIFT).where(DRIFT.c.run_at < run_at - timedelta(days=HISTORY_DAYS)))
    try:
        with engine.begin() as conn:
            if rows:
                conn.execute(DRIFT.insert(), rows)
    except IntegrityError:
        return 0  # saved by another worker
    return len(rows)
