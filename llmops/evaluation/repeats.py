"""Repeated attempts of a case: its pass rate, how sure we are of it, and the gate.

A case × prompt × model that runs `repeat: n` times passes c of n attempts. Its pass
rate c/n comes with a 95% Wilson score interval (it stays inside 0..1 and is honest at
small n, where the normal approximation is not). pass@k is the chance that at least one
of k attempts passes and pass^k that all k do; both are estimated without bias from the
n attempts (Chen et al. 2021; Yao et al. 2024) and reported at k = n, where they read
"passed at least once" and "passed every time". A case that both passed and failed is
*flaky*, reported apart from failures.

The gate: a case fails it when the whole 95% interval lies below `min_pass_rate`, that
is when the interval's **upper** bound is under the bar. A red gate is then evidence:
a case whose true rate is at the bar turns it red at most about 2.5% of the time (the
interval's one-sided error), however few the repeats. The lower bound would make green
the evidence instead, but no realistic repeat count clears it (at 0.9 it takes 35
passes out of 35), so every case would be red. A case whose interval straddles the bar
passes and is marked `inconclusive`, with the repeats it would take to settle it. With
no `min_pass_rate` the bar is 1.0, and since the upper bound is below 1 whenever an
attempt failed, every attempt must pass, as a single run always required.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Z_95 = 1.959963984540054  # the two-sided 95% normal quantile
DEFAULT_MIN_PASS_RATE = 1.0


def wilson_interval(passes: int, runs: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (0..1 for no runs)."""
    if runs <= 0:
        return 0.0, 1.0
    p = passes / runs
    denominator = 1 + z * z / runs
    centre = (p + z * z / (2 * runs)) / denominator
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / denominator
    # Exact at the edges: all passes reach 1, none reach 0 (rounding could miss by 1e-17).
    low = 0.0 if passes == 0 else max(0.0, centre - half)
    high = 1.0 if passes == runs else min(1.0, centre + half)
    return low, high


def pass_at_k(runs: int, passes: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k attempts passes) from `passes` of `runs`."""
    if not 1 <= k <= runs:
        raise ValueError(f"k must be in 1..{runs}")
    if runs - passes < k:
        return 1.0
    return 1.0 - math.comb(runs - passes, k) / math.comb(runs, k)


def pass_hat_k(runs: int, passes: int, k: int) -> float:
    """Unbiased estimate of P(all of k attempts pass) from `passes` of `runs` (pass^k)."""
    if not 1 <= k <= runs:
        raise ValueError(f"k must be in 1..{runs}")
    return math.comb(passes, k) / math.comb(runs, k)


def repeats_to_settle(passes: int, runs: int, bar: float, limit: int = 1000) -> int | None:
    """How many attempts in all, at the observed rate, would put the interval's upper bound
    under the bar or its lower bound over it (None: more than `limit`, or never)."""
    rate = passes / runs if runs else 0.0
    if rate == bar:
        return None
    n = runs
    while n < limit:
        n = max(n + 1, int(n * 1.25))
        c = round(rate * n)
        low, high = wilson_interval(c, n)
        if high < bar or low >= bar:
            return n
    return None


@dataclass(frozen=True)
class RepeatStats:
    runs: int
    passes: int
    errors: int
    min_pass_rate: float

    @property
    def rate(self) -> float:
        return self.passes / self.runs if self.runs else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.passes, self.runs)

    @property
    def flaky(self) -> bool:
        return 0 < self.passes < self.runs

    @property
    def pass_at_k(self) -> float:
        return pass_at_k(self.runs, self.passes, self.runs) if self.runs else 0.0

    @property
    def pass_hat_k(self) -> float:
        return pass_hat_k(self.runs, self.passes, self.runs) if self.runs else 0.0

    @property
    def gate_passed(self) -> bool:
        """False only when the whole interval lies below the bar (see the module docstring)."""
        return self.interval[1] >= self.min_pass_rate

    @property
    def inconclusive(self) -> bool:
        low, high = self.interval
        return low < self.min_pass_rate <= high and self.passes < self.runs

    @property
    def status(self) -> str:
        """passed (every attempt), failed (none), or flaky (some)."""
        if self.passes == self.runs:
            return "passed"
        return "flaky" if self.passes else "failed"

    def describe(self) -> str:
        low, high = self.interval
        text = f"passed {self.passes} of {self.runs} ({self.rate:.0%}, 95% CI {low:.0%}-{high:.0%})"
        if self.min_pass_rate >= 1.0 and self.passes < self.runs:
            return f"{self.status}: {text}; every attempt must pass (set min_pass_rate to gate on the rate)"
        if not self.gate_passed:
            return f"{self.status}: {text}; the interval lies below min_pass_rate {self.min_pass_rate:g}"
        if self.inconclusive:
            more = repeats_to_settle(self.passes, self.runs, self.min_pass_rate)
            hint = f"; about {more} attempts would settle it" if more else ""
            return f"{self.status}: {text}; inconclusive against min_pass_rate {self.min_pass_rate:g}{hint}"
        return f"{self.status}: {text}"

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "runs": self.runs,
            "passes": self.passes,
            "errors": self.errors,
            "rate": round(self.rate, 4),
            "ci_low": round(low, 4),
            "ci_high": round(high, 4),
            "pass_at_k": round(self.pass_at_k, 4),
            "pass_hat_k": round(self.pass_hat_k, 4),
            "k": self.runs,
            "flaky": self.flaky,
            "status": self.status,
            "min_pass_rate": self.min_pass_rate,
            "gate_passed": self.gate_passed,
            "inconclusive": self.inconclusive,
        }
