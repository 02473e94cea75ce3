"""Reference metrics: Levenshtein, ROUGE-L and BLEU give the values their definitions give."""

from __future__ import annotations

import pytest

from llmops.evaluation.textmetrics import bleu, levenshtein_distance, levenshtein_similarity, rouge_l


def test_levenshtein_counts_edits():
    assert levenshtein_distance("kitten", "sitting") == 3
    assert levenshtein_distance("", "abc") == 3
    assert levenshtein_distance("same", "same") == 0
    assert levenshtein_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert levenshtein_similarity("", "") == 1.0


def test_rouge_l_is_the_f1_of_the_longest_common_subsequence():
    # LCS of "the cat sat on the mat" and "the cat lay on the mat" is 5 words of 6 each.
    assert rouge_l("the cat sat on the mat", "the cat lay on the mat") == pytest.approx(5 / 6)
    assert rouge_l("The Cat!", "the cat") == 1.0  # case and punctuation do not count
    assert rouge_l("completely different words", "nothing shared here") == 0.0


def test_bleu_is_one_for_identical_text_and_ranks_closer_candidates_higher():
    reference = "the quick brown fox jumps over the lazy dog"
    assert bleu(reference, reference) == pytest.approx(1.0)
    close = bleu("the quick brown fox jumps over a lazy dog", reference)
    far = bleu("a dog sleeps", reference)
    assert 0 < far < close < 1
    assert bleu("zebra", reference) == 0.0


def test_bleu_penalises_short_candidates():
    reference = "the quick brown fox jumps over the lazy dog"
    # every word of the short candidate matches, yet the brevity penalty keeps it low
    assert bleu("the quick brown fox", reference) < 0.5


def _cell_by_cell(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def test_bit_parallel_levenshtein_matches_the_textbook_table():
    import random

    rng = random.Random(7)
    for _ in range(500):
        a = "".join(rng.choice("abcé ") for _ in range(rng.randint(0, 90)))  # over 64 chars too
        b = "".join(rng.choice("abcé ") for _ in range(rng.randint(0, 90)))
        assert levenshtein_distance(a, b) == _cell_by_cell(a, b), (a, b)
