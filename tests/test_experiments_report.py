"""Feedback, the experiment report, promotion and Thompson allocation, on real databases.

Ledger rows are inserted straight into the gateway's `ledger` table, as its batch
writer would; every expected figure is computed here independently of the library.
"""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from llmops import Registry
from llmops.db import get_engine
from llmops.errors import Conflict, InvalidInput, NotFound
from llmops.experiments.feedback import feedback_for_request, record_feedback
from llmops.experiments.report import experiment_report
from llmops.experiments.service import ExperimentService


def _ledger_table():
    from llmops.governance.ledger_models import LedgerRow

    return LedgerRow.__table__


def _insert_ledger(database_url: str, rows: list[dict]) -> None:
    base = {
        "created_at": datetime.now(UTC),
        "model": "demo",
        "prompt_name": "summarize",
        "input_tokens": 0,
        "output_tokens": 0,
        "cached_tokens": 0,
        "latency_ms": 0.0,
        "status": 200,
        "outcome": "success",
        "streamed": False,
        "endpoint": "/v1/chat/completions",
        "experiment": None,
        "variant": None,
        "prompt_version": None,
        "user": None,
        "ttft_ms": None,
        "cost": None,
    }
    with get_engine(database_url).begin() as conn:
        conn.execute(insert(_ledger_table()), [{**base, **row} for row in rows])


def _setup(
    database_url: str, allocation: str = "fixed", **service_kwargs
) -> tuple[Registry, ExperimentService]:
    reg = Registry(database_url)
    for i in range(1, 4):
        reg.create_version("summarize", template=f"Summarize ({i}): {{{{ text }}}}")
    reg.set_label("summarize", 1, "production")
    reg.set_label("summarize", 2, "staging")
    svc = ExperimentService(database_url, **service_kwargs)
    svc.create("sum-ab", "summarize", ["control=production:50", "candidate=v3:50"], allocation=allocation)
    return reg, svc


def _t_two_sided_p(t: float, df: float) -> float:
    """1 - 2 * integral of Student's t density from 0 to |t| (Simpson), independent of the library."""

    def pdf(x: float) -> float:
        log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
        return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))

    n, x = 2_000, abs(t)  # Simpson: the error is far below 1e-10 for a density this smooth
    h = x / n
    area = pdf(0) + pdf(x) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, n))
    return 1 - 2 * area * h / 3


def test_feedback_is_validated_and_accepted_before_its_ledger_row(database_url):
    first = record_feedback("req-not-flushed-yet", score=0.8, comment="good", database_url=database_url)
    second = record_feedback("req-not-flushed-yet", thumbs="down", source="key-1", database_url=database_url)
    record_feedback("req-not-flushed-yet", comment="  only words  ", database_url=database_url)
    stored = feedback_for_request("req-not-flushed-yet", database_url=database_url)
    assert [(f.score, f.thumbs, f.comment) for f in stored] == [
        (0.8, None, "good"),
        (0.0, "down", None),
        (None, None, "only words"),
    ]
    assert first.id < second.id and stored[1].source == "key-1"
    assert record_feedback("r", thumbs="up", database_url=database_url).score == 1.0

    for kwargs, match in [
        ({"score": 1.5}, "between 0 and 1"),
        ({"score": -0.1}, "between 0 and 1"),
        ({"score": float("nan")}, "between 0 and 1"),
        ({"score": True}, "number"),
        ({"score": "0.5"}, "number"),
        ({"thumbs": "sideways"}, "'up' or 'down'"),
        ({"score": 0.5, "thumbs": "up"}, "not both"),
        ({}, "needs a score"),
        ({"comment": "x" * 4001}, "longer than"),
    ]:
        with pytest.raises(InvalidInput, match=match):
            record_feedback("req-1", database_url=database_url, **kwargs)
    with pytest.raises(InvalidInput, match="request_id"):
        record_feedback("", score=0.5, database_url=database_url)
    # Callers who know the ledger is flushed can ask for the id to be checked.
    with pytest.raises(NotFound, match="not be flushed"):
        record_feedback("req-unknown", score=0.5, require_known=True, database_url=database_url)
    _insert_ledger(database_url, [{"id": "req-known"}])
    assert record_feedback("req-known", score=0.5, require_known=True, database_url=database_url).score == 0.5


