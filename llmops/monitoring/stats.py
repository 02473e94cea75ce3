"""Two-sample tests for drift, each with an effect size beside its p-value.

Numbers: the population stability index (PSI, on the reference's deciles) and the
two-sample Kolmogorov-Smirnov test. Categories: Pearson's chi-square on the contingency
table, with Cramér's V. Embeddings: a permutation test on the distance between the two
samples' mean vectors (the maximum mean discrepancy with a linear kernel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PSI_FLOOR = 1e-4  # an empty bin's share, so the log stays finite


def psi(reference: Sequence[float], recent: Sequence[float], bins: int | None = None) -> float:
    """Population stability index of `recent` against `reference`'s quantile bins.
    Rules of thumb: < 0.1 stable, 0.1-0.25 a shift worth a look, > 0.25 a real shift.

    Two samples of one distribution differ by chance: PSI times 1/(1/n + 1/m) is about
    chi-square with bins - 1 degrees of freedom, so at 60 and 45 values and ten bins one
    pair in twenty passes 0.6. Hence one bin per 25 values of the smaller sample, between
    2 and 10, which keeps that 95th percentile near 0.15-0.2 from 50 values up."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(recent, dtype=float)
    if bins is None:
        bins = max(2, min(10, min(len(ref), len(cur)) // 25))
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    cur_share = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    return category_psi(ref_share, cur_share)


def category_psi(ref_share: Sequence[float] | np.ndarray, cur_share: Sequence[float] | np.ndarray) -> float:
    a = np.maximum(np.asarray(ref_share, dtype=float), PSI_FLOOR)
    b = np.maximum(np.asarray(cur_share, dtype=float), PSI_FLOOR)
    return float(np.sum((b - a) * np.log(b / a)))


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float
    effect: float  # the test's effect size: KS D, Cramér's V, centroid cosine distance


def _kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution."""
    if x <= 0:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * x * x)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


def ks_test(reference: Sequence[float], recent: Sequence[float]) -> TestResult:
    """Two-sample Kolmogorov-Smirnov, asymptotic p-value (Stephens' small-sample correction)."""
    a = np.sort(np.asarray(reference, dtype=float))
    b = np.sort(np.asarray(recent, dtype=float))
    both = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, both, side="right") / len(a)
    cdf_b = np.searchsorted(b, both, side="right") / len(b)
    d = float(np.max(np.abs(cdf_a - cdf_b)))
    en = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    return TestResult(d, _kolmogorov_sf((en + 0.12 + 0.11 / en) * d), d)


def _upper_gamma_regularized(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a): a series below a + 1, a continued fraction above."""
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(1000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def chi_square_sf(statistic: float, df: int) -> float:
    return _upper_gamma_regularized(df / 2, statistic / 2)


def chi_square_test(reference: dict[str, int], recent: dict[str, int]) -> TestResult:
    """Pearson's chi-square on the 2 x k table of category counts; effect: Cramér's V."""
    cats = sorted(set(reference) | set(recent))
    table = np.array([[reference.get(c, 0) for c in cats], [recent.get(c, 0) for c in cats]], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    n = table.sum()
    if table.shape[1] < 2 or n == 0:
        return TestResult(0.0, 1.0, 0.0)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    stat = float(np.sum((table - expected) ** 2 / expected))
    df = table.shape[1] - 1
    return TestResult(stat, chi_square_sf(stat, df), math.sqrt(stat / n))


def cohen_h(p_ref: float, p_cur: float) -> float:
    """Effect size of a change in a rate (0.2 small, 0.5 medium, 0.8 large)."""
    return abs(2 * math.asin(math.sqrt(p_cur)) - 2 * math.asin(math.sqrt(p_ref)))


def mean_embedding_test(
    reference: np.ndarray, recent: np.ndarray, permutations: int = 500, seed: int = 0
) -> TestResult:
    """Permutation test of ||mean(reference) - mean(recent)||²; effect: 1 - cosine of the means."""
    rng = np.random.default_rng(seed)
    both = np.vstack([reference, recent])
    n = len(reference)

    def statistic(rows_a: np.ndarray, rows_b: np.ndarray) -> float:
        diff = rows_a.mean(axis=0) - rows_b.mean(axis=0)
        return float(diff @ diff)

    observed = statistic(reference, recent)
    at_least = 0
    for _ in range(permutations):
        order = rng.permutation(len(both))
        if statistic(both[order[:n]], both[order[n:]]) >= observed:
            at_least += 1
    ma, mb = reference.mean(axis=0), recent.mean(axis=0)
    norm = float(np.linalg.norm(ma) * np.linalg.norm(mb))
    effect = 1.0 - float(ma @ mb) / norm if norm else 0.0
    return TestResult(observed, (at_least + 1) / (permutations + 1), effect)
