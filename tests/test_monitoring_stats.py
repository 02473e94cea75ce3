"""The drift statistics against SciPy's, and their behaviour on samples of one distribution."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from llmops.monitoring import features, stats


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_ks_matches_scipy(shift):
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 300), rng.normal(shift, 1.2, 200)
    ours, theirs = stats.ks_test(a, b), scipy_stats.ks_2samp(a, b, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=0.15, abs=1e-4)


def test_chi_square_matches_scipy():
    ref, cur = {"en": 80, "fr": 15, "de": 5}, {"en": 40, "fr": 50, "es": 10}
    ours = stats.chi_square_test(ref, cur)
    table = [[ref.get(c, 0) for c in ("de", "en", "es", "fr")], [cur.get(c, 0) for c in ("de", "en", "es", "fr")]]
    chi2, p, _, _ = scipy_stats.chi2_contingency(table, correction=False)
    assert ours.statistic == pytest.approx(chi2) and ours.p_value == pytest.approx(p, rel=1e-6)
    assert 0 < ours.effect < 1


def test_psi_of_one_distribution_stays_low_at_small_samples_and_a_shift_is_high():
    rng = np.random.default_rng(2)
    same = [stats.psi(rng.poisson(60, 60), rng.poisson(60, 45)) for _ in range(200)]
    assert np.quantile(same, 0.95) < 0.25
    assert stats.psi(rng.poisson(60, 60), rng.poisson(90, 45)) > 1


def test_mean_embedding_test_is_calibrated_and_finds_a_new_topic():
    rng = np.random.default_rng(3)
    words = ["invoice", "bill", "refund", "charge", "payment", "receipt", "account", "price"]
    texts = [" ".join(rng.choice(words, 6)) for _ in range(400)]
    shifted = [" ".join(rng.choice(["parcel", "delivery", "courier", "tracking"], 6)) for _ in range(60)]
    vectors = features.lexical_vectors(texts + shifted)
    p_values = [stats.mean_embedding_test(vectors[i:i + 60], vectors[i + 60:i + 120], 200, seed=i).p_value
                for i in range(0, 240, 20)]
    assert min(p_values) > 0.01  # no false alarm over a dozen same-topic pairs
    shift = stats.mean_embedding_test(vectors[:60], vectors[400:], 200)
    assert shift.p_value < 0.01 and shift.effect > 0.5


def test_language_of_short_and_long_texts():
    assert features.language("Where is my parcel? It was due on Monday and it has not come.") == "en"
    assert features.language("Où est mon colis ? Il devait arriver lundi et je ne le vois pas.") == "fr"
    assert features.language("Wo ist mein Paket? Es sollte am Montag kommen und ist nicht da.") == "de"
    assert features.language("¿Dónde está mi paquete? Debía llegar el lunes y no está.") == "es"
    assert features.language("我的包裹在哪里？") == "zh"
    assert features.language("ok") == "unknown"