def _simulate(database_url: str, rng: random.Random) -> dict[str, dict]:
    """Ledger rows and feedback for both variants; returns what was written, per variant."""
    plan = {
        "control": {
            "n": 400,
            "errors": 12,
            "blocked": 6,
            "version": 1,
            "cost": 0.0010,
            "score": (6, 4),
            "rated": 60,
        },
        "candidate": {
            "n": 380,
            "errors": 30,
            "blocked": 2,
            "version": 3,
            "cost": 0.00118,
            "score": (7, 3),
            "rated": 70,
        },
    }
    written: dict[str, dict] = {}
    feedback_first: list[tuple[str, float]] = []
    for variant, p in plan.items():
        rows, scores_per_request = [], {}
        outcomes = (
            ["upstream_error"] * p["errors"]
            + ["blocked"] * p["blocked"]
            + ["client_error"] * 3
            + ["success"] * (p["n"] - p["errors"] - p["blocked"] - 3)
        )
        rng.shuffle(outcomes)
        for i, outcome in enumerate(outcomes):
            ok = outcome == "success"
            rows.append(
                {
                    "id": f"{variant}-{i}",
                    "user": f"u{i}",
                    "experiment": "sum-ab",
                    "variant": variant,
                    "prompt_version": p["version"],
                    "outcome": outcome,
                    "status": 200 if ok else 502,
                    "latency_ms": rng.lognormvariate(6, 0.4) if ok else rng.uniform(1, 50),
                    "ttft_ms": rng.uniform(50, 150) if ok and i % 2 else None,
                    "input_tokens": rng.randint(200, 400) if ok else 0,
                    "output_tokens": rng.randint(20, 80) if ok else 0,
                    "cost": p["cost"] * rng.uniform(0.9, 1.1) if ok and i % 10 else None,
                }
            )
        success_ids = [r["id"] for r in rows if r["outcome"] == "success"]
        for request_id in success_ids[: p["rated"]]:
            score = rng.betavariate(*p["score"])
            scores = [score]
            if rng.random() < 0.3:  # a second opinion on the same request
                scores.append(rng.choice([0.0, 1.0]))
            scores_per_request[request_id] = scores
            # Half the feedback arrives before the ledger batch is written.
            (feedback_first if rng.random() < 0.5 else written.setdefault("later", [])).extend(
                (request_id, s) for s in scores
            )
        written[variant] = {"rows": rows, "scores": scores_per_request}
    for request_id, score in feedback_first:
        record_feedback(request_id, score=score, database_url=database_url)
    _insert_ledger(database_url, written["control"]["rows"] + written["candidate"]["rows"])
    for request_id, score in written.pop("later"):
        _score_or_thumbs(request_id, score, database_url)
    # Noise the report must ignore: another experiment, untagged requests, feedback on unknown ids.
    _insert_ledger(
        database_url,
        [
            {"id": "other-1", "experiment": "other", "variant": "control"},
            {"id": "plain-1", "latency_ms": 99999.0},
        ],
    )
    record_feedback("other-1", score=0.0, database_url=database_url)
    record_feedback("never-logged", score=0.0, database_url=database_url)
    return written


def _score_or_thumbs(request_id: str, score: float, database_url: str) -> None:
    if score in (0.0, 1.0):
        record_feedback(request_id, thumbs="up" if score else "down", database_url=database_url)
    else:
        record_feedback(request_id, score=score, database_url=database_url)


