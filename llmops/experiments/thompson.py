"""Thompson sampling: give the variant more likely to be best more of the traffic.

Each variant's feedback is a Beta posterior: from a Beta(1, 1) prior, a rated request
with score s (thumbs up 1, down 0, or a score in 0..1) adds s to alpha and 1 - s to
beta. A variant's traffic share is the posterior probability that it has the highest
mean, estimated by drawing from every posterior many times.

The trade-off, which is why `fixed` stays the default: shares are recomputed
periodically (ExperimentService's `thompson_period`), and assignment hashes a unit
into the *current* shares, so a user keeps their variant only while the shares hold;
when they move, the users near the moved boundaries switch. Within a period, every
replica that read the same feedback computes the same shares (the sampler is seeded
by the experiment and the period), so stickiness across replicas holds as well as
the replicas' views of the feedback agree. The shifting allocation also makes the
report's comparison less clean than a fixed split (traffic mix changes over time).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from hashlib import blake2b

# Until every variant has this many rated requests, the configured weights hold:
# a posterior built on three ratings would swing the traffic on noise.
MIN_RATED_REQUESTS = 10
DRAWS = 4000


def beta_posterior(scores: Sequence[float]) -> tuple[float, float]:
    """(alpha, beta) of the Beta posterior from a uniform prior and scores in 0..1."""
    total = sum(scores)
    return 1.0 + total, 1.0 + len(scores) - total


def thompson_weights(
    scores_by_variant: Sequence[Sequence[float]],
    *,
    seed: int,
    draws: int = DRAWS,
    floor: float = 0.05,
) -> list[float]:
    """Probability that each variant is best, with a minimum share `floor` each.

    The floor keeps every variant learning: with a share of zero a variant would get
    no new feedback for a whole period and could never recover from a bad start.
    """
    posteriors = [beta_posterior(s) for s in scores_by_variant]
    rng = random.Random(seed)
    wins = [0] * len(posteriors)
    for _ in range(draws):
        samples = [rng.betavariate(a, b) for a, b in posteriors]
        wins[max(range(len(samples)), key=samples.__getitem__)] += 1
    n = len(posteriors)
    floor = min(floor, 0.5 / n)
    return [floor + (1.0 - floor * n) * w / draws for w in wins]


def period_seed(experiment: str, period_index: int) -> int:
    """The same seed on every replica for one experiment in one period."""
    return int.from_bytes(blake2b(f"{experiment}\x1f{period_index}".encode(), digest_size=8).digest(), "big")


def allocation_weights(
    configured: Sequence[float],
    scores_by_variant: Sequence[Sequence[float]],
    *,
    seed: int,
    min_rated: int = MIN_RATED_REQUESTS,
) -> list[float]:
    """The shares to use now: configured ones during warm-up, Thompson's afterwards."""
    if any(len(s) < min_rated for s in scores_by_variant):
        return list(configured)
    return thompson_weights(scores_by_variant, seed=seed)
