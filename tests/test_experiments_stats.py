"""The report's statistics against closed forms, printed tables and the statistics module."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from llmops.experiments import stats


@pytest.mark.parametrize("t", [-30.0, -4.2, -1.0, -0.1, 0.0, 0.5, 1.7, 3.0, 12.0, 250.0])
def test_t_cdf_matches_the_closed_forms_for_one_and_two_degrees_of_freedom(t):
    cauchy = 0.5 + math.atan(t) / math.pi  # df = 1
    two = 0.5 + t / (2.0 * math.sqrt(2.0 + t * t))  # df = 2
    assert stats.t_cdf(t, 1) == pytest.approx(cauchy, abs=1e-12)
    assert stats.t_cdf(t, 2) == pytest.approx(two, abs=1e-12)


def _t_pdf(x: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


@pytest.mark.parametrize(("t", "df"), [(2.0, 7.0), (-1.3, 3.5), (0.4, 120.0), (2.6, 15.1)])
def test_t_cdf_matches_numerical_integration_of_the_density(t, df):
    # Simpson's rule from 0 to t, plus the half below zero.
    n = 20_000
    h = t / n
    area = _t_pdf(0, df) + _t_pdf(t, df) + sum((4 if i % 2 else 2) * _t_pdf(i * h, df) for i in range(1, n))
    assert stats.t_cdf(t, df) == pytest.approx(0.5 + area * h / 3, abs=1e-9)


@pytest.mark.parametrize(
    ("q", "df", "table"),
    # Student's t critical values (as printed in tables, to the digits scipy gives).
    [
        (0.975, 1, 12.706204736174694),
        (0.975, 10, 2.228138851986274),
        (0.975, 30, 2.0422724563012378),
        (0.995, 5, 4.032142983555228),
        (0.975, 2.5, 3.5746548420036817),
    ],
)
def test_t_quantiles_match_the_table(q, df, table):
    assert stats.t_ppf(q, df) == pytest.approx(table, rel=1e-9)
    assert stats.t_ppf(1 - q, df) == pytest.approx(-table, rel=1e-9)


def test_welch_t_test_by_hand():
    control = [0.61, 0.72, 0.55, 0.80, 0.66, 0.59, 0.70, 0.63]
    candidate = [0.78, 0.85, 0.69, 0.91, 0.74, 0.88, 0.80, 0.83, 0.77, 0.95]
    va, vb = statistics.variance(control) / len(control), statistics.variance(candidate) / len(candidate)
    t = (statistics.mean(candidate) - statistics.mean(control)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(control) - 1) + vb**2 / (len(candidate) - 1))
    result = stats.welch_t_test(control, candidate)
    assert result.diff == pytest.approx(statistics.mean(candidate) - statistics.mean(control))
    assert result.t == pytest.approx(t, rel=1e-12)
    assert result.df == pytest.approx(df, rel=1e-12)
    # scipy.stats.ttest_ind(candidate, control, equal_var=False) gives t 4.276274658990324,
    # df 15.103877962473355, p 0.0006530847547627129.
    assert result.t == pytest.approx(4.276274658990324, rel=1e-12)
    assert result.p == pytest.approx(0.0006530847547627129, rel=1e-8)
    assert stats.welch_t_test([0.5], candidate) is None
    assert stats.welch_t_test([0.5, 0.5], [0.5, 0.5]).p == 1.0


def test_two_proportion_z_test_by_hand():
    # 40 errors in 1000 against 62 in 1000.
    pooled = 102 / 2000
    z = (0.062 - 0.040) / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    p = 2 * (1 - statistics.NormalDist().cdf(abs(z)))
    result = stats.two_proportion_z_test(40, 1000, 62, 1000)
    assert result.diff == pytest.approx(0.022)
    assert result.z == pytest.approx(z, rel=1e-12)
    assert result.p == pytest.approx(p, rel=1e-9)
    assert 0.02 < result.p < 0.03
    assert stats.two_proportion_z_test(0, 100, 0, 100).p == 1.0


def test_mean_interval_and_percentile_against_the_statistics_module():
    rng = random.Random(7)
    values = [rng.betavariate(2, 3) for _ in range(25)]
    estimate = stats.mean_with_ci(values)
    half = 2.0638985616280245 * statistics.stdev(values) / math.sqrt(25)  # t(0.975, 24)
    assert estimate.mean == pytest.approx(statistics.mean(values))
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx(
        (statistics.mean(values) - half, statistics.mean(values) + half)
    )
    latencies = [rng.lognormvariate(5, 0.6) for _ in range(333)]
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[18]
    assert stats.percentile(latencies, 95) == pytest.approx(p95)
    assert stats.percentile([3.0], 95) == 3.0 and stats.percentile([], 95) is None
    assert stats.mean_with_ci([0.4]).ci_low is None