def test_report_statistics_match_an_independent_computation(database_url):
    _setup(database_url)
    written = _simulate(database_url, random.Random(42))
    report = experiment_report("sum-ab", database_url=database_url)

    assert report["control"] == "control"
    by_name = {v["name"]: v for v in report["variants"]}
    assert list(by_name) == ["control", "candidate"]
    expected_fb: dict[str, list[float]] = {}
    for name, data in written.items():
        rows, section = data["rows"], by_name[name]
        ok = [r for r in rows if r["outcome"] == "success"]
        errors = sum(r["outcome"] == "upstream_error" for r in rows)
        assert section["requests"] == len(rows)
        assert section["errors"] == errors
        assert section["error_rate"] == pytest.approx(errors / len(rows))
        assert section["blocked_rate"] == pytest.approx(
            sum(r["outcome"] == "blocked" for r in rows) / len(rows)
        )
        assert section["versions"] == [rows[0]["prompt_version"]]
        latencies = [r["latency_ms"] for r in ok]
        assert section["latency_ms"]["mean"] == pytest.approx(statistics.mean(latencies))
        assert section["latency_ms"]["p95"] == pytest.approx(
            statistics.quantiles(latencies, n=20, method="inclusive")[18]
        )
        assert section["ttft_ms"]["mean"] == pytest.approx(
            statistics.mean(r["ttft_ms"] for r in ok if r["ttft_ms"] is not None)
        )
        assert section["tokens_per_call"]["input"] == pytest.approx(
            statistics.mean(r["input_tokens"] for r in ok)
        )
        assert section["tokens_per_call"]["output"] == pytest.approx(
            statistics.mean(r["output_tokens"] for r in ok)
        )
        costs = [r["cost"] for r in ok if r["cost"] is not None]
        assert section["cost_per_call"] == pytest.approx(statistics.mean(costs))
        assert section["priced_calls"] == len(costs)

        per_request = [statistics.mean(s) for s in data["scores"].values()]
        expected_fb[name] = per_request
        fb = section["feedback"]
        assert fb["rated_requests"] == len(per_request)
        assert fb["feedback_count"] == sum(len(s) for s in data["scores"].values())
        assert fb["mean"] == pytest.approx(statistics.mean(per_request))
        # 95% interval: mean +- t(0.975, n - 1) * s / sqrt(n); t found by bisection on the
        # independently integrated tail.
        n = len(per_request)
        lo, hi = 1.0, 3.0
        for _ in range(45):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _t_two_sided_p(mid, n - 1) > 0.05 else (lo, mid)
        half = lo * statistics.stdev(per_request) / math.sqrt(n)
        assert fb["ci95"] == pytest.approx(
            [statistics.mean(per_request) - half, statistics.mean(per_request) + half], abs=1e-7
        )

    (comparison,) = report["comparisons"]
    assert (comparison["variant"], comparison["against"]) == ("candidate", "control")
    a, b = expected_fb["control"], expected_fb["candidate"]
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(b) - statistics.mean(a)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    fb = comparison["feedback"]
    assert (fb["n"], fb["enough_data"]) == ([len(a), len(b)], True)
    assert fb["t"] == pytest.approx(t) and fb["df"] == pytest.approx(df)
    assert fb["p"] == pytest.approx(_t_two_sided_p(t, df), abs=1e-8)

    rows_a, rows_b = written["control"]["rows"], written["candidate"]["rows"]
    ea, eb = (sum(r["outcome"] == "upstream_error" for r in rows) for rows in (rows_a, rows_b))
    pooled = (ea + eb) / (len(rows_a) + len(rows_b))
    z = (eb / len(rows_b) - ea / len(rows_a)) / math.sqrt(
        pooled * (1 - pooled) * (1 / len(rows_a) + 1 / len(rows_b))
    )
    assert comparison["error_rate"]["z"] == pytest.approx(z)
    assert comparison["error_rate"]["p"] == pytest.approx(2 * (1 - statistics.NormalDist().cdf(abs(z))))

    cost_a = by_name["control"]["cost_per_call"]
    cost_b = by_name["candidate"]["cost_per_call"]
    assert comparison["cost_change_pct"] == pytest.approx((cost_b - cost_a) / cost_a * 100)
    verdict = comparison["verdict"]
    assert verdict.startswith(f"candidate: feedback {statistics.mean(b) - statistics.mean(a):+.2f} (p = ")
    assert f"cost {(cost_b - cost_a) / cost_a * 100:+.0f}%" in verdict
    assert f"errors {(eb / len(rows_b) - ea / len(rows_a)) * 100:+.1f} pts" in verdict
    assert report["summary"] == [verdict]
    # With this seed the candidate is rated clearly higher and errs clearly more.
    assert fb["p"] < 0.05 and comparison["error_rate"]["p"] < 0.05
    assert "feedback higher than control" in verdict and "error rate higher than control" in verdict


def test_small_samples_say_not_enough_data(database_url):
    _setup(database_url)
    _insert_ledger(
        database_url,
        [
            {
                "id": f"r{i}",
                "experiment": "sum-ab",
                "variant": "control" if i % 2 else "candidate",
                "latency_ms": 100.0 + i,
                "cost": 0.001,
            }
            for i in range(40)
        ],
    )
    for i in range(40):
        record_feedback(f"r{i}", score=0.5 + (i % 3) / 10, database_url=database_url)
    report = experiment_report("sum-ab", database_url=database_url)
    (comparison,) = report["comparisons"]
    assert comparison["feedback"]["p"] is None and comparison["error_rate"]["p"] is None
    assert comparison["verdict"].startswith(
        "candidate: not enough data (20 vs 20 requests, 20 vs 20 rated; need 30 each)"
    )
    # A lower bar turns the same data into a test.
    lenient = experiment_report("sum-ab", database_url=database_url, min_samples=10)
    assert lenient["comparisons"][0]["feedback"]["p"] is not None
    with pytest.raises(NotFound):
        experiment_report("no-such-experiment", database_url=database_url)


def test_promote_moves_production_to_the_winner_and_ends_the_experiment(database_url):
    reg, svc = _setup(database_url)
    with pytest.raises(NotFound, match="no variant 'nope'"):
        svc.promote("sum-ab", "nope")
    view = svc.promote("sum-ab", "candidate", actor="ann")
    assert (view.status, view.winner, view.promoted_version, view.promoted_label) == (
        "stopped",
        "candidate",
        3,
        "production",
    )
    assert reg.get("summarize@production").version == 3
    assert reg.get("summarize").version == 3  # bare-name requests now get the winner
    assert svc.active_for("summarize") is None
    with pytest.raises(Conflict, match="already promoted"):
        svc.promote("sum-ab", "control")

    # A variant that follows a label is promoted at the version the label points to now.
    svc.create("label-ab", "summarize", ["control=production", "candidate=staging"])
    svc.stop("label-ab")  # stop, read the report, then decide
    svc.promote("label-ab", "candidate")
    assert reg.get("summarize@production").version == 2


