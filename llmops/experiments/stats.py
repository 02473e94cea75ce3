"""The statistics an A/B report needs, in pure Python (no scipy on the hot install).

Student's t distribution is computed exactly through the regularized incomplete beta
function (continued fraction, Lentz's method), so p-values and confidence intervals
match scipy's to about 1e-10 for any sample size, not just the large-sample normal
approximation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_EPS = 1e-15
_TINY = 1e-300


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b), evaluated with the modified Lentz method."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError("a and b must be positive")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    # The continued fraction converges fast only on this side; use symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom (df may be fractional)."""
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def t_cdf(t: float, df: float) -> float:
    tail = 0.5 * t_sf_two_sided(t, df)
    return 1.0 - tail if t >= 0 else tail


def t_ppf(q: float, df: float) -> float:
    """The t value below which a fraction `q` of the distribution lies (inverse CDF)."""
    if not 0.0 < q < 1.0:
        raise ValueError("q must be in (0, 1)")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    target = 2.0 * (1.0 - q)  # two-sided tail mass beyond the answer
    lo, hi = 0.0, 1.0
    while t_sf_two_sided(hi, df) > target:
        lo, hi = hi, hi * 2.0
    # The tail is monotone in t: bisection is slow-ish but cannot fail.
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_sf_two_sided(mid, df) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def normal_sf_two_sided(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def sample_variance(values: Sequence[float]) -> float | None:
    """Unbiased (n - 1) variance; None below two values."""
    n = len(values)
    if n < 2:
        return None
    m = math.fsum(values) / n
    return math.fsum((v - m) ** 2 for v in values) / (n - 1)


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default, Excel's PERCENTILE.INC)."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    position = (len(ordered) - 1) * p / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class MeanEstimate:
    n: int
    mean: float | None
    stdev: float | None
    ci_low: float | None
    ci_high: float | None


def mean_with_ci(values: Sequence[float], confidence: float = 0.95) -> MeanEstimate:
    """Mean and its t-based confidence interval (None bounds below two values)."""
    n = len(values)
    m = mean(values)
    var = sample_variance(values)
    if m is None or var is None:
        return MeanEstimate(n, m, None, None, None)
    sd = math.sqrt(var)
    half = t_ppf(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return MeanEstimate(n, m, sd, m - half, m + half)


@dataclass(frozen=True)
class WelchResult:
    diff: float  # mean(b) - mean(a)
    t: float
    df: float
    p: float


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult | None:
    """Welch's unequal-variance t-test of mean(b) against mean(a), two-sided.

    None when either sample has fewer than two values (no variance to speak of).
    """
    na, nb = len(a), len(b)
    va, vb = sample_variance(a), sample_variance(b)
    if va is None or vb is None:
        return None
    ma, mb = math.fsum(a) / na, math.fsum(b) / nb
    diff = mb - ma
    sa, sb = va / na, vb / nb
    se2 = sa + sb
    if se2 == 0.0:
        # Both samples constant: the means either agree exactly or differ for sure.
        return WelchResult(
            diff,
            0.0 if diff == 0 else math.copysign(math.inf, diff),
            float(na + nb - 2),
            1.0 if diff == 0 else 0.0,
        )
    t = diff / math.sqrt(se2)
    df = se2 * se2 / (sa * sa / (na - 1) + sb * sb / (nb - 1))
    return WelchResult(diff, t, df, t_sf_two_sided(t, df))


@dataclass(frozen=True)
class ProportionsResult:
    diff: float  # rate(b) - rate(a)
    z: float
    p: float


def two_proportion_z_test(successes_a: int, n_a: int, successes_b: int, n_b: int) -> ProportionsResult | None:
    """Pooled two-proportion z-test of rate(b) against rate(a), two-sided."""
    if n_a <= 0 or n_b <= 0:
        return None
    pa, pb = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    diff = pb - pa
    if se == 0.0:
        return ProportionsResult(diff, 0.0, 1.0)  # all or none failed on both sides
    z = diff / se
    return ProportionsResult(diff, z, normal_sf_two_sided(z))