def test_thompson_allocation_shifts_traffic_to_the_better_variant(database_url):
    _, svc = _setup(database_url, allocation="thompson", thompson_period=3600)
    # Warm-up: below ten rated requests per variant, the configured 50/50 holds.
    assert svc.active_for("summarize").weights == (50.0, 50.0)
    rows = [
        {"id": f"{v}-{i}", "experiment": "sum-ab", "variant": v}
        for v in ("control", "candidate")
        for i in range(40)
    ]
    _insert_ledger(database_url, rows)
    for i in range(40):
        record_feedback(
            f"control-{i}", thumbs="up" if i % 5 == 0 else "down", database_url=database_url
        )  # 20%
        record_feedback(
            f"candidate-{i}", thumbs="down" if i % 5 == 0 else "up", database_url=database_url
        )  # 80%
    replica_a = ExperimentService(database_url, thompson_period=3600)
    replica_b = ExperimentService(database_url, thompson_period=3600)
    exp_a, exp_b = replica_a.active_for("summarize"), replica_b.active_for("summarize")
    control_share, candidate_share = (w / sum(exp_a.weights) for w in exp_a.weights)
    assert candidate_share > 0.9 and control_share >= 0.05  # the floor keeps control learning
    assert exp_a.weights == exp_b.weights  # same data, same period: the same split on every replica
    users = [f"user-{i}" for i in range(5000)]
    assert [exp_a.assign(u) for u in users] == [exp_b.assign(u) for u in users]
    share = sum(exp_a.assign(u).variant == "candidate" for u in users) / len(users)
    assert abs(share - candidate_share) <= 0.02
    assert experiment_report("sum-ab", database_url=database_url)["variants"][1]["share"] == pytest.approx(
        candidate_share
    )


def test_eval_scores_appear_for_the_versions_an_eval_run_used(database_url):
    from llmops.db import session_scope
    from llmops.evaluation.models import EvalResult, EvalRun

    _setup(database_url)
    _insert_ledger(
        database_url, [{"id": "c-1", "experiment": "sum-ab", "variant": "control", "prompt_version": 1}]
    )
    with session_scope(database_url) as session:
        session.add(
            EvalRun(
                id="run-a",
                suite="summaries",
                status="passed",
                prompts={"summarize@production": "summarize:1"},
                started_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        session.add(
            EvalRun(
                id="run-b",
                suite="summaries",
                status="failed",
                prompts={"summarize@candidate": "summarize:3"},
                started_at=datetime(2026, 1, 2, tzinfo=UTC),
            )
        )
        session.add(EvalRun(id="run-c", suite="other", status="passed", prompts={"translate": "translate:1"}))
        # A comparison saved from the app, not as an eval run: no evidence for summarize:1.
        session.add(
            EvalRun(id="run-d", suite="app", status="passed", prompts={"summarize@production": "summarize:1"},
                    parameters={"origin": "app-compare", "evidence": False})
        )
        for run_id, prompt_id, prompt_ref, score, passed in [
            ("run-a", "summarize@production", None, 0.9, True),
            ("run-a", "summarize@production", None, 0.5, False),
            ("run-d", "summarize@production", "summarize:1", 0.0, False),
            ("run-b", "summarize@candidate", "summarize:3", 0.4, False),
            ("run-c", "translate", "translate:1", 1.0, True),
        ]:
            session.add(
                EvalResult(
                    run_id=run_id,
                    case_id="c",
                    prompt_id=prompt_id,
                    prompt_ref=prompt_ref,
                    model_id="m",
                    model="demo",
                    score=score,
                    passed=passed,
                )
            )
    by_name = {v["name"]: v for v in experiment_report("sum-ab", database_url=database_url)["variants"]}
    assert by_name["control"]["eval"] == {
        "1": {
            "runs": 1,
            "cases": 2,
            "mean_score": pytest.approx(0.7),
            "pass_rate": 0.5,
            "latest_run": "run-a",
        }
    }
    # No traffic yet for the candidate: its pinned version is looked up.
    assert by_name["candidate"]["eval"] == {
        "3": {
            "runs": 1,
            "cases": 1,
            "mean_score": pytest.approx(0.4),
            "pass_rate": 0.0,
            "latest_run": "run-b",
        }
    }
